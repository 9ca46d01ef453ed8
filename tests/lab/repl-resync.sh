#!/bin/bash
# repl-resync.sh - the replicated database across a standby's absence.
# The standby refuses writes and names the active, serves reads of the
# replicated rows, and follows schema changes (a DDL that a changeset
# would lose is refused and changes nothing).  It stops cleanly while
# 100 000 rows are written; the active acknowledges alone meanwhile.  Its
# return needs a snapshot (the backlog is 1 MiB), a switchover to it is
# refused while it syncs, and afterwards both databases hash equal at
# the same position.  A short absence (100 rows) is caught up from the
# backlog, without a snapshot.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario repl-resync rr-

# same_rows SQL [WANT] - the query gives the same rows on n1 and n2
# (and WANT, when given).
same_rows()
{
	local a b
	a=$(db_rows n1 "$1") || return 1
	b=$(db_rows n2 "$1") || return 1
	[[ $a == "$b" ]] || {
		echo "# $1: n1 has '$a', n2 has '$b'" >&2
		return 1
	}
	[[ $# -lt 2 || $a == "$2" ]] || {
		echo "# $1: got '$a', want '$2'" >&2
		return 1
	}
}

# insert_batches FROM TO - transactions FROM..TO-1 on n1, 1000 rows each
# (keys i*1000+1 .. i*1000+1000), one tandemctl call each.
insert_batches()
{
	local sql="INSERT INTO kv SELECT @I@ * 1000 + x, 'value-' || (@I@ * 1000 + x)
		FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
		WHERE x < 1000) SELECT x FROM c)"
	# shellcheck disable=SC2016 # expanded by the inner shell
	"$LABCTL" exec n1 bash -c '
		for ((i = $1; i < $2; i++)); do
			timeout 30 tandemctl db exec "${3//@I@/$i}" >/dev/null ||
				{ echo "transaction $i failed" >&2; exit 1; }
		done' insert "$1" "$2" "$sql"
}

# exec_fails RC TEXT NODE SQL... - db exec on NODE exits RC and its stderr has TEXT.
exec_fails()
{
	local want=$1 text=$2 node=$3 err rc=0
	shift 3
	err=$(tctl "$node" db exec "$@" 2>&1 >/dev/null) || rc=$?
	echo "# $node db exec: exit $rc: $err" >&2
	((rc == want)) && [[ $err == *"$text"* ]]
}

# Snapshots are logged at debug level.
lab_up --token 1000 --set replication.backlog=1 --set tandem.log_level=debug
check "n1 is active" test "$(active_now)" = n1
check "n2 is a standby in sync" eventually 10 standby_in_sync n2

check "create table kv on the active" \
	tctl n1 db exec "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)"
check "insert 10 rows on the active" tctl n1 db exec "INSERT INTO kv SELECT x, 'value-' || x
	FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10)
	SELECT x FROM c)"

# (d) the standby refuses writes, naming the active, and serves reads.
check "a write on the standby exits 4 and names the active n1" \
	exec_fails 4 "writes go to the active node, n1" n2 "INSERT INTO kv VALUES (99, 'x')"
check "the refused write changed nothing" same_rows "SELECT count(*) FROM kv" 10
check "n2 reads k=7" test "$(db_rows n2 "SELECT v FROM kv WHERE k = 7")" = value-7
check "n2 reads all 10 rows as n1 does" same_rows "SELECT k, v FROM kv ORDER BY k"

# (e) schema changes replicate in order with the data.
T2="SELECT name, sql FROM sqlite_schema WHERE name LIKE 't2%' ORDER BY name"
check "create table t2" tctl n1 db exec "CREATE TABLE t2(id INTEGER PRIMARY KEY, a TEXT)"
check "alter table t2 add column b" tctl n1 db exec "ALTER TABLE t2 ADD COLUMN b INTEGER"
check "create index t2_a" tctl n1 db exec "CREATE INDEX t2_a ON t2(a)"
check "insert rows into t2" \
	tctl n1 db exec "INSERT INTO t2(id, a, b) VALUES (1, 'one', 10), (2, 'two', 20)" \
	"INSERT INTO t2(id, a) VALUES (3, 'three')"
check "n2's schema of t2 equals n1's (table with b, index t2_a)" same_rows "$T2" \
	"$(printf '%s\t%s\n%s\t%s' t2 'CREATE TABLE t2(id INTEGER PRIMARY KEY, a TEXT, b INTEGER)' \
		t2_a 'CREATE INDEX t2_a ON t2(a)')"
check "n2's rows of t2 equal n1's" same_rows "SELECT id, a, b FROM t2 ORDER BY id" \
	"$(printf '1\tone\t10\n2\ttwo\t20\n3\tthree\tNULL')"
check "n2 uses its index t2_a" \
	bash -c '"$1" exec n2 tandemctl db query "EXPLAIN QUERY PLAN SELECT id FROM t2 WHERE a = '\''two'\''" |
		grep -q "INDEX t2_a"' _ "$LABCTL"
check "drop index t2_a" tctl n1 db exec "DROP INDEX t2_a"
check "the index is gone on n2" same_rows "$T2" \
	"$(printf '%s\t%s' t2 'CREATE TABLE t2(id INTEGER PRIMARY KEY, a TEXT, b INTEGER)')"
check "drop table t2" tctl n1 db exec "DROP TABLE t2"
check "t2 is gone on n2" same_rows "$T2" ""

SCHEMA="SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"
schema_before=$(db_rows n1 "$SCHEMA")
check "a table without primary key is refused (exit 1, names the table)" \
	exec_fails 1 nopk n1 "CREATE TABLE nopk(x)"
check "the refused DDL changed nothing on n1" test "$(db_rows n1 "$SCHEMA")" = "$schema_before"
check "nor on n2" same_rows "$SCHEMA" "$schema_before"
check "both databases hash equal" same_db

# (b) the standby is away while 100 000 rows are written: it needs a snapshot.
snaps_sent=$(log_count n1 "sending a snapshot")
snaps_installed=$(log_count n2 "snapshot installed")
"$LABCTL" kill n2 tandemd TERM
check "n2's tandemd stops" eventually 10 is_down n2
check "n1 sees n2 stopped" eventually 10 field_is n1 '.peers[0].state' stopped
check "n1: redundancy degraded" field_is n1 .redundancy degraded
check "n1 acknowledges alone" eventually 5 field_is n1 .replication.alone true
check "n1 warns that it acknowledges alone" \
	field_like n1 '.warnings | join(" ")' '*acknowledged by this node alone*'
check "100 transactions of 1000 rows commit on n1 alone" insert_batches 1 101
check "n1 holds 100 010 rows" test "$(db_rows n1 "SELECT count(*) FROM kv")" = 100010
check "n1 is still active" is n1 active

check "shape the replication stream to n2" slow_link on
check "n2's tandemd starts again" "$LABCTL" start-daemon n2
check "n2 receives a snapshot" eventually 20 field_is n2 .replication.link snapshot
check "n2 is syncing meanwhile" field_is n2 .node.state syncing
check "n2 shows the snapshot's progress" eventually 5 field_is n2 \
	'.replication.snapshot | .total > 0 and .done > 0 and .done <= .total' true
check "n1 sees n2 syncing" eventually 5 field_is n1 '.peers[0].state' syncing
fo_err=$(tctl n1 failover --to n2 2>&1 >/dev/null)
fo_rc=$?
echo "# failover --to n2 while n2 syncs: exit $fo_rc: $fo_err" >&2
check "a switchover to the syncing n2 is refused" \
	test "$fo_rc" = 1 -a -n "$(grep -F 'not in sync' <<<"$fo_err")"
check "n1 stays active" is n1 active
check "unshape the replication stream" slow_link off
check "n2 becomes a standby in sync" eventually 60 standby_in_sync n2
check "n1's log mentions the snapshot it sent" \
	test "$(log_count n1 "sending a snapshot")" -gt "$snaps_sent"
check "n2's log mentions the snapshot it installed" \
	test "$(log_count n2 "snapshot installed")" -gt "$snaps_installed"
check "n1 no longer acknowledges alone" eventually 5 field_is n1 .replication.alone false
check "redundancy is ok again" eventually 5 field_is n1 .redundancy ok
check "n2 holds 100 010 rows" test "$(db_rows n2 "SELECT count(*) FROM kv")" = 100010
check "equal content hash and position after the snapshot" same_db

# A short absence: 100 rows are caught up from the backlog.
snaps_sent=$(log_count n1 "sending a snapshot")
snaps_installed=$(log_count n2 "snapshot installed")
"$LABCTL" kill n2 tandemd TERM
check "n2's tandemd stops again" eventually 10 is_down n2
check "n1 acknowledges alone again" eventually 10 field_is n1 .replication.alone true
check "100 rows commit on n1 alone" tctl n1 db exec "INSERT INTO kv SELECT 200000 + x, 'small'
	FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100)
	SELECT x FROM c)"
check "n2's tandemd starts again" "$LABCTL" start-daemon n2
check "n2 catches up: a standby in sync" eventually 30 standby_in_sync n2
check "no snapshot was sent for that" \
	test "$(log_count n1 "sending a snapshot")" -eq "$snaps_sent"
check "no snapshot was installed" \
	test "$(log_count n2 "snapshot installed")" -eq "$snaps_installed"
check "n2 holds the 100 new rows" \
	test "$(db_rows n2 "SELECT count(*) FROM kv WHERE v = 'small'")" = 100
check "equal content hash and position after the catch-up" same_db
check_serving n1
lab_done

#!/bin/bash
# repl-diverged.sh - a node that comes back with writes the new active
# never saw keeps them in an archive.  With fencing off, a partition
# (n1's port taken off the switch's bridge, both links keep carrier) makes
# two actives: n1 (epoch 1) goes on acknowledging writes alone, n2
# promotes (epoch 2) and takes writes of its own.  When the cable is
# plugged back, the higher epoch stays active; n1 steps down, its
# database is archived in its state directory as diverged-1-TIME.db
# (named in its log and status) and it is resynced from n2.  Nothing is
# silently dropped: the archive holds n1's split-time rows, and the two
# live copies hash the same.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario repl-diverged rd-

STATE=$TANDEM_LAB_DIR/n1/state # n1's /var/lib/tandem

# archives - the diverged-*.db files in n1's state directory.
archives()
{
	find "$STATE" -maxdepth 1 -name 'diverged-*.db' -printf '%f\n' | sort
}

# archive_rows FILE SQL - a query on an archived database, read-only.
archive_rows()
{
	sqlite3 -readonly -separator $'\t' "$STATE/$1" "$2"
}

# partition on|off - n1's switch port leaves the bridge, or joins it
# again.  Unlike a cut cable, both ends keep carrier: n1 has no reason to
# hand over, and both nodes can serve.
partition()
{
	local how=(master br0)
	[[ $1 == on ]] && how=(nomaster)
	ip -n "${TANDEM_LAB_PREFIX}sw" link set n1-p "${how[@]}"
}

# archive_rows_are FILE SQL WANT
archive_rows_are()
{
	local got
	got=$(archive_rows "$1" "$2") || return 1
	[[ $got == "$3" ]] || {
		echo "# $1: $2: got '$got', want '$3'" >&2
		return 1
	}
}

lab_up --token 1000 --fence none
check "n1 is active" test "$(active_now)" = n1
check "n2 is a standby in sync" eventually 10 standby_in_sync n2
check "create table t" tctl n1 db exec "CREATE TABLE t(k INTEGER PRIMARY KEY, who TEXT)"
check "rows 1..3 before the split" \
	tctl n1 db exec "INSERT INTO t VALUES (1, 'both'), (2, 'both'), (3, 'both')"
check "n2 has them" eventually 5 db_rows_are n2 "SELECT count(*) FROM t" 3
check "no archive yet" test -z "$(archives)"
check "status names no archive" field_is n1 .replication.archive null

partition on
check "n2 promotes without fencing" eventually 20 is n2 active
check "n1 stays active too: two actives" is n1 active
check "n1 acknowledges alone" eventually 10 field_is n1 .replication.alone true
check "n2 is at a new epoch" eventually 5 field_is n2 .replication.epoch 2
check "n1 writes rows 10, 11 alone" \
	tctl n1 db exec "INSERT INTO t VALUES (10, 'n1'), (11, 'n1')"
check "n2 writes rows 20, 21, 22 alone" \
	tctl n2 db exec "INSERT INTO t VALUES (20, 'n2'), (21, 'n2'), (22, 'n2')"

partition off
check "the higher epoch, n2, stays active" eventually 30 is n1 standby
check "n2 is active" is n2 active
check "n1 resyncs to a standby in sync" eventually 60 standby_in_sync n1
archive=$(archives)
check "n1 archived one diverged database" test "$(wc -l <<<"$archive")" = 1 -a -n "$archive"
check "named after its epoch 1 and the UTC time" \
	bash -c '[[ $1 =~ ^diverged-1-[0-9]{8}T[0-9]{6}Z\.db$ ]]' _ "$archive"
check "status names the archive" \
	field_is n1 .replication.archive "/var/lib/tandem/$archive"
check "the log names it" log_has n1 "archived as /var/lib/tandem/$archive"
check "the archive holds n1's split-time rows" archive_rows_are "$archive" \
	"SELECT group_concat(k) FROM (SELECT k FROM t WHERE who = 'n1' ORDER BY k)" 10,11
check "and the shared ones, not n2's" archive_rows_are "$archive" \
	"SELECT group_concat(k) FROM (SELECT k FROM t ORDER BY k)" 1,2,3,10,11
check "n1's live copy is n2's: rows 1..3 and 20..22" db_rows_are n1 \
	"SELECT k, who FROM t ORDER BY k" "$(printf '%s\t%s\n' 1 both 2 both 3 both 20 n2 21 n2 22 n2)"
check "both copies hash the same" same_db
check "redundancy is ok" eventually 5 field_is n2 .redundancy ok
check "a new write replicates to n1" tctl n2 db exec "INSERT INTO t VALUES (30, 'after')"
check "n1 has it" eventually 5 db_rows_are n1 "SELECT who FROM t WHERE k = 30" after
check_serving n2
lab_done

#!/bin/bash
# repl-snapshot-wal.sh - a snapshot sent over a slow link while the active
# keeps writing.  The active's write-ahead log only grows while its
# database file is sent; past [replication] snapshot_wal (2 MiB here) the
# active gives the snapshot up, logs a warning, and the standby shows why.
# Once the writes stop and the link is fast again, the next snapshot
# completes and both databases hash equal.  Async mode, so that writes on
# the active do not wait for the syncing standby.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario repl-snapshot-wal rw-

GIVEN_UP="snapshot for n2 given up"

# write_mib NODE FROM N - N transactions on NODE, each of 16 rows of 64 KiB
# (1 MiB), keys FROM*16+1 ...
write_mib()
{
	local i
	for ((i = $2; i < $2 + $3; i++)); do
		tctl "$1" db exec "INSERT INTO blobs SELECT $i * 16 + x, randomblob(65536)
			FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
			WHERE x < 16) SELECT x FROM c)" >/dev/null || return 1
	done
}

# wal_mib NODE - the size of NODE's write-ahead log file, in whole MiB.
wal_mib()
{
	local f
	f=$(find "$TANDEM_LAB_DIR/$1/state" -maxdepth 1 -name '*.db-wal' | head -n 1)
	[[ -n $f ]] || return 1
	echo $(($(stat -c %s "$f") / 1048576))
}

# given_up - n1 logged that it gave a snapshot up.
given_up()
{
	log_has n1 "$GIVEN_UP"
}

lab_up --token 1000 --set replication.mode=async --set replication.backlog=1 \
	--set replication.snapshot_wal=2
check "n1 is active" test "$(active_now)" = n1
check "n2 is a standby in sync" eventually 10 standby_in_sync n2
check "create table blobs on the active" \
	tctl n1 db exec "CREATE TABLE blobs(k INTEGER PRIMARY KEY, v BLOB NOT NULL)"

# n2 is away while 6 MiB are written: past the 1 MiB backlog, a snapshot.
"$LABCTL" kill n2 tandemd TERM
check "n2's tandemd stops" eventually 10 is_down n2
check "6 MiB commit on n1 alone" write_mib n1 0 6
check "n1 has logged no snapshot given up yet" test "$(log_count n1 "$GIVEN_UP")" = 0

check "shape the replication stream to n2" slow_link on
check "n2's tandemd starts again" "$LABCTL" start-daemon n2
check "n2 receives a snapshot" eventually 20 field_is n2 \
	'.replication | .link == "snapshot" and .snapshot.done > 0' true
# 4 MiB more while it is sent: the WAL passes 2 MiB.
check "4 MiB more commit on n1 while the snapshot is sent" write_mib n1 6 4
check "n1 gives the snapshot up and logs why" eventually 20 given_up
"$LABCTL" logs n1 2>/dev/null | grep -F "$GIVEN_UP" | head -n 1 | sed 's/^/# /' >&2
check "the warning names the setting" log_has n1 "[replication] snapshot_wal = 2"
check "n2 shows why as its last error" eventually 10 field_like n2 .replication.last_error \
	'*snapshot given up*snapshot_wal*'
check "n2 is still syncing" field_is n2 .node.state syncing
check "n1 is still active" is n1 active

check "unshape the replication stream" slow_link off
check "n2 becomes a standby in sync" eventually 60 standby_in_sync n2
check "n2 holds the 160 rows" db_rows_are n2 "SELECT count(*) FROM blobs" 160
check "equal content hash and position after the snapshot" same_db
check "n1's write-ahead log is back under 64 MiB" test "$(wal_mib n1)" -le 64
check_serving n1
lab_done

#!/bin/bash
# repl-failover.sh - no acknowledged write is lost or doubled by a
# failover.  A writer on the active commits numbered rows in sync mode,
# one transaction each, while the active is lost: kill -9 of its tandemd,
# a crash of the node, its cable cut, ten times in a row, alternating.
# After each failover every row the writer saw acknowledged is on the new
# active exactly once, no row the writer never sent is there, and no row
# an earlier active had is gone.  The old active then comes back, resyncs,
# and both copies hash the same before the next round.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario repl-failover rf-

ROUNDS=10
MIN_ROWS=20 # rows acknowledged in a round before its event

lab_up --token 1000 --replication-mode sync
DIR=$TANDEM_LAB_DIR
# attempted: every number the writer sent, before it sends it; acked:
# every number tandemctl reported committed; seen: the rows on the
# active at the last check.
: >"$DIR/attempted"
: >"$DIR/acked"
: >"$DIR/seen"

# writer NODE FIRST - in the background, inside NODE: commit FIRST,
# FIRST+1, ... one row per transaction until the first failure.
writer()
{
	# shellcheck disable=SC2016 # expanded by the inner shell
	"$LABCTL" exec "$1" bash -c '
		dir=$1 n=$2
		while :; do
			echo "$n" >>"$dir/attempted"
			tandemctl db exec "INSERT INTO rows VALUES($n, datetime())" \
				>/dev/null || exit 0
			echo "$n" >>"$dir/acked"
			n=$((n + 1))
		done' writer "$DIR" "$2" </dev/null >/dev/null 2>>"$DIR/writer.log" &
	WRITER=$!
}

writer_gone()
{
	! kill -0 "$WRITER" 2>/dev/null
}

# acked_since FIRST - how many acknowledged numbers are >= FIRST.
acked_since()
{
	awk -v f="$1" '$1 >= f { c++ } END { print c + 0 }' "$DIR/acked"
}

# writer_at FIRST COUNT - COUNT rows from FIRST are acknowledged, or the
# writer stopped (the caller then checks the count).
writer_at()
{
	(($(acked_since "$1") >= $2)) || writer_gone
}

# rows_of NODE FILE - NODE's rows' numbers, sorted as text (for comm).
rows_of()
{
	tctl "$1" db query "SELECT n FROM rows" >"$2.raw" || return 1
	tail -n +2 "$2.raw" | LC_ALL=C sort >"$2"
}

sorted()
{
	LC_ALL=C sort "$@"
}

# none_in DESC FILE - FILE is empty, else show the first numbers in it.
none_in()
{
	[[ ! -s $2 ]] && return 0
	echo "# $1: $(head -n 10 "$2" | paste -sd' ') ($(wc -l <"$2") in all)" >&2
	return 1
}

# acked_once ROWS - every acknowledged number is in ROWS, and only once.
acked_once()
{
	comm -23 <(sorted -u "$DIR/acked") "$1" >"$DIR/missing"
	uniq -d "$1" >"$DIR/doubled"
	none_in "acknowledged rows missing" "$DIR/missing" &&
		none_in "rows present twice" "$DIR/doubled"
}

# only_sent ROWS - ROWS holds only numbers the writer sent.
only_sent()
{
	comm -13 <(sorted -u "$DIR/attempted") "$1" >"$DIR/phantom"
	none_in "rows the writer never sent" "$DIR/phantom"
}

# kept ROWS - every row of the previous check is still in ROWS.
kept()
{
	comm -23 "$DIR/seen" "$1" >"$DIR/lost"
	none_in "rows an earlier active had, now gone" "$DIR/lost"
}

# in_sync ACTIVE STANDBY - STANDBY is a standby in sync and ACTIVE streams
# to it with full redundancy.
in_sync()
{
	field_is "$2" .node.state standby &&
		field_is "$2" .replication.in_sync true &&
		field_is "$1" .replication.standby.state streaming &&
		field_is "$1" .redundancy ok
}

hash_of()
{
	tctl "$1" db hash --json | jq -r .hash
}

# same_hash A B - the content hashes of A's and B's copies are equal.
same_hash()
{
	local a b
	a=$(hash_of "$1") && b=$(hash_of "$2") || return 1
	[[ -n $a && $a == "$b" ]] || {
		echo "# hash of $1 '$a', of $2 '$b'" >&2
		return 1
	}
}

# powered_off NODE - neither corosync nor tandemd runs on NODE.
powered_off()
{
	! runs "$1" corosync && ! runs "$1" tandemd
}

check "n1 is active" test "$(active_now)" = n1
check "the table is created" tctl n1 db exec \
	"CREATE TABLE rows(n INTEGER PRIMARY KEY, at TEXT NOT NULL)"
check "n2 is a standby in sync" eventually 30 in_sync n1 n2

act=n1
next=1
for ((i = 0; i < ROUNDS; i++)); do
	r=$((i + 1))
	if [[ $act == n1 ]]; then other=n2; else other=n1; fi
	first=$next

	writer "$act" "$first"
	eventually 60 writer_at "$first" "$MIN_ROWS"
	check "round $r: the writer has $MIN_ROWS rows acknowledged by $act" \
		test "$(acked_since "$first")" -ge "$MIN_ROWS"

	case $((i % 3)) in
	0)
		what="kill -9 of tandemd on $act"
		"$LABCTL" kill "$act" tandemd KILL
		;;
	1)
		what="crash of $act"
		"$LABCTL" crash "$act"
		;;
	2)
		what="cut of $act's cable"
		"$LABCTL" cut "$act"
		;;
	esac
	echo "# round $r: $what"

	if eventually 20 is "$other" active; then
		ok "round $r ($what): $other becomes active"
	else
		fail "round $r ($what): $other becomes active"
		break
	fi
	check "round $r: the writer on $act stopped" eventually 30 writer_gone
	wait "$WRITER" 2>/dev/null
	echo "# round $r: the writer stopped on: $(tail -n 1 "$DIR/writer.log" 2>/dev/null)"
	check "round $r: $other alone is active and serving" eventually 10 serving "$other"

	if rows_of "$other" "$DIR/rows"; then
		ok "round $r: $other answers a query of all rows"
		check "round $r: every acknowledged row is on $other exactly once" \
			acked_once "$DIR/rows"
		check "round $r: $other has no row the writer never sent" \
			only_sent "$DIR/rows"
		check "round $r: no row an earlier active had is gone" kept "$DIR/rows"
		acked=$(acked_since "$first")
		# Committed on the old active (and replicated) without reaching the writer.
		unacked=$(comm -23 "$DIR/rows" <(sorted -u "$DIR/acked") |
			awk -v f="$first" '$1 >= f { c++ } END { print c + 0 }')
		echo "# round $r: $acked rows acknowledged, $unacked more committed without acknowledgement"
		cp "$DIR/rows" "$DIR/seen"
	else
		fail "round $r: $other answers a query of all rows"
	fi
	next=$(($(sort -n "$DIR/attempted" | tail -n 1) + 1))

	# The old active returns: it was fenced (powered off) before $other
	# took over; a cut cable is plugged back first.
	check "round $r: $act was powered off by the fence" eventually 15 powered_off "$act"
	if ((i % 3 == 2)); then
		"$LABCTL" heal "$act"
	fi
	check "round $r: $act powers on" "$LABCTL" start "$act"
	if eventually 60 in_sync "$other" "$act"; then
		ok "round $r: $act is back as a standby in sync"
	else
		# The next failover needs a standby in sync.
		fail "round $r: $act is back as a standby in sync"
		act=$other
		break
	fi
	check "round $r: both copies hash the same" same_hash "$other" "$act"
	archive=$(field "$act" .replication.archive)
	[[ $archive == null ]] || echo "# round $r: $act archived its old copy: $archive"

	act=$other
done

check_serving "$act"
lab_done

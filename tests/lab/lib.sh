# shellcheck shell=bash
# lib.sh - what every tandemd lab scenario shares: TAP output, waiting on
# conditions with deadlines, a lab of its own (netns prefix and lab dir
# named after the scenario), teardown from a trap even on failure, and the
# check every scenario ends with: exactly one node holds the VIP, it is
# the active one, and the client reaches it at that node's MAC address.
#
# Source it, then call lab_scenario NAME PREFIX; use LABCTL, tctl, state_of.

SRC=${TANDEM_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export TANDEM_BUILD=${TANDEM_BUILD_ROOT:-$SRC/build}
LABCTL=$SRC/tools/tandem-lab
VIP=192.0.2.50

passed=0
failed=0
n=0

ok()
{
	n=$((n + 1))
	passed=$((passed + 1))
	echo "ok $n - $1"
}

fail()
{
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	echo "FAIL: $1" >&2
}

# check DESC CMD... - CMD must succeed.  Its output goes to stderr: stdout is TAP.
check()
{
	local desc=$1
	shift
	if "$@" >&2; then ok "$desc"; else fail "$desc"; fi
}

# check_rc RC DESC CMD... - CMD must exit with RC.
check_rc()
{
	local want=$1 desc=$2 rc=0
	shift 2
	"$@" >/dev/null 2>&1 || rc=$?
	if ((rc == want)); then ok "$desc"; else fail "$desc (exit $rc, want $want)"; fi
}

# eventually SECONDS CMD... - retry CMD every 0.1 s until it succeeds.
eventually()
{
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	"$@"
}

# for_a_while SECONDS CMD... - CMD keeps succeeding for SECONDS (a "never" check).
for_a_while()
{
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" || return 1
		sleep 0.1
	done
}

tctl()
{
	local node=$1
	shift
	"$LABCTL" exec "$node" timeout 60 tandemctl "$@"
}

# state_of NODE - NODE's node.state, or "down" when tandemctl does not answer.
state_of()
{
	local s
	s=$(tctl "$1" status --json 2>/dev/null | jq -r '.node.state') || s=
	echo "${s:-down}"
}

# is NODE STATE - NODE reports STATE.
is()
{
	[[ $(state_of "$1") == "$2" ]]
}

# field NODE JQ - a field of NODE's status --json.
field()
{
	tctl "$1" status --json 2>/dev/null | jq -r "$2"
}

# field_is NODE JQ WANT
field_is()
{
	local got
	got=$(field "$1" "$2")
	[[ $got == "$3" ]] || {
		echo "# $1 $2: got '$got', want '$3'" >&2
		return 1
	}
}

# reach ADDR - the client reaches ADDR: a TCP connect to a closed port is
# refused (RST) by a live host and times out (no ARP answer) otherwise.
reach()
{
	local out
	out=$("$LABCTL" client timeout 2 bash -c "exec 3<>/dev/tcp/$1/9" 2>&1) &&
		return 0
	[[ $out == *"Connection refused"* ]]
}

# runs NODE PROCESS - PROCESS (corosync, tandemd) runs on NODE.  The nodes
# share the host's PID namespace, so this asks the lab, not pgrep.
runs()
{
	local line
	line=$("$LABCTL" status | awk -v n="$1" '$1 == n')
	[[ $line == *" $2="[0-9]* ]]
}

# is_down NODE - tandemctl gets no answer from NODE.
is_down()
{
	[[ $(state_of "$1") == down ]]
}

# field_like NODE JQ GLOB - a field of NODE's status matches GLOB.
field_like()
{
	local got
	got=$(field "$1" "$2")
	# shellcheck disable=SC2053 # a glob on purpose
	[[ $got == $3 ]] || {
		echo "# $1 $2: got '$got', want '$3'" >&2
		return 1
	}
}

holders()
{
	"$LABCTL" vip-holders | paste -sd' '
}

# serving NODE - NODE is active, the only VIP holder, and the client's
# packets to the VIP reach NODE's MAC address.
serving()
{
	local node=$1 h mac neigh
	h=$(holders)
	[[ $h == "$node" ]] || {
		echo "# VIP holders: '$h', want '$node'" >&2
		return 1
	}
	is "$node" active || {
		echo "# $node is $(state_of "$node"), want active" >&2
		return 1
	}
	reach "$VIP" || {
		echo "# the client gets no reply from $VIP" >&2
		return 1
	}
	mac=$("$LABCTL" exec "$node" cat /sys/class/net/eth0/address)
	neigh=$("$LABCTL" client ip neigh show "$VIP")
	[[ $neigh == *"lladdr $mac "* ]] || {
		echo "# the client's neighbour entry '$neigh' is not $node's $mac" >&2
		return 1
	}
}

# check_serving NODE - the closing assertion of every scenario.
check_serving()
{
	if eventually 10 serving "$1"; then
		ok "$1 alone holds the VIP and the client reaches it there"
	else
		fail "$1 alone holds the VIP and the client reaches it there"
	fi
}

# The replicated database, for the repl-* scenarios.

# standby_in_sync NODE - NODE is a standby holding every acknowledged write.
standby_in_sync()
{
	field_is "$1" .node.state standby && field_is "$1" .replication.in_sync true
}

# db_rows NODE SQL - the rows of a query on NODE's copy, without the header.
db_rows()
{
	local out
	out=$(tctl "$1" db query "$2") || return 1
	tail -n +2 <<<"$out"
}

# db_rows_are NODE SQL WANT - the query on NODE gives WANT.
db_rows_are()
{
	local got
	got=$(db_rows "$1" "$2") || return 1
	[[ $got == "$3" ]] || {
		echo "# $1: $2: got '$(paste -sd' ' <<<"$got")', want '$(paste -sd' ' <<<"$3")'" >&2
		return 1
	}
}

# db_hash NODE - "HASH at EPOCH:SEQ" of NODE's copy.
db_hash()
{
	tctl "$1" --json db hash | jq -er '"\(.hash) at \(.epoch):\(.seq)"'
}

# same_db - n1's and n2's copies hash the same at the same position.
same_db()
{
	local a b
	a=$(db_hash n1) || return 1
	b=$(db_hash n2) || return 1
	echo "# n1: $a, n2: $b" >&2
	[[ $a == "$b" ]]
}

# The default [replication] port: the active listens, the standby connects.
REPL_PORT=7405

# slow_link ON|OFF - shape the replication stream to n2 (at the switch)
# to 4 Mbit/s, so that a snapshot of a few MB takes seconds; corosync's
# packets pass unshaped.
slow_link()
{
	local tc=(ip netns exec "${TANDEM_LAB_PREFIX}sw" tc)
	if [[ $1 == on ]]; then
		"${tc[@]}" qdisc add dev n2-p root handle 1: htb default 10 &&
			"${tc[@]}" class add dev n2-p parent 1: classid 1:10 htb rate 10gbit \
				quantum 1514 &&
			"${tc[@]}" class add dev n2-p parent 1: classid 1:20 htb rate 4mbit \
				quantum 1514 &&
			"${tc[@]}" filter add dev n2-p parent 1: protocol ip u32 \
				match ip protocol 6 0xff match ip sport "$REPL_PORT" 0xffff flowid 1:20
	else
		"${tc[@]}" qdisc del dev n2-p root
	fi
}

# log_count NODE TEXT - how many lines of NODE's tandemd log have TEXT.
log_count()
{
	"$LABCTL" logs "$1" 2>/dev/null | grep -cF -- "$2"
}

# log_has NODE TEXT - NODE's tandemd log has a line with TEXT.
log_has()
{
	"$LABCTL" logs "$1" 2>/dev/null | grep -qF -- "$2"
}

lab_cleanup()
{
	local rc=$? f
	if ((rc != 0 || failed != 0)) && [[ -f $TANDEM_LAB_DIR/lab.env ]]; then
		echo "# lab state at failure:" >&2
		"$LABCTL" status >&2 || true
		for f in "$TANDEM_LAB_DIR"/n*/tandemd.log; do
			echo "# --- $f (without debug lines)" >&2
			grep -v ' debug ' "$f" | tail -n 40 >&2 || true
		done
	fi
	"$LABCTL" down >/dev/null 2>&1 || true
	rm -f "$TANDEM_LAB_DIR/fence-fail"
}

# lab_scenario NAME PREFIX - skip without root, or claim a lab of our own.
lab_scenario()
{
	if [[ $(id -u) != 0 ]] || ! command -v corosync >/dev/null || ! command -v jq >/dev/null; then
		echo "1..0 # SKIP needs root, corosync and jq"
		exit 77
	fi
	[[ -x $TANDEM_BUILD/agent/tandemd && -x $TANDEM_BUILD/tools/tandemctl ]] || {
		echo "Bail out! tandemd or tandemctl not built in $TANDEM_BUILD"
		exit 1
	}
	export TANDEM_LAB_DIR=/tmp/tandem-lab-$1
	export TANDEM_LAB_PREFIX=$2
	trap lab_cleanup EXIT
}

# lab_up ARGS... - bring the lab up, failing the scenario (bail out) if it cannot.
lab_up()
{
	"$LABCTL" up "$@" >/dev/null || {
		echo "Bail out! tandem-lab up $* failed"
		exit 1
	}
}

# active_now - the one active node, or fail the scenario.
active_now()
{
	"$LABCTL" wait-active 20
}

lab_done()
{
	echo "1..$n"
	((failed == 0))
}

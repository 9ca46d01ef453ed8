#!/bin/bash
# lab-smoke.sh - smoke test of the lab itself (tools/tandem-lab and
# tools/fence_tandemlab), without tandemd: corosync membership and IPC
# separation across the node namespaces, the switch (cut/heal), node power
# (crash/start, fence off/status/on), the fence agent's protocol, and a
# complete teardown. Needs root. Uses its own lab dir and netns prefix so it
# never touches a lab someone else has up.
set -euo pipefail

SRC=${TANDEM_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LABCTL=$SRC/tools/tandem-lab
FENCE=$SRC/tools/fence_tandemlab
export TANDEM_LAB_DIR=${TANDEM_SMOKE_LAB_DIR:-/tmp/tandem-lab-smoke}
export TANDEM_LAB_PREFIX=${TANDEM_SMOKE_PREFIX:-tls-}
P=$TANDEM_LAB_PREFIX
L=$TANDEM_LAB_DIR

if [[ $(id -u) != 0 ]] || ! command -v corosync >/dev/null; then
	echo "1..0 # SKIP needs root and corosync"
	exit 77
fi

# ok, fail, check, check_rc, eventually, reach: shared with the tandemd scenarios.
# shellcheck source=lib.sh
. "$SRC/tests/lab/lib.sh"

# output_is WANT CMD... - CMD succeeds and prints WANT (lines joined by spaces).
output_is()
{
	local want=$1 out
	local -a words
	shift
	out=$("$@") || return 1
	read -r -d '' -a words <<<"$out" || true
	out=${words[*]}
	[[ $out == "$want" ]] || {
		echo "# got '$out', want '$want'" >&2
		return 1
	}
}

# output_ends WANT CMD... - CMD succeeds and its output ends with WANT.
output_ends()
{
	local want=$1 out
	shift
	out=$("$@") || return 1
	[[ $out == *"$want" ]] || {
		echo "# got '$out', want '...$want'" >&2
		return 1
	}
}

# fails_with TEXT CMD... - CMD exits 1 with one line on stderr containing TEXT.
fails_with()
{
	local text=$1 err rc=0
	shift
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	if ((rc != 1)) || [[ $err != *"$text"* || $err == *$'\n'* ]]; then
		echo "# exit $rc, stderr '$err'" >&2
		return 1
	fi
}

cleanup()
{
	local rc=$?
	if ((rc != 0 || failed != 0)) && [[ -f $L/lab.env ]]; then
		echo "# lab state at failure:" >&2
		"$LABCTL" status >&2 || true
		tail -n 5 "$L"/n*/log/corosync.log >&2 || true
	fi
	"$LABCTL" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

node()
{
	"$LABCTL" exec "$@"
}

# membership NODE - NODE's corosync sees 2 members and is quorate.
membership()
{
	local out
	out=$(node "$1" corosync-quorumtool -s 2>/dev/null) || true
	[[ $out =~ Nodes:[[:space:]]+2 && $out =~ Quorate:[[:space:]]+Yes ]]
}

unreachable()
{
	! reach "$1"
}

fence()
{
	local action=$1 node=$2
	shift 2
	# extra KEY=VALUE lines as further arguments
	printf '%s\n' "action=$action" "nodename=$node" "lab_dir=$L" "$@" | "$FENCE"
}

no_carrier()
{
	[[ $(node "$1" ip -o link show dev eth0) == *NO-CARRIER* ]]
}

has_carrier()
{
	[[ $(node "$1" ip -o link show dev eth0) == *LOWER_UP* ]]
}

node_is_off()
{
	local link addrs
	link=$(node "$1" ip -o link show dev eth0)
	addrs=$(node "$1" ip -o addr show dev eth0)
	[[ $link != *"UP,"* && $link != *",UP>"* && -z $addrs ]] &&
		[[ $("$LABCTL" status) =~ $1\ +holder=[0-9]+\ corosync=stopped ]]
}

corosync_running()
{
	[[ $("$LABCTL" status) =~ $1\ +holder=[0-9]+\ corosync=[0-9] ]]
}

metadata_ok()
{
	local meta
	meta=$("$FENCE" -o metadata) || return 1
	[[ $meta == "<?xml"* && $meta == *"<resource-agent name=\"fence_tandemlab\""* &&
		$meta == *"<parameters>"* && $meta == *"<actions>"* &&
		$meta == *"</resource-agent>" ]] || return 1
	if command -v xmllint >/dev/null; then
		xmllint --noout - <<<"$meta" || return 1
	fi
}

no_netns()
{
	! ip netns list | grep -q "^$P"
}

# no_leftover - none of the lab processes seen before down is alive.
no_leftover()
{
	local pid st
	for pid in "${labpids[@]}"; do
		{ read -r st <"/proc/$pid/stat"; } 2>/dev/null || continue
		st=${st##*) }
		[[ ${st:0:1} == Z ]] && continue
		echo "# left: $pid $(cat "/proc/$pid/comm")" >&2
		return 1
	done
	return 0
}

# --- misuse -------------------------------------------------------------------
check_rc 2 "unknown command exits 2" "$LABCTL" frobnicate
check_rc 2 "up with an unknown option exits 2" "$LABCTL" up --bogus
check_rc 0 "down with nothing to remove exits 0" "$LABCTL" down

# --- up -----------------------------------------------------------------------
start=$EPOCHREALTIME
if ! "$LABCTL" up --no-daemon --token 1000; then
	fail "tandem-lab up --no-daemon"
	echo "$passed passed, $failed failed"
	exit 1
fi
ok "up --no-daemon ($(((${EPOCHREALTIME/./} - ${start/./}) / 1000)) ms)"

for nd in n1 n2; do
	check "$nd: corosync membership of 2, quorate" membership "$nd"
done
check "n1's corosync IPC is n1's (this_node_id 1)" output_ends "= 1" \
	node n1 corosync-cmapctl -g runtime.votequorum.this_node_id
check "n2's corosync IPC is n2's (this_node_id 2)" output_ends "= 2" \
	node n2 corosync-cmapctl -g runtime.votequorum.this_node_id
check "UTS: n1's hostname" output_is n1 node n1 hostname
check "UTS: n2's hostname" output_is n2 node n2 hostname
check "n1's /sys/class/net is its own" output_is "eth0 lo" node n1 ls /sys/class/net
check "n1's /etc/tandem/tandem.conf is the lab's" \
	node n1 grep -qx "lab_dir = $L" /etc/tandem/tandem.conf
check "n1's corosync.conf is the lab's" \
	node n1 grep -q "cluster_name: tandem-lab" /etc/corosync/corosync.conf

check "client reaches n1 (.11)" reach 192.0.2.11
check "client reaches n2 (.12)" reach 192.0.2.12
check "nobody holds the VIP" output_is "" "$LABCTL" vip-holders
node n1 ip addr add 192.0.2.50/24 dev eth0
check "vip-holders names n1 once it has .50" output_is n1 "$LABCTL" vip-holders
node n1 ip addr del 192.0.2.50/24 dev eth0

# --- switch ---------------------------------------------------------------------
"$LABCTL" cut n1
check "cut n1: n1's eth0 is NO-CARRIER" no_carrier n1
check "cut n1: client cannot reach .11" unreachable 192.0.2.11
check "cut n1: client still reaches .12" reach 192.0.2.12
"$LABCTL" heal n1
check "heal n1: carrier back" eventually 5 has_carrier n1
check "heal n1: client reaches .11 again" eventually 10 reach 192.0.2.11
check "heal n1: membership of 2 again" eventually 20 membership n1

# --- node processes -------------------------------------------------------------
kill_sleeper()
{
	"$LABCTL" kill n1 sleep TERM 2>/dev/null
}
"$LABCTL" exec n1 sleep 300 &
sleeper=$!
disown "$sleeper"
check "a command run in n1 is n1's process (kill n1 sleep TERM)" \
	eventually 5 kill_sleeper
check "kill of a missing process fails with a reason" fails_with "no process" \
	"$LABCTL" kill n1 nosuchproc

# --- fence agent ------------------------------------------------------------------
check_rc 0 "fence status n2 when on: 0" fence status n2
start=$EPOCHREALTIME
check_rc 0 "fence off n2: 0" fence off n2
off_us=$((${EPOCHREALTIME/./} - ${start/./}))
check_rc 2 "fence status n2 when off: 2" fence status n2
check "n2 is off (eth0 down, no address, corosync stopped)" \
	eventually 2 node_is_off n2
check "client cannot reach .12 after fence off" unreachable 192.0.2.12
check_rc 0 "fence off n2 again (idempotent): 0" fence off n2
check_rc 0 "fence on n2: 0" fence on n2
check_rc 0 "fence status n2 after on: 0" fence status n2
check "n2's corosync is back in the membership" eventually 20 membership n1
check_rc 0 "fence reboot n2 via -o/-n/--lab_dir: 0" \
	"$FENCE" -o reboot -n n2 "--lab_dir=$L"
check "membership of 2 after reboot" eventually 20 membership n2
check "fail=yes (options) makes off fail with a reason" fails_with "simulated failure" \
	"$FENCE" -o off -n n2 "--lab_dir=$L" --fail=yes
check "fail=yes (stdin) makes reboot fail with a reason" fails_with "simulated failure" \
	fence reboot n2 fail=yes
check_rc 0 "after a failed off n2 is still on" fence status n2
check "unknown action fails with a reason" fails_with "unknown action" fence dance n2
check "unknown node fails with a reason" fails_with "unknown node" fence off n9
check "missing lab_dir fails with a reason" fails_with "missing lab_dir" \
	"$FENCE" -o off -n n2
check_rc 0 "monitor: 0" "$FENCE" -o monitor "--lab_dir=$L"
check "list prints n1 and n2" output_is "n1 n2" "$FENCE" -o list --lab_dir "$L"
check "metadata is a fence_tandemlab resource-agent" metadata_ok

# --- crash / start ------------------------------------------------------------------
"$LABCTL" crash n1
check "crash n1: n1 off" node_is_off n1
"$LABCTL" start n1
check "start n1: corosync running" corosync_running n1
check "start n1: membership of 2" eventually 20 membership n2

# --- down -------------------------------------------------------------------------
# stray processes that down must also remove
"$LABCTL" client sleep 300 &
disown $!
"$LABCTL" exec n2 sleep 300 &
disown $!
sleep 0.5
labpids=()
for nd in n1 n2 client; do
	[[ $nd == client ]] || labpids+=("$(<"$L/$nd/holder.pid")")
	mapfile -t -O "${#labpids[@]}" labpids < <(ip netns pids "$P$nd")
done
check "the lab has processes to check" test "${#labpids[@]}" -ge 4
check_rc 0 "down" "$LABCTL" down
check "no ${P}* netns left" no_netns
check "no lab process left (holders, corosync, ...)" no_leftover
check "lab dir removed" test ! -e "$L"
check_rc 0 "down again exits 0" "$LABCTL" down

echo "# fence off took $((off_us / 1000)) ms (from this shell, pipe included)"
echo "$passed passed, $failed failed"
((failed == 0))

#!/bin/bash
# cold-start.sh - both nodes start together and the primary (n1) becomes
# active; status tells the contract's fields; a lone node after a cold
# start does not promote (wait_for_all) until an admin forces it, and the
# node that comes back later becomes standby.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario cold-start tcs-

lab_up --token 1000
a=$(active_now)
check "the primary n1 is active after a cold start (got '$a')" test "$a" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

# status --json, whole, against the golden files (the agent's path varies,
# and of the loop's steps only the types are fixed).
golden_status()
{
	local node=$1 want=$SRC/tests/golden/status/$2.json
	diff -u "$want" <(tctl "$node" status --json |
		jq -S '.fencing.agent |= (if . then split("/") | last else . end)
			| .replication.steps |= map_values(type)') >&2
}
check "n1's status --json is the golden active one" eventually 5 golden_status n1 active
check "n2's status --json is the golden standby one" eventually 5 golden_status n2 standby
check "n1 status: identity primary" field_is n1 .node.identity primary
check "n2 status: identity redundant" field_is n2 .node.identity redundant
check "n1 status: epoch 1" field_is n1 .replication.epoch 1
check "n2 adopted epoch 1" eventually 5 field_is n2 .node.epoch 1
check "n1's data is at epoch 1" field_is n1 .replication.epoch 1
check "n2 holds no frame yet: its data is at 0:0" \
	field_is n2 '"\(.replication.epoch):\(.replication.seq)"' 0:0
check "n1 status: quorate" field_is n1 .quorate true
check "n1 status: redundancy ok" eventually 5 field_is n1 .redundancy ok
check "n1 status: peer n2 is a standby member" \
	field_is n1 '[.peers[0].name, .peers[0].state, .peers[0].member] | join(" ")' "n2 standby true"
check "n2 status: VIP holder n1" field_is n2 .vip.holder n1
check "n1 status: fencing enabled with the lab agent" \
	field_is n1 '.fencing.enabled and (.fencing.agent | endswith("fence_tandemlab"))' true
check "the epoch is persisted on n1" \
	test "$("$LABCTL" exec n1 cat /var/lib/tandem/epoch)" = 1
check "text status names the node and its state" \
	eventually 3 bash -c '"$1" exec n1 tandemctl status | grep -q "active"' _ "$LABCTL"
check "one promotion logged with its epoch" log_has n1 "promoted to active (epoch 1)"

# The VIP removed from outside while n1 is active comes back at once.
"$LABCTL" exec n1 ip addr del "$VIP/24" dev eth0
check "n1 adds back a VIP removed from outside" eventually 5 log_has n1 "from outside; added it back"
check_serving n1

# The log level changes at run time.
check "log-level shows the configured level" \
	bash -c '[[ $("$1" exec n1 tandemctl log-level) == *info* ]]' _ "$LABCTL"
check "log-level debug is accepted" tctl n1 log-level debug
check "debug lines appear in the log" eventually 5 log_has n1 " debug "
check_rc 2 "an unknown log level is refused" tctl n1 log-level loud
check "log-level back to info" tctl n1 log-level info

# A lone node after a cold start: power both off, start n1 only.
"$LABCTL" crash n1
"$LABCTL" crash n2
"$LABCTL" start n1 >/dev/null
# Not knowing whether n2 went on writing, it is a standby out of sync.
check "a lone n1 stays standby while it has never seen n2 (wait_for_all)" \
	for_a_while 3 is n1 syncing
check "a lone n1 reports that it is not quorate" field_is n1 .quorate false
check_rc 1 "failover without --force is refused on a lone node" tctl n1 failover
check "the refusal says what to do" \
	bash -c '"$1" exec n1 tandemctl failover 2>&1 | grep -q -- "--force"' _ "$LABCTL"
check "failover --force promotes the lone node" tctl n1 failover --force
check "n1 is active after the forced failover" is n1 active
check_serving n1
"$LABCTL" start n2 >/dev/null
check "n2 returns as standby" eventually 20 is n2 standby
check "n1 stays active" is n1 active
check_serving n1
lab_done

#!/bin/bash
# switchover.sh - planned moves both ways, asked on the active and on the
# standby, with and without --to; refusals with reasons and exit codes.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario switchover tsw-

lab_up --token 1000
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

check "failover asked on the active moves the role to n2" tctl n1 failover
check "n2 is active when failover returns" is n2 active
check "n1 is standby" eventually 5 is n1 standby
check "no fencing in a switchover" bash -c '! "$1" logs n2 | grep -q "fencing n1"' _ "$LABCTL"
check "epoch rose to 2" field_is n2 .replication.epoch 2
check_serving n2

check "failover asked on the standby (n1) brings the role back" tctl n1 failover
check "n1 is active when failover returns" is n1 active
check_serving n1

check "failover --to n2 on n2 (the standby)" tctl n2 failover --to n2
check "n2 is active" is n2 active
check_serving n2
check "failover --to the active node is a no-op success" tctl n1 failover --to n2
check "--json failover names the active node" \
	bash -c '[[ $("$1" exec n2 tandemctl --json failover --to n2 | jq -r .active) == n2 ]]' _ "$LABCTL"

check_rc 2 "failover --to an unknown node: usage error" tctl n1 failover --to n3
check_rc 2 "an unknown option: usage error" tctl n1 failover --bogus
check_rc 2 "an unknown command: usage error" tctl n1 frobnicate

# With the standby's tandemd gone, a switchover is refused with the reason.
"$LABCTL" kill n1 tandemd TERM
check "n1's tandemd left" eventually 10 is_down n1
check_rc 1 "switchover to a peer that is not a member is refused" tctl n2 failover
check "the refusal names the reason" \
	bash -c '"$1" exec n2 tandemctl failover 2>&1 | grep -q "not a member"' _ "$LABCTL"
check "the refused switchover changed nothing" is n2 active
check_serving n2
lab_done

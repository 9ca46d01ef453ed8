#!/bin/bash
# failover-kill.sh - kill -9 of tandemd on the active: its corosync lives,
# so the standby fences it at once (its VIP may still be up), then
# promotes.  The old active comes back as standby: no preemption.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario failover-kill tfk-

lab_up --token 1000
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

"$LABCTL" kill n1 tandemd KILL
check "n2 becomes active" eventually 10 is n2 active
check "n2 fenced n1 before promoting" log_has n2 "fenced n1"
check "the fence agent powered n1 off (its corosync is gone)" \
	eventually 5 bash -c '! "$1" status | grep -q "^n1 .* corosync=[0-9]"' _ "$LABCTL"
check "n2's epoch is 2" field_is n2 .replication.epoch 2
check "n2 reports the peer fenced" field_is n2 '.peers[0].process' fenced
check "n2 reports redundancy degraded" field_is n2 .redundancy degraded
check_serving n2

check_rc 1 "start-daemon refuses a node that is powered off" "$LABCTL" start-daemon n1
"$LABCTL" start n1 >/dev/null
check "n1 returns as standby" eventually 20 is n1 standby
check "n2 stays active (no preemption)" for_a_while 2 is n2 active
check "redundancy is ok again" eventually 5 field_is n2 .redundancy ok
check_serving n2
lab_done

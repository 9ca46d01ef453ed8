#!/bin/bash
# failover-crash.sh - the whole active node loses power: the standby sees
# its node leave corosync, waits the fence delay (a split is possible),
# fences, promotes.  The old active returns as standby, and when the new
# active crashes in turn the role comes back with a higher epoch.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario failover-crash tfc-

lab_up --token 1000
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

"$LABCTL" crash n1
check "n2 becomes active" eventually 15 is n2 active
check "n2 waited the fence delay, as a standby in a possible split" \
	log_has n2 "fencing it in 50 ms"
check "n2 fenced n1 before promoting" log_has n2 "fenced n1"
check_serving n2

"$LABCTL" start n1 >/dev/null
check "n1 returns as standby" eventually 20 is n1 standby
check "n2 stays active (no preemption)" for_a_while 2 is n2 active
check_serving n2

# And back: crash n2, n1 takes over with epoch 3.
"$LABCTL" crash n2
check "n1 becomes active again" eventually 15 is n1 active
check "n1's epoch is 3" field_is n1 .replication.epoch 3
check_serving n1
lab_done

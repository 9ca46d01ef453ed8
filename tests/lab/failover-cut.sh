#!/bin/bash
# failover-cut.sh - the active's cable is cut at the switch: it loses
# carrier and gives the VIP up at once; the standby sees the node leave,
# fences it after the delay and promotes.  The cut node never fences the
# serving one (a node without carrier must not kill the node that can serve).
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario failover-cut tfx-

lab_up --token 1000
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

"$LABCTL" cut n1
check "n1 drops the VIP when it loses carrier" \
	eventually 5 bash -c '! "$1" vip-holders | grep -qx n1' _ "$LABCTL"
check "n2 becomes active" eventually 15 is n2 active
check "n2 fenced n1" eventually 5 log_has n2 "fenced n1"
check "n1 never tried to fence n2" bash -c '! "$1" logs n1 | grep -q "fencing n2"' _ "$LABCTL"
check_serving n2

"$LABCTL" heal n1
"$LABCTL" start n1 >/dev/null
check "n1 returns as standby" eventually 20 is n1 standby
check "n2 stays active" for_a_while 2 is n2 active
check_serving n2
lab_done

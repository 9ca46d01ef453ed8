#!/bin/bash
# hung.sh - tandemd on the active is frozen (SIGSTOP): corosync cannot
# tell, but the heartbeat stops; after heartbeat_timeout the standby
# fences the active and promotes.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario hung thg-

lab_up --token 1000
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

"$LABCTL" kill n1 tandemd STOP
check "n2 becomes active" eventually 10 is n2 active
check "n2 saw n1 as hung" log_has n2 "treating it as hung"
check "n2 fenced n1" log_has n2 "fenced n1"
check_serving n2

"$LABCTL" start n1 >/dev/null
check "n1 returns as standby" eventually 20 is n1 standby
check_serving n2
lab_done

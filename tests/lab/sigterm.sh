#!/bin/bash
# sigterm.sh - SIGTERM on the active hands over to the healthy standby
# without fencing (it left cleanly); SIGTERM on the standby just leaves.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario sigterm tst-

lab_up --token 1000
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

"$LABCTL" kill n1 tandemd TERM
check "n2 becomes active" eventually 10 is n2 active
check "n1's tandemd exited" eventually 10 is_down n1
check "n1's corosync still runs: nobody fenced it" runs n1 corosync
check "n2 did not fence" bash -c '! "$1" logs n2 | grep -q "fencing n1"' _ "$LABCTL"
check "n2 logged the handover" log_has n2 "handover from peer"
check "n2 reports the peer left" field_is n2 '.peers[0].process' left
check_serving n2

check_rc 1 "start-daemon refuses a node whose tandemd already runs" \
	"$LABCTL" start-daemon n2
"$LABCTL" start-daemon n1 >/dev/null
check "n1 returns as standby" eventually 20 is n1 standby
check_serving n2

"$LABCTL" kill n1 tandemd TERM
check "the standby's tandemd exits on SIGTERM" eventually 10 is_down n1
check "n2 stays active, nobody fenced" for_a_while 2 is n2 active
check "n2 did not fence after the standby left" bash -c '! "$1" logs n2 | grep -q "fencing n1"' _ "$LABCTL"
check_serving n2
lab_done

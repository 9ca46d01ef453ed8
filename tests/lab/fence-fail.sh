#!/bin/bash
# fence-fail.sh - the fence agent fails: the standby does not promote,
# says why in status and the log, and retries; once fencing works again it
# fences and promotes.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario fence-fail tff-

lab_up --token 1000 --set fence.retry_interval=1s --set fence.retries=0
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check_serving n1

touch "$TANDEM_LAB_DIR/fence-fail"
"$LABCTL" kill n1 tandemd KILL
check "n2 reports the failed fence" eventually 10 field_is n2 .fencing.state failed
check "n2 stays standby while fencing fails" for_a_while 3 is n2 standby
check "status gives the agent's reason" \
	field_like n2 .fencing.last_error '*simulated failure*'
check "status warns in text" \
	bash -c '"$1" exec n2 tandemctl status | grep -q "WARNING: fencing n1 failed"' _ "$LABCTL"
check "the log says it stays standby and retries" log_has n2 "stays standby; retrying"
check "n1's VIP expires by itself within its 6 s lifetime (no peer needed)" \
	eventually 10 bash -c '! "$1" vip-holders | grep -qx n1' _ "$LABCTL"
check "n2 retried" bash -c '(( $("$1" logs n2 | grep -c "fencing n1 failed") >= 2 ))' _ "$LABCTL"

rm -f "$TANDEM_LAB_DIR/fence-fail"
check "n2 promotes once fencing succeeds" eventually 10 is n2 active
check "n2's warning is gone" eventually 3 field_is n2 .fencing.last_error null
check_serving n2
lab_done

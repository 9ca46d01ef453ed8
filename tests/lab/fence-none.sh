#!/bin/bash
# fence-none.sh - "agent = none" is allowed only explicitly, and then
# status and the log say loudly that a split brain is possible; a lost
# active is replaced without fencing.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario fence-none tfn-

lab_up --token 1000 --fence none
check "n1 is active" test "$(active_now)" = n1
check "n2 is standby" eventually 10 is n2 standby
check "status: fencing disabled" field_is n1 .fencing.enabled false
check "status --json warns of split brain" \
	field_like n1 '.warnings | join(" ")' '*split brain*'
check "text status warns of split brain" \
	bash -c '"$1" exec n2 tandemctl status | grep -q "^WARNING: .*split brain"' _ "$LABCTL"
check "the log warns at start" log_has n1 "fencing is DISABLED"
check_serving n1

"$LABCTL" kill n1 tandemd KILL
check "n2 takes over without fencing" eventually 10 is n2 active
check "n2 logged no fencing" bash -c '! "$1" logs n2 | grep -q "fencing n1"' _ "$LABCTL"
check "n1's VIP expires by itself within its lifetime" \
	eventually 10 bash -c '! "$1" vip-holders | grep -qx n1' _ "$LABCTL"
check_serving n2
lab_done

#!/bin/bash
# bad-config.sh - a wrong tandem.conf: one line naming the key, exit 1, and
# tandemd does not start or touch anything (a stale VIP stays, no socket).
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario bad-config tbc-

ns=${TANDEM_LAB_PREFIX}node
tmp=$(mktemp -d)
bad_cleanup()
{
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
	lab_cleanup
}
trap bad_cleanup EXIT
{
	ip netns add "$ns" &&
		ip -n "$ns" link add eth0 type veth peer name eth1 &&
		ip -n "$ns" link set eth0 up &&
		ip -n "$ns" addr add 192.0.2.50/24 dev eth0
} || {
	echo "Bail out! cannot set up the network namespace $ns"
	exit 1
}

{
	"$SRC/tools/tandem-certs" ca "$tmp/tls" --cluster bad-config &&
		"$SRC/tools/tandem-certs" node "$tmp/tls" --ca "$tmp/tls" --name n1
} >/dev/null || {
	echo "Bail out! cannot make certificates with tandem-certs"
	exit 1
}

good()
{
	cat <<-EOF2
		[tandem]
		state_dir = $tmp/state
		[vip]
		address = 192.0.2.50/24
		interface = eth0
		[fence]
		agent = none
		[replication]
		ca = $tmp/tls/ca.crt
		cert = $tmp/tls/n1.crt
		key = $tmp/tls/n1.key
	EOF2
}

# bad NAME KEYTEXT SED - apply SED to the good config; tandemd must refuse it.
bad()
{
	local name=$1 key=$2 expr=$3 err rc=0
	good | sed "$expr" >"$tmp/$name.conf"
	err=$(ip netns exec "$ns" timeout 10 "$TANDEM_BUILD/agent/tandemd" -f -c "$tmp/$name.conf" 2>&1 >/dev/null) || rc=$?
	if ((rc == 1)) && [[ $err == *"$key"* && $err != *$'\n'* ]]; then
		ok "$name: exit 1, one line naming $key"
	else
		fail "$name: exit $rc, stderr '$err'"
	fi
}

bad lifetime "lifetime" '/interface/a lifetime = 1s'
bad address "address" 's|192.0.2.50/24|192.0.2.500/24|'
bad duration "heartbeat_interval" '/state_dir/a heartbeat_interval = 100'
bad unknown-key "colour" '/state_dir/a colour = blue'
bad no-fence "agent" '/agent = none/d'
bad log-level "log_level" '/state_dir/a log_level = loud'
check_rc 1 "a missing config file is refused" \
	ip netns exec "$ns" "$TANDEM_BUILD/agent/tandemd" -f -c "$tmp/nonexistent.conf"
check_rc 2 "an unknown option is refused" "$TANDEM_BUILD/agent/tandemd" --bogus
check "the stale VIP is untouched: nothing started" \
	bash -c 'ip -n "$1" -o addr show dev eth0 | grep -q " 192.0.2.50/"' _ "$ns"
check "no state dir was created" test ! -e "$tmp/state"

good >"$tmp/good.conf"
check "tandemd -t accepts the good config and prints it in full" \
	bash -c '"$1" -t -c "$2" | grep -q "^announce_count = "' _ "$TANDEM_BUILD/agent/tandemd" "$tmp/good.conf"

# A valid file that names something missing on this node: tandemd stops at
# start with the reason, before it serves or joins anything.
# fails_start NAME TEXT SED - tandemd exits 1 and its log names TEXT.
fails_start()
{
	local name=$1 text=$2 expr=$3 err rc=0
	good | sed "$expr" >"$tmp/$name.conf"
	err=$(ip netns exec "$ns" timeout 10 "$TANDEM_BUILD/agent/tandemd" -f -c "$tmp/$name.conf" 2>&1 >/dev/null) || rc=$?
	if ((rc == 1)) && [[ $err == *"$text"* ]]; then
		ok "$name: exit 1 at start, saying '$text'"
	else
		fail "$name: exit $rc, log '$err'"
	fi
}

fails_start no-interface "[vip] 192.0.2.50/24 on eth9: no such interface" 's/interface = eth0/interface = eth9/'
fails_start no-agent "[fence] agent: '/nonexistent/fence_x' not found" 's|agent = none|agent = /nonexistent/fence_x|'
check "a missing fence agent stops tandemd before its state dir is made" test ! -e "$tmp/state"
fails_start no-cert "[replication] cert: cannot read /nonexistent/n1.crt: No such file or directory (make the files with tandem-certs)" \
	's|cert = .*|cert = /nonexistent/n1.crt|'
check "a missing certificate stops tandemd before its state dir is made" test ! -e "$tmp/state"
mkdir -p "$tmp/state"
echo garbage >"$tmp/state/epoch"
fails_start bad-epoch "epoch: Bad message (fix or remove it)" ''
check "the corrupt epoch file is left as it was" \
	bash -c '[[ $(cat "$1") == garbage ]]' _ "$tmp/state/epoch"
lab_done

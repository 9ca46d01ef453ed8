#!/bin/bash
# tandemctl-db.sh TANDEMCTL - tandemctl db's command line, without tandemd.
#
# Every bad command line exits 2 with one line on stderr and nothing on
# stdout; a good one with no tandemd to answer exits 3 with one line.  The
# service name points at nobody, so a real tandemd on this machine is
# never asked.
set -euo pipefail

ctl=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TANDEM_CTL_SERVICE="tandem-test-nobody-$$"
failed=0

# expect CODE STDERR-LINE ARGS...: exit CODE, exactly that one line on stderr.
expect() {
	local code=$1 want=$2 rc=0
	shift 2
	"$ctl" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	if [[ $rc != "$code" || -s $tmp/out || $(cat "$tmp/err") != "$want" ||
		$(wc -l <"$tmp/err") != 1 ]]; then
		echo "tandemctl $*: want exit $code and '$want', got exit $rc:" >&2
		cat "$tmp/out" "$tmp/err" >&2
		failed=1
	fi
}

see="; see 'tandemctl db --help'"
expect 2 "tandemctl: db needs a subcommand: exec, query or hash$see" db
expect 2 "tandemctl: unknown db subcommand 'select'$see" db select 1
expect 2 "tandemctl: db exec needs SQL$see" db exec
expect 2 "tandemctl: db query needs SQL$see" db query
expect 2 "tandemctl: the SQL is empty$see" db exec ""
expect 2 "tandemctl: db query runs one statement; unexpected argument 'SELECT 2'$see" \
	db query "SELECT 1" "SELECT 2"
expect 2 "tandemctl: unexpected argument 'x'$see" db hash x
expect 2 "tandemctl: unknown option '--force'$see" db exec --force "DELETE FROM t"
expect 2 "tandemctl: the SQL is not valid UTF-8$see" db exec $'SELECT \xff'
expect 2 "tandemctl: the SQL is not valid UTF-8$see" db query $'SELECT \xff'
for args in "db exec SELECT\ 1" "db query SELECT\ 1" "db hash"; do
	eval "set -- $args"
	expect 3 "tandemctl: tandemd is not running on this node (connect: Connection refused)" "$@"
done

# --json: the error document on stdout as well.
rc=0
"$ctl" --json db hash >"$tmp/out" 2>"$tmp/err" || rc=$?
if [[ $rc != 3 ]] || ! grep -q '^  "exit": 3$' "$tmp/out"; then
	echo "tandemctl --json db hash: want exit 3 and an error document, got $rc:" >&2
	cat "$tmp/out" "$tmp/err" >&2
	failed=1
fi

# Help goes to stdout and succeeds.
"$ctl" db --help >"$tmp/out"
grep -q '^Usage: tandemctl \[--json\] db exec SQL \[SQL...\]$' "$tmp/out" || {
	echo "tandemctl db --help: no usage line" >&2
	cat "$tmp/out" >&2
	failed=1
}
exit $failed

#!/bin/bash
# config-test.sh DRIVER DIR NAME - golden test of one tandem.conf.
#
# Runs DRIVER (config-print) on DIR/NAME.conf from inside DIR, so an error
# names the file without its folder, and diffs against DIR/NAME.ok: the
# printed config for a good file, the one-line error for a bad-*.conf.
# A good file's output must also load and print back unchanged.
set -euo pipefail

driver=$1 dir=$2 name=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$dir"

rc=0
"$driver" "$name.conf" >"$tmp/out" 2>"$tmp/err" || rc=$?
case $name in
bad-*)
	if [[ $rc != 1 || -s $tmp/out ]]; then
		echo "$name.conf: expected exit 1 and no output, got exit $rc" >&2
		cat "$tmp/out" "$tmp/err" >&2
		exit 1
	fi
	diff -u "$name.ok" "$tmp/err"
	;;
*)
	if [[ $rc != 0 || -s $tmp/err ]]; then
		echo "$name.conf: expected exit 0 and no error, got exit $rc" >&2
		cat "$tmp/err" >&2
		exit 1
	fi
	diff -u "$name.ok" "$tmp/out"
	cp "$tmp/out" "$tmp/again.conf"
	"$driver" "$tmp/again.conf" >"$tmp/again"
	diff -u "$tmp/out" "$tmp/again"
	;;
esac

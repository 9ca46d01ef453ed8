#!/bin/bash
# repl-certs.sh - a peer with a foreign certificate is refused and nothing
# is applied.  n2 comes back with a certificate of another CA of the same
# cluster name (and trusts both CAs, so that the refusal is n1's): n1
# refuses it in one log line naming the reason, has no linked standby,
# and keeps serving writes alone; n2 stays syncing and applies none of
# them.  The same when n2 trusts only the foreign CA (it refuses n1).
# Certificates presented by hand show n1's other checks: another
# cluster's CA, the right CA but another cluster (O=), another node (CN=).
# With its own certificate back, n2 resyncs to the same content.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_scenario repl-certs rc-

CERTS=$SRC/tools/tandem-certs
LAB=$TANDEM_LAB_DIR
CONF=$LAB/n2/etc-tandem/tandem.conf
N1=192.0.2.11
N2=192.0.2.12

# log_line NODE START REST - a line of NODE's log has START and REST (the
# peer's address is logged as ADDR:PORT, between the two).
log_line()
{
	"$LABCTL" logs "$1" 2>/dev/null | grep -F -- "$3" | grep -qF -- "$2"
}

# log_once NODE TEXT - exactly one line of NODE's log has TEXT.
log_once()
{
	local c
	c=$(log_count "$1" "$2")
	[[ $c == 1 ]] || {
		echo "# $1's log has $c lines with '$2', want 1" >&2
		return 1
	}
}

# write FIRST LAST - insert rows FIRST..LAST on n1, one transaction, and
# wait at most 20 s for the answer.
write()
{
	"$LABCTL" exec n1 timeout 20 tandemctl db exec "INSERT INTO kv SELECT x, 'row-' || x
		FROM (WITH RECURSIVE c(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM c
		WHERE x < $2) SELECT x FROM c)" >&2
}

# n2_uses CA CERT KEY - n2's [replication] files (its tandemd is stopped).
n2_uses()
{
	sed -i -e "s|^ca = .*|ca = $1|" -e "s|^cert = .*|cert = $2|" \
		-e "s|^key = .*|key = $3|" "$CONF" &&
		grep -qx "cert = $2" "$CONF"
}

stop_n2()
{
	"$LABCTL" kill n2 tandemd TERM &&
		eventually 10 is_down n2 &&
		eventually 10 field_is n1 .replication.alone true
}

# present CERT KEY - connect from n2's address to n1's replication port
# with CERT, as a peer would (n2's tandemd is stopped).
present()
{
	"$LABCTL" exec n2 timeout 10 openssl s_client -connect "$N1:$REPL_PORT" \
		-cert "$1" -key "$2" -CAfile "$LAB/tls/ca.crt" -tls1_3 </dev/null >/dev/null 2>&1
	return 0
}

# refused_by_n1 - n1 names no standby, redundancy is not ok.
refused_by_n1()
{
	field_is n1 .replication.standby.name null &&
		field_is n1 .replication.standby.state none &&
		field_is n1 .redundancy degraded
}

lab_up --token 1000 --set replication.timeout=2s
check "n1 is active" test "$(active_now)" = n1
check "n2 is a standby in sync" eventually 10 standby_in_sync n2
check "create table kv" tctl n1 db exec "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)"
check "write row 1" write 1 1
check "n2 has row 1" db_rows_are n2 "SELECT count(*) FROM kv" 1

# Another CA of the same cluster name; n2's trust file holds both CAs.
F=$LAB/foreign
check "make a foreign CA" "$CERTS" ca "$F" --cluster tandem-lab
check "and a certificate for n2 from it" \
	"$CERTS" node "$F" --ca "$F" --name n2 --addr "$N2"
cat "$LAB/tls/ca.crt" "$F/ca.crt" >"$F/both.crt"

check "n2's tandemd stops" stop_n2
check "n2 gets the foreign certificate" n2_uses "$F/both.crt" "$F/n2.crt" "$F/n2.key"
check "n2's tandemd starts with it" "$LABCTL" start-daemon n2
check "n1 refuses n2's certificate and says why" eventually 10 log_line n1 \
	"connection from $N2:" "refused: peer certificate not signed by the cluster CA"
check "writes go on while n2 is refused (rows 2..11)" write 2 11
check "n1 has no linked standby, redundancy degraded" refused_by_n1
check "n1 acknowledges alone" field_is n1 .replication.alone true
check "n2 stays syncing" for_a_while 3 is n2 syncing
check "n2 is not in sync" field_is n2 .replication.in_sync false
check "n2 knows it was refused" field_like n2 .replication.last_error "*refused*"
check "more writes (rows 12..21)" write 12 21
check "n1 logged the refusal once, though n2 retries" \
	log_once n1 "refused: peer certificate not signed by the cluster CA"
check "n1 has the 21 rows" db_rows_are n1 "SELECT count(*) FROM kv" 21
check "n2 applied none of them" db_rows_are n2 "SELECT count(*) FROM kv" 1
check "n1 is still active" is n1 active

# n2 trusts only the foreign CA: it refuses n1.
check "n2's tandemd stops" stop_n2
check "n2 trusts only the foreign CA" n2_uses "$F/ca.crt" "$F/n2.crt" "$F/n2.key"
check "n2's tandemd starts with it" "$LABCTL" start-daemon n2
check "n2 refuses n1's certificate and says why" eventually 10 log_line n2 \
	"connection to $N1:" "refused: peer certificate not signed by the cluster CA"
check "writes go on (rows 22..31)" write 22 31
check "n1 has no linked standby" refused_by_n1
check "n2 stays syncing" for_a_while 3 is n2 syncing
check "n2 applied nothing" db_rows_are n2 "SELECT count(*) FROM kv" 1

# n1's checks against certificates presented by hand.
check "n2's tandemd stops" stop_n2
O=$LAB/other
check "make the CA of another cluster" "$CERTS" ca "$O" --cluster other-cluster
check "and a certificate for n2 from it" \
	"$CERTS" node "$O" --ca "$O" --name n2 --addr "$N2"
present "$O/n2.crt" "$O/n2.key"
check "n1 refuses another cluster's CA" eventually 5 log_line n1 \
	"connection from $N2:" "refused: peer certificate not signed by the cluster CA"
# The lab's CA, but O=other-cluster (tandem-certs takes O= from the CA).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$O/wrong-o.key" -subj "/O=other-cluster/CN=n2" -out "$O/wrong-o.csr" 2>/dev/null
printf 'extendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = DNS:n2, IP:%s\n' "$N2" \
	>"$O/ext.cnf"
check "sign n2's O=other-cluster certificate with the lab's CA" \
	openssl x509 -req -in "$O/wrong-o.csr" -CA "$LAB/tls/ca.crt" -CAkey "$LAB/tls/ca.key" \
	-CAcreateserial -days 1 -extfile "$O/ext.cnf" -out "$O/wrong-o.crt"
present "$O/wrong-o.crt" "$O/wrong-o.key"
check "n1 refuses a certificate from another cluster (O=)" eventually 5 log_line n1 \
	"connection from $N2:" "refused: peer certificate from cluster 'other-cluster', expected 'tandem-lab'"
check "a certificate of the lab's CA for n3" \
	"$CERTS" node "$LAB/n3cert" --ca "$LAB/tls" --name n3 --addr "$N2"
present "$LAB/n3cert/n3.crt" "$LAB/n3cert/n3.key"
check "n1 refuses another node's certificate (CN=)" eventually 5 log_line n1 \
	"connection from $N2:" "refused: peer is 'n3', expected 'n2'"
check "n1 is still active" is n1 active

# n2's own certificate again: it resyncs.
check "n2 gets its own certificate back" \
	n2_uses "$LAB/tls/ca.crt" "$LAB/tls/n2.crt" "$LAB/tls/n2.key"
check "n2's tandemd starts" "$LABCTL" start-daemon n2
check "n2 becomes a standby in sync" eventually 30 standby_in_sync n2
check "n2 has the 31 rows" db_rows_are n2 "SELECT count(*) FROM kv" 31
check "equal content hash and position" same_db
check "redundancy is ok" eventually 5 field_is n1 .redundancy ok
check_serving n1
lab_done

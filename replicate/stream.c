/*
 * stream: TLS 1.3 byte streams between the two nodes, on the caller's
 * qb_loop.  It owns the sockets, the OpenSSL objects and their error queue:
 * every OpenSSL failure is drained here into one -errno and one line of
 * text (STYLE: foreign error codes are converted in the file that owns the
 * library), and nothing is logged above debug (stream does not log).
 *
 * Trust (issue 3: a peer whose certificate the cluster CA did not sign, or
 * from another cluster, is refused).  Both sides present a certificate and
 * verify the other's: it must chain to the CA in ca_file, its O= must be
 * the cluster name and, when a peer is expected, its CN= must be that
 * node's name.  The checks run inside OpenSSL's verification callback, so a
 * refusal aborts the handshake with an alert and the peer learns of it too.
 *
 * TLS 1.3 lets the client finish its handshake before the server has
 * looked at the client's certificate.  So that CONNECTED means "both sides
 * accepted each other" on the connecting side as well, the client waits for
 * the server's first NewSessionTicket, which OpenSSL sends only after it
 * has verified the client.  The ticket is not kept and no session is ever
 * resumed (a resumed session would skip the certificate checks): clients
 * never offer one, the server has no session store, and a resumed session
 * is refused anyway.
 *
 * Loop rules (STYLE, DESIGN "Nothing blocks the loop"): non-blocking
 * close-on-exec sockets; POLLOUT is switched on with qb_loop_poll_mod()
 * only while the handshake, the output queue or OpenSSL wants to write;
 * one callback step reads at most READ_ROUNDS * IN_CHUNK bytes and writes
 * at most WRITE_BUDGET bytes.  Bytes OpenSSL has decrypted but not handed
 * over are not seen by poll(), so a step that stops early schedules the
 * next one with a zero timer.  Events are delivered only from the loop,
 * never from inside a call the user made, and CLOSED always comes from a
 * later loop turn than the failure, after any DATA read before it.
 */
#define _GNU_SOURCE
#include "stream.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <qb/qbloop.h>

#define IN_CHUNK (64u << 10)    /* bytes of one DATA event at most */
#define READ_ROUNDS 4           /* full chunks read per callback step */
#define READ_AHEAD (64u << 10)  /* bytes OpenSSL asks of one read() */
#define WRITE_CHUNK (64u << 10) /* bytes given to one SSL_write_ex() */
#define WRITE_BUDGET (1u << 20) /* bytes written per callback step */
#define QUEUE_KEEP (1u << 20)   /* an empty queue larger than this is freed */
#define ACCEPT_BATCH 16         /* connections accepted per callback step */
#define ACCEPT_PAUSE_MS 100     /* listener rest after EMFILE and the like */
#define REASON_MAX 256
#define DEFAULT_HANDSHAKE_MS 10000u

struct stream_tls {
	SSL_CTX *ctx;
	char cluster[STREAM_NAME_MAX + 1];
	char name[STREAM_NAME_MAX + 1];
	unsigned int handshake_ms;
};

struct stream_listener {
	qb_loop_t *loop;
	struct stream_tls *tls;
	int fd;
	bool polling;
	uint16_t port;
	bool has_expected;
	char expected[STREAM_NAME_MAX + 1];
	stream_event_fn on_event;
	void *data;
	bool pause_on;
	qb_loop_timer_handle pause_timer;
};

enum stream_state {
	STREAM_TCP_CONNECTING, /* client: connect() in progress */
	STREAM_HANDSHAKE,      /* TLS handshake in progress */
	STREAM_CONFIRMING,     /* client: handshake done, waiting for the server's ticket */
	STREAM_OPEN,           /* CONNECTED was delivered */
	STREAM_CLOSING,        /* stream_close(): flushing, then close_notify */
	STREAM_CLOSED,         /* socket closed; CLOSED delivered or owed */
};

struct stream {
	qb_loop_t *loop;
	struct stream_tls *tls;
	SSL *ssl;
	int fd;
	bool polling;
	int events;
	enum stream_state state;
	bool server;

	/* What OpenSSL waits for, beyond the obvious. */
	bool handshake_wants_write;
	bool read_wants_write;
	bool write_wants_read;
	bool shutdown_wants_write;

	bool confirmed;    /* client: the server's ticket arrived */
	bool peer_checked; /* the verification callback accepted the peer's certificate */
	bool opened;       /* CONNECTED was delivered */
	bool drained_owed; /* bytes were queued: DRAINED when the queue empties */
	bool read_owed;    /* OpenSSL holds decrypted bytes: read on the next turn */
	bool close_owed;   /* CLOSED not yet delivered */

	bool has_expected;
	char expected[STREAM_NAME_MAX + 1];
	char peer[STREAM_NAME_MAX + 1];
	char address[INET6_ADDRSTRLEN + 16];
	char verify_reason[REASON_MAX];
	int close_error;
	char close_reason[REASON_MAX];

	bool handshake_timer_on;
	qb_loop_timer_handle handshake_timer;
	bool kick_on;
	qb_loop_timer_handle kick_timer;

	unsigned char *out; /* queued bytes are out[out_head .. out_head + out_len) */
	size_t out_head, out_len, out_cap;
	unsigned char *in;

	stream_event_fn on_event;
	void *data;

	/* Loop callbacks of s under way; stream_free() inside one only marks s. */
	unsigned int depth;
	bool freed;
};

static void stream_step(struct stream *s, int revents);
static int32_t stream_dispatch(int32_t fd, int32_t revents, void *data);
static bool stream_read(struct stream *s);

/* ---- small helpers ---- */

static bool
name_ok(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strlen(name);
	if (n == 0 || n > STREAM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] >= 0x7f)
			return false;
	return true;
}

/* Copies src into dst for a reason string: non-printable bytes become '?'. */
static void
copy_printable(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i] != '\0'; i++)
		dst[i] = (src[i] >= ' ' && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

/*
 * Reads the single entry of nid from a certificate name as UTF-8 into buf.
 * Returns 0, -ENOENT if absent, -EEXIST if present more than once, -EINVAL
 * if it does not fit or holds a NUL.
 */
static int
name_field(const X509_NAME *name, int nid, char *buf, size_t len)
{
	const X509_NAME_ENTRY *entry;
	unsigned char *utf8 = NULL;
	int i, n;

	i = X509_NAME_get_index_by_NID(name, nid, -1);
	if (i < 0)
		return -ENOENT;
	if (X509_NAME_get_index_by_NID(name, nid, i) >= 0)
		return -EEXIST;
	entry = X509_NAME_get_entry(name, i);
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= len || memchr(utf8, '\0', (size_t)n) != NULL) {
		OPENSSL_free(utf8);
		return -EINVAL;
	}
	memcpy(buf, utf8, (size_t)n);
	buf[n] = '\0';
	OPENSSL_free(utf8);
	return 0;
}

/* What tls_drain() found in the OpenSSL error queue. */
struct tls_errors {
	char text[REASON_MAX]; /* the reasons, joined with ": " */
	int alert;             /* a TLS alert received from the peer, or -1 */
	bool eof;              /* the peer closed TCP without close_notify */
	bool old_protocol;     /* the peer offered only TLS 1.2 or older */
};

/* Empties the thread's OpenSSL error queue into e. */
static void
tls_drain(struct tls_errors *e)
{
	unsigned long code;
	size_t off = 0;

	e->text[0] = '\0';
	e->alert = -1;
	e->eof = false;
	e->old_protocol = false;
	while ((code = ERR_get_error()) != 0) {
		const char *txt = ERR_reason_error_string(code);
		char num[32];
		int reason = ERR_GET_REASON(code);
		int n;

		if (ERR_GET_LIB(code) == ERR_LIB_SSL) {
			if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
				e->alert = reason - SSL_AD_REASON_OFFSET;
			else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
				e->eof = true;
			else if (reason == SSL_R_UNSUPPORTED_PROTOCOL)
				e->old_protocol = true;
		}
		if (txt == NULL) {
			(void)snprintf(num, sizeof(num), "error %#lx", code);
			txt = num;
		}
		if (off + 1 >= sizeof(e->text) || strstr(e->text, txt) != NULL)
			continue;
		n = snprintf(e->text + off, sizeof(e->text) - off, "%s%s", off ? ": " : "", txt);
		if (n > 0)
			off += (size_t)n < sizeof(e->text) - off ? (size_t)n
			                                         : sizeof(e->text) - off - 1;
	}
}

/* Alerts that mean "your certificate is not welcome here". */
static bool
alert_is_refusal(int alert)
{
	switch (alert) {
	case SSL3_AD_HANDSHAKE_FAILURE:
	case SSL3_AD_BAD_CERTIFICATE:
	case SSL3_AD_UNSUPPORTED_CERTIFICATE:
	case SSL3_AD_CERTIFICATE_REVOKED:
	case SSL3_AD_CERTIFICATE_EXPIRED:
	case SSL3_AD_CERTIFICATE_UNKNOWN:
	case TLS1_AD_UNKNOWN_CA:
	case TLS1_AD_ACCESS_DENIED:
	case TLS13_AD_CERTIFICATE_REQUIRED:
		return true;
	default:
		return false;
	}
}

static void
format_address(char *buf, size_t len, const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 8];
	uint16_t port = 0;

	host[0] = '\0';
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;

		(void)inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		(void)snprintf(buf, len, "%s:%u", host, port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;

		(void)inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		(void)snprintf(buf, len, "[%s]:%u", host, port);
	}
}

/* Parses a numeric address (and scope) with port into ss. */
static int
parse_address(
    const char *addr, uint16_t port, bool passive, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct addrinfo hints = {
	    .ai_flags = AI_NUMERICHOST | (passive ? AI_PASSIVE : 0),
	    .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *res = NULL;

	if (addr == NULL) {
		struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;

		memset(ss, 0, sizeof(*ss));
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_ANY);
		in->sin_port = htons(port);
		*sslen = sizeof(*in);
		return 0;
	}
	if (getaddrinfo(addr, NULL, &hints, &res) != 0 || res == NULL)
		return -EINVAL;
	if (res->ai_addrlen > sizeof(*ss) ||
	    (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
		freeaddrinfo(res);
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
	return 0;
}

/* ---- certificates ---- */

/* OpenSSL's ex_data slot 0 of an SSL holds its struct stream. */
static struct stream *
stream_of(SSL *ssl)
{
	return SSL_get_app_data(ssl);
}

/*
 * OpenSSL's verification callback, once per certificate of the peer's
 * chain (top first) and once per error.  Refusing here makes OpenSSL send
 * an alert, so the peer learns it was refused.
 */
static int
verify_peer(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct stream *s = ssl ? stream_of(ssl) : NULL;
	char org[STREAM_NAME_MAX + 1], cn[STREAM_NAME_MAX + 1], a[STREAM_NAME_MAX + 1];
	const X509_NAME *subject;
	X509 *cert;
	int r;

	if (s == NULL)
		return 0;
	if (!ok) {
		int err = X509_STORE_CTX_get_error(xs);
		const char *what = X509_verify_cert_error_string(err);

		if (s->verify_reason[0] != '\0')
			return 0;
		switch (err) {
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
		case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		case X509_V_ERR_CERT_SIGNATURE_FAILURE:
			(void)snprintf(s->verify_reason, sizeof(s->verify_reason),
			    "peer certificate not signed by the cluster CA (%s)", what);
			break;
		default:
			(void)snprintf(s->verify_reason, sizeof(s->verify_reason),
			    "peer certificate refused: %s", what);
			break;
		}
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xs) != 0)
		return 1;

	cert = X509_STORE_CTX_get_current_cert(xs);
	subject = X509_get_subject_name(cert);
	r = name_field(subject, NID_organizationName, org, sizeof(org));
	if (r == -ENOENT) {
		(void)snprintf(s->verify_reason, sizeof(s->verify_reason),
		    "peer certificate names no cluster (no O=), expected '%s'", s->tls->cluster);
		goto refuse;
	}
	if (r < 0) {
		(void)snprintf(s->verify_reason, sizeof(s->verify_reason),
		    "peer certificate has an unusable O= (%s), expected '%s'",
		    r == -EEXIST ? "more than one" : "too long", s->tls->cluster);
		goto refuse;
	}
	if (strcmp(org, s->tls->cluster) != 0) {
		copy_printable(a, sizeof(a), org);
		(void)snprintf(s->verify_reason, sizeof(s->verify_reason),
		    "peer certificate from cluster '%s', expected '%s'", a, s->tls->cluster);
		goto refuse;
	}
	r = name_field(subject, NID_commonName, cn, sizeof(cn));
	if (r < 0 || !name_ok(cn)) {
		(void)snprintf(s->verify_reason, sizeof(s->verify_reason),
		    "peer certificate has no usable node name (CN=)");
		goto refuse;
	}
	if (s->has_expected && strcmp(cn, s->expected) != 0) {
		(void)snprintf(s->verify_reason, sizeof(s->verify_reason),
		    "peer is '%s', expected '%s'", cn, s->expected);
		goto refuse;
	}
	memcpy(s->peer, cn, sizeof(s->peer));
	s->peer_checked = true;
	return 1;

refuse:
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

/* A NewSessionTicket arrived: on a client, the server accepted our certificate. */
static int
ticket_arrived(SSL *ssl, SSL_SESSION *session)
{
	struct stream *s = stream_of(ssl);

	if (s != NULL && !s->server)
		s->confirmed = true;
	return 0; /* not kept: OpenSSL frees the session */
}

static void set_reason(char *reason, size_t reason_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_reason(char *reason, size_t reason_len, const char *fmt, ...)
{
	va_list ap;

	if (reason != NULL && reason_len > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(reason, reason_len, fmt, ap);
		va_end(ap);
	}
}

/* Checks that path can be opened for reading; returns 0 or -errno. */
static int
file_readable(const char *path)
{
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return -errno;
	(void)fclose(f);
	return 0;
}

struct stream_tls *
stream_tls_new(const struct stream_tls_config *cfg, char *reason, size_t reason_len)
{
	struct stream_tls *t = NULL;
	struct tls_errors e;
	X509_STORE_CTX *vc = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *own;
	char org[STREAM_NAME_MAX + 1];
	int err = EINVAL, r;

	ERR_clear_error();
	if (cfg == NULL || cfg->ca_file == NULL || cfg->cert_file == NULL ||
	    cfg->key_file == NULL || cfg->cluster == NULL) {
		set_reason(
		    reason, reason_len, "ca_file, cert_file, key_file and cluster are required");
		goto fail;
	}
	if (!name_ok(cfg->cluster)) {
		set_reason(reason, reason_len,
		    "bad cluster name '%.80s': 1-64 printable characters, no spaces", cfg->cluster);
		goto fail;
	}
	{
		const char *labels[] = {"ca_file", "cert_file", "key_file"};
		const char *paths[] = {cfg->ca_file, cfg->cert_file, cfg->key_file};

		for (size_t i = 0; i < 3; i++) {
			if ((r = file_readable(paths[i])) < 0) {
				err = -r;
				set_reason(reason, reason_len, "%s %s: %s", labels[i], paths[i],
				    strerror(err));
				goto fail;
			}
		}
	}

	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		err = ENOMEM;
		set_reason(reason, reason_len, "out of memory");
		goto fail;
	}
	t->ctx = SSL_CTX_new(TLS_method());
	if (t->ctx == NULL) {
		tls_drain(&e);
		err = ENOMEM;
		set_reason(reason, reason_len, "cannot create a TLS context: %s", e.text);
		goto fail;
	}
	if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) != 1) {
		tls_drain(&e);
		set_reason(reason, reason_len, "this OpenSSL has no TLS 1.3: %s", e.text);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(t->ctx, cfg->ca_file, NULL) != 1) {
		tls_drain(&e);
		set_reason(reason, reason_len, "ca_file %s: no usable CA certificate (%s)",
		    cfg->ca_file, e.text);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert_file) != 1) {
		tls_drain(&e);
		set_reason(reason, reason_len, "cert_file %s: no usable certificate (%s)",
		    cfg->cert_file, e.text);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
		tls_drain(&e);
		if (strstr(e.text, "key values mismatch") != NULL)
			set_reason(reason, reason_len, "key_file %s does not match cert_file %s",
			    cfg->key_file, cfg->cert_file);
		else
			set_reason(reason, reason_len, "key_file %s: no usable private key (%s)",
			    cfg->key_file, e.text);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		tls_drain(&e);
		set_reason(reason, reason_len, "key_file %s does not match cert_file %s",
		    cfg->key_file, cfg->cert_file);
		goto fail;
	}

	/* Our own certificate must pass the checks the peer will make. */
	own = SSL_CTX_get0_certificate(t->ctx);
	(void)SSL_CTX_get0_chain_certs(t->ctx, &chain);
	vc = X509_STORE_CTX_new();
	if (own == NULL || vc == NULL ||
	    X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(t->ctx), own, chain) != 1) {
		tls_drain(&e);
		err = ENOMEM;
		set_reason(
		    reason, reason_len, "cannot check cert_file %s: %s", cfg->cert_file, e.text);
		goto fail;
	}
	if (X509_verify_cert(vc) != 1) {
		set_reason(reason, reason_len, "cert_file %s does not chain to ca_file %s (%s)",
		    cfg->cert_file, cfg->ca_file,
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
		ERR_clear_error();
		goto fail;
	}
	if (X509_check_purpose(own, X509_PURPOSE_SSL_CLIENT, 0) != 1 ||
	    X509_check_purpose(own, X509_PURPOSE_SSL_SERVER, 0) != 1) {
		ERR_clear_error();
		set_reason(reason, reason_len,
		    "cert_file %s is not usable for both TLS client and server "
		    "(extended key usage); make it with tandem-certs",
		    cfg->cert_file);
		goto fail;
	}
	r = name_field(X509_get_subject_name(own), NID_organizationName, org, sizeof(org));
	if (r < 0 || strcmp(org, cfg->cluster) != 0) {
		char shown[STREAM_NAME_MAX + 1];

		copy_printable(shown, sizeof(shown), r < 0 ? "" : org);
		set_reason(reason, reason_len, "cert_file %s is for cluster '%s', not '%s'",
		    cfg->cert_file, shown, cfg->cluster);
		goto fail;
	}
	if (name_field(X509_get_subject_name(own), NID_commonName, t->name, sizeof(t->name)) < 0 ||
	    !name_ok(t->name)) {
		set_reason(reason, reason_len, "cert_file %s has no usable node name (CN=)",
		    cfg->cert_file);
		goto fail;
	}
	X509_STORE_CTX_free(vc);
	vc = NULL;

	(void)snprintf(t->cluster, sizeof(t->cluster), "%s", cfg->cluster);
	t->handshake_ms =
	    cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_peer);
	SSL_CTX_set_verify_depth(t->ctx, 4);
	(void)SSL_CTX_set_mode(
	    t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A record's header and body, and the records behind it, in one read(). */
	SSL_CTX_set_read_ahead(t->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(t->ctx, READ_AHEAD);
	/* One ticket, as the client's proof of acceptance; never stored, never resumed. */
	(void)SSL_CTX_set_num_tickets(t->ctx, 1);
	(void)SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET);
	(void)SSL_CTX_set_session_cache_mode(
	    t->ctx, SSL_SESS_CACHE_BOTH | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(t->ctx, ticket_arrived);
	(void)SSL_CTX_set_session_id_context(t->ctx, (const unsigned char *)"tandem", 6);
	return t;

fail:
	X509_STORE_CTX_free(vc);
	stream_tls_free(t);
	ERR_clear_error();
	errno = err;
	return NULL;
}

const char *
stream_tls_name(const struct stream_tls *tls)
{
	return tls->name;
}

void
stream_tls_free(struct stream_tls *tls)
{
	if (tls == NULL)
		return;
	SSL_CTX_free(tls->ctx);
	free(tls);
}

/* ---- one stream: life cycle ---- */

static void
stream_destroy(struct stream *s)
{
	assert(s->fd < 0 && !s->polling && !s->kick_on && !s->handshake_timer_on);
	SSL_free(s->ssl);
	free(s->out);
	free(s->in);
	free(s);
}

/* Takes s off the loop and closes the socket, without close_notify. */
static void
stream_teardown(struct stream *s)
{
	if (s->polling) {
		(void)qb_loop_poll_del(s->loop, s->fd);
		s->polling = false;
	}
	if (s->fd >= 0) {
		(void)close(s->fd);
		s->fd = -1;
	}
	if (s->handshake_timer_on) {
		(void)qb_loop_timer_del(s->loop, s->handshake_timer);
		s->handshake_timer_on = false;
	}
	s->state = STREAM_CLOSED;
	s->read_owed = false;
}

static void stream_kick_fired(void *data);

/* Runs stream_kick_fired() on the next loop turn. */
static void
stream_kick(struct stream *s)
{
	if (s->kick_on)
		return;
	if (qb_loop_timer_add(s->loop, QB_LOOP_MED, 0, s, stream_kick_fired, &s->kick_timer) == 0)
		s->kick_on = true;
}

/*
 * Ends the connection with error (0 or -errno) and a reason; CLOSED is
 * delivered on a later loop turn.  Later failures do not replace the first.
 */
static void stream_fail(struct stream *s, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
stream_fail(struct stream *s, int error, const char *fmt, ...)
{
	va_list ap;

	if (s->state == STREAM_CLOSED)
		return;
	stream_teardown(s);
	s->close_error = error;
	va_start(ap, fmt);
	(void)vsnprintf(s->close_reason, sizeof(s->close_reason), fmt, ap);
	va_end(ap);
	s->close_owed = true;
	stream_kick(s);
}

/* Fails s after an OpenSSL call returned ssl_error (errno was sys_errno). */
static void
stream_fail_tls(struct stream *s, int ssl_error, int sys_errno)
{
	struct tls_errors e;
	bool handshake = s->state == STREAM_HANDSHAKE;

	tls_drain(&e);
	if (s->verify_reason[0] != '\0') {
		stream_fail(s, -EACCES, "%s", s->verify_reason);
	} else if (ssl_error == SSL_ERROR_ZERO_RETURN) {
		stream_fail(s, -ESHUTDOWN, "peer closed the connection");
	} else if (e.alert >= 0) {
		const char *what = handshake ? "peer refused the TLS handshake"
		                   : s->state == STREAM_CONFIRMING ? "peer refused our certificate"
		                                                   : "peer sent a TLS alert";

		stream_fail(
		    s, alert_is_refusal(e.alert) ? -EACCES : -EPROTO, "%s: %s", what, e.text);
	} else if (e.old_protocol) {
		stream_fail(s, -EPROTO, "peer does not speak TLS 1.3 (%s)", e.text);
	} else if (e.eof || (ssl_error == SSL_ERROR_SYSCALL && sys_errno == 0 && !e.text[0])) {
		stream_fail(s, -ECONNRESET, "connection closed by peer%s",
		    handshake ? " during the TLS handshake" : "");
	} else if (ssl_error == SSL_ERROR_SYSCALL && sys_errno != 0) {
		stream_fail(
		    s, -sys_errno, "%s%s", handshake ? "TLS handshake: " : "", strerror(sys_errno));
	} else if (e.text[0] != '\0') {
		stream_fail(
		    s, -EPROTO, "%s: %s", handshake ? "TLS handshake failed" : "TLS error", e.text);
	} else {
		stream_fail(s, -EPROTO, "TLS error %d", ssl_error);
	}
}

/* Delivers an event; returns false if the callback freed s. */
static bool
stream_emit(struct stream *s, enum stream_event event, struct stream_info *info)
{
	info->peer = s->opened ? s->peer : NULL;
	info->address = s->address;
	s->on_event(s, event, info, s->data);
	return !s->freed;
}

/* Switches POLLIN and POLLOUT to what s waits for now. */
static void
stream_set_events(struct stream *s)
{
	int events = POLLIN;
	int r;

	switch (s->state) {
	case STREAM_TCP_CONNECTING:
		events = POLLOUT;
		break;
	case STREAM_HANDSHAKE:
		if (s->handshake_wants_write)
			events |= POLLOUT;
		break;
	case STREAM_CONFIRMING:
	case STREAM_OPEN:
	case STREAM_CLOSING:
		if (s->read_wants_write || s->shutdown_wants_write)
			events |= POLLOUT;
		if (s->out_len > 0 && s->state != STREAM_CONFIRMING && !s->write_wants_read)
			events |= POLLOUT;
		break;
	case STREAM_CLOSED:
		return;
	}
	if (!s->polling || events == s->events)
		return;
	r = qb_loop_poll_mod(s->loop, QB_LOOP_MED, s->fd, events, s, stream_dispatch);
	if (r < 0) {
		stream_fail(s, r, "cannot watch the socket: %s", strerror(-r));
		return;
	}
	s->events = events;
}

static void
stream_kick_fired(void *data)
{
	struct stream *s = data;

	s->kick_on = false;
	s->depth++;
	if (s->read_owed && (s->state == STREAM_OPEN || s->state == STREAM_CLOSING)) {
		s->read_owed = false;
		(void)stream_read(s);
	}
	if (!s->freed && s->close_owed) {
		struct stream_info info = {.error = s->close_error, .reason = s->close_reason};

		s->close_owed = false;
		(void)stream_emit(s, STREAM_EVENT_CLOSED, &info);
	}
	s->depth--;
	if (s->freed) {
		if (s->depth == 0)
			stream_destroy(s);
		return;
	}
	stream_set_events(s);
}

static void
stream_handshake_expired(void *data)
{
	struct stream *s = data;
	unsigned int ms = s->tls->handshake_ms;

	s->handshake_timer_on = false;
	switch (s->state) {
	case STREAM_TCP_CONNECTING:
		stream_fail(s, -ETIMEDOUT, "connect timed out after %u ms", ms);
		break;
	case STREAM_HANDSHAKE:
		stream_fail(s, -ETIMEDOUT, "TLS handshake timed out after %u ms", ms);
		break;
	case STREAM_CONFIRMING:
		stream_fail(s, -ETIMEDOUT, "peer did not accept our certificate within %u ms", ms);
		break;
	case STREAM_OPEN:
	case STREAM_CLOSING:
	case STREAM_CLOSED:
		break;
	}
}

static int32_t
stream_dispatch(int32_t fd, int32_t revents, void *data)
{
	struct stream *s = data;

	s->depth++;
	stream_step(s, revents);
	s->depth--;
	if (s->freed) {
		if (s->depth == 0)
			stream_destroy(s);
		return 0;
	}
	stream_set_events(s);
	return 0;
}

static struct stream *
stream_alloc(qb_loop_t *loop, struct stream_tls *tls, const char *expected,
    stream_event_fn on_event, void *data)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->in = malloc(IN_CHUNK);
	s->ssl = SSL_new(tls->ctx);
	if (s->in == NULL || s->ssl == NULL) {
		ERR_clear_error();
		SSL_free(s->ssl);
		free(s->in);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	(void)SSL_set_app_data(s->ssl, s);
	s->loop = loop;
	s->tls = tls;
	s->fd = -1;
	if (expected != NULL) {
		s->has_expected = true;
		(void)snprintf(s->expected, sizeof(s->expected), "%s", expected);
	}
	s->on_event = on_event;
	s->data = data;
	return s;
}

/* Gives fd to s and puts s on the loop in state.  Returns 0 or -errno (fd then closed). */
static int
stream_start(struct stream *s, int fd, bool server, enum stream_state state)
{
	int one = 1, r;

	s->fd = fd;
	s->server = server;
	s->state = state;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (SSL_set_fd(s->ssl, fd) != 1) {
		ERR_clear_error();
		stream_teardown(s);
		return -ENOMEM;
	}
	if (server)
		SSL_set_accept_state(s->ssl);
	else
		SSL_set_connect_state(s->ssl);
	/* A client starts with a write (connect's completion, or the ClientHello). */
	s->handshake_wants_write = !server;
	s->events = state == STREAM_TCP_CONNECTING ? POLLOUT : POLLIN | (server ? 0 : POLLOUT);
	r = qb_loop_poll_add(s->loop, QB_LOOP_MED, fd, s->events, s, stream_dispatch);
	if (r < 0) {
		stream_teardown(s);
		return r;
	}
	s->polling = true;
	r = qb_loop_timer_add(s->loop, QB_LOOP_MED, (uint64_t)s->tls->handshake_ms * 1000000u, s,
	    stream_handshake_expired, &s->handshake_timer);
	if (r < 0) {
		stream_teardown(s);
		return r;
	}
	s->handshake_timer_on = true;
	return 0;
}

/* ---- one stream: I/O ---- */

/* Makes room for more bytes at the end of the queue.  Returns 0 or -ENOMEM. */
static int
queue_reserve(struct stream *s, size_t more)
{
	size_t need, cap;
	unsigned char *p;

	if (more > SIZE_MAX - s->out_len)
		return -ENOMEM;
	need = s->out_len + more;
	if (s->out_head + need <= s->out_cap)
		return 0;
	if (need <= s->out_cap) {
		/* OpenSSL accepts a moved buffer (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
		memmove(s->out, s->out + s->out_head, s->out_len);
		s->out_head = 0;
		return 0;
	}
	cap = s->out_cap ? s->out_cap : 64u << 10;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (s->out_head > 0) {
		memmove(s->out, s->out + s->out_head, s->out_len);
		s->out_head = 0;
	}
	p = realloc(s->out, cap);
	if (p == NULL)
		return -ENOMEM;
	s->out = p;
	s->out_cap = cap;
	return 0;
}

static void
queue_consume(struct stream *s, size_t n)
{
	s->out_head += n;
	s->out_len -= n;
	if (s->out_len == 0) {
		s->out_head = 0;
		if (s->out_cap > QUEUE_KEEP) {
			free(s->out);
			s->out = NULL;
			s->out_cap = 0;
		}
	}
}

/*
 * Writes up to budget bytes of p through TLS.  Returns the bytes written,
 * or -1 if the stream failed.  A write OpenSSL could not finish stays
 * inside it and must be retried with the same bytes first, at least as
 * many of them (WRITE_CHUNK caps every call, so a retry is never shorter).
 */
static ssize_t
stream_write_some(struct stream *s, const unsigned char *p, size_t len, size_t budget)
{
	size_t done = 0;

	while (done < len && done < budget) {
		size_t chunk = len - done < WRITE_CHUNK ? len - done : WRITE_CHUNK;
		size_t n = 0;
		int r, e, saved;

		ERR_clear_error();
		errno = 0;
		r = SSL_write_ex(s->ssl, p + done, chunk, &n);
		if (r == 1) {
			done += n;
			s->write_wants_read = false;
			continue;
		}
		saved = errno;
		e = SSL_get_error(s->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE) {
			s->write_wants_read = false;
			break;
		}
		if (e == SSL_ERROR_WANT_READ) {
			s->write_wants_read = true;
			break;
		}
		stream_fail_tls(s, e, saved);
		return -1;
	}
	return (ssize_t)done;
}

/* Sends close_notify and closes; CLOSED (0) follows. */
static void
stream_finish_close(struct stream *s)
{
	int r;

	ERR_clear_error();
	r = SSL_shutdown(s->ssl);
	if (r < 0 && SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_WRITE) {
		s->shutdown_wants_write = true;
		return;
	}
	ERR_clear_error();
	s->shutdown_wants_write = false;
	stream_fail(s, 0, "closed");
}

/* Loop side of writing: the queue, then DRAINED or the end of a close. */
static bool
stream_flush(struct stream *s)
{
	ssize_t n;

	if (s->out_len > 0) {
		n = stream_write_some(s, s->out + s->out_head, s->out_len, WRITE_BUDGET);
		if (n < 0)
			return true;
		queue_consume(s, (size_t)n);
	}
	if (s->out_len > 0)
		return true;
	if (s->state == STREAM_CLOSING) {
		stream_finish_close(s);
		return true;
	}
	if (s->drained_owed) {
		struct stream_info info = {0};

		s->drained_owed = false;
		return stream_emit(s, STREAM_EVENT_DRAINED, &info);
	}
	return true;
}

/* The peer is verified both ways: CONNECTED, then anything queued before. */
static bool
stream_become_open(struct stream *s)
{
	struct stream_info info = {0};

	if (!s->peer_checked || SSL_session_reused(s->ssl)) {
		/* Cannot happen without a bug: no verified certificate, or a resumed session. */
		stream_fail(s, -EPROTO, "TLS session without a verified peer certificate");
		return true;
	}
	s->state = STREAM_OPEN;
	s->opened = true;
	if (s->handshake_timer_on) {
		(void)qb_loop_timer_del(s->loop, s->handshake_timer);
		s->handshake_timer_on = false;
	}
	if (!stream_emit(s, STREAM_EVENT_CONNECTED, &info))
		return false;
	if (s->state == STREAM_OPEN && s->out_len > 0)
		return stream_flush(s);
	return true;
}

/* Hands len bytes of s->in to the callback (dropped while closing). */
static bool
stream_deliver(struct stream *s, size_t len)
{
	struct stream_info info = {0};

	if (s->state != STREAM_OPEN)
		return true;
	info.data = s->in;
	info.len = len;
	return stream_emit(s, STREAM_EVENT_DATA, &info);
}

/*
 * Reads what the socket has, up to READ_ROUNDS full chunks, delivering
 * DATA per chunk.  Returns false if the callback freed s.
 */
static bool
stream_read(struct stream *s)
{
	size_t fill = 0;
	unsigned int rounds = 0;

	for (;;) {
		size_t n = 0;
		int r, e, saved;

		if (s->state != STREAM_CONFIRMING && s->state != STREAM_OPEN &&
		    s->state != STREAM_CLOSING)
			return true;
		ERR_clear_error();
		errno = 0;
		r = SSL_read_ex(s->ssl, s->in + fill, IN_CHUNK - fill, &n);
		saved = errno;
		e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
		if (s->state == STREAM_CONFIRMING && s->confirmed) {
			if (!stream_become_open(s))
				return false;
			if (s->state != STREAM_OPEN) /* closed by the callback */
				return true;
		}
		if (r == 1) {
			if (s->state == STREAM_CONFIRMING) {
				stream_fail(
				    s, -EPROTO, "peer sent data before accepting our certificate");
				return true;
			}
			fill += n;
			/*
			 * Nothing left in OpenSSL's buffer: poll() says when the
			 * socket has more, a read() that would fail is saved.
			 */
			if (fill < IN_CHUNK && !SSL_has_pending(s->ssl)) {
				s->read_wants_write = false;
				return stream_deliver(s, fill);
			}
			if (fill < IN_CHUNK)
				continue;
			if (!stream_deliver(s, fill))
				return false;
			fill = 0;
			if (++rounds == READ_ROUNDS) {
				if (SSL_has_pending(s->ssl) && s->state != STREAM_CLOSED) {
					s->read_owed = true;
					stream_kick(s);
				}
				return true;
			}
			continue;
		}
		if (fill > 0) {
			if (!stream_deliver(s, fill))
				return false;
			fill = 0;
			if (s->state == STREAM_CLOSED)
				return true;
		}
		switch (e) {
		case SSL_ERROR_WANT_READ:
			s->read_wants_write = false;
			return true;
		case SSL_ERROR_WANT_WRITE:
			s->read_wants_write = true;
			return true;
		default:
			stream_fail_tls(s, e, saved);
			return true;
		}
	}
}

static void
stream_handshake(struct stream *s)
{
	int r, e, saved;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(s->ssl);
	saved = errno;
	if (r == 1) {
		s->handshake_wants_write = false;
		if (s->server) {
			/* Read ahead, the client's first records may be in OpenSSL already. */
			if (stream_become_open(s) && s->state == STREAM_OPEN &&
			    SSL_has_pending(s->ssl)) {
				s->read_owed = true;
				stream_kick(s);
			}
		} else {
			/* The server's ticket may already be here. */
			s->state = STREAM_CONFIRMING;
			(void)stream_read(s);
		}
		return;
	}
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		s->handshake_wants_write = false;
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		s->handshake_wants_write = true;
		return;
	}
	stream_fail_tls(s, e, saved);
}

/* One loop callback's work for s.  s may be freed by the callback on return. */
static void
stream_step(struct stream *s, int revents)
{
	int err = 0;
	socklen_t len = sizeof(err);

	switch (s->state) {
	case STREAM_TCP_CONNECTING:
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			stream_fail(s, -err, "connect to %s: %s", s->address, strerror(err));
			return;
		}
		s->state = STREAM_HANDSHAKE;
		stream_handshake(s);
		return;
	case STREAM_HANDSHAKE:
		stream_handshake(s);
		return;
	case STREAM_CONFIRMING:
	case STREAM_OPEN:
	case STREAM_CLOSING:
		if ((revents & (POLLIN | POLLERR | POLLHUP)) ||
		    (s->read_wants_write && (revents & POLLOUT))) {
			if (!stream_read(s))
				return;
		}
		if (s->state == STREAM_CLOSED || s->state == STREAM_CONFIRMING)
			return;
		if (s->shutdown_wants_write) {
			if (revents & POLLOUT)
				stream_finish_close(s);
			return;
		}
		if (s->out_len > 0 &&
		    ((revents & POLLOUT) || (s->write_wants_read && (revents & POLLIN))))
			(void)stream_flush(s);
		return;
	case STREAM_CLOSED:
		return;
	}
}

/* ---- one stream: the API ---- */

struct stream *
stream_connect(qb_loop_t *loop, struct stream_tls *tls, const char *addr, uint16_t port,
    const char *expected_peer, stream_event_fn on_event, void *data)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct stream *s;
	enum stream_state state = STREAM_HANDSHAKE;
	int fd, r;

	if (loop == NULL || tls == NULL || addr == NULL || port == 0 || on_event == NULL ||
	    !name_ok(expected_peer) || parse_address(addr, port, false, &ss, &sslen) < 0) {
		errno = EINVAL;
		return NULL;
	}
	s = stream_alloc(loop, tls, expected_peer, on_event, data);
	if (s == NULL)
		return NULL;
	format_address(s->address, sizeof(s->address), &ss);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = errno;
		stream_destroy(s);
		errno = r;
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		if (errno != EINPROGRESS) {
			r = errno;
			(void)close(fd);
			stream_destroy(s);
			errno = r;
			return NULL;
		}
		state = STREAM_TCP_CONNECTING;
	}
	r = stream_start(s, fd, false, state);
	if (r < 0) {
		stream_destroy(s);
		errno = -r;
		return NULL;
	}
	return s;
}

void
stream_set_callback(struct stream *s, stream_event_fn on_event, void *data)
{
	s->on_event = on_event;
	s->data = data;
}

int
stream_send(struct stream *s, const void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;
	int r;

	if (s->state == STREAM_CLOSED || s->state == STREAM_CLOSING)
		return -ENOTCONN;
	if (len == 0)
		return 0;
	/* Room first, so that bytes are never half sent and half lost. */
	r = queue_reserve(s, len);
	if (r < 0)
		return r;
	if (s->state == STREAM_OPEN && s->out_len == 0 && !s->write_wants_read) {
		n = stream_write_some(s, buf, len, WRITE_BUDGET);
		if (n < 0)
			return 0; /* CLOSED follows from the loop */
		done = (size_t)n;
	}
	if (done < len) {
		memcpy(s->out + s->out_head + s->out_len, (const unsigned char *)buf + done,
		    len - done);
		s->out_len += len - done;
		s->drained_owed = true;
		stream_set_events(s);
	}
	return 0;
}

size_t
stream_pending(const struct stream *s)
{
	return s->out_len;
}

const char *
stream_peer(const struct stream *s)
{
	return s->opened ? s->peer : NULL;
}

int
stream_close(struct stream *s)
{
	switch (s->state) {
	case STREAM_CLOSED:
	case STREAM_CLOSING:
		return -ENOTCONN;
	case STREAM_TCP_CONNECTING:
	case STREAM_HANDSHAKE:
	case STREAM_CONFIRMING:
		stream_fail(s, 0, "closed");
		return 0;
	case STREAM_OPEN:
		s->state = STREAM_CLOSING;
		s->drained_owed = false;
		if (s->out_len == 0)
			stream_finish_close(s);
		stream_set_events(s);
		return 0;
	}
	return -ENOTCONN;
}

void
stream_free(struct stream *s)
{
	if (s == NULL || s->freed)
		return;
	s->freed = true;
	stream_teardown(s);
	if (s->kick_on) {
		(void)qb_loop_timer_del(s->loop, s->kick_timer);
		s->kick_on = false;
	}
	s->close_owed = false;
	if (s->depth == 0)
		stream_destroy(s);
}

/* ---- the listener ---- */

static int32_t listener_dispatch(int32_t fd, int32_t revents, void *data);

static void
listener_resume(void *data)
{
	struct stream_listener *l = data;

	l->pause_on = false;
	if (qb_loop_poll_add(l->loop, QB_LOOP_MED, l->fd, POLLIN, l, listener_dispatch) == 0)
		l->polling = true;
}

/* Out of descriptors or memory: stop accepting for a while instead of spinning. */
static void
listener_pause(struct stream_listener *l)
{
	if (l->pause_on)
		return;
	if (qb_loop_timer_add(l->loop, QB_LOOP_MED, (uint64_t)ACCEPT_PAUSE_MS * 1000000u, l,
	        listener_resume, &l->pause_timer) < 0)
		return;
	l->pause_on = true;
	if (l->polling) {
		(void)qb_loop_poll_del(l->loop, l->fd);
		l->polling = false;
	}
}

static int32_t
listener_dispatch(int32_t fd, int32_t revents, void *data)
{
	struct stream_listener *l = data;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct stream *s;
		int cfd;

		cfd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				listener_pause(l);
			break;
		}
		s = stream_alloc(
		    l->loop, l->tls, l->has_expected ? l->expected : NULL, l->on_event, l->data);
		if (s == NULL) {
			(void)close(cfd);
			listener_pause(l);
			break;
		}
		format_address(s->address, sizeof(s->address), &ss);
		if (stream_start(s, cfd, true, STREAM_HANDSHAKE) < 0)
			stream_destroy(s);
	}
	return 0;
}

struct stream_listener *
stream_listen(qb_loop_t *loop, struct stream_tls *tls, const char *addr, uint16_t port,
    const char *expected_peer, stream_event_fn on_event, void *data)
{
	struct stream_listener *l;
	struct sockaddr_storage ss;
	socklen_t sslen;
	int one = 1, r;

	if (loop == NULL || tls == NULL || on_event == NULL ||
	    (expected_peer != NULL && !name_ok(expected_peer)) ||
	    parse_address(addr, port, true, &ss, &sslen) < 0) {
		errno = EINVAL;
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->loop = loop;
	l->tls = tls;
	l->on_event = on_event;
	l->data = data;
	if (expected_peer != NULL) {
		l->has_expected = true;
		(void)snprintf(l->expected, sizeof(l->expected), "%s", expected_peer);
	}
	l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		goto fail;
	(void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, sslen) < 0 || listen(l->fd, 64) < 0)
		goto fail;
	sslen = sizeof(ss);
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sslen) < 0)
		goto fail;
	l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)(void *)&ss)->sin_port
	                                        : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
	r = qb_loop_poll_add(loop, QB_LOOP_MED, l->fd, POLLIN, l, listener_dispatch);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	l->polling = true;
	return l;

fail:
	/* errno is the failed call's. */
	r = errno;
	if (l->fd >= 0)
		(void)close(l->fd);
	free(l);
	errno = r;
	return NULL;
}

uint16_t
stream_listener_port(const struct stream_listener *l)
{
	return l->port;
}

void
stream_listener_free(struct stream_listener *l)
{
	if (l == NULL)
		return;
	if (l->pause_on)
		(void)qb_loop_timer_del(l->loop, l->pause_timer);
	if (l->polling)
		(void)qb_loop_poll_del(l->loop, l->fd);
	(void)close(l->fd);
	free(l);
}

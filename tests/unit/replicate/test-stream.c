/*
 * test-stream: the real stream.c over 127.0.0.1 on one qb_loop, with
 * certificates made by tools/tandem-certs in a temporary directory.  It
 * checks the handshake and bytes both ways (8 MiB in order, the loop kept
 * turning), and every refusal: a certificate from another CA, from another
 * cluster, the wrong node, TLS 1.2, garbage, silence, and a peer leaving
 * mid-stream.  Peers that stream.c itself would never be (TLS 1.2 only, a
 * certificate of another cluster) are plain OpenSSL clients on a thread.
 * Every wait has a deadline; nothing sleeps.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <qb/qbloop.h>

#include "replicate/stream.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

#define BIG (8u << 20)
#define WAIT_MS 10000

static char dir[] = "/tmp/tandem-stream-XXXXXX";
static char tool[4096];
static qb_loop_t *loop;
static struct stream_tls *tls_n1, *tls_n2, *tls_n3;

/* ---- files ---- */

static const char *
path(const char *name)
{
	static char buf[8][512];
	static int next;
	char *p = buf[next++ % 8];

	(void)snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a shell command; returns its exit status. */
static int
run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	(void)vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *
slurp(const char *p)
{
	static char buf[4096];
	FILE *f = fopen(p, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		(void)fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static struct stream_tls *
tls_make(const char *ca, const char *cert, const char *key, const char *cluster, unsigned int ms)
{
	struct stream_tls_config cfg = {
	    .ca_file = ca,
	    .cert_file = cert,
	    .key_file = key,
	    .cluster = cluster,
	    .handshake_timeout_ms = ms,
	};
	char reason[256] = "";
	struct stream_tls *t = stream_tls_new(&cfg, reason, sizeof(reason));

	if (t == NULL)
		fprintf(stderr, "# stream_tls_new: %s\n", reason);
	return t;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int
group_setup(void **state)
{
	const char *root = getenv("TANDEM_SOURCE_ROOT");

#ifdef TANDEM_SOURCE_ROOT_DEFAULT
	if (root == NULL)
		root = TANDEM_SOURCE_ROOT_DEFAULT;
#endif
	if (root == NULL)
		root = ".";
	(void)snprintf(tool, sizeof(tool), "%s/tools/tandem-certs", root);
	if (mkdtemp(dir) == NULL)
		return -1;
	/* Cluster c1: CA, nodes n1 n2 n3.  Another CA, also naming c1, signs a rogue n2. */
	if (run("'%s' ca %s/ca --cluster c1 >/dev/null", tool, dir) != 0 ||
	    run("'%s' node %s/n1 --ca %s/ca --name n1 --addr 127.0.0.1 >/dev/null", tool, dir,
	        dir) != 0 ||
	    run("'%s' node %s/n2 --ca %s/ca --name n2 --addr 127.0.0.1 >/dev/null", tool, dir,
	        dir) != 0 ||
	    run("'%s' node %s/n3 --ca %s/ca --name n3 >/dev/null", tool, dir, dir) != 0 ||
	    run("'%s' ca %s/ca2 --cluster c1 >/dev/null", tool, dir) != 0 ||
	    run("'%s' node %s/rogue --ca %s/ca2 --name n2 >/dev/null", tool, dir, dir) != 0)
		return -1;
	/* Both CAs in one file: lets a rogue stream trust n1 while n1 does not trust it. */
	if (run("cat %s/ca/ca.crt %s/ca2/ca.crt > %s/both.crt", dir, dir, dir) != 0)
		return -1;
	/* Signed by the right CA, but for cluster c2: the tool never makes this. */
	if (run("cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
	        "-out c2.key 2>/dev/null && openssl req -new -key c2.key -subj /O=c2/CN=n2 "
	        "-out c2.csr && printf 'extendedKeyUsage=serverAuth,clientAuth\\n' > c2.ext && "
	        "openssl x509 -req -in c2.csr -CA ca/ca.crt -CAkey ca/ca.key -set_serial 7 "
	        "-days 30 -extfile c2.ext -out c2.crt 2>/dev/null",
	        dir) != 0)
		return -1;
	loop = qb_loop_create();
	tls_n1 = tls_make(path("n1/ca.crt"), path("n1/n1.crt"), path("n1/n1.key"), "c1", 0);
	tls_n2 = tls_make(path("n2/ca.crt"), path("n2/n2.crt"), path("n2/n2.key"), "c1", 0);
	tls_n3 = tls_make(path("n3/ca.crt"), path("n3/n3.crt"), path("n3/n3.key"), "c1", 0);
	return loop && tls_n1 && tls_n2 && tls_n3 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	stream_tls_free(tls_n1);
	stream_tls_free(tls_n2);
	stream_tls_free(tls_n3);
	if (loop != NULL)
		qb_loop_destroy(loop);
	(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- waiting on the loop, with a deadline ---- */

typedef bool (*cond_fn)(void *arg);

static cond_fn wait_cond;
static void *wait_arg;
static bool wait_expired;
static qb_loop_timer_handle tick_timer, deadline_timer;
static uint64_t last_tick_ns, max_gap_ns;
static unsigned int ticks;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
check_stop(void)
{
	if (wait_cond != NULL && wait_cond(wait_arg))
		qb_loop_stop(loop);
}

static void
tick(void *data)
{
	uint64_t now = now_ns();

	if (last_tick_ns != 0 && now - last_tick_ns > max_gap_ns)
		max_gap_ns = now - last_tick_ns;
	last_tick_ns = now;
	ticks++;
	(void)qb_loop_timer_add(loop, QB_LOOP_LOW, 1000000, NULL, tick, &tick_timer);
	check_stop();
}

static void
deadline(void *data)
{
	wait_expired = true;
	qb_loop_stop(loop);
}

/* Runs the loop until cond(arg) holds; false if ms passed first. */
static bool
run_until(cond_fn cond, void *arg, unsigned int ms)
{
	if (cond(arg))
		return true;
	wait_cond = cond;
	wait_arg = arg;
	wait_expired = false;
	last_tick_ns = 0;
	max_gap_ns = 0;
	ticks = 0;
	(void)qb_loop_timer_add(
	    loop, QB_LOOP_HIGH, (uint64_t)ms * 1000000u, NULL, deadline, &deadline_timer);
	(void)qb_loop_timer_add(loop, QB_LOOP_LOW, 1000000, NULL, tick, &tick_timer);
	qb_loop_run(loop);
	(void)qb_loop_timer_del(loop, tick_timer);
	(void)qb_loop_timer_del(loop, deadline_timer);
	wait_cond = NULL;
	return cond(arg);
}

/* ---- one side of a connection, as the event callback sees it ---- */

struct side {
	struct stream *s; /* the live stream; NULL once CLOSED (freed there) */
	int connected, closed, drained;
	int error;
	char reason[256];
	char peer[STREAM_NAME_MAX + 1];
	char text[256]; /* small payloads */
	size_t text_len;
	size_t received;
	size_t max_chunk;
	bool pattern; /* check received bytes against pattern() */
	bool pattern_bad;
	bool free_on_data;
	bool keep_on_close; /* do not free on CLOSED */
};

static uint8_t
pattern(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

static void
on_event(struct stream *s, enum stream_event ev, const struct stream_info *info, void *data)
{
	struct side *d = data;

	switch (ev) {
	case STREAM_EVENT_CONNECTED:
		d->s = s;
		d->connected++;
		assert_non_null(info->peer);
		(void)snprintf(d->peer, sizeof(d->peer), "%s", info->peer);
		assert_string_equal(stream_peer(s), info->peer);
		break;
	case STREAM_EVENT_DATA:
		assert_true(info->len > 0);
		if (info->len > d->max_chunk)
			d->max_chunk = info->len;
		if (d->pattern) {
			const uint8_t *p = info->data;

			for (size_t i = 0; i < info->len; i++)
				if (p[i] != pattern(d->received + i))
					d->pattern_bad = true;
		} else if (d->text_len + info->len < sizeof(d->text)) {
			memcpy(d->text + d->text_len, info->data, info->len);
			d->text_len += info->len;
		}
		d->received += info->len;
		if (d->free_on_data) {
			stream_free(s);
			d->s = NULL;
			d->closed++;
			d->free_on_data = false;
		}
		break;
	case STREAM_EVENT_DRAINED:
		d->drained++;
		break;
	case STREAM_EVENT_CLOSED:
		d->closed++;
		d->error = info->error;
		(void)snprintf(d->reason, sizeof(d->reason), "%s", info->reason);
		printf("# closed (%s): %d %s\n", info->address, info->error, info->reason);
		if (!d->keep_on_close) {
			stream_free(s);
			if (d->s == s)
				d->s = NULL;
		}
		break;
	}
	check_stop();
}

static bool
is_closed(void *arg)
{
	return ((struct side *)arg)->closed > 0;
}

static bool
both_closed(void *arg)
{
	struct side **p = arg;

	return p[0]->closed > 0 && p[1]->closed > 0;
}

static bool
both_connected(void *arg)
{
	struct side **p = arg;

	return p[0]->connected > 0 && p[1]->connected > 0;
}

/* ---- a plain OpenSSL client on a thread, for peers stream.c would never be ---- */

struct raw {
	uint16_t port;
	const char *cert, *key;
	int max_version; /* 0: any */
	/*
	 * Sent with the client's last handshake flight, in one segment (the
	 * handshake then runs over memory BIOs); the thread then waits for
	 * the server to close.
	 */
	const char *early;
	pthread_t thread;
	int handshake; /* SSL_connect's result */
	int read;      /* SSL_read's result after it */
	int done;      /* set last, atomically */
};

/* Sends what OpenSSL wrote to wbio; false on a failed send. */
static bool
raw_flush(BIO *wbio, int fd)
{
	char *p;
	long n = BIO_get_mem_data(wbio, &p);

	if (n > 0 && send(fd, p, (size_t)n, MSG_NOSIGNAL) != n)
		return false;
	(void)BIO_reset(wbio);
	return true;
}

/*
 * The handshake over memory BIOs, text written after it, and the last
 * flight and text sent together; then waits for the peer to close.
 * Returns 1 when the handshake was done.
 */
static int
raw_early(SSL *ssl, int fd, const char *text)
{
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	char buf[16384];
	ssize_t n;
	int r;

	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	while ((r = SSL_do_handshake(ssl)) != 1) {
		if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ || !raw_flush(wbio, fd) ||
		    (n = recv(fd, buf, sizeof(buf), 0)) <= 0)
			return r;
		(void)BIO_write(rbio, buf, (int)n);
	}
	if (SSL_write(ssl, text, (int)strlen(text)) <= 0 || !raw_flush(wbio, fd))
		return -1;
	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	return 1;
}

static void *
raw_main(void *arg)
{
	struct raw *r = arg;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(r->port)};
	struct timeval tv = {.tv_sec = 5};
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	char byte;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	r->handshake = r->read = -100;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ctx == NULL || fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto out;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (r->max_version)
		(void)SSL_CTX_set_max_proto_version(ctx, r->max_version);
	if (r->cert && (SSL_CTX_use_certificate_file(ctx, r->cert, SSL_FILETYPE_PEM) != 1 ||
	                   SSL_CTX_use_PrivateKey_file(ctx, r->key, SSL_FILETYPE_PEM) != 1))
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ssl = SSL_new(ctx);
	if (r->early) {
		r->handshake = raw_early(ssl, fd, r->early);
		goto out;
	}
	(void)SSL_set_fd(ssl, fd);
	r->handshake = SSL_connect(ssl);
	if (r->handshake == 1)
		r->read = SSL_read(ssl, &byte, 1);
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		(void)close(fd);
	ERR_clear_error();
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void
raw_start(struct raw *r)
{
	assert_int_equal(pthread_create(&r->thread, NULL, raw_main, r), 0);
}

static bool
raw_done(void *arg)
{
	return __atomic_load_n(&((struct raw *)arg)->done, __ATOMIC_ACQUIRE) != 0;
}

static void
raw_join(struct raw *r)
{
	assert_true(run_until(raw_done, r, WAIT_MS));
	assert_int_equal(pthread_join(r->thread, NULL), 0);
}

/* A blocking TCP socket connected to the listener (the kernel completes it). */
static int
tcp_connect(uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static struct stream_listener *
listen_any(struct stream_tls *tls, const char *expected, struct side *d)
{
	struct stream_listener *l = stream_listen(loop, tls, "127.0.0.1", 0, expected, on_event, d);

	assert_non_null(l);
	assert_true(stream_listener_port(l) > 0);
	return l;
}

/* ---- tests ---- */

static void
test_tls_config_errors(void **state)
{
	char reason[256];
	struct stream_tls_config cfg = {
	    .ca_file = path("ca/ca.crt"),
	    .cert_file = path("n1/n1.crt"),
	    .key_file = path("n1/n1.key"),
	    .cluster = "c1",
	};
	struct stream_tls_config c;

	assert_string_equal(stream_tls_name(tls_n1), "n1");

	errno = 0;
	assert_null(stream_tls_new(NULL, NULL, 0));
	assert_int_equal(errno, EINVAL);

	c = cfg;
	c.ca_file = path("nope/ca.crt");
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(reason, "nope/ca.crt"));

	c = cfg;
	c.key_file = path("n2/n2.key");
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(reason, "does not match"));

	c = cfg;
	c.ca_file = path("ca2/ca.crt");
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(reason, "does not chain to ca_file"));

	c = cfg;
	c.cluster = "c2";
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(reason, "is for cluster 'c1', not 'c2'"));

	c = cfg;
	c.cluster = "";
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, EINVAL);

	c = cfg;
	c.ca_file = path("c2.ext"); /* not PEM */
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(reason, "no usable CA certificate"));

	c = cfg;
	c.cert_file = path("n1/n1.key");
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(reason, "no usable certificate"));

	/* A CA certificate has no serverAuth/clientAuth: not a node certificate. */
	c = cfg;
	c.cert_file = path("ca/ca.crt");
	c.key_file = path("ca/ca.key");
	assert_null(stream_tls_new(&c, reason, sizeof(reason)));
	assert_int_equal(errno, EINVAL);
}

static void
test_api_errors(void **state)
{
	struct side cl = {0};
	struct stream_listener *l, *l2;
	struct stream *s;

	errno = 0;
	assert_null(stream_connect(loop, tls_n2, "localhost", 1, "n1", on_event, &cl));
	assert_int_equal(errno, EINVAL);
	assert_null(stream_connect(loop, tls_n2, "127.0.0.1", 1, NULL, on_event, &cl));
	assert_int_equal(errno, EINVAL);
	assert_null(stream_connect(loop, tls_n2, "127.0.0.1", 1, "bad name", on_event, &cl));
	assert_int_equal(errno, EINVAL);
	assert_null(stream_connect(loop, tls_n2, "127.0.0.1", 0, "n1", on_event, &cl));
	assert_int_equal(errno, EINVAL);
	assert_null(stream_listen(loop, tls_n1, "300.1.1.1", 0, NULL, on_event, &cl));
	assert_int_equal(errno, EINVAL);

	l = listen_any(tls_n1, NULL, &cl);
	assert_null(
	    stream_listen(loop, tls_n1, "127.0.0.1", stream_listener_port(l), NULL, on_event, &cl));
	assert_int_equal(errno, EADDRINUSE);

	/* Nobody listens on a freed listener's port: CLOSED, or an immediate refusal. */
	l2 = listen_any(tls_n1, NULL, &cl);
	{
		uint16_t port = stream_listener_port(l2);

		stream_listener_free(l2);
		s = stream_connect(loop, tls_n2, "127.0.0.1", port, "n1", on_event, &cl);
	}
	if (s == NULL) {
		assert_int_equal(errno, ECONNREFUSED);
	} else {
		assert_int_equal(stream_send(s, "x", 1), 0);
		assert_true(run_until(is_closed, &cl, WAIT_MS));
		assert_int_equal(cl.error, -ECONNREFUSED);
		assert_int_equal(cl.connected, 0);
		assert_non_null(strstr(cl.reason, "connect to 127.0.0.1:"));
	}
	stream_listener_free(l);
	stream_listener_free(NULL);
	stream_free(NULL);
	stream_tls_free(NULL);
}

static bool
small_done(void *arg)
{
	struct side **p = arg;

	return (p[0]->text_len >= 11 && p[1]->text_len >= 5) || p[0]->closed || p[1]->closed;
}

static bool
big_done(void *arg)
{
	struct side **p = arg;

	return (p[0]->received >= BIG && p[1]->received >= (1u << 20) && p[2]->drained > 0) ||
	       p[0]->closed || p[1]->closed;
}

static void
test_handshake_and_data(void **state)
{
	struct side sv = {0}, cl = {0};
	struct side *both[] = {&sv, &cl};
	struct stream_listener *l = listen_any(tls_n1, "n2", &sv);
	struct stream *s;
	unsigned char *buf = malloc(BIG);
	uint64_t t0, send_ns;

	assert_non_null(buf);
	s = stream_connect(loop, tls_n2, "127.0.0.1", stream_listener_port(l), "n1", on_event, &cl);
	assert_non_null(s);
	assert_null(stream_peer(s));
	/* Queued before the handshake, sent once the peer is verified. */
	assert_int_equal(stream_send(s, "early,", 6), 0);
	assert_true(run_until(both_connected, both, WAIT_MS));
	assert_ptr_equal(cl.s, s);
	assert_string_equal(cl.peer, "n1");
	assert_string_equal(sv.peer, "n2");

	assert_int_equal(stream_send(s, "hello", 5), 0);
	assert_int_equal(stream_send(sv.s, "world", 5), 0);
	assert_true(run_until(small_done, both, WAIT_MS));
	assert_memory_equal(sv.text, "early,hello", 11);
	assert_memory_equal(cl.text, "world", 5);

	/* 8 MiB client -> server in one call, 1 MiB server -> client at the same time. */
	for (size_t i = 0; i < BIG; i++)
		buf[i] = pattern(i);
	sv.pattern = cl.pattern = true;
	sv.received = cl.received = 0;
	t0 = now_ns();
	assert_int_equal(stream_send(s, buf, BIG), 0);
	send_ns = now_ns() - t0;
	assert_true(stream_pending(s) > 0); /* the socket cannot take 8 MiB at once */
	assert_int_equal(stream_send(sv.s, buf, 1u << 20), 0);
	free(buf);
	{
		struct side *p[] = {&sv, &cl, &cl};

		assert_true(run_until(big_done, p, 30000));
	}
	printf("# 8 MiB: stream_send %.1f ms, longest loop gap %.1f ms, %u ticks, biggest DATA "
	       "%zu\n",
	    send_ns / 1e6, max_gap_ns / 1e6, ticks, sv.max_chunk);
	assert_int_equal(sv.closed + cl.closed, 0);
	assert_int_equal(sv.received, BIG);
	assert_int_equal(cl.received, 1u << 20);
	assert_false(sv.pattern_bad);
	assert_false(cl.pattern_bad);
	assert_true(sv.max_chunk <= 64u << 10);
	assert_int_equal(stream_pending(s), 0);
	assert_true(cl.drained >= 1);
	/* The loop kept turning while 8 MiB went through. */
	assert_true(ticks >= 3);
	assert_true(max_gap_ns < 250u * 1000000u);

	/* An orderly close: 0 here, -ESHUTDOWN there. */
	assert_int_equal(stream_close(s), 0);
	assert_int_equal(stream_close(s), -ENOTCONN);
	assert_int_equal(stream_send(s, "x", 1), -ENOTCONN);
	assert_true(run_until(both_closed, both, WAIT_MS));
	assert_int_equal(cl.error, 0);
	assert_int_equal(sv.error, -ESHUTDOWN);
	assert_int_equal(sv.connected, 1);
	stream_listener_free(l);
}

static bool
got_all(void *arg)
{
	struct side *d = arg;

	return d->received >= 263000 || d->closed;
}

/*
 * Many small records: the reader's 64 KiB chunks end inside a record, so
 * OpenSSL keeps decrypted bytes that poll() cannot see.  The last of them
 * must still arrive although the socket has nothing more to say.
 */
static void
test_small_writes_all_arrive(void **state)
{
	struct side sv = {0}, cl = {0};
	struct side *both[] = {&sv, &cl};
	struct stream_listener *l = listen_any(tls_n1, NULL, &sv);
	unsigned char msg[1000];
	struct stream *s;

	s = stream_connect(loop, tls_n2, "127.0.0.1", stream_listener_port(l), "n1", on_event, &cl);
	assert_non_null(s);
	assert_true(run_until(both_connected, both, WAIT_MS));
	sv.pattern = true;
	for (size_t off = 0; off < 263000; off += sizeof(msg)) {
		for (size_t i = 0; i < sizeof(msg); i++)
			msg[i] = pattern(off + i);
		assert_int_equal(stream_send(s, msg, sizeof(msg)), 0);
	}
	assert_true(run_until(got_all, &sv, WAIT_MS));
	assert_int_equal(sv.received, 263000);
	assert_false(sv.pattern_bad);
	assert_int_equal(sv.closed, 0);
	stream_free(s);
	assert_true(run_until(is_closed, &sv, WAIT_MS));
	stream_listener_free(l);
}

/* Connects tls_c (expecting want) to a listener with tls_s; both must be refused. */
static void
refused_both(struct stream_tls *tls_s, const char *expected_by_server, struct stream_tls *tls_c,
    const char *want, struct side *sv, struct side *cl)
{
	struct side *both[] = {sv, cl};
	struct stream_listener *l = listen_any(tls_s, expected_by_server, sv);
	struct stream *s =
	    stream_connect(loop, tls_c, "127.0.0.1", stream_listener_port(l), want, on_event, cl);

	assert_non_null(s);
	assert_int_equal(stream_send(s, "secret", 6), 0);
	assert_true(run_until(both_closed, both, WAIT_MS));
	assert_int_equal(sv->connected, 0);
	assert_int_equal(cl->connected, 0);
	assert_int_equal(sv->received, 0);
	assert_int_equal(sv->error, -EACCES);
	assert_int_equal(cl->error, -EACCES);
	stream_listener_free(l);
}

static void
test_other_ca_refused(void **state)
{
	struct side sv = {0}, cl = {0}, sv2 = {0}, cl2 = {0};
	struct stream_tls *rogue =
	    tls_make(path("both.crt"), path("rogue/n2.crt"), path("rogue/n2.key"), "c1", 0);
	struct stream_tls *rogue_n1 =
	    tls_make(path("ca2/ca.crt"), path("rogue/n2.crt"), path("rogue/n2.key"), "c1", 0);

	assert_non_null(rogue);
	assert_non_null(rogue_n1);
	/* The server refuses the client's certificate; the client learns it too. */
	refused_both(tls_n1, NULL, rogue, "n1", &sv, &cl);
	assert_non_null(strstr(sv.reason, "peer certificate not signed by the cluster CA"));
	assert_non_null(strstr(cl.reason, "peer refused our certificate"));
	/* The client refuses the server's certificate. */
	refused_both(rogue_n1, NULL, tls_n1, "n2", &sv2, &cl2);
	assert_non_null(strstr(cl2.reason, "peer certificate not signed by the cluster CA"));
	assert_non_null(strstr(sv2.reason, "peer refused the TLS handshake"));
	stream_tls_free(rogue);
	stream_tls_free(rogue_n1);
}

static void
test_other_cluster_refused(void **state)
{
	struct side sv = {0}, sv2 = {0}, cl2 = {0};
	struct stream_listener *l = listen_any(tls_n1, NULL, &sv);
	struct raw r = {.port = stream_listener_port(l)};
	struct stream_tls *c2;

	/* A client certificate from the right CA, naming cluster c2. */
	r.cert = path("c2.crt");
	r.key = path("c2.key");
	raw_start(&r);
	assert_true(run_until(is_closed, &sv, WAIT_MS));
	raw_join(&r);
	assert_int_equal(sv.error, -EACCES);
	assert_string_equal(sv.reason, "peer certificate from cluster 'c2', expected 'c1'");
	assert_int_equal(sv.connected, 0);
	assert_true(r.handshake != 1 || r.read <= 0);
	stream_listener_free(l);

	/* A server of cluster c2 (same CA), refused by a c1 client. */
	c2 = tls_make(path("ca/ca.crt"), path("c2.crt"), path("c2.key"), "c2", 0);
	assert_non_null(c2);
	refused_both(c2, NULL, tls_n1, "n2", &sv2, &cl2);
	assert_string_equal(cl2.reason, "peer certificate from cluster 'c2', expected 'c1'");
	stream_tls_free(c2);
}

static void
test_wrong_peer_refused(void **state)
{
	struct side sv = {0}, cl = {0}, sv2 = {0}, cl2 = {0};

	/* The client expects n3 and reaches n1. */
	refused_both(tls_n1, NULL, tls_n2, "n3", &sv, &cl);
	assert_string_equal(cl.reason, "peer is 'n1', expected 'n3'");
	/* The listener expects n3 and n2 calls. */
	refused_both(tls_n1, "n3", tls_n2, "n1", &sv2, &cl2);
	assert_string_equal(sv2.reason, "peer is 'n2', expected 'n3'");
	assert_non_null(strstr(cl2.reason, "peer refused our certificate"));
}

static void
test_tls12_refused(void **state)
{
	struct side sv = {0};
	struct stream_listener *l = listen_any(tls_n1, NULL, &sv);
	struct raw r = {.port = stream_listener_port(l), .max_version = TLS1_2_VERSION};

	r.cert = path("n2/n2.crt");
	r.key = path("n2/n2.key");
	raw_start(&r);
	assert_true(run_until(is_closed, &sv, WAIT_MS));
	raw_join(&r);
	assert_int_equal(sv.error, -EPROTO);
	assert_non_null(strstr(sv.reason, "does not speak TLS 1.3"));
	assert_int_equal(sv.connected, 0);
	assert_true(r.handshake != 1);
	stream_listener_free(l);
}

static bool
got_text(void *arg)
{
	struct side *d = arg;

	return d->text_len >= 4 || d->closed;
}

/*
 * A client's first data in the same segment as its last handshake flight:
 * reading ahead, the server's read of the flight takes some or all of the
 * data into OpenSSL, where poll() cannot see it.  It must still be
 * delivered.
 */
static void
test_data_with_last_flight(void **state)
{
	struct side sv = {0};
	struct stream_listener *l = listen_any(tls_n1, NULL, &sv);
	struct raw r = {.port = stream_listener_port(l), .early = "ping"};

	r.cert = path("n2/n2.crt");
	r.key = path("n2/n2.key");
	raw_start(&r);
	assert_true(run_until(got_text, &sv, WAIT_MS));
	assert_int_equal(sv.connected, 1);
	assert_int_equal(sv.closed, 0);
	assert_memory_equal(sv.text, "ping", 4);
	stream_free(sv.s);
	sv.s = NULL;
	raw_join(&r);
	assert_int_equal(r.handshake, 1);
	stream_listener_free(l);
}

static void
test_peer_leaves_mid_stream(void **state)
{
	struct side sv = {0}, cl = {0}, sv2 = {0}, cl2 = {0};
	struct side *both[] = {&sv, &cl}, *both2[] = {&sv2, &cl2};
	struct stream_listener *l = listen_any(tls_n1, NULL, &sv);
	unsigned char *buf = calloc(1, BIG);
	struct stream *s;

	assert_non_null(buf);
	/* The client drops the connection (no close_notify) after sending a little. */
	s = stream_connect(loop, tls_n2, "127.0.0.1", stream_listener_port(l), "n1", on_event, &cl);
	assert_non_null(s);
	assert_true(run_until(both_connected, both, WAIT_MS));
	assert_int_equal(stream_send(s, "partial", 7), 0);
	stream_free(s);
	cl.s = NULL;
	assert_true(run_until(is_closed, &sv, WAIT_MS));
	assert_int_equal(sv.error, -ECONNRESET);
	assert_non_null(strstr(sv.reason, "connection closed by peer"));
	assert_true(sv.received <= 7);
	stream_listener_free(l);

	/* The server drops the connection on the first bytes of 8 MiB. */
	l = listen_any(tls_n1, NULL, &sv2);
	cl2.keep_on_close = true; /* so that stream_send() can be tried after CLOSED */
	s = stream_connect(
	    loop, tls_n2, "127.0.0.1", stream_listener_port(l), "n1", on_event, &cl2);
	assert_non_null(s);
	assert_true(run_until(both_connected, both2, WAIT_MS));
	sv2.free_on_data = true;
	assert_int_equal(stream_send(s, buf, BIG), 0);
	assert_true(run_until(is_closed, &cl2, WAIT_MS));
	assert_true(sv2.received > 0);
	assert_true(cl2.error == -ECONNRESET || cl2.error == -EPIPE);
	assert_true(cl2.reason[0] != '\0');
	assert_int_equal(stream_send(s, "x", 1), -ENOTCONN);
	assert_int_equal(stream_close(s), -ENOTCONN);
	stream_free(s);
	free(buf);
	stream_listener_free(l);
}

static void
test_garbage_then_good(void **state)
{
	struct side sv = {0}, sv2 = {0}, cl2 = {0};
	struct side *both[] = {&sv2, &cl2};
	struct stream_listener *l = listen_any(tls_n1, NULL, &sv);
	const char junk[] = "GET / HTTP/1.0\r\n\r\n";
	char c;
	int fd = tcp_connect(stream_listener_port(l));

	assert_int_equal(write(fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	assert_true(run_until(is_closed, &sv, WAIT_MS));
	assert_int_equal(sv.error, -EPROTO);
	assert_int_equal(sv.connected, 0);
	assert_non_null(strstr(sv.reason, "TLS handshake failed"));
	/* The listener closed that socket and still works. */
	assert_true(read(fd, &c, 1) <= 0);
	(void)close(fd);
	/* Another shape of garbage (a TLS record header announcing 64 KiB), then a real peer. */
	stream_listener_free(l);
	l = listen_any(tls_n1, NULL, &sv2);
	fd = tcp_connect(stream_listener_port(l));
	assert_int_equal(write(fd, "\x16\x03\x01\xff\xff garbage", 14), 14);
	{
		struct stream *s = stream_connect(
		    loop, tls_n2, "127.0.0.1", stream_listener_port(l), "n1", on_event, &cl2);

		assert_non_null(s);
		assert_true(run_until(both_connected, both, WAIT_MS));
		assert_int_equal(sv2.closed, 1); /* the garbage connection only */
		assert_int_equal(sv2.error, -EPROTO);
		stream_free(s);
		cl2.s = NULL;
	}
	(void)close(fd);
	if (sv2.s != NULL)
		stream_free(sv2.s);
	stream_listener_free(l);
}

static void
test_silent_peer_times_out(void **state)
{
	struct side sv = {0};
	struct stream_tls *quick =
	    tls_make(path("n1/ca.crt"), path("n1/n1.crt"), path("n1/n1.key"), "c1", 200);
	struct stream_listener *l;
	uint64_t t0 = now_ns();
	int fd;

	assert_non_null(quick);
	l = listen_any(quick, NULL, &sv);
	fd = tcp_connect(stream_listener_port(l));
	assert_true(run_until(is_closed, &sv, WAIT_MS));
	assert_int_equal(sv.error, -ETIMEDOUT);
	assert_non_null(strstr(sv.reason, "timed out after 200 ms"));
	assert_true(now_ns() - t0 >= 150u * 1000000u);
	(void)close(fd);
	stream_listener_free(l);
	stream_tls_free(quick);
}

/* tandem-certs: bad input gives one line on stderr and a non-zero exit. */
static void
test_certs_tool_errors(void **state)
{
	const char *err = path("tool.err");

	assert_int_equal(run("'%s' --help > %s", tool, err), 0);
	assert_non_null(strstr(slurp(err), "Re-running"));

	assert_int_equal(
	    run("'%s' node %s/x --ca %s/missing --name x 2>%s", tool, dir, dir, err), 1);
	assert_non_null(strstr(slurp(err), "missing not found"));

	assert_int_equal(run("'%s' ca %s/ca --cluster c1 2>%s", tool, dir, err), 1);
	assert_non_null(strstr(slurp(err), "exists; pass --force"));

	assert_int_equal(run("'%s' node %s/n1 --ca %s/ca --name n1 2>%s", tool, dir, dir, err), 1);
	assert_non_null(strstr(slurp(err), "n1.key exists; pass --force"));

	assert_int_equal(
	    run("'%s' node %s/x --ca %s/ca --name 'a/b' 2>%s", tool, dir, dir, err), 1);
	assert_non_null(strstr(slurp(err), "bad node name 'a/b'"));

	assert_int_equal(run("'%s' ca %s/y --cluster 'c 1' 2>%s", tool, dir, err), 1);
	assert_non_null(strstr(slurp(err), "bad cluster name"));

	assert_int_equal(
	    run("'%s' node %s/x --ca %s/ca --name x --addr 10.0.0.256 2>%s", tool, dir, dir, err),
	    1);
	assert_non_null(strstr(slurp(err), "bad --addr '10.0.0.256'"));

	assert_int_equal(
	    run("'%s' node %s/x --ca %s/ca --name x --addr 1::2::3 2>%s", tool, dir, dir, err), 1);
	assert_non_null(strstr(slurp(err), "bad --addr '1::2::3'"));

	assert_int_equal(run("'%s' ca %s/y --cluster c1 --days 0 2>%s", tool, dir, err), 1);
	assert_non_null(strstr(slurp(err), "bad --days"));

	assert_int_equal(
	    run("'%s' node %s/x --ca %s/ca2 --name x --cluster c1 2>%s", tool, dir, dir, err), 2);
	assert_int_equal(run("'%s' frobnicate 2>%s", tool, err), 2);

	/* The CA key is needed to sign. */
	assert_int_equal(run("mkdir -p %s/nokey && cp %s/ca/ca.crt %s/nokey/", dir, dir, dir), 0);
	assert_int_equal(run("'%s' node %s/x --ca %s/nokey --name x 2>%s", tool, dir, dir, err), 1);
	assert_non_null(strstr(slurp(err), "ca.key not found"));

	/* A failed run left nothing behind; --force replaces. */
	assert_int_equal(run("test ! -e %s/x/x.key && test ! -e %s/x/x.crt", dir, dir), 0);
	assert_int_equal(
	    run("'%s' node %s/n3 --ca %s/ca --name n3 --force >/dev/null", tool, dir, dir), 0);
	assert_int_equal(run("test \"$(stat -c %%a %s/n3/n3.key)\" = 600", dir), 0);
	assert_int_equal(run("ls %s/n3 | grep -q tmp", dir), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_config_errors),
	    cmocka_unit_test(test_api_errors),
	    cmocka_unit_test(test_handshake_and_data),
	    cmocka_unit_test(test_small_writes_all_arrive),
	    cmocka_unit_test(test_other_ca_refused),
	    cmocka_unit_test(test_other_cluster_refused),
	    cmocka_unit_test(test_wrong_peer_refused),
	    cmocka_unit_test(test_tls12_refused),
	    cmocka_unit_test(test_data_with_last_flight),
	    cmocka_unit_test(test_peer_leaves_mid_stream),
	    cmocka_unit_test(test_garbage_then_good),
	    cmocka_unit_test(test_silent_peer_times_out),
	    cmocka_unit_test(test_certs_tool_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

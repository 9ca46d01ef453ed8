/*
 * test-replicate: two struct replicate on one qb_loop in one process,
 * replicating over 127.0.0.1 / 127.0.0.2 with real TLS (certificates made
 * by tools/tandem-certs in a temporary directory) and real SQLite files.
 * n1 listens on 127.0.0.1, n2 on 127.0.0.2, both on the same port.  It
 * checks sync and async commits, group commit, refusals, catch-up from
 * the backlog, snapshots (cold, after a backlog overflow, with writes
 * during it), a diverged standby archived, a peer of another CA refused,
 * set_alone, deactivate and the out-of-sync timeout.  Every wait runs
 * the loop until a condition holds or a deadline passes; nothing sleeps.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
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

#include <qb/qbloop.h>
#include <sqlite3.h>

#include "other-process.h"
#include "replicate/replicate.h"
#include "replicate/store.h"
#include "replicate/stream.h"
#include "replicate/wire.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

#define WAIT_MS 20000

static char dir[] = "/tmp/tandem-replicate-XXXXXX";
static char tool[4096];
static qb_loop_t *loop;
static uint16_t port;
static int test_no;

/* ---- files and commands ---- */

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

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* A port free on 127.0.0.1 and 127.0.0.2 right now. */
static uint16_t
free_port(void)
{
	for (int tries = 0; tries < 20; tries++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t len = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM, 0), fd2;
		uint16_t p;

		sa.sin_addr.s_addr = htonl(0x7f000001);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
			if (fd >= 0)
				(void)close(fd);
			continue;
		}
		p = ntohs(sa.sin_port);
		(void)close(fd);
		fd2 = socket(AF_INET, SOCK_STREAM, 0);
		sa.sin_addr.s_addr = htonl(0x7f000002);
		if (fd2 >= 0 && bind(fd2, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			(void)close(fd2);
			return p;
		}
		if (fd2 >= 0)
			(void)close(fd2);
	}
	return 0;
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
	/* Cluster c1: CA, nodes n1 n2.  Another CA, also naming c1, signs a rogue n2. */
	if (run("'%s' ca %s/ca --cluster c1 >/dev/null", tool, dir) != 0 ||
	    run("'%s' node %s/n1 --ca %s/ca --name n1 >/dev/null", tool, dir, dir) != 0 ||
	    run("'%s' node %s/n2 --ca %s/ca --name n2 >/dev/null", tool, dir, dir) != 0 ||
	    run("'%s' ca %s/ca2 --cluster c1 >/dev/null", tool, dir) != 0 ||
	    run("'%s' node %s/rogue --ca %s/ca2 --name n2 >/dev/null", tool, dir, dir) != 0)
		return -1;
	/* The rogue trusts both CAs, so the refusal is n1's own. */
	if (run("cat %s/ca/ca.crt %s/ca2/ca.crt > %s/rogue/ca.crt", dir, dir, dir) != 0)
		return -1;
	loop = qb_loop_create();
	return loop != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	if (loop != NULL)
		qb_loop_destroy(loop);
	(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- waiting on the loop, with a deadline ---- */

typedef bool (*cond_fn)(void *arg);

static cond_fn wait_cond;
static void *wait_arg;
static qb_loop_timer_handle tick_timer, deadline_timer;
static uint64_t last_tick_ns, max_gap_ns;

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
	(void)qb_loop_timer_add(loop, QB_LOOP_LOW, 1000000, NULL, tick, &tick_timer);
	check_stop();
}

static void
deadline(void *data)
{
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
	last_tick_ns = 0;
	(void)qb_loop_timer_add(
	    loop, QB_LOOP_HIGH, (uint64_t)ms * 1000000u, NULL, deadline, &deadline_timer);
	(void)qb_loop_timer_add(loop, QB_LOOP_LOW, 1000000, NULL, tick, &tick_timer);
	qb_loop_run(loop);
	(void)qb_loop_timer_del(loop, tick_timer);
	(void)qb_loop_timer_del(loop, deadline_timer);
	wait_cond = NULL;
	return cond(arg);
}

static bool
never(void *arg)
{
	return false;
}

/* Runs the loop for ms (to show that something does NOT happen). */
static void
run_for(unsigned int ms)
{
	(void)run_until(never, NULL, ms);
}

/* ---- nodes ---- */

struct node {
	struct replicate *r;
	const char *name; /* n1 or n2 */
	const char *cert; /* the directory of its certificate: n1, n2, rogue */
	char state[512];
	char db[600];
	struct replicate_config cfg;
	unsigned int events;
	unsigned int links_seen; /* bit per enum replicate_link seen in CHANGED */
	void (*hook)(struct node *n, enum replicate_link link);
};

static struct node n1, n2;

static void
on_event(struct replicate *r, enum replicate_event ev, void *data)
{
	struct node *n = data;
	struct replicate_status st;

	assert_int_equal(ev, REPLICATE_EVENT_CHANGED);
	assert_ptr_equal(r, n->r);
	replicate_status(r, &st);
	n->events++;
	n->links_seen |= 1u << st.link;
	if (n->hook != NULL)
		n->hook(n, st.link);
	check_stop();
}

/* Sets n up for this test (fresh directory), without starting it. */
static void
node_init(struct node *n, const char *name, const char *cert)
{
	memset(n, 0, sizeof(*n));
	n->name = name;
	n->cert = cert;
	(void)snprintf(n->state, sizeof(n->state), "%s/t%d-%s", dir, test_no, name);
	(void)snprintf(n->db, sizeof(n->db), "%s/db.sqlite", n->state);
	assert_int_equal(mkdir(n->state, 0700), 0);
	n->cfg.db_path = n->db;
	n->cfg.state_dir = n->state;
	n->cfg.cluster = "c1";
	n->cfg.listen_addr = strcmp(name, "n1") == 0 ? "127.0.0.1" : "127.0.0.2";
	n->cfg.port = port;
	n->cfg.mode = REPLICATE_SYNC;
	n->cfg.node_id = strcmp(name, "n1") == 0 ? 1 : 2;
	n->cfg.incarnation = 1;
	n->cfg.reconnect_ms = 50;
}

static void
node_certs(struct node *n)
{
	static char ca[600], crt[600], key[600];

	(void)snprintf(ca, sizeof(ca), "%s/%s/ca.crt", dir, n->cert);
	(void)snprintf(crt, sizeof(crt), "%s/%s/%s.crt", dir, n->cert, n->name);
	(void)snprintf(key, sizeof(key), "%s/%s/%s.key", dir, n->cert, n->name);
	n->cfg.ca_file = ca;
	n->cfg.cert_file = crt;
	n->cfg.key_file = key;
}

static void
node_start(struct node *n)
{
	char err[256] = "";

	node_certs(n);
	n->r = replicate_new(loop, &n->cfg, on_event, n, err, sizeof(err));
	if (n->r == NULL)
		fprintf(stderr, "# replicate_new: %s\n", err);
	assert_non_null(n->r);
	n->cfg.ca_file = n->cfg.cert_file = n->cfg.key_file = NULL;
	assert_false(replicate_in_sync(n->r));
}

static void
node_stop(struct node *n)
{
	replicate_free(n->r);
	n->r = NULL;
}

static void
peer_of(struct node *n)
{
	bool one = strcmp(n->name, "n1") == 0;

	assert_int_equal(
	    replicate_set_peer(n->r, one ? "n2" : "n1", one ? "127.0.0.2" : "127.0.0.1"), 0);
}

static enum replicate_link
link_of(struct node *n)
{
	struct replicate_status st;

	replicate_status(n->r, &st);
	return st.link;
}

static bool
linked(void *arg)
{
	struct node **p = arg;

	return replicate_in_sync(p[1]->r) && link_of(p[0]) == REPLICATE_LINK_STREAMING &&
	       link_of(p[1]) == REPLICATE_LINK_STREAMING;
}

/* a active at epoch, b its standby, both in sync and streaming. */
static void
pair_up(struct node *a, struct node *b, uint64_t epoch)
{
	struct node *p[2] = {a, b};

	peer_of(a);
	peer_of(b);
	assert_int_equal(replicate_activate(a->r, epoch), 0);
	replicate_peer_active(b->r, true);
	assert_true(run_until(linked, p, WAIT_MS));
}

/* Frees what a failed test left behind. */
static int
test_teardown(void **state)
{
	if (n1.r != NULL)
		node_stop(&n1);
	if (n2.r != NULL)
		node_stop(&n2);
	return 0;
}

static void
test_begin(void)
{
	test_no++;
	port = free_port();
	assert_true(port != 0);
}

/* ---- commits ---- */

struct answer {
	bool done;
	int rc;
	struct replicate_result res;
	char error[256];
	struct node *check; /* count rows of t on it when answered */
	int64_t check_rows;
	uint64_t at_ns;
};

static int64_t
count_rows(struct node *n, const char *table)
{
	struct store_rows rows = {0};
	char sql[128];
	int64_t v;

	(void)snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	if (replicate_query(n->r, sql, NULL, 0, &rows) != 0)
		return -1;
	v = rows.values[0].i;
	store_rows_free(&rows);
	return v;
}

static void
on_done(int rc, const struct replicate_result *res, void *data)
{
	struct answer *a = data;

	assert_false(a->done);
	a->done = true;
	a->rc = rc;
	a->res = *res;
	a->at_ns = now_ns();
	if (rc != 0) {
		assert_non_null(res->error);
		(void)snprintf(a->error, sizeof(a->error), "%s", res->error);
	}
	if (a->check != NULL)
		a->check_rows = count_rows(a->check, "t");
	check_stop();
}

static int
exec_async(struct node *n, const char *sql, struct answer *a)
{
	struct store_stmt st = {.sql = sql};

	return replicate_exec(n->r, &st, 1, on_done, a);
}

static bool
answered(void *arg)
{
	return ((struct answer *)arg)->done;
}

/* Executes sql on n and waits for the answer; returns its rc. */
static int
exec_wait(struct node *n, const char *sql)
{
	struct answer a = {0};

	assert_int_equal(exec_async(n, sql, &a), 0);
	assert_true(run_until(answered, &a, WAIT_MS));
	if (a.rc != 0)
		printf("# %s: %d %s\n", sql, a.rc, a.error);
	return a.rc;
}

static void
insert_rows(struct node *n, int from, int count)
{
	char sql[256];

	for (int i = from; i < from + count; i++) {
		(void)snprintf(
		    sql, sizeof(sql), "INSERT INTO t(id, v) VALUES (%d, 'row %d')", i, i);
		assert_int_equal(exec_wait(n, sql), 0);
	}
}

struct rows_cond {
	struct node *n;
	int64_t want;
};

static bool
has_rows(void *arg)
{
	struct rows_cond *c = arg;

	return count_rows(c->n, "t") == c->want;
}

static bool
same_data(void *arg)
{
	struct node **p = arg;
	uint64_t h1, h2, e1, e2, s1, s2;

	if (replicate_content_hash(p[0]->r, &h1, &e1, &s1) != 0 ||
	    replicate_content_hash(p[1]->r, &h2, &e2, &s2) != 0)
		return false;
	return h1 == h2 && s1 == s2 && e1 == e2;
}

static void
assert_same(struct node *a, struct node *b)
{
	struct node *p[2] = {a, b};

	assert_true(run_until(same_data, p, WAIT_MS));
}

static bool
in_sync(void *arg)
{
	return replicate_in_sync(((struct node *)arg)->r);
}

static bool
out_of_sync(void *arg)
{
	return !replicate_in_sync(((struct node *)arg)->r);
}

/* ---- tests ---- */

/* A new test's pair: n1 active at epoch 1, n2 its standby, and table t. */
static void
pair_with_table(void)
{
	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	node_start(&n1);
	node_start(&n2);
	pair_up(&n1, &n2, 1);
	assert_int_equal(exec_wait(&n1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
}

static void
test_errors(void **state)
{
	struct store_stmt st = {.sql = "SELECT 1"}, nosql = {0};
	struct answer a = {0};
	char err[256] = "";
	struct replicate *r;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");

	/* A missing certificate is named in the error. */
	n1.cfg.ca_file = "/nonexistent/ca.crt";
	n1.cfg.cert_file = "/nonexistent/n1.crt";
	n1.cfg.key_file = "/nonexistent/n1.key";
	r = replicate_new(loop, &n1.cfg, on_event, &n1, err, sizeof(err));
	assert_null(r);
	printf("# %s\n", err);
	assert_non_null(strstr(err, "/nonexistent/"));
	/* A missing state directory too. */
	node_start(&n2);
	node_stop(&n2);
	node_certs(&n2);
	n2.cfg.state_dir = "/nonexistent-state";
	r = replicate_new(loop, &n2.cfg, on_event, &n2, err, sizeof(err));
	assert_null(r);
	printf("# %s\n", err);
	assert_non_null(strstr(err, "/nonexistent-state"));
	/* A database that cannot be created. */
	n2.cfg.state_dir = n2.state;
	n2.cfg.db_path = "/nonexistent-db/db.sqlite";
	r = replicate_new(loop, &n2.cfg, on_event, &n2, err, sizeof(err));
	assert_null(r);
	printf("# %s\n", err);
	assert_non_null(strstr(err, "/nonexistent-db/db.sqlite"));
	node_start(&n1);

	/* The standby refuses writes at once; bad calls are refused. */
	assert_int_equal(replicate_exec(n1.r, &st, 1, on_done, &a), -EROFS);
	assert_int_equal(replicate_exec(n1.r, &st, 0, on_done, &a), -EINVAL);
	assert_int_equal(replicate_exec(n1.r, &nosql, 1, on_done, &a), -EINVAL);
	assert_int_equal(replicate_set_peer(n1.r, "", "127.0.0.2"), -EINVAL);
	assert_int_equal(replicate_activate(n1.r, 5), 0);
	assert_true(replicate_in_sync(n1.r));
	assert_int_equal(replicate_activate(n1.r, 4), -EINVAL);
	assert_int_equal(replicate_exec(n1.r, &nosql, 1, on_done, &a), -EINVAL);
	/* An SQL error comes back through the callback. */
	replicate_set_alone(n1.r, true);
	assert_int_equal(exec_async(&n1, "INSERT INTO nowhere VALUES (1)", &a), 0);
	assert_false(a.done); /* never during the call */
	assert_true(run_until(answered, &a, WAIT_MS));
	assert_int_equal(a.rc, -EINVAL);
	assert_non_null(strstr(a.error, "nowhere"));
	/* A bad query keeps its message. */
	{
		struct store_rows rows = {0};

		assert_int_equal(
		    replicate_query(n1.r, "SELECT * FROM nowhere", NULL, 0, &rows), -EINVAL);
		assert_non_null(strstr(replicate_errmsg(n1.r), "nowhere"));
	}
	assert_string_equal(replicate_mode_name(REPLICATE_SYNC), "sync");
	assert_string_equal(replicate_mode_name(REPLICATE_ASYNC), "async");
	assert_string_equal(replicate_link_name(REPLICATE_LINK_STREAMING), "streaming");
	assert_string_equal(replicate_link_name(REPLICATE_LINK_SNAPSHOT), "snapshot");
	node_stop(&n1);
	replicate_free(NULL);
}

static int chain_left_start, chain_left, chain_next, chain_rc, chain_answered;

/* Answers one commit and issues the next. */
static void
chain_done(int rc, const struct replicate_result *res, void *data)
{
	struct store_stmt st;
	char sql[128];

	if (rc != 0)
		chain_rc = rc;
	if (res != NULL)
		chain_answered++;
	if (chain_left == 0 || rc != 0) {
		chain_left = 0;
		check_stop();
		return;
	}
	chain_left--;
	(void)snprintf(sql, sizeof(sql), "INSERT INTO t(id, v) VALUES (%d, 'chain')", chain_next++);
	st = (struct store_stmt){.sql = sql};
	assert_int_equal(replicate_exec(n1.r, &st, 1, chain_done, NULL), 0);
}

static bool
chain_over(void *arg)
{
	return chain_answered == *(int *)arg || chain_rc != 0;
}

static void
test_sync_commit(void **state)
{
	struct replicate_status st;
	struct answer a = {0};
	uint64_t t0, n = 200;

	pair_with_table();

	/* Answered only once the standby has the row. */
	a.check = &n2;
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (1, 'one')", &a), 0);
	assert_true(run_until(answered, &a, WAIT_MS));
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.check_rows, 1);
	assert_int_equal(a.res.changes, 1);
	assert_int_equal(a.res.last_rowid, 1);
	assert_int_equal(a.res.epoch, 1);
	assert_int_equal(a.res.seq, 2);

	/* Round trips, one after the other, each issued from the loop as a client's would be. */
	chain_left = chain_left_start = (int)n;
	chain_next = 100;
	t0 = now_ns();
	chain_answered = 0;
	chain_done(0, NULL, NULL);
	assert_true(run_until(chain_over, &chain_left_start, WAIT_MS));
	assert_int_equal(chain_rc, 0);
	printf(
	    "# sync commit round trip over loopback: %" PRIu64 " us\n", (now_ns() - t0) / n / 1000);
	assert_int_equal(count_rows(&n2, "t"), 1 + (int64_t)n);

	replicate_status(n1.r, &st);
	assert_true(st.active);
	assert_int_equal(st.link, REPLICATE_LINK_STREAMING);
	assert_string_equal(st.peer, "n2");
	assert_int_equal(st.lag, 0);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.seq, 2 + n);
	assert_int_equal(st.peer_seq, 2 + n);
	assert_true(st.in_sync);
	replicate_status(n2.r, &st);
	assert_false(st.active);
	assert_true(st.in_sync);
	assert_string_equal(st.peer, "n1");
	assert_int_equal(st.seq, 2 + n);
	assert_null(st.archive);
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

static void
test_async(void **state)
{
	struct answer a = {0};
	struct rows_cond rc = {&n2, 1};

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	n1.cfg.mode = REPLICATE_ASYNC;
	node_start(&n1);
	node_start(&n2);
	pair_up(&n1, &n2, 1);
	assert_int_equal(exec_wait(&n1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	rc.want = 0;
	assert_true(run_until(has_rows, &rc, WAIT_MS));
	rc.want = 1;
	/* Answered at commit, before the standby could apply it. */
	a.check = &n2;
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (1, 'one')", &a), 0);
	assert_true(run_until(answered, &a, WAIT_MS));
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.check_rows, 0);
	assert_true(run_until(has_rows, &rc, WAIT_MS));
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

static void
test_group_commit(void **state)
{
	struct answer a[4] = {{0}};

	pair_with_table();
	/* Four in one loop turn: one frame; the bad one fails alone. */
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (1, 'a')", &a[0]), 0);
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (2, 'b')", &a[1]), 0);
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (1, 'dup')", &a[2]), 0);
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (3, 'c')", &a[3]), 0);
	for (int i = 0; i < 4; i++)
		assert_true(run_until(answered, &a[i], WAIT_MS));
	assert_int_equal(a[0].rc, 0);
	assert_int_equal(a[1].rc, 0);
	assert_int_equal(a[2].rc, -EINVAL);
	assert_int_equal(a[3].rc, 0);
	assert_int_equal(a[0].res.seq, 2);
	assert_int_equal(a[1].res.seq, 2);
	assert_int_equal(a[3].res.seq, 2);
	assert_int_equal(count_rows(&n2, "t"), 3);
	/* Requests of 200 KiB: a frame takes them up to 256 KiB (one at least). */
	{
		static char big[200 * 1024];
		const struct store_value v = {.type = STORE_BLOB, .p = big, .len = sizeof(big)};
		struct store_stmt st = {
		    .sql = "INSERT INTO t VALUES (NULL, ?)", .params = &v, .n_params = 1};
		struct answer b[3] = {{0}};

		for (int i = 0; i < 3; i++)
			assert_int_equal(replicate_exec(n1.r, &st, 1, on_done, &b[i]), 0);
		for (int i = 0; i < 3; i++) {
			assert_true(run_until(answered, &b[i], WAIT_MS));
			assert_int_equal(b[i].rc, 0);
		}
		assert_int_equal(b[0].res.seq, 3);
		assert_int_equal(b[1].res.seq, 3);
		assert_int_equal(b[2].res.seq, 4);
	}
	/* Write refused on the standby. */
	{
		struct store_stmt st = {.sql = "INSERT INTO t VALUES (9, 'x')"};
		struct answer b = {0};

		assert_int_equal(replicate_exec(n2.r, &st, 1, on_done, &b), -EROFS);
		run_for(20);
		assert_false(b.done);
	}
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

static off_t
wal_size(const struct node *n)
{
	char path[640];
	struct stat st;

	(void)snprintf(path, sizeof(path), "%s-wal", n->db);
	return stat(path, &st) == 0 ? st.st_size : 0;
}

/*
 * Steady commits: on both sides the WAL's tail is copied by the
 * checkpointer while commits and applies wait (the store hands it over),
 * every commit is still answered, and the WAL starts over instead of
 * growing (a page a commit and more: 20 MiB and more if never cut).
 */
static void
test_wal_tail(void **state)
{
	struct answer a[8];
	char sql[128];
	off_t most = 0;
	int id = 0;

	pair_with_table();
	for (int round = 0; round < 640; round++) {
		for (int i = 0; i < 8; i++) {
			a[i] = (struct answer){0};
			(void)snprintf(
			    sql, sizeof(sql), "INSERT INTO t VALUES (%d, randomblob(3000))", ++id);
			assert_int_equal(exec_async(&n1, sql, &a[i]), 0);
		}
		for (int i = 0; i < 8; i++) {
			assert_true(run_until(answered, &a[i], WAIT_MS));
			assert_int_equal(a[i].rc, 0);
		}
		if (wal_size(&n1) > most)
			most = wal_size(&n1);
		if (wal_size(&n2) > most)
			most = wal_size(&n2);
	}
	if (most > 16 * 1024 * 1024)
		fail_msg("the WAL grew to %lld bytes", (long long)most);
	assert_int_equal(count_rows(&n2, "t"), id);
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

/*
 * status tells the longest step of the loop and counts those over 10 ms:
 * a commit of 300 000 rows is one.
 */
static void
test_steps(void **state)
{
	struct replicate_status st;

	pair_with_table();
	replicate_status(n1.r, &st);
	assert_non_null(st.longest_step);
	assert_true(st.longest_step_us > 0);
	assert_int_equal(
	    exec_wait(&n1, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
	                   " FROM c WHERE x < 300000) INSERT INTO t SELECT x, 'v' FROM c"),
	    0);
	replicate_status(n1.r, &st);
	assert_true(st.slow_steps >= 1);
	assert_true(st.longest_step_us > 10000);
	assert_string_equal(st.longest_step, "commit");
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

static void
test_catchup(void **state)
{
	struct node *p[2] = {&n1, &n2};

	pair_with_table();
	insert_rows(&n1, 1, 10);
	/* The standby goes away; the active goes on alone. */
	node_stop(&n2);
	replicate_set_alone(n1.r, true);
	insert_rows(&n1, 11, 20);
	/* It comes back: the backlog is enough, no snapshot. */
	node_start(&n2);
	peer_of(&n2);
	replicate_peer_active(n2.r, true);
	assert_true(run_until(linked, p, WAIT_MS));
	assert_true(n2.links_seen & (1u << REPLICATE_LINK_CATCHUP));
	assert_false(n2.links_seen & (1u << REPLICATE_LINK_SNAPSHOT));
	assert_int_equal(count_rows(&n2, "t"), 30);
	/* The live stream started at the active's position then: the in-sync marker. */
	{
		struct replicate_status st;
		uint64_t epoch, seq;

		replicate_status(n1.r, &st);
		replicate_position(n1.r, &epoch, &seq);
		assert_int_equal(st.sync_marker_epoch, epoch);
		assert_int_equal(st.sync_marker, seq);
		assert_true(seq > 20);
	}
	replicate_set_alone(n1.r, false);
	insert_rows(&n1, 31, 1);
	assert_int_equal(count_rows(&n2, "t"), 31);
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

/* Fills a database with rows of 4 KiB before replication starts. */
static void
prefill(const char *db, int rows)
{
	struct store *s = store_open(db, NULL);
	struct store_frame f = {0};
	char sql[256];
	struct store_stmt st[2] = {
	    {.sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"},
	    {.sql = sql},
	};

	assert_non_null(s);
	(void)snprintf(sql, sizeof(sql),
	    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) "
	    "INSERT INTO t(id, v) SELECT x, randomblob(4096) FROM c",
	    rows);
	assert_int_equal(store_exec(s, st, 2, &f), 0);
	store_frame_clear(&f);
	store_close(s);
}

static struct answer during[5];

/* Writes on the active while the standby receives the snapshot. */
static void
write_during_snapshot(struct node *n, enum replicate_link link)
{
	char sql[128];

	if (link != REPLICATE_LINK_SNAPSHOT || during[0].check != NULL)
		return;
	for (int i = 0; i < 5; i++) {
		during[i].check = &n1; /* marks the hook as run */
		(void)snprintf(
		    sql, sizeof(sql), "INSERT INTO t(id, v) VALUES (%d, 'during')", 100000 + i);
		assert_int_equal(exec_async(&n1, sql, &during[i]), 0);
	}
}

static void
test_snapshot(void **state)
{
	struct node *p[2] = {&n1, &n2};
	struct replicate_status st;
	struct stat sb;
	uint64_t t0, dt;
	int rows = 8000;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	prefill(n1.db, rows);
	assert_int_equal(stat(n1.db, &sb), 0);
	memset(during, 0, sizeof(during));
	node_start(&n1);
	node_start(&n2);
	n2.hook = write_during_snapshot;
	t0 = now_ns();
	pair_up(&n1, &n2, 1);
	dt = now_ns() - t0;
	printf("# snapshot of %lld bytes in %" PRIu64 " ms: %.1f MB/s, loop gap max %" PRIu64
	       " ms\n",
	    (long long)sb.st_size, dt / 1000000, (double)sb.st_size / ((double)dt / 1e9) / 1e6,
	    max_gap_ns / 1000000);
	assert_true(n2.links_seen & (1u << REPLICATE_LINK_SNAPSHOT));
	for (int i = 0; i < 5; i++) {
		assert_true(run_until(answered, &during[i], WAIT_MS));
		assert_int_equal(during[i].rc, 0);
	}
	assert_int_equal(count_rows(&n2, "t"), rows + 5);
	assert_true(replicate_in_sync(n2.r));
	replicate_status(n2.r, &st);
	assert_null(st.archive); /* an empty standby has nothing to keep */
	assert_int_equal(st.snapshot_total, 0);
	assert_same(&n1, &n2);
	/* Neither the file sent nor the one put in its place is open to others. */
	assert_int_equal(other_process(n1.db, "SELECT count(*) FROM t"), SQLITE_BUSY);
	assert_int_equal(other_process(n2.db, "SELECT count(*) FROM t"), SQLITE_BUSY);
	(void)p;
	node_stop(&n2);
	node_stop(&n1);
}

static struct answer big[128];
static unsigned int snapshots_seen;
static char active_error[256], standby_error[256];

/*
 * Counts the snapshots the standby starts receiving; during the first,
 * writes on the active more than its WAL may grow while it is sent
 * (each row a 16 KiB blob, all of them one frame); when that link goes,
 * keeps both nodes' last errors.
 */
static void
write_big_during_snapshot(struct node *n, enum replicate_link link)
{
	static enum replicate_link last;
	struct replicate_status st;
	char sql[128];

	if (link == REPLICATE_LINK_SNAPSHOT && last != REPLICATE_LINK_SNAPSHOT)
		snapshots_seen++;
	if (link != REPLICATE_LINK_SNAPSHOT && last == REPLICATE_LINK_SNAPSHOT &&
	    active_error[0] == '\0') {
		replicate_status(n1.r, &st);
		(void)snprintf(active_error, sizeof(active_error), "%s",
		    st.last_error ? st.last_error : "(none)");
		replicate_status(n->r, &st);
		(void)snprintf(standby_error, sizeof(standby_error), "%s",
		    st.last_error ? st.last_error : "(none)");
	}
	last = link;
	if (link != REPLICATE_LINK_SNAPSHOT || big[0].check != NULL)
		return;
	for (int i = 0; i < 128; i++) {
		big[i].check = &n1; /* marks the hook as run */
		(void)snprintf(sql, sizeof(sql),
		    "INSERT INTO t(id, v) VALUES (%d, randomblob(16384))", 100000 + i);
		assert_int_equal(exec_async(&n1, sql, &big[i]), 0);
	}
}

/*
 * While a snapshot is sent the active's checkpoints wait and its WAL
 * grows: past [replication] snapshot_wal the snapshot is given up (so a
 * slow standby never fills the active's disk), the standby is told why,
 * and the next one, with the WAL back under the limit, completes.
 */
static void
test_snapshot_wal_limit(void **state)
{
	struct replicate_status st;
	int rows = 8000;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	n1.cfg.snapshot_wal_bytes = 1024 * 1024; /* the 128 blobs are 2 MiB */
	prefill(n1.db, rows);
	memset(big, 0, sizeof(big));
	snapshots_seen = 0;
	active_error[0] = standby_error[0] = '\0';
	node_start(&n1);
	node_start(&n2);
	n2.hook = write_big_during_snapshot;
	pair_up(&n1, &n2, 1);
	for (int i = 0; i < 128; i++) {
		assert_true(run_until(answered, &big[i], WAIT_MS));
		assert_int_equal(big[i].rc, 0);
	}
	printf("# snapshots: %u; the active's error: %s; the standby's: %s\n", snapshots_seen,
	    active_error, standby_error);
	assert_int_equal(snapshots_seen, 2);
	assert_non_null(strstr(active_error, "snapshot given up"));
	assert_non_null(strstr(active_error, "snapshot_wal"));
	assert_non_null(strstr(standby_error, "snapshot given up"));
	assert_int_equal(count_rows(&n2, "t"), rows + 128);
	assert_true(replicate_in_sync(n2.r));
	replicate_status(n2.r, &st);
	assert_null(st.archive);
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

static void
test_snapshot_small_backlog(void **state)
{
	struct node *p[2] = {&n1, &n2};
	struct replicate_status st;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	n1.cfg.backlog_bytes = 1024;
	node_start(&n1);
	node_start(&n2);
	pair_up(&n1, &n2, 1);
	assert_int_equal(exec_wait(&n1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	insert_rows(&n1, 1, 5);
	node_stop(&n2);
	replicate_set_alone(n1.r, true);
	insert_rows(&n1, 6, 50);
	replicate_set_alone(n1.r, false);
	node_start(&n2);
	peer_of(&n2);
	replicate_peer_active(n2.r, true);
	assert_true(run_until(linked, p, WAIT_MS));
	assert_true(n2.links_seen & (1u << REPLICATE_LINK_SNAPSHOT));
	assert_int_equal(count_rows(&n2, "t"), 55);
	replicate_status(n2.r, &st);
	assert_null(st.archive); /* its data was a prefix of the active's */
	assert_same(&n1, &n2);
	insert_rows(&n1, 56, 3);
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

static void
test_diverged(void **state)
{
	struct node *p[2] = {&n1, &n2};
	struct replicate_status st;
	struct store_rows rows = {0};
	struct store *s;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	node_start(&n1);
	node_start(&n2);
	/* Both active apart, in different epochs, writing different rows. */
	assert_int_equal(replicate_activate(n2.r, 1), 0);
	replicate_set_alone(n2.r, true);
	assert_int_equal(exec_wait(&n2, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	assert_int_equal(exec_wait(&n2, "INSERT INTO t VALUES (1, 'only on n2')"), 0);
	assert_int_equal(replicate_activate(n1.r, 2), 0);
	replicate_set_alone(n1.r, true);
	assert_int_equal(exec_wait(&n1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	insert_rows(&n1, 10, 3);
	replicate_set_alone(n1.r, false);
	/* n2 becomes n1's standby: resynced, its data archived. */
	replicate_deactivate(n2.r);
	peer_of(&n1);
	peer_of(&n2);
	replicate_peer_active(n2.r, true);
	assert_true(run_until(linked, p, WAIT_MS));
	assert_true(n2.links_seen & (1u << REPLICATE_LINK_SNAPSHOT));
	replicate_status(n2.r, &st);
	assert_non_null(st.archive);
	printf("# archived: %s\n", st.archive);
	assert_int_equal(strncmp(st.archive, n2.state, strlen(n2.state)), 0);
	s = store_open(st.archive, NULL);
	assert_non_null(s);
	assert_int_equal(store_query(s, "SELECT v FROM t", NULL, 0, &rows), 0);
	assert_int_equal(rows.n_rows, 1);
	assert_string_equal(rows.values[0].p, "only on n2");
	store_rows_free(&rows);
	store_close(s);
	assert_int_equal(count_rows(&n2, "t"), 3);
	assert_same(&n1, &n2);
	node_stop(&n2);
	node_stop(&n1);
}

static bool
both_errors(void *arg)
{
	struct node **p = arg;
	struct replicate_status a, b;

	replicate_status(p[0]->r, &a);
	replicate_status(p[1]->r, &b);
	return a.last_error != NULL && b.last_error != NULL;
}

static void
test_other_ca_refused(void **state)
{
	struct node *p[2] = {&n1, &n2};
	struct replicate_status st;
	uint64_t seq = 99;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "rogue");
	node_start(&n1);
	node_start(&n2);
	peer_of(&n1);
	peer_of(&n2);
	assert_int_equal(replicate_activate(n1.r, 1), 0);
	replicate_set_alone(n1.r, true);
	assert_int_equal(exec_wait(&n1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	replicate_peer_active(n2.r, true);
	assert_true(run_until(both_errors, p, WAIT_MS));
	run_for(200); /* retries are refused too */
	replicate_status(n1.r, &st);
	printf("# active: %s\n", st.last_error);
	assert_non_null(strstr(st.last_error, "certificate"));
	assert_null(st.peer);
	assert_int_equal(st.link, REPLICATE_LINK_NONE);
	replicate_status(n2.r, &st);
	printf("# rogue: %s\n", st.last_error);
	assert_false(
	    n2.links_seen & ~((1u << REPLICATE_LINK_NONE) | (1u << REPLICATE_LINK_CONNECTING)));
	replicate_position(n2.r, NULL, &seq);
	assert_int_equal(seq, 0);
	assert_int_equal(count_rows(&n2, "t"), -1);
	assert_false(replicate_in_sync(n2.r));
	node_stop(&n2);
	node_stop(&n1);
}

static bool
waiting_one(void *arg)
{
	struct replicate_status st;

	replicate_status(((struct node *)arg)->r, &st);
	return st.waiting == 1;
}

static void
test_set_alone(void **state)
{
	struct replicate_status st;
	struct answer a = {0}, b = {0}, c = {0};

	pair_with_table();
	node_stop(&n2);
	/* Without the standby a sync commit waits... */
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (1, 'x')", &a), 0);
	assert_true(run_until(waiting_one, &n1, WAIT_MS));
	run_for(100);
	assert_false(a.done);
	replicate_status(n1.r, &st);
	assert_int_equal(st.waiting, 1);
	assert_int_equal(st.lag, 1);
	/* ...until the agent says the active may answer alone. */
	replicate_set_alone(n1.r, true);
	assert_true(a.done);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.res.seq, 2);
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (2, 'y')", &b), 0);
	assert_true(run_until(answered, &b, WAIT_MS));
	assert_int_equal(b.rc, 0);
	replicate_status(n1.r, &st);
	assert_true(st.alone);
	assert_int_equal(st.lag, 2);
	/* Freed with a commit waiting: -ECONNABORTED. */
	replicate_set_alone(n1.r, false);
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (3, 'z')", &c), 0);
	assert_true(run_until(waiting_one, &n1, WAIT_MS));
	node_stop(&n1);
	assert_true(c.done);
	assert_int_equal(c.rc, -ECONNABORTED);
}

/* Runs right after the active's commit step (a HIGH timer), before the standby saw the frame. */
static struct answer late;
static int late_rc;
static uint64_t late_waiting;
static bool late_free_standby;
static qb_loop_timer_handle late_timer;

static void
deactivate_now(void *data)
{
	struct replicate_status st;
	struct store_stmt s = {.sql = "INSERT INTO t VALUES (99, 'late')"};

	replicate_status(n1.r, &st);
	late_waiting = st.waiting;
	replicate_deactivate(n1.r);
	late_rc = replicate_exec(n1.r, &s, 1, on_done, &late);
	if (late_free_standby)
		node_stop(&n2);
}

static void
test_deactivate(void **state)
{
	struct answer a = {0}, b = {0};
	struct rows_cond rc = {&n2, 2};

	pair_with_table();
	/* Committed, then deactivated before the ack: answered once acked. */
	late_free_standby = false;
	memset(&late, 0, sizeof(late));
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (1, 'a')", &a), 0);
	assert_int_equal(
	    qb_loop_timer_add(loop, QB_LOOP_HIGH, 0, NULL, deactivate_now, &late_timer), 0);
	assert_true(run_until(answered, &a, WAIT_MS));
	(void)qb_loop_timer_del(loop, late_timer);
	assert_int_equal(late_waiting, 1);
	assert_int_equal(late_rc, -EROFS);
	assert_false(late.done);
	assert_int_equal(a.rc, 0);
	assert_int_equal(count_rows(&n2, "t"), 1);
	assert_true(replicate_in_sync(n2.r));

	/* Again, but the standby vanishes before its ack: -ECONNABORTED. */
	assert_int_equal(replicate_activate(n1.r, 1), 0);
	late_free_standby = true;
	assert_int_equal(exec_async(&n1, "INSERT INTO t VALUES (2, 'b')", &b), 0);
	assert_int_equal(
	    qb_loop_timer_add(loop, QB_LOOP_HIGH, 0, NULL, deactivate_now, &late_timer), 0);
	assert_true(run_until(answered, &b, WAIT_MS));
	(void)qb_loop_timer_del(loop, late_timer);
	assert_int_equal(b.rc, -ECONNABORTED);
	assert_int_equal(late_rc, -EROFS);
	(void)rc;
	node_stop(&n1);
}

static void
test_timeout_and_switchover(void **state)
{
	struct node *p[2] = {&n1, &n2}, *q[2] = {&n2, &n1};
	uint64_t t0;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	n1.cfg.timeout_ms = 400;
	n2.cfg.timeout_ms = 400;
	node_start(&n1);
	node_start(&n2);
	pair_up(&n1, &n2, 1);
	assert_int_equal(exec_wait(&n1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	insert_rows(&n1, 1, 5);

	/* Switchover: n1 demotes, n2 promotes and writes, n1 catches up from n2's backlog. */
	replicate_deactivate(n1.r);
	replicate_peer_active(n2.r, false);
	assert_int_equal(replicate_activate(n2.r, 2), 0);
	replicate_set_alone(n2.r, true);
	insert_rows(&n2, 6, 3);
	replicate_set_alone(n2.r, false);
	n1.links_seen = 0;
	replicate_peer_active(n1.r, true);
	assert_true(run_until(linked, q, WAIT_MS));
	assert_false(n1.links_seen & (1u << REPLICATE_LINK_SNAPSHOT));
	insert_rows(&n2, 9, 2);
	assert_int_equal(count_rows(&n1, "t"), 10);
	assert_same(&n1, &n2);

	/* The active dies: the standby stays in sync until timeout_ms. */
	t0 = now_ns();
	node_stop(&n2);
	run_for(100);
	assert_true(replicate_in_sync(n1.r));
	assert_true(run_until(out_of_sync, &n1, WAIT_MS));
	assert_true(now_ns() - t0 >= 350000000u);
	(void)p;
	(void)in_sync;
	node_stop(&n1);
}

/* ---- a hand-driven peer speaking the wire protocol, for bad input ---- */

struct fake {
	struct stream_tls *tls;
	struct stream_listener *l;
	struct stream *s;
	struct wire_reader *rd;
	struct wire_buf script; /* sent on CONNECTED */
	int connected, closed;
	bool got_hello;
	uint32_t err_code;
	char err_text[WIRE_TEXT_MAX + 1];
};

static void
fake_event(struct stream *s, enum stream_event ev, const struct stream_info *info, void *data)
{
	struct fake *f = data;
	struct wire_frame fr;

	switch (ev) {
	case STREAM_EVENT_CONNECTED:
		f->s = s;
		f->connected++;
		wire_reader_free(f->rd);
		f->rd = wire_reader_new();
		assert_int_equal(stream_send(s, f->script.data, f->script.len), 0);
		break;
	case STREAM_EVENT_DATA:
		assert_int_equal(wire_reader_feed(f->rd, info->data, info->len), 0);
		while (wire_reader_next(f->rd, &fr) == 1) {
			if (fr.type == WIRE_HELLO)
				f->got_hello = true;
			if (fr.type == WIRE_ERROR) {
				f->err_code = fr.u.error.code;
				(void)snprintf(
				    f->err_text, sizeof(f->err_text), "%s", fr.u.error.text);
			}
		}
		break;
	case STREAM_EVENT_DRAINED:
		break;
	case STREAM_EVENT_CLOSED:
		f->closed++;
		stream_free(s);
		if (f->s == s)
			f->s = NULL;
		break;
	}
	check_stop();
}

static void
fake_tls(struct fake *f, const char *name)
{
	char ca[600], crt[600], key[600];
	struct stream_tls_config cfg = {
	    .ca_file = ca, .cert_file = crt, .key_file = key, .cluster = "c1"};

	(void)snprintf(ca, sizeof(ca), "%s/%s/ca.crt", dir, name);
	(void)snprintf(crt, sizeof(crt), "%s/%s/%s.crt", dir, name, name);
	(void)snprintf(key, sizeof(key), "%s/%s/%s.key", dir, name, name);
	f->tls = stream_tls_new(&cfg, NULL, 0);
	assert_non_null(f->tls);
}

static void
fake_free(struct fake *f)
{
	stream_free(f->s);
	stream_listener_free(f->l);
	wire_reader_free(f->rd);
	wire_buf_release(&f->script);
	stream_tls_free(f->tls);
	memset(f, 0, sizeof(*f));
}

static void
script_hello(struct fake *f, const char *cluster, uint64_t epoch, uint64_t seq)
{
	struct wire_hello h = {.node_id = 9, .incarnation = 1, .epoch = epoch, .seq = seq};

	(void)snprintf(h.cluster, sizeof(h.cluster), "%s", cluster);
	assert_int_equal(wire_encode_hello(&f->script, &h), 0);
}

static void
script_data(struct fake *f, uint64_t epoch, uint64_t seq)
{
	struct wire_data d = {.epoch = epoch, .seq = seq};

	assert_int_equal(wire_encode_data(&f->script, &d, NULL, 0), 0);
}

static bool
fake_error(void *arg)
{
	struct fake *f = arg;

	return f->err_code != 0 && f->closed > 0;
}

/* The fake, as n2's active, sends what the script holds; n2 must refuse it. */
static void
refused_by_standby(struct fake *f, uint32_t code, const char *what)
{
	struct replicate_status st;
	int before = f->connected;

	f->err_code = 0;
	f->closed = 0;
	assert_true(run_until(fake_error, f, WAIT_MS));
	assert_true(f->connected > before || before == 0);
	printf("# %s: error %u \"%s\"\n", what, f->err_code, f->err_text);
	assert_int_equal(f->err_code, code);
	replicate_status(n2.r, &st);
	assert_non_null(st.last_error);
	assert_int_equal(st.seq, 0);
}

static void
test_bad_frames(void **state)
{
	struct fake f = {0}, g = {0};
	struct replicate_status st;

	test_begin();
	node_init(&n1, "n1", "n1");
	node_init(&n2, "n2", "n2");
	node_start(&n2);
	/* n2 was active at epoch 3, wrote nothing, and is a standby now. */
	assert_int_equal(replicate_activate(n2.r, 3), 0);
	replicate_deactivate(n2.r);
	fake_tls(&f, "n1");
	f.l = stream_listen(loop, f.tls, "127.0.0.1", port, "n2", fake_event, &f);
	assert_non_null(f.l);
	peer_of(&n2);

	/* A frame of an older epoch. */
	script_hello(&f, "c1", 1, 0);
	script_data(&f, 1, 1);
	replicate_peer_active(n2.r, true);
	refused_by_standby(&f, WIRE_ERR_SEQ, "older epoch");
	/* A gap in the sequence. */
	f.script.len = 0;
	script_hello(&f, "c1", 3, 0);
	script_data(&f, 3, 2);
	refused_by_standby(&f, WIRE_ERR_SEQ, "gap");
	/* Garbage after HELLO. */
	f.script.len = 0;
	script_hello(&f, "c1", 3, 0);
	assert_int_equal(wire_encode_ack(&f.script, &(struct wire_ack){3, 0}), 0);
	memcpy(f.script.data + f.script.len - 20, "GARBAGE-GARBAGE-GARB", 20);
	refused_by_standby(&f, WIRE_ERR_PROTOCOL, "garbage");
	/* A HELLO from another cluster. */
	f.script.len = 0;
	script_hello(&f, "c2", 3, 0);
	refused_by_standby(&f, WIRE_ERR_CLUSTER, "other cluster");
	/* A snapshot chunk without a beginning. */
	f.script.len = 0;
	script_hello(&f, "c1", 3, 0);
	{
		struct wire_snapshot_chunk ch = {
		    .offset = 0, .data = (const uint8_t *)"x", .len = 1};

		assert_int_equal(wire_encode_snapshot_chunk(&f.script, &ch), 0);
	}
	refused_by_standby(&f, WIRE_ERR_PROTOCOL, "stray chunk");
	/* A snapshot whose bytes do not match its hash: nothing installed, no file left. */
	f.script.len = 0;
	script_hello(&f, "c1", 3, 0);
	{
		struct wire_snapshot_begin b = {.epoch = 3, .seq = 7, .total_bytes = 4};
		struct wire_snapshot_chunk ch = {
		    .offset = 0, .data = (const uint8_t *)"abcd", .len = 4};
		struct wire_snapshot_end e = {.hash = 12345};
		char tmp[700];

		assert_int_equal(wire_encode_snapshot_begin(&f.script, &b), 0);
		assert_int_equal(wire_encode_snapshot_chunk(&f.script, &ch), 0);
		assert_int_equal(wire_encode_snapshot_end(&f.script, &e), 0);
		refused_by_standby(&f, WIRE_ERR_APPLY, "snapshot hash");
		(void)snprintf(tmp, sizeof(tmp), "%s/snapshot-in.tmp", n2.state);
		assert_int_equal(access(tmp, F_OK), -1);
	}
	replicate_peer_active(n2.r, false);
	fake_free(&f);

	/* As a standby of the real n1, the fake sends DATA: refused. */
	node_start(&n1);
	peer_of(&n1);
	assert_int_equal(replicate_activate(n1.r, 1), 0);
	fake_tls(&g, "n2");
	script_hello(&g, "c1", 0, 0);
	script_data(&g, 1, 1);
	g.s = stream_connect(loop, g.tls, "127.0.0.1", port, "n1", fake_event, &g);
	assert_non_null(g.s);
	assert_true(run_until(fake_error, &g, WAIT_MS));
	printf("# DATA from a standby: error %u \"%s\"\n", g.err_code, g.err_text);
	assert_int_equal(g.err_code, WIRE_ERR_PROTOCOL);
	assert_true(g.got_hello);
	replicate_status(n1.r, &st);
	assert_non_null(strstr(st.last_error, "unexpected DATA"));
	assert_int_equal(st.seq, 0);
	fake_free(&g);
	/* An ACK beyond the active's position. */
	fake_tls(&g, "n2");
	script_hello(&g, "c1", 0, 0);
	assert_int_equal(wire_encode_ack(&g.script, &(struct wire_ack){1, 50}), 0);
	g.s = stream_connect(loop, g.tls, "127.0.0.1", port, "n1", fake_event, &g);
	assert_non_null(g.s);
	assert_true(run_until(fake_error, &g, WAIT_MS));
	printf("# ACK beyond: error %u \"%s\"\n", g.err_code, g.err_text);
	assert_int_equal(g.err_code, WIRE_ERR_PROTOCOL);
	replicate_status(n1.r, &st);
	assert_int_equal(st.peer_seq, 0);
	fake_free(&g);
	node_stop(&n1);
	node_stop(&n2);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_errors, test_teardown),
	    cmocka_unit_test_teardown(test_sync_commit, test_teardown),
	    cmocka_unit_test_teardown(test_async, test_teardown),
	    cmocka_unit_test_teardown(test_group_commit, test_teardown),
	    cmocka_unit_test_teardown(test_catchup, test_teardown),
	    cmocka_unit_test_teardown(test_snapshot, test_teardown),
	    cmocka_unit_test_teardown(test_snapshot_wal_limit, test_teardown),
	    cmocka_unit_test_teardown(test_snapshot_small_backlog, test_teardown),
	    cmocka_unit_test_teardown(test_diverged, test_teardown),
	    cmocka_unit_test_teardown(test_other_ca_refused, test_teardown),
	    cmocka_unit_test_teardown(test_set_alone, test_teardown),
	    cmocka_unit_test_teardown(test_deactivate, test_teardown),
	    cmocka_unit_test_teardown(test_timeout_and_switchover, test_teardown),
	    cmocka_unit_test_teardown(test_bad_frames, test_teardown),
	    cmocka_unit_test_teardown(test_wal_tail, test_teardown),
	    cmocka_unit_test_teardown(test_steps, test_teardown),
	};

	/* As in tandemd: a peer that vanished must not kill the writer. */
	(void)signal(SIGPIPE, SIG_IGN);
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	if (argc == 4 && strcmp(argv[1], OTHER_PROCESS_FLAG) == 0)
		return other_process_run(argv[2], argv[3]);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

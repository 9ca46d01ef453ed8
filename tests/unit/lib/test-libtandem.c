/*
 * test-libtandem.c: libtandem (lib/tandem.c) and tandemctl's db commands
 * against a fake tandemd.
 *
 * The fake is the real control server (agent/control.c) on a private
 * service name, run by a child process (the library blocks in its calls,
 * so the server cannot share our thread).  Its handler checks the request
 * JSON where a test says what must be sent, and answers canned replies
 * chosen by the SQL text: every value type both ways, each error code,
 * malformed replies, a server that goes away.  The library finds it
 * through TANDEM_CTL_SERVICE, tandemctl through TANDEM_CTL_SERVICE.  Waits are
 * on file descriptors under a deadline, never a bare sleep.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <qb/qbloop.h>

#include "control.h"
#include "ctl-proto.h"
#include "tandem.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

#define DEADLINE_MS 30000

static char service[64];
static pid_t server_pid = -1;

/* The fake tandemd (runs in the child: no cmocka asserts here) */

static qb_loop_t *server_loop;
static int server_die;

static json_t *
load(const char *text)
{
	return json_loads(text, JSON_ALLOW_NUL, NULL);
}

/* The params every type test sends, as JSON. */
static const char all_params[] = "[null, 42, -9223372036854775808, 2.5, \"h\\u00e9llo\", \"\","
                                 " {\"blob\": \"AAEC/w==\"}, {\"blob\": \"\"}, 1.0]";

static const char all_types_reply[] =
    "{\"ok\": true, \"columns\": [\"n\", \"i\", \"f\", \"t\", \"b\", \"e\"],"
    " \"rows\": [[null, 42, 2.5, \"h\\u00e9llo\", {\"blob\": \"AAEC/w==\"}, {\"blob\": \"\"}],"
    "           [-9223372036854775808, 1.0, -0.125, \"\", null, \"a\\tb\"]]}";

/* Replies {"ok": false} for each error code, by SQL text. */
static const struct {
	const char *sql;
	const char *reply;
} canned[] = {
    {"not-active", "{\"ok\": false, \"error\": \"this node is the standby; the active is n2\","
                   " \"exit\": 4, \"code\": \"not-active\", \"active\": \"n2\"}"},
    {"not-active-none", "{\"ok\": false, \"error\": \"no node is active\", \"exit\": 4,"
                        " \"code\": \"not-active\", \"active\": \"\"}"},
    {"unknown-outcome", "{\"ok\": false, \"error\": \"lost the active role while waiting\","
                        " \"exit\": 1, \"code\": \"unknown-outcome\"}"},
    {"sql", "{\"ok\": false, \"error\": \"near \\\"x\\\": syntax error\", \"exit\": 1,"
            " \"code\": \"sql\"}"},
    {"refused", "{\"ok\": false, \"error\": \"table t has no PRIMARY KEY\", \"exit\": 1,"
                " \"code\": \"refused\"}"},
    {"busy", "{\"ok\": false, \"error\": \"busy\", \"exit\": 1, \"code\": \"busy\"}"},
    {"io", "{\"ok\": false, \"error\": \"disk I/O error\", \"exit\": 1, \"code\": \"io\"}"},
    {"too-large", "{\"ok\": false, \"error\": \"the result is too large\", \"exit\": 1,"
                  " \"code\": \"too-large\"}"},
    {"failed", "{\"ok\": false, \"error\": \"something else\", \"exit\": 1,"
               " \"code\": \"failed\"}"},
    {"no-code", "{\"ok\": false, \"error\": \"the reply is too long\", \"exit\": 1}"},
    {"no-ok", "{\"hello\": \"world\"}"},
    {"exec-missing", "{\"ok\": true, \"changes\": 1}"},
    {"exec-negative", "{\"ok\": true, \"changes\": 1, \"last_rowid\": 1, \"epoch\": -1,"
                      " \"seq\": 1}"},
    {"rows-short", "{\"ok\": true, \"columns\": [\"a\", \"b\"], \"rows\": [[1]]}"},
    {"rows-bool", "{\"ok\": true, \"columns\": [\"a\"], \"rows\": [[true]]}"},
    {"rows-blob", "{\"ok\": true, \"columns\": [\"a\"], \"rows\": [[{\"blob\": \"abc\"}]]}"},
    {"rows-name", "{\"ok\": true, \"columns\": [1], \"rows\": []}"},
    {"rows-missing", "{\"ok\": true, \"columns\": [\"a\"]}"},
    {"rows-none", "{\"ok\": true, \"columns\": [\"k\", \"v\"], \"rows\": []}"},
    {"rows-nul", "{\"ok\": true, \"columns\": [\"t\"], \"rows\": [[\"a\\u0000b\"]]}"},
    {"all-types", all_types_reply},
};

static void
reply_text(struct control_request *req, const char *text)
{
	json_t *r = load(text);

	if (r == NULL)
		control_reply_error(req, 1, "test: bad canned reply");
	else
		control_reply(req, r);
}

/* Answers with an error naming what differs when got is not want (JSON text). */
static int
expect(struct control_request *req, const char *what, json_t *got, const char *want)
{
	json_t *w = load(want);
	char *g;
	int same = w != NULL && json_equal(got, w);

	json_decref(w);
	if (same)
		return 0;
	g = got != NULL ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	control_reply_error(
	    req, 1, "test: %s is %s, want %s", what, g != NULL ? g : "absent", want);
	free(g);
	return -1;
}

static const char exec_ok[] =
    "{\"ok\": true, \"changes\": 3, \"last_rowid\": -5, \"epoch\": 7, \"seq\": 99}";

static void
on_exec(struct control_request *req, json_t *request)
{
	json_t *stmts = json_object_get(request, "statements");
	json_t *first = json_object_get(json_array_get(stmts, 0), "sql");
	const char *sql = json_string_value(first);
	size_t i;

	if (sql == NULL) {
		control_reply_error(req, 2, "test: no statements[0].sql");
		return;
	}
	if (strcmp(sql, "INSERT all") == 0) {
		if (expect(req, "params", json_object_get(json_array_get(stmts, 0), "params"),
		        all_params) == 0)
			reply_text(req, exec_ok);
		return;
	}
	if (strcmp(sql, "A") == 0) {
		/* tandemctl sends no params, libtandem an empty array: both are fine. */
		if (json_object_get(json_array_get(stmts, 0), "params") == NULL)
			json_object_set_new(json_array_get(stmts, 0), "params", json_array());
		if (json_object_get(json_array_get(stmts, 1), "params") == NULL)
			json_object_set_new(json_array_get(stmts, 1), "params", json_array());
		if (expect(req, "statements", stmts,
		        "[{\"sql\": \"A\", \"params\": []}, {\"sql\": \"B;C\", \"params\": []}]") ==
		    0)
			reply_text(req, exec_ok);
		return;
	}
	if (strcmp(sql, "die") == 0) {
		/* Leave the request unanswered and shut the service: the client sees it close. */
		server_die = 1;
		qb_loop_stop(server_loop);
		return;
	}
	for (i = 0; i < sizeof(canned) / sizeof(canned[0]); i++) {
		if (strcmp(sql, canned[i].sql) == 0) {
			reply_text(req, canned[i].reply);
			return;
		}
	}
	control_reply_error(req, 1, "test: unknown statement '%s'", sql);
}

static void
on_query(struct control_request *req, json_t *request)
{
	const char *sql = json_string_value(json_object_get(request, "sql"));
	json_t *params = json_object_get(request, "params"), *reply, *cols;
	size_t i;

	if (sql == NULL) {
		control_reply_error(req, 2, "test: no sql");
		return;
	}
	if (strcmp(sql, "echo") == 0) {
		/* One row holding the params: the round trip of every type. */
		cols = json_array();
		for (i = 0; i < json_array_size(params); i++)
			json_array_append_new(cols, json_sprintf("p%zu", i + 1));
		reply = json_pack("{s:b, s:o, s:[O]}", "ok", 1, "columns", cols, "rows", params);
		control_reply(req, reply);
		return;
	}
	if (strcmp(sql, "SELECT all") == 0) {
		if (expect(req, "params", params, all_params) == 0)
			reply_text(req, "{\"ok\": true, \"columns\": [], \"rows\": []}");
		return;
	}
	if (strcmp(sql, "die") == 0) {
		server_die = 1;
		qb_loop_stop(server_loop);
		return;
	}
	for (i = 0; i < sizeof(canned) / sizeof(canned[0]); i++) {
		if (strcmp(sql, canned[i].sql) == 0) {
			reply_text(req, canned[i].reply);
			return;
		}
	}
	control_reply_error(req, 1, "test: unknown query '%s'", sql);
}

static void
on_request(struct control_request *req, json_t *request, void *data)
{
	const char *cmd = json_string_value(json_object_get(request, "command"));

	if (strcmp(cmd, "db-exec") == 0)
		on_exec(req, request);
	else if (strcmp(cmd, "db-query") == 0)
		on_query(req, request);
	else if (strcmp(cmd, "db-hash") == 0)
		reply_text(req, "{\"ok\": true, \"hash\": \"0123456789abcdef\", \"epoch\": 7,"
		                " \"seq\": 99}");
	else
		control_reply_error(req, 2, "unknown command '%s'", cmd);
}

static int32_t
on_sigterm(int32_t sig, void *data)
{
	qb_loop_stop(server_loop);
	return 0;
}

static void
server_main(int ready_fd)
{
	qb_loop_signal_handle h;
	struct control *c;

	server_loop = qb_loop_create();
	if (server_loop == NULL)
		_exit(10);
	c = control_new(server_loop, service, on_request, NULL);
	if (c == NULL)
		_exit(11);
	if (qb_loop_signal_add(server_loop, QB_LOOP_HIGH, SIGTERM, NULL, on_sigterm, &h) != 0)
		_exit(12);
	if (write(ready_fd, "r", 1) != 1)
		_exit(13);
	(void)close(ready_fd);
	qb_loop_run(server_loop);
	control_free(c);
	qb_loop_destroy(server_loop);
	_exit(server_die ? 20 : 0);
}

/* Waits for pid under the deadline; returns its wait status. */
static int
wait_pid(pid_t pid)
{
	int pidfd = pidfd_open(pid, 0), ws;
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	assert_true(pidfd >= 0);
	if (poll(&p, 1, DEADLINE_MS) != 1)
		(void)kill(pid, SIGKILL);
	(void)close(pidfd);
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	return ws;
}

static void
server_start(void)
{
	struct pollfd p;
	int fds[2];
	char c;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	(void)fflush(stdout);
	(void)fflush(stderr);
	server_pid = fork();
	assert_true(server_pid >= 0);
	if (server_pid == 0) {
		(void)close(fds[0]);
		server_main(fds[1]);
	}
	(void)close(fds[1]);
	p.fd = fds[0];
	p.events = POLLIN;
	assert_int_equal(poll(&p, 1, DEADLINE_MS), 1);
	assert_int_equal(read(fds[0], &c, 1), 1);
	(void)close(fds[0]);
}

/* Stops the server; returns its exit status. */
static int
server_stop(void)
{
	int ws;

	if (server_pid < 0)
		return -1;
	(void)kill(server_pid, SIGTERM);
	ws = wait_pid(server_pid);
	server_pid = -1;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* The server exited on its own (after "die"): reap it. */
static int
server_reap(void)
{
	int ws = wait_pid(server_pid);

	server_pid = -1;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static int
group_setup(void **state)
{
	(void)snprintf(service, sizeof(service), "tandem-test-lib-%d", (int)getpid());
	if (setenv("TANDEM_CTL_SERVICE", service, 1) != 0)
		return -1;
	server_start();
	return 0;
}

static int
group_teardown(void **state)
{
	(void)server_stop();
	return 0;
}

static int
setup_conn(void **state)
{
	struct tandem *t = tandem_connect();

	if (t == NULL)
		return -1;
	*state = t;
	return 0;
}

static int
teardown_conn(void **state)
{
	tandem_close(*state);
	return 0;
}

/* The values of all_params. */
static void
all_values(struct tandem_value v[9])
{
	v[0] = tandem_null();
	v[1] = tandem_int(42);
	v[2] = tandem_int(INT64_MIN);
	v[3] = tandem_float(2.5);
	v[4] = tandem_text("h\xc3\xa9llo");
	v[5] = tandem_text("");
	v[6] = tandem_blob("\x00\x01\x02\xff", 4);
	v[7] = tandem_blob(NULL, 0);
	v[8] = tandem_float(1.0);
}

/* Writes */

static void
test_exec_all_types(void **state)
{
	struct tandem *t = *state;
	struct tandem_value v[9];
	struct tandem_commit c;

	all_values(v);
	memset(&c, 0, sizeof(c));
	if (tandem_exec(t, "INSERT all", v, 9, &c) != 0)
		fail_msg("%s", tandem_errmsg(t));
	assert_int_equal(c.changes, 3);
	assert_int_equal(c.last_rowid, -5);
	assert_int_equal(c.epoch, 7);
	assert_int_equal(c.seq, 99);
	/* ret may be NULL. */
	assert_int_equal(tandem_exec(t, "INSERT all", v, 9, NULL), 0);
}

static void
test_transaction(void **state)
{
	struct tandem *t = *state;
	struct tandem_stmt st[2] = {{.sql = "A"}, {.sql = "B;C"}};
	struct tandem_commit c;

	if (tandem_transaction(t, st, 2, &c) != 0)
		fail_msg("%s", tandem_errmsg(t));
	assert_int_equal(c.seq, 99);
	/* The server says what differed when the request is not the expected one. */
	st[1].sql = "B";
	assert_int_equal(tandem_transaction(t, st, 2, &c), -EIO);
	assert_non_null(strstr(tandem_errmsg(t), "test: statements is"));
}

static void
test_exec_errors(void **state)
{
	static const struct {
		const char *sql;
		int rc;
		const char *msg;
	} cases[] = {
	    {"unknown-outcome", -ECONNABORTED, "lost the active role while waiting"},
	    {"sql", -EINVAL, "near \"x\": syntax error"},
	    {"refused", -EPERM, "table t has no PRIMARY KEY"},
	    {"busy", -EBUSY, "busy"},
	    {"io", -EIO, "disk I/O error"},
	    {"too-large", -EMSGSIZE, "the result is too large"},
	    {"failed", -EIO, "something else"},
	    {"no-code", -EIO, "the reply is too long"},
	    {"no-ok", -EPROTO, NULL},
	    {"exec-missing", -EPROTO, NULL},
	    {"exec-negative", -EPROTO, NULL},
	};
	struct tandem *t = *state;
	struct tandem_commit c = {.changes = 123};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tandem_exec(t, cases[i].sql, NULL, 0, &c);

		if (rc != cases[i].rc)
			fail_msg("%s: got %d (%s), want %d", cases[i].sql, rc, tandem_errmsg(t),
			    cases[i].rc);
		if (cases[i].msg != NULL)
			assert_string_equal(tandem_errmsg(t), cases[i].msg);
		else
			assert_true(tandem_errmsg(t)[0] != '\0');
		/* Untouched on failure. */
		assert_int_equal(c.changes, 123);
	}
	/* The connection is still good after all of those. */
	assert_int_equal(tandem_exec(t, "A", NULL, 0, NULL), -EIO);
	struct tandem_stmt st[2] = {{.sql = "A"}, {.sql = "B;C"}};
	assert_int_equal(tandem_transaction(t, st, 2, NULL), 0);
}

static void
test_not_active(void **state)
{
	struct tandem *t = *state;

	assert_string_equal(tandem_active(t), "");
	assert_int_equal(tandem_exec(t, "not-active", NULL, 0, NULL), -EROFS);
	assert_string_equal(tandem_active(t), "n2");
	assert_string_equal(tandem_errmsg(t), "this node is the standby; the active is n2");
	assert_int_equal(tandem_exec(t, "not-active-none", NULL, 0, NULL), -EROFS);
	assert_string_equal(tandem_active(t), "");
	assert_string_equal(tandem_errmsg(t), "no node is active");
}

static void
test_bad_arguments(void **state)
{
	struct tandem *t = *state;
	struct tandem_value v;
	struct tandem_stmt st = {.sql = NULL};
	struct tandem_rows rows;

	assert_int_equal(tandem_transaction(NULL, &st, 1, NULL), -EINVAL);
	assert_int_equal(tandem_transaction(t, NULL, 0, NULL), -EINVAL);
	assert_int_equal(tandem_transaction(t, &st, 0, NULL), -EINVAL);
	assert_int_equal(tandem_transaction(t, &st, 1, NULL), -EINVAL);
	assert_string_equal(tandem_errmsg(t), "statement 1 has no SQL");
	assert_int_equal(tandem_exec(t, "x", NULL, 2, NULL), -EINVAL);
	v = tandem_float(NAN);
	assert_int_equal(tandem_exec(t, "x", &v, 1, NULL), -EINVAL);
	assert_string_equal(
	    tandem_errmsg(t), "parameter 1: an infinite or NaN float cannot be stored");
	v = tandem_float(-INFINITY);
	assert_int_equal(tandem_query(t, "x", &v, 1, &rows), -EINVAL);
	v = tandem_text("\xff");
	assert_int_equal(tandem_exec(t, "x", &v, 1, NULL), -EINVAL);
	assert_string_equal(
	    tandem_errmsg(t), "parameter 1: the text is not valid UTF-8 (pass it as a blob)");
	v = tandem_blob(NULL, 3);
	assert_int_equal(tandem_exec(t, "x", &v, 1, NULL), -EINVAL);
	v.type = (enum tandem_type)42;
	assert_int_equal(tandem_exec(t, "x", &v, 1, NULL), -EINVAL);
	assert_int_equal(tandem_exec(t, "\xff", NULL, 0, NULL), -EINVAL);
	assert_int_equal(tandem_query(t, "\xff", NULL, 0, &rows), -EINVAL);
	assert_int_equal(tandem_query(t, NULL, NULL, 0, &rows), -EINVAL);
	assert_int_equal(tandem_query(t, "x", NULL, 0, NULL), -EINVAL);
	assert_int_equal(tandem_query(NULL, "x", NULL, 0, &rows), -EINVAL);
	/* A text helper given NULL makes a NULL. */
	assert_int_equal(tandem_text(NULL).type, TANDEM_NULL);
	tandem_close(NULL);
	tandem_rows_free(NULL);
	assert_string_equal(tandem_errmsg(NULL), "");
	assert_string_equal(tandem_active(NULL), "");
}

static void
test_too_large(void **state)
{
	struct tandem *t = *state;
	size_t len = CTL_MAX_MSG;
	char *big = malloc(len + 1);
	struct tandem_value v;
	struct tandem_rows rows = {0};

	assert_non_null(big);
	memset(big, 'x', len);
	big[len] = '\0';
	v = tandem_text(big);
	assert_int_equal(tandem_exec(t, "INSERT all", &v, 1, NULL), -EMSGSIZE);
	assert_non_null(strstr(tandem_errmsg(t), "more than the"));
	assert_int_equal(tandem_query(t, "echo", &v, 1, &rows), -EMSGSIZE);
	/* Just under the limit goes through. */
	v = tandem_blob(big, (CTL_MAX_MSG - 200) / 4 * 3);
	assert_int_equal(tandem_query(t, "SELECT all", &v, 1, &rows), -EIO);
	assert_non_null(strstr(tandem_errmsg(t), "test: params is"));
	free(big);
}

/* Reads */

static void
test_query_all_types(void **state)
{
	struct tandem *t = *state;
	struct tandem_rows rows;
	const struct tandem_value *v;

	memset(&rows, 0, sizeof(rows));
	if (tandem_query(t, "all-types", NULL, 0, &rows) != 0)
		fail_msg("%s", tandem_errmsg(t));
	assert_int_equal(rows.n_cols, 6);
	assert_int_equal(rows.n_rows, 2);
	assert_string_equal(rows.names[0], "n");
	assert_string_equal(rows.names[5], "e");
	assert_int_equal(tandem_rows_at(&rows, 0, 0)->type, TANDEM_NULL);
	v = tandem_rows_at(&rows, 0, 1);
	assert_int_equal(v->type, TANDEM_INTEGER);
	assert_int_equal(v->i, 42);
	v = tandem_rows_at(&rows, 0, 2);
	assert_int_equal(v->type, TANDEM_FLOAT);
	assert_true(v->f == 2.5);
	v = tandem_rows_at(&rows, 0, 3);
	assert_int_equal(v->type, TANDEM_TEXT);
	assert_int_equal(v->len, 6);
	assert_string_equal(v->p, "h\xc3\xa9llo");
	v = tandem_rows_at(&rows, 0, 4);
	assert_int_equal(v->type, TANDEM_BLOB);
	assert_int_equal(v->len, 4);
	assert_memory_equal(v->p, "\x00\x01\x02\xff", 4);
	v = tandem_rows_at(&rows, 0, 5);
	assert_int_equal(v->type, TANDEM_BLOB);
	assert_int_equal(v->len, 0);
	v = tandem_rows_at(&rows, 1, 0);
	assert_int_equal(v->type, TANDEM_INTEGER);
	assert_true(v->i == INT64_MIN);
	/* 1.0 stays a float. */
	v = tandem_rows_at(&rows, 1, 1);
	assert_int_equal(v->type, TANDEM_FLOAT);
	assert_true(v->f == 1.0);
	assert_true(tandem_rows_at(&rows, 1, 2)->f == -0.125);
	v = tandem_rows_at(&rows, 1, 3);
	assert_int_equal(v->type, TANDEM_TEXT);
	assert_int_equal(v->len, 0);
	assert_string_equal(v->p, "");
	assert_int_equal(tandem_rows_at(&rows, 1, 4)->type, TANDEM_NULL);
	assert_string_equal(tandem_rows_at(&rows, 1, 5)->p, "a\tb");
	tandem_rows_free(&rows);
	assert_null(rows.values);
	assert_int_equal(rows.n_rows, 0);
	tandem_rows_free(&rows);
}

static void
test_query_params(void **state)
{
	struct tandem *t = *state;
	struct tandem_value v[9];
	struct tandem_rows rows;
	size_t i;

	all_values(v);
	/* Exactly the JSON of all_params goes out... */
	if (tandem_query(t, "SELECT all", v, 9, &rows) != 0)
		fail_msg("%s", tandem_errmsg(t));
	assert_int_equal(rows.n_cols, 0);
	assert_int_equal(rows.n_rows, 0);
	tandem_rows_free(&rows);
	/* ...and every type comes back as it went. */
	if (tandem_query(t, "echo", v, 9, &rows) != 0)
		fail_msg("%s", tandem_errmsg(t));
	assert_int_equal(rows.n_cols, 9);
	assert_int_equal(rows.n_rows, 1);
	assert_string_equal(rows.names[8], "p9");
	for (i = 0; i < 9; i++) {
		const struct tandem_value *got = tandem_rows_at(&rows, 0, i);

		assert_int_equal(got->type, v[i].type);
		assert_true(got->i == v[i].i);
		assert_true(got->f == v[i].f);
		assert_int_equal(got->len, v[i].len);
		if (v[i].len > 0)
			assert_memory_equal(got->p, v[i].p, v[i].len);
	}
	tandem_rows_free(&rows);
}

static void
test_query_errors(void **state)
{
	static const struct {
		const char *sql;
		int rc;
	} cases[] = {
	    {"not-active", -EROFS},
	    {"sql", -EINVAL},
	    {"refused", -EPERM},
	    {"too-large", -EMSGSIZE},
	    {"rows-short", -EPROTO},
	    {"rows-bool", -EPROTO},
	    {"rows-blob", -EPROTO},
	    {"rows-name", -EPROTO},
	    {"rows-missing", -EPROTO},
	    {"no-ok", -EPROTO},
	};
	struct tandem *t = *state;
	struct tandem_rows rows = {.n_rows = 77};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tandem_query(t, cases[i].sql, NULL, 0, &rows);

		if (rc != cases[i].rc)
			fail_msg("%s: got %d (%s), want %d", cases[i].sql, rc, tandem_errmsg(t),
			    cases[i].rc);
		assert_int_equal(rows.n_rows, 77);
	}
	assert_int_equal(tandem_query(t, "rows-none", NULL, 0, &rows), 0);
	assert_int_equal(rows.n_cols, 2);
	assert_int_equal(rows.n_rows, 0);
	assert_string_equal(rows.names[1], "v");
	tandem_rows_free(&rows);
	/* A text holding a NUL keeps its length. */
	assert_int_equal(tandem_query(t, "rows-nul", NULL, 0, &rows), 0);
	assert_int_equal(tandem_rows_at(&rows, 0, 0)->len, 3);
	assert_memory_equal(tandem_rows_at(&rows, 0, 0)->p, "a\0b", 4);
	tandem_rows_free(&rows);
}

/* The connection */

static void
test_no_daemon(void **state)
{
	char name[96];
	struct tandem *t;

	(void)snprintf(name, sizeof(name), "%s-missing", service);
	assert_int_equal(setenv("TANDEM_CTL_SERVICE", name, 1), 0);
	errno = 0;
	t = tandem_connect();
	assert_int_equal(setenv("TANDEM_CTL_SERVICE", service, 1), 0);
	assert_null(t);
	assert_int_equal(errno, ENOTCONN);
}

static void
test_daemon_goes_away(void **state)
{
	struct tandem *t = tandem_connect();
	struct tandem_rows rows;

	assert_non_null(t);
	/* The server shuts down while our request waits. */
	assert_int_equal(tandem_exec(t, "die", NULL, 0, NULL), -ENOTCONN);
	assert_non_null(strstr(tandem_errmsg(t), "lost the connection to tandemd"));
	assert_int_equal(server_reap(), 20);
	/* Nobody there: the next call tries to connect again and fails. */
	assert_int_equal(tandem_query(t, "rows-none", NULL, 0, &rows), -ENOTCONN);
	assert_non_null(strstr(tandem_errmsg(t), "tandemd is not running"));
	/* tandemd is back: the same handle works again. */
	server_start();
	assert_int_equal(tandem_query(t, "rows-none", NULL, 0, &rows), 0);
	tandem_rows_free(&rows);
	/* And again for a query. */
	assert_int_equal(tandem_query(t, "die", NULL, 0, &rows), -ENOTCONN);
	assert_int_equal(server_reap(), 20);
	server_start();
	assert_int_equal(tandem_exec(t, "A", NULL, 0, NULL), -EIO);
	tandem_close(t);
}

/* tandemctl db against the same server */

struct result {
	int status;
	char *out;
	char *err;
};

static char *
read_all(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			char *bigger = realloc(buf, cap * 2);

			assert_non_null(bigger);
			buf = bigger;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	return buf;
}

static void
tandemctl_run(struct result *r, ...)
{
	const char *root = getenv("TANDEM_BUILD_ROOT");
	char path[4096];
	char *argv[16];
	int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
	int n = 0, ws;
	va_list ap;
	char *s;
	pid_t pid;

	(void)snprintf(path, sizeof(path), "%s/tools/tandemctl", root != NULL ? root : ".");
	argv[n++] = (char *)"tandemctl";
	va_start(ap, r);
	while ((s = va_arg(ap, char *)) != NULL && n < 15)
		argv[n++] = s;
	va_end(ap);
	argv[n] = NULL;
	assert_true(out >= 0 && err >= 0);
	(void)fflush(stdout);
	(void)fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
			_exit(126);
		(void)setenv("TANDEM_CTL_SERVICE", service, 1);
		execv(path, argv);
		_exit(124);
	}
	ws = wait_pid(pid);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	r->out = read_all(out);
	r->err = read_all(err);
	(void)close(out);
	(void)close(err);
}

#define tandemctl(r, ...) tandemctl_run(r, __VA_ARGS__, (char *)NULL)

static void
check(struct result *r, int status, const char *out, const char *err)
{
	int same = r->status == status && strcmp(r->out, out) == 0 && strcmp(r->err, err) == 0;

	if (!same)
		print_error("got %d, stdout '%s', stderr '%s'; want %d, '%s', '%s'\n", r->status,
		    r->out, r->err, status, out, err);
	free(r->out);
	free(r->err);
	if (!same)
		fail();
}

static void
test_ctl_exec(void **state)
{
	struct result r;

	tandemctl(&r, "db", "exec", "A", "B;C");
	check(&r, 0, "committed: 3 row(s) changed at epoch 7 seq 99\n", "");
	tandemctl(&r, "--json", "db", "exec", "A", "B;C");
	check(&r, 0,
	    "{\n  \"ok\": true,\n  \"changes\": 3,\n  \"last_rowid\": -5,\n  \"epoch\": 7,\n"
	    "  \"seq\": 99\n}\n",
	    "");
	tandemctl(&r, "db", "exec", "not-active");
	check(&r, 4, "", "tandemctl: this node is the standby; the active is n2\n");
	tandemctl(&r, "db", "exec", "sql");
	check(&r, 1, "", "tandemctl: near \"x\": syntax error\n");
	tandemctl(&r, "db", "exec", "-- a comment\nA", "B;C");
	check(&r, 1, "", "tandemctl: test: unknown statement '-- a comment\nA'\n");
}

static void
test_ctl_query(void **state)
{
	struct result r;

	tandemctl(&r, "db", "query", "all-types");
	check(&r, 0,
	    "n\ti\tf\tt\tb\te\n"
	    "NULL\t42\t2.5\th\xc3\xa9llo\tx'000102ff'\tx''\n"
	    "-9223372036854775808\t1.0\t-0.125\t\tNULL\ta\tb\n",
	    "");
	tandemctl(&r, "db", "query", "rows-none");
	check(&r, 0, "k\tv\n", "");
	tandemctl(&r, "db", "query", "rows-none", "--json");
	check(&r, 0,
	    "{\n  \"ok\": true,\n  \"columns\": [\n    \"k\",\n    \"v\"\n  ],\n"
	    "  \"rows\": []\n}\n",
	    "");
	tandemctl(&r, "db", "query", "not-active");
	check(&r, 4, "", "tandemctl: this node is the standby; the active is n2\n");
	tandemctl(&r, "db", "query", "rows-bool");
	check(&r, 1, "", "tandemctl: tandemd sent a malformed reply\n");
}

static void
test_ctl_hash(void **state)
{
	struct result r;

	tandemctl(&r, "db", "hash");
	check(&r, 0, "0123456789abcdef at epoch 7 seq 99\n", "");
	tandemctl(&r, "db", "hash", "--json");
	check(&r, 0,
	    "{\n  \"ok\": true,\n  \"hash\": \"0123456789abcdef\",\n  \"epoch\": 7,\n"
	    "  \"seq\": 99\n}\n",
	    "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_exec_all_types, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_transaction, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_exec_errors, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_not_active, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_bad_arguments, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_too_large, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_query_all_types, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_query_params, setup_conn, teardown_conn),
	    cmocka_unit_test_setup_teardown(test_query_errors, setup_conn, teardown_conn),
	    cmocka_unit_test(test_no_daemon),
	    cmocka_unit_test(test_daemon_goes_away),
	    cmocka_unit_test(test_ctl_exec),
	    cmocka_unit_test(test_ctl_query),
	    cmocka_unit_test(test_ctl_hash),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

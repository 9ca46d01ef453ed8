/*
 * test-control.c: the control IPC server (agent/control.c) and the real
 * tandemctl binary against each other.
 *
 * The test process serves a fake tandemd on a private service name with a
 * request handler that answers fixed JSON, one reply late from a timer and
 * one never (until the client has gone, or control_free has run).  Each
 * client runs in a child process, tandemctl through exec and the raw
 * qb_ipcc clients in a plain fork, while the parent runs the qb_loop until
 * the child's pidfd says it has exited.  Nothing waits on a bare sleep: every
 * wait is the loop running until an event, under a deadline.
 */
#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <qb/qbipcc.h>
#include <qb/qbloop.h>
#include <qb/qbutil.h>

#include "control.h"
#include "ctl-proto.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

#define DEADLINE_MS 30000

static qb_loop_t *loop;
static struct control *ctl;
static char service[64];
static char tandemctl_path[4096];

/* The fake daemon's state. */
static unsigned int n_requests;
static json_t *last_request;
static int status_variant;
static struct control_request *delayed_req;
static qb_loop_timer_handle delayed_timer;
static struct control_request *hung_req;
static int stop_on_hang;

static const char status_ok[] =
    "{\"ok\":true,"
    "\"node\":{\"name\":\"n1\",\"id\":1,\"identity\":\"primary\",\"state\":\"active\","
    "\"version\":\"0.1.0\"},"
    "\"peers\":[{\"name\":\"n2\",\"id\":2,\"identity\":\"redundant\",\"state\":\"standby\","
    "\"member\":true,\"process\":\"member\"}],"
    "\"quorate\":true,\"redundancy\":\"ok\","
    "\"vip\":{\"address\":\"192.0.2.50/24\",\"interface\":\"eth0\",\"holder\":\"n1\"},"
    "\"replication\":{\"mode\":\"sync\",\"epoch\":7,\"seq\":42,\"lag\":0},"
    "\"fencing\":{\"enabled\":false,\"agent\":null,\"state\":\"idle\",\"last_error\":null},"
    "\"warnings\":[\"fencing is disabled: a split brain can make both nodes active\"]}";

static const char status_ok_text[] =
    "node:        n1 (id 1), primary, active, version 0.1.0\n"
    "peer:        n2 (id 2), redundant, standby, member\n"
    "quorum:      quorate\n"
    "redundancy:  ok\n"
    "vip:         192.0.2.50/24 on eth0, held by n1\n"
    "replication: sync, epoch 7, seq 42, lag 0\n"
    "fencing:     DISABLED\n"
    "WARNING: fencing is disabled: a split brain can make both nodes active\n";

static const char status_degraded[] =
    "{\"ok\":true,"
    "\"node\":{\"name\":\"n2\",\"id\":2,\"identity\":\"redundant\",\"state\":\"standby\","
    "\"version\":\"0.1.0\"},"
    "\"peers\":[{\"name\":\"n1\",\"id\":1,\"identity\":\"primary\",\"state\":\"stopped\","
    "\"member\":false,\"process\":\"lost\"}],"
    "\"quorate\":false,\"redundancy\":\"broken\","
    "\"vip\":{\"address\":\"192.0.2.50/24\",\"interface\":\"eth0\",\"holder\":null},"
    "\"replication\":{\"mode\":\"sync\",\"epoch\":7,\"seq\":42,\"lag\":3},"
    "\"fencing\":{\"enabled\":true,\"agent\":\"fence_tandemlab\",\"state\":\"failed\","
    "\"last_error\":\"timed out\"},"
    "\"warnings\":[]}";

static const char status_degraded_text[] =
    "node:        n2 (id 2), redundant, standby, version 0.1.0\n"
    "peer:        n1 (id 1), primary, stopped, NOT a member, tandemd lost\n"
    "quorum:      NOT quorate\n"
    "redundancy:  broken\n"
    "vip:         192.0.2.50/24 on eth0, held by nobody\n"
    "replication: sync, epoch 7, seq 42, lag 3\n"
    "fencing:     enabled, agent fence_tandemlab, failed (last error: timed out)\n";

/* The fake tandemd */

static void
delayed_reply(void *data)
{
	struct control_request *req = delayed_req;

	delayed_req = NULL;
	control_reply(req, json_pack("{s:b, s:s, s:i}", "ok", 1, "active", "n2", "epoch", 7));
}

static void
on_request(struct control_request *req, json_t *request, void *data)
{
	const char *cmd = json_string_value(json_object_get(request, "command"));
	json_t *to, *level;

	n_requests++;
	json_decref(last_request);
	last_request = json_deep_copy(request);

	if (strcmp(cmd, "status") == 0) {
		if (status_variant == 2)
			control_reply(req, json_pack("{s:s}", "hello", "world"));
		else
			control_reply(req,
			    json_loads(status_variant == 0 ? status_ok : status_degraded, 0, NULL));
	} else if (strcmp(cmd, "failover") == 0) {
		to = json_object_get(request, "to");
		if (json_is_null(to) ||
		    (json_is_string(to) && strcmp(json_string_value(to), "n2") == 0)) {
			/* The move takes a while: answer from a timer. */
			assert_null(delayed_req);
			delayed_req = req;
			assert_int_equal(
			    qb_loop_timer_add(loop, QB_LOOP_MED, 200 * QB_TIME_NS_IN_MSEC, NULL,
			        delayed_reply, &delayed_timer),
			    0);
		} else {
			control_reply_error(req, CTL_EXIT_FAILED, "no node named %s",
			    json_is_string(to) ? json_string_value(to) : "?");
		}
	} else if (strcmp(cmd, "log-level") == 0) {
		level = json_object_get(request, "level");
		if (json_is_null(level) || level == NULL)
			control_reply(req, json_pack("{s:b, s:s}", "ok", 1, "level", "info"));
		else if (strcmp(json_string_value(level), "debug") == 0)
			control_reply(req, json_pack("{s:b, s:s}", "ok", 1, "level", "debug"));
		else
			control_reply_error(req, CTL_EXIT_USAGE, "unknown log level '%s'",
			    json_string_value(level));
	} else if (strcmp(cmd, "hang") == 0) {
		assert_null(hung_req);
		hung_req = req;
		if (stop_on_hang)
			qb_loop_stop(loop);
	} else {
		control_reply_error(req, CTL_EXIT_USAGE, "unknown command '%s'", cmd);
	}
}

/* Running the loop until a child exits */

struct result {
	int status; /* exit code, or 128 + signal */
	char *out;
	char *err;
};

static int deadline_hit;
static pid_t child_pid;

static void
deadline(void *data)
{
	deadline_hit = 1;
	qb_loop_stop(loop);
}

static int32_t
child_exited(int32_t fd, int32_t revents, void *data)
{
	qb_loop_stop(loop);
	return 0;
}

/* Runs the loop until something stops it, or DEADLINE_MS. */
static void
run_loop(void)
{
	qb_loop_timer_handle t;

	deadline_hit = 0;
	assert_int_equal(qb_loop_timer_add(loop, QB_LOOP_LOW, DEADLINE_MS * QB_TIME_NS_IN_MSEC,
	                     NULL, deadline, &t),
	    0);
	qb_loop_run(loop);
	if (!deadline_hit)
		(void)qb_loop_timer_del(loop, t);
}

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

/*
 * Runs the loop (serving the child's requests) until child pid exits, and
 * returns its wait status; a child still running at the deadline is killed
 * and fails the test.
 */
static int
wait_child(pid_t pid)
{
	int pidfd = pidfd_open(pid, 0), ws;

	assert_true(pidfd >= 0);
	assert_int_equal(
	    qb_loop_poll_add(loop, QB_LOOP_HIGH, pidfd, POLLIN, NULL, child_exited), 0);
	run_loop();
	(void)qb_loop_poll_del(loop, pidfd);
	(void)close(pidfd);
	if (deadline_hit)
		(void)kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_false(deadline_hit);
	return ws;
}

typedef void (*child_fn)(void *arg);

/* Forks child_fn(arg) with stdout and stderr captured; waits for it on the loop. */
static void
spawn(child_fn fn, void *arg, struct result *r)
{
	int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
	int ws;
	pid_t pid;

	assert_true(out >= 0 && err >= 0);
	(void)fflush(stdout);
	(void)fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
			_exit(126);
		fn(arg);
		_exit(125);
	}
	child_pid = pid;
	ws = wait_child(pid);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	r->out = read_all(out);
	r->err = read_all(err);
	(void)close(out);
	(void)close(err);
}

static void
result_clear(struct result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

struct exec_args {
	const char *service;
	char *argv[16];
};

static void
exec_child(void *arg)
{
	struct exec_args *a = arg;

	(void)setenv("TANDEM_CTL_SERVICE", a->service, 1);
	execv(tandemctl_path, a->argv);
	_exit(124);
}

/* Runs tandemctl with the NULL-terminated arguments against service svc. */
static void
tandemctl_on(const char *svc, struct result *r, ...)
{
	struct exec_args a = {.service = svc};
	va_list ap;
	int n = 0;
	char *s;

	a.argv[n++] = (char *)"tandemctl";
	va_start(ap, r);
	while ((s = va_arg(ap, char *)) != NULL && n < 15)
		a.argv[n++] = s;
	va_end(ap);
	a.argv[n] = NULL;
	spawn(exec_child, &a, r);
}

#define tandemctl(r, ...) tandemctl_on(service, r, __VA_ARGS__, (char *)NULL)

/* Exactly one line, ending in a newline, starting with prefix. */
static void
assert_one_line(const char *text, const char *prefix)
{
	const char *nl = strchr(text, '\n');

	if (strncmp(text, prefix, strlen(prefix)) != 0 || nl == NULL || nl[1] != '\0') {
		print_error("expected one line starting with '%s', got '%s'\n", prefix, text);
		fail();
	}
}

/* stdout is exactly one JSON object; returns it. */
static json_t *
parse_one(const char *text)
{
	json_error_t e;
	json_t *obj = json_loads(text, 0, &e);

	if (!json_is_object(obj)) {
		print_error("not one JSON object (%s): '%s'\n", e.text, text);
		fail();
	}
	return obj;
}

/* A raw client: sends one message, prints the reply's JSON text on stdout. */

struct raw_args {
	int32_t id;
	const char *body;
	size_t body_len;
	int timeout_ms;
	int expect_disconnect;
};

static void
raw_child(void *arg)
{
	struct raw_args *a = arg;
	struct qb_ipc_request_header hdr;
	struct qb_ipc_response_header *rh;
	qb_ipcc_connection_t *c;
	struct iovec iov[2];
	static char buf[CTL_MAX_MSG];
	ssize_t n;

	c = qb_ipcc_connect(service, CTL_MAX_MSG);
	if (c == NULL)
		_exit(10);
	memset(&hdr, 0, sizeof(hdr));
	hdr.id = a->id;
	hdr.size = (int32_t)(sizeof(hdr) + a->body_len);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)a->body;
	iov[1].iov_len = a->body_len;
	n = qb_ipcc_sendv_recv(c, iov, 2, buf, sizeof(buf), a->timeout_ms);
	if (a->expect_disconnect) {
		/* control_free ran while we waited: an error, but not a timeout. */
		_exit(n < 0 && n != -ETIMEDOUT ? 0 : 11);
	}
	if (n == -ETIMEDOUT) {
		qb_ipcc_disconnect(c);
		_exit(12);
	}
	if (n < (ssize_t)sizeof(*rh))
		_exit(13);
	rh = (struct qb_ipc_response_header *)buf;
	if (rh->id != CTL_MSG_REQUEST || rh->size != n || buf[n - 1] != '\0')
		_exit(14);
	(void)fputs(buf + sizeof(*rh), stdout);
	(void)fflush(stdout);
	qb_ipcc_disconnect(c);
	_exit(0);
}

static json_t *
raw_request(int32_t id, const char *body, size_t len)
{
	struct raw_args a = {.id = id, .body = body, .body_len = len, .timeout_ms = 10000};
	struct result r;
	json_t *reply;

	spawn(raw_child, &a, &r);
	assert_int_equal(r.status, 0);
	reply = parse_one(r.out);
	result_clear(&r);
	return reply;
}

static void
assert_usage_reply(json_t *reply, const char *contains)
{
	const char *error = json_string_value(json_object_get(reply, "error"));

	assert_true(json_is_false(json_object_get(reply, "ok")));
	assert_int_equal(json_integer_value(json_object_get(reply, "exit")), CTL_EXIT_USAGE);
	assert_non_null(error);
	if (strstr(error, contains) == NULL) {
		print_error("error '%s' does not contain '%s'\n", error, contains);
		fail();
	}
	json_decref(reply);
}

/* Tests */

static void
test_new_errors(void **state)
{
	errno = 0;
	assert_null(control_new(loop, service, on_request, NULL));
	assert_int_equal(errno, EADDRINUSE);
	errno = 0;
	assert_null(control_new(NULL, "x", on_request, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(control_new(loop, "", on_request, NULL));
	assert_null(control_new(loop, "x", NULL, NULL));
	control_free(NULL);
	control_reply(NULL, json_object());
}

static void
test_status_text(void **state)
{
	struct result r;

	status_variant = 0;
	tandemctl(&r, "status");
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, status_ok_text);
	assert_string_equal(r.err, "");
	result_clear(&r);

	status_variant = 1;
	tandemctl(&r, "status");
	status_variant = 0;
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, status_degraded_text);
	result_clear(&r);
}

static void
test_status_json(void **state)
{
	const char *orders[2][2] = {{"--json", "status"}, {"status", "--json"}};
	struct result r;
	json_t *obj, *expect;
	int i;

	expect = json_loads(status_ok, 0, NULL);
	assert_non_null(expect);
	for (i = 0; i < 2; i++) {
		tandemctl(&r, orders[i][0], orders[i][1]);
		assert_int_equal(r.status, 0);
		assert_string_equal(r.err, "");
		obj = parse_one(r.out);
		assert_true(json_equal(obj, expect));
		assert_string_equal(
		    json_string_value(json_object_get(json_object_get(obj, "node"), "name")), "n1");
		json_decref(obj);
		result_clear(&r);
	}
	json_decref(expect);
}

static void
test_failover_ok(void **state)
{
	struct result r;

	/* Answered 200 ms later from a timer. */
	tandemctl(&r, "failover", "--to", "n2", "--force");
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "n2 is active (epoch 7)\n");
	assert_string_equal(r.err, "");
	assert_string_equal(json_string_value(json_object_get(last_request, "to")), "n2");
	assert_true(json_is_true(json_object_get(last_request, "force")));
	result_clear(&r);

	tandemctl(&r, "failover", "--json");
	assert_int_equal(r.status, 0);
	assert_true(json_is_null(json_object_get(last_request, "to")));
	assert_true(json_is_false(json_object_get(last_request, "force")));
	json_decref(parse_one(r.out));
	result_clear(&r);

	tandemctl(&r, "failover", "--to=n2");
	assert_int_equal(r.status, 0);
	assert_string_equal(json_string_value(json_object_get(last_request, "to")), "n2");
	result_clear(&r);
}

static void
test_failover_refused(void **state)
{
	struct result r;
	json_t *obj;

	tandemctl(&r, "failover", "--to", "n9");
	assert_int_equal(r.status, CTL_EXIT_FAILED);
	assert_string_equal(r.err, "tandemctl: no node named n9\n");
	assert_string_equal(r.out, "");
	result_clear(&r);

	tandemctl(&r, "--json", "failover", "--to", "n9");
	assert_int_equal(r.status, CTL_EXIT_FAILED);
	assert_string_equal(r.err, "tandemctl: no node named n9\n");
	obj = parse_one(r.out);
	assert_true(json_is_false(json_object_get(obj, "ok")));
	assert_string_equal(json_string_value(json_object_get(obj, "error")), "no node named n9");
	json_decref(obj);
	result_clear(&r);
}

static void
test_log_level(void **state)
{
	struct result r;

	tandemctl(&r, "log-level");
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "info\n");
	assert_true(json_is_null(json_object_get(last_request, "level")));
	result_clear(&r);

	tandemctl(&r, "log-level", "debug");
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "log level set to debug\n");
	result_clear(&r);

	/* The daemon validates the name and its exit code is tandemctl's. */
	tandemctl(&r, "log-level", "loud");
	assert_int_equal(r.status, CTL_EXIT_USAGE);
	assert_string_equal(r.err, "tandemctl: unknown log level 'loud'\n");
	result_clear(&r);
}

/* Bad command lines: exit 2, one line, and nothing sent to the daemon. */
static void
test_usage_errors(void **state)
{
	static const char *const cases[][4] = {
	    {"failover", "--bogus", NULL, "tandemctl: unknown option '--bogus'"},
	    {"failover", "--to", NULL, "tandemctl: option '--to' needs a node name"},
	    {"failover", "n2", NULL, "tandemctl: unexpected argument 'n2'"},
	    {"status", "extra", NULL, "tandemctl: unexpected argument 'extra'"},
	    {"status", "-x", NULL, "tandemctl: unknown option '-x'"},
	    {"log-level", "a", "b", "tandemctl: unexpected argument 'b'"},
	    {"--bogus", "status", NULL, "tandemctl: unknown option '--bogus'"},
	    {"frobnicate", NULL, NULL, "tandemctl: unknown command 'frobnicate'"},
	};
	unsigned int before = n_requests;
	struct result r;
	json_t *obj;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tandemctl(&r, cases[i][0], cases[i][1], cases[i][2]);
		assert_int_equal(r.status, CTL_EXIT_USAGE);
		assert_one_line(r.err, cases[i][3]);
		assert_string_equal(r.out, "");
		result_clear(&r);

		tandemctl(&r, "--json", cases[i][0], cases[i][1], cases[i][2]);
		assert_int_equal(r.status, CTL_EXIT_USAGE);
		assert_one_line(r.err, cases[i][3]);
		obj = parse_one(r.out);
		assert_true(json_is_false(json_object_get(obj, "ok")));
		assert_int_equal(json_integer_value(json_object_get(obj, "exit")), CTL_EXIT_USAGE);
		json_decref(obj);
		result_clear(&r);
	}

	tandemctl(&r, "--json");
	assert_int_equal(r.status, CTL_EXIT_USAGE);
	assert_one_line(r.err, "tandemctl: no command given");
	json_decref(parse_one(r.out));
	result_clear(&r);

	assert_int_equal(n_requests, before);
}

static void
test_help_version(void **state)
{
	struct result r;

	tandemctl(&r, "--help");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "failover"));
	result_clear(&r);

	tandemctl(&r, "failover", "-h");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "Usage: tandemctl [--json] failover [--to NODE] [--force]"));
	result_clear(&r);

	tandemctl(&r, "--version");
	assert_int_equal(r.status, 0);
	assert_one_line(r.out, "tandemctl ");
	result_clear(&r);
}

static void
test_not_running(void **state)
{
	char none[80];
	struct result r;
	json_t *obj;

	(void)snprintf(none, sizeof(none), "%s-nobody", service);
	tandemctl_on(none, &r, "status", (char *)NULL);
	assert_int_equal(r.status, CTL_EXIT_NO_DAEMON);
	assert_one_line(r.err, "tandemctl: tandemd is not running on this node (connect: ");
	assert_string_equal(r.out, "");
	result_clear(&r);

	tandemctl_on(none, &r, "failover", "--json", (char *)NULL);
	assert_int_equal(r.status, CTL_EXIT_NO_DAEMON);
	obj = parse_one(r.out);
	assert_int_equal(json_integer_value(json_object_get(obj, "exit")), CTL_EXIT_NO_DAEMON);
	json_decref(obj);
	result_clear(&r);
}

/* A reply that is not {"ok": bool, ...} is not taken for a success. */
static void
test_malformed_reply(void **state)
{
	struct result r;

	status_variant = 2;
	tandemctl(&r, "status");
	status_variant = 0;
	assert_int_equal(r.status, CTL_EXIT_FAILED);
	assert_string_equal(r.err, "tandemctl: tandemd sent a malformed reply\n");
	assert_string_equal(r.out, "");
	result_clear(&r);
}

static void
test_malformed_requests(void **state)
{
	static const char nul_inside[] = "{\"command\":\"status\"}\0junk";
	unsigned int before = n_requests;
	char *big;

	assert_usage_reply(raw_request(CTL_MSG_REQUEST, "not json", 9), "not JSON");
	assert_usage_reply(raw_request(CTL_MSG_REQUEST, "[1,2]", 6), "not a JSON object");
	assert_usage_reply(raw_request(CTL_MSG_REQUEST, "{}", 3), "no string \"command\"");
	assert_usage_reply(
	    raw_request(CTL_MSG_REQUEST, "{\"command\":3}", 14), "no string \"command\"");
	assert_usage_reply(
	    raw_request(CTL_MSG_REQUEST, "{\"command\":\"\"}", 15), "no string \"command\"");
	assert_usage_reply(raw_request(CTL_MSG_REQUEST, "", 0), "empty");
	assert_usage_reply(
	    raw_request(CTL_MSG_REQUEST, nul_inside, sizeof(nul_inside)), "NUL byte");
	assert_usage_reply(
	    raw_request(CTL_MSG_REQUEST, "{\"command\":\"status\",\"command\":\"status\"}", 40),
	    "not JSON");
	assert_usage_reply(raw_request(7, "{\"command\":\"status\"}", 21), "unknown message id 7");
	/* Valid JSON too deep for the parser. */
	big = malloc(4096);
	assert_non_null(big);
	memset(big, '[', 4095);
	big[4095] = '\0';
	assert_usage_reply(raw_request(CTL_MSG_REQUEST, big, 4096), "not JSON");
	free(big);
	assert_int_equal(n_requests, before);

	/* Well formed, unknown to the agent: the agent's error, unknown fields ignored. */
	assert_usage_reply(raw_request(CTL_MSG_REQUEST, "{\"command\":\"frob\",\"x\":1}", 25),
	    "unknown command 'frob'");
	assert_int_equal(n_requests, before + 1);
}

/* A client that leaves before its reply: the late reply is dropped safely. */
static void
test_client_leaves(void **state)
{
	static const char body[] = "{\"command\":\"hang\"}";
	struct raw_args a = {
	    .id = CTL_MSG_REQUEST, .body = body, .body_len = sizeof(body), .timeout_ms = 300};
	struct result r;

	spawn(raw_child, &a, &r);
	/* 12: the client timed out and disconnected. */
	assert_int_equal(r.status, 12);
	assert_non_null(hung_req);
	result_clear(&r);

	/* One more round trip, so the server has seen the hang-up by now. */
	tandemctl(&r, "status");
	assert_int_equal(r.status, 0);
	result_clear(&r);

	control_reply(hung_req, json_pack("{s:b}", "ok", 1));
	hung_req = NULL;

	/* The server still serves. */
	tandemctl(&r, "log-level");
	assert_int_equal(r.status, 0);
	result_clear(&r);
}

/* control_free with a request pending: the client sees the close; the reply is dropped. */
static void
test_free_with_pending(void **state)
{
	static const char body[] = "{\"command\":\"hang\"}";
	struct raw_args a = {.id = CTL_MSG_REQUEST,
	    .body = body,
	    .body_len = sizeof(body),
	    .timeout_ms = DEADLINE_MS,
	    .expect_disconnect = 1};
	int out = memfd_create("out", MFD_CLOEXEC);
	int ws;
	pid_t pid;

	/* Fork by hand: the loop must stop at the request, not at the exit. */
	assert_true(out >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		(void)dup2(out, STDOUT_FILENO);
		raw_child(&a);
	}
	stop_on_hang = 1;
	run_loop();
	stop_on_hang = 0;
	assert_false(deadline_hit);
	assert_non_null(hung_req);

	control_free(ctl);
	ctl = NULL;

	ws = wait_child(pid);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	(void)close(out);

	/* The agent still answers exactly once; control frees the orphan. */
	control_reply_error(hung_req, 1, "shutting down");
	hung_req = NULL;

	/* The name is free again. */
	ctl = control_new(loop, service, on_request, NULL);
	assert_non_null(ctl);
	{
		struct result r;

		tandemctl(&r, "status");
		assert_int_equal(r.status, 0);
		result_clear(&r);
	}
}

static int
setup(void **state)
{
	const char *root = getenv("TANDEM_BUILD_ROOT");

	if (root == NULL) {
		(void)fprintf(stderr, "TANDEM_BUILD_ROOT is not set\n");
		return -1;
	}
	(void)snprintf(tandemctl_path, sizeof(tandemctl_path), "%s/tools/tandemctl", root);
	(void)snprintf(service, sizeof(service), "tandem-test-%d", (int)getpid());
	loop = qb_loop_create();
	if (loop == NULL)
		return -1;
	ctl = control_new(loop, service, on_request, NULL);
	return ctl != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	control_free(ctl);
	ctl = NULL;
	json_decref(last_request);
	last_request = NULL;
	qb_loop_destroy(loop);
	loop = NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_errors),
	    cmocka_unit_test(test_status_text),
	    cmocka_unit_test(test_status_json),
	    cmocka_unit_test(test_failover_ok),
	    cmocka_unit_test(test_failover_refused),
	    cmocka_unit_test(test_log_level),
	    cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test(test_help_version),
	    cmocka_unit_test(test_not_running),
	    cmocka_unit_test(test_malformed_reply),
	    cmocka_unit_test(test_malformed_requests),
	    cmocka_unit_test(test_client_leaves),
	    cmocka_unit_test(test_free_with_pending),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

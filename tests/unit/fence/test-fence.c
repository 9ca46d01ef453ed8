/*
 * test-fence: fence against real child processes on a real qb_loop.
 *
 * At start we write small sh agents into a temporary folder: they record
 * their stdin, count their attempts, fail, sleep or answer "off" as each
 * test needs.  One test runs Debian's own /usr/sbin/fence_dummy (package
 * fence-agents) unchanged, which is the point of the ClusterLabs
 * convention.  Assertions run after the loop returns, never inside a
 * callback, so a failure cannot unwind through libqb.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <qb/qbloop.h>

#include "fence/fence.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

#define GUARD_MS 60000
#define DUMMY "/usr/sbin/fence_dummy"

static char dir[PATH_MAX];

struct outcome {
	qb_loop_t *loop;
	int calls;
	int guard_fired;
	int status;
	int exit_code;
	unsigned int attempts;
	char target[64];
	char action[32];
	char message[256];
	char *output;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	(void)nanosleep(&ts, NULL);
}

static void
path_in_dir(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	FILE *fp;

	path_in_dir(path, sizeof(path), name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Reads a whole small file of dir into buf; returns its length or -1. */
static ssize_t
read_file(const char *name, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	path_in_dir(path, sizeof(path), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	(void)close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void
remove_file(const char *name)
{
	char path[PATH_MAX];

	path_in_dir(path, sizeof(path), name);
	(void)unlink(path);
}

/* True once pid no longer exists or is a zombie waiting for its new parent. */
static int
process_gone(pid_t pid)
{
	char path[64], stat[512], *p;
	ssize_t n;
	int fd;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, stat, sizeof(stat) - 1);
	(void)close(fd);
	if (n <= 0)
		return 1;
	stat[n] = '\0';
	p = strrchr(stat, ')');
	return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

static int
wait_gone(pid_t pid, long ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (!process_gone(pid)) {
		if (now_ms() > end)
			return 0;
		sleep_ms(10);
	}
	return 1;
}

static void
on_done(const struct fence_result *r, void *data)
{
	struct outcome *o = data;

	o->calls++;
	o->status = r->status;
	o->exit_code = r->exit_code;
	o->attempts = r->attempts;
	(void)snprintf(o->target, sizeof(o->target), "%s", r->target);
	(void)snprintf(o->action, sizeof(o->action), "%s", r->action);
	(void)snprintf(o->message, sizeof(o->message), "%s", r->message);
	free(o->output);
	o->output = strdup(r->output);
	qb_loop_stop(o->loop);
}

static void
guard(void *data)
{
	struct outcome *o = data;

	o->guard_fired = 1;
	qb_loop_stop(o->loop);
}

/* Runs the loop until it is stopped or ms have passed. */
static void
loop_run_for(struct outcome *o, unsigned int ms)
{
	qb_loop_timer_handle th;

	assert_int_equal(
	    qb_loop_timer_add(o->loop, QB_LOOP_LOW, (uint64_t)ms * 1000000ULL, o, guard, &th), 0);
	qb_loop_run(o->loop);
	if (!o->guard_fired)
		(void)qb_loop_timer_del(o->loop, th);
}

static void
outcome_clear(struct outcome *o)
{
	free(o->output);
	memset(o, 0, sizeof(*o));
}

/* Runs one action to its end on a loop of its own (libqb's stop is sticky). */
static void
run(const struct fence_config *cfg, const char *target, const char *action, struct outcome *o)
{
	struct fence *f;

	outcome_clear(o);
	o->loop = qb_loop_create();
	assert_non_null(o->loop);
	f = fence_new(o->loop, on_done, o);
	assert_non_null(f);
	assert_int_equal(fence_run(f, cfg, target, action), 0);
	assert_true(fence_busy(f));
	loop_run_for(o, GUARD_MS);
	assert_false(o->guard_fired);
	assert_int_equal(o->calls, 1);
	assert_false(fence_busy(f));
	fence_free(f);
	qb_loop_destroy(o->loop);
	o->loop = NULL;
}

static struct fence_config
config(const char *agent, unsigned int timeout_ms, unsigned int retries)
{
	struct fence_config cfg;
	static char path[PATH_MAX];

	memset(&cfg, 0, sizeof(cfg));
	path_in_dir(path, sizeof(path), agent);
	cfg.agent = path;
	cfg.timeout_ms = timeout_ms;
	cfg.retries = retries;
	cfg.retry_interval_ms = 10;
	return cfg;
}

static void
test_success_and_stdin(void **state)
{
	static const struct fence_option opts[] = {
	    {"ip", "192.0.2.12"},
	    {"username", "admin"},
	    {"password", "s3cret =x"},
	    {"ssl_insecure", NULL},
	};
	struct fence_config cfg = config("agent-record", 10000, 2);
	struct outcome o = {0};
	char got[1024];

	cfg.options = opts;
	cfg.n_options = 4;
	remove_file("record.stdin");
	run(&cfg, "n2", "off", &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.exit_code, 0);
	assert_int_equal(o.attempts, 1);
	assert_string_equal(o.target, "n2");
	assert_string_equal(o.action, "off");
	assert_string_equal(o.output, "Success: Powered OFF\n");
	/* No stderr: the message falls back to stdout's last line. */
	assert_string_equal(o.message, "Success: Powered OFF");
	assert_true(read_file("record.stdin", got, sizeof(got)) > 0);
	assert_string_equal(got, "ip=192.0.2.12\n"
	                         "username=admin\n"
	                         "password=s3cret =x\n"
	                         "ssl_insecure=\n"
	                         "action=off\n"
	                         "nodename=n2\n");
	/* The agent runs with no arguments, or fencing.py would parse argv instead. */
	assert_true(read_file("record.argc", got, sizeof(got)) > 0);
	assert_string_equal(got, "0\n");
	outcome_clear(&o);
}

static void
test_retry_then_success(void **state)
{
	struct fence_config cfg = config("agent-flaky", 10000, 3);
	struct outcome o = {0};
	uint64_t start;
	char got[64];

	cfg.retry_interval_ms = 300;
	remove_file("flaky.count");
	start = now_ms();
	run(&cfg, "n2", "reboot", &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.exit_code, 0);
	assert_int_equal(o.attempts, 2);
	assert_true(now_ms() - start >= 300);
	assert_true(read_file("flaky.count", got, sizeof(got)) > 0);
	assert_string_equal(got, "2\n");
	outcome_clear(&o);
}

static void
test_all_attempts_fail(void **state)
{
	struct fence_config cfg = config("agent-fail", 10000, 2);
	struct outcome o = {0};
	char got[64];

	remove_file("fail.count");
	run(&cfg, "n2", "off", &o);
	assert_int_equal(o.status, -EIO);
	assert_int_equal(o.exit_code, 1);
	assert_int_equal(o.attempts, 3);
	assert_string_equal(o.message, "Failed: unable to connect/login to fencing device");
	assert_string_equal(o.output, "partial stdout\n");
	assert_true(read_file("fail.count", got, sizeof(got)) > 0);
	assert_string_equal(got, "3\n");
	outcome_clear(&o);
}

static void
read_pids(const char *name, pid_t *sh, pid_t *child)
{
	char got[64];
	int a, b;
	uint64_t end = now_ms() + 10000;

	while (read_file(name, got, sizeof(got)) <= 0) {
		assert_true(now_ms() < end);
		sleep_ms(10);
	}
	assert_int_equal(sscanf(got, "%d %d", &a, &b), 2);
	*sh = a;
	*child = b;
}

static void
test_timeout_kills(void **state)
{
	struct fence_config cfg = config("agent-sleep", 1000, 0);
	struct outcome o = {0};
	pid_t sh, child;
	uint64_t start;

	remove_file("sleep.pids");
	start = now_ms();
	run(&cfg, "n2", "off", &o);
	assert_int_equal(o.status, -ETIMEDOUT);
	assert_int_equal(o.exit_code, -1);
	assert_int_equal(o.attempts, 1);
	assert_true(now_ms() - start >= 1000);
	assert_true(now_ms() - start < 10000);
	read_pids("sleep.pids", &sh, &child);
	/* The agent was reaped before the report; its sleep died with its group. */
	assert_true(process_gone(sh));
	assert_true(wait_gone(child, 5000));
	outcome_clear(&o);
}

static void
test_timeout_each_attempt(void **state)
{
	struct fence_config cfg = config("agent-sleep", 200, 1);
	struct outcome o = {0};

	run(&cfg, "n2", "off", &o);
	assert_int_equal(o.status, -ETIMEDOUT);
	assert_int_equal(o.attempts, 2);
	outcome_clear(&o);
}

static void
test_missing_agent(void **state)
{
	struct fence_config cfg = config("no-such-agent", 10000, 0);
	struct outcome o = {0};
	struct fence *f;

	o.loop = qb_loop_create();
	f = fence_new(o.loop, on_done, &o);
	assert_non_null(f);
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), -ENOENT);
	cfg.agent = "fence_no_such_agent_anywhere";
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), -ENOENT);
	assert_false(fence_busy(f));
	/* A synchronous error means no callback, ever. */
	loop_run_for(&o, 100);
	assert_int_equal(o.calls, 0);
	fence_free(f);
	qb_loop_destroy(o.loop);
	outcome_clear(&o);
}

/* The agent exists but cannot be executed (its interpreter is missing). */
static void
test_exec_failure(void **state)
{
	struct fence_config cfg = config("agent-badinterp", 10000, 1);
	struct outcome o = {0};

	run(&cfg, "n2", "off", &o);
	assert_int_equal(o.status, -ENOENT);
	assert_int_equal(o.exit_code, -1);
	assert_int_equal(o.attempts, 2);
	outcome_clear(&o);
}

/* An agent's own exit code 127 is a failure of the agent, not a missing agent. */
static void
test_agent_exit_127(void **state)
{
	struct fence_config cfg = config("agent-127", 10000, 0);
	struct outcome o = {0};

	run(&cfg, "n2", "off", &o);
	assert_int_equal(o.status, -EIO);
	assert_int_equal(o.exit_code, 127);
	assert_string_equal(o.message, "ipmitool: not found");
	outcome_clear(&o);
}

static void
test_busy(void **state)
{
	struct fence_config cfg = config("agent-record", 10000, 0);
	struct outcome o = {0};
	struct fence *f;

	o.loop = qb_loop_create();
	f = fence_new(o.loop, on_done, &o);
	assert_non_null(f);
	assert_false(fence_busy(f));
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), 0);
	assert_true(fence_busy(f));
	assert_int_equal(fence_run(f, &cfg, "n1", "on"), -EBUSY);
	loop_run_for(&o, GUARD_MS);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, 0);
	/* The refused run did not replace the one in progress. */
	assert_string_equal(o.target, "n2");
	assert_string_equal(o.action, "off");
	assert_false(fence_busy(f));
	fence_free(f);
	qb_loop_destroy(o.loop);
	outcome_clear(&o);
}

static void
test_invalid(void **state)
{
	struct fence_option bad_value[] = {{"ip", "192.0.2.12\naction=on"}};
	struct fence_option bad_key[] = {{"ip=", "192.0.2.12"}};
	struct fence_config cfg = config("agent-record", 10000, 0);
	struct outcome o = {0};
	struct fence *f;

	o.loop = qb_loop_create();
	assert_null(fence_new(NULL, on_done, &o));
	assert_int_equal(errno, EINVAL);
	assert_null(fence_new(o.loop, NULL, &o));
	f = fence_new(o.loop, on_done, &o);
	assert_non_null(f);
	assert_int_equal(fence_run(f, &cfg, "n2", "explode"), -EINVAL);
	assert_int_equal(fence_run(f, &cfg, "n2", "OFF"), -EINVAL);
	assert_int_equal(fence_run(f, &cfg, "n2", ""), -EINVAL);
	assert_int_equal(fence_run(f, &cfg, "n2\naction=on", "status"), -EINVAL);
	cfg.options = bad_value;
	cfg.n_options = 1;
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), -EINVAL);
	cfg.options = bad_key;
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), -EINVAL);
	cfg.options = NULL;
	cfg.n_options = 0;
	cfg.timeout_ms = 0;
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), -EINVAL);
	assert_false(fence_busy(f));
	loop_run_for(&o, 100);
	assert_int_equal(o.calls, 0);
	fence_free(f);
	fence_free(NULL);
	qb_loop_destroy(o.loop);
	outcome_clear(&o);
}

static void
test_status_off(void **state)
{
	struct fence_config cfg = config("agent-status", 10000, 2);
	struct outcome o = {0};

	run(&cfg, "n2", "status", &o);
	assert_int_equal(o.status, -EHOSTDOWN);
	assert_int_equal(o.exit_code, 2);
	/* An answer, not a failure: no retry. */
	assert_int_equal(o.attempts, 1);
	assert_string_equal(o.output, "Status: OFF\n");
	/* Exit code 2 means "off" only for status. */
	run(&cfg, "n2", "off", &o);
	assert_int_equal(o.status, -EIO);
	assert_int_equal(o.exit_code, 2);
	assert_int_equal(o.attempts, 3);
	outcome_clear(&o);
}

static void
test_free_while_running(void **state)
{
	struct fence_config cfg = config("agent-sleep", 30000, 3);
	struct outcome o = {0};
	struct fence *f;
	pid_t sh, child;

	remove_file("sleep.pids");
	o.loop = qb_loop_create();
	f = fence_new(o.loop, on_done, &o);
	assert_non_null(f);
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), 0);
	/* The child runs without the loop; wait for it to be up. */
	read_pids("sleep.pids", &sh, &child);
	assert_false(process_gone(sh));
	fence_free(f);
	assert_true(process_gone(sh));
	assert_true(wait_gone(child, 5000));
	loop_run_for(&o, 300);
	assert_true(o.guard_fired);
	assert_int_equal(o.calls, 0);
	qb_loop_destroy(o.loop);
	outcome_clear(&o);
}

/* Freed between two attempts: the pause timer goes, no callback. */
static void
test_free_while_waiting(void **state)
{
	struct fence_config cfg = config("agent-fail", 10000, 3);
	struct outcome o = {0};
	struct fence *f;

	char got[64];

	cfg.retry_interval_ms = 60000;
	remove_file("fail.count");
	o.loop = qb_loop_create();
	f = fence_new(o.loop, on_done, &o);
	assert_int_equal(fence_run(f, &cfg, "n2", "off"), 0);
	loop_run_for(&o, 1000);
	/* First attempt failed, the second one is 60 s away. */
	assert_true(read_file("fail.count", got, sizeof(got)) > 0);
	assert_string_equal(got, "1\n");
	assert_true(fence_busy(f));
	fence_free(f);
	qb_loop_destroy(o.loop);
	assert_int_equal(o.calls, 0);
	outcome_clear(&o);
}

/*
 * Two runs end in the same loop turn, so both on_done are queued; the
 * first one frees the other fence, whose on_done must then never run.
 */
struct pair {
	qb_loop_t *loop;
	struct fence *other;
	int calls;
};

static void
pair_done(const struct fence_result *r, void *data)
{
	struct pair *p = data;

	p->calls++;
	fence_free(p->other);
	p->other = NULL;
}

static void
pair_guard(void *data)
{
	qb_loop_stop(data);
}

static void
test_free_while_queued(void **state)
{
	struct fence_config cfg = config("agent-record", 10000, 0);
	struct pair a = {0}, b = {0};
	qb_loop_timer_handle th;
	struct fence *fa, *fb;

	a.loop = b.loop = qb_loop_create();
	fa = fence_new(a.loop, pair_done, &a);
	fb = fence_new(b.loop, pair_done, &b);
	assert_non_null(fa);
	assert_non_null(fb);
	a.other = fb;
	b.other = fa;
	assert_int_equal(fence_run(fa, &cfg, "n1", "off"), 0);
	assert_int_equal(fence_run(fb, &cfg, "n2", "off"), 0);
	/* Both agents have exited before the loop looks at them. */
	sleep_ms(500);
	assert_int_equal(
	    qb_loop_timer_add(a.loop, QB_LOOP_LOW, 1000000000ULL, a.loop, pair_guard, &th), 0);
	qb_loop_run(a.loop);
	/* Exactly one callback ran, and it freed the other fence. */
	assert_int_equal(a.calls + b.calls, 1);
	if (a.calls == 1) {
		assert_null(a.other);
		fence_free(fa);
	} else {
		assert_null(b.other);
		fence_free(fb);
	}
	qb_loop_destroy(a.loop);
}

/* Big input (POLLOUT path), big stdout (capped) and big stderr (tail kept). */
static void
test_big(void **state)
{
	struct fence_option opts[1];
	struct fence_config cfg = config("agent-big", 20000, 0);
	struct outcome o = {0};
	size_t n = 200000, i;
	char *value, got[64];

	value = malloc(n + 1);
	assert_non_null(value);
	for (i = 0; i < n; i++)
		value[i] = (char)('a' + i % 26);
	value[n] = '\0';
	opts[0].key = "blob";
	opts[0].value = value;
	cfg.options = opts;
	cfg.n_options = 1;
	run(&cfg, "n2", "list", &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(strlen(o.output), 64 * 1024);
	assert_true(strspn(o.output, "x") == 64 * 1024);
	assert_string_equal(o.message, "last words");
	assert_true(read_file("big.len", got, sizeof(got)) > 0);
	/* "blob=" value "\n" "action=list\n" "nodename=n2\n" */
	assert_int_equal(atol(got), (long)(5 + n + 1 + 12 + 12));
	free(value);
	outcome_clear(&o);
}

static void
test_agent_path(void **state)
{
	char buf[PATH_MAX], want[PATH_MAX], search[PATH_MAX + 32], *old;

	old = getenv("PATH");
	old = old != NULL ? strdup(old) : NULL;
	(void)snprintf(search, sizeof(search), "relative::%s:/bin", dir);
	assert_int_equal(setenv("PATH", search, 1), 0);

	path_in_dir(want, sizeof(want), "agent-record");
	assert_int_equal(fence_agent_path("agent-record", buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	assert_int_equal(fence_agent_path(want, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	if (access(DUMMY, X_OK) == 0) {
		assert_int_equal(fence_agent_path("fence_dummy", buf, sizeof(buf)), 0);
		assert_string_equal(buf, DUMMY);
	}
	assert_int_equal(fence_agent_path("sh", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/bin/sh");

	strcpy(buf, "untouched");
	assert_int_equal(fence_agent_path("./agent-record", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(fence_agent_path("", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(fence_agent_path(NULL, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(fence_agent_path("not-executable", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(fence_agent_path(dir, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(fence_agent_path("agent-record", buf, 4), -ENOENT);
	assert_string_equal(buf, "untouched");

	if (old != NULL) {
		assert_int_equal(setenv("PATH", old, 1), 0);
		free(old);
	} else {
		assert_int_equal(unsetenv("PATH"), 0);
	}
}

/* fence_dummy, run step after step from on_done itself. */
struct dummy_seq {
	qb_loop_t *loop;
	struct fence *f;
	const struct fence_config *cfg;
	unsigned int step;
	int status[8];
	int run_rc[8];
	char *output[8];
	char *message[8];
};

static const char *const dummy_actions[] = {"metadata", "monitor", "on", "status", "off", "status"};
#define DUMMY_STEPS (sizeof(dummy_actions) / sizeof(dummy_actions[0]))

static void
dummy_done(const struct fence_result *r, void *data)
{
	struct dummy_seq *s = data;

	s->status[s->step] = r->status;
	s->output[s->step] = strdup(r->output);
	s->message[s->step] = strdup(r->message);
	s->step++;
	if (s->step < DUMMY_STEPS) {
		s->run_rc[s->step] = fence_run(s->f, s->cfg, "n2", dummy_actions[s->step]);
		if (s->run_rc[s->step] == 0)
			return;
	}
	qb_loop_stop(s->loop);
}

static void
dummy_guard(void *data)
{
	qb_loop_stop(data);
}

static void
test_fence_dummy(void **state)
{
	char status_file[PATH_MAX], got[64];
	struct fence_option opts[2] = {{"type", "file"}, {"status_file", status_file}};
	struct fence_config cfg;
	struct dummy_seq s;
	qb_loop_timer_handle th;
	unsigned int i;

	if (access(DUMMY, X_OK) != 0)
		skip();
	path_in_dir(status_file, sizeof(status_file), "dummy.status");
	(void)unlink(status_file);
	memset(&cfg, 0, sizeof(cfg));
	cfg.agent = "fence_dummy";
	cfg.options = opts;
	cfg.n_options = 2;
	cfg.timeout_ms = 30000;
	cfg.retries = 0;

	memset(&s, 0, sizeof(s));
	s.loop = qb_loop_create();
	s.cfg = &cfg;
	s.f = fence_new(s.loop, dummy_done, &s);
	assert_non_null(s.f);
	assert_int_equal(fence_run(s.f, &cfg, "n2", dummy_actions[0]), 0);
	assert_int_equal(
	    qb_loop_timer_add(s.loop, QB_LOOP_LOW, 120000000000ULL, s.loop, dummy_guard, &th), 0);
	qb_loop_run(s.loop);
	(void)qb_loop_timer_del(s.loop, th);
	fence_free(s.f);
	qb_loop_destroy(s.loop);

	for (i = 0; i < DUMMY_STEPS; i++)
		print_message("# fence_dummy %s: status %d, message \"%s\"\n", dummy_actions[i],
		    s.status[i], s.message[i] != NULL ? s.message[i] : "(none)");
	assert_int_equal(s.step, DUMMY_STEPS);
	for (i = 0; i < DUMMY_STEPS; i++)
		assert_int_equal(s.run_rc[i], 0);
	assert_int_equal(s.status[0], 0);
	assert_non_null(strstr(s.output[0], "<resource-agent"));
	assert_non_null(strstr(s.output[0], "name=\"fence_dummy\""));
	assert_int_equal(s.status[1], 0); /* monitor */
	assert_int_equal(s.status[2], 0); /* on */
	assert_int_equal(s.status[3], 0); /* status: on */
	assert_non_null(strstr(s.output[3], "Status: ON"));
	assert_int_equal(s.status[4], 0); /* off */
	assert_int_equal(s.status[5], -EHOSTDOWN);
	assert_non_null(strstr(s.output[5], "Status: OFF"));
	assert_true(read_file("dummy.status", got, sizeof(got)) > 0);
	assert_string_equal(got, "off");
	for (i = 0; i < DUMMY_STEPS; i++) {
		free(s.output[i]);
		free(s.message[i]);
	}
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)snprintf(dir, sizeof(dir), "%s/test-fence.XXXXXX", tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	write_file("agent-record",
	    "#!/bin/sh\n"
	    "D=$(dirname \"$0\")\n"
	    "echo $# > \"$D/record.argc\"\n"
	    "cat > \"$D/record.stdin\"\n"
	    "echo 'Success: Powered OFF'\n"
	    "exit 0\n",
	    0755);
	write_file("agent-flaky",
	    "#!/bin/sh\n"
	    "D=$(dirname \"$0\")\n"
	    "cat > /dev/null\n"
	    "n=$(cat \"$D/flaky.count\" 2>/dev/null || echo 0)\n"
	    "n=$((n + 1))\n"
	    "echo $n > \"$D/flaky.count\"\n"
	    "if [ $n -lt 2 ]; then echo 'switch busy' >&2; exit 1; fi\n"
	    "echo 'Success: Rebooted'\n"
	    "exit 0\n",
	    0755);
	write_file("agent-fail",
	    "#!/bin/sh\n"
	    "D=$(dirname \"$0\")\n"
	    "cat > /dev/null\n"
	    "n=$(cat \"$D/fail.count\" 2>/dev/null || echo 0)\n"
	    "echo $((n + 1)) > \"$D/fail.count\"\n"
	    "echo 'partial stdout'\n"
	    "echo 'connecting to 192.0.2.12' >&2\n"
	    "echo '  Failed: unable to connect/login to fencing device  ' >&2\n"
	    "echo '' >&2\n"
	    "echo '   ' >&2\n"
	    "exit 1\n",
	    0755);
	write_file("agent-sleep",
	    "#!/bin/sh\n"
	    "D=$(dirname \"$0\")\n"
	    "sleep 30 &\n"
	    "echo \"$$ $!\" > \"$D/sleep.tmp\" && mv \"$D/sleep.tmp\" \"$D/sleep.pids\"\n"
	    "wait\n",
	    0755);
	write_file("agent-status",
	    "#!/bin/sh\n"
	    "if grep -q '^action=status$'; then echo 'Status: OFF'; fi\n"
	    "exit 2\n",
	    0755);
	write_file("agent-127",
	    "#!/bin/sh\n"
	    "cat > /dev/null\n"
	    "echo 'ipmitool: not found' >&2\n"
	    "exit 127\n",
	    0755);
	write_file("agent-badinterp", "#!/nonexistent/interpreter\nexit 0\n", 0755);
	write_file("agent-big",
	    "#!/bin/sh\n"
	    "D=$(dirname \"$0\")\n"
	    "wc -c > \"$D/big.len\"\n"
	    "head -c 200000 /dev/zero | tr '\\0' x\n"
	    "head -c 200000 /dev/zero | tr '\\0' y >&2\n"
	    "echo >&2\n"
	    "echo 'last words' >&2\n"
	    "exit 0\n",
	    0755);
	write_file("not-executable", "#!/bin/sh\nexit 0\n", 0644);
	return 0;
}

static int
teardown(void **state)
{
	if (dir[0] != '\0')
		(void)nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_success_and_stdin),
	    cmocka_unit_test(test_retry_then_success),
	    cmocka_unit_test(test_all_attempts_fail),
	    cmocka_unit_test(test_timeout_kills),
	    cmocka_unit_test(test_timeout_each_attempt),
	    cmocka_unit_test(test_missing_agent),
	    cmocka_unit_test(test_exec_failure),
	    cmocka_unit_test(test_agent_exit_127),
	    cmocka_unit_test(test_busy),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_status_off),
	    cmocka_unit_test(test_free_while_running),
	    cmocka_unit_test(test_free_while_waiting),
	    cmocka_unit_test(test_free_while_queued),
	    cmocka_unit_test(test_big),
	    cmocka_unit_test(test_agent_path),
	    cmocka_unit_test(test_fence_dummy),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

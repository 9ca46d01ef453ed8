/*
 * fence.c: owns the fence agent child processes of this node: starting
 * them, feeding them their options, collecting what they print, killing
 * them when they overrun, retrying, and reporting one outcome.  It is the
 * "the lost node is fenced first" half of rule 1 (one active): agent/
 * decides whom to fence and when; this file only makes sure that an answer
 * always comes back, in bounded time, without blocking the loop.
 *
 * The calling convention is ClusterLabs': the agent is executed with no
 * arguments (fencing.py switches to command-line parsing as soon as argv
 * has anything), reads key=value lines on stdin until EOF and exits 0 on
 * success.  For action=status the agents exit 0 when the plug is on and 2
 * when it is off, and we report the latter as -EHOSTDOWN.
 *
 * One attempt is one child with four pipes and a pidfd, all on the
 * caller's qb_loop:
 *
 *   stdin   ours is the write end; the whole input is written at once
 *           (it is far below a pipe's 64 KiB), with POLLOUT only for the
 *           rest if it ever is not, then closed so the agent sees EOF.
 *   stdout  read into a buffer kept from the start (metadata XML, status).
 *   stderr  read into a buffer kept from the end, where the last line is.
 *   status  close-on-exec; the child writes errno into it only when execv
 *           fails, so that an exit code 127 of the agent itself is not
 *           mistaken for "could not run the agent".
 *   pidfd   readable once the child has exited.  We reap exactly our pid,
 *           so tandemd may run other children (service scripts, hooks)
 *           without a global SIGCHLD handler fighting over them.
 *
 * The child gets a process group of its own, so that a timeout kills the
 * agent together with anything it started (ssh, ipmitool, sleep).  After
 * the SIGKILL we still wait for the pidfd before we report, so a reported
 * timeout means the agent is gone.  Both pipes are drained when the child
 * is reaped and then closed, even if a grandchild still holds them.
 *
 * on_done is always called from a loop job, never from fence_run nor from
 * inside one of our poll callbacks, and the fence is idle by then: the
 * callback may start the next run or free the fence.  Until that job has
 * run, fence_busy stays true and fence_run says -EBUSY.
 *
 * Nothing here logs above LOG_DEBUG, and option values (passwords) are
 * never logged.
 */
#define _GNU_SOURCE
#include "fence.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <qb/qblog.h>
#include <qb/qbloop.h>

/* What we keep of each of stdout and stderr per attempt. */
#define FENCE_OUTPUT_MAX (64 * 1024)
/* Longest result->message, in bytes. */
#define FENCE_MESSAGE_MAX 200
/* Reads per poll callback, and when draining a pipe after the child exited. */
#define FENCE_READS_PER_CALL 4
#define FENCE_DRAIN_READS 64
/* fence_free waits this long for a SIGKILLed agent to die. */
#define FENCE_REAP_WAIT_MS 1000
/* exit code of the child when execv failed (as the shells use). */
#define FENCE_EXEC_FAILED 127

enum fence_state {
	FENCE_IDLE,    /* nothing to do */
	FENCE_RUNNING, /* a child runs; the timer is its timeout */
	FENCE_WAITING, /* between two attempts; the timer is the pause */
	FENCE_DONE,    /* the outcome is known; done_job is queued */
};

struct fence_stream {
	int fd;
	/* FENCE_OUTPUT_MAX + 1 bytes, NUL-terminated after len. */
	char *buf;
	size_t len;
	/* Keep the end rather than the beginning when there is too much. */
	int keep_tail;
};

struct fence {
	qb_loop_t *loop;
	fence_done_fn on_done;
	void *data;
	enum fence_state state;

	/* The run, copied by fence_run. */
	char path[PATH_MAX];
	char *target;
	char *action;
	char *input;
	size_t input_len;
	unsigned int timeout_ms;
	unsigned int retries;
	unsigned int retry_interval_ms;
	unsigned int attempts;

	/* The attempt. */
	pid_t pid;
	int pidfd;
	int stdin_fd;
	size_t input_off;
	int status_fd;
	struct fence_stream out;
	struct fence_stream err;
	qb_loop_timer_handle timer;
	int timer_armed;
	int timed_out;

	/* The outcome of the last attempt. */
	int status;
	int exit_code;
};

static const char *const fence_actions[] = {
    "off", "on", "reboot", "status", "monitor", "metadata", "list", NULL};

static void done_job(void *data);
static void retry_timer(void *data);
static void timeout_timer(void *data);

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		(void)close(*fd);
		*fd = -1;
	}
}

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Path resolution */

static int
try_candidate(const char *path, char *buf, unsigned long len)
{
	struct stat st;
	size_t n = strlen(path);

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
		return -ENOENT;
	if (n >= len)
		return -ENOENT;
	memcpy(buf, path, n + 1);
	return 0;
}

static int
try_dir(const char *dir, size_t dir_len, const char *name, char *buf, unsigned long len)
{
	char cand[PATH_MAX];
	int n;

	n = snprintf(cand, sizeof(cand), "%.*s/%s", (int)dir_len, dir, name);
	if (n < 0 || (size_t)n >= sizeof(cand))
		return -ENOENT;
	return try_candidate(cand, buf, len);
}

/*
 * A name with a slash that is not absolute is refused rather than resolved
 * against tandemd's working directory.  Empty and relative PATH entries are
 * skipped for the same reason.  A path that does not fit buf counts as not
 * found.
 */
int
fence_agent_path(const char *agent, char *buf, unsigned long len)
{
	const char *p, *end;

	if (agent == NULL || agent[0] == '\0' || buf == NULL || len == 0)
		return -ENOENT;
	if (agent[0] == '/')
		return try_candidate(agent, buf, len);
	if (strchr(agent, '/') != NULL)
		return -ENOENT;
	if (try_dir("/usr/sbin", strlen("/usr/sbin"), agent, buf, len) == 0)
		return 0;
	for (p = getenv("PATH"); p != NULL && *p != '\0'; p = *end != '\0' ? end + 1 : end) {
		end = strchrnul(p, ':');
		if (*p == '/' && try_dir(p, (size_t)(end - p), agent, buf, len) == 0)
			return 0;
	}
	return -ENOENT;
}

/* The agent's input */

static int
action_valid(const char *action)
{
	unsigned int i;

	for (i = 0; fence_actions[i] != NULL; i++)
		if (strcmp(action, fence_actions[i]) == 0)
			return 1;
	return 0;
}

/* A value may hold anything but a newline, which would start a new key. */
static int
line_ok(const char *s)
{
	return strchr(s, '\n') == NULL;
}

static size_t
input_add(char *buf, size_t off, const char *key, const char *value)
{
	size_t k = strlen(key), v = strlen(value);

	if (buf != NULL) {
		memcpy(buf + off, key, k);
		buf[off + k] = '=';
		memcpy(buf + off + k + 1, value, v);
		buf[off + k + 1 + v] = '\n';
	}
	return off + k + v + 2;
}

/* Builds "key=value\n"... "action=A\nnodename=T\n".  Returns NULL with errno. */
static char *
input_build(const struct fence_config *cfg, const char *target, const char *action, size_t *len)
{
	const struct fence_option *o;
	char *buf = NULL;
	size_t off;
	unsigned int i;
	int pass;

	for (i = 0; i < cfg->n_options; i++) {
		o = &cfg->options[i];
		if (o->key == NULL || o->key[0] == '\0' || strchr(o->key, '=') != NULL ||
		    !line_ok(o->key) || (o->value != NULL && !line_ok(o->value))) {
			errno = EINVAL;
			return NULL;
		}
	}
	if (!line_ok(target)) {
		errno = EINVAL;
		return NULL;
	}
	/* Pass 0 measures, pass 1 writes. */
	for (pass = 0; pass < 2; pass++) {
		off = 0;
		for (i = 0; i < cfg->n_options; i++) {
			o = &cfg->options[i];
			off = input_add(buf, off, o->key, o->value != NULL ? o->value : "");
		}
		off = input_add(buf, off, "action", action);
		off = input_add(buf, off, "nodename", target);
		if (pass == 0) {
			buf = malloc(off + 1);
			if (buf == NULL)
				return NULL;
		}
	}
	buf[off] = '\0';
	*len = off;
	return buf;
}

static void
input_free(struct fence *f)
{
	if (f->input != NULL) {
		/* It holds the agent's password. */
		explicit_bzero(f->input, f->input_len);
		free(f->input);
	}
	f->input = NULL;
	f->input_len = 0;
}

/* Timer */

static int
timer_arm(struct fence *f, unsigned int ms, qb_loop_timer_dispatch_fn fn)
{
	/* A zero timerfd is a disarmed one: never ask for less than 1 ns. */
	uint64_t ns = (uint64_t)ms * 1000000ULL;
	int r;

	r = qb_loop_timer_add(f->loop, QB_LOOP_MED, ns != 0 ? ns : 1, f, fn, &f->timer);
	if (r == 0)
		f->timer_armed = 1;
	return r;
}

static void
timer_cancel(struct fence *f)
{
	if (f->timer_armed)
		(void)qb_loop_timer_del(f->loop, f->timer);
	f->timer_armed = 0;
}

/* stdout and stderr */

static int
stream_reset(struct fence_stream *s)
{
	if (s->buf == NULL) {
		s->buf = malloc(FENCE_OUTPUT_MAX + 1);
		if (s->buf == NULL)
			return -ENOMEM;
	}
	s->len = 0;
	s->buf[0] = '\0';
	return 0;
}

static void
stream_append(struct fence_stream *s, const char *data, size_t n)
{
	size_t drop;

	if (s->keep_tail) {
		if (n >= FENCE_OUTPUT_MAX) {
			memcpy(s->buf, data + n - FENCE_OUTPUT_MAX, FENCE_OUTPUT_MAX);
			s->len = FENCE_OUTPUT_MAX;
		} else {
			if (s->len + n > FENCE_OUTPUT_MAX) {
				drop = s->len + n - FENCE_OUTPUT_MAX;
				memmove(s->buf, s->buf + drop, s->len - drop);
				s->len -= drop;
			}
			memcpy(s->buf + s->len, data, n);
			s->len += n;
		}
	} else {
		if (n > FENCE_OUTPUT_MAX - s->len)
			n = FENCE_OUTPUT_MAX - s->len;
		memcpy(s->buf + s->len, data, n);
		s->len += n;
	}
	s->buf[s->len] = '\0';
}

static void
stream_close(struct fence *f, struct fence_stream *s)
{
	if (s->fd >= 0)
		(void)qb_loop_poll_del(f->loop, s->fd);
	close_fd(&s->fd);
}

/*
 * Reads up to reads chunks.  Returns 0 while the pipe stays open, -1 once
 * it hit EOF or an error and was closed.  Past the cap we keep reading and
 * drop, so that a chatty agent never blocks on a full pipe.
 */
static int
stream_read(struct fence *f, struct fence_stream *s, unsigned int reads)
{
	char chunk[8192];
	ssize_t n;

	while (reads > 0) {
		n = read(s->fd, chunk, sizeof(chunk));
		if (n > 0) {
			stream_append(s, chunk, (size_t)n);
			reads--;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		stream_close(f, s);
		return -1;
	}
	return 0;
}

static int32_t
stream_ready(int32_t fd, int32_t revents, void *data)
{
	struct fence *f = data;
	struct fence_stream *s = fd == f->out.fd ? &f->out : &f->err;

	/* Returning -1 after stream_close's poll_del keeps libqb from re-arming the entry. */
	return stream_read(f, s, FENCE_READS_PER_CALL);
}

/* stdin */

static void
stdin_close(struct fence *f)
{
	if (f->stdin_fd >= 0)
		(void)qb_loop_poll_del(f->loop, f->stdin_fd);
	close_fd(&f->stdin_fd);
}

/*
 * Writes what is left of the input.  Returns 1 when stdin is done with
 * (all written, or the agent closed its end: EPIPE is not our failure, the
 * exit code will tell), 0 when the pipe is full.
 *
 * SIGPIPE is blocked around the write and a SIGPIPE that our write raised
 * is consumed, so the caller's disposition of SIGPIPE does not matter.
 */
static int
stdin_write(struct fence *f)
{
	static const struct timespec zero = {0, 0};
	sigset_t pipe_set, old, pending;
	int was_pending, err = 0;
	ssize_t n;

	(void)sigemptyset(&pipe_set);
	(void)sigaddset(&pipe_set, SIGPIPE);
	(void)sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	(void)sigprocmask(SIG_BLOCK, &pipe_set, &old);
	while (f->input_off < f->input_len) {
		n = write(f->stdin_fd, f->input + f->input_off, f->input_len - f->input_off);
		if (n >= 0) {
			f->input_off += (size_t)n;
		} else if (errno != EINTR) {
			err = errno;
			break;
		}
	}
	if (err == EPIPE && !was_pending) {
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	(void)sigprocmask(SIG_SETMASK, &old, NULL);

	if (err == EAGAIN)
		return 0;
	stdin_close(f);
	return 1;
}

static int32_t
stdin_ready(int32_t fd, int32_t revents, void *data)
{
	return stdin_write(data) ? -1 : 0;
}

/* The child */

static _Noreturn void
child_exec(char *path, int in_fd, int out_fd, int err_fd, int status_fd)
{
	char *argv[] = {path, NULL};
	int fds[3] = {in_fd, out_fd, err_fd};
	struct sigaction sa;
	sigset_t set;
	ssize_t n;
	int i, e;

	/*
	 * Only async-signal-safe calls from here on.  Block everything first
	 * so that no handler of the parent (libqb's signal pipe) runs here.
	 */
	(void)sigfillset(&set);
	(void)sigprocmask(SIG_SETMASK, &set, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (i = 1; i < NSIG; i++)
		(void)sigaction(i, &sa, NULL);
	(void)setpgid(0, 0);

	/* Lift every end above 2 first, so that no dup2 below lands on one of them. */
	status_fd = fcntl(status_fd, F_DUPFD_CLOEXEC, 3);
	for (i = 0; i < 3; i++) {
		fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (fds[i] < 0)
			goto fail;
	}
	for (i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			goto fail;
	/*
	 * Close-on-exec rather than close, so that the status pipe stays open
	 * until execv succeeds.  Kernels without close_range keep only what
	 * was already close-on-exec, which is everything of ours.
	 */
	(void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	(void)sigemptyset(&set);
	(void)sigprocmask(SIG_SETMASK, &set, NULL);
	execv(path, argv);
fail:
	e = errno;
	if (status_fd >= 0) {
		n = write(status_fd, &e, sizeof(e));
		(void)n;
	}
	_exit(FENCE_EXEC_FAILED);
}

/* Closes everything of the attempt.  The child must be reaped, or given up on. */
static void
attempt_release(struct fence *f)
{
	timer_cancel(f);
	stdin_close(f);
	stream_close(f, &f->out);
	stream_close(f, &f->err);
	close_fd(&f->status_fd);
	if (f->pidfd >= 0)
		(void)qb_loop_poll_del(f->loop, f->pidfd);
	close_fd(&f->pidfd);
	f->pid = 0;
}

/*
 * SIGKILLs the agent's process group and reaps it, waiting at most
 * FENCE_REAP_WAIT_MS: SIGKILL takes effect at once unless the process is
 * stuck in the kernel (a hard NFS mount), and then we rather leave a zombie
 * than hang.
 */
static void
attempt_kill(struct fence *f)
{
	struct pollfd p = {.fd = f->pidfd, .events = POLLIN};
	pid_t r;
	int i;

	if (f->pid > 0) {
		(void)kill(-f->pid, SIGKILL);
		(void)kill(f->pid, SIGKILL);
		for (i = 0; i < FENCE_REAP_WAIT_MS; i++) {
			r = waitpid(f->pid, NULL, WNOHANG);
			if (r > 0 || (r < 0 && errno != EINTR))
				break;
			/* With no pidfd (nfds 0) this is a 1 ms sleep. */
			(void)poll(&p, f->pidfd >= 0 ? 1 : 0, 1);
		}
	}
	attempt_release(f);
}

static void
deliver(struct fence *f)
{
	f->state = FENCE_DONE;
	/* Only a failed malloc stops the job; then report at once rather than never. */
	if (qb_loop_job_add(f->loop, QB_LOOP_MED, f, done_job) < 0)
		done_job(f);
}

/* Records one attempt's outcome and either schedules the next or reports. */
static void
attempt_finished(struct fence *f, int status, int exit_code)
{
	f->status = status;
	f->exit_code = exit_code;
	qb_log(LOG_DEBUG, "fence %s %s: attempt %u: status %d, exit code %d", f->action, f->target,
	    f->attempts, status, exit_code);
	/* "off" from a status query is an answer, not a failure to retry. */
	if (status != 0 && status != -EHOSTDOWN && f->attempts <= f->retries) {
		f->state = FENCE_WAITING;
		if (timer_arm(f, f->retry_interval_ms, retry_timer) == 0)
			return;
	}
	deliver(f);
}

static int32_t
child_exited(int32_t fd, int32_t revents, void *data)
{
	struct fence *f = data;
	int st = 0, exec_errno = 0, status, code;
	ssize_t n;
	pid_t r;

	r = waitpid(f->pid, &st, WNOHANG);
	if (r == 0 || (r < 0 && errno == EINTR))
		return 0;

	/* Whatever the agent wrote before it exited is in the pipes now. */
	if (f->out.fd >= 0)
		(void)stream_read(f, &f->out, FENCE_DRAIN_READS);
	if (f->err.fd >= 0)
		(void)stream_read(f, &f->err, FENCE_DRAIN_READS);
	/* The write end is closed: by a successful execv, or by the exit. */
	n = read(f->status_fd, &exec_errno, sizeof(exec_errno));

	code = -1;
	if (r < 0) {
		/* Someone else reaped our child: we cannot know how it went. */
		status = -ECHILD;
	} else if (WIFEXITED(st)) {
		code = WEXITSTATUS(st);
		if (code == FENCE_EXEC_FAILED && n == (ssize_t)sizeof(exec_errno)) {
			status = exec_errno > 0 ? -exec_errno : -ENOENT;
			code = -1;
		} else if (code == 0) {
			status = 0;
		} else if (code == 2 && strcmp(f->action, "status") == 0) {
			/* ClusterLabs status: 0 on, 1 error, 2 off. */
			status = -EHOSTDOWN;
		} else {
			status = -EIO;
		}
	} else {
		status = f->timed_out ? -ETIMEDOUT : -EIO;
	}
	attempt_release(f);
	attempt_finished(f, status, code);
	/* attempt_release deleted this fd's entry; -1 keeps libqb from re-arming it. */
	return -1;
}

static void
timeout_timer(void *data)
{
	struct fence *f = data;

	f->timer_armed = 0;
	f->timed_out = 1;
	qb_log(LOG_DEBUG, "fence %s %s: attempt %u: timed out, killing pid %d", f->action,
	    f->target, f->attempts, (int)f->pid);
	/* The pidfd reports the death; child_exited reaps and reports. */
	(void)kill(-f->pid, SIGKILL);
	(void)kill(f->pid, SIGKILL);
}

/* Starts one attempt.  Returns 0 or -errno with nothing left open. */
static int
attempt_start(struct fence *f)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
	pid_t pid;
	int r;

	f->attempts++;
	f->timed_out = 0;
	f->input_off = 0;
	if ((r = stream_reset(&f->out)) < 0 || (r = stream_reset(&f->err)) < 0)
		return r;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(st, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto fail;
	}
	if (pid == 0)
		child_exec(f->path, in[0], out[1], err[1], st[1]);

	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	close_fd(&st[1]);
	f->pid = pid;
	f->stdin_fd = in[1];
	f->out.fd = out[0];
	f->err.fd = err[0];
	f->status_fd = st[0];
	/* Also here, so that a timeout before the child ran setpgid still hits the group. */
	(void)setpgid(pid, pid);
	qb_log(LOG_DEBUG, "fence %s %s: attempt %u: %s is pid %d", f->action, f->target,
	    f->attempts, f->path, (int)pid);

	f->pidfd = pidfd_open(pid, 0);
	if (f->pidfd < 0) {
		r = -errno;
		goto kill;
	}
	if ((r = set_nonblock(f->stdin_fd)) < 0 || (r = set_nonblock(f->out.fd)) < 0 ||
	    (r = set_nonblock(f->err.fd)) < 0 || (r = set_nonblock(f->status_fd)) < 0)
		goto kill;
	if ((r = qb_loop_poll_add(f->loop, QB_LOOP_MED, f->pidfd, POLLIN, f, child_exited)) < 0)
		goto kill;
	if ((r = qb_loop_poll_add(f->loop, QB_LOOP_MED, f->out.fd, POLLIN, f, stream_ready)) < 0)
		goto kill;
	if ((r = qb_loop_poll_add(f->loop, QB_LOOP_MED, f->err.fd, POLLIN, f, stream_ready)) < 0)
		goto kill;
	if ((r = timer_arm(f, f->timeout_ms, timeout_timer)) < 0)
		goto kill;
	if (!stdin_write(f) &&
	    (r = qb_loop_poll_add(f->loop, QB_LOOP_MED, f->stdin_fd, POLLOUT, f, stdin_ready)) < 0)
		goto kill;
	f->state = FENCE_RUNNING;
	return 0;

kill:
	attempt_kill(f);
	return r;
fail:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	close_fd(&st[0]);
	close_fd(&st[1]);
	return r;
}

static void
retry_timer(void *data)
{
	struct fence *f = data;
	int r;

	f->timer_armed = 0;
	r = attempt_start(f);
	if (r < 0)
		attempt_finished(f, r, -1);
}

/*
 * Copies the last line with anything but blanks in it, trimmed, control
 * characters replaced, cut to size - 1 bytes.  Returns 0 if there is none.
 */
static int
last_line(const char *text, size_t len, char *out, size_t size)
{
	const char *end = text + len, *start, *b, *e;
	size_t i, n;

	while (end > text) {
		for (start = end; start > text && start[-1] != '\n'; start--)
			;
		for (b = start; b < end && isspace((unsigned char)*b); b++)
			;
		for (e = end; e > b && isspace((unsigned char)e[-1]); e--)
			;
		if (e > b) {
			n = (size_t)(e - b) < size - 1 ? (size_t)(e - b) : size - 1;
			for (i = 0; i < n; i++)
				out[i] = iscntrl((unsigned char)b[i]) ? '?' : b[i];
			out[n] = '\0';
			return 1;
		}
		end = start > text ? start - 1 : text;
	}
	return 0;
}

/*
 * Hands the outcome to on_done with the fence already idle.  The strings
 * are taken out of f first, so they stay valid through the callback even
 * if it starts a new run or frees f, and nothing of f is touched after.
 */
static void
done_job(void *data)
{
	struct fence *f = data;
	char message[FENCE_MESSAGE_MAX + 1] = "";
	char *target = f->target, *action = f->action, *output = f->out.buf;
	fence_done_fn on_done = f->on_done;
	void *cb_data = f->data;
	struct fence_result res;

	if (f->err.buf == NULL || !last_line(f->err.buf, f->err.len, message, sizeof(message))) {
		if (output != NULL)
			(void)last_line(output, f->out.len, message, sizeof(message));
	}
	res.target = target;
	res.action = action;
	res.status = f->status;
	res.exit_code = f->exit_code;
	res.attempts = f->attempts;
	res.message = message;
	res.output = output != NULL ? output : "";

	f->target = NULL;
	f->action = NULL;
	f->out.buf = NULL;
	f->out.len = 0;
	input_free(f);
	f->state = FENCE_IDLE;

	on_done(&res, cb_data);
	free(target);
	free(action);
	free(output);
}

/* Public API */

struct fence *
fence_new(qb_loop_t *loop, fence_done_fn on_done, void *data)
{
	struct fence *f;

	if (loop == NULL || on_done == NULL) {
		errno = EINVAL;
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->loop = loop;
	f->on_done = on_done;
	f->data = data;
	f->state = FENCE_IDLE;
	f->pidfd = -1;
	f->stdin_fd = -1;
	f->status_fd = -1;
	f->out.fd = -1;
	f->err.fd = -1;
	f->err.keep_tail = 1;
	f->exit_code = -1;
	return f;
}

void
fence_free(struct fence *f)
{
	if (f == NULL)
		return;
	switch (f->state) {
	case FENCE_RUNNING:
		attempt_kill(f);
		break;
	case FENCE_WAITING:
		timer_cancel(f);
		break;
	case FENCE_DONE:
		(void)qb_loop_job_del(f->loop, QB_LOOP_MED, f, done_job);
		break;
	case FENCE_IDLE:
		break;
	}
	input_free(f);
	free(f->target);
	free(f->action);
	free(f->out.buf);
	free(f->err.buf);
	free(f);
}

/*
 * Beyond the header: a NULL target is written as "nodename=" (metadata and
 * list need none); a zero timeout, a key that is empty or holds '=' or a
 * newline, or a value or target with a newline give -EINVAL; -ENOMEM.  An
 * attempt that cannot start (no fds, fork fails) counts as a failed
 * attempt with that -errno.
 */
int
fence_run(struct fence *f, const struct fence_config *cfg, const char *target, const char *action)
{
	char path[PATH_MAX];
	char *input, *t, *a;
	size_t input_len;
	int r;

	if (f == NULL || cfg == NULL || action == NULL ||
	    (cfg->n_options > 0 && cfg->options == NULL))
		return -EINVAL;
	if (f->state != FENCE_IDLE)
		return -EBUSY;
	if (!action_valid(action) || cfg->timeout_ms == 0)
		return -EINVAL;
	if (target == NULL)
		target = "";
	r = fence_agent_path(cfg->agent, path, sizeof(path));
	if (r < 0)
		return r;
	input = input_build(cfg, target, action, &input_len);
	if (input == NULL)
		return -errno;
	t = strdup(target);
	a = strdup(action);
	if (t == NULL || a == NULL) {
		free(t);
		free(a);
		explicit_bzero(input, input_len);
		free(input);
		return -ENOMEM;
	}

	memcpy(f->path, path, sizeof(path));
	f->input = input;
	f->input_len = input_len;
	f->target = t;
	f->action = a;
	f->timeout_ms = cfg->timeout_ms;
	f->retries = cfg->retries;
	f->retry_interval_ms = cfg->retry_interval_ms;
	f->attempts = 0;
	f->status = 0;
	f->exit_code = -1;
	f->state = FENCE_RUNNING;
	r = attempt_start(f);
	if (r < 0)
		attempt_finished(f, r, -1);
	return 0;
}

int
fence_busy(const struct fence *f)
{
	return f != NULL && f->state != FENCE_IDLE;
}

/*
 * fence: runs fence agents with the ClusterLabs calling convention.
 *
 * An agent is an executable that reads key=value lines on stdin, one of
 * them action=off|on|reboot|status|monitor|metadata, and exits 0 on
 * success.  Every agent of Debian's fence-agents package works unchanged.
 * fence runs one agent at a time as a child process on the caller's
 * qb_loop (its pipes and a timeout timer are loop sources; nothing
 * blocks), kills it when it overruns its timeout, retries, and reports the
 * outcome through one callback.
 *
 * fence never logs above debug.
 */
#ifndef TANDEM_FENCE_H
#define TANDEM_FENCE_H

#include <qb/qbloop.h>

struct fence;

struct fence_option {
	const char *key;
	const char *value;
};

struct fence_config {
	/* Absolute path, or a name looked up in /usr/sbin and then PATH. */
	const char *agent;
	/* Extra key=value lines for the agent (ip=, username=, plug=, ...). */
	const struct fence_option *options;
	unsigned int n_options;
	/* Time allowed for one attempt, and attempts after the first one. */
	unsigned int timeout_ms;
	unsigned int retries;
	/* Pause between attempts. */
	unsigned int retry_interval_ms;
};

struct fence_result {
	/* The node the action was for, and the action. */
	const char *target;
	const char *action;
	/*
	 * 0 on success, -ETIMEDOUT, -EIO (non-zero exit), -ENOENT (no agent), other -errno.
	 * For action "status", exit code 2 (ClusterLabs: the node is off) gives -EHOSTDOWN.
	 */
	int status;
	/* The last attempt's exit code, or -1 when it was killed or did not start. */
	int exit_code;
	unsigned int attempts;
	/* The last non-empty line the agent printed (stderr, else stdout), for the log. */
	const char *message;
	/* Everything the agent printed on stdout (metadata XML, status text); may be "". */
	const char *output;
};

typedef void (*fence_done_fn)(const struct fence_result *result, void *data);

/* Creates a runner on loop.  Returns NULL with errno set. */
struct fence *fence_new(qb_loop_t *loop, fence_done_fn on_done, void *data);

/* Kills a running agent (SIGKILL, reaped) and frees f.  fence_free(NULL) is a no-op. */
void fence_free(struct fence *f);

/*
 * Starts action on target with cfg (copied).  Writes the options, then
 * "action=ACTION" and "nodename=TARGET" to the agent's stdin.  on_done
 * runs exactly once, later from the loop, after the last attempt.
 * Returns 0, -EBUSY while another run is in progress, -EINVAL for an
 * unknown action, or -ENOENT when the agent cannot be found.
 */
int fence_run(
    struct fence *f, const struct fence_config *cfg, const char *target, const char *action);

/* True while an agent runs or waits for its next attempt. */
int fence_busy(const struct fence *f);

/* Resolves cfg->agent to a path as fence_run would; returns 0 or -ENOENT. */
int fence_agent_path(const char *agent, char *buf, unsigned long len);

#endif

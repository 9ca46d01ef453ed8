/*
 * tandemd: one per node; makes the pair act as one.
 *
 * main wires the modules on one qb_loop and carries out what the election
 * decides.  Every event (corosync, netlink, the fence agent's pipes, the
 * control socket, signals, timers) becomes an election input; every
 * election action becomes a call into vip, fence or cluster.  Inputs that
 * arrive while actions are being carried out are queued, so the election
 * always sees them one at a time and in order.
 *
 * Rule 1 (one active): the VIP is removed at start before anything else,
 * the epoch is persisted before the VIP is taken, and a lost peer is
 * fenced before promotion (the election decides; main only executes).
 * A hung peer is detected here: both nodes send their state every
 * heartbeat_interval, and a peer that stays silent for heartbeat_timeout
 * while its tandemd is in the group counts as lost.
 *
 * Rule 2 (no acknowledged write lost): replicate owns the data; main tells
 * the election where the data stands (IN_DATA), tells replicate what the
 * election decided (activate before the VIP is taken, deactivate with
 * the VIP, whether the peer is the active to follow, and whether the
 * active may acknowledge writes alone), and waits for the last frames to
 * reach the standby before a clean exit.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <qb/qblog.h>
#include <qb/qbloop.h>

#include "cluster.h"
#include "config.h"
#include "control.h"
#include "ctl-proto.h"
#include "dbcmd.h"
#include "election.h"
#include "fence/fence.h"
#include "message.h"
#include "replicate/replicate.h"
#include "vip/vip.h"

#define NS_PER_MS 1000000ULL
#define RECONNECT_MS 1000
#define SWITCHOVER_TIMEOUT_MS 30000
#define INPUT_QUEUE_MAX 32
/* A clean exit waits this long at most for the standby to ack the last frames. */
#define EXIT_DRAIN_MS 3000
#define EXIT_POLL_MS 10

struct agent {
	qb_loop_t *loop;
	struct config cfg;
	struct election el;
	struct cluster *cluster;
	struct vip *vip;
	struct fence *fence;
	struct control *control;
	struct replicate *repl;
	/* What replicate was last told: the peer is active; the active may ack alone. */
	bool repl_peer_active;
	bool repl_alone;

	/* Inputs fed while actions run wait here. */
	struct election_input queue[INPUT_QUEUE_MAX];
	size_t queue_len;
	bool stepping;

	qb_loop_timer_handle tick_timer;
	qb_loop_timer_handle grace_timer;
	qb_loop_timer_handle fence_delay_timer;
	qb_loop_timer_handle fence_retry_timer;
	qb_loop_timer_handle reconnect_timer;
	qb_loop_timer_handle switchover_timer;
	qb_loop_timer_handle exit_timer;
	uint64_t exit_deadline;

	/* Heartbeat bookkeeping, in CLOCK_MONOTONIC ms. */
	uint64_t last_tick;
	uint64_t peer_last_heard;

	/* The one admin switchover waiting for its outcome. */
	struct control_request *switchover_req;
	uint32_t switchover_to;
	bool switchover_force;
	/* The peer's version from its last message (0: unknown). */
	uint32_t peer_version;

	char fence_target[CLUSTER_NAME_MAX];
	char fence_error[256];
	unsigned int fence_failures;
};

static void agent_feed(struct agent *a, const struct election_input *in);

static uint64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
timer_stop(struct agent *a, qb_loop_timer_handle *t)
{
	if (qb_loop_timer_is_running(a->loop, *t))
		(void)qb_loop_timer_del(a->loop, *t);
	*t = 0;
}

static void
timer_start(struct agent *a, qb_loop_timer_handle *t, unsigned int ms, qb_loop_timer_dispatch_fn fn)
{
	int rc;

	timer_stop(a, t);
	rc = qb_loop_timer_add(a->loop, QB_LOOP_HIGH, (uint64_t)ms * NS_PER_MS, a, fn, t);
	if (rc != 0) {
		/* Without timers the election cannot keep its promises. */
		qb_log(LOG_CRIT, "cannot arm a timer: %s", strerror(-rc));
		abort();
	}
}

static const char *
node_name(const struct agent *a, uint32_t id)
{
	const struct cluster_node *n;

	if (a->cluster == NULL || id == 0)
		return "?";
	n = cluster_self(a->cluster);
	if (n != NULL && n->id == id)
		return n->name;
	n = cluster_peer(a->cluster);
	if (n != NULL && n->id == id)
		return n->name;
	return "?";
}

static const char *
self_name(const struct agent *a)
{
	return node_name(a, a->el.my_id);
}

static const char *
peer_name(const struct agent *a)
{
	return node_name(a, a->el.peer_id);
}

/* "1.2.3" as 0x010203; parts past 255 or missing read as 0. */
static uint32_t
version_number(const char *text)
{
	unsigned int major = 0, minor = 0, patch = 0;

	if (sscanf(text, "%u.%u.%u", &major, &minor, &patch) < 1)
		return 0;
	return (major & 0xff) << 16 | (minor & 0xff) << 8 | (patch & 0xff);
}

/* --- the persisted epoch -------------------------------------------------- */

static int
epoch_path(const struct agent *a, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/epoch", a->cfg.state_dir);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int
epoch_load(const struct agent *a, uint64_t *ret)
{
	char path[4096], text[32];
	FILE *f;
	char *end;
	unsigned long long v;
	int rc;

	rc = epoch_path(a, path, sizeof(path));
	if (rc < 0)
		return rc;
	f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT) {
			*ret = 0;
			return 0;
		}
		return -errno;
	}
	if (fgets(text, sizeof(text), f) == NULL) {
		(void)fclose(f);
		return -EBADMSG;
	}
	(void)fclose(f);
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\n' && *end != '\0'))
		return -EBADMSG;
	*ret = v;
	return 0;
}

/* Writes the epoch durably: a temporary file, fsync, rename, fsync of the directory. */
static int
epoch_save(const struct agent *a, uint64_t epoch)
{
	char path[4096], tmp[4200], text[32];
	int fd, dfd, n, rc = 0;

	rc = epoch_path(a, path, sizeof(path));
	if (rc < 0)
		return rc;
	(void)snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", epoch);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)n) != n || fsync(fd) != 0)
		rc = errno != 0 ? -errno : -EIO;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		(void)unlink(tmp);
		return rc;
	}
	dfd = open(a->cfg.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		(void)close(dfd);
	}
	return 0;
}

/* --- carrying out actions ------------------------------------------------- */

/*
 * Sends m with our current state filled in.  A state message is a snapshot
 * (a newer one replaces it while corosync makes it wait); a switchover
 * request is not.  Returns 0 or -errno.
 */
static int
send_message(struct agent *a, struct message *m)
{
	uint8_t buf[MESSAGE_MAX_LEN];
	int len;

	if (a->cluster == NULL)
		return -ENOTCONN;
	m->version = version_number(TANDEM_VERSION);
	election_msg(&a->el, &m->state);
	len = message_encode(m, buf, sizeof(buf));
	assert(len > 0);
	if (m->type == MESSAGE_STATE)
		return cluster_send_snapshot(a->cluster, buf, (size_t)len);
	return cluster_send(a->cluster, buf, (size_t)len);
}

static void
broadcast(struct agent *a)
{
	struct message m = {.type = MESSAGE_STATE};
	int rc;

	if (a->cluster == NULL)
		return;
	rc = send_message(a, &m);
	if (rc < 0)
		qb_log(
		    LOG_WARNING, "cannot send our state to the peer: %s, ignoring", strerror(-rc));
}

static void
relay_switchover(struct agent *a, uint32_t to, bool force)
{
	struct message m = {.type = MESSAGE_SWITCHOVER, .switchover_to = to, .force = force};
	int rc = send_message(a, &m);

	if (rc < 0)
		qb_log(LOG_ERR, "cannot ask the active peer to hand over: %s", strerror(-rc));
}

static void
fence_start(struct agent *a, uint32_t target)
{
	const struct config_fence_node *fn;
	struct fence_config fc = {
	    .agent = a->cfg.fence_agent,
	    .timeout_ms = a->cfg.fence_timeout_ms,
	    .retries = a->cfg.fence_retries,
	    .retry_interval_ms = a->cfg.fence_retry_interval_ms,
	};
	struct election_input in = {.type = IN_FENCE_RESULT, .u.fence_ok = false};
	int rc;

	(void)snprintf(a->fence_target, sizeof(a->fence_target), "%s", node_name(a, target));
	fn = config_fence_node(&a->cfg, a->fence_target);
	if (fn != NULL) {
		fc.options = fn->options;
		fc.n_options = fn->n_options;
	}
	rc = a->fence != NULL ? fence_run(a->fence, &fc, a->fence_target, "off") : -ENOENT;
	if (rc < 0) {
		(void)snprintf(a->fence_error, sizeof(a->fence_error), "cannot start %s: %s",
		    a->cfg.fence_agent != NULL ? a->cfg.fence_agent : "no agent", strerror(-rc));
		qb_log(LOG_ERR, "fencing %s failed: %s", a->fence_target, a->fence_error);
		a->fence_failures++;
		agent_feed(a, &in);
	}
}

static void
switchover_finish(struct agent *a, bool ok, const char *error)
{
	json_t *reply;
	const char *active;

	if (a->switchover_req == NULL)
		return;
	timer_stop(a, &a->switchover_timer);
	if (!ok) {
		control_reply_error(a->switchover_req, CTL_EXIT_FAILED, "%s", error);
	} else {
		active = a->el.role == ROLE_ACTIVE ? self_name(a) : peer_name(a);
		reply = json_pack("{s:b, s:s, s:I}", "ok", 1, "active", active, "epoch",
		    (json_int_t)(a->el.role == ROLE_ACTIVE ? a->el.epoch : a->el.peer_msg.epoch));
		control_reply(a->switchover_req, reply);
	}
	a->switchover_req = NULL;
	a->switchover_to = 0;
}

/* A pending switchover is done when its target is the active node. */
static void
switchover_check(struct agent *a)
{
	if (a->switchover_req == NULL)
		return;
	if (a->switchover_to == a->el.my_id && a->el.role == ROLE_ACTIVE)
		switchover_finish(a, true, NULL);
	else if (a->switchover_to != a->el.my_id && a->el.role == ROLE_STANDBY &&
	         a->el.peer == PEER_MEMBER && a->el.peer_msg_valid &&
	         a->el.peer_msg.role == ROLE_ACTIVE)
		switchover_finish(a, true, NULL);
}

static void on_grace(void *data);
static void on_fence_delay(void *data);
static void on_fence_retry(void *data);

/* Leaves the group and stops the loop. */
static void
exit_now(struct agent *a)
{
	if (a->cluster != NULL)
		(void)cluster_leave(a->cluster);
	qb_loop_stop(a->loop);
}

static void
on_exit_poll(void *data)
{
	struct agent *a = data;
	struct replicate_status st;

	a->exit_timer = 0;
	replicate_status(a->repl, &st);
	if ((st.lag == 0 && st.waiting == 0) || st.link != REPLICATE_LINK_STREAMING ||
	    now_ms() >= a->exit_deadline) {
		if (st.lag != 0)
			qb_log(LOG_WARNING,
			    "leaving with %" PRIu64 " frames the standby has not acknowledged",
			    st.lag);
		exit_now(a);
		return;
	}
	timer_start(a, &a->exit_timer, EXIT_POLL_MS, on_exit_poll);
}

/*
 * A clean exit after a handover: the standby takes the role only once it
 * has every frame we committed, so those must leave before we do.
 */
static void
exit_when_drained(struct agent *a)
{
	a->exit_deadline = now_ms() + EXIT_DRAIN_MS;
	on_exit_poll(a);
}

static void
execute(struct agent *a, const struct election_action *act)
{
	int rc;

	switch (act->type) {
	case ACT_PROMOTE:
		rc = epoch_save(a, act->epoch);
		if (rc < 0) {
			/* Without a durable epoch a later promotion could reuse it. */
			qb_log(LOG_CRIT, "cannot persist epoch %" PRIu64 " in %s: %s; exiting",
			    act->epoch, a->cfg.state_dir, strerror(-rc));
			exit(1);
		}
		/* The data's epoch before the VIP: no write can carry the old one. */
		rc = replicate_activate(a->repl, act->epoch);
		if (rc < 0) {
			qb_log(LOG_CRIT,
			    "cannot record epoch %" PRIu64 " in the database: %s; exiting",
			    act->epoch, strerror(-rc));
			exit(1);
		}
		rc = vip_acquire(a->vip);
		qb_log(LOG_NOTICE, "promoted to active (epoch %" PRIu64 "): %s; VIP %s %s",
		    act->epoch, act->reason, vip_address(a->vip), rc == 0 ? "added" : "NOT added");
		if (rc < 0)
			qb_log(
			    LOG_ERR, "cannot add VIP %s: %s", vip_address(a->vip), strerror(-rc));
		a->fence_error[0] = '\0';
		break;
	case ACT_DEMOTE:
		replicate_deactivate(a->repl);
		rc = vip_release(a->vip);
		qb_log(LOG_NOTICE, "demoted to standby (epoch %" PRIu64 "): %s; VIP %s removed%s",
		    act->epoch, act->reason, vip_address(a->vip), rc == 0 ? "" : " (FAILED)");
		if (rc < 0)
			qb_log(LOG_ERR, "cannot remove VIP %s: %s", vip_address(a->vip),
			    strerror(-rc));
		break;
	case ACT_BROADCAST:
		broadcast(a);
		break;
	case ACT_SAVE_EPOCH:
		rc = epoch_save(a, act->epoch);
		if (rc < 0)
			qb_log(LOG_ERR, "cannot persist epoch %" PRIu64 ": %s", act->epoch,
			    strerror(-rc));
		break;
	case ACT_FENCE:
		qb_log(LOG_NOTICE, "fencing %s (epoch %" PRIu64 "): %s", node_name(a, act->node),
		    act->epoch, act->reason);
		fence_start(a, act->node);
		break;
	case ACT_ARM_FENCE_DELAY:
		qb_log(LOG_WARNING, "%s: %s; fencing it in %u ms unless it returns",
		    node_name(a, act->node), act->reason, a->cfg.fence_delay_ms);
		timer_start(a, &a->fence_delay_timer, a->cfg.fence_delay_ms, on_fence_delay);
		break;
	case ACT_ARM_FENCE_RETRY:
		timer_start(
		    a, &a->fence_retry_timer, a->cfg.fence_retry_interval_ms, on_fence_retry);
		break;
	case ACT_ARM_GRACE:
		qb_log(LOG_INFO,
		    "%s's corosync runs but its tandemd is not in the group; "
		    "waiting %u ms for it",
		    node_name(a, act->node), a->cfg.startup_grace_ms);
		timer_start(a, &a->grace_timer, a->cfg.startup_grace_ms, on_grace);
		break;
	case ACT_RELAY_SWITCHOVER:
		relay_switchover(a, act->node, a->switchover_force);
		break;
	case ACT_SWITCHOVER_ACCEPTED:
		qb_log(LOG_INFO, "switchover to %s accepted%s%s", node_name(a, act->node),
		    act->reason != NULL ? ": " : "", act->reason != NULL ? act->reason : "");
		if (a->switchover_req != NULL && a->switchover_to == 0)
			a->switchover_to = act->node;
		break;
	case ACT_SWITCHOVER_REFUSED:
		qb_log(LOG_WARNING, "switchover refused: %s", act->reason);
		switchover_finish(a, false, act->reason);
		break;
	case ACT_EXIT:
		exit_when_drained(a);
		break;
	}
}

static bool
peer_is_active(const struct agent *a)
{
	return a->el.peer == PEER_MEMBER && a->el.peer_msg_valid &&
	       a->el.peer_msg.role == ROLE_ACTIVE;
}

/* Tells replicate what the election now says about the peer. */
static void
repl_sync(struct agent *a)
{
	struct replicate_status st;
	bool peer_active = a->el.role == ROLE_STANDBY && peer_is_active(a);
	bool alone;

	if (a->repl == NULL)
		return;
	if (peer_active != a->repl_peer_active) {
		a->repl_peer_active = peer_active;
		replicate_peer_active(a->repl, peer_active);
	}
	replicate_status(a->repl, &st);
	alone = election_may_ack_alone(&a->el, st.sync_marker_epoch, st.sync_marker);
	if (alone != a->repl_alone) {
		a->repl_alone = alone;
		qb_log(alone ? LOG_WARNING : LOG_NOTICE, "%s",
		    alone ? "the standby cannot be promoted now: acknowledging writes alone "
		            "(redundancy degraded)"
		          : "acknowledging writes only once the standby has them");
		replicate_set_alone(a->repl, alone);
	}
}

/*
 * Tells the election where our data stands.  A standby's position moves
 * with every frame applied; it is announced when no peer is active (then
 * it decides a cold start or a handover) or with a change of the in-sync
 * flag; force_position announces it whatever the peer.
 */
static void
repl_data(struct agent *a, bool force_position)
{
	struct election_input in = {.type = IN_DATA};

	if (a->repl == NULL || a->el.role == ROLE_ACTIVE)
		return;
	in.u.data.in_sync = replicate_in_sync(a->repl);
	replicate_position(a->repl, &in.u.data.epoch, &in.u.data.seq);
	/*
	 * A change of the flag goes with the exact position: the active
	 * judges by it whether an out-of-sync state is older than the stream
	 * it runs now (election_may_ack_alone).
	 */
	if (!force_position && peer_is_active(a) && in.u.data.in_sync == a->el.in_sync) {
		in.u.data.epoch = a->el.data_epoch;
		in.u.data.seq = a->el.seq;
	}
	if (in.u.data.in_sync == a->el.in_sync && in.u.data.epoch == a->el.data_epoch &&
	    in.u.data.seq == a->el.seq)
		return;
	agent_feed(a, &in);
}

static void
on_repl(struct replicate *r, enum replicate_event event, void *data)
{
	struct agent *a = data;

	(void)r;
	(void)event;
	repl_data(a, false);
	repl_sync(a);
}

/*
 * Steps the election with in and carries out its actions.  An input fed
 * from inside an action is queued and stepped after the current actions,
 * so the election's view and the world's stay in order.
 */
static void
agent_feed(struct agent *a, const struct election_input *in)
{
	struct election_action acts[ELECTION_MAX_ACTIONS];
	struct election_input cur;
	size_t n, i;

	if (a->stepping) {
		if (a->queue_len == INPUT_QUEUE_MAX) {
			qb_log(LOG_CRIT, "election input queue overflow");
			abort();
		}
		a->queue[a->queue_len++] = *in;
		return;
	}
	a->stepping = true;
	cur = *in;
	for (;;) {
		/*
		 * The active's position moves with every commit; it matters when
		 * it demotes (the standby waits for it), so it is read afresh.
		 */
		if (a->el.role == ROLE_ACTIVE)
			replicate_position(a->repl, &a->el.data_epoch, &a->el.seq);
		n = election_step(&a->el, &cur, acts, ELECTION_MAX_ACTIONS);
		for (i = 0; i < n; i++) {
			qb_log(LOG_DEBUG, "action %s node %u epoch %" PRIu64,
			    election_action_name(acts[i].type), acts[i].node, acts[i].epoch);
			execute(a, &acts[i]);
		}
		if (a->queue_len == 0)
			break;
		cur = a->queue[0];
		memmove(&a->queue[0], &a->queue[1], --a->queue_len * sizeof(a->queue[0]));
	}
	a->stepping = false;
	switchover_check(a);
	repl_sync(a);
}

/* --- timers ----------------------------------------------------------------- */

static void
on_grace(void *data)
{
	struct agent *a = data;
	struct election_input in = {.type = IN_GRACE_OVER};

	a->grace_timer = 0;
	agent_feed(a, &in);
}

static void
on_fence_delay(void *data)
{
	struct agent *a = data;
	struct election_input in = {.type = IN_FENCE_DELAY_OVER};

	a->fence_delay_timer = 0;
	agent_feed(a, &in);
}

static void
on_fence_retry(void *data)
{
	struct agent *a = data;
	struct election_input in = {.type = IN_FENCE_RETRY};

	a->fence_retry_timer = 0;
	agent_feed(a, &in);
}

static void
on_switchover_timeout(void *data)
{
	struct agent *a = data;
	char msg[200];

	a->switchover_timer = 0;
	(void)snprintf(msg, sizeof(msg),
	    "the switchover did not complete within %d s; see 'tandemctl status' and the logs",
	    SWITCHOVER_TIMEOUT_MS / 1000);
	switchover_finish(a, false, msg);
}

/*
 * The heartbeat: our state goes out every heartbeat_interval, and a peer
 * whose tandemd is in the group but silent for heartbeat_timeout is hung.
 * If this process itself was stalled (stopped, swapped), the silence is
 * ours, not the peer's: start counting again instead.
 */
static void
on_tick(void *data)
{
	struct agent *a = data;
	struct election_input in = {.type = IN_PEER_HUNG};
	uint64_t now = now_ms();

	a->tick_timer = 0;
	timer_start(a, &a->tick_timer, a->cfg.heartbeat_interval_ms, on_tick);
	if (now - a->last_tick > a->cfg.heartbeat_timeout_ms / 2) {
		qb_log(
		    LOG_WARNING, "this tandemd was stalled for %" PRIu64 " ms", now - a->last_tick);
		a->peer_last_heard = now;
	}
	a->last_tick = now;
	broadcast(a);
	if (a->el.peer == PEER_MEMBER && now - a->peer_last_heard > a->cfg.heartbeat_timeout_ms) {
		qb_log(LOG_WARNING,
		    "%s's tandemd sent nothing for %" PRIu64 " ms: treating it as hung",
		    peer_name(a), now - a->peer_last_heard);
		agent_feed(a, &in);
	}
}

/* --- corosync --------------------------------------------------------------- */

static void cluster_connect(struct agent *a);

/* A non-zero number no earlier tandemd on this node is likely to have used. */
static uint32_t
new_incarnation(void)
{
	uint32_t v = 0;

	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
			v = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
	}
	return v;
}

static void
on_reconnect(void *data)
{
	struct agent *a = data;

	a->reconnect_timer = 0;
	cluster_connect(a);
}

static enum loss_reason
loss_reason(enum cluster_leave leave)
{
	switch (leave) {
	case CLUSTER_LEAVE_CLEAN:
		return LOSS_LEAVE;
	case CLUSTER_LEAVE_PROCDOWN:
		return LOSS_PROCDOWN;
	case CLUSTER_LEAVE_NODEDOWN:
		return LOSS_NODEDOWN;
	case CLUSTER_LEAVE_NONE:
		break;
	}
	return LOSS_NONE;
}

static void
on_message(struct agent *a, const void *buf, size_t len)
{
	struct message m;
	struct election_input in;
	int rc;

	rc = message_decode(buf, len, &m);
	if (rc < 0) {
		qb_log(LOG_WARNING, "bad message from %s (%zu bytes): %s, ignoring", peer_name(a),
		    len, strerror(-rc));
		return;
	}
	if (election_hung_peer_heard(&a->el, m.state.nodeid))
		qb_log(LOG_NOTICE, "%s's tandemd, taken for hung, is heard again: a member again",
		    peer_name(a));
	a->peer_last_heard = now_ms();
	a->peer_version = m.version;
	/* The peer is not (or no longer) active: our exact position may decide. */
	if (m.state.role != ROLE_ACTIVE)
		repl_data(a, true);
	switch (m.type) {
	case MESSAGE_STATE:
		in = (struct election_input){.type = IN_PEER_STATE, .u.peer = m.state};
		agent_feed(a, &in);
		break;
	case MESSAGE_SWITCHOVER:
		qb_log(LOG_NOTICE, "%s asks for the active role%s", peer_name(a),
		    m.force ? " (forced)" : "");
		in = (struct election_input){.type = IN_PEER_STATE, .u.peer = m.state};
		agent_feed(a, &in);
		in = (struct election_input){.type = IN_SWITCHOVER,
		    .u.switchover = {.to = m.switchover_to, .force = m.force}};
		agent_feed(a, &in);
		break;
	}
}

static void
on_cluster(enum cluster_event event, const struct cluster_info *info, void *data)
{
	struct agent *a = data;
	struct election_input in = {0};

	switch (event) {
	case CLUSTER_EVENT_MEMBERSHIP:
		qb_log(LOG_INFO, "membership: %s tandemd %s, node %s%s%s",
		    node_name(a, info->peer_id),
		    info->peer_member ? "in the group" : "not in the group",
		    info->peer_node_up ? "up" : "down",
		    info->leave != CLUSTER_LEAVE_NONE ? ", reason " : "",
		    info->leave == CLUSTER_LEAVE_CLEAN      ? "clean leave"
		    : info->leave == CLUSTER_LEAVE_PROCDOWN ? "process down"
		    : info->leave == CLUSTER_LEAVE_NODEDOWN ? "node down"
		                                            : "");
		a->peer_last_heard = now_ms();
		in.type = IN_MEMBERSHIP;
		in.u.membership.peer_id = info->peer_id;
		in.u.membership.peer_member = info->peer_member;
		in.u.membership.peer_node_up = info->peer_node_up;
		in.u.membership.reason = loss_reason(info->leave);
		if (info->peer_member)
			timer_stop(a, &a->grace_timer);
		agent_feed(a, &in);
		break;
	case CLUSTER_EVENT_QUORUM:
		qb_log(LOG_INFO, "quorum: %s", info->quorate ? "quorate" : "NOT quorate");
		in.type = IN_QUORUM;
		in.u.quorate = info->quorate;
		agent_feed(a, &in);
		break;
	case CLUSTER_EVENT_MESSAGE:
		on_message(a, info->msg, info->msg_len);
		break;
	case CLUSTER_EVENT_LOST:
		qb_log(LOG_ERR, "lost the connection to corosync; reconnecting every %d ms",
		    RECONNECT_MS);
		cluster_free(a->cluster);
		a->cluster = NULL;
		in.type = IN_COROSYNC_LOST;
		agent_feed(a, &in);
		timer_start(a, &a->reconnect_timer, RECONNECT_MS, on_reconnect);
		break;
	}
}

/*
 * Opens the database and the replication stream, once corosync has told
 * us the cluster's name and the nodes' addresses.  Logs one line and
 * returns -1 on failure.
 */
static int
repl_start(struct agent *a)
{
	const struct cluster_node *self = cluster_self(a->cluster);
	const struct cluster_node *peer = cluster_peer(a->cluster);
	char db[4096], err[512];
	unsigned char bin[sizeof(struct in6_addr)];
	struct replicate_config rc = {
	    .db_path = db,
	    .state_dir = a->cfg.state_dir,
	    .cluster = cluster_name(a->cluster),
	    .ca_file = a->cfg.repl_ca,
	    .cert_file = a->cfg.repl_cert,
	    .key_file = a->cfg.repl_key,
	    .listen_addr = a->cfg.repl_listen != NULL ? a->cfg.repl_listen : self->addr,
	    .port = (uint16_t)a->cfg.repl_port,
	    .mode = a->cfg.repl_async ? REPLICATE_ASYNC : REPLICATE_SYNC,
	    .node_id = self->id,
	    .incarnation = a->el.my_incarnation,
	    .backlog_bytes = (size_t)a->cfg.repl_backlog_mib << 20,
	    .snapshot_wal_bytes = (uint64_t)a->cfg.repl_snapshot_wal_mib << 20,
	    .timeout_ms = a->cfg.repl_timeout_ms,
	};
	int r;

	if (rc.cluster[0] == '\0') {
		qb_log(LOG_ERR, "corosync has no totem.cluster_name: set it to the cluster name "
		                "the replication certificates carry (O=)");
		return -1;
	}
	if (inet_pton(AF_INET, rc.listen_addr, bin) != 1 &&
	    inet_pton(AF_INET6, rc.listen_addr, bin) != 1) {
		qb_log(LOG_ERR,
		    "[replication] listen: %s's ring0_addr '%s' is not a numeric address; set "
		    "listen",
		    self->name, rc.listen_addr);
		return -1;
	}
	if (inet_pton(AF_INET, peer->addr, bin) != 1 && inet_pton(AF_INET6, peer->addr, bin) != 1) {
		qb_log(LOG_ERR,
		    "%s's ring0_addr '%s' in corosync's nodelist is not a numeric address: the "
		    "replication stream needs one",
		    peer->name, peer->addr);
		return -1;
	}
	(void)snprintf(db, sizeof(db), "%s/tandem.db", a->cfg.state_dir);
	a->repl = replicate_new(a->loop, &rc, on_repl, a, err, sizeof(err));
	if (a->repl == NULL) {
		qb_log(LOG_ERR, "cannot start replication: %s", err);
		return -1;
	}
	r = replicate_set_peer(a->repl, peer->name, peer->addr);
	if (r < 0) {
		qb_log(LOG_ERR, "cannot listen for %s on %s port %u: %s", peer->name,
		    rc.listen_addr, a->cfg.repl_port, strerror(-r));
		return -1;
	}
	replicate_position(a->repl, &a->el.data_epoch, &a->el.seq);
	qb_log(LOG_NOTICE, "database %s at epoch %" PRIu64 " seq %" PRIu64 ", %s replication", db,
	    a->el.data_epoch, a->el.seq, replicate_mode_name(rc.mode));
	return 0;
}

static void
cluster_connect(struct agent *a)
{
	const struct cluster_node *self;
	bool primary;

	a->cluster = cluster_new(a->loop, on_cluster, a);
	if (a->cluster == NULL) {
		qb_log(errno == ECONNREFUSED ? LOG_WARNING : LOG_ERR,
		    "cannot connect to corosync: %s; retrying in %d ms", strerror(errno),
		    RECONNECT_MS);
		timer_start(a, &a->reconnect_timer, RECONNECT_MS, on_reconnect);
		return;
	}
	self = cluster_self(a->cluster);
	primary = a->cfg.primary != NULL && strcmp(a->cfg.primary, self->name) == 0;
	if (a->el.my_id == 0) {
		election_init(&a->el, self->id, primary, a->cfg.fence_agent != NULL, a->el.epoch);
		election_set_incarnation(&a->el, new_incarnation());
		qb_log(LOG_NOTICE, "node %s (id %u, %s), peer %s (id %u), epoch %" PRIu64,
		    self->name, self->id, primary ? "primary" : "redundant",
		    cluster_peer(a->cluster)->name, cluster_peer(a->cluster)->id, a->el.epoch);
		if (repl_start(a) < 0) {
			/* Without its data the node must not serve: stop before taking any role. */
			exit_now(a);
			return;
		}
	}
}

/* --- local health ------------------------------------------------------------ */

static void
on_vip(enum vip_event event, const struct vip_info *info, void *data)
{
	struct agent *a = data;
	struct election_input in = {.type = IN_HEALTH};

	switch (event) {
	case VIP_EVENT_READDED:
		qb_log(LOG_WARNING, "VIP %s was removed from %s from outside; added it back",
		    info->address, info->interface);
		break;
	case VIP_EVENT_CARRIER_LOST:
		qb_log(LOG_WARNING, "%s lost carrier: this node cannot serve the VIP",
		    info->interface);
		in.u.healthy = false;
		agent_feed(a, &in);
		break;
	case VIP_EVENT_CARRIER_UP:
		qb_log(LOG_NOTICE, "%s has carrier again", info->interface);
		in.u.healthy = true;
		agent_feed(a, &in);
		break;
	case VIP_EVENT_ERROR:
		qb_log(LOG_WARNING, "VIP %s on %s: %s, ignoring", info->address, info->interface,
		    strerror(-info->error));
		break;
	}
}

static void
on_fence_done(const struct fence_result *r, void *data)
{
	struct agent *a = data;
	struct election_input in = {.type = IN_FENCE_RESULT, .u.fence_ok = r->status == 0};

	if (r->status == 0) {
		qb_log(LOG_NOTICE, "fenced %s (epoch %" PRIu64 "): agent said it is off", r->target,
		    a->el.epoch);
		a->fence_error[0] = '\0';
		a->fence_failures = 0;
	} else {
		a->fence_failures++;
		(void)snprintf(a->fence_error, sizeof(a->fence_error), "%s (exit %d)%s%s",
		    strerror(-r->status), r->exit_code, r->message[0] != '\0' ? ": " : "",
		    r->message);
		qb_log(LOG_ERR,
		    "fencing %s failed after %u attempts: %s; it stays lost and this node "
		    "stays standby; retrying in %u ms",
		    r->target, r->attempts, a->fence_error, a->cfg.fence_retry_interval_ms);
	}
	agent_feed(a, &in);
}

/* --- control ------------------------------------------------------------------ */

static const char *
fence_phase_name(enum fence_phase p)
{
	switch (p) {
	case FENCE_IDLE:
		return "idle";
	case FENCE_DELAYING:
		return "delaying";
	case FENCE_RUNNING:
		return "running";
	case FENCE_FAILED:
		return "failed";
	}
	return "?";
}

static const char *
redundancy(const struct agent *a)
{
	bool peer_active =
	    a->el.peer == PEER_MEMBER && a->el.peer_msg_valid && a->el.peer_msg.role == ROLE_ACTIVE;

	if (election_redundant(&a->el))
		return "ok";
	if (a->el.role == ROLE_ACTIVE || peer_active)
		return "degraded";
	return "broken";
}

/* The replication part of status. */
static json_t *
repl_json(struct agent *a)
{
	struct replicate_status st;
	json_t *standby = json_null();

	if (a->repl == NULL)
		return json_pack("{s:s, s:I, s:I, s:I}", "mode", "none", "epoch", (json_int_t)0,
		    "seq", (json_int_t)0, "lag", (json_int_t)0);
	replicate_status(a->repl, &st);
	if (st.active)
		standby = json_pack("{s:s?, s:s, s:I}", "name", st.peer, "state",
		    replicate_link_name(st.link), "acked_seq", (json_int_t)st.peer_seq);
	return json_pack(
	    "{s:s, s:I, s:I, s:I, s:b, s:s, s:o, s:b, s:I, s:{s:I, s:I}, s:s?, s:s?, s:{s:f, s:s?, "
	    "s:I}}",
	    "mode", replicate_mode_name(st.mode), "epoch", (json_int_t)st.epoch, "seq",
	    (json_int_t)st.seq, "lag", (json_int_t)st.lag, "in_sync", st.in_sync, "link",
	    replicate_link_name(st.link), "standby", standby, "alone", st.alone, "waiting",
	    (json_int_t)st.waiting, "snapshot", "done", (json_int_t)st.snapshot_done, "total",
	    (json_int_t)st.snapshot_total, "archive", st.archive, "last_error", st.last_error,
	    "steps", "longest_ms", (double)st.longest_step_us / 1000.0, "longest", st.longest_step,
	    "over_10ms", (json_int_t)st.slow_steps);
}

/* A standby that does not yet hold every acknowledged write is syncing. */
static const char *
node_state(const struct agent *a)
{
	if (a->el.shutting_down)
		return "stopped";
	if (a->el.role == ROLE_STANDBY && a->repl != NULL && !replicate_in_sync(a->repl))
		return "syncing";
	return election_role_name(a->el.role);
}

static json_t *
status_json(struct agent *a)
{
	const struct cluster_node *self = a->cluster != NULL ? cluster_self(a->cluster) : NULL;
	const struct cluster_node *peer = a->cluster != NULL ? cluster_peer(a->cluster) : NULL;
	bool peer_primary, peer_active;
	const char *peer_state, *holder = NULL;
	json_t *warnings = json_array(), *peers = json_array(), *root;
	char w[1024], pv[16] = "";

	peer_active =
	    a->el.peer == PEER_MEMBER && a->el.peer_msg_valid && a->el.peer_msg.role == ROLE_ACTIVE;
	if (a->el.role == ROLE_ACTIVE && vip_acquired(a->vip))
		holder = self != NULL ? self->name : NULL;
	else if (peer_active && peer != NULL)
		holder = peer->name;

	if (peer != NULL) {
		peer_primary = a->cfg.primary != NULL && strcmp(a->cfg.primary, peer->name) == 0;
		if (a->el.peer == PEER_MEMBER && a->el.peer_msg_valid)
			peer_state =
			    a->el.peer_msg.leaving ? "stopped"
			    : a->el.peer_msg.role == ROLE_STANDBY && !a->el.peer_msg.in_sync
			        ? "syncing"
			        : election_role_name(a->el.peer_msg.role);
		else if (a->el.peer == PEER_MEMBER || a->el.peer == PEER_UNKNOWN)
			peer_state = "unknown";
		else
			peer_state = "stopped";
		if (a->peer_version != 0 && a->el.peer == PEER_MEMBER)
			(void)snprintf(pv, sizeof(pv), "%u.%u.%u", a->peer_version >> 16,
			    (a->peer_version >> 8) & 0xff, a->peer_version & 0xff);
		json_array_append_new(peers,
		    json_pack("{s:s, s:i, s:s, s:s, s:s?, s:b, s:s, s:b, s:I}", "name", peer->name,
		        "id", (int)peer->id, "identity", peer_primary ? "primary" : "redundant",
		        "state", peer_state, "version", pv[0] != '\0' ? pv : NULL, "member",
		        a->el.peer_node_up, "process", election_peer_name(a->el.peer), "healthy",
		        a->el.peer_msg_valid && a->el.peer_msg.healthy, "epoch",
		        (json_int_t)(a->el.peer_msg_valid ? a->el.peer_msg.epoch : 0)));
	}

	if (a->cfg.fence_agent == NULL)
		json_array_append_new(warnings,
		    json_string("fencing is disabled (fence agent = none): a split brain can make "
		                "both nodes active"));
	if (a->fence_error[0] != '\0') {
		(void)snprintf(w, sizeof(w),
		    "fencing %s failed (%u times): %s; it is not promoted over until fencing "
		    "succeeds; check the fence agent and [fence:%s]",
		    a->fence_target, a->fence_failures, a->fence_error, a->fence_target);
		json_array_append_new(warnings, json_string(w));
	}
	if (a->cluster == NULL)
		json_array_append_new(warnings, json_string("not connected to corosync"));
	else if (!a->el.quorate)
		json_array_append_new(warnings, json_string("this node is not quorate"));
	if (!a->el.healthy)
		json_array_append_new(warnings,
		    json_string("the VIP interface has no carrier: this node cannot serve"));

	if (a->repl_alone)
		json_array_append_new(warnings,
		    json_string("writes are acknowledged by this node alone: the standby is "
		                "fenced, gone or resyncing"));

	root = json_pack("{s:b, s:{s:s?, s:i, s:s, s:s, s:s, s:b, s:I}, s:o, s:b, s:s, "
	                 "s:{s:s, s:s, s:s?}, s:o, s:{s:b, s:s?, s:s, s:s?}, "
	                 "s:o}",
	    "ok", 1, "node", "name", self != NULL ? self->name : NULL, "id", (int)a->el.my_id,
	    "identity", a->el.my_primary ? "primary" : "redundant", "state", node_state(a),
	    "version", TANDEM_VERSION, "healthy", a->el.healthy, "epoch", (json_int_t)a->el.epoch,
	    "peers", peers, "quorate", a->el.quorate, "redundancy", redundancy(a), "vip", "address",
	    vip_address(a->vip), "interface", a->cfg.vip_interface, "holder", holder, "replication",
	    repl_json(a), "fencing", "enabled", a->cfg.fence_agent != NULL, "agent",
	    a->cfg.fence_agent, "state", fence_phase_name(a->el.fence), "last_error",
	    a->fence_error[0] != '\0' ? a->fence_error : NULL, "warnings", warnings);
	return root;
}

static void
cmd_failover(struct agent *a, struct control_request *req, json_t *request)
{
	json_t *to = json_object_get(request, "to");
	json_t *force = json_object_get(request, "force");
	const struct cluster_node *n = NULL;
	struct election_input in = {.type = IN_SWITCHOVER};

	if (a->switchover_req != NULL) {
		control_reply_error(req, CTL_EXIT_FAILED, "a switchover is already in progress");
		return;
	}
	if (a->cluster == NULL) {
		control_reply_error(req, CTL_EXIT_FAILED,
		    "not connected to corosync; is corosync running on this node?");
		return;
	}
	if (to != NULL && !json_is_null(to)) {
		if (!json_is_string(to)) {
			control_reply_error(req, CTL_EXIT_USAGE, "'to' must be a node name");
			return;
		}
		n = cluster_node_by_name(a->cluster, json_string_value(to));
		if (n == NULL) {
			control_reply_error(req, CTL_EXIT_USAGE,
			    "no node named '%s' in the pair (nodes: %s, %s)", json_string_value(to),
			    cluster_self(a->cluster)->name, cluster_peer(a->cluster)->name);
			return;
		}
	}
	in.u.switchover.to = n != NULL ? n->id : 0;
	in.u.switchover.force = json_is_true(force);
	a->switchover_req = req;
	a->switchover_to = in.u.switchover.to;
	a->switchover_force = in.u.switchover.force;
	timer_start(a, &a->switchover_timer, SWITCHOVER_TIMEOUT_MS, on_switchover_timeout);
	agent_feed(a, &in);
}

static void
cmd_log_level(struct agent *a, struct control_request *req, json_t *request)
{
	json_t *level = json_object_get(request, "level");
	int prio;

	if (level != NULL && !json_is_null(level)) {
		if (!json_is_string(level) ||
		    config_parse_log_level(json_string_value(level), &prio) < 0) {
			control_reply_error(req, CTL_EXIT_USAGE,
			    "unknown log level '%s' (use err, warning, notice, info, debug or "
			    "trace)",
			    json_is_string(level) ? json_string_value(level) : "?");
			return;
		}
		a->cfg.log_level = prio;
		(void)qb_log_filter_ctl(
		    QB_LOG_STDERR, QB_LOG_FILTER_CLEAR_ALL, QB_LOG_FILTER_FILE, "*", LOG_TRACE);
		(void)qb_log_filter_ctl(
		    QB_LOG_SYSLOG, QB_LOG_FILTER_CLEAR_ALL, QB_LOG_FILTER_FILE, "*", LOG_TRACE);
		(void)qb_log_filter_ctl(
		    QB_LOG_STDERR, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", (uint8_t)prio);
		(void)qb_log_filter_ctl(
		    QB_LOG_SYSLOG, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", (uint8_t)prio);
		qb_log(LOG_NOTICE, "log level set to %s", config_log_level_name(prio));
	}
	control_reply(req,
	    json_pack("{s:b, s:s}", "ok", 1, "level", config_log_level_name(a->cfg.log_level)));
}

/* Replies {"ok": false, "error", "exit", "code"} for an error rc of replicate. */
static void
db_reply_error(struct control_request *req, int rc, const char *msg)
{
	int exit_code = rc == -EROFS ? CTL_EXIT_NOT_ACTIVE : CTL_EXIT_FAILED;

	control_reply(req, json_pack("{s:b, s:s, s:i, s:s}", "ok", 0, "error", msg, "exit",
	                       exit_code, "code", dbcmd_error_code(rc)));
}

/* A write on the standby: the reply names the active, for the client to go there. */
static void
db_reply_not_active(struct agent *a, struct control_request *req)
{
	const char *active = a->el.role == ROLE_STANDBY && peer_is_active(a) ? peer_name(a) : "";
	char msg[256];

	if (active[0] != '\0')
		(void)snprintf(msg, sizeof(msg),
		    "%s is the standby: writes go to the active node, %s", self_name(a), active);
	else
		(void)snprintf(msg, sizeof(msg),
		    "%s is not active and no node is active now: writes wait for an active node",
		    self_name(a));
	control_reply(req, json_pack("{s:b, s:s, s:i, s:s, s:s}", "ok", 0, "error", msg, "exit",
	                       CTL_EXIT_NOT_ACTIVE, "code", "not-active", "active", active));
}

static void
on_exec_done(int rc, const struct replicate_result *res, void *data)
{
	struct control_request *req = data;

	if (rc < 0) {
		db_reply_error(
		    req, rc, res != NULL && res->error != NULL ? res->error : strerror(-rc));
		return;
	}
	control_reply(req, json_pack("{s:b, s:I, s:I, s:I, s:I}", "ok", 1, "changes",
	                       (json_int_t)res->changes, "last_rowid", (json_int_t)res->last_rowid,
	                       "epoch", (json_int_t)res->epoch, "seq", (json_int_t)res->seq));
}

static void
cmd_db_exec(struct agent *a, struct control_request *req, json_t *request)
{
	struct store_stmt *stmts = NULL;
	size_t n = 0;
	char err[512];
	int rc;

	rc = dbcmd_statements(request, &stmts, &n, err, sizeof(err));
	if (rc < 0) {
		db_reply_error(req, rc, rc == -ENOMEM ? strerror(ENOMEM) : err);
		return;
	}
	rc = a->repl != NULL && a->el.role == ROLE_ACTIVE
	         ? replicate_exec(a->repl, stmts, n, on_exec_done, req)
	         : -EROFS;
	dbcmd_statements_free(stmts);
	if (rc == -EROFS)
		db_reply_not_active(a, req);
	else if (rc < 0)
		db_reply_error(req, rc, strerror(-rc));
}

static void
cmd_db_query(struct agent *a, struct control_request *req, json_t *request)
{
	json_t *sql = json_object_get(request, "sql"), *reply;
	struct store_value *params = NULL;
	struct store_rows rows = {0};
	size_t n = 0;
	char err[512];
	int rc;

	if (!json_is_string(sql) || json_string_length(sql) == 0) {
		db_reply_error(req, -EINVAL, "db-query needs a non-empty string \"sql\"");
		return;
	}
	rc = dbcmd_params(json_object_get(request, "params"), &params, &n, err, sizeof(err));
	if (rc < 0) {
		db_reply_error(req, rc, rc == -ENOMEM ? strerror(ENOMEM) : err);
		return;
	}
	if (a->repl == NULL) {
		dbcmd_params_free(params);
		control_reply_error(req, CTL_EXIT_FAILED, "the database is not open yet");
		return;
	}
	rc = replicate_query(a->repl, json_string_value(sql), params, n, &rows);
	dbcmd_params_free(params);
	if (rc < 0) {
		db_reply_error(req, rc, replicate_errmsg(a->repl));
		return;
	}
	reply = dbcmd_rows_json(&rows);
	store_rows_free(&rows);
	if (reply == NULL) {
		db_reply_error(req, errno == ENOMEM ? -ENOMEM : -EINVAL,
		    errno == ERANGE   ? "a float is infinite or NaN, which JSON cannot hold"
		    : errno == EILSEQ ? "a text is not valid UTF-8; CAST the column to BLOB"
		                      : strerror(errno));
		return;
	}
	(void)json_object_set_new(reply, "ok", json_true());
	control_reply(req, reply);
}

static void
cmd_db_hash(struct agent *a, struct control_request *req)
{
	uint64_t hash, epoch, seq;
	char hex[17];
	int rc;

	if (a->repl == NULL) {
		control_reply_error(req, CTL_EXIT_FAILED, "the database is not open yet");
		return;
	}
	rc = replicate_content_hash(a->repl, &hash, &epoch, &seq);
	if (rc < 0) {
		db_reply_error(req, rc, strerror(-rc));
		return;
	}
	(void)snprintf(hex, sizeof(hex), "%016" PRIx64, hash);
	control_reply(req, json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "hash", hex, "epoch",
	                       (json_int_t)epoch, "seq", (json_int_t)seq));
}

static void
on_request(struct control_request *req, json_t *request, void *data)
{
	struct agent *a = data;
	const char *cmd = json_string_value(json_object_get(request, "command"));
	json_t *status;

	qb_log(LOG_DEBUG, "tandemctl request: %s", cmd);
	if (strcmp(cmd, "status") == 0) {
		status = status_json(a);
		if (status == NULL)
			control_reply_error(
			    req, CTL_EXIT_FAILED, "tandemd could not build its status");
		else
			control_reply(req, status);
	} else if (strcmp(cmd, "failover") == 0)
		cmd_failover(a, req, request);
	else if (strcmp(cmd, "log-level") == 0)
		cmd_log_level(a, req, request);
	else if (strcmp(cmd, "db-exec") == 0)
		cmd_db_exec(a, req, request);
	else if (strcmp(cmd, "db-query") == 0)
		cmd_db_query(a, req, request);
	else if (strcmp(cmd, "db-hash") == 0)
		cmd_db_hash(a, req);
	else
		control_reply_error(req, CTL_EXIT_USAGE, "unknown command '%s'", cmd);
}

/* --- start and stop ------------------------------------------------------------ */

static int
on_signal(int sig, void *data)
{
	struct agent *a = data;
	struct election_input in = {.type = IN_SHUTDOWN};

	qb_log(LOG_NOTICE, "signal %d: %s", sig,
	    a->el.role == ROLE_ACTIVE ? "handing over and leaving" : "leaving");
	if (a->el.my_id == 0) {
		/* Never joined: nothing to hand over. */
		qb_loop_stop(a->loop);
		return 0;
	}
	agent_feed(a, &in);
	return 0;
}

static int
on_sighup(int sig, void *data)
{
	qb_log(LOG_NOTICE, "SIGHUP ignored: tandemd reads its configuration only at start");
	return 0;
}

static void
log_setup(bool foreground, int level)
{
	qb_log_init("tandemd", LOG_DAEMON, (uint8_t)level);
	(void)qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, foreground ? QB_FALSE : QB_TRUE);
	(void)qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, foreground ? QB_TRUE : QB_FALSE);
	(void)qb_log_filter_ctl(
	    QB_LOG_SYSLOG, QB_LOG_FILTER_CLEAR_ALL, QB_LOG_FILTER_FILE, "*", LOG_TRACE);
	(void)qb_log_filter_ctl(
	    QB_LOG_SYSLOG, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", (uint8_t)level);
	(void)qb_log_filter_ctl(
	    QB_LOG_STDERR, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", (uint8_t)level);
	qb_log_format_set(QB_LOG_STDERR, "%t %-7p %f:%l %b");
	qb_log_format_set(QB_LOG_SYSLOG, "%b");
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tandemd [-f] [-t] [-c FILE]\n"
	           "  -c FILE  configuration (default " CONFIG_DEFAULT_PATH ")\n"
	           "  -f       stay in the foreground and log to stderr\n"
	           "  -t       check the configuration, print it in full and exit\n"
	           "  -V       print the version and exit\n");
}

/* A TLS file of [replication] must be readable before anything starts. */
static int
check_readable(const char *key, const char *path)
{
	if (access(path, R_OK) == 0)
		return 0;
	qb_log(LOG_ERR, "[replication] %s: cannot read %s: %s (make the files with tandem-certs)",
	    key, path, strerror(errno));
	return -1;
}

/* Sets up everything that can fail before the loop runs; prints one line on failure. */
static int
agent_start(struct agent *a)
{
	struct vip_config vc = {
	    .address = a->cfg.vip_address,
	    .interface = a->cfg.vip_interface,
	    .announce_count = a->cfg.announce_count,
	    .announce_interval_ms = a->cfg.announce_interval_ms,
	    .lifetime_s = a->cfg.vip_lifetime_s,
	};
	char path[4096];
	uint64_t epoch = 0;
	int rc;

	a->vip = vip_new(a->loop, &vc, on_vip, a);
	if (a->vip == NULL) {
		qb_log(LOG_ERR, "[vip] %s on %s: %s", a->cfg.vip_address, a->cfg.vip_interface,
		    errno == ENODEV ? "no such interface" : strerror(errno));
		return -1;
	}
	/* A VIP left by a crashed tandemd must go before anything else happens. */
	if (vip_present(a->vip))
		qb_log(LOG_NOTICE, "removing a stale VIP %s from %s", vip_address(a->vip),
		    a->cfg.vip_interface);
	rc = vip_release(a->vip);
	if (rc < 0) {
		qb_log(LOG_ERR, "cannot remove a stale VIP %s: %s", vip_address(a->vip),
		    strerror(-rc));
		return -1;
	}

	if (a->cfg.fence_agent != NULL) {
		if (fence_agent_path(a->cfg.fence_agent, path, sizeof(path)) < 0) {
			qb_log(LOG_ERR,
			    "[fence] agent: '%s' not found (give a path or a name in /usr/sbin; "
			    "Debian's agents are in the fence-agents package)",
			    a->cfg.fence_agent);
			return -1;
		}
		a->fence = fence_new(a->loop, on_fence_done, a);
		if (a->fence == NULL) {
			qb_log(LOG_ERR, "cannot set up fencing: %s", strerror(errno));
			return -1;
		}
	} else {
		qb_log(LOG_WARNING, "fencing is DISABLED ([fence] agent = none): a split brain "
		                    "can make both nodes active");
	}

	if (check_readable("ca", a->cfg.repl_ca) < 0 ||
	    check_readable("cert", a->cfg.repl_cert) < 0 ||
	    check_readable("key", a->cfg.repl_key) < 0)
		return -1;

	if (mkdir(a->cfg.state_dir, 0700) < 0 && errno != EEXIST) {
		qb_log(LOG_ERR, "[tandem] state_dir: cannot create %s: %s", a->cfg.state_dir,
		    strerror(errno));
		return -1;
	}
	rc = epoch_load(a, &epoch);
	if (rc < 0) {
		qb_log(LOG_ERR, "cannot read %s/epoch: %s (fix or remove it)", a->cfg.state_dir,
		    strerror(-rc));
		return -1;
	}
	a->el.epoch = epoch;

	a->control = control_new(a->loop, CTL_SERVICE_NAME, on_request, a);
	if (a->control == NULL) {
		qb_log(LOG_ERR, "cannot serve tandemctl: %s%s", strerror(errno),
		    errno == EADDRINUSE ? " (is another tandemd running?)" : "");
		return -1;
	}
	(void)qb_loop_signal_add(a->loop, QB_LOOP_HIGH, SIGTERM, a, on_signal, NULL);
	(void)qb_loop_signal_add(a->loop, QB_LOOP_HIGH, SIGINT, a, on_signal, NULL);
	(void)qb_loop_signal_add(a->loop, QB_LOOP_HIGH, SIGHUP, a, on_sighup, NULL);
	(void)signal(SIGPIPE, SIG_IGN);

	cluster_connect(a);
	a->last_tick = now_ms();
	a->peer_last_heard = a->last_tick;
	timer_start(a, &a->tick_timer, a->cfg.heartbeat_interval_ms, on_tick);
	if (!vip_carrier(a->vip)) {
		struct election_input in = {.type = IN_HEALTH, .u.healthy = false};

		qb_log(LOG_WARNING, "%s has no carrier: this node cannot serve the VIP",
		    a->cfg.vip_interface);
		agent_feed(a, &in);
	}
	return 0;
}

static void
agent_stop(struct agent *a)
{
	if (a->switchover_req != NULL)
		switchover_finish(a, false, "tandemd is shutting down");
	if (a->vip != NULL && vip_acquired(a->vip))
		(void)vip_release(a->vip);
	replicate_free(a->repl);
	cluster_free(a->cluster);
	control_free(a->control);
	fence_free(a->fence);
	vip_free(a->vip);
	config_free(&a->cfg);
	qb_loop_destroy(a->loop);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"foreground", no_argument, NULL, 'f'},
	    {"test", no_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = CONFIG_DEFAULT_PATH;
	bool foreground = false, test = false;
	struct agent a = {0};
	char err[512];
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:ftVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			test = true;
			break;
		case 'V':
			printf("tandemd %s\n", TANDEM_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tandemd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config_load(path, &a.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "tandemd: %s\n", err);
		return 1;
	}
	if (test) {
		config_print(&a.cfg, stdout);
		config_free(&a.cfg);
		return 0;
	}
	if (!foreground && daemon(0, 0) < 0) {
		fprintf(stderr, "tandemd: cannot daemonize: %s\n", strerror(errno));
		config_free(&a.cfg);
		return 1;
	}
	log_setup(foreground, a.cfg.log_level);
	a.loop = qb_loop_create();
	if (a.loop == NULL) {
		qb_log(LOG_ERR, "cannot create the main loop: %s", strerror(errno));
		config_free(&a.cfg);
		return 1;
	}
	rc = agent_start(&a);
	if (rc == 0) {
		qb_log(LOG_NOTICE, "tandemd %s started", TANDEM_VERSION);
		qb_loop_run(a.loop);
		qb_log(LOG_NOTICE, "tandemd stopped (%s, epoch %" PRIu64 ")",
		    election_role_name(a.el.role), a.el.epoch);
	}
	agent_stop(&a);
	qb_log_fini();
	return rc == 0 ? 0 : 1;
}

/*
 * cluster.c: owns this tandemd's three corosync connections (cmap for the
 * nodelist, votequorum for the quorate flag, cpg for the group "tandem")
 * and turns what they say into the four cluster events.  It is the eyes of
 * rule 1 (one active): the election may promote only on what this file
 * reports, so it reports exactly what corosync knows, and reports the
 * loss of corosync itself as soon as a connection breaks.
 *
 * Membership comes from two CPG callbacks.  The group confchg says which
 * tandemd processes are in the group and, for each one that left, why
 * (CPG_REASON_LEAVE after cpg_leave, PROCDOWN when its IPC connection
 * closed while its node stayed up, NODEDOWN when its node left totem).
 * The totem confchg (CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF) lists the
 * nodes in corosync's membership; that is where peer_node_up comes from,
 * so "corosync up, tandemd not in the group" is told apart from "node
 * gone".  corosync does not promise an order between the two callbacks
 * after a membership change, so a totem view without the peer also ends
 * its group membership (NODEDOWN), and the later group confchg that says
 * the same thing changes nothing.  The first event waits for our own
 * first group view and for a totem view (or a group view with the peer
 * in it), so that it carries a correct peer_node_up.
 *
 * Sending: cpg_mcast_joined answers CS_ERR_TRY_AGAIN while corosync syncs
 * after a membership change, which is exactly during a failover.  Such a
 * message goes to a short queue, and every later message goes behind it,
 * so the peer sees them in the order they were sent; a 10 ms loop timer
 * retries.  The same timer retries a cpg_join or cpg_leave that was told
 * to try again, so nothing here sleeps on the loop (only cluster_free,
 * on the way out, waits a bounded time for its cpg_leave).
 *
 * Reentrancy: on_event may call any verb, cluster_free included.  A
 * cluster_free from inside a callback only marks the cluster; the poll or
 * timer callback that is running frees it when corosync's dispatch has
 * returned, and reports nothing more.
 *
 * cs_error_t becomes -errno in cs_to_errno() and nowhere else.
 */
#define _GNU_SOURCE
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <corosync/cmap.h>
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/votequorum.h>
#include <qb/qblog.h>
#include <qb/qbloop.h>

#define CLUSTER_GROUP "tandem"
/*
 * Messages are control messages of a few dozen bytes.  Staying far below
 * cpg_max_atomic_msgsize_get() (about 1 MiB) keeps libcpg off its
 * fragment path, which sleeps and retries inside the caller; the bound
 * is CLUSTER_MSG_MAX in cluster.h.
 */

/* Messages held while corosync says "try again", and the retry period. */
#define CLUSTER_QUEUE_MAX 64
#define CLUSTER_RETRY_NS (10ULL * 1000 * 1000)
/* cluster_free waits at most this long for corosync to take its cpg_leave. */
#define CLUSTER_LEAVE_TRIES 100
#define CLUSTER_LEAVE_WAIT_NS (10L * 1000 * 1000)
/* Index of a node in the nodelist: more than two is refused. */
#define CLUSTER_NODES 2

struct queued {
	size_t len;
	/* A snapshot of our state: a newer one replaces it while queued. */
	bool snapshot;
	unsigned char data[];
};

struct cluster {
	qb_loop_t *loop;
	cluster_event_fn on_event;
	void *data;

	cmap_handle_t cmap;
	votequorum_handle_t vq;
	cpg_handle_t cpg;
	bool cmap_open;
	bool vq_open;
	bool cpg_open;
	int cmap_fd;
	int vq_fd;
	int cpg_fd;
	/* The three fds are on the loop (until LOST or free). */
	bool polled;

	struct cluster_node self;
	struct cluster_node peer;
	/* totem.cluster_name ("" when unset). */
	char name[CLUSTER_NAME_MAX];
	pid_t pid;

	/* Pending work for the retry timer: join, queued messages, leave. */
	bool join_pending;
	bool leave_pending;
	struct queued *queue[CLUSTER_QUEUE_MAX];
	unsigned int queue_head;
	unsigned int queue_len;
	qb_loop_timer_handle timer;
	bool timer_armed;

	/* cluster_leave was called: no more sends, no more events. */
	bool leaving;
	/* cpg_join went through (the group may not have answered yet). */
	bool joined;
	/* cpg_leave went through. */
	bool left;
	/* A connection broke; LOST was (or is being) reported. */
	bool lost;
	/* cluster_free was called from inside a callback. */
	bool free_pending;
	/* Depth of our poll/timer callbacks on the stack. */
	unsigned int busy;

	/* Membership as reported (or to be reported once ready). */
	bool view_seen;
	bool totem_seen;
	bool reported;
	bool peer_member;
	bool peer_node_up;
	enum cluster_leave leave;

	bool quorate;
	bool quorum_reported;
};

static const struct cpg_name group_name = {
    .length = sizeof(CLUSTER_GROUP) - 1,
    .value = CLUSTER_GROUP,
};

/*
 * The one place where corosync's error codes become errno values.  The
 * connection errors are ENOTCONN (the IPC broke, or corosync is not
 * there) and EBADF (a handle that corosync no longer knows).
 */
static int
cs_to_errno(cs_error_t rc)
{
	switch (rc) {
	case CS_OK:
		return 0;
	case CS_ERR_LIBRARY:
		return ENOTCONN;
	case CS_ERR_VERSION:
		return EPROTO;
	case CS_ERR_INIT:
		return ENOTCONN;
	case CS_ERR_TIMEOUT:
		return ETIMEDOUT;
	case CS_ERR_TRY_AGAIN:
		return EAGAIN;
	case CS_ERR_INVALID_PARAM:
		return EINVAL;
	case CS_ERR_NO_MEMORY:
		return ENOMEM;
	case CS_ERR_BAD_HANDLE:
		return EBADF;
	case CS_ERR_BUSY:
		return EBUSY;
	case CS_ERR_ACCESS:
		return EACCES;
	case CS_ERR_NOT_EXIST:
		return ENOENT;
	case CS_ERR_NAME_TOO_LONG:
		return ENAMETOOLONG;
	case CS_ERR_EXIST:
		return EEXIST;
	case CS_ERR_NO_SPACE:
		return ENOSPC;
	case CS_ERR_INTERRUPT:
		return EINTR;
	case CS_ERR_NAME_NOT_FOUND:
		return ENOENT;
	case CS_ERR_NO_RESOURCES:
		return ENOBUFS;
	case CS_ERR_NOT_SUPPORTED:
		return ENOTSUP;
	case CS_ERR_BAD_OPERATION:
		return EINVAL;
	case CS_ERR_FAILED_OPERATION:
		return EIO;
	case CS_ERR_MESSAGE_ERROR:
		return EBADMSG;
	case CS_ERR_QUEUE_FULL:
		return EAGAIN;
	case CS_ERR_QUEUE_NOT_AVAILABLE:
		return ENXIO;
	case CS_ERR_BAD_FLAGS:
		return EINVAL;
	case CS_ERR_TOO_BIG:
		return EMSGSIZE;
	case CS_ERR_NO_SECTIONS:
		return ENODATA;
	case CS_ERR_CONTEXT_NOT_FOUND:
		return ENOENT;
	case CS_ERR_TOO_MANY_GROUPS:
		return EMFILE;
	case CS_ERR_SECURITY:
		return EPERM;
	}
	return EIO;
}

/* "Try again later": flow control during corosync's sync, or a full queue. */
static bool
cs_retry(cs_error_t rc)
{
	return rc == CS_ERR_TRY_AGAIN || rc == CS_ERR_QUEUE_FULL;
}

static bool
errno_is_disconnect(int err)
{
	return err == ENOTCONN || err == EBADF;
}

static void
fill_info(const struct cluster *c, struct cluster_info *info)
{
	memset(info, 0, sizeof(*info));
	info->peer_id = c->peer.id;
	info->peer_member = c->peer_member;
	info->peer_node_up = c->peer_node_up;
	info->leave = c->peer_member ? CLUSTER_LEAVE_NONE : c->leave;
	info->quorate = c->quorate;
}

/* Reports nothing once the cluster is leaving, lost or being freed. */
static bool
quiet(const struct cluster *c)
{
	return c->leaving || c->lost || c->free_pending;
}

static void
emit(struct cluster *c, enum cluster_event event, const void *msg, size_t len)
{
	struct cluster_info info;

	fill_info(c, &info);
	info.msg = msg;
	info.msg_len = len;
	c->on_event(event, &info, c->data);
}

static void
emit_membership(struct cluster *c)
{
	qb_log(LOG_DEBUG, "cluster: peer %" PRIu32 " member=%d node_up=%d leave=%d", c->peer.id,
	    c->peer_member, c->peer_node_up, c->peer_member ? CLUSTER_LEAVE_NONE : c->leave);
	emit(c, CLUSTER_EVENT_MEMBERSHIP, NULL, 0);
}

static void
timer_stop(struct cluster *c)
{
	if (c->timer_armed)
		(void)qb_loop_timer_del(c->loop, c->timer);
	c->timer_armed = false;
}

static void
unpoll(struct cluster *c)
{
	if (!c->polled)
		return;
	(void)qb_loop_poll_del(c->loop, c->cpg_fd);
	(void)qb_loop_poll_del(c->loop, c->vq_fd);
	(void)qb_loop_poll_del(c->loop, c->cmap_fd);
	c->polled = false;
}

/* A connection broke: off the loop, and LOST once (unless we were leaving). */
static void
lose(struct cluster *c, const char *what, int err)
{
	bool tell;

	if (c->lost)
		return;
	tell = !quiet(c);
	c->lost = true;
	unpoll(c);
	timer_stop(c);
	qb_log(LOG_DEBUG, "cluster: %s: %s", what, strerror(err));
	if (tell)
		emit(c, CLUSTER_EVENT_LOST, NULL, 0);
}

static void
queue_drop_head(struct cluster *c)
{
	free(c->queue[c->queue_head]);
	c->queue[c->queue_head] = NULL;
	c->queue_head = (c->queue_head + 1) % CLUSTER_QUEUE_MAX;
	c->queue_len--;
}

static void
queue_clear(struct cluster *c)
{
	while (c->queue_len > 0)
		queue_drop_head(c);
}

static cs_error_t
mcast(struct cluster *c, const void *msg, size_t len)
{
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};

	return cpg_mcast_joined(c->cpg, CPG_TYPE_AGREED, &iov, 1);
}

/*
 * Moves the pending work on, in order: the join, the queued messages,
 * the leave.  Returns 0 when all is done, 1 when corosync said "try
 * again" (call again later), or -errno for a join or leave that failed or
 * a broken connection.  A queued message that corosync refuses for good
 * is dropped (it would block every later one).
 */
static int
pump(struct cluster *c)
{
	cs_error_t rc;

	if (c->join_pending) {
		rc = cpg_join(c->cpg, &group_name);
		if (cs_retry(rc))
			return 1;
		if (rc != CS_OK)
			return -cs_to_errno(rc);
		c->join_pending = false;
		c->joined = true;
	}
	while (c->queue_len > 0) {
		struct queued *q = c->queue[c->queue_head];

		rc = mcast(c, q->data, q->len);
		if (cs_retry(rc))
			return 1;
		if (rc != CS_OK && errno_is_disconnect(cs_to_errno(rc)))
			return -cs_to_errno(rc);
		if (rc != CS_OK)
			qb_log(LOG_WARNING,
			    "cluster: queued message of %zu bytes refused: %s, dropping", q->len,
			    cs_strerror(rc));
		queue_drop_head(c);
		if (c->queue_len == 0)
			qb_log(LOG_DEBUG, "cluster: %s", "message queue flushed");
	}
	if (c->leave_pending) {
		rc = cpg_leave(c->cpg, &group_name);
		if (cs_retry(rc))
			return 1;
		c->leave_pending = false;
		if (rc != CS_OK)
			return -cs_to_errno(rc);
		c->left = true;
	}
	return 0;
}

static void retry_fired(void *data);

static void
timer_arm(struct cluster *c)
{
	if (c->timer_armed || c->lost)
		return;
	if (qb_loop_timer_add(c->loop, QB_LOOP_MED, CLUSTER_RETRY_NS, c, retry_fired, &c->timer) ==
	    0)
		c->timer_armed = true;
	else
		qb_log(LOG_WARNING, "cluster: %s", "cannot arm the retry timer, ignoring");
}

static void destroy(struct cluster *c);

/*
 * enter and exit_alive bracket our poll and timer callbacks.  exit_alive
 * frees c, and says false, when cluster_free was called inside.
 */
static void
enter(struct cluster *c)
{
	c->busy++;
}

static bool
exit_alive(struct cluster *c)
{
	if (--c->busy == 0 && c->free_pending) {
		destroy(c);
		return false;
	}
	return true;
}

static void
retry_fired(void *data)
{
	struct cluster *c = data;
	int r;

	c->timer_armed = false;
	if (c->lost || c->free_pending)
		return;
	enter(c);
	r = pump(c);
	if (r == 1)
		timer_arm(c);
	else if (r < 0 && (errno_is_disconnect(-r) || c->join_pending))
		lose(c, c->join_pending ? "cpg_join" : "cpg", -r);
	else if (r < 0)
		qb_log(LOG_WARNING, "cluster: cpg_leave: %s, ignoring", strerror(-r));
	(void)exit_alive(c);
}

/*
 * Stores the new membership and reports it when it changed, or for the
 * first time once we have our own first view and know whether the peer's
 * node is up.
 */
static void
apply(struct cluster *c, bool member, bool node_up, enum cluster_leave leave)
{
	bool changed = member != c->peer_member || node_up != c->peer_node_up;

	c->peer_member = member;
	c->peer_node_up = node_up;
	c->leave = member ? CLUSTER_LEAVE_NONE : leave;
	if (quiet(c) || !c->view_seen)
		return;
	if (!c->reported) {
		if (!c->totem_seen && !c->peer_member)
			return;
		c->reported = true;
		emit_membership(c);
	} else if (changed) {
		emit_membership(c);
	}
}

static enum cluster_leave
leave_from_reason(uint32_t reason)
{
	switch (reason) {
	case CPG_REASON_LEAVE:
		return CLUSTER_LEAVE_CLEAN;
	case CPG_REASON_PROCDOWN:
		return CLUSTER_LEAVE_PROCDOWN;
	case CPG_REASON_NODEDOWN:
		return CLUSTER_LEAVE_NODEDOWN;
	default:
		/* Not a reason to leave; treat the unknown as the worst. */
		return CLUSTER_LEAVE_NODEDOWN;
	}
}

static struct cluster *
context_of(cpg_handle_t handle)
{
	void *ctx = NULL;

	if (cpg_context_get(handle, &ctx) != CS_OK)
		return NULL;
	return ctx;
}

static void
on_cpg_deliver(cpg_handle_t handle, const struct cpg_name *group, uint32_t nodeid, uint32_t pid,
    void *msg, size_t len)
{
	struct cluster *c = context_of(handle);

	if (c == NULL || quiet(c))
		return;
	/* Our own messages come back in agreed order; only the peer's count. */
	if (nodeid != c->peer.id)
		return;
	emit(c, CLUSTER_EVENT_MESSAGE, msg, len);
}

static void
on_cpg_confchg(cpg_handle_t handle, const struct cpg_name *group, const struct cpg_address *members,
    size_t n_members, const struct cpg_address *left, size_t n_left,
    const struct cpg_address *joined, size_t n_joined)
{
	struct cluster *c = context_of(handle);
	bool self_in = false, peer_in = false, node_up;
	enum cluster_leave leave;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n_members; i++) {
		if (members[i].nodeid == c->self.id && members[i].pid == (uint32_t)c->pid)
			self_in = true;
		else if (members[i].nodeid == c->peer.id)
			peer_in = true;
	}
	if (!c->view_seen) {
		/* Views before our join completed are not ours. */
		if (!self_in)
			return;
		c->view_seen = true;
	}
	leave = c->leave;
	node_up = c->peer_node_up;
	for (i = 0; i < n_left; i++) {
		if (left[i].nodeid != c->peer.id)
			continue;
		leave = leave_from_reason(left[i].reason);
		if (left[i].reason == CPG_REASON_NODEDOWN)
			node_up = false;
	}
	/* A process in the group proves its node is in the membership. */
	if (peer_in)
		node_up = true;
	apply(c, peer_in, node_up, leave);
}

static void
on_totem_confchg(
    cpg_handle_t handle, struct cpg_ring_id ring_id, uint32_t n_members, const uint32_t *members)
{
	struct cluster *c = context_of(handle);
	bool up = false, member;
	enum cluster_leave leave;
	uint32_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n_members; i++)
		if (members[i] == c->peer.id)
			up = true;
	qb_log(LOG_DEBUG, "cluster: totem ring %" PRIu32 ".%" PRIu64 ", %" PRIu32 " nodes, peer %s",
	    ring_id.nodeid, ring_id.seq, n_members, up ? "up" : "down");
	c->totem_seen = true;
	member = c->peer_member;
	leave = c->leave;
	if (!up && member) {
		/* Its process cannot be in the group without its node. */
		member = false;
		leave = CLUSTER_LEAVE_NODEDOWN;
	}
	apply(c, member, up, leave);
}

static void
on_quorum(votequorum_handle_t handle, uint64_t context, uint32_t quorate, uint32_t n_nodes,
    votequorum_node_t nodes[])
{
	struct cluster *c = (struct cluster *)(uintptr_t)context;
	bool q = quorate != 0;
	bool changed = q != c->quorate;

	c->quorate = q;
	if (quiet(c))
		return;
	if (!c->quorum_reported || changed) {
		c->quorum_reported = true;
		qb_log(LOG_DEBUG, "cluster: quorate=%d", q);
		emit(c, CLUSTER_EVENT_QUORUM, NULL, 0);
	}
}

static cs_error_t
dispatch_cpg(struct cluster *c)
{
	return cpg_dispatch(c->cpg, CS_DISPATCH_ALL);
}

static cs_error_t
dispatch_vq(struct cluster *c)
{
	return votequorum_dispatch(c->vq, CS_DISPATCH_ALL);
}

/* Nothing is tracked on cmap; dispatching it only notices a broken connection. */
static cs_error_t
dispatch_cmap(struct cluster *c)
{
	return cmap_dispatch(c->cmap, CS_DISPATCH_ALL);
}

/* Runs one connection's callbacks; a hangup or a failed dispatch loses corosync. */
static int32_t
ready(
    struct cluster *c, int32_t revents, const char *what, cs_error_t (*dispatch)(struct cluster *))
{
	cs_error_t rc;

	if (c->lost)
		return 0;
	enter(c);
	if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
		lose(c, what, ENOTCONN);
	} else {
		rc = dispatch(c);
		if (rc != CS_OK && rc != CS_ERR_TRY_AGAIN)
			lose(c, what, cs_to_errno(rc));
	}
	(void)exit_alive(c);
	return 0;
}

static int32_t
cpg_ready(int32_t fd, int32_t revents, void *data)
{
	return ready(data, revents, "cpg connection", dispatch_cpg);
}

static int32_t
vq_ready(int32_t fd, int32_t revents, void *data)
{
	return ready(data, revents, "votequorum connection", dispatch_vq);
}

static int32_t
cmap_ready(int32_t fd, int32_t revents, void *data)
{
	return ready(data, revents, "cmap connection", dispatch_cmap);
}

/* Copies a cmap string into dst.  0, -ENOENT when absent, -EINVAL when too long. */
static int
cmap_string(struct cluster *c, const char *key, char *dst, size_t size)
{
	char *s = NULL;
	cs_error_t rc;
	int ret = 0;

	rc = cmap_get_string(c->cmap, key, &s);
	if (rc == CS_ERR_NOT_EXIST)
		return -ENOENT;
	if (rc != CS_OK)
		return -cs_to_errno(rc);
	if (strlen(s) >= size)
		ret = -EINVAL;
	else
		memcpy(dst, s, strlen(s) + 1);
	free(s);
	return ret;
}

/* Reads node number idx of the nodelist into *ret. */
static int
read_node(struct cluster *c, unsigned int idx, struct cluster_node *ret)
{
	struct cluster_node n;
	char key[CMAP_KEYNAME_MAXLEN + 1];
	cs_error_t rc;
	int r;

	memset(&n, 0, sizeof(n));
	(void)snprintf(key, sizeof(key), "nodelist.node.%u.nodeid", idx);
	rc = cmap_get_uint32(c->cmap, key, &n.id);
	if (rc == CS_ERR_NOT_EXIST || (rc == CS_OK && n.id == 0))
		return -EINVAL;
	if (rc != CS_OK)
		return -cs_to_errno(rc);
	(void)snprintf(key, sizeof(key), "nodelist.node.%u.ring0_addr", idx);
	r = cmap_string(c, key, n.addr, sizeof(n.addr));
	if (r < 0 && r != -ENOENT)
		return r;
	(void)snprintf(key, sizeof(key), "nodelist.node.%u.name", idx);
	r = cmap_string(c, key, n.name, sizeof(n.name));
	if (r == -ENOENT) {
		/* corosync names a node by its ring0 address when it has no name. */
		if (n.addr[0] == '\0')
			return -EINVAL;
		memcpy(n.name, n.addr, sizeof(n.name));
	} else if (r < 0) {
		return r;
	}
	*ret = n;
	return 0;
}

/* Reads the nodelist: this node and the one peer. */
static int
read_nodelist(struct cluster *c)
{
	unsigned int idx[CLUSTER_NODES];
	unsigned int n_idx = 0, i, k;
	struct cluster_node nodes[CLUSTER_NODES];
	char key[CMAP_KEYNAME_MAXLEN + 1];
	cmap_iter_handle_t iter;
	bool have_self = false, have_peer = false;
	cs_error_t rc;
	int r = 0;

	rc = cmap_iter_init(c->cmap, "nodelist.node.", &iter);
	if (rc != CS_OK)
		return -cs_to_errno(rc);
	while ((rc = cmap_iter_next(c->cmap, iter, key, NULL, NULL)) == CS_OK) {
		unsigned int x;
		bool seen = false;

		if (sscanf(key, "nodelist.node.%u.", &x) != 1)
			continue;
		for (i = 0; i < n_idx; i++)
			if (idx[i] == x)
				seen = true;
		if (seen)
			continue;
		if (n_idx == CLUSTER_NODES) {
			r = -EINVAL;
			break;
		}
		idx[n_idx++] = x;
	}
	(void)cmap_iter_finalize(c->cmap, iter);
	if (r < 0)
		return r;
	if (rc != CS_ERR_NO_SECTIONS)
		return -cs_to_errno(rc);

	for (i = 0; i < n_idx; i++) {
		r = read_node(c, idx[i], &nodes[i]);
		if (r < 0)
			return r;
		for (k = 0; k < i; k++)
			if (nodes[k].id == nodes[i].id || strcmp(nodes[k].name, nodes[i].name) == 0)
				return -EINVAL;
	}
	for (i = 0; i < n_idx; i++) {
		if (nodes[i].id == c->self.id) {
			c->self = nodes[i];
			have_self = true;
		} else {
			c->peer = nodes[i];
			have_peer = true;
		}
	}
	if (!have_self || !have_peer)
		return -ENOENT;
	return 0;
}

/*
 * Opens the three connections.  A corosync that is not running shows as
 * CS_ERR_LIBRARY from the first initialize (libqb's connect failed).
 */
static int
connect_all(struct cluster *c)
{
	cpg_model_v1_data_t model = {
	    .model = CPG_MODEL_V1,
	    .cpg_deliver_fn = on_cpg_deliver,
	    .cpg_confchg_fn = on_cpg_confchg,
	    .cpg_totem_confchg_fn = on_totem_confchg,
	    .flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF,
	};
	votequorum_callbacks_t vq_callbacks = {
	    .votequorum_quorum_notify_fn = on_quorum,
	};
	unsigned int local_id = 0;
	cs_error_t rc;
	int r;

	rc = cmap_initialize(&c->cmap);
	if (rc == CS_ERR_LIBRARY)
		return -ECONNREFUSED;
	if (rc != CS_OK)
		return -cs_to_errno(rc);
	c->cmap_open = true;

	rc = cpg_model_initialize(&c->cpg, CPG_MODEL_V1, (cpg_model_data_t *)&model, c);
	if (rc == CS_ERR_LIBRARY)
		return -ECONNREFUSED;
	if (rc != CS_OK)
		return -cs_to_errno(rc);
	c->cpg_open = true;

	rc = cpg_local_get(c->cpg, &local_id);
	if (rc != CS_OK)
		return -cs_to_errno(rc);
	c->self.id = local_id;
	r = read_nodelist(c);
	if (r < 0)
		return r;
	r = cmap_string(c, "totem.cluster_name", c->name, sizeof(c->name));
	if (r < 0 && r != -ENOENT)
		return r;

	rc = votequorum_initialize(&c->vq, &vq_callbacks);
	if (rc == CS_ERR_LIBRARY)
		return -ECONNREFUSED;
	if (rc != CS_OK)
		return -cs_to_errno(rc);
	c->vq_open = true;
	rc = votequorum_trackstart(
	    c->vq, (uint64_t)(uintptr_t)c, CS_TRACK_CHANGES | CS_TRACK_CURRENT);
	if (rc != CS_OK)
		return -cs_to_errno(rc);

	if ((rc = cmap_fd_get(c->cmap, &c->cmap_fd)) != CS_OK ||
	    (rc = cpg_fd_get(c->cpg, &c->cpg_fd)) != CS_OK ||
	    (rc = votequorum_fd_get(c->vq, &c->vq_fd)) != CS_OK)
		return -cs_to_errno(rc);
	return 0;
}

static int
poll_all(struct cluster *c)
{
	int r;

	r = qb_loop_poll_add(c->loop, QB_LOOP_HIGH, c->cpg_fd, POLLIN, c, cpg_ready);
	if (r < 0)
		return r;
	r = qb_loop_poll_add(c->loop, QB_LOOP_HIGH, c->vq_fd, POLLIN, c, vq_ready);
	if (r < 0) {
		(void)qb_loop_poll_del(c->loop, c->cpg_fd);
		return r;
	}
	r = qb_loop_poll_add(c->loop, QB_LOOP_HIGH, c->cmap_fd, POLLIN, c, cmap_ready);
	if (r < 0) {
		(void)qb_loop_poll_del(c->loop, c->cpg_fd);
		(void)qb_loop_poll_del(c->loop, c->vq_fd);
		return r;
	}
	c->polled = true;
	return 0;
}

struct cluster *
cluster_new(qb_loop_t *loop, cluster_event_fn on_event, void *data)
{
	struct cluster *c;
	cs_error_t rc;
	int r;

	if (loop == NULL || on_event == NULL) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->on_event = on_event;
	c->data = data;
	c->pid = getpid();

	r = connect_all(c);
	if (r < 0)
		goto fail;
	rc = cpg_join(c->cpg, &group_name);
	if (rc == CS_OK) {
		c->joined = true;
	} else if (cs_retry(rc)) {
		c->join_pending = true;
	} else {
		r = -cs_to_errno(rc);
		goto fail;
	}
	r = poll_all(c);
	if (r < 0)
		goto fail;
	if (c->join_pending)
		timer_arm(c);
	qb_log(LOG_DEBUG, "cluster: node %" PRIu32 " (%s), peer %" PRIu32 " (%s)", c->self.id,
	    c->self.name, c->peer.id, c->peer.name);
	return c;

fail:
	destroy(c);
	errno = -r;
	return NULL;
}

/*
 * Makes the peer see a clean leave: sends what is still queued (once),
 * then cpg_leave, retrying "try again" for a bounded time.  Without it,
 * closing the connection would show as PROCDOWN and get this node fenced.
 */
static void
leave_now(struct cluster *c)
{
	const struct timespec wait = {.tv_sec = 0, .tv_nsec = CLUSTER_LEAVE_WAIT_NS};
	int tries, r = 0;

	c->join_pending = false;
	if (!c->joined || c->left || c->lost)
		return;
	c->leave_pending = true;
	for (tries = 0; tries < CLUSTER_LEAVE_TRIES; tries++) {
		r = pump(c);
		if (r != 1)
			break;
		(void)nanosleep(&wait, NULL);
	}
	if (r != 0)
		qb_log(LOG_WARNING, "cluster: cpg_leave on exit: %s, ignoring",
		    r == 1 ? "corosync still busy" : strerror(-r));
}

static void
destroy(struct cluster *c)
{
	unpoll(c);
	timer_stop(c);
	leave_now(c);
	if (c->cpg_open)
		(void)cpg_finalize(c->cpg);
	if (c->vq_open)
		(void)votequorum_finalize(c->vq);
	if (c->cmap_open)
		(void)cmap_finalize(c->cmap);
	queue_clear(c);
	free(c);
}

void
cluster_free(struct cluster *c)
{
	if (c == NULL)
		return;
	if (c->busy > 0) {
		/* Inside one of our callbacks: it frees c on its way out. */
		c->free_pending = true;
		return;
	}
	destroy(c);
}

int
cluster_leave(struct cluster *c)
{
	int r;

	if (c == NULL)
		return -EINVAL;
	if (c->lost)
		return -ENOTCONN;
	if (c->leaving)
		return 0;
	c->leaving = true;
	if (c->join_pending) {
		c->join_pending = false;
		queue_clear(c);
		timer_stop(c);
		return 0;
	}
	/* Messages sent before the leave still go out before it. */
	c->leave_pending = true;
	r = pump(c);
	if (r == 1) {
		timer_arm(c);
		return 0;
	}
	return r;
}

/* Drops every queued snapshot, keeping the order of the rest. */
static void
queue_drop_snapshots(struct cluster *c)
{
	struct queued *keep[CLUSTER_QUEUE_MAX];
	unsigned int n = 0, i;

	for (i = 0; i < c->queue_len; i++) {
		struct queued *q = c->queue[(c->queue_head + i) % CLUSTER_QUEUE_MAX];

		if (q->snapshot)
			free(q);
		else
			keep[n++] = q;
	}
	for (i = 0; i < CLUSTER_QUEUE_MAX; i++)
		c->queue[i] = i < n ? keep[i] : NULL;
	c->queue_head = 0;
	c->queue_len = n;
}

static int
send_or_queue(struct cluster *c, const void *msg, size_t len, bool snapshot)
{
	struct queued *q;
	cs_error_t rc;

	if (c == NULL || msg == NULL || len == 0)
		return -EINVAL;
	if (len > CLUSTER_MSG_MAX)
		return -EMSGSIZE;
	if (c->lost || c->leaving || c->free_pending)
		return -ENOTCONN;
	if (c->queue_len == 0 && !c->join_pending) {
		rc = mcast(c, msg, len);
		if (rc == CS_OK)
			return 0;
		if (!cs_retry(rc))
			return -cs_to_errno(rc);
	}
	/*
	 * A snapshot held back while corosync was busy is stale by now; the
	 * peer must never get it after a newer one (a returning node would
	 * act on a state its peer left long ago).
	 */
	if (snapshot)
		queue_drop_snapshots(c);
	if (c->queue_len == CLUSTER_QUEUE_MAX)
		return -ENOBUFS;
	q = malloc(sizeof(*q) + len);
	if (q == NULL)
		return -ENOMEM;
	q->len = len;
	q->snapshot = snapshot;
	memcpy(q->data, msg, len);
	if (c->queue_len == 0)
		qb_log(LOG_DEBUG, "cluster: %s", "corosync busy, queueing messages");
	c->queue[(c->queue_head + c->queue_len) % CLUSTER_QUEUE_MAX] = q;
	c->queue_len++;
	timer_arm(c);
	return 0;
}

int
cluster_send(struct cluster *c, const void *msg, size_t len)
{
	return send_or_queue(c, msg, len, false);
}

int
cluster_send_snapshot(struct cluster *c, const void *msg, size_t len)
{
	return send_or_queue(c, msg, len, true);
}

const struct cluster_node *
cluster_self(const struct cluster *c)
{
	return c == NULL ? NULL : &c->self;
}

const char *
cluster_name(const struct cluster *c)
{
	return c == NULL ? "" : c->name;
}

const struct cluster_node *
cluster_peer(const struct cluster *c)
{
	return c == NULL ? NULL : &c->peer;
}

const struct cluster_node *
cluster_node_by_name(const struct cluster *c, const char *name)
{
	if (c == NULL || name == NULL)
		return NULL;
	if (strcmp(c->self.name, name) == 0)
		return &c->self;
	if (strcmp(c->peer.name, name) == 0)
		return &c->peer;
	return NULL;
}

bool
cluster_quorate(const struct cluster *c)
{
	return c != NULL && c->quorate;
}

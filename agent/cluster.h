/*
 * cluster: the only code that talks to corosync.
 *
 * It joins the CPG group "tandem", tracks votequorum's quorate flag, reads
 * the nodelist (names, node ids, ring0 addresses) through cmap, and turns
 * all of it into a few events on the agent's qb_loop.  corosync error
 * codes (cs_error_t) are converted to -errno here and nowhere else.
 *
 * The pair has two nodes: cluster reports the one peer it finds in the
 * nodelist.  Membership events say whether the peer's tandemd is in the
 * group and whether its node is in corosync's membership, and why it
 * left (the CPG reason: a clean leave, the process died, the node left).
 */
#ifndef TANDEM_CLUSTER_H
#define TANDEM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qb/qbloop.h>

#define CLUSTER_NAME_MAX 64
#define CLUSTER_ADDR_MAX 64

struct cluster;

struct cluster_node {
	uint32_t id;
	char name[CLUSTER_NAME_MAX];
	/* ring0_addr as in the nodelist (an address or a host name). */
	char addr[CLUSTER_ADDR_MAX];
};

enum cluster_leave {
	CLUSTER_LEAVE_NONE,
	/* cpg_leave: the peer's tandemd left on purpose. */
	CLUSTER_LEAVE_CLEAN,
	/* The peer's tandemd died (its corosync is still a member). */
	CLUSTER_LEAVE_PROCDOWN,
	/* The peer's node left corosync's membership. */
	CLUSTER_LEAVE_NODEDOWN,
};

enum cluster_event {
	/*
	 * The group or the node membership changed, or the first view
	 * arrived after joining.  info->peer_member / peer_node_up / leave.
	 */
	CLUSTER_EVENT_MEMBERSHIP,
	/* votequorum's quorate flag changed (and once after connecting). */
	CLUSTER_EVENT_QUORUM,
	/* A message from the peer (never our own): info->msg, info->msg_len. */
	CLUSTER_EVENT_MESSAGE,
	/* The connection to corosync broke; cluster is useless now (free it). */
	CLUSTER_EVENT_LOST,
};

/*
 * leave keeps the last loss reason while the peer is not a member (also
 * after its node returns); it is CLUSTER_LEAVE_NONE while the peer is a
 * member or was never seen.  In a LOST event the fields are the last known
 * state.
 */
struct cluster_info {
	uint32_t peer_id;
	bool peer_member;
	bool peer_node_up;
	enum cluster_leave leave;
	bool quorate;
	const void *msg;
	size_t msg_len;
};

typedef void (*cluster_event_fn)(
    enum cluster_event event, const struct cluster_info *info, void *data);

/*
 * Connects to corosync (cmap, votequorum, cpg), reads the nodelist, joins
 * the group and puts the three fds on loop.  Returns NULL with errno set:
 * ECONNREFUSED when corosync is not running, ENOENT when this node or a
 * peer is missing from the nodelist, EINVAL when it has more than two
 * nodes, other values from corosync.  Events start from the loop.
 */
struct cluster *cluster_new(qb_loop_t *loop, cluster_event_fn on_event, void *data);

/*
 * Leaves the group (a clean leave the peer sees as such; waits up to about
 * 1 s for it), disconnects, frees.  May be called from inside on_event.
 * NULL: no-op.
 */
void cluster_free(struct cluster *c);

/*
 * Leaves the group, so the peer sees a clean leave, but keeps the handles
 * (cluster_free later).  Messages already queued by cluster_send go out
 * first, so "broadcast, then leave" reaches the peer in that order.  No
 * events are reported after it.  Returns 0 or -errno.
 */
int cluster_leave(struct cluster *c);

#define CLUSTER_MSG_MAX (64 * 1024)

/*
 * Sends msg to the group (agreed order).  When corosync says "try again"
 * the message is queued (64 at most) and retried from the loop, in order;
 * returns 0 then too.  Returns -EINVAL for an empty message, -EMSGSIZE
 * above CLUSTER_MSG_MAX, -ENOBUFS when the queue is full, -ENOTCONN after
 * cluster_leave, or -errno.
 */
int cluster_send(struct cluster *c, const void *msg, size_t len);

/*
 * Like cluster_send, for a message that states our whole current state:
 * if corosync is busy, any such message still queued is dropped first, so
 * the peer never receives an older state after a newer one was made.
 */
int cluster_send_snapshot(struct cluster *c, const void *msg, size_t len);

const struct cluster_node *cluster_self(const struct cluster *c);
const struct cluster_node *cluster_peer(const struct cluster *c);
/* The node with that name, or NULL. */
const struct cluster_node *cluster_node_by_name(const struct cluster *c, const char *name);

bool cluster_quorate(const struct cluster *c);

/* corosync's totem.cluster_name, read at connect ("" when it is not set). */
const char *cluster_name(const struct cluster *c);

#endif

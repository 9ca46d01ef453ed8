/*
 * election: the rules that decide which node of the pair is active.
 *
 * Rule 1 (one active, ever): a standby promotes only when it is quorate
 * (or an admin forces it), healthy, and the previous active is known gone:
 * it handed over, it left cleanly, or our fence agent said it is off.  Two
 * actives that meet after a split settle by epoch, the newer one staying.
 *
 * Rule 2 (no acknowledged write lost): a standby promotes on its own only
 * when it holds every acknowledged write (in sync with the active's
 * stream), and takes a handover only once its data reaches the position
 * the active demoted at.  Between two standbys the newer data wins; a
 * forced promotion is the admin's decision to accept what is missing.
 *
 * Rule 3 (no preemption): a node that finds an active peer stays standby;
 * identity (primary) only breaks a tie between two standbys, that is a cold
 * start, and decides which side of a split fences without a delay when
 * neither was active.
 *
 * Fencing races: when the peer's node vanished (NODEDOWN, maybe a split)
 * or went silent (HUNG: a split looks the same until corosync declares
 * it), the active fences at once and a standby waits the configured delay
 * first, so the node that is serving wins.  A peer whose tandemd died
 * while its corosync lives is fenced at once: no split is possible then,
 * and its VIP may still be up.
 *
 * The file is pure: no I/O, no clock.  Timers are actions whose expiry
 * comes back as inputs.
 */
#include "election.h"

#include <assert.h>
#include <string.h>

struct out {
	struct election_action *a;
	size_t n;
	size_t max;
};

static void
emit(struct out *o, enum election_action_type type, uint32_t node, uint64_t epoch,
    const char *reason)
{
	/* ELECTION_MAX_ACTIONS bounds every path below; a bigger need is a bug. */
	assert(o->n < o->max);
	if (o->n >= o->max)
		return;
	o->a[o->n].type = type;
	o->a[o->n].node = node;
	o->a[o->n].epoch = epoch;
	o->a[o->n].reason = reason;
	o->n++;
}

void
election_init(struct election *e, uint32_t my_id, bool my_primary, bool fencing, uint64_t epoch)
{
	*e = (struct election){
	    .my_id = my_id,
	    .my_primary = my_primary,
	    .fencing = fencing,
	    .role = ROLE_STANDBY,
	    .epoch = epoch,
	    .healthy = true,
	    .peer = PEER_UNKNOWN,
	    .fence = FENCE_IDLE,
	};
}

void
election_msg(const struct election *e, struct election_state_msg *msg)
{
	*msg = (struct election_state_msg){
	    .nodeid = e->my_id,
	    .role = e->role,
	    .epoch = e->epoch,
	    .data_epoch = e->data_epoch,
	    .seq = e->seq,
	    .in_sync = e->role == ROLE_ACTIVE || e->in_sync,
	    .healthy = e->healthy,
	    .primary = e->my_primary,
	    .leaving = e->shutting_down,
	    .handover_to = e->handover_to,
	    .incarnation = e->my_incarnation,
	    .peer_incarnation = e->peer_incarnation,
	    .state_version = e->my_state_version,
	    .peer_state_seen = e->peer_state_seen,
	};
}

/* The fields of our state that a version stands for. */
static void
state_fields(const struct election *e, struct election_state_msg *f)
{
	memset(f, 0, sizeof(*f));
	f->nodeid = e->my_id;
	f->role = e->role;
	f->epoch = e->epoch;
	f->data_epoch = e->data_epoch;
	f->seq = e->seq;
	f->in_sync = e->role == ROLE_ACTIVE || e->in_sync;
	f->healthy = e->healthy;
	f->primary = e->my_primary;
	f->leaving = e->shutting_down;
	f->handover_to = e->handover_to;
}

/*
 * Has the peer's last state seen our current one?  Two standbys that each
 * decide on an older state of the other can both promote (one regains
 * carrier while the other promotes because it had none).  Deciding only
 * on a state that answers ours closes that: the peer saw what we are now
 * and stayed standby, so by the same comparison it lost.
 */
static bool
peer_saw_us(const struct election *e)
{
	struct election_state_msg now;

	if (e->my_incarnation == 0 || e->peer_msg.incarnation == 0)
		return true;
	state_fields(e, &now);
	return memcmp(&now, &e->announced, sizeof(now)) == 0 &&
	       e->peer_msg.peer_state_seen == e->my_state_version;
}

void
election_set_incarnation(struct election *e, uint32_t incarnation)
{
	e->my_incarnation = incarnation;
	state_fields(e, &e->announced);
	e->my_state_version = 1;
}

static bool
peer_is_ready_standby(const struct election *e)
{
	return e->peer == PEER_MEMBER && e->peer_msg_valid && e->peer_msg.role == ROLE_STANDBY &&
	       e->peer_msg.healthy && !e->peer_msg.leaving && e->peer_msg.in_sync;
}

bool
election_hung_peer_heard(const struct election *e, uint32_t nodeid)
{
	return e->peer == PEER_FENCED && e->peer_loss == LOSS_HUNG && !e->fencing &&
	       nodeid == e->peer_id;
}

bool
election_may_ack_alone(const struct election *e, uint64_t min_epoch, uint64_t min_seq)
{
	const struct election_state_msg *p = &e->peer_msg;

	if (e->role != ROLE_ACTIVE)
		return false;
	switch (e->peer) {
	case PEER_FENCED:
	case PEER_LEFT:
		return true;
	case PEER_MEMBER:
		return e->peer_msg_valid && !p->in_sync &&
		       (p->data_epoch > min_epoch ||
		           (p->data_epoch == min_epoch && p->seq >= min_seq));
	case PEER_UNKNOWN:
	case PEER_LOST:
		return false;
	}
	return false;
}

bool
election_redundant(const struct election *e)
{
	if (e->role == ROLE_ACTIVE)
		return peer_is_ready_standby(e);
	return e->peer == PEER_MEMBER && e->peer_msg_valid && e->peer_msg.role == ROLE_ACTIVE &&
	       e->healthy;
}

static void
promote(struct election *e, struct out *o, const char *reason)
{
	uint64_t base = e->epoch;

	if (e->peer_msg_valid && e->peer_msg.epoch > base)
		base = e->peer_msg.epoch;
	e->epoch = base + 1;
	e->role = ROLE_ACTIVE;
	e->handover_to = 0;
	/* A handover asked of us is done: a later message may not replay it. */
	e->peer_msg.handover_to = 0;
	emit(o, ACT_PROMOTE, e->my_id, e->epoch, reason);
	emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
}

static void
demote(struct election *e, struct out *o, uint32_t handover_to, const char *reason)
{
	e->role = ROLE_STANDBY;
	e->handover_to = handover_to;
	/* An admin's --force covers one promotion, and the active it made. */
	e->force = false;
	emit(o, ACT_DEMOTE, e->my_id, e->epoch, reason);
	emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
}

/* Between two standbys: does this node win?  Data first, then health, then identity. */
static bool
wins_over_peer(const struct election *e)
{
	const struct election_state_msg *p = &e->peer_msg;

	/*
	 * Data first: a node with older data must not serve, even when the
	 * newer one cannot (no carrier, leaving); an admin may force it.
	 */
	if (e->data_epoch != p->data_epoch)
		return e->data_epoch > p->data_epoch;
	if (e->seq != p->seq)
		return e->seq > p->seq;
	if (p->leaving || !p->healthy)
		return true;
	if (e->epoch != p->epoch)
		return e->epoch > p->epoch;
	if (e->my_primary != p->primary)
		return e->my_primary;
	return e->my_id < p->nodeid;
}

/* Two actives (after a split healed): does the peer keep the role? */
static bool
peer_keeps_active(const struct election *e)
{
	const struct election_state_msg *p = &e->peer_msg;

	if (e->epoch != p->epoch)
		return p->epoch > e->epoch;
	if (e->my_primary != p->primary)
		return p->primary;
	return p->nodeid < e->my_id;
}

static void
lose_peer(struct election *e, enum loss_reason reason)
{
	e->peer_was_active = !e->peer_msg_valid || e->peer_msg.role == ROLE_ACTIVE;
	e->peer_msg_valid = false;
	if (reason == LOSS_LEAVE) {
		e->peer = PEER_LEFT;
	} else if (!e->fencing) {
		/* fence = none: the admin accepted the risk; the agent says so loudly. */
		e->peer = PEER_FENCED;
	} else {
		e->peer = PEER_LOST;
	}
	e->peer_loss = reason;
	e->peer_lost_unquorate = false;
	if (e->handover_to == e->peer_id)
		e->handover_to = 0;
}

static void
maybe_fence(struct election *e, struct out *o)
{
	bool delay;

	if (e->peer != PEER_LOST || e->fence != FENCE_IDLE || e->shutting_down)
		return;
	/* A node that cannot serve (no carrier) must not kill the one that can. */
	if (!e->healthy)
		return;
	/* wait_for_all: a lone node after boot does not fence, which breaks fence loops. */
	if (!e->quorate && !e->force)
		return;
	/*
	 * A silent peer (hung) may as well be on the far side of a split that
	 * corosync has not declared yet: its heartbeat stops long before the
	 * token times out.  So it gets the standby's delay too.
	 */
	delay = !e->force && (e->peer_loss == LOSS_NODEDOWN || e->peer_loss == LOSS_HUNG) &&
	        e->role == ROLE_STANDBY && (e->peer_was_active || !e->my_primary);
	if (delay) {
		e->fence = FENCE_DELAYING;
		emit(o, ACT_ARM_FENCE_DELAY, e->peer_id, e->epoch,
		    e->peer_loss == LOSS_HUNG ? "peer silent, maybe a split"
		                              : "peer node lost, maybe a split");
	} else {
		e->fence = FENCE_RUNNING;
		emit(o, ACT_FENCE, e->peer_id, e->epoch, "peer lost");
	}
}

/* Applies the standing rules after any input changed the state. */
static void
reconsider(struct election *e, struct out *o)
{
	bool allowed = (e->quorate || e->force) && e->healthy && !e->shutting_down;
	/*
	 * Without every acknowledged write, only an admin's --force promotes.
	 * What the lost peer last said does not help: it may have promoted
	 * since and acknowledged writes alone, because we were not in sync.
	 */
	bool data_ok = e->in_sync || e->force;

	if (e->role == ROLE_ACTIVE) {
		if (!e->quorate && !e->force) {
			demote(e, o, 0, "quorum lost");
			return;
		}
		if (e->peer == PEER_MEMBER && e->peer_msg_valid &&
		    e->peer_msg.role == ROLE_ACTIVE && peer_keeps_active(e)) {
			demote(e, o, 0, "two actives met, the peer's epoch wins");
			/* Adopt the winner's epoch, so our next promotion rises above it. */
			if (e->peer_msg.epoch > e->epoch) {
				e->epoch = e->peer_msg.epoch;
				emit(o, ACT_SAVE_EPOCH, e->peer_msg.nodeid, e->epoch, NULL);
			}
			return;
		}
		/* Without carrier we serve no one: a standby that can takes over. */
		if (!e->healthy && peer_is_ready_standby(e)) {
			demote(e, o, e->peer_id, "VIP interface has no carrier, handing over");
			return;
		}
		maybe_fence(e, o);
		return;
	}

	if (e->shutting_down)
		return;

	switch (e->peer) {
	case PEER_MEMBER:
		if (!e->peer_msg_valid || e->peer_msg.role == ROLE_ACTIVE)
			return;
		if (e->peer_msg.handover_to == e->my_id) {
			/*
			 * A request made before our last change may be one we already
			 * took.  The frames the active committed before it demoted
			 * may still be on their way: wait until we have them.  In sync,
			 * our history is a prefix of its own, so the seq says it (its
			 * data epoch may be newer with no frame in it yet).
			 */
			if (allowed && peer_saw_us(e) && e->in_sync && e->seq >= e->peer_msg.seq)
				promote(e, o, "handover from peer");
			return;
		}
		if (e->handover_to != 0)
			return;
		if (e->force && e->healthy) {
			promote(e, o, "forced by admin");
			return;
		}
		if (allowed && wins_over_peer(e) && peer_saw_us(e))
			promote(e, o, "both standby, this node wins");
		return;
	case PEER_LEFT:
		if (allowed && data_ok)
			promote(e, o, "peer left cleanly");
		return;
	case PEER_FENCED:
		if (allowed && data_ok)
			promote(e, o, e->fencing ? "peer fenced" : "peer lost, fencing disabled");
		return;
	case PEER_LOST:
		maybe_fence(e, o);
		return;
	case PEER_UNKNOWN:
		return;
	}
}

static void
on_membership(struct election *e, const struct election_input *in, struct out *o)
{
	if (in->u.membership.peer_id != 0)
		e->peer_id = in->u.membership.peer_id;
	e->peer_node_up = in->u.membership.peer_node_up;

	if (in->u.membership.peer_member) {
		if (e->peer != PEER_MEMBER) {
			e->peer = PEER_MEMBER;
			e->peer_msg_valid = false;
			e->peer_loss = LOSS_NONE;
			if (e->fence == FENCE_DELAYING || e->fence == FENCE_FAILED)
				e->fence = FENCE_IDLE;
			emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
		}
		return;
	}

	switch (e->peer) {
	case PEER_MEMBER:
		lose_peer(e, in->u.membership.reason);
		return;
	case PEER_UNKNOWN:
		if (!e->peer_node_up) {
			/* Never seen since we started: a lone boot, or the peer is down. */
			lose_peer(e, LOSS_NODEDOWN);
			e->peer_lost_unquorate = !e->quorate;
		} else if (!e->grace_armed) {
			/* Its corosync runs; its tandemd may just be starting. */
			e->grace_armed = true;
			emit(o, ACT_ARM_GRACE, e->peer_id, e->epoch, NULL);
		}
		return;
	case PEER_LEFT:
	case PEER_LOST:
	case PEER_FENCED:
		return;
	}
}

static void
on_peer_state(struct election *e, const struct election_state_msg *m, struct out *o)
{
	if (m->nodeid == e->my_id)
		return;
	/*
	 * Without fencing, nothing stopped a peer we took for hung: it was
	 * slow, or cut off for less than corosync's token timeout, and its
	 * group membership never changed.  Heard again, it counts again, so
	 * that two actives meet and one steps down.
	 */
	if (election_hung_peer_heard(e, m->nodeid)) {
		e->peer = PEER_MEMBER;
		e->peer_loss = LOSS_NONE;
	}
	if (e->peer != PEER_MEMBER)
		return;
	if (m->incarnation != 0 && m->incarnation != e->peer_incarnation) {
		/*
		 * A peer process we have not heard before: what we knew of the
		 * previous one is void, and it must learn who we are now.
		 */
		e->peer_incarnation = m->incarnation;
		e->peer_state_seen = 0;
		e->peer_msg_valid = false;
		emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
	}
	/*
	 * Made before the peer heard of this process (say, queued in corosync
	 * across the membership change that brought us back): its role may
	 * be long gone.  Wait for a state that answers ours.
	 */
	if (m->incarnation != 0 && e->my_incarnation != 0 &&
	    m->peer_incarnation != e->my_incarnation)
		return;
	if (m->state_version != e->peer_state_seen) {
		/* Answer a new state at once: the peer may be waiting for it. */
		e->peer_state_seen = m->state_version;
		if (e->my_incarnation != 0)
			emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
	}
	e->peer_id = m->nodeid;
	e->peer_msg = *m;
	e->peer_msg_valid = true;
	if (m->role == ROLE_ACTIVE && e->role == ROLE_STANDBY && m->epoch > e->epoch) {
		e->epoch = m->epoch;
		emit(o, ACT_SAVE_EPOCH, m->nodeid, e->epoch, NULL);
	}
	if (e->handover_to != 0 && e->handover_to == m->nodeid &&
	    (m->role == ROLE_ACTIVE || !m->healthy || m->leaving))
		e->handover_to = 0;
	/*
	 * A handover we cannot take (no carrier) gets an answer: our state
	 * tells the node that demoted to take the role back, instead of the
	 * pair staying without an active.
	 */
	if (m->handover_to == e->my_id && e->role == ROLE_STANDBY && !e->healthy)
		emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
}

static void
on_health(struct election *e, bool healthy, struct out *o)
{
	if (e->healthy == healthy)
		return;
	e->healthy = healthy;
	if (!healthy && e->role == ROLE_ACTIVE && peer_is_ready_standby(e)) {
		demote(e, o, e->peer_id, "VIP interface lost carrier, handing over");
		return;
	}
	emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
}

static void
refuse(struct out *o, const char *reason)
{
	emit(o, ACT_SWITCHOVER_REFUSED, 0, 0, reason);
}

static void
on_switchover(struct election *e, uint32_t to, bool force, struct out *o)
{
	uint32_t target = to;

	if (target == 0)
		target = e->role == ROLE_ACTIVE ? e->peer_id : e->my_id;
	if (target == 0 || (target != e->my_id && target != e->peer_id)) {
		refuse(o, "no such node in the pair");
		return;
	}
	if (e->shutting_down) {
		refuse(o, "this node is shutting down");
		return;
	}

	if (e->role == ROLE_ACTIVE) {
		if (target == e->my_id) {
			emit(o, ACT_SWITCHOVER_ACCEPTED, target, e->epoch, "already active");
			return;
		}
		if (e->peer != PEER_MEMBER || !e->peer_msg_valid) {
			refuse(o, "the peer is not a member of the pair");
			return;
		}
		if (e->peer_msg.leaving) {
			refuse(o, "the peer is shutting down");
			return;
		}
		if (!force && !e->peer_msg.healthy) {
			refuse(o, "the peer is not healthy (its VIP interface has no carrier)");
			return;
		}
		if (!force && !e->peer_msg.in_sync) {
			refuse(o, "the peer is not in sync yet (it is still catching up)");
			return;
		}
		demote(e, o, target, "switchover");
		emit(o, ACT_SWITCHOVER_ACCEPTED, target, e->epoch, NULL);
		return;
	}

	if (target == e->peer_id) {
		if (e->peer == PEER_MEMBER && e->peer_msg_valid &&
		    e->peer_msg.role == ROLE_ACTIVE) {
			emit(o, ACT_SWITCHOVER_ACCEPTED, target, e->epoch, "already active");
			return;
		}
		refuse(o, "the peer is not active and cannot be made active from here");
		return;
	}

	/* This standby wants the role. */
	if (!e->healthy && !force) {
		refuse(o, "this node is not healthy (its VIP interface has no carrier)");
		return;
	}
	if (e->peer == PEER_MEMBER && e->peer_msg_valid && e->peer_msg.role == ROLE_ACTIVE) {
		emit(o, ACT_RELAY_SWITCHOVER, e->my_id, e->epoch, NULL);
		emit(o, ACT_SWITCHOVER_ACCEPTED, target, e->epoch, NULL);
		return;
	}
	if (!force) {
		if (e->peer != PEER_MEMBER)
			refuse(
			    o, "the peer is not a member; make sure it is down, then use --force");
		else if (!e->quorate)
			refuse(o, "no quorum; make sure the peer is down, then use --force");
		else
			refuse(o, "the peer is not ready yet; try again");
		return;
	}
	e->force = true;
	if (e->peer == PEER_UNKNOWN)
		lose_peer(e, LOSS_NODEDOWN);
	if (e->fence == FENCE_DELAYING)
		e->fence = FENCE_IDLE;
	emit(o, ACT_SWITCHOVER_ACCEPTED, target, e->epoch, "forced");
}

static void
on_shutdown(struct election *e, struct out *o)
{
	if (e->shutting_down)
		return;
	e->shutting_down = true;
	if (e->role == ROLE_ACTIVE) {
		/* Demote before leaving: a clean leave promises the VIP is gone. */
		demote(e, o, peer_is_ready_standby(e) ? e->peer_id : 0, "shutdown");
	} else {
		emit(o, ACT_BROADCAST, 0, e->epoch, NULL);
	}
	emit(o, ACT_EXIT, 0, e->epoch, NULL);
}

static size_t
step(struct election *e, const struct election_input *in, struct election_action *out, size_t max)
{
	struct out o = {.a = out, .n = 0, .max = max};

	switch (in->type) {
	case IN_MEMBERSHIP:
		on_membership(e, in, &o);
		break;
	case IN_QUORUM:
		/*
		 * wait_for_all: a node that booted alone becomes quorate only once
		 * corosync has seen its peer's node.  A loss recorded before that
		 * is obsolete (the peer's node is up, or was a moment ago), and
		 * votequorum may say so before the membership does: wait for the
		 * peer's tandemd as at any start instead of fencing a node that is
		 * just coming back.
		 */
		if (in->u.quorate && !e->quorate && e->peer == PEER_LOST &&
		    e->peer_loss == LOSS_NODEDOWN && e->peer_lost_unquorate &&
		    e->fence == FENCE_IDLE) {
			e->peer = PEER_UNKNOWN;
			e->peer_loss = LOSS_NONE;
			e->peer_node_up = true;
			if (!e->grace_armed) {
				e->grace_armed = true;
				emit(&o, ACT_ARM_GRACE, e->peer_id, e->epoch, NULL);
			}
		}
		e->quorate = in->u.quorate;
		/* Quorate, the node needs no admin override any more. */
		if (e->quorate)
			e->force = false;
		break;
	case IN_PEER_STATE:
		on_peer_state(e, &in->u.peer, &o);
		break;
	case IN_HEALTH:
		on_health(e, in->u.healthy, &o);
		break;
	case IN_PEER_HUNG:
		if (e->peer == PEER_MEMBER)
			lose_peer(e, LOSS_HUNG);
		break;
	case IN_GRACE_OVER:
		if (e->peer == PEER_UNKNOWN && e->peer_node_up)
			lose_peer(e, LOSS_PROCDOWN);
		break;
	case IN_FENCE_DELAY_OVER:
		if (e->fence == FENCE_DELAYING) {
			e->fence = FENCE_IDLE;
			if (e->peer == PEER_LOST && e->healthy) {
				e->fence = FENCE_RUNNING;
				emit(&o, ACT_FENCE, e->peer_id, e->epoch, "fence delay over");
			}
		}
		break;
	case IN_FENCE_RESULT:
		if (e->fence != FENCE_RUNNING)
			break;
		if (in->u.fence_ok) {
			e->fence = FENCE_IDLE;
			if (e->peer == PEER_LOST)
				e->peer = PEER_FENCED;
		} else {
			e->fence = FENCE_FAILED;
			emit(&o, ACT_ARM_FENCE_RETRY, e->peer_id, e->epoch, NULL);
		}
		break;
	case IN_FENCE_RETRY:
		if (e->fence != FENCE_FAILED)
			break;
		e->fence = FENCE_IDLE;
		if (e->peer == PEER_LOST && e->healthy && (e->quorate || e->force)) {
			e->fence = FENCE_RUNNING;
			emit(&o, ACT_FENCE, e->peer_id, e->epoch, "retrying a failed fence");
		}
		break;
	case IN_SWITCHOVER:
		on_switchover(e, in->u.switchover.to, in->u.switchover.force, &o);
		break;
	case IN_SHUTDOWN:
		on_shutdown(e, &o);
		return o.n;
	case IN_DATA:
		if (e->data_epoch != in->u.data.epoch || e->seq != in->u.data.seq ||
		    e->in_sync != in->u.data.in_sync) {
			e->data_epoch = in->u.data.epoch;
			e->seq = in->u.data.seq;
			e->in_sync = in->u.data.in_sync;
			/* The peer may be deciding on our data: tell it (the active's position
			 * moves with every write, it is sent with the next state). */
			if (e->role == ROLE_STANDBY)
				emit(&o, ACT_BROADCAST, 0, e->epoch, NULL);
		}
		break;
	case IN_COROSYNC_LOST:
		e->quorate = false;
		e->force = false;
		if (e->peer == PEER_MEMBER)
			e->peer = PEER_UNKNOWN;
		e->peer_msg_valid = false;
		e->grace_armed = false;
		if (e->fence == FENCE_DELAYING)
			e->fence = FENCE_IDLE;
		if (e->role == ROLE_ACTIVE) {
			demote(e, &o, 0, "lost the connection to corosync");
			return o.n;
		}
		break;
	}
	reconsider(e, &o);
	return o.n;
}

size_t
election_step(
    struct election *e, const struct election_input *in, struct election_action *out, size_t max)
{
	struct election_state_msg now;
	size_t n = step(e, in, out, max);

	state_fields(e, &now);
	if (memcmp(&now, &e->announced, sizeof(now)) != 0) {
		e->announced = now;
		e->my_state_version++;
	}
	return n;
}

const char *
election_role_name(enum election_role role)
{
	switch (role) {
	case ROLE_STANDBY:
		return "standby";
	case ROLE_ACTIVE:
		return "active";
	}
	return "?";
}

const char *
election_peer_name(enum peer_status status)
{
	switch (status) {
	case PEER_UNKNOWN:
		return "unknown";
	case PEER_MEMBER:
		return "member";
	case PEER_LEFT:
		return "left";
	case PEER_LOST:
		return "lost";
	case PEER_FENCED:
		return "fenced";
	}
	return "?";
}

const char *
election_action_name(enum election_action_type type)
{
	switch (type) {
	case ACT_PROMOTE:
		return "promote";
	case ACT_DEMOTE:
		return "demote";
	case ACT_BROADCAST:
		return "broadcast";
	case ACT_SAVE_EPOCH:
		return "save-epoch";
	case ACT_FENCE:
		return "fence";
	case ACT_ARM_FENCE_DELAY:
		return "arm-fence-delay";
	case ACT_ARM_FENCE_RETRY:
		return "arm-fence-retry";
	case ACT_ARM_GRACE:
		return "arm-grace";
	case ACT_RELAY_SWITCHOVER:
		return "relay-switchover";
	case ACT_SWITCHOVER_ACCEPTED:
		return "switchover-accepted";
	case ACT_SWITCHOVER_REFUSED:
		return "switchover-refused";
	case ACT_EXIT:
		return "exit";
	}
	return "?";
}

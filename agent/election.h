/*
 * election: who of the pair is active, as a pure state machine.
 *
 * election_step() takes the current state and one input (a membership
 * change, quorum, a peer's state message, local health, a fence result,
 * an admin request, a timer that fired) and returns the actions the agent
 * must carry out, in order.  It does no I/O, keeps no clock and calls
 * nothing: timers are actions ("arm the fence delay") whose expiry comes
 * back as an input.  Every rule is unit-tested against this file alone.
 */
#ifndef TANDEM_ELECTION_H
#define TANDEM_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum election_role {
	ROLE_STANDBY,
	ROLE_ACTIVE,
};

/* What this node knows of its peer's process. */
enum peer_status {
	/* Not heard of since this tandemd started. */
	PEER_UNKNOWN,
	/* Its tandemd is in our CPG group. */
	PEER_MEMBER,
	/* It left cleanly (cpg_leave): it holds nothing. */
	PEER_LEFT,
	/* It was lost (process or node down, or hung): it must be fenced. */
	PEER_LOST,
	/* It was lost and our fence agent said it is off. */
	PEER_FENCED,
};

enum loss_reason {
	LOSS_NONE,
	/* cpg_leave: the peer left on purpose, after dropping its VIP. */
	LOSS_LEAVE,
	/* Its tandemd died; its corosync (and maybe its VIP) is still up. */
	LOSS_PROCDOWN,
	/* The node left the corosync membership: dead, or a split. */
	LOSS_NODEDOWN,
	/* Its tandemd is in the group but sent nothing for heartbeat_timeout. */
	LOSS_HUNG,
};

enum fence_phase {
	FENCE_IDLE,
	/* Waiting the standby's delay before fencing (a possible split). */
	FENCE_DELAYING,
	FENCE_RUNNING,
	/* The last attempt failed; a retry timer is armed. */
	FENCE_FAILED,
};

/* The state one node announces to its peer (on CPG), and keeps of it. */
struct election_state_msg {
	uint32_t nodeid;
	enum election_role role;
	uint64_t epoch;
	/* Data position: the epoch and seq of the last frame committed or applied. */
	uint64_t data_epoch;
	uint64_t seq;
	/*
	 * The sender holds every write the active acknowledged: it is the
	 * active, or a standby caught up with the active's live stream.
	 */
	bool in_sync;
	/* Local health: the VIP's interface has carrier. */
	bool healthy;
	bool primary;
	/* Shutting down: do not hand anything to this node. */
	bool leaving;
	/* Non-zero: this node just demoted and asks that node to promote. */
	uint32_t handover_to;
	/*
	 * The sender's process incarnation, and the receiver's as the sender
	 * last heard it (0: none yet, or a sender that predates the field).
	 */
	uint32_t incarnation;
	uint32_t peer_incarnation;
	/*
	 * The sender's state version (it rises with every change of the
	 * fields above handover_to), and the receiver's version as the sender
	 * last heard it: a standby promotes over a standby peer only on a
	 * state that has seen its own current one.
	 */
	uint32_t state_version;
	uint32_t peer_state_seen;
};

struct election {
	/* Set once by election_init. */
	uint32_t my_id;
	bool my_primary;
	bool fencing;

	enum election_role role;
	uint64_t epoch;
	/* Our data position and whether we hold every acknowledged write (IN_DATA). */
	uint64_t data_epoch;
	uint64_t seq;
	bool in_sync;
	bool healthy;
	bool quorate;
	bool shutting_down;
	/* Non-zero while our handover to that node is outstanding. */
	uint32_t handover_to;

	/* This tandemd process, and the peer's process as last heard (0: none). */
	uint32_t my_incarnation;
	uint32_t peer_incarnation;
	/* Our state's version, the fields it stands for, and the peer's last version. */
	uint32_t my_state_version;
	struct election_state_msg announced;
	uint32_t peer_state_seen;

	/* The peer: its id (0 until known), process status and last state. */
	uint32_t peer_id;
	enum peer_status peer;
	enum loss_reason peer_loss;
	bool peer_node_up;
	bool peer_msg_valid;
	struct election_state_msg peer_msg;
	/* True when the peer was active (or may have been) when we lost it. */
	bool peer_was_active;
	/* The peer was never seen since we started, and we were not quorate then (a lone boot). */
	bool peer_lost_unquorate;
	/* The startup grace for a peer whose node is up but whose tandemd is not. */
	bool grace_armed;
	bool grace_over;

	enum fence_phase fence;
	bool force;
};

enum election_input_type {
	/* The first and every later membership view: peer process and node. */
	IN_MEMBERSHIP,
	IN_QUORUM,
	IN_PEER_STATE,
	/* Our own health changed (carrier of the VIP's interface). */
	IN_HEALTH,
	IN_PEER_HUNG,
	IN_GRACE_OVER,
	IN_FENCE_DELAY_OVER,
	IN_FENCE_RESULT,
	IN_FENCE_RETRY,
	/* An admin asked for a switchover (locally, or relayed by the peer). */
	IN_SWITCHOVER,
	IN_SHUTDOWN,
	/* The connection to corosync broke: membership is unknown. */
	IN_COROSYNC_LOST,
	/* Our data position or in-sync flag changed (from replicate). */
	IN_DATA,
};

struct election_input {
	enum election_input_type type;
	union {
		struct {
			uint32_t peer_id;
			bool peer_member;
			bool peer_node_up;
			enum loss_reason reason;
		} membership;
		bool quorate;
		bool healthy;
		bool fence_ok;
		struct {
			uint64_t epoch;
			uint64_t seq;
			bool in_sync;
		} data;
		struct election_state_msg peer;
		struct {
			/* 0: the node that is not active now. */
			uint32_t to;
			bool force;
		} switchover;
	} u;
};

enum election_action_type {
	/* Persist epoch, then take the VIP.  Carries the new epoch. */
	ACT_PROMOTE,
	/* Drop the VIP. */
	ACT_DEMOTE,
	/* Send our state (election_state_msg from election_msg) to the peer. */
	ACT_BROADCAST,
	/* Persist an epoch adopted from the active peer. */
	ACT_SAVE_EPOCH,
	/* Run the fence agent's "off" on node. */
	ACT_FENCE,
	ACT_ARM_FENCE_DELAY,
	ACT_ARM_FENCE_RETRY,
	ACT_ARM_GRACE,
	/* Ask the active peer to hand over to node (relay of IN_SWITCHOVER). */
	ACT_RELAY_SWITCHOVER,
	/* The admin request is accepted and under way (or already true). */
	ACT_SWITCHOVER_ACCEPTED,
	/* The admin request is refused; reason says why. */
	ACT_SWITCHOVER_REFUSED,
	/* Leave the group and exit (after the broadcast before it went out). */
	ACT_EXIT,
};

struct election_action {
	enum election_action_type type;
	uint32_t node;
	uint64_t epoch;
	/* A static string for the log line or the refusal. */
	const char *reason;
};

#define ELECTION_MAX_ACTIONS 8

/*
 * Sets e up for this node: standby, the persisted epoch, our health
 * unknown (assumed healthy), peer unknown, not quorate.  fencing=false
 * means "fence = none": lost peers count as fenced at once.
 */
void election_init(
    struct election *e, uint32_t my_id, bool my_primary, bool fencing, uint64_t epoch);

/*
 * Applies one input.  Writes at most max actions to out and returns how
 * many; actions must be carried out in order.  Never fails: inputs that
 * make no sense in the current state are ignored.
 */
size_t election_step(
    struct election *e, const struct election_input *in, struct election_action *out, size_t max);

/*
 * Gives this process a non-zero incarnation, different from every earlier
 * run of tandemd on this node (random, or time-based).  A peer's state
 * that does not name it was made before the peer heard of this process:
 * corosync may deliver such messages late, across a membership change,
 * and they must not count.  Without it (0) every state counts.
 */
void election_set_incarnation(struct election *e, uint32_t incarnation);

/* Fills msg with the state this node announces. */
void election_msg(const struct election *e, struct election_state_msg *msg);

/* True when the pair is redundant: we and a healthy peer in sync, one active. */
bool election_redundant(const struct election *e);

/*
 * Rule 2: may the active acknowledge writes without the standby?  Only
 * when the peer cannot be promoted with less data: it was fenced (or
 * fencing is off), it left cleanly, or its own state, at a position of
 * at least (min_epoch, min_seq), says it is out of sync.  That position
 * is where the current standby was last declared in sync (the
 * replication stream's marker; 0, 0 if never): an out-of-sync state from
 * before it is stale and does not count.
 */
bool election_may_ack_alone(const struct election *e, uint64_t min_epoch, uint64_t min_seq);

/*
 * Is a state from nodeid that of a peer taken for hung, without fencing,
 * now heard again?  Such a peer counts as a member again (IN_PEER_STATE).
 */
bool election_hung_peer_heard(const struct election *e, uint32_t nodeid);

const char *election_role_name(enum election_role role);
const char *election_peer_name(enum peer_status status);
const char *election_action_name(enum election_action_type type);

#endif

/*
 * test-election: every election rule, against the real agent/election.c.
 *
 * The machine is pure, so each test feeds inputs and compares the exact
 * actions that come back, written as "type:node:epoch" words ("promote:1:2
 * broadcast:0:2"), which makes a failure print both sequences in full.
 *
 * struct pair runs two machines that talk to each other the way tandemd
 * does: an ACT_BROADCAST of one node becomes an IN_PEER_STATE queued for the
 * other, an ACT_RELAY_SWITCHOVER an IN_SWITCHOVER, and deliver() hands one
 * queued input over, in order (CPG keeps each sender's order).  What a node
 * does on a peer's message is compared without its broadcasts: whether a
 * node answers a message is the protocol's business, what it does is the
 * rule's.
 *
 * The last test is a bounded random walk of a whole two-node world: power,
 * tandemd crashes, clean exits, hangs, splits, carrier, admin switchovers,
 * timers and fence agents that kill for real or fail.  It asserts what
 * must never happen: two actives that both believe the pair is quorate and
 * were not fenced, two nodes holding the VIP at once, a promotion whose
 * epoch does not rise above every epoch that node knew, an exit holding
 * the VIP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "election.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

#define N1 1u
#define N2 2u

struct acts {
	struct election_action a[ELECTION_MAX_ACTIONS];
	size_t n;
	/* Every action; the same without the broadcasts. */
	char text[512];
	char sig[512];
};

static void
render_into(const struct acts *r, char *buf, size_t len, bool broadcasts)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->n; i++) {
		int w;

		if (!broadcasts && r->a[i].type == ACT_BROADCAST)
			continue;
		w = snprintf(buf + used, len - used, "%s%s:%u:%llu", used ? " " : "",
		    election_action_name(r->a[i].type), r->a[i].node,
		    (unsigned long long)r->a[i].epoch);
		if (w < 0 || (size_t)w >= len - used)
			break;
		used += (size_t)w;
	}
}

static struct acts
step(struct election *e, const struct election_input *in)
{
	struct acts r;

	memset(&r, 0, sizeof(r));
	r.n = election_step(e, in, r.a, ELECTION_MAX_ACTIONS);
	render_into(&r, r.text, sizeof(r.text), true);
	render_into(&r, r.sig, sizeof(r.sig), false);
	return r;
}

/*
 * election_init, and the node holds every acknowledged write: the rules
 * of the pair are tested on their own, the data rules further down.
 */
static void
init_synced(struct election *e, uint32_t my_id, bool my_primary, bool fencing, uint64_t epoch)
{
	election_init(e, my_id, my_primary, fencing, epoch);
	e->in_sync = true;
}

/* ---- inputs -------------------------------------------------------------- */

static struct election_input
in_membership(uint32_t peer_id, bool member, bool node_up, enum loss_reason reason)
{
	struct election_input in = {.type = IN_MEMBERSHIP};

	in.u.membership.peer_id = peer_id;
	in.u.membership.peer_member = member;
	in.u.membership.peer_node_up = node_up;
	in.u.membership.reason = reason;
	return in;
}

/* The peer's tandemd joined the group. */
static struct election_input
in_join(uint32_t peer_id)
{
	return in_membership(peer_id, true, true, LOSS_NONE);
}

/* The peer's tandemd is gone; its node stays up unless the reason is NODEDOWN. */
static struct election_input
in_gone(uint32_t peer_id, enum loss_reason reason)
{
	return in_membership(peer_id, false, reason != LOSS_NODEDOWN, reason);
}

/* The peer's node is up, its tandemd not (yet) in the group. */
static struct election_input
in_absent(uint32_t peer_id)
{
	return in_membership(peer_id, false, true, LOSS_NONE);
}

static struct election_input
in_quorum(bool quorate)
{
	struct election_input in = {.type = IN_QUORUM};

	in.u.quorate = quorate;
	return in;
}

static struct election_input
in_health(bool healthy)
{
	struct election_input in = {.type = IN_HEALTH};

	in.u.healthy = healthy;
	return in;
}

static struct election_input
in_fence(bool ok)
{
	struct election_input in = {.type = IN_FENCE_RESULT};

	in.u.fence_ok = ok;
	return in;
}

static struct election_input
in_switchover(uint32_t to, bool force)
{
	struct election_input in = {.type = IN_SWITCHOVER};

	in.u.switchover.to = to;
	in.u.switchover.force = force;
	return in;
}

static struct election_input
in_msg(struct election_state_msg msg)
{
	struct election_input in = {.type = IN_PEER_STATE};

	in.u.peer = msg;
	return in;
}

static struct election_input
in_peer(const struct election *peer)
{
	struct election_state_msg m;

	election_msg(peer, &m);
	return in_msg(m);
}

static struct election_input
in_plain(enum election_input_type type)
{
	struct election_input in = {.type = type};

	return in;
}

/* ---- checks -------------------------------------------------------------- */

/* Applies in to e and checks the exact actions. */
static struct acts
check_step(struct election *e, struct election_input in, const char *want)
{
	struct acts r = step(e, &in);

	assert_string_equal(r.text, want);
	return r;
}

/* The same, broadcasts left out. */
static void
check_msg(struct election *e, struct election_input in, const char *want)
{
	struct acts r = step(e, &in);

	assert_string_equal(r.sig, want);
}

static void
assert_reason(const struct acts *r, size_t i, const char *needle)
{
	assert_true(i < r->n);
	assert_non_null(r->a[i].reason);
	if (strstr(r->a[i].reason, needle) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", r->a[i].reason, needle);
}

/* check_step, and the first action's reason names needle. */
static void
check_reason(struct election *e, struct election_input in, const char *want, const char *needle)
{
	struct acts r = check_step(e, in, want);

	assert_reason(&r, 0, needle);
}

/* The admin request is refused, and the reason names needle. */
static void
check_refused(struct election *e, struct election_input in, const char *needle)
{
	check_reason(e, in, "switchover-refused:0:0", needle);
}

static uint64_t
epoch_of(const struct election *e)
{
	struct election_state_msg m;

	election_msg(e, &m);
	return m.epoch;
}

static enum election_role
role_of(const struct election *e)
{
	struct election_state_msg m;

	election_msg(e, &m);
	return m.role;
}

static void
check_state(const struct election *e, enum election_role role, uint64_t epoch)
{
	assert_int_equal(role_of(e), role);
	assert_int_equal(epoch_of(e), epoch);
}

/* ---- one machine ------------------------------------------------------- */

/* A node that boots alone: the peer's node is down, no quorum yet. */
static void
lone_boot(struct election *e, uint32_t id, bool primary, bool fencing, uint64_t epoch)
{
	init_synced(e, id, primary, fencing, epoch);
	check_step(e, in_gone(id == N1 ? N2 : N1, LOSS_NODEDOWN), "");
}

/* A quorate node that sees its peer join and, unless NULL, hears its state. */
static void
meet_peer(struct election *e, uint32_t peer_id, const struct election_state_msg *peer)
{
	check_msg(e, in_quorum(true), "");
	check_msg(e, in_join(peer_id), "");
	if (peer != NULL)
		check_msg(e, in_msg(*peer), "");
}

/* ---- two machines talking ---------------------------------------------- */

#define PAIR_Q 64

struct pair {
	struct election n[2];
	struct election_input q[2][PAIR_Q];
	size_t qn[2];
	bool connected;
	/* Only a test of fence = none in a split may see two actives. */
	bool allow_two_actives;
	/* What settle() saw each node do, broadcasts left out. */
	char log[2][512];
};

static uint32_t
id_of(int i)
{
	return i == 0 ? N1 : N2;
}

static void
push(struct pair *p, int to, const struct election_input *in)
{
	if (!p->connected)
		return;
	assert_true(p->qn[to] < PAIR_Q);
	p->q[to][p->qn[to]++] = *in;
}

/* One input into node i; its broadcasts and relays go to the other's queue. */
static struct acts
pstep(struct pair *p, int i, struct election_input in)
{
	struct acts r = step(&p->n[i], &in);

	if (!p->allow_two_actives && role_of(&p->n[0]) == ROLE_ACTIVE &&
	    role_of(&p->n[1]) == ROLE_ACTIVE)
		fail_msg("both nodes active after n%u got an input: %s", id_of(i), r.text);

	for (size_t k = 0; k < r.n; k++) {
		struct election_input out;

		switch (r.a[k].type) {
		case ACT_BROADCAST:
			out = in_peer(&p->n[i]);
			push(p, !i, &out);
			break;
		case ACT_RELAY_SWITCHOVER:
			out = in_switchover(r.a[k].node, false);
			push(p, !i, &out);
			break;
		case ACT_PROMOTE:
		case ACT_DEMOTE:
		case ACT_SAVE_EPOCH:
		case ACT_FENCE:
		case ACT_ARM_FENCE_DELAY:
		case ACT_ARM_FENCE_RETRY:
		case ACT_ARM_GRACE:
		case ACT_SWITCHOVER_ACCEPTED:
		case ACT_SWITCHOVER_REFUSED:
		case ACT_EXIT:
			break;
		}
	}
	return r;
}

/* pstep, and the exact actions. */
static struct acts
pcheck(struct pair *p, int i, struct election_input in, const char *want)
{
	struct acts r = pstep(p, i, in);

	assert_string_equal(r.text, want);
	return r;
}

/* Hands the oldest queued input to node i. */
static struct acts
deliver(struct pair *p, int i)
{
	struct election_input in;

	assert_true(p->qn[i] > 0);
	in = p->q[i][0];
	p->qn[i]--;
	memmove(&p->q[i][0], &p->q[i][1], p->qn[i] * sizeof(p->q[i][0]));
	return pstep(p, i, in);
}

/* deliver, and what node i did, broadcasts left out. */
static struct acts
dcheck(struct pair *p, int i, const char *want)
{
	struct acts r = deliver(p, i);

	assert_string_equal(r.sig, want);
	return r;
}

static void
log_acts(struct pair *p, int i, const struct acts *r)
{
	size_t used = strlen(p->log[i]);

	if (r->sig[0] != '\0')
		(void)snprintf(
		    p->log[i] + used, sizeof(p->log[i]) - used, "%s%s", used ? " " : "", r->sig);
}

/* Delivers everything, alternating, and logs what each node did. */
static void
settle(struct pair *p)
{
	p->log[0][0] = p->log[1][0] = '\0';
	for (int guard = 0; guard < 200 && (p->qn[0] || p->qn[1]); guard++) {
		for (int i = 0; i < 2; i++) {
			if (p->qn[i]) {
				struct acts r = deliver(p, i);

				log_acts(p, i, &r);
			}
		}
	}
	assert_int_equal(p->qn[0] + p->qn[1], 0);
}

/* One input into node i, then everything that follows from it. */
static void
pstep_settle(struct pair *p, int i, struct election_input in)
{
	(void)pstep(p, i, in);
	settle(p);
}

static void
assert_roles(const struct pair *p, enum election_role r1, enum election_role r2)
{
	assert_int_equal(role_of(&p->n[0]), r1);
	assert_int_equal(role_of(&p->n[1]), r2);
}

/* A fresh run of tandemd on node i; primary says whether it is the primary. */
static void
restart_as(struct pair *p, int i, bool primary, bool fencing, uint64_t epoch)
{
	init_synced(&p->n[i], id_of(i), primary, fencing, epoch);
	p->qn[i] = 0;
}

/* The same with the usual identities: n1 is the primary. */
static void
restart(struct pair *p, int i, uint64_t epoch)
{
	restart_as(p, i, i == 0, true, epoch);
}

/* Two fresh nodes, connected; primary is the index of the primary node. */
static void
pair_init_as(struct pair *p, int primary, bool fencing, uint64_t epoch1, uint64_t epoch2)
{
	memset(p, 0, sizeof(*p));
	p->connected = true;
	restart_as(p, 0, primary == 0, fencing, epoch1);
	restart_as(p, 1, primary == 1, fencing, epoch2);
}

static void
pair_init(struct pair *p, uint64_t epoch1, uint64_t epoch2)
{
	pair_init_as(p, 0, true, epoch1, epoch2);
}

/* Each tandemd sees the other join (and quorum first, when quorate). */
static void
pair_meet(struct pair *p, bool quorate)
{
	for (int i = 0; i < 2; i++) {
		if (quorate)
			(void)pstep(p, i, in_quorum(true));
		(void)pstep(p, i, in_join(id_of(!i)));
	}
}

/* Both meet with quorum and settle; checks the roles they end in. */
static void
pair_form(struct pair *p, enum election_role r1, enum election_role r2)
{
	pair_meet(p, true);
	settle(p);
	assert_roles(p, r1, r2);
}

/* A settled pair after a cold start: n1 active at epoch 1. */
static void
pair_up(struct pair *p)
{
	pair_init(p, 0, 0);
	pair_form(p, ROLE_ACTIVE, ROLE_STANDBY);
	assert_int_equal(epoch_of(&p->n[0]), 1);
	assert_int_equal(epoch_of(&p->n[1]), 1);
}

/* Fixture: state points to a pair_up() pair. */
static int
setup_pair_up(void **state)
{
	static struct pair p;

	pair_up(&p);
	*state = &p;
	return 0;
}

/* Node i lost its carrier, and its peer knows. */
static void
pair_unhealthy(struct pair *p, int i)
{
	pstep_settle(p, i, in_health(false));
}

/* ---- cold start -------------------------------------------------------- */

static void
test_cold_start_primary_wins(void **state)
{
	struct pair p;
	struct acts r;

	(void)state;
	pair_init(&p, 0, 0);
	pcheck(&p, 0, in_quorum(true), "");
	pcheck(&p, 0, in_join(N2), "broadcast:0:0");
	pcheck(&p, 1, in_quorum(true), "");
	pcheck(&p, 1, in_join(N1), "broadcast:0:0");

	/* n1 hears n2 (standby, redundant): n1, the primary, wins. */
	r = dcheck(&p, 0, "promote:1:1");
	assert_reason(&r, 0, "wins");
	/* n2 hears n1's first, standby message: it loses and waits. */
	dcheck(&p, 1, "");
	/* Then n1's active message: n2 adopts and persists the epoch. */
	dcheck(&p, 1, "save-epoch:1:1");
	assert_roles(&p, ROLE_ACTIVE, ROLE_STANDBY);
	assert_true(election_redundant(&p.n[0]));
	assert_true(election_redundant(&p.n[1]));
}

static void
test_cold_start_primary_with_higher_id_wins(void **state)
{
	struct pair p;

	(void)state;
	pair_init_as(&p, 1, true, 0, 0);
	pair_form(&p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_int_equal(epoch_of(&p.n[1]), 1);
}

static void
test_cold_start_newer_epoch_beats_identity(void **state)
{
	struct pair p;

	(void)state;
	/* n2 was active last (epoch 7); n1, the primary, has older data. */
	pair_init(&p, 5, 7);
	pair_form(&p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_int_equal(epoch_of(&p.n[1]), 8);
	assert_int_equal(epoch_of(&p.n[0]), 8);
}

static void
test_cold_start_unhealthy_primary_loses(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, 0, 0);
	(void)pstep(&p, 0, in_health(false));
	pair_form(&p, ROLE_STANDBY, ROLE_ACTIVE);
}

static void
test_cold_start_needs_quorum(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, 0, 0);
	pair_meet(&p, false);
	settle(&p);
	assert_roles(&p, ROLE_STANDBY, ROLE_STANDBY);
	/* Quorum arrives: the known states decide at once. */
	check_step(&p.n[1], in_quorum(true), "");
	check_step(&p.n[0], in_quorum(true), "promote:1:1 broadcast:0:1");
}

/* ---- a lone node ------------------------------------------------------- */

static void
test_lone_node_waits_for_all(void **state)
{
	struct election e;

	(void)state;
	/* Boot alone: the peer's node is down, corosync is not quorate. */
	lone_boot(&e, N1, true, true, 4);
	check_step(&e, in_quorum(false), "");
	check_step(&e, in_health(false), "broadcast:0:4");
	check_step(&e, in_health(true), "broadcast:0:4");
	check_step(&e, in_plain(IN_FENCE_DELAY_OVER), "");
	check_step(&e, in_plain(IN_FENCE_RETRY), "");
	check_step(&e, in_fence(true), "");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
	assert_false(election_redundant(&e));
	/*
	 * Quorate: corosync has seen the peer's node, maybe before the
	 * membership says so.  The boot-time loss is obsolete: wait for its
	 * tandemd (the startup grace), do not fence a node coming back.
	 */
	check_step(&e, in_quorum(true), "arm-grace:2:4");
	check_step(&e, in_plain(IN_FENCE_DELAY_OVER), "");
	/* Its tandemd joins: no fence, the pair forms. */
	check_step(&e, in_join(N2), "broadcast:0:4");
	assert_int_equal(e.peer, PEER_MEMBER);
}

/*
 * corosync may deliver a peer's state across the membership change that
 * brought this node back, long after the peer replaced it.  A restarted
 * primary that took the old "standby" for the truth would promote next to
 * the active.  A state that does not name this process's incarnation
 * does not count; the peer learns the new incarnation and answers.
 */
static void
test_stale_state_from_before_restart_ignored(void **state)
{
	struct election e;
	struct election_state_msg stale = {.nodeid = N2,
	    .role = ROLE_STANDBY,
	    .epoch = 4,
	    .healthy = true,
	    .incarnation = 0xb,
	    .peer_incarnation = 0xa0};
	struct election_state_msg fresh = stale;

	(void)state;
	init_synced(&e, N1, true, true, 4);
	election_set_incarnation(&e, 0xa1);
	check_step(&e, in_quorum(true), "");
	check_step(&e, in_join(N2), "broadcast:0:4");
	/* Made for our previous incarnation 0xa0: learn 0xb, answer, do not act. */
	check_step(&e, in_msg(stale), "broadcast:0:4");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
	assert_false(e.peer_msg_valid);
	/* The peer's answer to us: it has been active since epoch 5. */
	fresh.role = ROLE_ACTIVE;
	fresh.epoch = 5;
	fresh.peer_incarnation = 0xa1;
	check_step(&e, in_msg(fresh), "save-epoch:2:5");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
	/* A sender that predates incarnations (0) still counts, for mixed versions. */
	fresh.incarnation = 0;
	fresh.peer_incarnation = 0;
	check_step(&e, in_msg(fresh), "");
	assert_true(e.peer_msg_valid);
}

/*
 * Decisions that cross in flight: n2 promotes on n1's "no carrier" while
 * n1 regains carrier holding n2's last "standby".  n1 may not promote on
 * that state: it had not seen n1's carrier back.  Then n2's "active"
 * arrives and n1 stays standby: one active.
 */
static void
test_crossing_decisions_one_active(void **state)
{
	struct election a, b;
	struct election_state_msg m, b_standby;

	(void)state;
	init_synced(&a, N1, true, true, 4);
	init_synced(&b, N2, false, true, 4);
	election_set_incarnation(&a, 0x11);
	election_set_incarnation(&b, 0x22);
	/* Not quorate yet: they meet and learn each other's state first. */
	check_msg(&a, in_join(N2), "");
	check_msg(&b, in_join(N1), "");
	check_msg(&a, in_health(false), "");
	for (int round = 0; round < 2; round++) {
		election_msg(&a, &m);
		check_msg(&b, in_msg(m), "");
		election_msg(&b, &m);
		check_msg(&a, in_msg(m), "");
	}
	/* n2's latest state answers n1's "no carrier". */
	election_msg(&b, &b_standby);
	/* Quorum: n2 wins over a carrier-less n1 and promotes. */
	check_msg(&a, in_quorum(true), "");
	check_msg(&b, in_quorum(true), "promote:2:5");
	/* n1's carrier returns before n2's "active" reaches it. */
	check_msg(&a, in_health(true), "");
	check_msg(&a, in_msg(b_standby), "");
	assert_int_equal(role_of(&a), ROLE_STANDBY);
	/* n2's "active" arrives: n1 stays standby and adopts the epoch. */
	election_msg(&b, &m);
	check_msg(&a, in_msg(m), "save-epoch:2:5");
	assert_int_equal(role_of(&a), ROLE_STANDBY);
}

/* Without the answer rule the crossing above made two actives: the same inputs, legacy peers. */
static void
test_crossing_decisions_legacy_peer(void **state)
{
	struct election a, b;
	struct election_state_msg m, b_standby;

	(void)state;
	init_synced(&a, N1, true, true, 4);
	init_synced(&b, N2, false, true, 4);
	check_msg(&a, in_join(N2), "");
	check_msg(&b, in_join(N1), "");
	check_msg(&a, in_health(false), "");
	election_msg(&a, &m);
	check_msg(&b, in_msg(m), "");
	election_msg(&b, &b_standby);
	check_msg(&a, in_msg(b_standby), "");
	check_msg(&a, in_quorum(true), "");
	check_msg(&b, in_quorum(true), "promote:2:5");
	/* A peer without incarnations cannot answer: n1 decides on what it has. */
	check_msg(&a, in_health(true), "promote:1:5");
}

/* The peer's node was seen, then went again: after the grace it is fenced. */
static void
test_lone_node_quorate_peer_gone_again(void **state)
{
	struct election e;

	(void)state;
	lone_boot(&e, N1, true, true, 4);
	check_step(&e, in_quorum(true), "arm-grace:2:4");
	/* Gone again: it may have been active, so even the primary waits the delay. */
	check_step(&e, in_gone(N2, LOSS_NODEDOWN), "arm-fence-delay:2:4");
	check_step(&e, in_plain(IN_GRACE_OVER), "");
	check_step(&e, in_plain(IN_FENCE_DELAY_OVER), "fence:2:4");
	check_step(&e, in_fence(true), "promote:1:5 broadcast:0:5");
}

static void
test_lone_node_switchover_refused_without_force(void **state)
{
	struct election e;

	(void)state;
	lone_boot(&e, N1, true, true, 4);
	check_refused(&e, in_switchover(0, false), "not a member; make sure it is down");
	check_refused(&e, in_switchover(N1, false), "--force");
	check_refused(&e, in_switchover(7, false), "no such node");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
}

static void
test_lone_node_force_fences_then_promotes(void **state)
{
	struct election e;

	(void)state;
	lone_boot(&e, N1, false, true, 4);
	/* --force: no delay (the admin said the peer is down), fence first. */
	check_reason(&e, in_switchover(0, true), "switchover-accepted:1:4 fence:2:4", "forced");
	check_step(&e, in_fence(true), "promote:1:5 broadcast:0:5");
	/* Still no quorum: the forced active must stay active on later inputs. */
	check_step(&e, in_health(true), "");
	check_step(&e, in_quorum(false), "");
	check_step(&e, in_gone(N2, LOSS_NODEDOWN), "");
	check_state(&e, ROLE_ACTIVE, 5);
	/* Quorate once, the override is spent: a later quorum loss demotes. */
	check_step(&e, in_quorum(true), "");
	check_step(&e, in_quorum(false), "demote:1:5 broadcast:0:5");
}

static void
test_lone_node_force_failed_fence_stays_standby(void **state)
{
	struct election e;

	(void)state;
	lone_boot(&e, N1, true, true, 0);
	check_step(&e, in_switchover(N1, true), "switchover-accepted:1:0 fence:2:0");
	check_step(&e, in_fence(false), "arm-fence-retry:2:0");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
	check_step(&e, in_plain(IN_FENCE_RETRY), "fence:2:0");
	check_step(&e, in_fence(true), "promote:1:1 broadcast:0:1");
}

static void
test_lone_node_force_fence_none(void **state)
{
	struct election e;

	(void)state;
	lone_boot(&e, N1, true, false, 2);
	check_step(&e, in_switchover(0, true), "switchover-accepted:1:2 promote:1:3 broadcast:0:3");
}

/* ---- quorum ------------------------------------------------------------ */

static void
test_no_promotion_without_quorum(void **state)
{
	struct election e;

	(void)state;
	/* The active left cleanly, but this node has no quorum. */
	init_synced(&e, N2, false, true, 3);
	check_step(&e, in_join(N1), "broadcast:0:3");
	check_step(&e, in_gone(N1, LOSS_LEAVE), "");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
	check_step(&e, in_quorum(true), "promote:2:4 broadcast:0:4");
}

static void
test_quorum_lost_active_demotes(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[0], in_quorum(false), "demote:1:1 broadcast:0:1");
	assert_int_equal(role_of(&p->n[0]), ROLE_STANDBY);
}

/* ---- the active goes away ---------------------------------------------- */

static void
test_promote_after_clean_leave(void **state)
{
	struct pair *p = *state;

	/* A leave without a handover message first (e.g. it was lost). */
	check_reason(&p->n[1], in_gone(N1, LOSS_LEAVE), "promote:2:2 broadcast:0:2", "left");
	assert_false(election_redundant(&p->n[1]));
}

static void
test_sigterm_active_hands_over(void **state)
{
	struct pair *p = *state;
	struct acts r;

	pcheck(p, 0, in_plain(IN_SHUTDOWN), "demote:1:1 broadcast:0:1 exit:0:1");
	/* A second SIGTERM does nothing more. */
	check_step(&p->n[0], in_plain(IN_SHUTDOWN), "");
	r = dcheck(p, 1, "promote:2:2");
	assert_reason(&r, 0, "handover");
	/* Then the leave: nothing more to do. */
	check_step(&p->n[1], in_gone(N1, LOSS_LEAVE), "");
	assert_int_equal(role_of(&p->n[1]), ROLE_ACTIVE);
}

static void
test_sigterm_active_without_ready_standby(void **state)
{
	struct pair *p = *state;

	pair_unhealthy(p, 1);
	/* No handover to an unhealthy standby; the VIP still goes first. */
	pcheck(p, 0, in_plain(IN_SHUTDOWN), "demote:1:1 broadcast:0:1 exit:0:1");
	assert_int_equal(p->n[0].handover_to, 0);
	dcheck(p, 1, "");
	check_step(&p->n[1], in_gone(N1, LOSS_LEAVE), "");
	/* Carrier back: the left peer holds nothing, promote. */
	check_step(&p->n[1], in_health(true), "broadcast:0:1 promote:2:2 broadcast:0:2");
}

static void
test_sigterm_standby_just_leaves(void **state)
{
	struct pair *p = *state;

	pcheck(p, 1, in_plain(IN_SHUTDOWN), "broadcast:0:1 exit:0:1");
	dcheck(p, 0, "");
	assert_false(election_redundant(&p->n[0]));
	check_step(&p->n[0], in_gone(N2, LOSS_LEAVE), "");
	assert_int_equal(role_of(&p->n[0]), ROLE_ACTIVE);
	/* A leaving node takes nothing, even when asked. */
	check_refused(&p->n[1], in_switchover(N2, false), "shutting down");
}

static void
test_lost_active_procdown_fenced_at_once(void **state)
{
	struct pair *p = *state;

	/* n1's tandemd died, its corosync (and maybe its VIP) lives. */
	check_step(&p->n[1], in_gone(N1, LOSS_PROCDOWN), "fence:1:1");
	assert_int_equal(role_of(&p->n[1]), ROLE_STANDBY);
	/* Its node then goes down (the fence): nothing new. */
	check_step(&p->n[1], in_gone(N1, LOSS_NODEDOWN), "");
	check_reason(&p->n[1], in_fence(true), "promote:2:2 broadcast:0:2", "fenced");
}

static void
test_lost_active_nodedown_standby_delays(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[1], in_gone(N1, LOSS_NODEDOWN), "arm-fence-delay:1:1");
	/* A stray retry or result does nothing while delaying. */
	check_step(&p->n[1], in_plain(IN_FENCE_RETRY), "");
	check_step(&p->n[1], in_fence(true), "");
	assert_int_equal(role_of(&p->n[1]), ROLE_STANDBY);
	check_step(&p->n[1], in_plain(IN_FENCE_DELAY_OVER), "fence:1:1");
	check_step(&p->n[1], in_fence(true), "promote:2:2 broadcast:0:2");
}

static void
test_split_active_fences_at_once(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[0], in_gone(N2, LOSS_NODEDOWN), "fence:2:1");
	check_step(&p->n[0], in_fence(true), "");
	assert_int_equal(role_of(&p->n[0]), ROLE_ACTIVE);
}

static void
test_split_primary_standby_still_delays(void **state)
{
	struct pair p;

	(void)state;
	/* After a failover n2 is active and n1, the primary, is standby. */
	pair_init(&p, 0, 0);
	(void)pstep(&p, 0, in_health(false));
	pair_form(&p, ROLE_STANDBY, ROLE_ACTIVE);
	pstep_settle(&p, 0, in_health(true));
	assert_roles(&p, ROLE_STANDBY, ROLE_ACTIVE);
	/* Identity must not matter: the standby waits, the active does not. */
	check_step(&p.n[0], in_gone(N2, LOSS_NODEDOWN), "arm-fence-delay:2:1");
	check_step(&p.n[1], in_gone(N1, LOSS_NODEDOWN), "fence:1:1");
}

static void
test_split_between_standbys_identity_decides(void **state)
{
	struct pair p;

	(void)state;
	/* Two standbys (they met before quorum), then a split. */
	pair_init(&p, 0, 0);
	pair_meet(&p, false);
	settle(&p);
	check_step(&p.n[0], in_gone(N2, LOSS_NODEDOWN), "");
	check_step(&p.n[1], in_gone(N1, LOSS_NODEDOWN), "");
	check_step(&p.n[0], in_quorum(true), "fence:2:0");
	check_step(&p.n[1], in_quorum(true), "arm-fence-delay:1:0");
}

/*
 * A silent active may be a hung tandemd or the far side of a split that
 * corosync has not declared yet: the standby fences it after the delay,
 * while the active fences a silent standby at once, so the serving node
 * wins the race.
 */
static void
test_hung_active_fenced_after_delay(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[1], in_plain(IN_PEER_HUNG), "arm-fence-delay:1:1");
	/* Its messages are ignored from now on: it is lost until it rejoins. */
	check_step(&p->n[1], in_peer(&p->n[0]), "");
	check_step(&p->n[1], in_plain(IN_FENCE_DELAY_OVER), "fence:1:1");
	assert_int_equal(role_of(&p->n[1]), ROLE_STANDBY);
	check_step(&p->n[1], in_fence(true), "promote:2:2 broadcast:0:2");
	/* A second hang report for a peer already handled does nothing. */
	check_step(&p->n[1], in_plain(IN_PEER_HUNG), "");
}

static void
test_hung_standby_fenced_by_active(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[0], in_plain(IN_PEER_HUNG), "fence:2:1");
	check_step(&p->n[0], in_fence(true), "");
	assert_int_equal(role_of(&p->n[0]), ROLE_ACTIVE);
}

static void
test_failed_fence_retries(void **state)
{
	struct pair *p = *state;
	struct election *n2 = &p->n[1];

	check_step(n2, in_gone(N1, LOSS_PROCDOWN), "fence:1:1");
	for (int i = 0; i < 3; i++) {
		check_step(n2, in_fence(false), "arm-fence-retry:1:1");
		assert_int_equal(role_of(n2), ROLE_STANDBY);
		/* Nothing else fences or promotes while the retry is armed. */
		check_step(n2, in_health(true), "");
		check_step(n2, in_plain(IN_FENCE_DELAY_OVER), "");
		check_step(n2, in_plain(IN_FENCE_RETRY), "fence:1:1");
	}
	check_step(n2, in_fence(true), "promote:2:2 broadcast:0:2");
	/* Late timers after the promotion do nothing. */
	check_step(n2, in_plain(IN_FENCE_RETRY), "");
	check_step(n2, in_fence(false), "");
}

static void
test_failed_fence_peer_returns(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[1], in_gone(N1, LOSS_PROCDOWN), "fence:1:1");
	check_step(&p->n[1], in_fence(false), "arm-fence-retry:1:1");
	/* n1's tandemd restarted before the retry: no more fencing. */
	check_step(&p->n[1], in_join(N1), "broadcast:0:1");
	check_step(&p->n[1], in_plain(IN_FENCE_RETRY), "");
	assert_int_equal(role_of(&p->n[1]), ROLE_STANDBY);
}

static void
test_fence_none_promotes_at_once(void **state)
{
	struct election e;
	struct election_state_msg active = {
	    .nodeid = N2, .role = ROLE_ACTIVE, .epoch = 6, .healthy = true};

	(void)state;
	init_synced(&e, N1, true, false, 6);
	meet_peer(&e, N2, &active);
	assert_int_equal(role_of(&e), ROLE_STANDBY);
	check_reason(
	    &e, in_gone(N2, LOSS_NODEDOWN), "promote:1:7 broadcast:0:7", "fencing disabled");
}

static void
test_unhealthy_standby_does_not_fence(void **state)
{
	struct pair *p = *state;

	(void)pstep(p, 1, in_health(false));
	check_step(&p->n[1], in_gone(N1, LOSS_PROCDOWN), "");
	check_step(&p->n[1], in_health(true), "broadcast:0:1 fence:1:1");
}

/* ---- startup grace ----------------------------------------------------- */

static void
test_grace_then_fence_at_once(void **state)
{
	struct election e;

	(void)state;
	init_synced(&e, N2, false, true, 1);
	check_step(&e, in_quorum(true), "");
	/* The peer's node is up, its tandemd is not in the group yet. */
	check_step(&e, in_absent(N1), "arm-grace:1:1");
	/* A second view in the meantime does not re-arm it. */
	check_step(&e, in_absent(N1), "");
	check_step(&e, in_plain(IN_GRACE_OVER), "fence:1:1");
	check_step(&e, in_fence(true), "promote:2:2 broadcast:0:2");
}

static void
test_grace_peer_joins_in_time(void **state)
{
	struct election e;

	(void)state;
	init_synced(&e, N2, false, true, 1);
	check_step(&e, in_quorum(true), "");
	check_step(&e, in_absent(N1), "arm-grace:1:1");
	check_step(&e, in_join(N1), "broadcast:0:1");
	check_step(&e, in_plain(IN_GRACE_OVER), "");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
}

/* ---- no preemption, restarts ------------------------------------------- */

static void
test_old_active_returns_as_standby(void **state)
{
	struct pair *p = *state;

	/* n1 crashes; n2 fences it and takes over at epoch 2. */
	check_step(&p->n[1], in_gone(N1, LOSS_PROCDOWN), "fence:1:1");
	check_step(&p->n[1], in_gone(N1, LOSS_NODEDOWN), "");
	check_step(&p->n[1], in_fence(true), "promote:2:2 broadcast:0:2");
	/* n1 boots with its persisted epoch 1 and rejoins. */
	restart(p, 0, 1);
	pcheck(p, 0, in_quorum(true), "");
	pcheck(p, 0, in_join(N2), "broadcast:0:1");
	pcheck(p, 1, in_join(N1), "broadcast:0:2");
	dcheck(p, 1, "");
	dcheck(p, 0, "save-epoch:2:2");
	assert_roles(p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_true(election_redundant(&p->n[1]));
}

static void
test_restarted_standby_rejoins_as_standby(void **state)
{
	struct pair *p = *state;

	pstep_settle(p, 1, in_plain(IN_SHUTDOWN));
	(void)pstep(p, 0, in_gone(N2, LOSS_LEAVE));
	restart(p, 1, epoch_of(&p->n[1]));
	(void)pstep(p, 1, in_quorum(true));
	(void)pstep(p, 1, in_join(N1));
	pstep_settle(p, 0, in_join(N2));
	assert_roles(p, ROLE_ACTIVE, ROLE_STANDBY);
	assert_int_equal(epoch_of(&p->n[0]), 1);
	assert_true(election_redundant(&p->n[0]));
}

/* ---- switchover -------------------------------------------------------- */

static void
test_switchover_round_trip(void **state)
{
	struct pair *p = *state;

	pcheck(p, 0, in_switchover(0, false), "demote:1:1 broadcast:0:1 switchover-accepted:2:1");
	assert_int_equal(p->n[0].handover_to, N2);
	assert_false(election_redundant(&p->n[0]));
	/* n2 gets the handover and promotes with epoch + 1. */
	dcheck(p, 1, "promote:2:2");
	/* n1 sees the new active: it clears the handover and saves the epoch. */
	dcheck(p, 0, "save-epoch:2:2");
	assert_int_equal(p->n[0].handover_to, 0);
	assert_true(election_redundant(&p->n[0]));
	assert_true(election_redundant(&p->n[1]));

	/* And back, asked on the standby: relayed to the active. */
	pcheck(p, 0, in_switchover(N1, false), "relay-switchover:1:2 switchover-accepted:1:2");
	dcheck(p, 1, "demote:2:2 switchover-accepted:1:2");
	dcheck(p, 0, "promote:1:3");
	dcheck(p, 1, "save-epoch:1:3");
	settle(p);
	assert_roles(p, ROLE_ACTIVE, ROLE_STANDBY);
	assert_int_equal(epoch_of(&p->n[1]), 3);
}

static void
test_switchover_no_op_answers(void **state)
{
	struct pair *p = *state;

	check_reason(&p->n[0], in_switchover(N1, false), "switchover-accepted:1:1", "already");
	check_reason(&p->n[1], in_switchover(N1, false), "switchover-accepted:1:1", "already");
	assert_roles(p, ROLE_ACTIVE, ROLE_STANDBY);
}

static void
test_switchover_refused_peer_unhealthy(void **state)
{
	struct pair *p = *state;

	pair_unhealthy(p, 1);
	check_refused(&p->n[0], in_switchover(0, false), "not healthy");
	check_refused(&p->n[1], in_switchover(N2, false), "not healthy");
	assert_roles(p, ROLE_ACTIVE, ROLE_STANDBY);
}

static void
test_switchover_refused_peer_leaving(void **state)
{
	struct pair *p = *state;

	pstep_settle(p, 1, in_plain(IN_SHUTDOWN));
	check_refused(&p->n[0], in_switchover(0, true), "shutting down");
	assert_int_equal(role_of(&p->n[0]), ROLE_ACTIVE);
}

static void
test_switchover_refused_peer_not_member(void **state)
{
	struct pair *p = *state;

	(void)pstep(p, 0, in_gone(N2, LOSS_LEAVE));
	check_refused(&p->n[0], in_switchover(0, false), "not a member");
	/* The peer joined again but has not said anything yet. */
	(void)pstep(p, 0, in_join(N2));
	check_refused(&p->n[0], in_switchover(0, false), "not a member");
	assert_int_equal(role_of(&p->n[0]), ROLE_ACTIVE);
}

static void
test_switchover_refused_between_standbys(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, 0, 0);
	pair_meet(&p, false);
	settle(&p);
	/* A standby cannot make its standby peer active. */
	check_refused(&p.n[0], in_switchover(N2, false), "not active");
	/* Nor take the role without quorum, unless forced. */
	check_refused(&p.n[0], in_switchover(N1, false), "no quorum");
	/* Forced, it takes the role from its standby peer at once. */
	pcheck(&p, 0, in_switchover(N1, true), "switchover-accepted:1:0 promote:1:1 broadcast:0:1");
	settle(&p);
	assert_roles(&p, ROLE_ACTIVE, ROLE_STANDBY);
}

static void
test_switchover_refused_peer_not_ready(void **state)
{
	struct election e;

	(void)state;
	init_synced(&e, N2, false, true, 0);
	check_step(&e, in_quorum(true), "");
	check_step(&e, in_join(N1), "broadcast:0:0");
	check_refused(&e, in_switchover(N2, false), "not ready");
	assert_int_equal(role_of(&e), ROLE_STANDBY);
}

static void
test_handover_refused_target_unhealthy(void **state)
{
	struct pair *p = *state;

	/* n2 loses carrier; its message is still on the way when n1 hands over. */
	pcheck(p, 1, in_health(false), "broadcast:0:1");
	pcheck(p, 0, in_switchover(0, false), "demote:1:1 broadcast:0:1 switchover-accepted:2:1");
	/* n2 will not take the role without carrier. */
	dcheck(p, 1, "");
	/* n1 hears that n2 is unhealthy: it drops the handover and retakes. */
	dcheck(p, 0, "promote:1:2");
	assert_int_equal(p->n[0].handover_to, 0);
	settle(p);
	assert_roles(p, ROLE_ACTIVE, ROLE_STANDBY);
	assert_int_equal(epoch_of(&p->n[1]), 2);
}

static void
test_forced_handover_to_unhealthy_peer_is_not_stuck(void **state)
{
	struct pair *p = *state;

	pair_unhealthy(p, 1);
	/* --force hands over to a standby without carrier. */
	pcheck(p, 0, in_switchover(0, true), "demote:1:1 broadcast:0:1 switchover-accepted:2:1");
	/* n2 cannot serve and says so: n1 takes the role back. */
	settle(p);
	assert_roles(p, ROLE_ACTIVE, ROLE_STANDBY);
	assert_string_equal(p->log[0], "promote:1:2");
	assert_int_equal(epoch_of(&p->n[1]), 2);
}

static void
test_handover_target_lost(void **state)
{
	struct pair *p = *state;

	(void)pstep(p, 0, in_switchover(0, false));
	/* n2's tandemd dies before it got the handover. */
	check_step(&p->n[0], in_gone(N2, LOSS_PROCDOWN), "fence:2:1");
	assert_int_equal(p->n[0].handover_to, 0);
	check_step(&p->n[0], in_fence(true), "promote:1:2 broadcast:0:2");
}

/* ---- health ------------------------------------------------------------ */

static void
test_carrier_loss_hands_over(void **state)
{
	struct pair *p = *state;

	pcheck(p, 0, in_health(false), "demote:1:1 broadcast:0:1");
	assert_int_equal(p->n[0].handover_to, N2);
	dcheck(p, 1, "promote:2:2");
	settle(p);
	assert_roles(p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_int_equal(p->n[0].handover_to, 0);
	/* n1 is not healthy: not redundant until its carrier is back. */
	assert_false(election_redundant(&p->n[0]));
	assert_false(election_redundant(&p->n[1]));
	pstep_settle(p, 0, in_health(true));
	assert_roles(p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_true(election_redundant(&p->n[1]));
}

static void
test_carrier_loss_without_ready_peer_stays(void **state)
{
	struct pair *p = *state;

	pair_unhealthy(p, 1);
	pcheck(p, 0, in_health(false), "broadcast:0:1");
	assert_int_equal(role_of(&p->n[0]), ROLE_ACTIVE);
	settle(p);
	/* The standby's carrier comes back: now the unhealthy active hands over. */
	pstep_settle(p, 1, in_health(true));
	assert_string_equal(p->log[0], "demote:1:1 save-epoch:2:2");
	assert_string_equal(p->log[1], "promote:2:2");
	assert_roles(p, ROLE_STANDBY, ROLE_ACTIVE);
}

/* ---- corosync, two actives ----------------------------------------------- */

static void
test_corosync_lost_active_demotes(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[0], in_plain(IN_COROSYNC_LOST), "demote:1:1 broadcast:0:1");
	assert_false(election_redundant(&p->n[0]));
	check_step(&p->n[1], in_plain(IN_COROSYNC_LOST), "");
	/* Back, without quorum yet: the standby does nothing. */
	check_step(&p->n[1], in_join(N1), "broadcast:0:1");
	check_step(&p->n[1], in_peer(&p->n[0]), "");
	assert_int_equal(role_of(&p->n[1]), ROLE_STANDBY);
}

/* A pair with fencing off, formed (n1 active), then cut apart: two actives may follow. */
static void
pair_split_unfenced(struct pair *p)
{
	pair_init_as(p, 0, false, 0, 0);
	pair_form(p, ROLE_ACTIVE, ROLE_STANDBY);
	p->connected = false;
	p->allow_two_actives = true;
}

static void
test_two_actives_newer_epoch_stays(void **state)
{
	struct pair p;

	(void)state;
	/* fence = none, a split: both end active, n2 with the newer epoch. */
	pair_split_unfenced(&p);
	check_step(&p.n[0], in_gone(N2, LOSS_NODEDOWN), "");
	check_step(&p.n[1], in_gone(N1, LOSS_NODEDOWN), "promote:2:2 broadcast:0:2");
	/* The split heals. */
	p.connected = true;
	(void)pstep(&p, 0, in_join(N2));
	(void)pstep(&p, 1, in_join(N1));
	/* The loser must know the winner's epoch: it persists it. */
	dcheck(&p, 0, "demote:1:1 save-epoch:2:2");
	settle(&p);
	assert_roles(&p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_int_equal(epoch_of(&p.n[0]), 2);
	/* Its next promotion is 3. */
	check_step(&p.n[0], in_gone(N2, LOSS_LEAVE), "promote:1:3 broadcast:0:3");
}

/*
 * fence = none, a glitch shorter than corosync's token timeout: each
 * takes the other for hung, n2 promotes, and the group membership never
 * changes.  Their states arriving again must count, or the two actives
 * never meet.
 */
static void
test_two_actives_after_hang_meet_again(void **state)
{
	struct pair p;

	(void)state;
	pair_split_unfenced(&p);
	check_step(&p.n[0], in_plain(IN_PEER_HUNG), "");
	check_step(&p.n[1], in_plain(IN_PEER_HUNG), "promote:2:2 broadcast:0:2");
	assert_roles(&p, ROLE_ACTIVE, ROLE_ACTIVE);
	/* The glitch is over: no join, only their states again. */
	p.connected = true;
	(void)pstep(&p, 1, in_peer(&p.n[0]));
	(void)pstep(&p, 0, in_peer(&p.n[1]));
	settle(&p);
	assert_roles(&p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_int_equal(epoch_of(&p.n[0]), 2);
}

/* With fencing, a peer taken for hung stays lost until it rejoins. */
static void
test_hung_peer_heard_again_stays_lost_with_fencing(void **state)
{
	struct pair *p = *state;

	check_step(&p->n[0], in_plain(IN_PEER_HUNG), "fence:2:1");
	check_step(&p->n[0], in_fence(true), "");
	check_step(&p->n[0], in_peer(&p->n[1]), "");
	assert_false(p->n[0].peer == PEER_MEMBER);
}

static void
test_two_actives_same_epoch_primary_stays(void **state)
{
	struct election e;
	struct election_state_msg primary = {
	    .nodeid = N1, .role = ROLE_ACTIVE, .epoch = 3, .healthy = true, .primary = true};

	(void)state;
	/* n2 active at epoch 3 meets n1, the primary, also active at 3. */
	init_synced(&e, N2, false, true, 2);
	meet_peer(&e, N1, NULL);
	check_step(&e, in_gone(N1, LOSS_LEAVE), "promote:2:3 broadcast:0:3");
	check_step(&e, in_join(N1), "broadcast:0:3");
	check_step(&e, in_msg(primary), "demote:2:3 broadcast:0:3");
	check_state(&e, ROLE_STANDBY, 3);
}

/* ---- names --------------------------------------------------------------- */

/* ---- data: rule 2 ------------------------------------------------------ */

static struct election_input
in_data(uint64_t epoch, uint64_t seq, bool in_sync)
{
	struct election_input in = {.type = IN_DATA};

	in.u.data.epoch = epoch;
	in.u.data.seq = seq;
	in.u.data.in_sync = in_sync;
	return in;
}

/* A standby that is still syncing does not promote when the active leaves or is fenced. */
static void
test_data_syncing_standby_never_promotes(void **state)
{
	struct pair p;

	(void)state;
	pair_up(&p);
	pstep_settle(&p, 1, in_data(1, 3, false));
	assert_false(p.n[0].peer_msg.in_sync);
	/* The active is not redundant with a syncing standby. */
	assert_false(election_redundant(&p.n[0]));

	check_msg(&p.n[1], in_gone(N1, LOSS_LEAVE), "");
	assert_int_equal(role_of(&p.n[1]), ROLE_STANDBY);

	pair_up(&p);
	pstep_settle(&p, 1, in_data(1, 3, false));
	check_msg(&p.n[1], in_gone(N1, LOSS_PROCDOWN), "fence:1:1");
	check_msg(&p.n[1], in_fence(true), "");
	assert_int_equal(role_of(&p.n[1]), ROLE_STANDBY);
	/* Caught up (say, from a copy): it may take the role now. */
	check_msg(&p.n[1], in_data(1, 3, true), "promote:2:2");
}

/* An admin's --force promotes a syncing standby: the admin accepts what is missing. */
static void
test_data_force_promotes_syncing(void **state)
{
	struct pair p;

	(void)state;
	pair_up(&p);
	pstep_settle(&p, 1, in_data(1, 3, false));
	check_msg(&p.n[1], in_gone(N1, LOSS_NODEDOWN), "arm-fence-delay:1:1");
	check_msg(&p.n[1], in_quorum(false), "");
	check_msg(&p.n[1], in_switchover(N2, true), "switchover-accepted:2:1 fence:1:1");
	check_msg(&p.n[1], in_fence(true), "promote:2:2");
}

/* A switchover to a standby that is not in sync is refused, unless forced. */
static void
test_data_switchover_to_syncing_refused(void **state)
{
	struct pair p;

	(void)state;
	pair_up(&p);
	pstep_settle(&p, 1, in_data(1, 3, false));
	check_refused(&p.n[0], in_switchover(N2, false), "not in sync");
	assert_int_equal(role_of(&p.n[0]), ROLE_ACTIVE);
}

/* A handover is taken only once the standby has the data the active demoted with. */
static void
test_data_handover_waits_for_frames(void **state)
{
	struct pair p;

	(void)state;
	pair_up(&p);
	/* The active committed up to seq 10 and the standby has applied 8. */
	pstep_settle(&p, 1, in_data(1, 8, true));
	(void)pstep(&p, 0, in_data(1, 10, true));
	(void)pstep(&p, 0, in_switchover(N2, false));
	settle(&p);
	assert_roles(&p, ROLE_STANDBY, ROLE_STANDBY);
	/* Frames 9 and 10 arrive: now it takes the role. */
	pstep_settle(&p, 1, in_data(1, 10, true));
	assert_roles(&p, ROLE_STANDBY, ROLE_ACTIVE);
	assert_int_equal(epoch_of(&p.n[1]), 2);
}

/* The active's data epoch rose at its promotion with no frame since: the same data. */
static void
test_data_handover_epoch_without_frames(void **state)
{
	struct pair p;

	(void)state;
	pair_up(&p);
	pstep_settle(&p, 1, in_data(0, 0, true));
	(void)pstep(&p, 0, in_data(1, 0, true));
	(void)pstep(&p, 0, in_switchover(N2, false));
	settle(&p);
	assert_roles(&p, ROLE_STANDBY, ROLE_ACTIVE);
}

/* Two standbys: the newer data wins over the primary identity. */
static void
test_data_newer_data_wins_cold_start(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, 3, 3);
	/* n2 (not primary) holds frames of epoch 3 up to 40, n1 up to 25. */
	(void)pstep(&p, 0, in_data(3, 25, false));
	(void)pstep(&p, 1, in_data(3, 40, false));
	pair_form(&p, ROLE_STANDBY, ROLE_ACTIVE);

	/* A newer data epoch beats a longer history of an older one (a diverged node). */
	pair_init(&p, 4, 4);
	(void)pstep(&p, 0, in_data(3, 90, false));
	(void)pstep(&p, 1, in_data(4, 41, false));
	pair_form(&p, ROLE_STANDBY, ROLE_ACTIVE);
}

/* When may the active acknowledge writes alone? */
static void
test_data_ack_alone(void **state)
{
	struct pair p;

	(void)state;
	pair_up(&p);
	assert_false(election_may_ack_alone(&p.n[1], 0, 0));
	/* A standby in sync can be promoted: no. */
	assert_false(election_may_ack_alone(&p.n[0], 0, 0));
	/* It declared itself out of sync at seq 7. */
	pstep_settle(&p, 1, in_data(1, 7, false));
	assert_true(election_may_ack_alone(&p.n[0], 1, 7));
	assert_true(election_may_ack_alone(&p.n[0], 0, 9));
	/* ...but that state is older than the stream's last in-sync marker at 9. */
	assert_false(election_may_ack_alone(&p.n[0], 1, 9));
	assert_false(election_may_ack_alone(&p.n[0], 2, 3));

	/* Lost: not until it is fenced. */
	pstep_settle(&p, 1, in_data(1, 9, true));
	check_msg(&p.n[0], in_gone(N2, LOSS_NODEDOWN), "fence:2:1");
	assert_false(election_may_ack_alone(&p.n[0], 0, 0));
	check_msg(&p.n[0], in_fence(true), "");
	assert_true(election_may_ack_alone(&p.n[0], 0, 0));

	/* Left cleanly: yes. */
	pair_up(&p);
	check_msg(&p.n[0], in_gone(N2, LOSS_LEAVE), "");
	assert_true(election_may_ack_alone(&p.n[0], 0, 0));
}

/* A standby announces a change of its data; the active's position goes with its next state. */
static void
test_data_announced(void **state)
{
	struct pair p;
	struct election_state_msg m;

	(void)state;
	pair_up(&p);
	pcheck(&p, 1, in_data(1, 5, true), "broadcast:0:1");
	pcheck(&p, 0, in_data(1, 6, true), "");
	election_msg(&p.n[0], &m);
	assert_int_equal(m.seq, 6);
	assert_int_equal(m.data_epoch, 1);
	assert_true(m.in_sync);
	/* Nothing changed: nothing said. */
	pcheck(&p, 1, in_data(1, 5, true), "");
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(election_role_name(ROLE_ACTIVE), "active");
	assert_string_equal(election_role_name(ROLE_STANDBY), "standby");
	assert_string_equal(election_peer_name(PEER_FENCED), "fenced");
	assert_string_equal(election_peer_name(PEER_UNKNOWN), "unknown");
	for (int t = ACT_PROMOTE; t <= ACT_EXIT; t++)
		assert_string_not_equal(election_action_name((enum election_action_type)t), "?");
}

/* ---- a random walk of the whole world ------------------------------------ */

#define SIM_Q 512
#define SIM_TRACE 48
/* Writes one walk may commit. */
#define SIM_W 4096

struct simnode {
	struct election e;
	uint32_t id;
	/* The machine: powered (corosync runs), tandemd, hung, VIP, carrier. */
	bool powered;
	bool running;
	bool hung;
	bool vip;
	bool carrier;
	/* corosync's two_node wait_for_all: satisfied since power on. */
	bool wfa;
	bool left_clean;
	uint64_t disk_epoch;
	/* The last membership/quorum view handed to tandemd. */
	bool view_valid;
	bool view_member;
	bool view_up;
	bool view_quorate;
	bool t_grace;
	bool t_delay;
	bool t_retry;
	bool fence_running;
	/* Its last promotion went on a state its peer had already replaced. */
	bool stale_promotion;
	uint32_t fence_target;
	struct election_input inbox[SIM_Q];
	size_t n;

	/*
	 * Its database: the ids of the writes it holds, in commit order (ids
	 * rise, so the array is sorted), and the data epoch.  It survives
	 * crashes and power loss.
	 */
	uint32_t w[SIM_W];
	size_t len;
	uint64_t data_epoch;
	/* replicate's view: this standby holds every acknowledged write. */
	bool in_sync;
	/* A resync by snapshot has begun for this standby. */
	bool syncing;
	/* As the sender: the stream to the peer is live, since this marker. */
	bool streaming;
	uint64_t marker_epoch;
	uint64_t marker_seq;
	/* As the active: w[0..answered) have had their commit answered (or predate it). */
	size_t answered;
};

struct sim {
	struct simnode n[2];
	bool connected;
	/* Each tandemd start gets the next one. */
	uint32_t incarnations;
	uint64_t rng;
	unsigned long steps;
	char trace[SIM_TRACE][768];
	unsigned int tn;
	char failure[200];
	unsigned long promotions;
	unsigned long fences;
	unsigned long handovers;
	/* Two actives from a promotion on a stale view of the peer (must stay 0). */
	unsigned long known_races;
	/* Rule 2: every write whose commit was acknowledged to its client. */
	uint32_t next_write;
	uint8_t acked[SIM_W / 8];
	unsigned long writes_acked;
	unsigned long acked_alone;
	unsigned long resyncs;
	/* Faults (carrier, crashes, splits, hangs) ten times rarer: the pair mostly works. */
	bool calm;
};

static uint32_t
rnd(struct sim *s)
{
	/* xorshift64*: deterministic for a given seed. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (uint32_t)((s->rng * 2685821657736338717ull) >> 32);
}

static void
sim_fail(struct sim *s, const char *why)
{
	if (s->failure[0] == '\0')
		(void)snprintf(s->failure, sizeof(s->failure), "step %lu: %s", s->steps, why);
}

static void
sim_trace(struct sim *s, int i, const char *what, const struct acts *r)
{
	char *line = s->trace[s->tn++ % SIM_TRACE];

	(void)snprintf(line, sizeof(s->trace[0]),
	    "%6lu n%u %-28s -> %s [%s/%s] data %llu:%zu%s/%llu:%zu%s", s->steps, s->n[i].id, what,
	    r ? r->text : "", s->n[0].running ? election_role_name(s->n[0].e.role) : "down",
	    s->n[1].running ? election_role_name(s->n[1].e.role) : "down",
	    (unsigned long long)s->n[0].data_epoch, s->n[0].len, s->n[0].in_sync ? "+" : "",
	    (unsigned long long)s->n[1].data_epoch, s->n[1].len, s->n[1].in_sync ? "+" : "");
}

static void
sim_push(struct sim *s, int i, const struct election_input *in)
{
	struct simnode *me = &s->n[i];

	if (me->n >= SIM_Q) {
		sim_fail(s, "inbox overflow");
		return;
	}
	me->inbox[me->n++] = *in;
}

/* tandemd stops (crash or exit); a crash leaves its VIP behind. */
static void
sim_stop_process(struct simnode *me)
{
	me->running = false;
	me->hung = false;
	me->t_grace = me->t_delay = me->t_retry = false;
	me->fence_running = false;
	me->n = 0;
	me->streaming = false;
}

/* The fence agent (or the admin) cut the power: nothing is left. */
static void
sim_power_off(struct simnode *me)
{
	sim_stop_process(me);
	me->powered = false;
	me->vip = false;
	me->wfa = false;
	me->left_clean = false;
}

/* Pushes the membership and quorum views that changed since last time. */
static void
sim_views(struct sim *s)
{
	if (s->connected && s->n[0].powered && s->n[1].powered)
		s->n[0].wfa = s->n[1].wfa = true;
	for (int i = 0; i < 2; i++) {
		struct simnode *me = &s->n[i];
		struct simnode *peer = &s->n[!i];
		bool up = peer->powered && s->connected;
		bool member = up && peer->running;
		bool quorate = me->powered && me->wfa;

		if (!me->running)
			continue;
		if (!me->view_valid || me->view_quorate != quorate) {
			struct election_input in = in_quorum(quorate);

			sim_push(s, i, &in);
		}
		if (!me->view_valid || me->view_member != member || me->view_up != up) {
			enum loss_reason reason = LOSS_NONE;
			struct election_input in;

			if (!member)
				reason = !up ? LOSS_NODEDOWN
				             : (peer->left_clean ? LOSS_LEAVE : LOSS_PROCDOWN);
			in = in_membership(peer->id, member, up, reason);
			sim_push(s, i, &in);
		}
		me->view_valid = true;
		me->view_quorate = quorate;
		me->view_member = member;
		me->view_up = up;
	}
}

/*
 * An active that counts: its node has power (it was not fenced) and its
 * tandemd, hung or not, believes it is active in a quorate pair.
 */
static bool
sim_counts_as_active(const struct simnode *me)
{
	return me->powered && me->running && me->e.role == ROLE_ACTIVE && me->e.quorate;
}

/*
 * Does me decide on a state its peer has already replaced?  That is the
 * race between two standbys that only acknowledged states close.  A peer
 * whose tandemd crashed right after promoting still counts while its VIP
 * is up: me decides on the state before that promotion, and the crash
 * report queued behind it makes me fence the peer next.
 */
static bool
sim_view_stale(const struct simnode *me, const struct simnode *peer)
{
	struct election_state_msg now;
	const struct election_state_msg *seen = &me->e.peer_msg;

	if (!me->e.peer_msg_valid || (!peer->running && !peer->vip))
		return false;
	election_msg(&peer->e, &now);
	return seen->role != now.role || seen->epoch != now.epoch || seen->healthy != now.healthy ||
	       seen->leaving != now.leaving || seen->handover_to != now.handover_to;
}

/* An active (or the VIP its crashed tandemd left) from a stale promotion. */
static bool
sim_stale_active(const struct simnode *me)
{
	return me->stale_promotion && (me->running || me->vip);
}

/* ---- the data, as replicate and the agent handle it ---- */

static bool
sim_holds(const struct simnode *me, uint32_t id)
{
	size_t lo = 0, hi = me->len;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (me->w[mid] == id)
			return true;
		if (me->w[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Does b hold a prefix of a's history (b is behind a, not diverged)? */
static bool
sim_prefix(const struct simnode *b, const struct simnode *a)
{
	return b->len <= a->len && memcmp(b->w, a->w, b->len * sizeof(b->w[0])) == 0;
}

/* to gets from's data (the frames it lacks, or a whole snapshot). */
static void
sim_copy(struct simnode *to, const struct simnode *from)
{
	memcpy(to->w, from->w, from->len * sizeof(from->w[0]));
	to->len = from->len;
	if (from->data_epoch > to->data_epoch || !sim_prefix(to, from))
		to->data_epoch = from->data_epoch;
}

static bool
sim_peer_active(const struct simnode *me)
{
	return me->e.peer == PEER_MEMBER && me->e.peer_msg_valid &&
	       me->e.peer_msg.role == ROLE_ACTIVE;
}

static void sim_input(struct sim *s, int i, struct election_input in, const char *what);

/* The agent's repl_data: tell the election where the data stands. */
static void
sim_data(struct sim *s, int i, bool force_position)
{
	struct simnode *me = &s->n[i];
	struct election_input in = {.type = IN_DATA};

	if (!me->running || me->hung || me->e.role == ROLE_ACTIVE)
		return;
	in.u.data.in_sync = me->in_sync;
	in.u.data.epoch = me->data_epoch;
	in.u.data.seq = me->len;
	if (!force_position && sim_peer_active(me) && me->in_sync == me->e.in_sync) {
		in.u.data.epoch = me->e.data_epoch;
		in.u.data.seq = me->e.seq;
	}
	if (in.u.data.in_sync == me->e.in_sync && in.u.data.epoch == me->e.data_epoch &&
	    in.u.data.seq == me->e.seq)
		return;
	sim_input(s, i, in, in.u.data.in_sync ? "data: in sync" : "data: out of sync");
}

/* The stream between both tandemds carries bytes: connected, both alive. */
static bool
sim_link_up(const struct sim *s)
{
	return s->connected && s->n[0].running && !s->n[0].hung && s->n[1].running && !s->n[1].hung;
}

/*
 * One turn of the stream from node i.  An active with a standby that
 * follows it (the standby connects once it sees it active) catches the
 * standby up, or resyncs it by snapshot in two turns (out of sync at the
 * first); a live stream carries each new write.  A node that demoted
 * keeps sending what it committed over a live stream.
 */
static void
sim_stream(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];
	struct simnode *peer = &s->n[!i];

	if (!sim_link_up(s) || peer->e.role != ROLE_STANDBY)
		return;
	if (me->e.role == ROLE_STANDBY) {
		if (!me->streaming || !sim_prefix(peer, me) || peer->len == me->len)
			return;
		sim_copy(peer, me);
		sim_data(s, !i, false);
		return;
	}
	if (me->streaming) {
		if (peer->len < me->len && sim_prefix(peer, me))
			sim_copy(peer, me);
		return;
	}
	if (!sim_peer_active(peer))
		return;
	if (!sim_prefix(peer, me) && !peer->syncing) {
		/* SNAPSHOT_BEGIN: the standby is out of sync until it is done. */
		peer->syncing = true;
		peer->in_sync = false;
		sim_data(s, !i, false);
		return;
	}
	if (peer->syncing)
		s->resyncs++;
	sim_copy(peer, me);
	peer->syncing = false;
	me->streaming = true;
	me->marker_epoch = me->data_epoch;
	me->marker_seq = me->len;
	peer->in_sync = true;
	sim_data(s, !i, false);
}

/* The stream stops when the link does, or when the peer takes the role. */
static void
sim_links(struct sim *s)
{
	for (int i = 0; i < 2; i++)
		if (s->n[i].streaming && (!sim_link_up(s) || s->n[!i].e.role == ROLE_ACTIVE))
			s->n[i].streaming = false;
}

/* A standby that cannot reach the active for [replication] timeout declares itself out of sync. */
static void
sim_repl_timeout(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];

	if (!me->running || me->hung || me->e.role != ROLE_STANDBY || !me->in_sync ||
	    !sim_peer_active(me) || s->n[!i].streaming)
		return;
	me->in_sync = false;
	sim_trace(s, i, "replication timeout", NULL);
	sim_data(s, i, false);
}

/* An application commits one write on the active node i. */
static void
sim_write(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];

	if (!me->running || me->hung || me->e.role != ROLE_ACTIVE || me->len == SIM_W ||
	    s->next_write + 1 >= SIM_W)
		return;
	me->w[me->len++] = ++s->next_write;
}

/*
 * The active answers commits in order: once the standby of a live stream
 * has the write, or at once while the election says it may acknowledge
 * alone.
 */
static void
sim_answer(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];
	struct simnode *peer = &s->n[!i];
	bool alone;

	if (!me->running || me->hung || me->e.role != ROLE_ACTIVE)
		return;
	alone = election_may_ack_alone(&me->e, me->marker_epoch, me->marker_seq);
	while (me->answered < me->len) {
		uint32_t id = me->w[me->answered];
		bool acked_by_peer = me->streaming && sim_link_up(s) && sim_holds(peer, id);

		if (!acked_by_peer && !alone)
			break;
		s->acked[id / 8] |= (uint8_t)(1u << (id % 8));
		s->writes_acked++;
		if (!acked_by_peer)
			s->acked_alone++;
		me->answered++;
	}
}

/* Rule 2, checked at every promotion: the new active holds every acknowledged write. */
static void
sim_check_data(struct sim *s, const struct simnode *me)
{
	for (uint32_t id = 1; id <= s->next_write; id++)
		if ((s->acked[id / 8] & (1u << (id % 8))) && !sim_holds(me, id)) {
			sim_fail(s, "promoted without an acknowledged write");
			return;
		}
}

/* Rule 1, checked after every event. */
static void
sim_check(struct sim *s)
{
	const char *why = NULL;
	bool known;

	if (sim_counts_as_active(&s->n[0]) && sim_counts_as_active(&s->n[1]))
		why = "two quorate, unfenced actives";
	/* A crashed tandemd leaves its VIP up: that must be fenced first too. */
	else if (s->n[0].vip && s->n[1].vip)
		why = "both nodes hold the VIP";
	known = why != NULL && (sim_stale_active(&s->n[0]) || sim_stale_active(&s->n[1]));
	/*
	 * Two standbys that each decided on an older state of the other used
	 * to promote both; states now answer each other (peer_saw_us), and
	 * the walk counts such promotions only to show they are gone.
	 */
	if (known)
		s->known_races++;
	if (why != NULL)
		sim_fail(s, why);
}

/* Carries out the actions of node i, as tandemd would. */
static void
sim_apply(struct sim *s, int i, const struct acts *r)
{
	struct simnode *me = &s->n[i];
	struct simnode *peer = &s->n[!i];

	for (size_t k = 0; k < r->n; k++) {
		const struct election_action *a = &r->a[k];
		struct election_input in;

		switch (a->type) {
		case ACT_PROMOTE:
			/*
			 * Above every epoch this node persisted, its own and
			 * the ones it adopted from an active.  An epoch the
			 * node never heard of (its peer promoted while this one
			 * was down, then died) it cannot rise above.
			 */
			if (a->epoch <= me->disk_epoch)
				sim_fail(s, "a promotion did not raise the epoch");
			me->disk_epoch = a->epoch;
			me->stale_promotion = sim_view_stale(me, peer);
			me->vip = true;
			sim_check_data(s, me);
			/* replicate_activate: the epoch in the data, old streams closed. */
			me->data_epoch = a->epoch;
			me->streaming = false;
			peer->streaming = false;
			me->answered = me->len;
			me->marker_epoch = me->marker_seq = 0;
			s->promotions++;
			if (strstr(a->reason, "handover") != NULL)
				s->handovers++;
			sim_check(s);
			break;
		case ACT_DEMOTE:
			me->vip = false;
			me->stale_promotion = false;
			break;
		case ACT_BROADCAST:
			if (s->connected && peer->running) {
				in = in_peer(&me->e);
				sim_push(s, !i, &in);
			}
			break;
		case ACT_SAVE_EPOCH:
			if (a->epoch < me->disk_epoch)
				sim_fail(s, "saved an older epoch");
			me->disk_epoch = a->epoch;
			break;
		case ACT_FENCE:
			if (me->fence_running)
				sim_fail(s, "fence while a fence runs");
			me->fence_running = true;
			me->fence_target = a->node;
			s->fences++;
			break;
		case ACT_ARM_FENCE_DELAY:
			me->t_delay = true;
			break;
		case ACT_ARM_FENCE_RETRY:
			me->t_retry = true;
			break;
		case ACT_ARM_GRACE:
			me->t_grace = true;
			break;
		case ACT_RELAY_SWITCHOVER:
			if (s->connected && peer->running) {
				in = in_switchover(a->node, false);
				sim_push(s, !i, &in);
			}
			break;
		case ACT_SWITCHOVER_ACCEPTED:
		case ACT_SWITCHOVER_REFUSED:
			break;
		case ACT_EXIT:
			if (me->vip)
				sim_fail(s, "exited holding the VIP");
			sim_stop_process(me);
			me->left_clean = true;
			break;
		}
	}
}

static void
sim_input(struct sim *s, int i, struct election_input in, const char *what)
{
	struct acts r;

	/* agent_feed: the active's position is read afresh before each step. */
	if (s->n[i].e.role == ROLE_ACTIVE) {
		s->n[i].e.data_epoch = s->n[i].data_epoch;
		s->n[i].e.seq = s->n[i].len;
	}
	r = step(&s->n[i].e, &in);

	sim_trace(s, i, what, &r);
	sim_apply(s, i, &r);
}

static void
sim_start(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];

	election_init(&me->e, me->id, i == 0, true, me->disk_epoch);
	election_set_incarnation(&me->e, ++s->incarnations);
	/* repl_start: the position from the database, out of sync until streamed to. */
	me->e.data_epoch = me->data_epoch;
	me->e.seq = me->len;
	me->in_sync = false;
	me->syncing = false;
	me->streaming = false;
	me->answered = me->len;
	me->running = true;
	me->hung = false;
	me->left_clean = false;
	/* tandemd drops a VIP left behind by a crash before anything else. */
	me->vip = false;
	me->stale_promotion = false;
	me->view_valid = false;
	me->n = 0;
	sim_trace(s, i, "tandemd starts", NULL);
	sim_input(s, i, in_health(me->carrier), "health (start)");
}

static const char *
input_name(const struct election_input *in)
{
	switch (in->type) {
	case IN_MEMBERSHIP:
		return in->u.membership.peer_member               ? "membership: peer joined"
		       : in->u.membership.reason == LOSS_LEAVE    ? "membership: peer left"
		       : in->u.membership.reason == LOSS_PROCDOWN ? "membership: peer procdown"
		                                                  : "membership: peer nodedown";
	case IN_QUORUM:
		return in->u.quorate ? "quorate" : "not quorate";
	case IN_PEER_STATE:
		return in->u.peer.role == ROLE_ACTIVE ? "peer state: active"
		                                      : "peer state: standby";
	case IN_HEALTH:
		return in->u.healthy ? "carrier up" : "carrier down";
	case IN_PEER_HUNG:
		return "peer hung";
	case IN_GRACE_OVER:
		return "grace over";
	case IN_FENCE_DELAY_OVER:
		return "fence delay over";
	case IN_FENCE_RESULT:
		return in->u.fence_ok ? "fence ok" : "fence failed";
	case IN_FENCE_RETRY:
		return "fence retry";
	case IN_SWITCHOVER:
		return "switchover";
	case IN_SHUTDOWN:
		return "shutdown";
	case IN_COROSYNC_LOST:
		return "corosync lost";
	case IN_DATA:
		return in->u.data.in_sync ? "data: in sync" : "data: out of sync";
	}
	return "?";
}

static void
sim_deliver(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];
	struct election_input in;

	if (!me->running || me->hung || me->n == 0)
		return;
	in = me->inbox[0];
	me->n--;
	memmove(&me->inbox[0], &me->inbox[1], me->n * sizeof(me->inbox[0]));
	/* on_message: a peer that is not active may decide on our exact position. */
	if ((in.type == IN_PEER_STATE || in.type == IN_SWITCHOVER) &&
	    in.u.peer.role != ROLE_ACTIVE && in.type == IN_PEER_STATE)
		sim_data(s, i, true);
	sim_input(s, i, in, input_name(&in));
}

/* A split may lose the messages still in flight; the rest stays in order. */
static void
sim_drop_messages(struct simnode *me)
{
	size_t k = 0;

	for (size_t j = 0; j < me->n; j++) {
		if (me->inbox[j].type == IN_PEER_STATE || me->inbox[j].type == IN_SWITCHOVER)
			continue;
		me->inbox[k++] = me->inbox[j];
	}
	me->n = k;
}

static void
sim_fence_done(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];
	bool ok = rnd(s) % 10 < 7;
	struct election_input in = in_fence(ok);

	if (!me->running || me->hung || !me->fence_running)
		return;
	me->fence_running = false;
	if (ok) {
		struct simnode *target = me->fence_target == s->n[0].id ? &s->n[0] : &s->n[1];

		if (target == me) {
			sim_fail(s, "fenced itself");
			return;
		}
		sim_trace(s, i, "fence agent powers peer off", NULL);
		sim_power_off(target);
		sim_views(s);
	}
	/* The result may come before or after the membership change. */
	if (rnd(s) % 2)
		sim_push(s, i, &in);
	else
		sim_input(s, i, in, ok ? "fence ok" : "fence failed");
}

static void
sim_timer(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];
	uint32_t which = rnd(s) % 3;

	if (!me->running || me->hung)
		return;
	if (which == 0 && me->t_grace) {
		me->t_grace = false;
		sim_input(s, i, in_plain(IN_GRACE_OVER), "grace over");
	} else if (which == 1 && me->t_delay) {
		me->t_delay = false;
		sim_input(s, i, in_plain(IN_FENCE_DELAY_OVER), "fence delay over");
	} else if (which == 2 && me->t_retry) {
		me->t_retry = false;
		sim_input(s, i, in_plain(IN_FENCE_RETRY), "fence retry");
	}
}

/* The VIP interface's carrier flips; tandemd hears it in order with the rest. */
static void
sim_carrier(struct sim *s, int i)
{
	struct simnode *me = &s->n[i];
	struct election_input in;

	me->carrier = !me->carrier;
	in = in_health(me->carrier);
	if (me->running)
		sim_push(s, i, &in);
}

static void
sim_event(struct sim *s)
{
	uint32_t r = rnd(s) % 1150;
	int i = (int)(rnd(s) % 2);
	struct simnode *me = &s->n[i];
	struct simnode *peer = &s->n[!i];
	bool live = me->running && !me->hung;

	/* A fault skipped in a calm walk delivers a message instead. */
	if (s->calm && r >= 450 && r < 800 && rnd(s) % 10 != 0)
		r = 0;
	if (r < 450) {
		sim_deliver(s, i);
	} else if (r < 540) {
		sim_carrier(s, i);
	} else if (r < 580) {
		uint32_t to = (uint32_t)(rnd(s) % 3);

		if (live)
			sim_input(s, i, in_switchover(to == 0 ? 0 : s->n[to - 1].id, false),
			    "admin switchover");
	} else if (r < 595) {
		if (live)
			sim_input(s, i, in_plain(IN_SHUTDOWN), "SIGTERM");
	} else if (r < 610) {
		if (me->running) {
			sim_trace(s, i, "tandemd crashes", NULL);
			sim_stop_process(me);
		}
	} else if (r < 680) {
		if (me->powered && !me->running)
			sim_start(s, i);
	} else if (r < 720) {
		if (!me->powered) {
			me->powered = true;
			sim_trace(s, i, "powers on", NULL);
		}
	} else if (r < 740) {
		s->connected = !s->connected;
		sim_trace(s, i, s->connected ? "network heals" : "network splits", NULL);
		if (!s->connected && rnd(s) % 2) {
			sim_drop_messages(&s->n[0]);
			sim_drop_messages(&s->n[1]);
		}
	} else if (r < 760) {
		if (me->running) {
			me->hung = !me->hung;
			sim_trace(s, i, me->hung ? "tandemd hangs" : "tandemd resumes", NULL);
		}
	} else if (r < 800) {
		/* Heartbeats stop while the peer hangs (rarely, just slow). */
		if (live && me->view_member && (peer->hung || rnd(s) % 8 == 0))
			sim_input(s, i, in_plain(IN_PEER_HUNG), "peer hung");
	} else if (r < 900) {
		sim_timer(s, i);
	} else if (r < 1000) {
		sim_fence_done(s, i);
	} else if (r < 1060) {
		sim_write(s, i);
	} else if (r < 1130) {
		sim_stream(s, i);
	} else {
		sim_repl_timeout(s, i);
	}
	sim_views(s);
	sim_links(s);
	/* The stream is fast next to everything else: it keeps up. */
	sim_stream(s, 0);
	sim_stream(s, 1);
	sim_links(s);
	sim_answer(s, 0);
	sim_answer(s, 1);
	sim_check(s);
}

static void
sim_dump(const struct sim *s)
{
	fprintf(stderr, "# %s\n# last events:\n", s->failure);
	for (unsigned int k = 0; k < SIM_TRACE; k++) {
		const char *line = s->trace[(s->tn + k) % SIM_TRACE];

		if (line[0] != '\0')
			fprintf(stderr, "#   %s\n", line);
	}
}

/* What every seed of a walk did, added up. */
struct walk_totals {
	unsigned long promotions;
	unsigned long fences;
	unsigned long handovers;
	unsigned long known_races;
	unsigned long writes_acked;
	unsigned long acked_alone;
	unsigned long resyncs;
};

static void
sim_run(uint64_t seed, unsigned long steps, bool calm, struct walk_totals *t)
{
	static struct sim s;

	memset(&s, 0, sizeof(s));
	s.rng = seed;
	s.calm = calm;
	s.connected = true;
	for (int i = 0; i < 2; i++) {
		s.n[i].id = id_of(i);
		s.n[i].powered = true;
		s.n[i].carrier = true;
	}
	for (s.steps = 0; s.steps < steps && s.failure[0] == '\0'; s.steps++)
		sim_event(&s);
	if (s.failure[0] != '\0') {
		fprintf(stderr, "# seed %llu\n", (unsigned long long)seed);
		sim_dump(&s);
		fail_msg("%s (seed %llu)", s.failure, (unsigned long long)seed);
	}
	t->promotions += s.promotions;
	t->fences += s.fences;
	t->handovers += s.handovers;
	t->known_races += s.known_races;
	t->writes_acked += s.writes_acked;
	t->acked_alone += s.acked_alone;
	t->resyncs += s.resyncs;
}

static void
test_random_walk_one_active(void **state)
{
	struct walk_totals t = {0};
	unsigned int seeds = 40;

	(void)state;
	for (uint64_t seed = 1; seed <= seeds; seed++)
		sim_run(seed * 0x9e3779b97f4a7c15ull, 40000, seed % 2 == 0, &t);
	fprintf(stderr,
	    "# %lu promotions, %lu fences, %lu handovers, %lu races, %lu writes acknowledged "
	    "(%lu alone), %lu resyncs in %u walks\n",
	    t.promotions, t.fences, t.handovers, t.known_races, t.writes_acked, t.acked_alone,
	    t.resyncs, seeds);
	/* The walks must have exercised the interesting paths. */
	assert_true(t.promotions > 10 * seeds);
	assert_true(t.fences > 5 * seeds);
	assert_true(t.handovers > seeds);
	assert_true(t.writes_acked > 20 * seeds);
	assert_true(t.acked_alone > seeds);
	assert_true(t.resyncs > seeds / 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cold_start_primary_wins),
	    cmocka_unit_test(test_cold_start_primary_with_higher_id_wins),
	    cmocka_unit_test(test_cold_start_newer_epoch_beats_identity),
	    cmocka_unit_test(test_cold_start_unhealthy_primary_loses),
	    cmocka_unit_test(test_cold_start_needs_quorum),
	    cmocka_unit_test(test_lone_node_waits_for_all),
	    cmocka_unit_test(test_lone_node_quorate_peer_gone_again),
	    cmocka_unit_test(test_stale_state_from_before_restart_ignored),
	    cmocka_unit_test(test_crossing_decisions_one_active),
	    cmocka_unit_test(test_crossing_decisions_legacy_peer),
	    cmocka_unit_test(test_lone_node_switchover_refused_without_force),
	    cmocka_unit_test(test_lone_node_force_fences_then_promotes),
	    cmocka_unit_test(test_lone_node_force_failed_fence_stays_standby),
	    cmocka_unit_test(test_lone_node_force_fence_none),
	    cmocka_unit_test(test_no_promotion_without_quorum),
	    cmocka_unit_test_setup(test_quorum_lost_active_demotes, setup_pair_up),
	    cmocka_unit_test_setup(test_promote_after_clean_leave, setup_pair_up),
	    cmocka_unit_test_setup(test_sigterm_active_hands_over, setup_pair_up),
	    cmocka_unit_test_setup(test_sigterm_active_without_ready_standby, setup_pair_up),
	    cmocka_unit_test_setup(test_sigterm_standby_just_leaves, setup_pair_up),
	    cmocka_unit_test_setup(test_lost_active_procdown_fenced_at_once, setup_pair_up),
	    cmocka_unit_test_setup(test_lost_active_nodedown_standby_delays, setup_pair_up),
	    cmocka_unit_test_setup(test_split_active_fences_at_once, setup_pair_up),
	    cmocka_unit_test(test_split_primary_standby_still_delays),
	    cmocka_unit_test(test_split_between_standbys_identity_decides),
	    cmocka_unit_test_setup(test_hung_active_fenced_after_delay, setup_pair_up),
	    cmocka_unit_test_setup(test_hung_standby_fenced_by_active, setup_pair_up),
	    cmocka_unit_test_setup(
	        test_hung_peer_heard_again_stays_lost_with_fencing, setup_pair_up),
	    cmocka_unit_test_setup(test_failed_fence_retries, setup_pair_up),
	    cmocka_unit_test_setup(test_failed_fence_peer_returns, setup_pair_up),
	    cmocka_unit_test(test_fence_none_promotes_at_once),
	    cmocka_unit_test_setup(test_unhealthy_standby_does_not_fence, setup_pair_up),
	    cmocka_unit_test(test_grace_then_fence_at_once),
	    cmocka_unit_test(test_grace_peer_joins_in_time),
	    cmocka_unit_test_setup(test_old_active_returns_as_standby, setup_pair_up),
	    cmocka_unit_test_setup(test_restarted_standby_rejoins_as_standby, setup_pair_up),
	    cmocka_unit_test_setup(test_switchover_round_trip, setup_pair_up),
	    cmocka_unit_test_setup(test_switchover_no_op_answers, setup_pair_up),
	    cmocka_unit_test_setup(test_switchover_refused_peer_unhealthy, setup_pair_up),
	    cmocka_unit_test_setup(test_switchover_refused_peer_leaving, setup_pair_up),
	    cmocka_unit_test_setup(test_switchover_refused_peer_not_member, setup_pair_up),
	    cmocka_unit_test(test_switchover_refused_between_standbys),
	    cmocka_unit_test(test_switchover_refused_peer_not_ready),
	    cmocka_unit_test_setup(test_handover_refused_target_unhealthy, setup_pair_up),
	    cmocka_unit_test_setup(
	        test_forced_handover_to_unhealthy_peer_is_not_stuck, setup_pair_up),
	    cmocka_unit_test_setup(test_handover_target_lost, setup_pair_up),
	    cmocka_unit_test_setup(test_carrier_loss_hands_over, setup_pair_up),
	    cmocka_unit_test_setup(test_carrier_loss_without_ready_peer_stays, setup_pair_up),
	    cmocka_unit_test_setup(test_corosync_lost_active_demotes, setup_pair_up),
	    cmocka_unit_test(test_two_actives_newer_epoch_stays),
	    cmocka_unit_test(test_two_actives_after_hang_meet_again),
	    cmocka_unit_test(test_two_actives_same_epoch_primary_stays),
	    cmocka_unit_test(test_data_syncing_standby_never_promotes),
	    cmocka_unit_test(test_data_force_promotes_syncing),
	    cmocka_unit_test(test_data_switchover_to_syncing_refused),
	    cmocka_unit_test(test_data_handover_waits_for_frames),
	    cmocka_unit_test(test_data_handover_epoch_without_frames),
	    cmocka_unit_test(test_data_newer_data_wins_cold_start),
	    cmocka_unit_test(test_data_ack_alone),
	    cmocka_unit_test(test_data_announced),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_random_walk_one_active),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

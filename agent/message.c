/*
 * message: codec of the CPG control messages (state, switchover request).
 *
 * Layout, version 1 (little-endian):
 *   0  u8  version          1  u8  type          2  u16 length
 *   4  u32 nodeid           8  u64 epoch         16 u64 seq
 *   24 u32 handover_to      28 u32 switchover_to
 *   32 u8  role             33 u8  flags (healthy, primary, leaving, force,
 *                                          in sync)
 *   34..39 reserved, zero
 *   40 u32 incarnation      44 u32 peer_incarnation   48 u32 version
 *   52 u32 state_version    56 u32 peer_state_seen    60 u64 data_epoch
 * seq and data_epoch are the sender's data position (the last frame it
 * committed or applied), epoch its election epoch.
 * Data never travels here (see DESIGN.md, replicate/): these are small
 * idempotent control messages, safe to resend and to supersede.
 */
#include "message.h"

#include <errno.h>
#include <string.h>

enum {
	FLAG_HEALTHY = 1u << 0,
	FLAG_PRIMARY = 1u << 1,
	FLAG_LEAVING = 1u << 2,
	FLAG_FORCE = 1u << 3,
	FLAG_IN_SYNC = 1u << 4,
};

static void
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

int
message_encode(const struct message *m, uint8_t *buf, size_t len)
{
	uint8_t flags = 0;

	if (len < MESSAGE_STATE_LEN)
		return -ENOSPC;
	memset(buf, 0, MESSAGE_STATE_LEN);
	buf[0] = MESSAGE_VERSION;
	buf[1] = (uint8_t)m->type;
	buf[2] = MESSAGE_STATE_LEN & 0xff;
	buf[3] = MESSAGE_STATE_LEN >> 8;
	put_u32(buf + 4, m->state.nodeid);
	put_u64(buf + 8, m->state.epoch);
	put_u64(buf + 16, m->state.seq);
	put_u32(buf + 24, m->state.handover_to);
	put_u32(buf + 28, m->switchover_to);
	buf[32] = (uint8_t)m->state.role;
	if (m->state.healthy)
		flags |= FLAG_HEALTHY;
	if (m->state.primary)
		flags |= FLAG_PRIMARY;
	if (m->state.leaving)
		flags |= FLAG_LEAVING;
	if (m->force)
		flags |= FLAG_FORCE;
	if (m->state.in_sync)
		flags |= FLAG_IN_SYNC;
	buf[33] = flags;
	put_u32(buf + 40, m->state.incarnation);
	put_u32(buf + 44, m->state.peer_incarnation);
	put_u32(buf + 48, m->version);
	put_u32(buf + 52, m->state.state_version);
	put_u32(buf + 56, m->state.peer_state_seen);
	put_u64(buf + 60, m->state.data_epoch);
	return MESSAGE_STATE_LEN;
}

int
message_decode(const uint8_t *buf, size_t len, struct message *ret)
{
	struct message m;
	size_t declared;

	if (len < 4)
		return -EBADMSG;
	if (buf[0] != MESSAGE_VERSION)
		return -EPROTO;
	declared = (size_t)buf[2] | ((size_t)buf[3] << 8);
	if (declared != len || len < MESSAGE_MIN_LEN || len > MESSAGE_MAX_LEN)
		return -EBADMSG;
	if (buf[1] != MESSAGE_STATE && buf[1] != MESSAGE_SWITCHOVER)
		return -EBADMSG;
	if (buf[32] != ROLE_STANDBY && buf[32] != ROLE_ACTIVE)
		return -EBADMSG;

	memset(&m, 0, sizeof(m));
	m.type = (enum message_type)buf[1];
	m.state.nodeid = get_u32(buf + 4);
	m.state.epoch = get_u64(buf + 8);
	m.state.seq = get_u64(buf + 16);
	m.state.handover_to = get_u32(buf + 24);
	m.switchover_to = get_u32(buf + 28);
	m.state.role = (enum election_role)buf[32];
	m.state.healthy = buf[33] & FLAG_HEALTHY;
	m.state.primary = buf[33] & FLAG_PRIMARY;
	m.state.leaving = buf[33] & FLAG_LEAVING;
	m.force = (buf[33] & FLAG_FORCE) != 0;
	m.state.in_sync = (buf[33] & FLAG_IN_SYNC) != 0;
	if (len >= 48) {
		m.state.incarnation = get_u32(buf + 40);
		m.state.peer_incarnation = get_u32(buf + 44);
	}
	if (len >= 52)
		m.version = get_u32(buf + 48);
	if (len >= 60) {
		m.state.state_version = get_u32(buf + 52);
		m.state.peer_state_seen = get_u32(buf + 56);
	}
	if (len >= 68)
		m.state.data_epoch = get_u64(buf + 60);
	if (m.state.nodeid == 0)
		return -EBADMSG;
	*ret = m;
	return 0;
}

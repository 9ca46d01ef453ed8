/*
 * message: the control messages the pair exchanges on CPG, encoded.
 *
 * Rule 6 (mixed versions interoperate): every message starts with a
 * protocol version and its length; a receiver of the same major version
 * ignores bytes past the fields it knows, so a newer peer may append.
 * Integers are little-endian on the wire whatever the host.
 */
#ifndef TANDEM_MESSAGE_H
#define TANDEM_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "election.h"

#define MESSAGE_VERSION 1
/*
 * Bytes of the state message this version writes.  The first 40 bytes
 * are the original layout; 40..47 carry the incarnations, 48..51 the
 * sender's version, 52..59 the state versions, 60..67 the data epoch (and
 * flag bit 4 says in sync).  Messages of at least MESSAGE_MIN_LEN are
 * accepted, the missing fields read as 0 (a sender without data fields is
 * never in sync).
 */
#define MESSAGE_STATE_LEN 68
#define MESSAGE_MIN_LEN 40
#define MESSAGE_MAX_LEN 1024

enum message_type {
	MESSAGE_STATE = 1,
	/* A standby asks the active to hand over to it. */
	MESSAGE_SWITCHOVER = 2,
};

struct message {
	enum message_type type;
	struct election_state_msg state;
	/* For MESSAGE_SWITCHOVER: the node that should become active. */
	uint32_t switchover_to;
	uint8_t force;
	/* The sender's tandem version, major << 16 | minor << 8 | patch (0: not sent). */
	uint32_t version;
};

/*
 * Encodes m into buf (at least MESSAGE_STATE_LEN bytes).  Returns the
 * length written, or -ENOSPC when buf is too small.
 */
int message_encode(const struct message *m, uint8_t *buf, size_t len);

/*
 * Decodes buf into *ret.  Returns 0, or -EPROTO for a different major
 * version, -EBADMSG for a truncated message, a length that disagrees with
 * len, an unknown type or an out-of-range field.  *ret is untouched on
 * failure.
 */
int message_decode(const uint8_t *buf, size_t len, struct message *ret);

#endif

/*
 * Unit test of the CPG control message codec: round trip, and every way a
 * message can be bad (truncated, oversized, wrong version, garbage).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "message.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

static struct message
sample(void)
{
	struct message m = {
	    .type = MESSAGE_STATE,
	    .state = {.nodeid = 2,
	        .role = ROLE_ACTIVE,
	        .epoch = 0x0102030405060708ull,
	        .seq = 77,
	        .healthy = true,
	        .primary = false,
	        .leaving = true,
	        .handover_to = 1,
	        .incarnation = 0xdeadbeef,
	        .peer_incarnation = 0x01020304,
	        .state_version = 7,
	        .peer_state_seen = 9},
	    .version = 0x000100,
	};
	return m;
}

static void
test_round_trip(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_MAX_LEN];
	int len = message_encode(&m, buf, sizeof(buf));

	assert_int_equal(len, MESSAGE_STATE_LEN);
	/* Little-endian on the wire, whatever the host. */
	assert_int_equal(buf[8], 0x08);
	assert_int_equal(buf[15], 0x01);
	assert_int_equal(message_decode(buf, (size_t)len, &d), 0);
	assert_int_equal(d.type, MESSAGE_STATE);
	assert_int_equal(d.state.nodeid, 2);
	assert_int_equal(d.state.role, ROLE_ACTIVE);
	assert_true(d.state.epoch == m.state.epoch);
	assert_int_equal(d.state.seq, 77);
	assert_true(d.state.healthy);
	assert_false(d.state.primary);
	assert_true(d.state.leaving);
	assert_int_equal(d.state.handover_to, 1);
	assert_int_equal(d.state.incarnation, 0xdeadbeef);
	assert_int_equal(d.state.peer_incarnation, 0x01020304);
	assert_int_equal(buf[44], 0x04);
	assert_int_equal(d.version, 0x000100);
	assert_int_equal(d.state.state_version, 7);
	assert_int_equal(d.state.peer_state_seen, 9);
}

/* A 40-byte state from a sender before the incarnations: they read as 0. */
static void
test_older_layout_accepted(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_STATE_LEN];

	message_encode(&m, buf, sizeof(buf));
	buf[2] = MESSAGE_MIN_LEN;
	assert_int_equal(message_decode(buf, MESSAGE_MIN_LEN, &d), 0);
	assert_int_equal(d.state.nodeid, 2);
	assert_int_equal(d.state.handover_to, 1);
	assert_int_equal(d.state.incarnation, 0);
	assert_int_equal(d.state.peer_incarnation, 0);
	assert_int_equal(d.version, 0);
	assert_int_equal(d.state.state_version, 0);
	/* Shorter than the original layout is still refused. */
	buf[2] = MESSAGE_MIN_LEN - 1;
	assert_int_equal(message_decode(buf, MESSAGE_MIN_LEN - 1, &d), -EBADMSG);
}

static void
test_switchover_round_trip(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_STATE_LEN];

	m.type = MESSAGE_SWITCHOVER;
	m.switchover_to = 2;
	m.force = 1;
	assert_int_equal(message_encode(&m, buf, sizeof(buf)), MESSAGE_STATE_LEN);
	assert_int_equal(message_decode(buf, sizeof(buf), &d), 0);
	assert_int_equal(d.type, MESSAGE_SWITCHOVER);
	assert_int_equal(d.switchover_to, 2);
	assert_int_equal(d.force, 1);
}

static void
test_encode_too_small(void **state)
{
	struct message m = sample();
	uint8_t buf[MESSAGE_STATE_LEN - 1];

	assert_int_equal(message_encode(&m, buf, sizeof(buf)), -ENOSPC);
}

static void
test_truncated(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_STATE_LEN];

	message_encode(&m, buf, sizeof(buf));
	memset(&d, 0xaa, sizeof(d));
	for (size_t len = 0; len < MESSAGE_STATE_LEN; len++)
		assert_int_equal(message_decode(buf, len, &d), -EBADMSG);
	/* The output stays untouched on failure. */
	assert_int_equal(d.state.nodeid, 0xaaaaaaaa);
}

static void
test_newer_fields_ignored(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_STATE_LEN + 16] = {0};

	message_encode(&m, buf, sizeof(buf));
	buf[2] = sizeof(buf);
	memset(buf + MESSAGE_STATE_LEN, 0x5a, sizeof(buf) - MESSAGE_STATE_LEN);
	assert_int_equal(message_decode(buf, sizeof(buf), &d), 0);
	assert_int_equal(d.state.seq, 77);
}

static void
test_bad_length_field(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_MAX_LEN + 8] = {0};

	message_encode(&m, buf, sizeof(buf));
	/* The length must match what arrived. */
	assert_int_equal(message_decode(buf, MESSAGE_STATE_LEN + 1, &d), -EBADMSG);
	/* Oversized. */
	buf[2] = (MESSAGE_MAX_LEN + 8) & 0xff;
	buf[3] = (MESSAGE_MAX_LEN + 8) >> 8;
	assert_int_equal(message_decode(buf, MESSAGE_MAX_LEN + 8, &d), -EBADMSG);
}

static void
test_wrong_version(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_STATE_LEN];

	message_encode(&m, buf, sizeof(buf));
	buf[0] = 2;
	assert_int_equal(message_decode(buf, sizeof(buf), &d), -EPROTO);
}

static void
test_garbage(void **state)
{
	struct message m = sample(), d;
	uint8_t buf[MESSAGE_STATE_LEN];

	message_encode(&m, buf, sizeof(buf));
	buf[1] = 9;
	assert_int_equal(message_decode(buf, sizeof(buf), &d), -EBADMSG);
	message_encode(&m, buf, sizeof(buf));
	buf[32] = 7;
	assert_int_equal(message_decode(buf, sizeof(buf), &d), -EBADMSG);
	message_encode(&m, buf, sizeof(buf));
	memset(buf + 4, 0, 4);
	assert_int_equal(message_decode(buf, sizeof(buf), &d), -EBADMSG);
	/* Every byte pattern of a short prefix is handled without a crash. */
	for (unsigned int v = 0; v < 256; v++) {
		memset(buf, (int)v, sizeof(buf));
		(void)message_decode(buf, sizeof(buf), &d);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_older_layout_accepted),
	    cmocka_unit_test(test_switchover_round_trip),
	    cmocka_unit_test(test_encode_too_small),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_newer_fields_ignored),
	    cmocka_unit_test(test_bad_length_field),
	    cmocka_unit_test(test_wrong_version),
	    cmocka_unit_test(test_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

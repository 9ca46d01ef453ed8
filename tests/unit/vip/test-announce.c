/*
 * test-announce: the bytes of the gratuitous ARP and of the unsolicited
 * neighbour advertisement, without a network (suite 'unit').
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vip/vip-int.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

static const uint8_t mac[ANNOUNCE_MAC_LEN] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

static void
test_garp(void **state)
{
	static const uint8_t want[ANNOUNCE_GARP_LEN] = {
	    0x00, 0x01,                         /* Ethernet */
	    0x08, 0x00,                         /* IPv4 */
	    6, 4,                               /* address lengths */
	    0x00, 0x01,                         /* request */
	    0x02, 0x11, 0x22, 0x33, 0x44, 0x55, /* sender MAC */
	    192, 0, 2, 50,                      /* sender IP: the VIP */
	    0, 0, 0, 0, 0, 0,                   /* target MAC: zero (RFC 5227) */
	    192, 0, 2, 50,                      /* target IP: the VIP again */
	};
	uint8_t buf[ANNOUNCE_GARP_LEN + 4];
	struct in_addr ip;

	assert_int_equal(inet_pton(AF_INET, "192.0.2.50", &ip), 1);
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(announce_build_garp(buf, mac, &ip), ANNOUNCE_GARP_LEN);
	assert_memory_equal(buf, want, sizeof(want));
	/* Nothing written past the end. */
	assert_int_equal(buf[ANNOUNCE_GARP_LEN], 0xaa);
}

/* RFC 1071 sum over the pseudo-header and the message: all ones when the checksum is right. */
static uint16_t
fold(const uint8_t *pkt, size_t icmp_len)
{
	uint8_t pseudo[40];
	uint64_t sum = 0;
	size_t i;

	memcpy(pseudo, pkt + 8, 32); /* source and destination */
	pseudo[32] = 0;
	pseudo[33] = 0;
	pseudo[34] = (uint8_t)(icmp_len >> 8);
	pseudo[35] = (uint8_t)icmp_len;
	pseudo[36] = 0;
	pseudo[37] = 0;
	pseudo[38] = 0;
	pseudo[39] = 58;
	for (i = 0; i < sizeof(pseudo); i += 2)
		sum += (uint64_t)((pseudo[i] << 8) | pseudo[i + 1]);
	for (i = 0; i < icmp_len; i += 2)
		sum += (uint64_t)((pkt[40 + i] << 8) | (i + 1 < icmp_len ? pkt[40 + i + 1] : 0));
	while (sum > 0xffff)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void
test_na(void **state)
{
	static const uint8_t all_nodes[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	uint8_t buf[ANNOUNCE_NA_LEN];
	struct in6_addr ip;

	assert_int_equal(inet_pton(AF_INET6, "2001:db8::50", &ip), 1);
	assert_int_equal(announce_build_na(buf, mac, &ip), ANNOUNCE_NA_LEN);

	/* IPv6 header. */
	assert_int_equal(buf[0], 0x60);
	assert_int_equal((buf[4] << 8) | buf[5], 32);
	assert_int_equal(buf[6], 58);
	assert_int_equal(buf[7], 255);
	assert_memory_equal(buf + 8, &ip, 16);
	assert_memory_equal(buf + 24, all_nodes, 16);

	/* Neighbour advertisement: Override set, Router and Solicited clear. */
	assert_int_equal(buf[40], 136);
	assert_int_equal(buf[41], 0);
	assert_int_equal(buf[44], 0x20);
	assert_int_equal(buf[45] | buf[46] | buf[47], 0);
	assert_memory_equal(buf + 48, &ip, 16);
	/* Target link-layer address option. */
	assert_int_equal(buf[64], 2);
	assert_int_equal(buf[65], 1);
	assert_memory_equal(buf + 66, mac, 6);

	assert_int_equal(fold(buf, 32), 0xffff);
	/* And the check can fail: one flipped bit breaks it. */
	buf[70] ^= 1;
	assert_int_not_equal(fold(buf, 32), 0xffff);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_garp),
	    cmocka_unit_test(test_na),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

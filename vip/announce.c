/*
 * announce.c: tells the segment that the VIP now lives behind our MAC.
 *
 * After a failover the switches and the neighbours still map the VIP to the
 * peer's MAC until their caches expire.  For IPv4 we send a gratuitous ARP:
 * an ARP request whose sender and target address are both the VIP, to the
 * broadcast MAC (RFC 5227 "ARP announcement"; a request rather than a reply
 * because some old stacks only learn from requests).  For IPv6 we send an
 * unsolicited neighbour advertisement (RFC 4861 7.2.6) to all-nodes with the
 * Override flag, so neighbours replace a cached entry instead of only marking
 * it stale, and with hop limit 255, without which receivers drop it as
 * possibly off-link.
 *
 * Both go out of one AF_PACKET datagram socket: the kernel adds the Ethernet
 * header, and we depend neither on the routing table nor on the state of the
 * source address, as an ICMPv6 raw socket would.  The socket is opened
 * with protocol 0, so it never queues frames we receive.  One frame per call;
 * vip.c repeats them on its timer, since a single frame may be lost while a
 * switch port is still converging.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vip-int.h"

int
announce_bind(int fd, int ifindex)
{
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = 0,
	    .sll_ifindex = ifindex,
	};

	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return -errno;
	return 0;
}

int
announce_open(int ifindex)
{
	int fd;
	int r;

	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = announce_bind(fd, ifindex);
	if (r < 0) {
		(void)close(fd);
		return r;
	}
	return fd;
}

size_t
announce_build_garp(uint8_t *buf, const uint8_t mac[ANNOUNCE_MAC_LEN], const struct in_addr *ip)
{
	uint8_t *p = buf;

	*p++ = ARPHRD_ETHER >> 8;
	*p++ = ARPHRD_ETHER & 0xff;
	*p++ = ETH_P_IP >> 8;
	*p++ = ETH_P_IP & 0xff;
	*p++ = ANNOUNCE_MAC_LEN;
	*p++ = sizeof(*ip);
	*p++ = ARPOP_REQUEST >> 8;
	*p++ = ARPOP_REQUEST & 0xff;
	/* Sender: us. */
	memcpy(p, mac, ANNOUNCE_MAC_LEN);
	p += ANNOUNCE_MAC_LEN;
	memcpy(p, ip, sizeof(*ip));
	p += sizeof(*ip);
	/* Target hardware address is ignored in an announcement; RFC 5227 says zero. */
	memset(p, 0, ANNOUNCE_MAC_LEN);
	p += ANNOUNCE_MAC_LEN;
	memcpy(p, ip, sizeof(*ip));
	p += sizeof(*ip);
	return (size_t)(p - buf);
}

/* The Internet checksum (RFC 1071) of the ICMPv6 message with its pseudo-header. */
static uint16_t
icmp6_checksum(
    const struct in6_addr *src, const struct in6_addr *dst, const uint8_t *msg, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < 16; i += 2) {
		sum += (uint32_t)(src->s6_addr[i] << 8 | src->s6_addr[i + 1]);
		sum += (uint32_t)(dst->s6_addr[i] << 8 | dst->s6_addr[i + 1]);
	}
	sum += (uint32_t)(len >> 16);
	sum += (uint32_t)(len & 0xffff);
	sum += IPPROTO_ICMPV6;
	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(msg[i] << 8 | msg[i + 1]);
	if (len & 1)
		sum += (uint32_t)(msg[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

size_t
announce_build_na(uint8_t *buf, const uint8_t mac[ANNOUNCE_MAC_LEN], const struct in6_addr *ip)
{
	static const struct in6_addr all_nodes = {
	    .s6_addr = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
	const size_t icmp_len = 24 + 8;
	uint8_t *icmp = buf + 40;
	uint16_t sum;

	memset(buf, 0, ANNOUNCE_NA_LEN);
	/* IPv6 header: version 6, no traffic class or flow label. */
	buf[0] = 0x60;
	buf[4] = (uint8_t)(icmp_len >> 8);
	buf[5] = (uint8_t)(icmp_len & 0xff);
	buf[6] = IPPROTO_ICMPV6;
	/* RFC 4861 7.1.2: a receiver drops an NA whose hop limit is not 255. */
	buf[7] = 255;
	/* The VIP is an address of the interface, as RFC 4861 wants for the source. */
	memcpy(buf + 8, ip, 16);
	memcpy(buf + 24, &all_nodes, 16);

	icmp[0] = 136; /* ND_NEIGHBOR_ADVERT */
	icmp[1] = 0;
	/* Flags: Override only; Solicited must be clear when sent to multicast. */
	icmp[4] = 0x20;
	memcpy(icmp + 8, ip, 16);
	/* Target link-layer address option: type 2, length in units of 8 octets. */
	icmp[24] = 2;
	icmp[25] = 1;
	memcpy(icmp + 26, mac, ANNOUNCE_MAC_LEN);

	sum = icmp6_checksum(ip, &all_nodes, icmp, icmp_len);
	icmp[2] = (uint8_t)(sum >> 8);
	icmp[3] = (uint8_t)(sum & 0xff);
	return 40 + icmp_len;
}

int
announce_send(int fd, int ifindex, int family, const void *ip, const uint8_t mac[ANNOUNCE_MAC_LEN])
{
	uint8_t buf[ANNOUNCE_NA_LEN];
	struct sockaddr_ll to = {
	    .sll_family = AF_PACKET,
	    .sll_ifindex = ifindex,
	    .sll_halen = ANNOUNCE_MAC_LEN,
	};
	size_t len;
	ssize_t n;

	if (family == AF_INET) {
		len = announce_build_garp(buf, mac, ip);
		to.sll_protocol = htons(ETH_P_ARP);
		memset(to.sll_addr, 0xff, ANNOUNCE_MAC_LEN);
	} else if (family == AF_INET6) {
		/* ff02::1 maps to 33:33 followed by its low 32 bits (RFC 2464). */
		static const uint8_t all_nodes_mac[ANNOUNCE_MAC_LEN] = {0x33, 0x33, 0, 0, 0, 1};

		len = announce_build_na(buf, mac, ip);
		to.sll_protocol = htons(ETH_P_IPV6);
		memcpy(to.sll_addr, all_nodes_mac, ANNOUNCE_MAC_LEN);
	} else {
		return -EAFNOSUPPORT;
	}

	n = sendto(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to));
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EMSGSIZE;
	return 0;
}

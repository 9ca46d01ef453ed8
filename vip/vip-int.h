/*
 * vip-int.h: what vip.c and announce.c share, and what the tests may reach.
 * Not part of the public API.
 */
#ifndef TANDEM_VIP_INT_H
#define TANDEM_VIP_INT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define ANNOUNCE_MAC_LEN 6

/* An ARP packet for Ethernet and IPv4, without the Ethernet header. */
#define ANNOUNCE_GARP_LEN 28
/* IPv6 header, neighbour advertisement and one target link-layer option. */
#define ANNOUNCE_NA_LEN (40 + 24 + 8)

/*
 * Opens an AF_PACKET datagram socket (CLOEXEC|NONBLOCK) bound to ifindex
 * with protocol 0, so it sends but never queues received frames.  Returns
 * the fd, owned by the caller, or -errno.
 */
int announce_open(int ifindex);

/* Binds fd (from announce_open) to another ifindex.  Returns 0 or -errno. */
int announce_bind(int fd, int ifindex);

/*
 * Builds a gratuitous ARP for ip from mac into buf (ANNOUNCE_GARP_LEN bytes).
 * Returns the length written.
 */
size_t announce_build_garp(
    uint8_t *buf, const uint8_t mac[ANNOUNCE_MAC_LEN], const struct in_addr *ip);

/*
 * Builds an IPv6 packet holding an unsolicited neighbour advertisement for ip
 * from mac to ff02::1 into buf (ANNOUNCE_NA_LEN bytes), checksum included.
 * Returns the length written.
 */
size_t announce_build_na(
    uint8_t *buf, const uint8_t mac[ANNOUNCE_MAC_LEN], const struct in6_addr *ip);

/*
 * Sends one announcement for ip (family AF_INET: struct in_addr, AF_INET6:
 * struct in6_addr) out of ifindex through fd.  Never blocks.  Returns 0 or
 * -errno (-EAGAIN when the socket buffer is full).
 */
int announce_send(
    int fd, int ifindex, int family, const void *ip, const uint8_t mac[ANNOUNCE_MAC_LEN]);

#endif

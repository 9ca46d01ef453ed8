/*
 * vip: the pair's virtual IP address on the active node.
 *
 * One struct vip owns one address on one interface. It adds and removes the
 * address with libnl-route, announces it (gratuitous ARP for IPv4, unsolicited
 * neighbour advertisement for IPv6) right after adding it, and watches the
 * link and the address through netlink events on the caller's qb_loop.
 *
 * While acquired, the address carries a finite lifetime (valid_lft and
 * preferred_lft) that vip refreshes every third of it: a tandemd that is
 * killed or frozen loses its VIP by itself within one lifetime, with no
 * help from the peer.  A VIP removed from outside while acquired is added
 * back and announced again.
 *
 * vip never logs above debug; it returns -errno and reports through the
 * single on_event callback.
 */
#ifndef TANDEM_VIP_H
#define TANDEM_VIP_H

#include <stdbool.h>

#include <qb/qbloop.h>

struct vip;

struct vip_config {
	/* "192.0.2.50/24" or "2001:db8::50/64"; a missing prefix means /32 or /128. */
	const char *address;
	/* Interface name, such as "eth0". */
	const char *interface;
	/* Announcements sent right after adding, and their spacing. */
	unsigned int announce_count;
	unsigned int announce_interval_ms;
	/* Address lifetime in seconds (>= 3); refreshed every third of it. */
	unsigned int lifetime_s;
};

enum vip_event {
	/* The address was removed from outside while acquired; vip re-added it. */
	VIP_EVENT_READDED,
	/* The interface lost carrier (or went down). */
	VIP_EVENT_CARRIER_LOST,
	/* The interface has carrier again. */
	VIP_EVENT_CARRIER_UP,
	/* A netlink operation failed while acquired; info->error says which. */
	VIP_EVENT_ERROR,
};

struct vip_info {
	const char *address;
	const char *interface;
	/* -errno for VIP_EVENT_ERROR, else 0. */
	int error;
};

typedef void (*vip_event_fn)(enum vip_event event, const struct vip_info *info, void *data);

/*
 * Parses cfg (copied; the caller may free it afterwards), opens the netlink
 * sockets and puts them on loop.  Does not touch the address.  Returns NULL
 * with errno set: EINVAL for a bad address, ENODEV for an unknown interface,
 * other values from netlink.
 */
struct vip *vip_new(
    qb_loop_t *loop, const struct vip_config *cfg, vip_event_fn on_event, void *data);

/* Frees v and its sockets; the address is left as it is.  vip_free(NULL) is a no-op. */
void vip_free(struct vip *v);

/*
 * Adds the address with its lifetime (replacing it if present), sends the
 * first announcement at once and schedules the rest, and starts the
 * refresh timer.  Returns 0 or -errno; on failure nothing is held.
 */
int vip_acquire(struct vip *v);

/*
 * Stops refreshing and announcing and removes the address if present.
 * Returns 0 (also when the address was not there) or -errno.
 */
int vip_release(struct vip *v);

/* True when the address is configured on the interface right now (asks the kernel). */
bool vip_present(struct vip *v);

/* True while vip_acquire is in force (between acquire and release). */
bool vip_acquired(const struct vip *v);

/* True when the interface is up and has carrier (asks the kernel). */
bool vip_carrier(struct vip *v);

/* The configured address as text without prefix, such as "192.0.2.50". */
const char *vip_address(const struct vip *v);

#endif

/*
 * vip.c: owns the pair's virtual address on this node: adding it with a
 * lifetime, keeping it alive while acquired, removing it, and watching the
 * link and the address through netlink events on the caller's qb_loop.
 *
 * It enforces the VIP half of "one active": a VIP is only ever held with a
 * finite valid_lft/preferred_lft, refreshed every third of the lifetime from
 * a loop timer.  If tandemd is killed, frozen (SIGSTOP, a hung disk, a VM
 * pause) or its loop stalls, nobody refreshes and the kernel itself deletes
 * the address within one lifetime: a dead-man switch that needs neither the
 * peer nor a fence to take the VIP off a node that stopped working.
 *
 * Two netlink sockets: "req" carries our requests and dumps, which the kernel
 * answers within the send, so a request never waits on anything but the
 * rtnl lock; "watch" only listens to link and address notifications and its
 * fd sits on the loop.  We read the watch socket with plain recvmsg() and
 * parse the messages in place, so that the event callback runs on our stack
 * and not inside libnl's, and may call any vip verb including vip_free.
 *
 * Telling our own changes from someone else's: we only react to the deletion
 * of our exact address (family, ifindex, address, prefix length) while
 * acquired, and only after asking the kernel whether it is really gone.  So
 * vip_release's own deletion (acquired is already false) and a deletion
 * notification that arrives after a release and a new acquire (the address
 * is present again) do not trigger a re-add.  Refreshes use NLM_F_REPLACE,
 * which the kernel reports as RTM_NEWADDR, and we never act on that.
 *
 * The interface is resolved to an ifindex once, in vip_new.  If it is
 * deleted, that is a carrier loss; if it is recreated, the caller makes a
 * new vip.
 */
#include "vip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>
#include <qb/qblog.h>
#include <qb/qbloop.h>
#include <qb/qbutil.h>

#include "vip-int.h"

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif

/*
 * One datagram from the watch socket.  Notifications are small, but a link
 * message with many VFs can be large; a truncated read costs a resync.
 */
#define VIP_RXBUF_LEN (64 * 1024)
/* Datagrams read per poll callback before we let the loop run others. */
#define VIP_RX_BATCH 32
/* Room for a burst of notifications (a link flap with many addresses). */
#define VIP_RCVBUF (1024 * 1024)

struct vip {
	qb_loop_t *loop;
	vip_event_fn on_event;
	void *data;

	/* Configuration, copied. */
	char interface[IFNAMSIZ];
	char text[INET6_ADDRSTRLEN];
	int family;
	uint8_t ip[16];
	unsigned int ip_len;
	unsigned int prefixlen;
	unsigned int announce_count;
	unsigned int announce_interval_ms;
	unsigned int lifetime_s;

	int ifindex;
	struct nl_sock *req;
	struct nl_sock *watch;
	int watch_fd;
	bool watch_polled;
	int packet_fd;
	uint8_t *rxbuf;

	bool acquired;
	/* Carrier as last reported to the caller (or found by vip_new). */
	bool carrier;

	unsigned int announce_left;
	bool announce_armed;
	qb_loop_timer_handle announce_timer;
	bool refresh_armed;
	qb_loop_timer_handle refresh_timer;

	/* on_event is running; a vip_free from inside it is deferred to us. */
	unsigned int in_callback;
	bool free_pending;
};

/* libnl's error codes back to errno, the inverse of its nl_syserr2nlerr(). */
static int
nl_to_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case 0:
		return 0;
	case NLE_INTR:
		return -EINTR;
	case NLE_BAD_SOCK:
		return -EBADF;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_RANGE:
		return -ERANGE;
	case NLE_MSGSIZE:
		return -EMSGSIZE;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:
		return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_PROTO_MISMATCH:
		return -EPROTONOSUPPORT;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_PERM:
		return -EPERM;
	case NLE_NODEV:
		return -ENODEV;
	default:
		return -EIO;
	}
}

/*
 * Parses "address[/prefix]" into v.  Strict on purpose: a typo in the VIP
 * must fail at startup, not put a wrong address on the wire.
 */
static int
vip_parse(struct vip *v, const char *address)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash;
	unsigned int max;
	size_t n;

	slash = strchr(address, '/');
	n = slash ? (size_t)(slash - address) : strlen(address);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, address, n);
	buf[n] = '\0';

	if (inet_pton(AF_INET, buf, v->ip) == 1) {
		v->family = AF_INET;
		v->ip_len = 4;
		max = 32;
		/* 0.0.0.0, multicast, class E and broadcast can never be a host's address. */
		if (v->ip[0] == 0 || v->ip[0] >= 224)
			return -EINVAL;
	} else if (inet_pton(AF_INET6, buf, v->ip) == 1) {
		static const uint8_t unspecified[16];

		v->family = AF_INET6;
		v->ip_len = 16;
		max = 128;
		if (v->ip[0] == 0xff || memcmp(v->ip, unspecified, 16) == 0)
			return -EINVAL;
	} else {
		return -EINVAL;
	}

	if (slash) {
		const char *p = slash + 1;
		unsigned int plen = 0;

		if (*p == '\0' || strlen(p) > 3)
			return -EINVAL;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return -EINVAL;
			plen = plen * 10 + (unsigned int)(*p - '0');
		}
		if (plen == 0 || plen > max)
			return -EINVAL;
		v->prefixlen = plen;
	} else {
		v->prefixlen = max;
	}

	if (!inet_ntop(v->family, v->ip, v->text, sizeof(v->text)))
		return -EINVAL;
	return 0;
}

/* Reads what we need of the link: its flags and, if it is Ethernet-like, its MAC. */
static int
vip_link_get(
    struct vip *v, unsigned int *ret_flags, uint8_t ret_mac[ANNOUNCE_MAC_LEN], bool *ret_has_mac)
{
	struct rtnl_link *link = NULL;
	struct nl_addr *lladdr;
	int r;

	r = rtnl_link_get_kernel(v->req, v->ifindex, NULL, &link);
	if (r < 0)
		return nl_to_errno(r);
	if (ret_flags)
		*ret_flags = rtnl_link_get_flags(link);
	if (ret_mac && ret_has_mac) {
		lladdr = rtnl_link_get_addr(link);
		*ret_has_mac = lladdr && nl_addr_get_len(lladdr) == ANNOUNCE_MAC_LEN;
		if (*ret_has_mac)
			memcpy(ret_mac, nl_addr_get_binary_addr(lladdr), ANNOUNCE_MAC_LEN);
	}
	rtnl_link_put(link);
	return 0;
}

static bool
flags_have_carrier(unsigned int flags)
{
	return (flags & IFF_UP) && (flags & IFF_LOWER_UP);
}

/* Adds (or refreshes, NLM_F_REPLACE) or deletes our address.  Returns 0 or -errno. */
static int
vip_addr_change(struct vip *v, bool add)
{
	struct rtnl_addr *ra;
	struct nl_addr *local;
	int r;

	ra = rtnl_addr_alloc();
	local = nl_addr_build(v->family, v->ip, v->ip_len);
	if (!ra || !local) {
		r = -ENOMEM;
		goto out;
	}
	nl_addr_set_prefixlen(local, (int)v->prefixlen);
	rtnl_addr_set_ifindex(ra, v->ifindex);
	rtnl_addr_set_family(ra, v->family);
	/* Also sets the prefix length from local. */
	r = nl_to_errno(rtnl_addr_set_local(ra, local));
	if (r < 0)
		goto out;

	if (add) {
		/*
		 * A finite lifetime, refreshed by vip_refresh_fire: the dead-man
		 * switch.  The kernel shows it as "valid_lft Ns" for IPv4 too.
		 */
		rtnl_addr_set_valid_lifetime(ra, v->lifetime_s);
		rtnl_addr_set_preferred_lifetime(ra, v->lifetime_s);
		if (v->family == AF_INET6) {
			/*
			 * IFA_F_NODAD: duplicate address detection would keep the
			 * address tentative for about a second (unusable, and
			 * not announced) right when clients need it most, and
			 * could only find the peer, which has just dropped it.
			 * Fencing, not DAD, guarantees a single holder.
			 */
			rtnl_addr_set_flags(ra, IFA_F_NODAD);
		}
		/* REPLACE: re-adding refreshes the lifetime instead of failing EEXIST. */
		r = nl_to_errno(rtnl_addr_add(v->req, ra, NLM_F_REPLACE));
	} else {
		r = nl_to_errno(rtnl_addr_delete(v->req, ra, 0));
	}
	qb_log(LOG_DEBUG, "vip %s/%u on %s: %s: %d", v->text, v->prefixlen, v->interface,
	    add ? "add" : "delete", r);
out:
	nl_addr_put(local);
	rtnl_addr_put(ra);
	return r;
}

struct vip_find {
	const struct vip *v;
	bool found;
};

static void
vip_find_one(struct nl_object *obj, void *arg)
{
	struct vip_find *f = arg;
	struct rtnl_addr *ra = (struct rtnl_addr *)obj;
	struct nl_addr *local = rtnl_addr_get_local(ra);

	if (f->found || !local)
		return;
	if (rtnl_addr_get_ifindex(ra) != f->v->ifindex ||
	    rtnl_addr_get_family(ra) != f->v->family ||
	    rtnl_addr_get_prefixlen(ra) != (int)f->v->prefixlen ||
	    nl_addr_get_len(local) != f->v->ip_len)
		return;
	f->found = memcmp(nl_addr_get_binary_addr(local), f->v->ip, f->v->ip_len) == 0;
}

/* Timers.  A one-shot qb_loop timer is gone once it fires, so *_armed is cleared first thing. */

static void
vip_announce_stop(struct vip *v)
{
	if (v->announce_armed)
		(void)qb_loop_timer_del(v->loop, v->announce_timer);
	v->announce_armed = false;
	v->announce_left = 0;
}

static void
vip_refresh_stop(struct vip *v)
{
	if (v->refresh_armed)
		(void)qb_loop_timer_del(v->loop, v->refresh_timer);
	v->refresh_armed = false;
}

static void
vip_announce_once(struct vip *v)
{
	uint8_t mac[ANNOUNCE_MAC_LEN];
	bool has_mac = false;
	int r;

	r = vip_link_get(v, NULL, mac, &has_mac);
	if (r == 0 && !has_mac)
		return; /* Not Ethernet-like (tun, lo): nobody to tell. */
	if (r == 0)
		r = announce_send(v->packet_fd, v->ifindex, v->family, v->ip, mac);
	/*
	 * Best effort: without carrier the send fails with ENETDOWN, and the
	 * carrier coming back restarts the announcements anyway.
	 */
	qb_log(LOG_DEBUG, "vip %s on %s: announce: %d", v->text, v->interface, r);
}

static void vip_announce_fire(void *data);

static void
vip_announce_next(struct vip *v)
{
	int r;

	if (v->announce_left == 0)
		return;
	vip_announce_once(v);
	v->announce_left--;
	if (v->announce_left == 0)
		return;
	r = qb_loop_timer_add(v->loop, QB_LOOP_MED,
	    (uint64_t)v->announce_interval_ms * QB_TIME_NS_IN_MSEC, v, vip_announce_fire,
	    &v->announce_timer);
	if (r < 0) {
		qb_log(LOG_DEBUG, "vip %s: announce timer: %d", v->text, r);
		v->announce_left = 0;
		return;
	}
	v->announce_armed = true;
}

static void
vip_announce_fire(void *data)
{
	struct vip *v = data;

	v->announce_armed = false;
	vip_announce_next(v);
}

/* Sends the first announcement now and schedules the rest, restarting any burst in progress. */
static void
vip_announce_start(struct vip *v)
{
	vip_announce_stop(v);
	v->announce_left = v->announce_count;
	vip_announce_next(v);
}

static void vip_refresh_fire(void *data);

static int
vip_refresh_arm(struct vip *v)
{
	int r;

	vip_refresh_stop(v);
	r = qb_loop_timer_add(v->loop, QB_LOOP_MED, (uint64_t)v->lifetime_s * QB_TIME_NS_IN_SEC / 3,
	    v, vip_refresh_fire, &v->refresh_timer);
	if (r < 0)
		return r;
	v->refresh_armed = true;
	return 0;
}

static void
vip_destroy(struct vip *v)
{
	vip_announce_stop(v);
	vip_refresh_stop(v);
	if (v->watch_polled)
		(void)qb_loop_poll_del(v->loop, v->watch_fd);
	/* nl_socket_free closes the fd. */
	if (v->watch)
		nl_socket_free(v->watch);
	if (v->req)
		nl_socket_free(v->req);
	if (v->packet_fd >= 0)
		(void)close(v->packet_fd);
	free(v->rxbuf);
	free(v);
}

/*
 * Reports one event.  Returns false when the callback called vip_free: v
 * is gone then, and the caller must return without touching it.
 */
static bool
vip_emit(struct vip *v, enum vip_event event, int error)
{
	struct vip_info info = {
	    .address = v->text,
	    .interface = v->interface,
	    .error = error,
	};

	qb_log(LOG_DEBUG, "vip %s on %s: event %d (%d)", v->text, v->interface, (int)event, error);
	v->in_callback++;
	v->on_event(event, &info, v->data);
	v->in_callback--;
	if (v->free_pending && v->in_callback == 0) {
		vip_destroy(v);
		return false;
	}
	return !v->free_pending;
}

static void
vip_refresh_fire(void *data)
{
	struct vip *v = data;
	int r;
	int r2;

	v->refresh_armed = false;
	if (!v->acquired)
		return;
	/*
	 * Re-arm before anything can fail: a transient error must not stop
	 * the refreshes, or the address would expire on a healthy node.
	 */
	r2 = vip_refresh_arm(v);
	r = vip_addr_change(v, true);
	if (r < 0 && !vip_emit(v, VIP_EVENT_ERROR, r))
		return;
	if (r2 < 0)
		(void)vip_emit(v, VIP_EVENT_ERROR, r2);
}

/* Our address was deleted by someone; if we hold it, put it back.  False: v is gone. */
static bool
vip_address_gone(struct vip *v)
{
	int r;

	if (!v->acquired || vip_present(v))
		return true;
	r = vip_addr_change(v, true);
	if (r < 0)
		return vip_emit(v, VIP_EVENT_ERROR, r);
	vip_announce_start(v);
	return vip_emit(v, VIP_EVENT_READDED, 0);
}

/* Reports a carrier transition, once per transition.  False: v is gone. */
static bool
vip_carrier_seen(struct vip *v, bool carrier)
{
	if (carrier == v->carrier)
		return true;
	v->carrier = carrier;
	/*
	 * Switches may have flushed their MAC tables while our port was
	 * down: tell them again where the VIP is.
	 */
	if (carrier && v->acquired)
		vip_announce_start(v);
	return vip_emit(v, carrier ? VIP_EVENT_CARRIER_UP : VIP_EVENT_CARRIER_LOST, 0);
}

/* After lost notifications (overrun, truncation), ask the kernel for the truth. */
static bool
vip_resync(struct vip *v)
{
	unsigned int flags = 0;

	qb_log(LOG_DEBUG, "vip %s on %s: resync", v->text, v->interface);
	if (vip_link_get(v, &flags, NULL, NULL) == 0) {
		if (!vip_carrier_seen(v, flags_have_carrier(flags)))
			return false;
	} else if (!vip_carrier_seen(v, false)) {
		return false;
	}
	return vip_address_gone(v);
}

/* One netlink message from the watch socket.  False: v is gone. */
static bool
vip_watch_msg(struct vip *v, struct nlmsghdr *h)
{
	struct nlattr *tb[IFA_MAX + 1];
	struct ifinfomsg *ifi;
	struct ifaddrmsg *ifa;
	struct nlattr *a;

	switch (h->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK:
		if (!nlmsg_valid_hdr(h, sizeof(*ifi)))
			return true;
		ifi = nlmsg_data(h);
		/* AF_BRIDGE messages are about bridge ports, not about the device. */
		if (ifi->ifi_index != v->ifindex || ifi->ifi_family != AF_UNSPEC)
			return true;
		return vip_carrier_seen(
		    v, h->nlmsg_type == RTM_NEWLINK && flags_have_carrier(ifi->ifi_flags));
	case RTM_DELADDR:
		if (nlmsg_parse(h, sizeof(*ifa), tb, IFA_MAX, NULL) < 0)
			return true;
		ifa = nlmsg_data(h);
		if (ifa->ifa_family != v->family || ifa->ifa_index != (unsigned int)v->ifindex ||
		    ifa->ifa_prefixlen != v->prefixlen)
			return true;
		/* IFA_LOCAL is the address itself when present (IPv4, IPv6 with a peer). */
		a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
		if (!a || nla_len(a) != (int)v->ip_len ||
		    memcmp(nla_data(a), v->ip, v->ip_len) != 0)
			return true;
		return vip_address_gone(v);
	default:
		return true;
	}
}

static int32_t
vip_watch_dispatch(int32_t fd, int32_t revents, void *data)
{
	struct vip *v = data;
	bool resync = false;
	int i;

	for (i = 0; i < VIP_RX_BATCH; i++) {
		struct sockaddr_nl from;
		struct iovec iov = {.iov_base = v->rxbuf, .iov_len = VIP_RXBUF_LEN};
		struct msghdr mh = {
		    .msg_name = &from,
		    .msg_namelen = sizeof(from),
		    .msg_iov = &iov,
		    .msg_iovlen = 1,
		};
		struct nlmsghdr *h;
		ssize_t n;
		int rem;

		n = recvmsg(fd, &mh, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			/* ENOBUFS: the kernel dropped notifications for us. */
			qb_log(LOG_DEBUG, "vip %s: watch recv: %d", v->text, -errno);
			resync = true;
			if (errno == ENOBUFS)
				continue;
			break;
		}
		if (n == 0)
			break;
		if (mh.msg_flags & MSG_TRUNC) {
			resync = true;
			continue;
		}
		/* Only the kernel's notifications; nobody else may talk to us here. */
		if (from.nl_pid != 0)
			continue;
		rem = (int)n;
		for (h = (struct nlmsghdr *)v->rxbuf; nlmsg_ok(h, rem); h = nlmsg_next(h, &rem)) {
			if (!vip_watch_msg(v, h))
				return -1; /* v was freed from a callback; drop the fd. */
		}
	}
	if (resync && !vip_resync(v))
		return -1;
	return 0;
}

static int
fd_cloexec_nonblock(int fd)
{
	int fl;

	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int
vip_nl_open(struct nl_sock **ret_sk)
{
	struct nl_sock *sk;
	int r;

	sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	r = nl_to_errno(nl_connect(sk, NETLINK_ROUTE));
	if (r == 0)
		r = fd_cloexec_nonblock(nl_socket_get_fd(sk));
	if (r < 0) {
		nl_socket_free(sk);
		return r;
	}
	*ret_sk = sk;
	return 0;
}

struct vip *
vip_new(qb_loop_t *loop, const struct vip_config *cfg, vip_event_fn on_event, void *data)
{
	struct rtnl_link *link = NULL;
	struct vip *v;
	int r;

	if (!loop || !cfg || !cfg->address || !cfg->interface || !on_event || cfg->lifetime_s < 3 ||
	    cfg->lifetime_s == UINT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		errno = ENOMEM;
		return NULL;
	}
	v->loop = loop;
	v->on_event = on_event;
	v->data = data;
	v->watch_fd = -1;
	v->packet_fd = -1;
	v->announce_count = cfg->announce_count;
	v->announce_interval_ms = cfg->announce_interval_ms;
	v->lifetime_s = cfg->lifetime_s;

	r = vip_parse(v, cfg->address);
	if (r < 0)
		goto fail;
	if (cfg->interface[0] == '\0' || strlen(cfg->interface) >= sizeof(v->interface)) {
		r = -ENODEV;
		goto fail;
	}
	strcpy(v->interface, cfg->interface);

	v->rxbuf = malloc(VIP_RXBUF_LEN);
	if (!v->rxbuf) {
		r = -ENOMEM;
		goto fail;
	}

	r = vip_nl_open(&v->req);
	if (r < 0)
		goto fail;
	r = rtnl_link_get_kernel(v->req, 0, v->interface, &link);
	if (r < 0) {
		r = nl_to_errno(r);
		if (r == -ENOENT)
			r = -ENODEV;
		goto fail;
	}
	v->ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);

	/*
	 * Subscribe before reading the carrier, so that a change in between
	 * shows up as an event rather than being lost.
	 */
	r = vip_nl_open(&v->watch);
	if (r < 0)
		goto fail;
	r = nl_to_errno(nl_socket_add_memberships(v->watch, RTNLGRP_LINK,
	    v->family == AF_INET ? RTNLGRP_IPV4_IFADDR : RTNLGRP_IPV6_IFADDR, 0));
	if (r < 0)
		goto fail;
	/* Best effort: capped by net.core.rmem_max, and an overrun only costs a resync. */
	(void)nl_socket_set_buffer_size(v->watch, VIP_RCVBUF, 0);
	v->watch_fd = nl_socket_get_fd(v->watch);

	{
		unsigned int flags = 0;

		r = vip_link_get(v, &flags, NULL, NULL);
		if (r < 0)
			goto fail;
		v->carrier = flags_have_carrier(flags);
	}

	r = announce_open(v->ifindex);
	if (r < 0)
		goto fail;
	v->packet_fd = r;

	r = qb_loop_poll_add(loop, QB_LOOP_MED, v->watch_fd, POLLIN, v, vip_watch_dispatch);
	if (r < 0)
		goto fail;
	v->watch_polled = true;

	qb_log(LOG_DEBUG, "vip %s/%u on %s (ifindex %d): ready, carrier %d", v->text, v->prefixlen,
	    v->interface, v->ifindex, v->carrier);
	return v;

fail:
	qb_log(LOG_DEBUG, "vip %s on %s: new: %d", cfg->address, cfg->interface, r);
	vip_destroy(v);
	errno = -r;
	return NULL;
}

void
vip_free(struct vip *v)
{
	if (!v)
		return;
	if (v->in_callback) {
		/* Called from on_event: vip_emit frees v once the callback returns. */
		v->free_pending = true;
		v->acquired = false;
		vip_announce_stop(v);
		vip_refresh_stop(v);
		return;
	}
	vip_destroy(v);
}

int
vip_acquire(struct vip *v)
{
	int r;

	/*
	 * The contract: on failure nothing is held, even after an earlier
	 * acquire.  A failed add changed nothing, so only delete what we held.
	 */
	r = vip_addr_change(v, true);
	if (r < 0) {
		if (v->acquired)
			(void)vip_release(v);
		return r;
	}
	r = vip_refresh_arm(v);
	if (r < 0) {
		(void)vip_release(v);
		return r;
	}
	v->acquired = true;
	vip_announce_start(v);
	return 0;
}

int
vip_release(struct vip *v)
{
	int r;

	/* Cleared first, so that our own deletion's notification is not taken for an attack. */
	v->acquired = false;
	vip_announce_stop(v);
	vip_refresh_stop(v);
	r = vip_addr_change(v, false);
	if (r == -EADDRNOTAVAIL || r == -ENODEV)
		r = 0;
	return r;
}

bool
vip_present(struct vip *v)
{
	struct vip_find f = {.v = v, .found = false};
	struct nl_cache *cache = NULL;
	int r;

	r = rtnl_addr_alloc_cache(v->req, &cache);
	if (r < 0) {
		qb_log(LOG_DEBUG, "vip %s: address dump: %d", v->text, nl_to_errno(r));
		return false;
	}
	nl_cache_foreach(cache, vip_find_one, &f);
	nl_cache_free(cache);
	return f.found;
}

bool
vip_acquired(const struct vip *v)
{
	return v->acquired;
}

bool
vip_carrier(struct vip *v)
{
	unsigned int flags = 0;

	if (vip_link_get(v, &flags, NULL, NULL) < 0)
		return false;
	return flags_have_carrier(flags);
}

const char *
vip_address(const struct vip *v)
{
	return v->text;
}

/*
 * probe - measure how long an IPv4 address stops answering.
 *
 * Owns one raw ICMP socket and two threads. The sender thread sends an
 * echo request to ADDR at fixed absolute times (start + k * interval,
 * clock_nanosleep with TIMER_ABSTIME on CLOCK_MONOTONIC): a missing reply
 * never delays the next request, unlike ping -i, so the schedule keeps
 * probing at the same rate through an outage. If the sender falls behind
 * (the host was busy), it skips the missed slots and counts them instead of
 * sending a burst. The main thread receives the replies on the non-blocking
 * socket, stamps each with CLOCK_MONOTONIC and keeps the longest gap between
 * two consecutive replies; the time from the start to the first reply and
 * from the last reply to the end count as gaps too, so an address that never
 * comes back shows as one long gap.
 *
 * It stops on SIGINT or SIGTERM, after --duration-ms, or, with --resume-ms,
 * once a gap longer than --gap-ms was seen and replies then flowed for
 * --resume-ms without such a gap. It then prints one line:
 *
 *   max_gap_ms=G sent=S received=R gaps=N gap_at_ms=T skipped=K
 *
 * G: longest interval between consecutive replies (ms, 1 decimal); N: gaps
 * longer than --gap-ms; T: when the longest gap began (ms after the start);
 * K: send slots missed because the process was not scheduled. Needs root
 * (or CAP_NET_RAW). Exit 0 on success, 1 on a runtime error, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_MSEC 1000000LL
#define NSEC_PER_SEC 1000000000LL

struct probe {
	int fd;
	struct sockaddr_in dst;
	uint16_t ident;
	int64_t interval_ns;
	int64_t start_ns;
	atomic_bool stop;
	atomic_uint_fast64_t sent;
	atomic_uint_fast64_t skipped;
	int send_errno;
};

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static uint16_t
icmp_checksum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t sum = 0;

	for (; len > 1; len -= 2, p += 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len == 1)
		sum += (uint32_t)(p[0] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static void *
sender_main(void *arg)
{
	struct probe *pr = arg;
	int64_t next = pr->start_ns;
	uint16_t seq = 0;

	while (!atomic_load(&pr->stop)) {
		struct icmphdr h;
		struct timespec ts;
		int64_t now;

		memset(&h, 0, sizeof(h));
		h.type = ICMP_ECHO;
		h.un.echo.id = htons(pr->ident);
		h.un.echo.sequence = htons(seq++);
		h.checksum = icmp_checksum(&h, sizeof(h));
		/* ENOBUFS / EHOSTUNREACH while the address has no owner are part
		 * of the outage being measured: the slot counts as sent. */
		if (sendto(pr->fd, &h, sizeof(h), 0, (const struct sockaddr *)&pr->dst,
		        sizeof(pr->dst)) < 0 &&
		    errno != ENOBUFS && errno != EHOSTUNREACH && errno != EAGAIN &&
		    errno != EHOSTDOWN && errno != ENETUNREACH) {
			pr->send_errno = errno;
			atomic_store(&pr->stop, true);
			break;
		}
		atomic_fetch_add(&pr->sent, 1);

		next += pr->interval_ns;
		now = now_ns();
		if (now > next) {
			/* Behind schedule: skip the missed slots, never burst. */
			int64_t missed = (now - next) / pr->interval_ns + 1;

			atomic_fetch_add(&pr->skipped, (uint_fast64_t)missed);
			next += missed * pr->interval_ns;
		}
		ts.tv_sec = (time_t)(next / NSEC_PER_SEC);
		ts.tv_nsec = (long)(next % NSEC_PER_SEC);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
	return NULL;
}

/* A reply to us from the target: an echo reply from dst with our ident. */
static bool
is_our_reply(const struct probe *pr, const uint8_t *buf, ssize_t n, const struct sockaddr_in *from)
{
	const struct iphdr *ip = (const struct iphdr *)(const void *)buf;
	struct icmphdr h;
	size_t hl;

	if (n < (ssize_t)sizeof(*ip) || from->sin_addr.s_addr != pr->dst.sin_addr.s_addr)
		return false;
	hl = (size_t)ip->ihl * 4;
	if (hl < sizeof(*ip) || (size_t)n < hl + sizeof(h))
		return false;
	memcpy(&h, buf + hl, sizeof(h));
	return h.type == ICMP_ECHOREPLY && ntohs(h.un.echo.id) == pr->ident;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: probe [--interval-ms MS] [--duration-ms MS] [--gap-ms MS] "
	           "[--resume-ms MS] [--ready-file FILE] ADDR\n"
	           "  --interval-ms MS  send period, fixed schedule (default 5, 0.1 .. 1000)\n"
	           "  --duration-ms MS  stop after MS (default 0: until SIGINT/SIGTERM)\n"
	           "  --gap-ms MS       a silence longer than MS counts as a gap (default 4 "
	           "intervals)\n"
	           "  --resume-ms MS    stop once replies flowed MS after a gap\n"
	           "  --ready-file FILE create FILE after the first reply\n"
	           "prints: max_gap_ms=G sent=S received=R gaps=N gap_at_ms=T skipped=K\n");
}

static int
parse_ms(const char *s, const char *opt, double lo, double hi, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "probe: %s '%s': need milliseconds in %g .. %g\n", opt, s, lo, hi);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"interval-ms", required_argument, NULL, 'i'},
	    {"duration-ms", required_argument, NULL, 'd'},
	    {"gap-ms", required_argument, NULL, 'g'},
	    {"resume-ms", required_argument, NULL, 'r'},
	    {"ready-file", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	double interval_ms = 5, duration_ms = 0, gap_ms = -1, resume_ms = 0;
	const char *ready_file = NULL;
	struct probe pr;
	struct sigaction sa;
	pthread_t sender;
	int64_t last, max_gap = 0, gap_at = 0, gap_ns, resume_ns, end_ns = 0;
	uint64_t received = 0, gaps = 0;
	int64_t flowing_since = 0;
	uint64_t gaps_seen = 0;
	bool ready = false, after_gap = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (parse_ms(optarg, "--interval-ms", 0.1, 1000, &interval_ms) < 0)
				return 2;
			break;
		case 'd':
			if (parse_ms(optarg, "--duration-ms", 0, 86400000, &duration_ms) < 0)
				return 2;
			break;
		case 'g':
			if (parse_ms(optarg, "--gap-ms", 0.1, 86400000, &gap_ms) < 0)
				return 2;
			break;
		case 'r':
			if (parse_ms(optarg, "--resume-ms", 0.1, 86400000, &resume_ms) < 0)
				return 2;
			break;
		case 'f':
			ready_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "probe: need exactly one ADDR\n");
		usage(stderr);
		return 2;
	}

	memset(&pr, 0, sizeof(pr));
	pr.dst.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[optind], &pr.dst.sin_addr) != 1) {
		fprintf(stderr, "probe: '%s' is not an IPv4 address\n", argv[optind]);
		return 2;
	}
	pr.interval_ns = (int64_t)(interval_ms * NSEC_PER_MSEC);
	if (gap_ms < 0)
		gap_ms = 4 * interval_ms;
	gap_ns = (int64_t)(gap_ms * NSEC_PER_MSEC);
	resume_ns = (int64_t)(resume_ms * NSEC_PER_MSEC);
	pr.ident = (uint16_t)(getpid() & 0xffff);
	atomic_init(&pr.stop, false);
	atomic_init(&pr.sent, 0);
	atomic_init(&pr.skipped, 0);

	pr.fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (pr.fd < 0) {
		fprintf(stderr, "probe: raw ICMP socket: %s (needs root or CAP_NET_RAW)\n",
		    strerror(errno));
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);

	/* The sender blocks the signals so they interrupt the main thread's
	 * poll, which is where the stop is decided. */
	{
		sigset_t block, old;

		(void)sigemptyset(&block);
		(void)sigaddset(&block, SIGINT);
		(void)sigaddset(&block, SIGTERM);
		(void)pthread_sigmask(SIG_BLOCK, &block, &old);
		pr.start_ns = now_ns();
		rc = pthread_create(&sender, NULL, sender_main, &pr);
		(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc) {
			fprintf(stderr, "probe: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	last = pr.start_ns;
	if (duration_ms > 0)
		end_ns = pr.start_ns + (int64_t)(duration_ms * NSEC_PER_MSEC);

	while (!got_signal && !atomic_load(&pr.stop)) {
		struct pollfd pfd = {.fd = pr.fd, .events = POLLIN};
		int64_t now = now_ns();
		int timeout = 20;

		if (end_ns && now >= end_ns)
			break;
		if (end_ns && (end_ns - now) / NSEC_PER_MSEC + 1 < timeout)
			timeout = (int)((end_ns - now) / NSEC_PER_MSEC + 1);
		if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
			fprintf(stderr, "probe: poll: %s\n", strerror(errno));
			break;
		}
		for (;;) {
			uint8_t buf[1500];
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n =
			    recvfrom(pr.fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

			if (n < 0)
				break;
			if (!is_our_reply(&pr, buf, n, &from))
				continue;
			now = now_ns();
			if (now - last > max_gap) {
				max_gap = now - last;
				gap_at = last - pr.start_ns;
			}
			if (now - last > gap_ns) {
				gaps++;
				after_gap = true;
			}
			last = now;
			received++;
			if (!ready && ready_file) {
				int rfd = open(
				    ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

				if (rfd >= 0)
					(void)close(rfd);
				ready = true;
			}
		}
		now = now_ns();
		if (resume_ns && after_gap && now - last <= gap_ns) {
			/* Replies have flowed since the last gap ended (at the first
			 * reply after it): stop once they did so for resume_ns. */
			if (gaps_seen != gaps) {
				gaps_seen = gaps;
				flowing_since = last;
			}
			if (now - flowing_since >= resume_ns)
				break;
		}
	}
	atomic_store(&pr.stop, true);
	(void)pthread_join(sender, NULL);
	if (pr.send_errno) {
		fprintf(stderr, "probe: sendto %s: %s\n", argv[optind], strerror(pr.send_errno));
		return 1;
	}
	{
		int64_t now = now_ns();

		if (now - last > max_gap) {
			max_gap = now - last;
			gap_at = last - pr.start_ns;
		}
		if (now - last > gap_ns)
			gaps++;
	}
	printf("max_gap_ms=%.1f sent=%llu received=%llu gaps=%llu gap_at_ms=%.1f skipped=%llu\n",
	    (double)max_gap / NSEC_PER_MSEC, (unsigned long long)atomic_load(&pr.sent),
	    (unsigned long long)received, (unsigned long long)gaps, (double)gap_at / NSEC_PER_MSEC,
	    (unsigned long long)atomic_load(&pr.skipped));
	(void)close(pr.fd);
	return 0;
}

/*
 * writer - the load generator of the replication benchmark.
 *
 * Owns N writer threads, each with its own connection: to the local
 * tandemd through libtandem (the default; run it on the active node), or,
 * with --local PATH, straight to an SQLite database file in WAL mode with
 * synchronous=NORMAL, the ceiling a replicated commit is compared with.
 * Each thread loops on one transaction per commit, INSERT INTO kv(k, v)
 * VALUES(?, ?) with bound parameters, a 28-byte text (or a --blob-kib
 * blob, to fill a database quickly), and times every commit with
 * CLOCK_MONOTONIC. The threads start together behind a barrier; at the
 * end the latencies of all threads are merged and sorted, and one line
 * (or with --json one JSON object) gives the commits per second over the
 * wall time of the run, the p50/p99 commit latency and the process's own
 * CPU time (user and system) over the run. Keys never collide
 * between threads: commit j of thread i writes key start + j * N + i.
 *
 * With --probe-ms MS it is instead a probe of tandemd's event loop: one
 * connection runs "SELECT 1" every MS milliseconds on a fixed schedule
 * (absolute clock_nanosleep; a late slot is skipped, never made up in a
 * burst) until --seconds or SIGINT/SIGTERM, and reports the round-trip
 * latencies. The query touches no table, so a slow answer means the
 * daemon's loop was busy with something else (or this process was not
 * scheduled: the machine is shared with the writers).
 *
 * Exit 0 on success, 1 when a thread hit an error that stops it (no
 * daemon, not the active, ...) or nothing committed, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tandem.h"

#define NSEC_PER_USEC 1000LL
#define NSEC_PER_MSEC 1000000LL
#define NSEC_PER_SEC 1000000000LL
#define VALUE_LEN 28
#define MAX_WRITERS 1024
#define BUSY_TIMEOUT_MS 5000

static const char create_sql[] = "CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v TEXT)";
static const char insert_sql[] = "INSERT INTO kv(k, v) VALUES(?, ?)";

struct options {
	unsigned int writers;
	double seconds; /* 0: until count */
	uint64_t count; /* commits per writer; 0: until seconds */
	const char *local;
	unsigned int blob_kib;
	int64_t start_key;
	double probe_ms; /* > 0: probe mode */
	const char *ready_file;
	bool json;
};

/* Commit latencies of one thread, in nanoseconds. */
struct samples {
	int64_t *v;
	size_t n;
	size_t cap;
};

struct worker {
	pthread_t thread;
	unsigned int index;
	struct samples lat;
	uint64_t commits;
	uint64_t errors;
	uint64_t busy_retries;
	bool fatal;
	char first_error[256];
};

static struct options opt = {
    .writers = 1,
    .start_key = 1,
};
static pthread_barrier_t start_barrier;
static int64_t deadline_ns; /* set before the barrier opens; 0: none */
static atomic_bool stopping;
static const void *blob; /* --blob-kib: the shared payload */

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&stopping, true);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* a - b, in µs. */
static double
tv_diff_us(const struct timeval *a, const struct timeval *b)
{
	return (double)(a->tv_sec - b->tv_sec) * 1e6 + (double)(a->tv_usec - b->tv_usec);
}

static int
samples_add(struct samples *s, int64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap != 0 ? s->cap * 2 : 4096;
		int64_t *p = realloc(s->v, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0 < p <= 100) of sorted v[0..n), in µs. */
static double
percentile_us(const int64_t *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / (double)NSEC_PER_USEC;
}

static void
worker_error(struct worker *w, const char *msg, bool fatal)
{
	if (w->first_error[0] == '\0')
		(void)snprintf(w->first_error, sizeof(w->first_error), "%s", msg);
	w->errors++;
	if (fatal)
		w->fatal = true;
}

/* Whether thread w should commit once more. */
static bool
worker_more(const struct worker *w)
{
	if (atomic_load(&stopping) || w->fatal)
		return false;
	if (opt.count != 0 && w->commits + w->errors >= opt.count)
		return false;
	return deadline_ns == 0 || now_ns() < deadline_ns;
}

static void
value_text(char *buf, int64_t key)
{
	/* "row-" and 24 digits: VALUE_LEN bytes exactly. */
	(void)snprintf(buf, VALUE_LEN + 1, "row-%024" PRId64, key);
}

static void
worker_record(struct worker *w, int64_t t0)
{
	w->commits++;
	if (samples_add(&w->lat, now_ns() - t0) < 0)
		worker_error(w, "out of memory for latency samples", true);
}

static void
run_tandem(struct worker *w)
{
	struct tandem *t = tandem_connect();
	char text[VALUE_LEN + 1], msg[256];
	uint64_t j;

	if (t == NULL) {
		(void)snprintf(msg, sizeof(msg), "cannot connect to tandemd: %s", strerror(errno));
		worker_error(w, msg, true);
	}
	(void)pthread_barrier_wait(&start_barrier);
	for (j = 0; t != NULL && worker_more(w); j++) {
		int64_t key = opt.start_key + (int64_t)(j * opt.writers + w->index), t0;
		struct tandem_value params[2];
		int rc;

		params[0] = tandem_int(key);
		if (blob != NULL) {
			params[1] = tandem_blob(blob, (size_t)opt.blob_kib * 1024);
		} else {
			value_text(text, key);
			params[1] = tandem_text(text);
		}
		t0 = now_ns();
		rc = tandem_exec(t, insert_sql, params, 2, NULL);
		if (rc == 0) {
			worker_record(w, t0);
			continue;
		}
		(void)snprintf(msg, sizeof(msg), "%s (%s)", tandem_errmsg(t), strerror(-rc));
		/* Nothing more can commit on this connection after these. */
		worker_error(w, msg,
		    rc == -ENOTCONN || rc == -EROFS || rc == -EPROTO || rc == -EPERM ||
		        rc == -EMSGSIZE || rc == -ENOMEM);
	}
	tandem_close(t);
}

static bool
sqlite_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

static void
run_local(struct worker *w)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char text[VALUE_LEN + 1], msg[256];
	bool ok = false;
	uint64_t j;
	int rc;

	rc = sqlite3_open_v2(opt.local, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, insert_sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		ok = true;
	} else {
		(void)snprintf(msg, sizeof(msg), "%s: %s", opt.local,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		worker_error(w, msg, true);
	}
	(void)pthread_barrier_wait(&start_barrier);
	for (j = 0; ok && worker_more(w); j++) {
		int64_t key = opt.start_key + (int64_t)(j * opt.writers + w->index), t0;

		t0 = now_ns();
		(void)sqlite3_bind_int64(st, 1, key);
		if (blob != NULL) {
			(void)sqlite3_bind_blob(
			    st, 2, blob, (int)opt.blob_kib * 1024, SQLITE_STATIC);
		} else {
			value_text(text, key);
			(void)sqlite3_bind_text(st, 2, text, VALUE_LEN, SQLITE_STATIC);
		}
		/* The busy handler waits up to BUSY_TIMEOUT_MS; past that, try again. */
		while (sqlite_busy(rc = sqlite3_step(st)) && !atomic_load(&stopping)) {
			(void)sqlite3_reset(st);
			w->busy_retries++;
		}
		(void)sqlite3_reset(st);
		if (rc == SQLITE_DONE) {
			worker_record(w, t0);
		} else {
			(void)snprintf(msg, sizeof(msg), "%s: %s", opt.local, sqlite3_errmsg(db));
			worker_error(w, msg, !sqlite_busy(rc) && rc != SQLITE_CONSTRAINT);
		}
	}
	(void)sqlite3_finalize(st);
	(void)sqlite3_close(db);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (opt.local != NULL)
		run_local(w);
	else
		run_tandem(w);
	return NULL;
}

/* Creates kv if missing (and, locally, switches the file to WAL). */
static int
create_table(void)
{
	int rc;

	if (opt.local != NULL) {
		sqlite3 *db = NULL;

		rc = sqlite3_open_v2(
		    opt.local, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, create_sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			fprintf(stderr, "writer: %s: %s\n", opt.local,
			    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		(void)sqlite3_close(db);
		return rc == SQLITE_OK ? 0 : -EIO;
	}

	struct tandem *t = tandem_connect();

	if (t == NULL) {
		fprintf(stderr, "writer: cannot connect to tandemd: %s\n", strerror(errno));
		return -errno;
	}
	rc = tandem_exec(t, create_sql, NULL, 0, NULL);
	if (rc < 0)
		fprintf(stderr, "writer: %s: %s%s%s\n", create_sql, tandem_errmsg(t),
		    rc == -EROFS ? "; the active is " : "", rc == -EROFS ? tandem_active(t) : "");
	tandem_close(t);
	return rc;
}

static int
write_ready_file(void)
{
	FILE *f;

	if (opt.ready_file == NULL)
		return 0;
	f = fopen(opt.ready_file, "we");
	if (f == NULL || fclose(f) != 0) {
		fprintf(stderr, "writer: %s: %s\n", opt.ready_file, strerror(errno));
		return -errno;
	}
	return 0;
}

static int
run_writers(void)
{
	struct worker *w = calloc(opt.writers, sizeof(*w));
	struct samples all = {0};
	uint64_t commits = 0, errors = 0, retries = 0;
	const char *first_error = NULL;
	bool fatal = false;
	struct rusage ru0, ru1;
	int64_t t0, t1;
	double secs, p50, p99, user_us, sys_us;
	unsigned int i, started = 0;
	int rc = 0;

	if (w == NULL || pthread_barrier_init(&start_barrier, NULL, opt.writers + 1) != 0) {
		fprintf(stderr, "writer: out of memory\n");
		free(w);
		return 1;
	}
	for (i = 0; i < opt.writers; i++) {
		w[i].index = i;
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			fprintf(stderr, "writer: cannot start thread %u\n", i);
			/* The barrier counts every thread: stop here for good. */
			_exit(1);
		}
		started++;
	}
	/* Every thread is connected and waits: start the clock. */
	(void)getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ns();
	if (opt.seconds > 0)
		deadline_ns = t0 + (int64_t)(opt.seconds * (double)NSEC_PER_SEC);
	(void)write_ready_file();
	(void)pthread_barrier_wait(&start_barrier);
	for (i = 0; i < started; i++)
		(void)pthread_join(w[i].thread, NULL);
	t1 = now_ns();
	(void)getrusage(RUSAGE_SELF, &ru1);
	user_us = tv_diff_us(&ru1.ru_utime, &ru0.ru_utime);
	sys_us = tv_diff_us(&ru1.ru_stime, &ru0.ru_stime);

	for (i = 0; i < opt.writers; i++) {
		size_t k;

		commits += w[i].commits;
		errors += w[i].errors;
		retries += w[i].busy_retries;
		fatal = fatal || w[i].fatal;
		if (first_error == NULL && w[i].first_error[0] != '\0')
			first_error = w[i].first_error;
		for (k = 0; k < w[i].lat.n; k++)
			if (samples_add(&all, w[i].lat.v[k]) < 0) {
				fprintf(stderr, "writer: out of memory\n");
				return 1;
			}
	}
	qsort(all.v, all.n, sizeof(*all.v), cmp_i64);
	secs = (double)(t1 - t0) / (double)NSEC_PER_SEC;
	p50 = percentile_us(all.v, all.n, 50);
	p99 = percentile_us(all.v, all.n, 99);
	if (opt.json)
		printf("{\"mode\": \"%s\", \"writers\": %u, \"commits\": %" PRIu64
		       ", \"seconds\": %.3f, \"commits_per_s\": %.1f, \"p50_us\": %.1f, "
		       "\"p99_us\": %.1f, \"max_us\": %.1f, \"errors\": %" PRIu64
		       ", \"busy_retries\": %" PRIu64
		       ", \"cpu_user_us\": %.0f, \"cpu_sys_us\": %.0f}\n",
		    opt.local != NULL ? "local" : "tandem", opt.writers, commits, secs,
		    secs > 0 ? (double)commits / secs : 0, p50, p99,
		    percentile_us(all.v, all.n, 100), errors, retries, user_us, sys_us);
	else
		printf("writers=%u commits=%" PRIu64 " seconds=%.3f commits_per_s=%.1f p50_us=%.1f "
		       "p99_us=%.1f errors=%" PRIu64 " cpu_user_us=%.0f cpu_sys_us=%.0f\n",
		    opt.writers, commits, secs, secs > 0 ? (double)commits / secs : 0, p50, p99,
		    errors, user_us, sys_us);
	if (first_error != NULL)
		fprintf(
		    stderr, "writer: %" PRIu64 " error(s), the first: %s\n", errors, first_error);
	if (fatal || commits == 0)
		rc = 1;
	for (i = 0; i < opt.writers; i++)
		free(w[i].lat.v);
	free(all.v);
	free(w);
	(void)pthread_barrier_destroy(&start_barrier);
	return rc;
}

static int
run_probe(void)
{
	int64_t interval = (int64_t)(opt.probe_ms * (double)NSEC_PER_MSEC), next, end = 0;
	struct samples lat = {0};
	struct tandem *t = tandem_connect();
	uint64_t errors = 0, skipped = 0, reconnects = 0;
	char first_error[256] = "";
	double p50, p99, max;

	if (t == NULL) {
		fprintf(stderr, "writer: cannot connect to tandemd: %s\n", strerror(errno));
		return 1;
	}
	if (write_ready_file() < 0) {
		tandem_close(t);
		return 1;
	}
	next = now_ns();
	if (opt.seconds > 0)
		end = next + (int64_t)(opt.seconds * (double)NSEC_PER_SEC);
	while (!atomic_load(&stopping) && (end == 0 || now_ns() < end)) {
		struct timespec ts;
		int64_t t0, now;
		int rc;

		if (t == NULL) {
			/* tandemd restarted: count the time without it as no sample. */
			t = tandem_connect();
			reconnects += t != NULL;
		}
		if (t != NULL) {
			struct tandem_rows rows;

			t0 = now_ns();
			rc = tandem_query(t, "SELECT 1", NULL, 0, &rows);
			if (rc == 0) {
				tandem_rows_free(&rows);
				if (samples_add(&lat, now_ns() - t0) < 0)
					break;
			} else {
				if (first_error[0] == '\0')
					(void)snprintf(first_error, sizeof(first_error), "%s",
					    tandem_errmsg(t));
				errors++;
				if (rc == -ENOTCONN) {
					tandem_close(t);
					t = NULL;
				}
			}
		}
		next += interval;
		now = now_ns();
		if (now > next) {
			int64_t missed = (now - next) / interval + 1;

			skipped += (uint64_t)missed;
			next += missed * interval;
		}
		ts.tv_sec = (time_t)(next / NSEC_PER_SEC);
		ts.tv_nsec = (long)(next % NSEC_PER_SEC);
		(void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	tandem_close(t);
	qsort(lat.v, lat.n, sizeof(*lat.v), cmp_i64);
	p50 = percentile_us(lat.v, lat.n, 50);
	p99 = percentile_us(lat.v, lat.n, 99);
	max = percentile_us(lat.v, lat.n, 100);
	if (opt.json)
		printf("{\"samples\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
		       "\"errors\": %" PRIu64 ", \"skipped\": %" PRIu64 ", \"reconnects\": %" PRIu64
		       "}\n",
		    lat.n, p50, p99, max, errors, skipped, reconnects);
	else
		printf("samples=%zu p50_us=%.1f p99_us=%.1f max_us=%.1f errors=%" PRIu64
		       " skipped=%" PRIu64 " reconnects=%" PRIu64 "\n",
		    lat.n, p50, p99, max, errors, skipped, reconnects);
	if (first_error[0] != '\0')
		fprintf(stderr, "writer: %" PRIu64 " probe error(s), the first: %s\n", errors,
		    first_error);
	free(lat.v);
	return lat.n > 0 ? 0 : 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: writer [--writers N] [--seconds S | --count N] [--local PATH] [--blob-kib K]\n"
	    "              [--start-key K] [--ready-file FILE] [--json]\n"
	    "       writer --probe-ms MS [--seconds S] [--ready-file FILE] [--json]\n"
	    "  --writers N     concurrent writers, one connection each (default 1)\n"
	    "  --seconds S     run for S seconds (default 5; probe: until SIGINT)\n"
	    "  --count N       commits per writer (no time limit unless --seconds)\n"
	    "  --local PATH    write to the SQLite file PATH (WAL, synchronous=NORMAL)\n"
	    "                  instead of the local tandemd\n"
	    "  --blob-kib K    each row's v is a K KiB blob instead of 28 bytes of text\n"
	    "  --start-key K   first key (default 1); writer i of N writes K+i, K+i+N, ...\n"
	    "  --ready-file F  create F once connected (probe) or when the writers start\n"
	    "  --json          print one JSON object\n"
	    "  --probe-ms MS   probe tandemd's loop: SELECT 1 every MS ms, report latency\n"
	    "prints: writers commits seconds commits_per_s p50_us p99_us errors\n"
	    "        cpu_user_us cpu_sys_us (this process's CPU time during the run)\n");
}

static int
parse_num(const char *s, const char *name, double lo, double hi, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "writer: %s '%s': need a number in %g .. %g\n", name, s, lo, hi);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"writers", required_argument, NULL, 'w'},
	    {"seconds", required_argument, NULL, 's'},
	    {"count", required_argument, NULL, 'c'},
	    {"local", required_argument, NULL, 'l'},
	    {"blob-kib", required_argument, NULL, 'b'},
	    {"start-key", required_argument, NULL, 'k'},
	    {"ready-file", required_argument, NULL, 'r'},
	    {"probe-ms", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sigaction sa;
	bool seconds_set = false;
	void *payload = NULL;
	double v;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (parse_num(optarg, "--writers", 1, MAX_WRITERS, &v) < 0)
				return 2;
			opt.writers = (unsigned int)v;
			break;
		case 's':
			if (parse_num(optarg, "--seconds", 0.001, 1e6, &opt.seconds) < 0)
				return 2;
			seconds_set = true;
			break;
		case 'c':
			if (parse_num(optarg, "--count", 1, 1e12, &v) < 0)
				return 2;
			opt.count = (uint64_t)v;
			break;
		case 'l':
			opt.local = optarg;
			break;
		case 'b':
			if (parse_num(optarg, "--blob-kib", 1, 1024 * 1024, &v) < 0)
				return 2;
			opt.blob_kib = (unsigned int)v;
			break;
		case 'k':
			if (parse_num(optarg, "--start-key", -9e18, 9e18, &v) < 0)
				return 2;
			opt.start_key = (int64_t)v;
			break;
		case 'r':
			opt.ready_file = optarg;
			break;
		case 'p':
			if (parse_num(optarg, "--probe-ms", 0.1, 10000, &opt.probe_ms) < 0)
				return 2;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "writer: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (opt.probe_ms > 0 && (opt.local != NULL || opt.count != 0 || opt.blob_kib != 0)) {
		fprintf(stderr, "writer: --probe-ms takes only --seconds, --ready-file, --json\n");
		return 2;
	}
	if (!seconds_set && opt.count == 0 && opt.probe_ms == 0)
		opt.seconds = 5;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);

	if (opt.probe_ms > 0)
		return run_probe();

	if (opt.blob_kib != 0) {
		size_t i, len = (size_t)opt.blob_kib * 1024;
		uint64_t x = 0x9e3779b97f4a7c15ULL;
		unsigned char *p = malloc(len);

		if (p == NULL) {
			fprintf(stderr, "writer: out of memory for a %u KiB blob\n", opt.blob_kib);
			return 1;
		}
		/* Noise, so that nothing on the way compresses it away. */
		for (i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = (unsigned char)x;
		}
		payload = p;
		blob = p;
	}
	rc = create_table();
	if (rc == 0)
		rc = run_writers();
	else
		rc = 1;
	free(payload);
	return rc;
}

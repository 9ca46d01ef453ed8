/*
 * replicate: the pair's replicated database on the agent's loop.  This
 * file owns the roles (active / standby), the connections to the peer and
 * what flows on them: HELLO, the frames of the group commit, the acks,
 * the backlog kept for catching a standby up, the snapshots and the
 * waiting commits of sync mode.  store.c owns SQLite, stream.c the TLS
 * sockets and wire.c the bytes of each frame.
 *
 * Connections.  r->up is the connection a standby makes to the active
 * peer; r->down the one an active accepted from its standby (one at a
 * time: a newer one replaces it).  Accepted connections while not active
 * get an ERROR "not active" and are closed.  Both sides send HELLO first;
 * the link is established once both HELLOs crossed.
 *
 * Active, on the standby's HELLO at (e, s): equal to our position, or a
 * position of our history that the backlog reaches back to, means the
 * frames after s are sent from the backlog (catch-up); anything else
 * means a snapshot: commits wait a moment while a worker thread folds
 * the WAL into the database file (store_checkpoint_full); with
 * checkpoints paused the file then stays the database at that position,
 * and it is sent in chunks while the socket drains (new commits go to the
 * WAL meanwhile), then the backlog frames after the snapshot's
 * position.  The backlog keeps every frame after that position while the
 * snapshot is under way (up to BACKLOG_HARD_CAP; past it the snapshot
 * starts over).  When the standby is switched to the live stream, an ACK
 * carrying our position tells it "you are in sync once you have applied
 * this".
 *
 * Standby: DATA frames are applied in bounded batches, each batch in one
 * transaction, followed by one ACK of the last applied position.  Applied
 * frames also go to the backlog, so after a promotion this node can catch
 * the old active up.  A snapshot is written to state_dir/snapshot-in.tmp,
 * checked against its hash, synced and opened by a worker thread, and
 * replaces the database (archiving ours when our history is not a prefix
 * of the snapshot's).  Input after SNAPSHOT_END waits until then.
 *
 * Group commit: replicate_exec queues a copy of the transaction; one loop
 * step commits everything queued with one store_exec_batch, so one frame
 * and one seq serve every transaction of that loop turn.  In sync mode a
 * new frame waits while one waits for its ack, so frames grow with load.
 *
 * No loop step runs long: snapshot chunks, catch-up frames and apply
 * batches are bounded per step, and continued from DRAINED or a job.
 */
#define _GNU_SOURCE
#include "replicate/replicate.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <qb/qblog.h>
#include <qb/qbloop.h>

#include "replicate/store.h"
#include "replicate/stream.h"
#include "replicate/wire.h"

#define DEFAULT_BACKLOG (64u << 20)
#define DEFAULT_SNAPSHOT_WAL (1024ull << 20)
/* A snapshot waiting for the checkpointer looks again this often, this many times at most. */
#define SNAP_WAIT_NS (100 * 1000 * 1000)
#define SNAP_WAIT_MAX 50
#define DEFAULT_RECONNECT_MS 200u
#define DEFAULT_TIMEOUT_MS 10000u
/* While a snapshot is under way the backlog may grow to this before it starts over. */
#define BACKLOG_HARD_CAP (256u << 20)
/* The active stops queueing snapshot chunks or catch-up frames past this. */
#define SEND_HIGH_WATER (1u << 20)
#define CHUNK_BYTES (256u << 10)
#define GATHER_BYTES (256u << 10)
#define PUMP_STEPS 8
/* One apply batch: at most this many frames or bytes. */
#define APPLY_FRAMES 64
#define APPLY_BYTES (512u << 10)
/* Frames and chunks decoded per input step before a job continues. */
#define INPUT_FRAMES 1024
#define INPUT_CHUNKS 2
#define COMMIT_MAX 1024
#define COMMIT_BYTES (256u << 10)
/* A step that has worked this long gives the loop back (pump, conn_process). */
#define STEP_BUDGET_US 2000
/* A step of the loop longer than this is counted (replicate_status.slow_steps). */
#define STEP_SLOW_US (10 * 1000)
/* How often a hold for the WAL's tail looks whether the copy is done. */
#define CKPT_POLL_NS (500 * 1000)
#define ERR_LEN 256

/* What an active sends its standby, in order. */
enum phase {
	PHASE_HELLO,     /* waiting for the standby's HELLO */
	PHASE_SNAP_MAKE, /* the worker copies the database */
	PHASE_SNAP_SEND, /* chunks go out as the socket drains */
	PHASE_CATCHUP,   /* backlog frames from next_seq */
	PHASE_LIVE,      /* every new frame at commit */
};

struct buf {
	uint8_t *p;
	size_t len, cap;
};

/* One frame kept for catch-up, encoded as it goes on the wire. */
struct entry {
	uint64_t epoch, seq;
	uint8_t *bytes;
	size_t len;
};

struct backlog {
	struct entry *v;
	size_t head, n, cap; /* live entries are v[head .. head + n) */
	size_t bytes;
};

/* A snapshot received by a standby. */
struct rx {
	bool on;
	int fd;
	uint64_t epoch, seq, total, done;
	EVP_MD_CTX *md;
};

struct conn {
	struct replicate *r;
	struct conn *next;
	uint64_t id;
	struct stream *s;
	struct wire_reader *rd;
	bool outgoing;   /* r->up: we are the standby */
	bool refusing;   /* accepted while not active: ERROR sent, closing */
	bool closing;    /* stream_close() called; CLOSED will free it */
	bool connected;  /* CONNECTED seen */
	bool hello_rcvd; /* the peer's HELLO arrived: the link is established */
	bool paused;     /* standby: input waits for a snapshot to be installed */
	/* Active side. */
	enum phase phase;
	uint64_t next_seq;
	uint64_t acked_seq;
	int snap_fd; /* the store's descriptor of the database (store_file_fd) */
	uint64_t snap_epoch, snap_seq, snap_size, snap_off, snap_schema;
	EVP_MD_CTX *snap_md;
	/* Standby side. */
	bool marker_set, live;
	uint64_t marker_seq;
	struct rx rx;
};

/* One client transaction, copied. */
struct req {
	struct req *next;
	struct store_stmt *stmts;
	size_t n;
	struct store_value *vals;
	char *bytes;
	size_t n_bytes; /* of bytes: the request's size, for COMMIT_BYTES */
	replicate_exec_fn done;
	void *data;
	struct replicate_result res;
};

enum work_kind {
	WORK_MAKE, /* active: fold the WAL into the database file, open the file */
	WORK_OPEN, /* standby: fsync snapshot-in.tmp, check our position in it */
};

/* A worker thread and the pipe it reports through. */
struct work {
	struct replicate *r;
	enum work_kind kind;
	pthread_t th;
	int pipe[2];
	uint64_t conn_id;
	/* In. */
	char *db_path, *file; /* file: snapshot-in.tmp (WORK_OPEN), the database (WORK_MAKE) */
	struct store *store;  /* WORK_MAKE: store_checkpoint_full only */
	int fd;               /* WORK_OPEN: the received file */
	int db_fd;            /* WORK_MAKE: store_file_fd, the store's (never closed here) */
	uint64_t old_epoch, old_seq;
	/* Out. */
	int rc;
	uint64_t epoch, seq, schema, size;
	int has_pos;
	char err[ERR_LEN];
};

/*
 * What the listener's callback gets.  An accepted stream belongs to us
 * only from its first event (CONNECTED or CLOSED), and stream_listener_free
 * leaves streams still in their handshake alone: such a stream may report
 * after replicate_free, and it still uses the TLS context.  So a freed
 * replicate that ever listened leaves its hub (r = NULL, with the TLS
 * context) on dead_hubs, where late streams are freed as they report.
 */
struct hub {
	struct replicate *r;
	struct stream_tls *tls;
	struct hub *next;
};

static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hub *dead_hubs;

struct replicate {
	qb_loop_t *loop;
	struct replicate_config cfg;
	replicate_event_fn on_event;
	void *data;
	struct store *store;
	struct stream_tls *tls; /* hub->tls */
	struct hub *hub;
	bool listened;
	struct stream_listener *listener;
	char *peer_name, *peer_addr;

	bool active, alone, peer_active, in_sync;
	struct conn *conns; /* every connection we own */
	struct conn *up, *down;
	uint64_t next_conn_id;

	struct backlog bl;
	bool pinned;
	uint64_t pin_seq;

	/* Group commit. */
	struct req *queue, **queue_tail;
	struct req *waiting, **waiting_tail;
	uint64_t n_waiting;
	uint64_t last_acked;
	/* The in-sync marker last sent to a standby (replicate_status.sync_marker). */
	uint64_t marker_epoch;
	uint64_t marker_seq;
	bool commit_job;
	/*
	 * While a snapshot is made (make != NULL) commits wait a moment (the
	 * WAL is folded into the file); checkpoints wait until it is sent too.
	 */
	bool ckpt_paused;

	struct work *make, *open;
	char *in_path;

	bool reconnect_on, timeout_on;
	qb_loop_timer_handle reconnect_timer, timeout_timer;
	/* A snapshot waits for the checkpointer (snapshot_start); it looked snap_waits times. */
	bool snap_wait;
	unsigned int snap_waits;
	qb_loop_timer_handle snap_wait_timer;
	bool pump_job, input_job, event_job;
	qb_loop_timer_handle commit_timer, pump_timer, input_timer, event_timer;
	/* Commits and input held while the checkpointer copies the WAL's tail. */
	bool ckpt_on;
	qb_loop_timer_handle ckpt_timer;
	/* The longest step of the loop here, and the steps over STEP_SLOW_US. */
	uint64_t longest_step_us;
	const char *longest_step;
	uint64_t slow_steps;
	bool emitted_in_sync;
	enum replicate_link emitted_link;

	struct buf out;
	uint8_t *chunk;      /* one snapshot chunk read */
	struct batch *batch; /* frames being applied */
	char *archive;
	char last_error[ERR_LEN];
	char last_warned[ERR_LEN]; /* the key of the last warning logged */
	char query_err[ERR_LEN];
	char status_peer[STREAM_NAME_MAX + 1];
};

struct batch;

static void conn_close(struct conn *c, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_free(struct conn *c);
static void pump(struct conn *c);
static void conn_process(struct conn *c);
static void snapshot_start(struct conn *c);
static void notify(struct replicate *r);

/* ---- small helpers ---- */

static int
buf_put(struct buf *b, const void *p, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *np;

		while (cap < b->len + len)
			cap *= 2;
		np = realloc(b->p, cap);
		if (np == NULL)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	return 0;
}

static void set_error(struct replicate *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the last link error (shown in status). */
static void
set_error(struct replicate *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
	va_end(ap);
	qb_log(LOG_DEBUG, "replicate: %s", r->last_error);
}

/*
 * Runs fn(r) from the loop as soon as possible, once however often it is
 * asked before it runs.  A zero timer, not qb_loop_job_add: libqb 2.0
 * does not wake up for a job added from a timer callback (stream delivers
 * from timers) until its next poll timeout.
 */
static void
defer(struct replicate *r, bool *on, qb_loop_timer_handle *h, enum qb_loop_priority p,
    void (*fn)(void *))
{
	if (*on)
		return;
	if (qb_loop_timer_add(r->loop, p, 0, r, fn, h) == 0)
		*on = true;
}

static void
undefer(struct replicate *r, bool *on, qb_loop_timer_handle *h)
{
	if (*on)
		(void)qb_loop_timer_del(r->loop, *h);
	*on = false;
}

static void warn_once(struct replicate *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Logs a warning, or only a debug line when the previous warning had the
 * same key: a peer retrying every reconnect_ms must not flood the log.
 */
static void
warn_once(struct replicate *r, const char *key, const char *fmt, ...)
{
	char line[2 * ERR_LEN];
	va_list ap;
	bool again = strncmp(r->last_warned, key, sizeof(r->last_warned) - 1) == 0;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	qb_log(again ? LOG_DEBUG : LOG_WARNING, "replicate: %s", line);
	(void)snprintf(r->last_warned, sizeof(r->last_warned), "%s", key);
}

static char *
path_in(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* A 64-bit hash of a snapshot's bytes: the first 8 bytes of its SHA-256. */
static uint64_t
md_final64(EVP_MD_CTX *md)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	uint64_t h = 0;

	(void)EVP_DigestFinal_ex(md, d, &n);
	for (int i = 7; i >= 0; i--)
		h = h << 8 | d[i];
	return h;
}

static EVP_MD_CTX *
md_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		md = NULL;
	}
	return md;
}

static uint64_t
our_seq(const struct replicate *r)
{
	uint64_t s = 0;

	store_position(r->store, NULL, &s);
	return s;
}

/* ---- backlog ---- */

static struct entry *
backlog_at(struct backlog *b, size_t i)
{
	return &b->v[b->head + i];
}

static void
backlog_clear(struct backlog *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(backlog_at(b, i)->bytes);
	b->head = b->n = 0;
	b->bytes = 0;
}

static void
backlog_drop_head(struct backlog *b)
{
	struct entry *e = backlog_at(b, 0);

	b->bytes -= e->len;
	free(e->bytes);
	b->head++;
	b->n--;
}

/* The entry holding seq, or NULL. */
static struct entry *
backlog_find(struct backlog *b, uint64_t seq)
{
	uint64_t first;

	if (b->n == 0)
		return NULL;
	first = backlog_at(b, 0)->seq;
	if (seq < first || seq - first >= b->n)
		return NULL;
	return backlog_at(b, (size_t)(seq - first));
}

/* Whether the backlog holds every frame after seq up to our position. */
static bool
backlog_covers(struct replicate *r, uint64_t seq)
{
	uint64_t ours = our_seq(r);
	struct backlog *b = &r->bl;

	if (seq == ours)
		return true;
	if (seq > ours || b->n == 0)
		return false;
	return backlog_at(b, 0)->seq <= seq + 1 && backlog_at(b, b->n - 1)->seq == ours;
}

static void
backlog_trim(struct replicate *r)
{
	struct backlog *b = &r->bl;
	size_t limit = r->cfg.backlog_bytes;

	while (b->n > 1 && b->bytes > limit) {
		if (r->pinned && backlog_at(b, 0)->seq > r->pin_seq && b->bytes <= BACKLOG_HARD_CAP)
			break;
		backlog_drop_head(b);
	}
}

/* Takes bytes (malloc'd) for the frame at (epoch, seq). */
static void
backlog_add(struct replicate *r, uint64_t epoch, uint64_t seq, uint8_t *bytes, size_t len)
{
	struct backlog *b = &r->bl;

	if (b->n > 0 && backlog_at(b, b->n - 1)->seq + 1 != seq)
		backlog_clear(b);
	if (b->head + b->n == b->cap) {
		if (b->head > 0) {
			memmove(b->v, b->v + b->head, b->n * sizeof(*b->v));
			b->head = 0;
		} else {
			size_t cap = b->cap ? b->cap * 2 : 256;
			struct entry *nv = realloc(b->v, cap * sizeof(*nv));

			if (nv == NULL) {
				/* Without memory the backlog restarts: a standby gets a snapshot.
				 */
				free(bytes);
				backlog_clear(b);
				return;
			}
			b->v = nv;
			b->cap = cap;
		}
	}
	b->v[b->head + b->n++] = (struct entry){epoch, seq, bytes, len};
	b->bytes += len;
	backlog_trim(r);
}

/* Encodes a store frame as a DATA frame appended to out. */
static int
encode_frame(struct buf *out, const struct store_frame *f)
{
	struct wire_data d = {
	    .epoch = f->epoch,
	    .seq = f->seq,
	    .schema_hash_before = f->schema_before,
	    .schema_hash_after = f->schema_after,
	};
	struct wire_part stack[8] = {{0}}, *parts = stack;
	struct wire_buf wb = {0};
	int rc;

	if (f->n_parts > 8) {
		parts = calloc(f->n_parts, sizeof(*parts));
		if (parts == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < f->n_parts; i++) {
		parts[i].kind =
		    f->parts[i].type == STORE_PART_DDL ? WIRE_PART_DDL : WIRE_PART_CHANGESET;
		parts[i].data = f->parts[i].data;
		if (f->parts[i].len > UINT32_MAX) {
			rc = -EMSGSIZE;
			goto out;
		}
		parts[i].len = (uint32_t)f->parts[i].len;
	}
	rc = wire_encode_data(&wb, &d, parts, f->n_parts);
	if (rc == 0) {
		/* Hand the encoder's memory over instead of copying it. */
		free(out->p);
		out->p = wb.data;
		out->len = wb.len;
		out->cap = wb.cap;
	}
out:
	if (parts != stack)
		free(parts);
	return rc;
}

/* ---- events to the agent ---- */

static enum replicate_link
link_of(const struct replicate *r)
{
	const struct conn *c = !r->active && r->up != NULL ? r->up : r->down;

	if (c == NULL || c->refusing)
		return REPLICATE_LINK_NONE;
	if (c->outgoing) {
		if (c->rx.on || c->paused)
			return REPLICATE_LINK_SNAPSHOT;
		if (!c->hello_rcvd)
			return REPLICATE_LINK_CONNECTING;
		return c->live ? REPLICATE_LINK_STREAMING : REPLICATE_LINK_CATCHUP;
	}
	switch (c->phase) {
	case PHASE_HELLO:
		return REPLICATE_LINK_CONNECTING;
	case PHASE_SNAP_MAKE:
	case PHASE_SNAP_SEND:
		return REPLICATE_LINK_SNAPSHOT;
	case PHASE_CATCHUP:
		return REPLICATE_LINK_CATCHUP;
	case PHASE_LIVE:
		return REPLICATE_LINK_STREAMING;
	}
	return REPLICATE_LINK_NONE;
}

/* ---- steps of the loop ---- */

static uint64_t
mono_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Records how long one step of replication (a callback from the loop,
 * named what) held the event loop since t0: the longest, and how many
 * took over STEP_SLOW_US (replicate_status).
 */
static void
step_done(struct replicate *r, const char *what, uint64_t t0)
{
	uint64_t d = mono_us() - t0;

	if (d > r->longest_step_us) {
		r->longest_step_us = d;
		r->longest_step = what;
	}
	if (d > STEP_SLOW_US) {
		r->slow_steps++;
		qb_log(LOG_DEBUG, "replicate: a step (%s) held the loop for %" PRIu64 " ms", what,
		    d / 1000);
	}
}

/*
 * Defines the loop's callback name(data) as name_run(data) timed as one
 * step named what; data is the struct replicate.
 */
#define TIMED_STEP(name, what)                                                                     \
	static void name(void *data)                                                               \
	{                                                                                          \
		struct replicate *r_ = data;                                                       \
		uint64_t t0_ = mono_us();                                                          \
                                                                                                   \
		name##_run(data);                                                                  \
		step_done(r_, what, t0_);                                                          \
	}

static void
event_job_run(void *data)
{
	struct replicate *r = data;
	enum replicate_link l = link_of(r);

	r->event_job = false;
	if (l == r->emitted_link && r->in_sync == r->emitted_in_sync)
		return;
	r->emitted_link = l;
	r->emitted_in_sync = r->in_sync;
	if (r->on_event != NULL)
		r->on_event(r, REPLICATE_EVENT_CHANGED, r->data);
}

TIMED_STEP(event_job, "status event")

/* Schedules CHANGED if in_sync or the link may have changed. */
static void
notify(struct replicate *r)
{
	defer(r, &r->event_job, &r->event_timer, QB_LOOP_MED, event_job);
}

static void
set_in_sync(struct replicate *r, bool v)
{
	if (r->in_sync != v)
		qb_log(LOG_DEBUG, "replicate: %s", v ? "in sync" : "out of sync");
	r->in_sync = v;
	notify(r);
}

/* ---- answering commits ---- */

static void
req_free(struct req *q)
{
	free(q->stmts);
	free(q->vals);
	free(q->bytes);
	free(q);
}

static void
req_answer(struct req *q, int rc, const char *error)
{
	struct replicate_result res = q->res;

	if (rc != 0)
		res.error = error != NULL && *error ? error : strerror(-rc);
	else
		res.error = NULL;
	q->done(rc, &res, q->data);
	req_free(q);
}

static void commit_job(void *data);
static void input_later(struct replicate *r);

/* ---- the WAL's tail ---- */

static void ckpt_poll(void *data);

static void
ckpt_poll_run(void *data)
{
	struct replicate *r = data;

	r->ckpt_on = false;
	if (store_checkpoint_finishing(r->store) &&
	    qb_loop_timer_add(r->loop, QB_LOOP_HIGH, CKPT_POLL_NS, r, ckpt_poll, &r->ckpt_timer) ==
	        0) {
		r->ckpt_on = true;
		return;
	}
	if (r->queue != NULL)
		defer(r, &r->commit_job, &r->commit_timer, QB_LOOP_HIGH, commit_job);
	input_later(r);
}

TIMED_STEP(ckpt_poll, "checkpoint wait")

/*
 * Whether commits and applies wait now: the store handed the WAL's tail
 * over (store_checkpoint_hand_over), which the checkpointer copies while
 * nothing is committed, so that no step of the loop waits for its fsyncs.
 * Starts that copy when it is due; ckpt_poll goes on once it is done.
 */
static bool
ckpt_hold(struct replicate *r)
{
	if (!store_checkpoint_finishing(r->store)) {
		if (!store_checkpoint_due(r->store))
			return false;
		store_checkpoint_finish(r->store);
		if (!store_checkpoint_finishing(r->store))
			return false;
	}
	if (!r->ckpt_on && qb_loop_timer_add(r->loop, QB_LOOP_HIGH, CKPT_POLL_NS, r, ckpt_poll,
	                       &r->ckpt_timer) == 0)
		r->ckpt_on = true;
	/* Without the timer nothing would go on: commit (the copy then ends later). */
	return r->ckpt_on;
}

/* Answers waiting commits up to seq (all of them for UINT64_MAX) with rc. */
static void
waiting_answer(struct replicate *r, uint64_t seq, int rc)
{
	while (r->waiting != NULL && r->waiting->res.seq <= seq) {
		struct req *q = r->waiting;

		r->waiting = q->next;
		if (r->waiting == NULL)
			r->waiting_tail = &r->waiting;
		r->n_waiting--;
		req_answer(q, rc,
		    rc == -ECONNABORTED ? "committed, but the standby did not acknowledge it"
		                        : NULL);
	}
	/* Requests held back while a frame was in flight (commit_job). */
	if (r->waiting == NULL && r->queue != NULL)
		defer(r, &r->commit_job, &r->commit_timer, QB_LOOP_HIGH, commit_job);
}

static void
peer_acked(struct replicate *r, uint64_t seq)
{
	r->last_acked = seq;
	waiting_answer(r, seq, 0);
}

/* ---- connections ---- */

static void
rx_abort(struct replicate *r, struct rx *rx)
{
	if (!rx->on)
		return;
	if (rx->fd >= 0)
		(void)close(rx->fd);
	rx->fd = -1;
	EVP_MD_CTX_free(rx->md);
	rx->md = NULL;
	rx->on = false;
	store_remove_later(r->in_path);
}

/* Checkpoints may write the database file again, unless a snapshot is made or sent. */
static void
ckpt_resume(struct replicate *r)
{
	if (!r->ckpt_paused || r->make != NULL || (r->down != NULL && r->down->snap_fd >= 0))
		return;
	r->ckpt_paused = false;
	store_checkpoints_pause(r->store, false);
}

static void
snap_send_end(struct conn *c)
{
	struct replicate *r = c->r;

	c->snap_fd = -1; /* the store's: closing it would drop the store's lock */
	EVP_MD_CTX_free(c->snap_md);
	c->snap_md = NULL;
	ckpt_resume(r);
}

static void
update_pin(struct replicate *r)
{
	struct conn *c = r->down;

	r->pinned = c != NULL && (c->phase == PHASE_SNAP_MAKE || c->phase == PHASE_SNAP_SEND);
	if (r->pinned && c->phase == PHASE_SNAP_SEND)
		r->pin_seq = c->snap_seq;
	if (!r->pinned)
		backlog_trim(r);
}

static void reconnect_fired(void *data);
static void timeout_fired(void *data);

static void
timeout_arm(struct replicate *r)
{
	if (r->timeout_on || r->active || !r->peer_active)
		return;
	if (qb_loop_timer_add(r->loop, QB_LOOP_MED, (uint64_t)r->cfg.timeout_ms * 1000000u, r,
	        timeout_fired, &r->timeout_timer) == 0)
		r->timeout_on = true;
}

static void
timeout_disarm(struct replicate *r)
{
	if (r->timeout_on)
		(void)qb_loop_timer_del(r->loop, r->timeout_timer);
	r->timeout_on = false;
}

static void
reconnect_arm(struct replicate *r)
{
	if (r->reconnect_on || r->active || !r->peer_active)
		return;
	if (qb_loop_timer_add(r->loop, QB_LOOP_MED, (uint64_t)r->cfg.reconnect_ms * 1000000u, r,
	        reconnect_fired, &r->reconnect_timer) == 0)
		r->reconnect_on = true;
}

static void
reconnect_disarm(struct replicate *r)
{
	if (r->reconnect_on)
		(void)qb_loop_timer_del(r->loop, r->reconnect_timer);
	r->reconnect_on = false;
}

/* Frees c and its stream, with no event; the caller decides what follows. */
static void
conn_free(struct conn *c)
{
	struct replicate *r = c->r;
	struct conn **pp;

	for (pp = &r->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	stream_free(c->s);
	wire_reader_free(c->rd);
	rx_abort(r, &c->rx);
	snap_send_end(c);
	if (r->up == c)
		r->up = NULL;
	if (r->down == c) {
		r->down = NULL;
		update_pin(r);
	}
	free(c);
	notify(r);
}

static struct conn *
conn_new(struct replicate *r, bool outgoing)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->rd = wire_reader_new();
	if (c->rd == NULL) {
		free(c);
		return NULL;
	}
	c->r = r;
	c->id = ++r->next_conn_id;
	c->outgoing = outgoing;
	c->snap_fd = -1;
	c->rx.fd = -1;
	c->next = r->conns;
	r->conns = c;
	return c;
}

static void
conn_send(struct conn *c, const void *p, size_t len)
{
	if (c->s == NULL || c->closing)
		return;
	(void)stream_send(c->s, p, len);
}

/* Sends an ERROR (code != 0) and closes c; CLOSED will free it. */
static void
conn_close(struct conn *c, uint32_t code, const char *fmt, ...)
{
	struct replicate *r = c->r;
	char text[WIRE_TEXT_MAX + 1];
	struct wire_buf wb = {0};
	va_list ap;

	if (c->closing)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (code != 0 && wire_encode_error(&wb, code, text) == 0)
		conn_send(c, wb.data, wb.len);
	wire_buf_release(&wb);
	if (!c->refusing) /* refusing is our state, not a link error */
		set_error(r, "%s", text);
	c->closing = true;
	rx_abort(r, &c->rx);
	if (stream_close(c->s) < 0) {
		/* Already closed: CLOSED is on its way anyway. */
	}
	notify(r);
}

static void
send_hello(struct conn *c)
{
	struct replicate *r = c->r;
	struct wire_hello h = {
	    .node_id = r->cfg.node_id,
	    .incarnation = r->cfg.incarnation,
	    .schema_hash = store_schema_hash(r->store),
	};
	struct wire_buf wb = {0};

	(void)snprintf(h.cluster, sizeof(h.cluster), "%s", r->cfg.cluster);
	store_position(r->store, &h.epoch, &h.seq);
	if (wire_encode_hello(&wb, &h) == 0)
		conn_send(c, wb.data, wb.len);
	wire_buf_release(&wb);
}

static void
send_ack(struct conn *c, uint64_t epoch, uint64_t seq)
{
	struct wire_ack a = {.epoch = epoch, .seq = seq};
	struct wire_buf wb = {0};

	if (wire_encode_ack(&wb, &a) == 0)
		conn_send(c, wb.data, wb.len);
	wire_buf_release(&wb);
}

/* ---- worker threads ---- */

static void *
work_main(void *arg)
{
	struct work *w = arg;
	char one = 1;

	if (w->kind == WORK_MAKE) {
		/*
		 * Commits wait and checkpoints are paused: once the WAL is in
		 * the file, the file is the database at the position taken when
		 * this started, and it stays so until the checkpoints resume.
		 */
		struct stat st;

		w->rc = store_checkpoint_full(w->store, w->err, sizeof(w->err));
		if (w->rc == 0) {
			if (fstat(w->db_fd, &st) < 0) {
				w->rc = -errno;
				(void)snprintf(
				    w->err, sizeof(w->err), "%s: %s", w->db_path, strerror(errno));
			} else {
				w->size = (uint64_t)st.st_size;
			}
		}
	} else {
		if (fsync(w->fd) < 0) {
			w->rc = -errno;
			(void)snprintf(
			    w->err, sizeof(w->err), "%s: fsync: %s", w->file, strerror(errno));
		}
		(void)close(w->fd);
		w->fd = -1;
		if (w->rc == 0) {
			char *e = NULL;
			struct store *s = store_open(w->file, &e);

			if (s == NULL) {
				w->rc = errno ? -errno : -EIO;
				(void)snprintf(w->err, sizeof(w->err), "snapshot %s: %s", w->file,
				    e ? e : "cannot open");
			} else {
				w->has_pos = store_has_position(s, w->old_epoch, w->old_seq);
				store_position(s, &w->epoch, &w->seq);
				if (w->has_pos < 0) {
					w->rc = w->has_pos;
					(void)snprintf(w->err, sizeof(w->err), "snapshot %s: %s",
					    w->file, store_errmsg(s));
				}
				store_close(s);
			}
			free(e);
		}
	}
	(void)!write(w->pipe[1], &one, 1);
	return NULL;
}

static void make_done(struct work *w);
static void open_done(struct work *w);

static void
work_free(struct work *w)
{
	if (w->pipe[0] >= 0)
		(void)close(w->pipe[0]);
	if (w->pipe[1] >= 0)
		(void)close(w->pipe[1]);
	if (w->fd >= 0)
		(void)close(w->fd);
	free(w->db_path);
	free(w->file);
	free(w);
}

/* Waits for the thread and unhooks the pipe. */
static void
work_join(struct work *w)
{
	(void)qb_loop_poll_del(w->r->loop, w->pipe[0]);
	(void)pthread_join(w->th, NULL);
	if (w->kind == WORK_MAKE)
		w->r->make = NULL;
	else
		w->r->open = NULL;
}

static int32_t
work_dispatch_run(int32_t fd, int32_t revents, void *data)
{
	struct work *w = data;

	work_join(w);
	if (w->kind == WORK_MAKE)
		make_done(w);
	else
		open_done(w);
	work_free(w);
	return 0;
}

/* work_dispatch, timed as one step of the loop. */
static int32_t
work_dispatch(int32_t fd, int32_t revents, void *data)
{
	struct replicate *r = ((struct work *)data)->r;
	uint64_t t0 = mono_us();
	int32_t rc = work_dispatch_run(fd, revents, data);

	step_done(r, "snapshot worker", t0);
	return rc;
}

static struct work *
work_start(struct replicate *r, enum work_kind kind, uint64_t conn_id, const char *file)
{
	struct work *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->r = r;
	w->kind = kind;
	w->conn_id = conn_id;
	w->fd = -1;
	w->pipe[0] = w->pipe[1] = -1;
	w->db_path = strdup(r->cfg.db_path);
	w->file = strdup(file);
	if (w->db_path == NULL || w->file == NULL || pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		goto fail;
	if (qb_loop_poll_add(r->loop, QB_LOOP_MED, w->pipe[0], POLLIN, w, work_dispatch) != 0)
		goto fail;
	return w;
fail:
	work_free(w);
	return NULL;
}

static int
work_run(struct work *w)
{
	int rc = pthread_create(&w->th, NULL, work_main, w);

	if (rc != 0) {
		(void)qb_loop_poll_del(w->r->loop, w->pipe[0]);
		return -rc;
	}
	if (w->kind == WORK_MAKE)
		w->r->make = w;
	else
		w->r->open = w;
	return 0;
}

/* ---- active: snapshot, catch-up, live ---- */

/* The snapshot's worker is over (make is NULL again): commits go on. */
static void
snap_release(struct replicate *r)
{
	if (r->queue != NULL)
		defer(r, &r->commit_job, &r->commit_timer, QB_LOOP_HIGH, commit_job);
	ckpt_resume(r);
}

static void
snap_wait_run(void *data)
{
	struct replicate *r = data;

	r->snap_wait = false;
	if (r->active && r->down != NULL && !r->down->closing &&
	    r->down->phase == PHASE_SNAP_MAKE && r->make == NULL)
		snapshot_start(r->down);
}

TIMED_STEP(snap_wait, "snapshot wait")

static void
snapshot_start(struct conn *c)
{
	struct replicate *r = c->r;
	struct work *w;

	snap_send_end(c);
	c->phase = PHASE_SNAP_MAKE;
	r->pin_seq = our_seq(r);
	update_pin(r);
	notify(r);
	if (r->make != NULL)
		return; /* make_done will start another or use it */
	/*
	 * Commits wait while the WAL is folded into the file: after a WAL
	 * grew long (a snapshot given up), first let the checkpointer copy
	 * it without holding them, for SNAP_WAIT_MAX looks at most.
	 */
	if (r->snap_waits < SNAP_WAIT_MAX && store_checkpoint_behind(r->store)) {
		if (r->snap_waits == 0)
			qb_log(LOG_DEBUG, "replicate: a snapshot waits for the checkpointer");
		if (!r->snap_wait && qb_loop_timer_add(r->loop, QB_LOOP_LOW, SNAP_WAIT_NS, r,
		                         snap_wait, &r->snap_wait_timer) == 0) {
			r->snap_wait = true;
			r->snap_waits++;
		}
		if (r->snap_wait)
			return;
	}
	r->snap_waits = 0;
	w = work_start(r, WORK_MAKE, c->id, r->cfg.db_path);
	if (w != NULL) {
		/* No commit until the worker is done: the position is this one. */
		w->store = r->store;
		w->db_fd = store_file_fd(r->store);
		store_position(r->store, &w->epoch, &w->seq);
		w->schema = store_schema_hash(r->store);
		r->ckpt_paused = true;
		store_checkpoints_pause(r->store, true);
	}
	if (w == NULL || work_run(w) < 0) {
		if (w != NULL)
			work_free(w);
		snap_release(r);
		conn_close(c, WIRE_ERR_PROTOCOL, "cannot start a snapshot: %s", strerror(ENOMEM));
		return;
	}
	qb_log(LOG_DEBUG, "replicate: making a snapshot for %s", stream_peer(c->s));
}

static void
make_done(struct work *w)
{
	struct replicate *r = w->r;
	struct conn *c = r->down;
	struct wire_snapshot_begin b;
	struct wire_buf wb = {0};

	if (c == NULL || c->closing || c->phase != PHASE_SNAP_MAKE) {
		snap_release(r);
		return;
	}
	if (w->rc != 0) {
		snap_release(r);
		conn_close(c, WIRE_ERR_PROTOCOL, "snapshot failed: %s", w->err);
		return;
	}
	if (!backlog_covers(r, w->seq)) {
		/* The backlog overflowed meanwhile (or it was made for an older link): again. */
		snap_release(r);
		snapshot_start(c);
		return;
	}
	/* The store's descriptor of the database file: read while checkpoints wait. */
	c->snap_fd = w->db_fd;
	snap_release(r);
	c->snap_md = md_new();
	if (c->snap_md == NULL) {
		conn_close(c, WIRE_ERR_PROTOCOL, "snapshot: %s", strerror(ENOMEM));
		return;
	}
	c->snap_epoch = w->epoch;
	c->snap_seq = w->seq;
	c->snap_size = w->size;
	c->snap_schema = w->schema;
	c->snap_off = 0;
	c->phase = PHASE_SNAP_SEND;
	update_pin(r);
	b = (struct wire_snapshot_begin){w->epoch, w->seq, w->size, w->schema};
	if (wire_encode_snapshot_begin(&wb, &b) == 0)
		conn_send(c, wb.data, wb.len);
	wire_buf_release(&wb);
	qb_log(LOG_DEBUG,
	    "replicate: sending a snapshot at %" PRIu64 ":%" PRIu64 ", %" PRIu64 " bytes", w->epoch,
	    w->seq, w->size);
	pump(c);
}

static void
pump_job_run(void *data)
{
	struct replicate *r = data;

	r->pump_job = false;
	if (r->down != NULL)
		pump(r->down);
}

TIMED_STEP(pump_job, "sending")

/*
 * While a snapshot is sent, checkpoints wait and the WAL only grows: past
 * cfg.snapshot_wal_bytes the snapshot is given up, so that a standby
 * behind a slow link never fills the active's disk.  Checkpoints go on,
 * and the standby, reconnecting, gets a new snapshot once they caught up.
 */
static void
snap_wal_check(struct replicate *r)
{
	struct conn *c = r->down;
	uint64_t wal;

	/* Once every chunk is read, only the socket still has to drain. */
	if (c == NULL || c->closing || c->phase != PHASE_SNAP_SEND || c->snap_off >= c->snap_size)
		return;
	wal = store_wal_bytes(r->store);
	if (wal <= r->cfg.snapshot_wal_bytes)
		return;
	qb_log(LOG_WARNING,
	    "replicate: snapshot for %s given up at %" PRIu64 " of %" PRIu64
	    " bytes: the write-ahead log grew to %" PRIu64 " MiB while it was sent"
	    " ([replication] snapshot_wal = %" PRIu64 "); a new one follows",
	    stream_peer(c->s) ? stream_peer(c->s) : "the standby", c->snap_off, c->snap_size,
	    wal >> 20, (uint64_t)(r->cfg.snapshot_wal_bytes >> 20));
	conn_close(c, WIRE_ERR_SNAPSHOT,
	    "snapshot given up: the active's write-ahead log grew past %" PRIu64
	    " MiB while it was sent; raise [replication] snapshot_wal if its disk has room",
	    (uint64_t)(r->cfg.snapshot_wal_bytes >> 20));
	/* Checkpoints go on now, not once the socket has drained (a stalled peer: never). */
	snap_send_end(c);
}

static void
pump_later(struct replicate *r)
{
	defer(r, &r->pump_job, &r->pump_timer, QB_LOOP_LOW, pump_job);
}

/* Sends one snapshot chunk; false when the snapshot is over or failed. */
static bool
pump_chunk(struct conn *c)
{
	struct replicate *r = c->r;
	struct wire_buf wb = {0};
	uint8_t *chunk;
	size_t want;
	ssize_t n;

	if (c->snap_off >= c->snap_size) {
		struct wire_snapshot_end e = {.hash = md_final64(c->snap_md)};

		if (wire_encode_snapshot_end(&wb, &e) == 0)
			conn_send(c, wb.data, wb.len);
		wire_buf_release(&wb);
		snap_send_end(c);
		c->phase = PHASE_CATCHUP;
		c->next_seq = c->snap_seq + 1;
		update_pin(r);
		notify(r);
		return false;
	}
	if (r->chunk == NULL && (r->chunk = malloc(CHUNK_BYTES)) == NULL) {
		conn_close(c, WIRE_ERR_PROTOCOL, "snapshot: %s", strerror(ENOMEM));
		return false;
	}
	chunk = r->chunk;
	want = c->snap_size - c->snap_off < CHUNK_BYTES ? (size_t)(c->snap_size - c->snap_off)
	                                                : CHUNK_BYTES;
	n = pread(c->snap_fd, chunk, want, (off_t)c->snap_off);
	if (n <= 0) {
		conn_close(c, WIRE_ERR_PROTOCOL, "snapshot read: %s",
		    n < 0 ? strerror(errno) : "file shrank");
		return false;
	}
	(void)EVP_DigestUpdate(c->snap_md, chunk, (size_t)n);
	{
		struct wire_snapshot_chunk ch = {c->snap_off, chunk, (uint32_t)n};

		if (wire_encode_snapshot_chunk(&wb, &ch) == 0)
			conn_send(c, wb.data, wb.len);
		wire_buf_release(&wb);
	}
	c->snap_off += (uint64_t)n;
	return true;
}

/* Sends backlog frames from next_seq; false when caught up (or failed). */
static bool
pump_catchup(struct conn *c)
{
	struct replicate *r = c->r;
	uint64_t epoch, seq;

	store_position(r->store, &epoch, &seq);
	if (c->next_seq > seq) {
		/* Caught up: from now on every frame goes out at commit. */
		send_ack(c, epoch, seq);
		c->phase = PHASE_LIVE;
		r->marker_epoch = epoch;
		r->marker_seq = seq;
		notify(r);
		qb_log(LOG_DEBUG, "replicate: %s is live at %" PRIu64 ":%" PRIu64,
		    stream_peer(c->s), epoch, seq);
		return false;
	}
	r->out.len = 0;
	while (c->next_seq <= seq && r->out.len < GATHER_BYTES) {
		struct entry *e = backlog_find(&r->bl, c->next_seq);

		if (e == NULL) {
			/* The backlog lost a frame the standby needs (overflow): resync. */
			r->out.len = 0;
			snapshot_start(c);
			return false;
		}
		if (buf_put(&r->out, e->bytes, e->len) < 0)
			break;
		c->next_seq++;
	}
	conn_send(c, r->out.p, r->out.len);
	return true;
}

/* Moves the active side of c forward as far as the socket lets it. */
static void
pump(struct conn *c)
{
	uint64_t t0 = mono_us();

	for (int i = 0; i < PUMP_STEPS; i++) {
		if (c->closing || c->s == NULL || stream_pending(c->s) >= SEND_HIGH_WATER)
			return;
		if (i > 0 && mono_us() - t0 > STEP_BUDGET_US)
			break;
		switch (c->phase) {
		case PHASE_SNAP_SEND:
			/* One chunk per step: reading, hashing, framing and encrypting 256 KiB. */
			if (pump_chunk(c))
				goto later;
			break;
		case PHASE_CATCHUP:
			if (!pump_catchup(c))
				return;
			break;
		case PHASE_HELLO:
		case PHASE_SNAP_MAKE:
		case PHASE_LIVE:
			return;
		}
	}
later:
	if (!c->closing && (c->phase == PHASE_SNAP_SEND || c->phase == PHASE_CATCHUP) &&
	    stream_pending(c->s) < SEND_HIGH_WATER)
		pump_later(c->r);
}

/* Active: the standby's HELLO decides how it catches up. */
static void
active_hello(struct conn *c, const struct wire_hello *h)
{
	struct replicate *r = c->r;
	uint64_t epoch, seq;
	int has;

	store_position(r->store, &epoch, &seq);
	qb_log(LOG_DEBUG,
	    "replicate: standby %s at %" PRIu64 ":%" PRIu64 ", we are at %" PRIu64 ":%" PRIu64,
	    stream_peer(c->s), h->epoch, h->seq, epoch, seq);
	if (h->epoch == epoch && h->seq == seq)
		has = 1;
	else
		has = store_has_position(r->store, h->epoch, h->seq);
	if (has == 1) {
		c->acked_seq = h->seq;
		r->last_acked = h->seq;
	}
	if (has == 1 && backlog_covers(r, h->seq)) {
		c->phase = PHASE_CATCHUP;
		c->next_seq = h->seq + 1;
		notify(r);
		pump(c);
		return;
	}
	snapshot_start(c);
}

/* ---- standby: applying frames ---- */

struct batch {
	struct store_frame f[APPLY_FRAMES];
	void *mem[APPLY_FRAMES]; /* the copied parts of f[i] */
	size_t n, bytes;
};

static void
batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->mem[i]);
		free(b->f[i].parts);
	}
	b->n = 0;
	b->bytes = 0;
}

/* Copies a decoded DATA frame into the batch. */
static int
batch_add(struct batch *b, const struct wire_data *d)
{
	struct store_frame *f = &b->f[b->n];
	struct wire_part_iter it;
	struct wire_data copy = *d;
	struct wire_part p;
	uint8_t *mem = NULL;
	size_t i = 0;

	*f = (struct store_frame){
	    .epoch = d->epoch,
	    .seq = d->seq,
	    .schema_before = d->schema_hash_before,
	    .schema_after = d->schema_hash_after,
	};
	if (d->part_count > 0) {
		mem = malloc(d->parts_len ? d->parts_len : 1);
		f->parts = calloc(d->part_count, sizeof(*f->parts));
		if (mem == NULL || f->parts == NULL) {
			free(mem);
			free(f->parts);
			f->parts = NULL;
			return -ENOMEM;
		}
		memcpy(mem, d->parts, d->parts_len);
		copy.parts = mem;
		wire_parts_init(&it, &copy);
		while (i < d->part_count && wire_parts_next(&it, &p)) {
			f->parts[i].type =
			    p.kind == WIRE_PART_DDL ? STORE_PART_DDL : STORE_PART_CHANGESET;
			f->parts[i].data = (void *)p.data;
			f->parts[i].len = p.len;
			i++;
		}
	}
	b->mem[b->n] = mem;
	f->n_parts = i;
	b->n++;
	b->bytes += d->parts_len;
	return 0;
}

/* Applies the batch and acks it; on error closes c and returns false. */
static bool
batch_apply(struct conn *c, struct batch *b, bool *applied)
{
	struct replicate *r = c->r;
	uint64_t pe, ps;
	size_t n = 0;
	int rc;

	if (b->n == 0)
		return true;
	store_position(r->store, &pe, &ps);
	rc = store_apply_batch(r->store, b->f, b->n, &n);
	if (rc == -EALREADY)
		rc = 0;
	if (rc != 0) {
		uint32_t code = rc == -EPROTO   ? WIRE_ERR_SEQ
		                : rc == -ESTALE ? WIRE_ERR_SCHEMA
		                                : WIRE_ERR_APPLY;

		warn_once(r, store_errmsg(r->store),
		    "frames %" PRIu64 ":%" PRIu64 "..%" PRIu64 " refused (%s): %s, resyncing",
		    b->f[0].epoch, b->f[0].seq, b->f[b->n - 1].seq, strerror(-rc),
		    store_errmsg(r->store));
		conn_close(c, code, "cannot apply frame %" PRIu64 ":%" PRIu64 ": %s", b->f[0].epoch,
		    b->f[0].seq, store_errmsg(r->store));
		batch_clear(b);
		return false;
	}
	*applied = true;
	/* The ack first: the copies for our own backlog are not the active's wait. */
	{
		uint64_t epoch, seq;

		store_position(r->store, &epoch, &seq);
		send_ack(c, epoch, seq);
	}
	for (size_t i = 0; i < b->n; i++) {
		struct buf eb = {0};

		if (b->f[i].seq <= ps && b->f[i].epoch <= pe)
			continue; /* a duplicate, skipped */
		if (encode_frame(&eb, &b->f[i]) == 0)
			backlog_add(r, b->f[i].epoch, b->f[i].seq, eb.p, eb.len);
		else
			free(eb.p);
	}
	batch_clear(b);
	return true;
}

static void
check_marker(struct conn *c)
{
	struct replicate *r = c->r;

	if (c->marker_set && our_seq(r) >= c->marker_seq && !c->live) {
		c->live = true;
		set_in_sync(r, true);
	}
}

static void
input_job_run(void *data)
{
	struct replicate *r = data;

	r->input_job = false;
	if (r->up != NULL)
		conn_process(r->up);
	if (r->down != NULL)
		conn_process(r->down);
}

TIMED_STEP(input_job, "receiving")

static void
input_later(struct replicate *r)
{
	defer(r, &r->input_job, &r->input_timer, QB_LOOP_LOW, input_job);
}

static void
open_done(struct work *w)
{
	struct replicate *r = w->r;
	struct conn *c = r->up;
	char *archive = NULL;
	uint64_t epoch, seq;
	int rc;

	if (c == NULL || c->id != w->conn_id || c->closing || !c->paused) {
		store_remove_later(w->file);
		return;
	}
	if (w->rc != 0) {
		store_remove_later(w->file);
		c->paused = false;
		conn_close(c, WIRE_ERR_APPLY, "snapshot: %s", w->err);
		return;
	}
	rc = store_replace(r->store, w->file,
	    w->has_pos == 0 && w->old_seq > 0 ? r->cfg.state_dir : NULL, &archive);
	if (rc != 0) {
		store_remove_later(w->file);
		c->paused = false;
		conn_close(
		    c, WIRE_ERR_APPLY, "cannot install the snapshot: %s", store_errmsg(r->store));
		return;
	}
	if (archive != NULL) {
		qb_log(LOG_WARNING,
		    "replicate: our data at %" PRIu64 ":%" PRIu64
		    " diverged from the active's; archived as %s",
		    w->old_epoch, w->old_seq, archive);
		free(r->archive);
		r->archive = archive;
	}
	backlog_clear(&r->bl);
	store_position(r->store, &epoch, &seq);
	qb_log(LOG_DEBUG, "replicate: snapshot installed at %" PRIu64 ":%" PRIu64, epoch, seq);
	send_ack(c, epoch, seq);
	c->paused = false;
	notify(r);
	input_later(r);
}

static void
rx_begin(struct conn *c, const struct wire_snapshot_begin *b)
{
	struct replicate *r = c->r;
	struct rx *rx = &c->rx;

	rx_abort(r, rx);
	set_in_sync(r, false);
	c->live = false;
	c->marker_set = false;
	rx->fd = open(r->in_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	rx->md = md_new();
	rx->on = true;
	rx->epoch = b->epoch;
	rx->seq = b->seq;
	rx->total = b->total_bytes;
	rx->done = 0;
	if (rx->fd < 0 || rx->md == NULL)
		conn_close(
		    c, WIRE_ERR_APPLY, "%s: %s", r->in_path, strerror(errno ? errno : ENOMEM));
	notify(r);
}

static bool
rx_chunk(struct conn *c, const struct wire_snapshot_chunk *ch)
{
	struct rx *rx = &c->rx;
	size_t off = 0;

	if (!rx->on || ch->offset != rx->done || rx->done + ch->len > rx->total) {
		conn_close(c, WIRE_ERR_PROTOCOL, "snapshot chunk out of place");
		return false;
	}
	while (off < ch->len) {
		ssize_t n = pwrite(rx->fd, ch->data + off, ch->len - off, (off_t)(rx->done + off));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			conn_close(c, WIRE_ERR_APPLY, "%s: %s", c->r->in_path, strerror(errno));
			return false;
		}
		off += (size_t)n;
	}
	(void)EVP_DigestUpdate(rx->md, ch->data, ch->len);
	rx->done += ch->len;
	return true;
}

static bool
rx_end(struct conn *c, const struct wire_snapshot_end *e)
{
	struct replicate *r = c->r;
	struct rx *rx = &c->rx;
	struct work *w;
	uint64_t h;

	if (!rx->on || rx->done != rx->total) {
		conn_close(c, WIRE_ERR_PROTOCOL, "snapshot ended early");
		return false;
	}
	h = md_final64(rx->md);
	if (h != e->hash) {
		conn_close(c, WIRE_ERR_APPLY, "snapshot hash mismatch");
		return false;
	}
	if (r->open != NULL) {
		conn_close(c, WIRE_ERR_APPLY, "a snapshot is still being installed");
		return false;
	}
	w = work_start(r, WORK_OPEN, c->id, r->in_path);
	if (w == NULL) {
		conn_close(c, WIRE_ERR_APPLY, "cannot install the snapshot: %s", strerror(ENOMEM));
		return false;
	}
	w->fd = rx->fd;
	rx->fd = -1;
	store_position(r->store, &w->old_epoch, &w->old_seq);
	if (work_run(w) < 0) {
		work_free(w);
		conn_close(c, WIRE_ERR_APPLY, "cannot install the snapshot: %s", strerror(EAGAIN));
		return false;
	}
	EVP_MD_CTX_free(rx->md);
	rx->md = NULL;
	rx->on = false;
	c->paused = true; /* frames after END wait for store_replace */
	return true;
}

/* ---- input of a connection ---- */

static bool
hello_ok(struct conn *c, const struct wire_hello *h)
{
	struct replicate *r = c->r;

	if (strcmp(h->cluster, r->cfg.cluster) != 0) {
		conn_close(c, WIRE_ERR_CLUSTER, "HELLO from cluster %s, we are %s", h->cluster,
		    r->cfg.cluster);
		return false;
	}
	if (c->hello_rcvd) {
		conn_close(c, WIRE_ERR_PROTOCOL, "second HELLO");
		return false;
	}
	c->hello_rcvd = true;
	return true;
}

/* Decodes and handles what c's reader holds, within a budget. */
static void
conn_process(struct conn *c)
{
	struct replicate *r = c->r;
	struct batch *bp;
	unsigned int frames = 0, chunks = 0;
	bool applied = false, more = false;
	uint64_t cid = c->id, t0 = mono_us();

	if (ckpt_hold(r))
		return; /* what arrives meanwhile waits in the reader */
	if (r->batch == NULL && (r->batch = calloc(1, sizeof(*r->batch))) == NULL) {
		conn_close(c, WIRE_ERR_APPLY, "cannot buffer frames: %s", strerror(ENOMEM));
		return;
	}
	bp = r->batch;
	for (;;) {
		struct wire_frame f;
		int rc;

		if (c->closing || c->paused)
			break;
		if (frames >= INPUT_FRAMES || chunks >= INPUT_CHUNKS ||
		    (frames > 0 && mono_us() - t0 > STEP_BUDGET_US)) {
			more = true;
			break;
		}
		rc = wire_reader_next(c->rd, &f);
		if (rc == 0)
			break;
		if (rc < 0) {
			batch_clear(bp);
			conn_close(c, WIRE_ERR_PROTOCOL, "bad frame from %s: %s",
			    stream_peer(c->s) ? stream_peer(c->s) : "peer", strerror(-rc));
			return;
		}
		frames++;
		if (f.type != WIRE_DATA && !batch_apply(c, bp, &applied))
			return;
		if (f.type != WIRE_HELLO && f.type != WIRE_ERROR && !c->hello_rcvd) {
			conn_close(c, WIRE_ERR_PROTOCOL, "frame %d before HELLO", (int)f.type);
			return;
		}
		switch (f.type) {
		case WIRE_HELLO:
			if (!hello_ok(c, &f.u.hello))
				return;
			if (c->outgoing) {
				timeout_disarm(r);
				notify(r);
			} else {
				active_hello(c, &f.u.hello);
			}
			break;
		case WIRE_ERROR:
			if (strcmp(f.u.error.text, "not active") == 0)
				qb_log(LOG_DEBUG, "replicate: peer %s is not active",
				    stream_peer(c->s) ? stream_peer(c->s) : "?");
			else
				warn_once(r, f.u.error.text,
				    "peer %s reports error %" PRIu32 ": %s",
				    stream_peer(c->s) ? stream_peer(c->s) : "?", f.u.error.code,
				    f.u.error.text);
			conn_close(c, 0, "peer error: %s", f.u.error.text);
			return;
		case WIRE_ACK:
			if (c->outgoing) {
				c->marker_set = true;
				c->marker_seq = f.u.ack.seq;
				check_marker(c);
			} else {
				if (f.u.ack.seq > our_seq(r)) {
					conn_close(c, WIRE_ERR_PROTOCOL,
					    "ACK of %" PRIu64 ", beyond our position", f.u.ack.seq);
					return;
				}
				c->acked_seq = f.u.ack.seq;
				peer_acked(r, f.u.ack.seq);
				if (r->down == NULL || r->down->id != cid)
					return;
			}
			break;
		case WIRE_DATA:
			if (!c->outgoing || c->rx.on) {
				conn_close(c, WIRE_ERR_PROTOCOL, "unexpected DATA");
				batch_clear(bp);
				return;
			}
			if (batch_add(bp, &f.u.data) < 0) {
				batch_clear(bp);
				conn_close(
				    c, WIRE_ERR_APPLY, "cannot buffer frame: %s", strerror(ENOMEM));
				return;
			}
			if ((bp->n == APPLY_FRAMES || bp->bytes >= APPLY_BYTES) &&
			    !batch_apply(c, bp, &applied))
				return;
			break;
		case WIRE_SNAPSHOT_BEGIN:
			if (!c->outgoing) {
				conn_close(c, WIRE_ERR_PROTOCOL, "unexpected snapshot");
				return;
			}
			rx_begin(c, &f.u.snapshot_begin);
			break;
		case WIRE_SNAPSHOT_CHUNK:
			chunks++;
			if (!c->outgoing || !rx_chunk(c, &f.u.snapshot_chunk))
				return;
			break;
		case WIRE_SNAPSHOT_END:
			if (!c->outgoing || !rx_end(c, &f.u.snapshot_end))
				return;
			break;
		}
	}
	if (!batch_apply(c, bp, &applied))
		return;
	if (applied)
		check_marker(c);
	if (more)
		input_later(r);
}

static void conn_event(
    struct stream *s, enum stream_event ev, const struct stream_info *info, void *data);

static void
standby_connect(struct replicate *r)
{
	struct conn *c;

	if (r->active || !r->peer_active || r->up != NULL || r->peer_name == NULL)
		return;
	c = conn_new(r, true);
	if (c == NULL) {
		reconnect_arm(r);
		return;
	}
	c->s =
	    stream_connect(r->loop, r->tls, r->peer_addr, r->cfg.port, r->peer_name, conn_event, c);
	if (c->s == NULL) {
		set_error(r, "connect to %s (%s): %s", r->peer_name, r->peer_addr, strerror(errno));
		conn_free(c);
		reconnect_arm(r);
		return;
	}
	r->up = c;
	notify(r);
}

static void
reconnect_fired_run(void *data)
{
	struct replicate *r = data;

	r->reconnect_on = false;
	standby_connect(r);
}

TIMED_STEP(reconnect_fired, "reconnect")

static void
timeout_fired_run(void *data)
{
	struct replicate *r = data;

	r->timeout_on = false;
	if (r->active || !r->peer_active || (r->up != NULL && r->up->hello_rcvd))
		return;
	if (r->in_sync)
		qb_log(LOG_WARNING, "replicate: active peer %s unreachable for %u ms, out of sync",
		    r->peer_name ? r->peer_name : "?", r->cfg.timeout_ms);
	set_in_sync(r, false);
}

TIMED_STEP(timeout_fired, "link timeout")

static void
conn_closed(struct conn *c, const struct stream_info *info)
{
	struct replicate *r = c->r;
	bool outgoing = c->outgoing, was_down = r->down == c;

	if (info->error != 0) {
		set_error(r, "%s: %s",
		    info->peer ? info->peer : (r->peer_name ? r->peer_name : "peer"),
		    info->reason ? info->reason : strerror(-info->error));
		if (info->error == -EACCES)
			warn_once(r, info->reason ? info->reason : "",
			    "connection %s %s refused: %s", outgoing ? "to" : "from",
			    info->address ? info->address : "?",
			    info->reason ? info->reason : "certificate");
	}
	conn_free(c);
	if (was_down && !r->active)
		waiting_answer(r, UINT64_MAX, -ECONNABORTED);
	if (outgoing) {
		timeout_arm(r);
		reconnect_arm(r);
	}
}

static void
conn_event_run(struct stream *s, enum stream_event ev, const struct stream_info *info, void *data)
{
	struct conn *c = data;
	struct replicate *r = c->r;

	switch (ev) {
	case STREAM_EVENT_CONNECTED:
		c->connected = true;
		if (c->outgoing)
			send_hello(c);
		notify(r);
		break;
	case STREAM_EVENT_DATA: {
		int rc = wire_reader_feed(c->rd, info->data, info->len);

		if (rc < 0) {
			conn_close(c, WIRE_ERR_PROTOCOL, "bad frame: %s", strerror(-rc));
			break;
		}
		conn_process(c);
		break;
	}
	case STREAM_EVENT_DRAINED:
		if (!c->outgoing)
			pump(c);
		break;
	case STREAM_EVENT_CLOSED:
		stream_free(s);
		c->s = NULL;
		conn_closed(c, info);
		break;
	}
}

/* conn_event, timed as one step of the loop. */
static void
conn_event(struct stream *s, enum stream_event ev, const struct stream_info *info, void *data)
{
	struct replicate *r = ((struct conn *)data)->r;
	uint64_t t0 = mono_us();

	conn_event_run(s, ev, info, data);
	step_done(r, "link", t0);
}

/* The listener: accepted streams report here until CONNECTED or CLOSED. */
static void
listen_event_run(struct stream *s, enum stream_event ev, const struct stream_info *info, void *data)
{
	struct hub *hub = data;
	struct replicate *r = hub->r;
	struct conn *c;

	if (r == NULL) {
		/* Accepted before replicate_free, reporting after it. */
		if (ev == STREAM_EVENT_CONNECTED || ev == STREAM_EVENT_CLOSED)
			stream_free(s);
		return;
	}
	switch (ev) {
	case STREAM_EVENT_CONNECTED:
		c = conn_new(r, false);
		if (c == NULL) {
			stream_free(s);
			return;
		}
		c->s = s;
		c->connected = true;
		stream_set_callback(s, conn_event, c);
		if (!r->active) {
			c->refusing = true;
			conn_close(c, WIRE_ERR_PROTOCOL, "not active");
			return;
		}
		if (r->down != NULL) {
			qb_log(LOG_DEBUG, "replicate: %s",
			    "a new standby connection replaces the old");
			conn_free(r->down);
		}
		r->down = c;
		c->phase = PHASE_HELLO;
		send_hello(c);
		notify(r);
		return;
	case STREAM_EVENT_CLOSED:
		set_error(r, "%s: %s", info->address ? info->address : "peer",
		    info->reason ? info->reason : strerror(-info->error));
		if (info->error == -EACCES)
			warn_once(r, info->reason ? info->reason : "",
			    "connection from %s refused: %s", info->address ? info->address : "?",
			    info->reason ? info->reason : "");
		stream_free(s);
		return;
	case STREAM_EVENT_DATA:
	case STREAM_EVENT_DRAINED:
		return;
	}
}

/* listen_event, timed as one step of the loop. */
static void
listen_event(struct stream *s, enum stream_event ev, const struct stream_info *info, void *data)
{
	struct replicate *r = ((struct hub *)data)->r;
	uint64_t t0 = mono_us();

	listen_event_run(s, ev, info, data);
	if (r != NULL)
		step_done(r, "accepting", t0);
}

/* ---- group commit ---- */

static void
commit_job_run(void *data)
{
	struct replicate *r = data;
	struct store_txn *txns = NULL;
	struct store_txn_result *res = NULL;
	struct store_frame frame = {0};
	struct req *batch, *q, **tail;
	size_t n = 0, bytes = 0;
	int rc;

	r->commit_job = false;
	if (r->queue == NULL)
		return;
	/*
	 * Sync: while a frame waits for the standby's ack, requests gather for
	 * the next one, so a frame carries more of them the busier the
	 * writers are.  A lone writer never waits here (its own commit is the
	 * one in flight); waiting_answer starts the job again.  While a
	 * snapshot is made they wait too; snap_release starts it.
	 */
	if (r->active && (r->waiting != NULL || r->make != NULL))
		return;
	if (ckpt_hold(r))
		return;
	/* Take up to COMMIT_MAX requests, and COMMIT_BYTES of them (one at least). */
	batch = r->queue;
	tail = &r->queue;
	for (q = r->queue; q != NULL && n < COMMIT_MAX && (n == 0 || bytes < COMMIT_BYTES);
	     q = q->next) {
		n++;
		bytes += q->n_bytes;
		tail = &q->next;
	}
	r->queue = *tail;
	*tail = NULL;
	if (r->queue == NULL)
		r->queue_tail = &r->queue;
	else
		defer(r, &r->commit_job, &r->commit_timer, QB_LOOP_HIGH, commit_job);

	if (!r->active) {
		while ((q = batch) != NULL) {
			batch = q->next;
			req_answer(q, -EROFS, "this node is not active");
		}
		return;
	}
	txns = calloc(n, sizeof(*txns));
	res = calloc(n, sizeof(*res));
	if (txns == NULL || res == NULL) {
		rc = -ENOMEM;
	} else {
		size_t i = 0;

		for (q = batch; q != NULL; q = q->next, i++)
			txns[i] = (struct store_txn){q->stmts, q->n};
		rc = store_exec_batch(r->store, txns, n, res, &frame);
	}
	if (rc != 0) {
		size_t i = 0;

		while ((q = batch) != NULL) {
			batch = q->next;
			req_answer(
			    q, rc, res && res[i].error ? res[i].error : store_errmsg(r->store));
			i++;
		}
		if (res != NULL)
			store_txn_results_clear(res, n);
		free(res);
		free(txns);
		return;
	}

	/* Committed: the frame goes to the backlog and, if live, to the standby. */
	{
		struct buf eb = {0};
		struct conn *c = r->down;

		rc = encode_frame(&eb, &frame);
		if (rc == 0) {
			if (c != NULL && c->phase == PHASE_LIVE && !c->closing) {
				conn_send(c, eb.p, eb.len);
				c->next_seq = frame.seq + 1;
			}
			backlog_add(r, frame.epoch, frame.seq, eb.p, eb.len);
			snap_wal_check(r);
		} else {
			/* The standby cannot get this frame from the stream: it will resync. */
			free(eb.p);
			backlog_clear(&r->bl);
			if (c != NULL)
				conn_close(c, WIRE_ERR_PROTOCOL,
				    "frame %" PRIu64 " not sendable: %s", frame.seq, strerror(-rc));
		}
	}
	{
		size_t i = 0;
		bool now = r->cfg.mode == REPLICATE_ASYNC || r->alone;

		while ((q = batch) != NULL) {
			batch = q->next;
			q->next = NULL;
			q->res.changes = res[i].changes;
			q->res.last_rowid = res[i].last_rowid;
			q->res.epoch = frame.epoch;
			q->res.seq = frame.seq;
			if (res[i].rc != 0) {
				req_answer(q, res[i].rc, res[i].error);
			} else if (now) {
				req_answer(q, 0, NULL);
			} else {
				*r->waiting_tail = q;
				r->waiting_tail = &q->next;
				r->n_waiting++;
			}
			i++;
		}
	}
	store_txn_results_clear(res, n);
	free(res);
	free(txns);
	store_frame_clear(&frame);
}

TIMED_STEP(commit_job, "commit")

/* ---- public API ---- */

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
config_free(struct replicate_config *c)
{
	free((char *)c->db_path);
	free((char *)c->state_dir);
	free((char *)c->cluster);
	free((char *)c->ca_file);
	free((char *)c->cert_file);
	free((char *)c->key_file);
	free((char *)c->listen_addr);
}

struct replicate *
replicate_new(qb_loop_t *loop, const struct replicate_config *cfg, replicate_event_fn on_event,
    void *data, char *err, size_t errlen)
{
	struct stream_tls_config tc = {0};
	struct replicate *r;
	char *e = NULL;
	int saved;

	if (loop == NULL || cfg == NULL || cfg->db_path == NULL || cfg->state_dir == NULL ||
	    cfg->cluster == NULL || cfg->ca_file == NULL || cfg->cert_file == NULL ||
	    cfg->key_file == NULL) {
		(void)snprintf(err, errlen, "replication config incomplete");
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	r->loop = loop;
	r->on_event = on_event;
	r->data = data;
	r->cfg = *cfg;
	r->cfg.db_path = strdup(cfg->db_path);
	r->cfg.state_dir = strdup(cfg->state_dir);
	r->cfg.cluster = strdup(cfg->cluster);
	r->cfg.ca_file = strdup(cfg->ca_file);
	r->cfg.cert_file = strdup(cfg->cert_file);
	r->cfg.key_file = strdup(cfg->key_file);
	r->cfg.listen_addr = dup_or_null(cfg->listen_addr);
	if (r->cfg.backlog_bytes == 0)
		r->cfg.backlog_bytes = DEFAULT_BACKLOG;
	if (r->cfg.snapshot_wal_bytes == 0)
		r->cfg.snapshot_wal_bytes = DEFAULT_SNAPSHOT_WAL;
	if (r->cfg.reconnect_ms == 0)
		r->cfg.reconnect_ms = DEFAULT_RECONNECT_MS;
	if (r->cfg.timeout_ms == 0)
		r->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
	r->queue_tail = &r->queue;
	r->waiting_tail = &r->waiting;
	r->emitted_link = REPLICATE_LINK_NONE;
	r->in_path = path_in(cfg->state_dir, "snapshot-in.tmp");
	if (!r->cfg.db_path || !r->cfg.state_dir || !r->cfg.cluster || !r->cfg.ca_file ||
	    !r->cfg.cert_file || !r->cfg.key_file || (cfg->listen_addr && !r->cfg.listen_addr) ||
	    !r->in_path) {
		(void)snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		goto fail;
	}
	{
		struct stat st = {0};

		errno = 0;
		if (stat(cfg->state_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			saved = errno != 0 ? errno : ENOTDIR;
			(void)snprintf(
			    err, errlen, "state directory %s: %s", cfg->state_dir, strerror(saved));
			errno = saved;
			goto fail;
		}
	}
	tc.ca_file = cfg->ca_file;
	tc.cert_file = cfg->cert_file;
	tc.key_file = cfg->key_file;
	tc.cluster = cfg->cluster;
	r->hub = calloc(1, sizeof(*r->hub));
	if (r->hub == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		goto fail;
	}
	r->hub->r = r;
	r->tls = r->hub->tls = stream_tls_new(&tc, err, errlen);
	if (r->tls == NULL)
		goto fail;
	r->store = store_open(cfg->db_path, &e);
	if (r->store == NULL) {
		saved = errno;
		if (e != NULL && strstr(e, cfg->db_path) != NULL)
			(void)snprintf(err, errlen, "%s", e);
		else
			(void)snprintf(
			    err, errlen, "database %s: %s", cfg->db_path, e ? e : strerror(saved));
		free(e);
		errno = saved;
		goto fail;
	}
	store_checkpoint_hand_over(r->store);
	/* Leftovers of a snapshot cut short by a restart. */
	(void)unlink(r->in_path);
	return r;
fail:
	saved = errno;
	stream_tls_free(r->tls);
	free(r->hub);
	config_free(&r->cfg);
	free(r->in_path);
	free(r);
	errno = saved;
	return NULL;
}

void
replicate_free(struct replicate *r)
{
	struct req *q;

	if (r == NULL)
		return;
	r->active = false;
	r->peer_active = false;
	reconnect_disarm(r);
	timeout_disarm(r);
	if (r->make != NULL) {
		struct work *w = r->make;

		work_join(w); /* its file is the database itself: nothing to delete */
		work_free(w);
	}
	if (r->open != NULL) {
		struct work *w = r->open;

		work_join(w);
		(void)unlink(w->file);
		work_free(w);
	}
	while (r->conns != NULL)
		conn_free(r->conns);
	stream_listener_free(r->listener);
	undefer(r, &r->commit_job, &r->commit_timer);
	undefer(r, &r->pump_job, &r->pump_timer);
	undefer(r, &r->input_job, &r->input_timer);
	undefer(r, &r->event_job, &r->event_timer);
	undefer(r, &r->ckpt_on, &r->ckpt_timer);
	undefer(r, &r->snap_wait, &r->snap_wait_timer);
	r->on_event = NULL;
	waiting_answer(r, UINT64_MAX, -ECONNABORTED);
	while ((q = r->queue) != NULL) {
		r->queue = q->next;
		req_answer(q, -EROFS, "replication stopped");
	}
	backlog_clear(&r->bl);
	free(r->bl.v);
	store_close(r->store);
	if (r->listened) {
		r->hub->r = NULL;
		(void)pthread_mutex_lock(&dead_lock);
		r->hub->next = dead_hubs;
		dead_hubs = r->hub;
		(void)pthread_mutex_unlock(&dead_lock);
	} else {
		stream_tls_free(r->tls);
		free(r->hub);
	}
	config_free(&r->cfg);
	free(r->peer_name);
	free(r->peer_addr);
	free(r->in_path);
	free(r->out.p);
	free(r->chunk);
	free(r->batch);
	free(r->archive);
	free(r);
}

int
replicate_set_peer(struct replicate *r, const char *name, const char *addr)
{
	struct stream_listener *l;
	char *n, *a;

	if (r == NULL || name == NULL || addr == NULL || *name == '\0' ||
	    strlen(name) > STREAM_NAME_MAX)
		return -EINVAL;
	n = strdup(name);
	a = strdup(addr);
	if (n == NULL || a == NULL) {
		free(n);
		free(a);
		return -ENOMEM;
	}
	stream_listener_free(r->listener);
	r->listener = NULL;
	l = stream_listen(
	    r->loop, r->tls, r->cfg.listen_addr, r->cfg.port, name, listen_event, r->hub);
	if (l == NULL) {
		int rc = -errno;

		qb_log(LOG_ERR, "replicate: cannot listen on %s port %u: %s",
		    r->cfg.listen_addr ? r->cfg.listen_addr : "*", r->cfg.port, strerror(-rc));
		set_error(r, "cannot listen on %s port %u: %s",
		    r->cfg.listen_addr ? r->cfg.listen_addr : "*", r->cfg.port, strerror(-rc));
		free(n);
		free(a);
		return rc;
	}
	r->listener = l;
	r->listened = true;
	free(r->peer_name);
	free(r->peer_addr);
	r->peer_name = n;
	r->peer_addr = a;
	standby_connect(r);
	return 0;
}

int
replicate_activate(struct replicate *r, uint64_t epoch)
{
	int rc = store_set_epoch(r->store, epoch);

	if (rc != 0)
		return rc;
	reconnect_disarm(r);
	timeout_disarm(r);
	if (r->up != NULL)
		conn_free(r->up);
	r->active = true;
	r->marker_epoch = r->marker_seq = 0;
	set_in_sync(r, true);
	qb_log(LOG_DEBUG, "replicate: active at epoch %" PRIu64, epoch);
	notify(r);
	return 0;
}

void
replicate_deactivate(struct replicate *r)
{
	if (!r->active)
		return;
	r->active = false;
	r->alone = false;
	undefer(r, &r->snap_wait, &r->snap_wait_timer);
	if (r->down == NULL || r->down->closing || !r->down->hello_rcvd)
		waiting_answer(r, UINT64_MAX, -ECONNABORTED);
	notify(r);
	standby_connect(r);
	if (r->peer_active && (r->up == NULL || !r->up->hello_rcvd))
		timeout_arm(r);
}

void
replicate_peer_active(struct replicate *r, bool active)
{
	r->peer_active = active;
	if (!active) {
		reconnect_disarm(r);
		timeout_disarm(r);
		if (r->up != NULL && !r->up->hello_rcvd)
			conn_free(r->up);
		return;
	}
	if (r->active)
		return;
	if (r->up == NULL || !r->up->hello_rcvd)
		timeout_arm(r);
	standby_connect(r);
}

void
replicate_set_alone(struct replicate *r, bool alone)
{
	r->alone = alone;
	if (alone)
		waiting_answer(r, UINT64_MAX, 0);
}

int
replicate_exec(struct replicate *r, const struct store_stmt *stmts, size_t n,
    replicate_exec_fn done, void *data)
{
	size_t n_vals = 0, n_bytes = 0, v = 0, b = 0;
	struct req *q;

	if (r == NULL || stmts == NULL || n == 0 || done == NULL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (stmts[i].sql == NULL || (stmts[i].n_params > 0 && stmts[i].params == NULL))
			return -EINVAL;
		n_bytes += strlen(stmts[i].sql) + 1;
		n_vals += stmts[i].n_params;
		for (size_t j = 0; j < stmts[i].n_params; j++) {
			const struct store_value *sv = &stmts[i].params[j];

			if (sv->type == STORE_TEXT || sv->type == STORE_BLOB) {
				if (sv->len > 0 && sv->p == NULL)
					return -EINVAL;
				n_bytes += sv->len + 1;
			}
		}
	}
	if (!r->active)
		return -EROFS;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->stmts = calloc(n, sizeof(*q->stmts));
	q->vals = n_vals ? calloc(n_vals, sizeof(*q->vals)) : NULL;
	q->bytes = malloc(n_bytes);
	if (q->stmts == NULL || (n_vals && q->vals == NULL) || q->bytes == NULL) {
		req_free(q);
		return -ENOMEM;
	}
	q->n = n;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(stmts[i].sql) + 1;

		memcpy(q->bytes + b, stmts[i].sql, len);
		q->stmts[i].sql = q->bytes + b;
		b += len;
		q->stmts[i].n_params = stmts[i].n_params;
		q->stmts[i].params = stmts[i].n_params ? q->vals + v : NULL;
		for (size_t j = 0; j < stmts[i].n_params; j++) {
			struct store_value *d = &q->vals[v++];

			*d = stmts[i].params[j];
			if (d->type == STORE_TEXT || d->type == STORE_BLOB) {
				if (d->len > 0)
					memcpy(q->bytes + b, stmts[i].params[j].p, d->len);
				q->bytes[b + d->len] = '\0';
				d->p = q->bytes + b;
				b += d->len + 1;
			}
		}
	}
	q->n_bytes = n_bytes;
	q->done = done;
	q->data = data;
	*r->queue_tail = q;
	r->queue_tail = &q->next;
	defer(r, &r->commit_job, &r->commit_timer, QB_LOOP_HIGH, commit_job);
	if (!r->commit_job) {
		/* Unqueue: the caller gets the error instead of an answer. */
		struct req **pp = &r->queue;

		while (*pp != q)
			pp = &(*pp)->next;
		*pp = NULL;
		r->queue_tail = pp;
		req_free(q);
		return -ENOMEM;
	}
	return 0;
}

int
replicate_query(struct replicate *r, const char *sql, const struct store_value *params,
    size_t n_params, struct store_rows *ret_rows)
{
	int rc = store_query(r->store, sql, params, n_params, ret_rows);

	if (rc != 0)
		(void)snprintf(r->query_err, sizeof(r->query_err), "%s", store_errmsg(r->store));
	return rc;
}

const char *
replicate_errmsg(const struct replicate *r)
{
	return r->query_err;
}

void
replicate_position(const struct replicate *r, uint64_t *ret_epoch, uint64_t *ret_seq)
{
	store_position(r->store, ret_epoch, ret_seq);
}

bool
replicate_in_sync(const struct replicate *r)
{
	return r->active || r->in_sync;
}

void
replicate_status(const struct replicate *r, struct replicate_status *ret)
{
	struct replicate *m = (struct replicate *)r;
	const struct conn *c = !r->active && r->up != NULL ? r->up : r->down;
	uint64_t seq;

	memset(ret, 0, sizeof(*ret));
	store_position(r->store, &ret->epoch, &seq);
	ret->seq = seq;
	ret->mode = r->cfg.mode;
	ret->active = r->active;
	ret->link = link_of(r);
	if (c != NULL && c->s != NULL && c->connected && !c->refusing &&
	    stream_peer(c->s) != NULL) {
		(void)snprintf(m->status_peer, sizeof(m->status_peer), "%s", stream_peer(c->s));
		ret->peer = m->status_peer;
	}
	ret->in_sync = replicate_in_sync(r);
	ret->alone = r->alone;
	ret->waiting = r->n_waiting;
	ret->sync_marker_epoch = r->marker_epoch;
	ret->sync_marker = r->marker_seq;
	if (r->active || r->down != NULL) {
		uint64_t acked =
		    r->down != NULL && r->down->hello_rcvd ? r->down->acked_seq : r->last_acked;

		ret->lag = seq > acked ? seq - acked : 0;
		ret->peer_seq = acked;
	} else {
		ret->peer_seq = seq;
	}
	if (r->down != NULL && r->down->phase == PHASE_SNAP_SEND) {
		ret->snapshot_done = r->down->snap_off;
		ret->snapshot_total = r->down->snap_size;
	} else if (r->up != NULL && r->up->rx.on) {
		ret->snapshot_done = r->up->rx.done;
		ret->snapshot_total = r->up->rx.total;
	}
	ret->archive = r->archive;
	ret->last_error = r->last_error[0] ? r->last_error : NULL;
	ret->longest_step_us = r->longest_step_us;
	ret->longest_step = r->longest_step;
	ret->slow_steps = r->slow_steps;
}

int
replicate_content_hash(
    struct replicate *r, uint64_t *ret_hash, uint64_t *ret_epoch, uint64_t *ret_seq)
{
	uint64_t h;
	int rc = store_content_hash(r->store, &h);

	if (rc != 0)
		return rc;
	*ret_hash = h;
	store_position(r->store, ret_epoch, ret_seq);
	return 0;
}

const char *
replicate_mode_name(enum replicate_mode mode)
{
	switch (mode) {
	case REPLICATE_SYNC:
		return "sync";
	case REPLICATE_ASYNC:
		return "async";
	}
	return "?";
}

const char *
replicate_link_name(enum replicate_link link)
{
	switch (link) {
	case REPLICATE_LINK_NONE:
		return "none";
	case REPLICATE_LINK_CONNECTING:
		return "connecting";
	case REPLICATE_LINK_SNAPSHOT:
		return "snapshot";
	case REPLICATE_LINK_CATCHUP:
		return "catchup";
	case REPLICATE_LINK_STREAMING:
		return "streaming";
	}
	return "?";
}

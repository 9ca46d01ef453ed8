/*
 * replicate: the pair's replicated SQLite database, as one module on the
 * agent's qb_loop.  The only header of replicate/ that agent/ includes.
 *
 * Every node owns one store (store.h).  The active runs the clients'
 * write transactions, captures each batch of them as one frame stamped
 * (epoch, seq) and streams the frames in order over TLS 1.3 with mutual
 * certificate authentication (stream.h, wire.h) to the standby, which
 * applies them exactly once and acks.  In sync mode a client's commit is
 * answered only after the standby's ack, unless the agent said the active
 * may acknowledge alone (the standby is fenced, left cleanly, or declared
 * itself out of sync on CPG): that decision belongs to the election, not
 * to the stream, because an unreachable standby may be about to promote.
 *
 * Connections: every node listens on (listen_addr, port) and accepts only
 * the peer named by replicate_set_peer, and only while active.  A standby
 * connects to the peer while the agent says the peer is active, and
 * reconnects after any drop.  Both sides send HELLO with their position;
 * the active then streams the frames the standby lacks from its backlog,
 * or, when the backlog does not reach back far enough or the standby's
 * history is not a prefix of ours, a consistent snapshot of the database
 * followed by the live stream from the snapshot's position.  A standby
 * whose history is not a prefix of the active's (it was active and wrote
 * what the new active never saw) has its database archived in state_dir
 * before the snapshot replaces it: nothing is dropped silently.
 *
 * A standby is in sync once it has applied everything up to the position
 * the active had when the live stream started; only a node in sync (or the
 * active) holds every acknowledged write, so only it may be promoted.  It
 * stays in sync when the connection drops (the active may be dying; it
 * cannot acknowledge alone before the election lets it), and declares
 * itself out of sync when it must resync, or when it has not reached the
 * active for timeout_ms while the agent still says the peer is active.
 *
 * Nothing blocks the loop: for a snapshot a worker thread folds the WAL
 * into the database file, which is sent in chunks as the socket drains
 * while checkpoints wait; no loop step runs more than a bounded amount of
 * work.  The module logs through qb_log.
 */
#ifndef TANDEM_REPLICATE_H
#define TANDEM_REPLICATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qb/qbloop.h>

#include "replicate/store.h"

struct replicate;

enum replicate_mode {
	/* A commit is answered once the standby has applied it (or the active is alone). */
	REPLICATE_SYNC,
	/* A commit is answered once committed locally; the standby follows. */
	REPLICATE_ASYNC,
};

/* Where this node's replication link stands. */
enum replicate_link {
	/* No peer connection (standby: none wanted, or waiting to reconnect). */
	REPLICATE_LINK_NONE,
	/* TCP/TLS handshake or HELLO exchange under way. */
	REPLICATE_LINK_CONNECTING,
	/* A snapshot is being made or sent (active) / received (standby). */
	REPLICATE_LINK_SNAPSHOT,
	/* Frames from the backlog are being sent / applied to catch up. */
	REPLICATE_LINK_CATCHUP,
	/* Live: every new frame goes to the standby as it commits. */
	REPLICATE_LINK_STREAMING,
};

struct replicate_config {
	/* The database file (created if missing) and the directory for archives and temp files. */
	const char *db_path;
	const char *state_dir;
	/* TLS: the cluster name (every certificate's O=), CA, this node's certificate and key. */
	const char *cluster;
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	/* Numeric address and port to listen on (NULL: every IPv4 address). */
	const char *listen_addr;
	uint16_t port;
	enum replicate_mode mode;
	/* Sent in HELLO. */
	uint32_t node_id;
	uint32_t incarnation;
	/* Bytes of recent frames the active keeps for catching up a standby; 0 means 64 MiB. */
	size_t backlog_bytes;
	/*
	 * The most the active's WAL may grow while a snapshot is sent (its
	 * checkpoints wait meanwhile); past it the snapshot is given up and
	 * another follows.  0 means 1 GiB.
	 */
	uint64_t snapshot_wal_bytes;
	/* A standby retries a failed connection after this long; 0 means 200 ms. */
	unsigned int reconnect_ms;
	/* A standby that cannot reach the active peer for this long is out of sync; 0 means 10 s.
	 */
	unsigned int timeout_ms;
};

enum replicate_event {
	/*
	 * replicate_in_sync() or the link changed: the agent re-reads
	 * them (it tells the election and shows them in status).
	 */
	REPLICATE_EVENT_CHANGED,
};

typedef void (*replicate_event_fn)(struct replicate *r, enum replicate_event event, void *data);

/*
 * Opens the store at cfg->db_path and loads the TLS files (cfg is copied).
 * The node starts as a standby, out of sync, without a peer.  Returns NULL
 * on failure with a one-line reason in err naming the file at fault.
 */
struct replicate *replicate_new(qb_loop_t *loop, const struct replicate_config *cfg,
    replicate_event_fn on_event, void *data, char *err, size_t errlen);

/*
 * Closes the connection and the store and frees r.  Writes still waiting
 * for an ack are answered with -ECONNABORTED.  NULL is a no-op.
 */
void replicate_free(struct replicate *r);

/*
 * The peer's node name (the CN its certificate must carry) and numeric
 * address, from corosync's nodelist.  Starts listening.  Returns 0 or
 * -errno with the reason logged.
 */
int replicate_set_peer(struct replicate *r, const char *name, const char *addr);

/*
 * Becomes the active at epoch (recorded in the database and fsync'd before
 * this returns; an epoch older than the data's is refused with -EINVAL):
 * drops any connection to the old active, accepts the peer's, takes
 * writes.  The standby is not in sync until it says so in HELLO, so the
 * active waits for it or for replicate_set_alone.
 */
int replicate_activate(struct replicate *r, uint64_t epoch);

/*
 * Becomes a standby: new writes are refused at once; frames already
 * committed keep streaming to the peer, and their writers get their
 * answer when the peer acks them (or -ECONNABORTED if the link drops).
 */
void replicate_deactivate(struct replicate *r);

/* Standby: the peer is (or is no longer) the active; connect to it now / stop trying. */
void replicate_peer_active(struct replicate *r, bool active);

/*
 * Active: whether commits may be answered without the standby's ack.  The
 * agent sets it when the election knows the standby cannot be promoted
 * (fenced, left cleanly, or its CPG state says it is out of sync), and
 * clears it when the standby is back.  Setting it answers every waiting
 * commit.
 */
void replicate_set_alone(struct replicate *r, bool alone);

struct replicate_result {
	/* Rows changed by the client's statements, and the last rowid inserted. */
	int64_t changes;
	int64_t last_rowid;
	/* The position the transaction committed at. */
	uint64_t epoch;
	uint64_t seq;
	/* rc != 0: one line for the client (valid during the callback). */
	const char *error;
};

/*
 * The answer to one replicate_exec.  rc is 0 (committed and, in sync mode,
 * applied by the standby or acknowledged alone), or: -EINVAL an SQL
 * error, -EPERM a statement refused (what a changeset would lose, a write
 * to _tandem_ tables, transaction control), -EBUSY, -EIO, -EROFS the node
 * is not active (nothing committed), -ECONNABORTED committed locally but
 * the node demoted or stopped before the standby acknowledged it (the
 * outcome is unknown to the client: it is kept if the new active has it,
 * archived otherwise).
 */
typedef void (*replicate_exec_fn)(int rc, const struct replicate_result *res, void *data);

/*
 * Queues one client transaction (stmts[0..n), copied) and returns 0; done
 * is called later from the loop, never during this call.  Transactions
 * queued in the same loop turn are committed together as one frame (group
 * commit); each keeps its own result, and a failing one is rolled back
 * alone.  Returns -EROFS at once (done not called) when this node is not
 * active, -EINVAL for n == 0 or a statement without SQL, -ENOMEM.
 */
int replicate_exec(struct replicate *r, const struct store_stmt *stmts, size_t n,
    replicate_exec_fn done, void *data);

/* A read-only query on this node's data (either role); see store_query. */
int replicate_query(struct replicate *r, const char *sql, const struct store_value *params,
    size_t n_params, struct store_rows *ret_rows);

/* store_errmsg of the last failed replicate_query. */
const char *replicate_errmsg(const struct replicate *r);

/* This node's data position: the last frame committed (active) or applied (standby). */
void replicate_position(const struct replicate *r, uint64_t *ret_epoch, uint64_t *ret_seq);

/*
 * True when this node holds every acknowledged write: always on the
 * active; on a standby, once caught up with the live stream (see above).
 */
bool replicate_in_sync(const struct replicate *r);

struct replicate_status {
	enum replicate_mode mode;
	bool active;
	uint64_t epoch;
	uint64_t seq;
	enum replicate_link link;
	/* The peer's name while connected, else NULL. */
	const char *peer;
	bool in_sync;
	/* Active: commits answered without the standby (set_alone). */
	bool alone;
	/* Active: frames committed and not yet acked by the standby; standby: 0. */
	uint64_t lag;
	/* Active: commits waiting for the standby's ack. */
	uint64_t waiting;
	/* The peer's last acked (active) or our last applied (standby) position. */
	uint64_t peer_seq;
	/*
	 * Active: the position (epoch, seq) of the last in-sync marker sent to the
	 * standby (the live stream started there; 0 if none since this
	 * process started).  An out-of-sync state the standby announced
	 * below it is older than that stream and stale.
	 */
	uint64_t sync_marker_epoch;
	uint64_t sync_marker;
	/* While a snapshot is made, sent or received: bytes done of total (0 otherwise). */
	uint64_t snapshot_done;
	uint64_t snapshot_total;
	/* The path of the last diverged database archived here, or NULL. */
	const char *archive;
	/* The last link error, one line, or NULL. */
	const char *last_error;
	/*
	 * Since replicate_new: the longest time one step of replication
	 * (a callback from the loop) held the event loop, what it was (a
	 * static name, NULL before the first), and how many steps took
	 * over 10 ms.
	 */
	uint64_t longest_step_us;
	const char *longest_step;
	uint64_t slow_steps;
};

/* Fills *ret; its strings are valid until the next call into r. */
void replicate_status(const struct replicate *r, struct replicate_status *ret);

/* store_content_hash of this node's data, and the position it was taken at. */
int replicate_content_hash(
    struct replicate *r, uint64_t *ret_hash, uint64_t *ret_epoch, uint64_t *ret_seq);

const char *replicate_mode_name(enum replicate_mode mode);
const char *replicate_link_name(enum replicate_link link);

#endif

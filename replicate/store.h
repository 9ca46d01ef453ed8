/*
 * store: the replicated SQLite database of one node, without networking.
 *
 * On the active, store_exec runs a client transaction on the writer
 * connection and returns it as a frame: the changes captured by SQLite's
 * session extension and the schema changes as SQL text, in the order they
 * happened, stamped with the position (epoch, seq) it committed at.  On
 * the standby, store_apply replays such a frame in one transaction on a
 * separate apply connection, exactly once and in order.  The position is
 * stored in the database file itself (table _tandem_meta), in the same
 * transaction as the data, so any copy of the file knows where it stands.
 *
 * Internal header of replicate/.  Errors are 0 / -errno; the last error's
 * text is kept for store_errmsg.  store never logs.
 */
#ifndef TANDEM_REPLICATE_STORE_H
#define TANDEM_REPLICATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum store_type {
	STORE_NULL = 0,
	STORE_INTEGER,
	STORE_FLOAT,
	STORE_TEXT,
	STORE_BLOB,
};

/*
 * A typed SQL value.  i holds STORE_INTEGER, f STORE_FLOAT; p and len hold
 * STORE_TEXT (UTF-8, len bytes, no NUL needed) and STORE_BLOB.  Values
 * returned by store_query also have a NUL after the len bytes of a text.
 */
struct store_value {
	enum store_type type;
	int64_t i;
	double f;
	const void *p;
	size_t len;
};

/*
 * One statement of a transaction.  Without params, sql may hold several
 * statements separated by ';'.  With params, sql must hold exactly one
 * statement and n_params must equal its number of parameters (?, ?N,
 * :name are bound by position).
 */
struct store_stmt {
	const char *sql;
	const struct store_value *params;
	size_t n_params;
};

enum store_part_type {
	/* A changeset of sqlite3session_changeset (never empty). */
	STORE_PART_CHANGESET,
	/* The SQL text of one schema statement (CREATE, ALTER, DROP). */
	STORE_PART_DDL,
};

struct store_part {
	enum store_part_type type;
	void *data;
	size_t len;
};

/*
 * One replicated transaction.  Parts are applied in order.  schema_before
 * is the schema hash the frame was captured against, schema_after the one
 * it leaves behind (equal unless a part is DDL).  changes and last_rowid
 * describe the transaction for the client; they are not replicated.
 */
struct store_frame {
	uint64_t epoch;
	uint64_t seq;
	uint64_t schema_before;
	uint64_t schema_after;
	struct store_part *parts;
	size_t n_parts;
	int64_t changes;
	int64_t last_rowid;
};

/* A query result: n_rows rows of n_cols values, row after row. */
struct store_rows {
	size_t n_cols;
	size_t n_rows;
	char **names;
	struct store_value *values;
};

/*
 * Opens or creates the database at path (a new file is created 0600), in
 * WAL mode with synchronous=NORMAL, and creates _tandem_meta (position
 * 0, 0) and _tandem_epochs (the history of store_has_position) if they
 * are missing.  Nothing else is changed in the file.  Returns
 * the store, or NULL with errno set and, if ret_err is not NULL, *ret_err
 * set to a malloc'd one-line message the caller frees.
 */
struct store *store_open(const char *path, char **ret_err);

/* Closes both connections and frees s.  store_close(NULL) is a no-op. */
void store_close(struct store *s);

/* The message of the last failed call on s ("" if none).  Valid until the next call. */
const char *store_errmsg(const struct store *s);

/*
 * Runs stmts[0..n) in one transaction on the writer connection, captures
 * it and commits it at position (epoch, seq + 1).  Every call that
 * returns 0 takes the next seq, even if it changed nothing (the frame has
 * no parts then), so the caller must stream every frame.  Schema
 * statements are checked and refused (-EPERM, the message names the table
 * and the reason) for a table without PRIMARY KEY, a primary-key column
 * that allows NULL, a generated column, a virtual table, AUTOINCREMENT,
 * temporary objects.  Transaction control, ATTACH, writing PRAGMAs,
 * ANALYZE and any write to a _tandem_ name are refused with -EPERM too.
 * SQL errors (syntax, constraints, parameter count) give -EINVAL; a busy
 * database -EBUSY; I/O -EIO.  On any error nothing is committed and the
 * position is unchanged.  On success *ret_frame is filled (the caller
 * frees it with store_frame_clear); on failure it is untouched.
 */
int store_exec(
    struct store *s, const struct store_stmt *stmts, size_t n, struct store_frame *ret_frame);

/* Frees the parts of f (a frame from store_exec) and zeroes f.  NULL is a no-op. */
void store_frame_clear(struct store_frame *f);

/*
 * Runs one read-only statement (sql must hold exactly one) with params
 * and returns all its rows in *ret_rows (free with store_rows_free).
 * Returns 0; -EPERM if the statement could write (it is not run);
 * -EINVAL for an SQL error or a parameter count mismatch.
 */
int store_query(struct store *s, const char *sql, const struct store_value *params, size_t n_params,
    struct store_rows *ret_rows);

/* Frees what store_query put in rows and zeroes it.  NULL is a no-op. */
void store_rows_free(struct store_rows *rows);

/*
 * Applies frame f on the apply connection (triggers and foreign keys off:
 * the frame already holds their effects) in one transaction that also
 * records (f->epoch, f->seq).  f is only read; its parts may point into
 * the caller's buffer, DDL text needs no NUL.  Returns:
 *   0          applied and committed;
 *   -EALREADY  f->seq <= ours in our epoch: a duplicate, nothing done
 *              (ack it again);
 *   -EPROTO    f->epoch is older than ours, or f->seq skips ahead (gap);
 *   -ESTALE    the replicas diverged: the schema hash before (or after)
 *              differs from ours, a change conflicts with our rows, a DDL
 *              fails, a table is missing, or a newer epoch does not
 *              continue our seq (resync needed);
 *   -EBADMSG   a changeset is corrupt;
 *   other -errno from SQLite (-EBUSY, -EIO, -ENOMEM).
 * On any error the transaction is rolled back: nothing of f is applied.
 */
int store_apply(struct store *s, const struct store_frame *f);

/* Our position: the (epoch, seq) last committed.  Either pointer may be NULL. */
void store_position(const struct store *s, uint64_t *ret_epoch, uint64_t *ret_seq);

/*
 * Records a new epoch (a promotion), with an fsync whatever the
 * synchronous setting.  seq continues.  Returns 0 (also when epoch equals
 * ours), -EINVAL if epoch is older than ours, other -errno from SQLite.
 */
int store_set_epoch(struct store *s, uint64_t epoch);

/* The schema hash frames carry (user objects; the _tandem_ tables excluded). */
uint64_t store_schema_hash(const struct store *s);

/*
 * Hashes the content of every user table (names, column values and types,
 * rows in sorted order) and the schema into *ret_hash: equal for two
 * replicas holding the same data, whatever their page layout.  Returns 0
 * or -errno; *ret_hash is untouched on failure.
 */
int store_content_hash(struct store *s, uint64_t *ret_hash);

/*
 * Copies the database (sqlite3_backup, one pass) to a new file
 * dir/diverged-EPOCH-YYYYmmddTHHMMSSZ.db (UTC, mode 0600), for the data of
 * a diverged node that must be kept.  On success *ret_path is the malloc'd
 * path (the caller frees it).  Returns 0, -EEXIST if that file exists,
 * -ENOENT if dir does not, other -errno.  On failure no file is left.
 */
int store_archive(struct store *s, const char *dir, uint64_t epoch, char **ret_path);

/* One client transaction of a group commit: its statements, as store_exec takes them. */
struct store_txn {
	const struct store_stmt *stmts;
	size_t n;
};

/* What became of one transaction of a group commit. */
struct store_txn_result {
	/* 0, or what store_exec would have returned for it alone. */
	int rc;
	int64_t changes;
	int64_t last_rowid;
	/* rc != 0: a malloc'd one-line message (store_txn_results_clear frees it). */
	char *error;
};

/*
 * Group commit: runs txns[0..n) in one SQLite transaction, each inside its
 * own SAVEPOINT, and commits them as one frame at (epoch, seq + 1), parts
 * cut at each DDL as in store_exec.  A transaction that fails (any error
 * store_exec gives for it alone: -EINVAL, -EPERM, ...) is rolled back to
 * its savepoint and reported in results[i]; the others are unaffected.
 * Returns 0 when the batch committed, even if every transaction in it
 * failed (the frame has no parts then, and still takes a seq); or -errno
 * when the batch as a whole failed (-EBUSY, -EIO, -ENOMEM): then nothing
 * is committed, the position is unchanged, every results[i].rc is that
 * error and *ret_frame is untouched.  results has n entries.
 */
int store_exec_batch(struct store *s, const struct store_txn *txns, size_t n,
    struct store_txn_result *results, struct store_frame *ret_frame);

/* Frees the messages in results[0..n) and zeroes them. */
void store_txn_results_clear(struct store_txn_result *results, size_t n);

/*
 * Applies frames[0..n) in order in one transaction on the apply
 * connection, with the checks of store_apply for each.  Leading frames
 * that are duplicates (-EALREADY) are skipped.  Returns 0 when every
 * remaining frame applied (*ret_applied, if not NULL, says how many), or
 * the first error store_apply would give (nothing of any frame applied).
 */
int store_apply_batch(
    struct store *s, const struct store_frame *frames, size_t n, size_t *ret_applied);

/*
 * How many changesets s applied since it was opened by its fast path
 * (statements kept across frames, change by change) and by SQLite's own
 * apply (the fast path could not apply them as that apply would, which
 * then decided: conflicts, missing tables, constraints met only in
 * another order).
 */
void store_apply_counts(const struct store *s, uint64_t *ret_fast, uint64_t *ret_full);

/*
 * The history of epochs: the database records, in the same transaction,
 * the seq at which each epoch began (store_set_epoch on a promotion; the
 * first frame of a newer epoch on a standby), so a copy of the file knows
 * the history it holds.  Returns 1 when our history passes through
 * (epoch, seq), that is, a node at that position holds a prefix of our
 * data; 0 when it does not (that node wrote what we never saw, or is
 * ahead of us); -errno on a database error.  (0, 0) is in every history.
 */
int store_has_position(struct store *s, uint64_t epoch, uint64_t seq);

/*
 * Writes a consistent copy of the database at db_path to dest_path (new
 * file, 0600, fsync'd) with its own connection, so a worker thread may
 * call it while the loop keeps writing through a struct store.  Reports
 * the position the copy holds.  Returns 0 or -errno; err (errlen bytes)
 * gets one line on failure and no file is left.
 */
int store_backup_file(const char *db_path, const char *dest_path, uint64_t *ret_epoch,
    uint64_t *ret_seq, char *err, size_t errlen);

/*
 * Replaces the database of s by the file new_path (a snapshot received
 * from the active): checks it is a store database, closes s's connections,
 * moves the current file to *ret_archive (when archive_dir is not NULL: a
 * new name dir/diverged-EPOCH-YYYYmmddTHHMMSSZ.db with our old epoch, the
 * malloc'd path returned) or deletes it, renames new_path over it (with
 * fsyncs of the file and the directory) and reopens.  Returns 0 or -errno
 * with store_errmsg set; on failure before the rename nothing changed,
 * and s stays usable either way.
 */
int store_replace(
    struct store *s, const char *new_path, const char *archive_dir, char **ret_archive);

/*
 * While paused, no checkpoint of the store's own writes the database file
 * (the WAL grows instead): the file can be read as it stands.  Resuming
 * lets the checkpointer catch up.  From the store's thread.
 */
void store_checkpoints_pause(struct store *s, bool pause);

/*
 * The bytes of the WAL file as the last commit on the store's connections
 * left it (0 before the first and once the WAL started over): while
 * checkpoints are paused, how much it grew.  From the store's thread.
 */
uint64_t store_wal_bytes(const struct store *s);

/*
 * Whether more of the WAL than the checkpointer lets pile up under steady
 * commits is not yet in the database file, and the checkpointer thread
 * runs to copy it (once checkpoints are not paused): store_checkpoint_full
 * would now copy that much while commits wait.  From the store's thread.
 */
bool store_checkpoint_behind(struct store *s);

/*
 * Copies the whole WAL into the database file, from a connection of its
 * own (any thread; waits for a running checkpoint of the store's).  With
 * no write in progress and checkpoints paused, the file alone is then
 * the database at the store's position.  0, or -errno with err set.
 */
int store_checkpoint_full(struct store *s, char *err, size_t errlen);

/*
 * The last part of a checkpoint under steady commits, the WAL's tail that
 * the checkpointer thread leaves behind it, is copied by a commit itself
 * (fsyncs included: milliseconds).  After store_checkpoint_hand_over,
 * the commit only marks it due instead: store_checkpoint_due says so, the
 * owner then stops committing, calls store_checkpoint_finish, and commits
 * again once store_checkpoint_finishing is false (the thread copied the
 * tail; the next commit starts the WAL over).  Any thread may ask; the
 * three calls take the checkpointer's lock.
 */
void store_checkpoint_hand_over(struct store *s);
bool store_checkpoint_due(struct store *s);
void store_checkpoint_finish(struct store *s);
bool store_checkpoint_finishing(struct store *s);

/*
 * A read-only descriptor of the database file, owned by the store: read
 * it (pread) but never close it.  The store's connections hold a lock on
 * the file for the process, which closing any descriptor of the file
 * would drop.  Valid until store_close or store_replace.
 */
int store_file_fd(const struct store *s);

/*
 * Closes fd on a thread of its own.  The last close of a deleted file
 * frees its blocks, which for a database of a GiB takes a third of a
 * second: never on the event loop.  Closes at once if no thread starts.
 */
void store_close_later(int fd);

/* Deletes path, freeing its blocks the same way (store_close_later). */
void store_remove_later(const char *path);

#endif

/*
 * store.c: owns the SQLite database of this node and its two connections,
 * and is the only file that sees SQLite's result codes (converted to
 * -errno here).  It enforces rule 2 (no acknowledged write is lost) at the
 * bottom: a frame carries everything its transaction changed, is applied
 * exactly once and in order, and never partly.
 *
 * The writer connection runs client transactions.  Each runs under a
 * session (sqlite3session_attach(NULL): every table, in first-change
 * order) that records the net changes.  The session extension ignores
 * DDL and fails with SQLITE_SCHEMA when a table it tracks is altered, so
 * the session is cut at each schema statement: the changeset so far
 * becomes a part, the statement's text the next part, and a new session
 * starts for what follows.  An authorizer classifies every statement at
 * prepare time, refuses what would be lost silently (virtual and
 * temporary tables, transaction control, ATTACH, writing pragmas), and
 * reserves the _tandem_ names.  What a changeset cannot carry faithfully
 * about a table is checked after its CREATE or ALTER ran, inside the still
 * open transaction, from what SQLite itself says about the table
 * (pragma_table_list, pragma_table_xinfo, pragma_index_list), so no
 * parsing of CREATE TABLE is needed: no PRIMARY KEY (its rows would not be
 * captured), a nullable primary-key column (a NULL key row is skipped),
 * a generated column (changeset fails), AUTOINCREMENT (sqlite_sequence
 * has no primary key, so a reused id after failover).
 *
 * The apply connection replays frames with triggers and foreign keys off:
 * the changeset already holds what triggers and cascades did on the
 * active, and firing them again would double it or conflict.  Any
 * conflict aborts, because on a replica a conflict means divergence,
 * which is a resync and never a merge.  A changeset for a table the
 * standby lacks is skipped silently by SQLite, so every frame carries
 * the schema hash it was captured against and the filter refuses missing
 * tables as well.  A changeset is first applied change by change with
 * statements kept across frames (apply_fast); only what that cannot
 * apply as SQLite would goes to sqlite3changeset_apply_v2, which decides.
 *
 * A group commit (store_exec_batch) runs several client transactions
 * under the one session of one SQLite transaction, each in a savepoint.
 * A transaction that fails is rolled back to its savepoint and nothing
 * of it reaches the frame: the session computes a changeset from the
 * rows as they are when it is asked, so a row the rolled-back part
 * inserted, changed or deleted shows its state from before.  Only a cut
 * at a schema statement inside the failed transaction has already taken
 * a changeset; that part is dropped and the session it came from, kept
 * disabled until the transaction ends, goes on.  Texts that are one
 * statement are kept prepared, by their text, for their next run.
 *
 * _tandem_epochs holds the history: the seq at which each epoch began,
 * written in the transaction that begins it, so that store_has_position
 * can tell from any copy of the file whether a peer holds a prefix of
 * its data.  store_backup_file copies a file with connections of its own
 * (any thread); store_replace puts a received copy in place of ours.
 *
 * Both connections use synchronous=NORMAL: in WAL mode a commit is then
 * not fsynced, but it survives a crash of the process, and in sync mode
 * a write is acknowledged only once the standby has it, so the standby's
 * copy is the durability against the loss of one machine.  The epoch,
 * the fencing token, is written with a full sync all the same.
 *
 * The store's connections (all in this process) open the file with the
 * "unix-excl" VFS: the first takes an exclusive lock on the file for the
 * process and keeps it until the last closes, and the WAL index lives in
 * this process's memory rather than in a -shm file.  No commit then pays
 * the half dozen fcntl() calls of SQLite's locking between processes, and
 * no other process can write to the database behind tandemd's back (a
 * write it never captured would be a silent divergence): it gets "database
 * is locked".
 */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define META_TABLE "_tandem_meta"
#define EPOCHS_TABLE "_tandem_epochs"
#define RESERVED_PREFIX "_tandem_"
/* SQL: the named column is not one of our tables (LIKE ignores ASCII case, as reserved() does). */
#define NOT_RESERVED(col) " " col " NOT LIKE '\\_tandem\\_%' ESCAPE '\\'"
#define BUSY_TIMEOUT_MS 5000
#define STORE_VFS "unix-excl" /* see the top of this file */
#define NZ(x) ((x) ? (x) : "?")
/* Client statements kept prepared on the writer (direct-mapped by their text). */
#define STMT_CACHE 32
#define STMT_CACHE_MAX_SQL 1024

/* What the authorizer lets through on the writer connection. */
enum auth_mode {
	AUTH_INTERNAL, /* our own statements: everything */
	AUTH_EXEC,     /* a client's transaction */
	AUTH_QUERY,    /* a client's query */
};

struct conn {
	sqlite3 *db;
	sqlite3_stmt *begin;
	sqlite3_stmt *commit;
	sqlite3_stmt *rollback;
	sqlite3_stmt *get_pos;
	sqlite3_stmt *set_pos;
	sqlite3_stmt *cookie;
	sqlite3_stmt *add_epoch;
	/* Writer only: the savepoint around each transaction of a group commit. */
	sqlite3_stmt *sp_begin;
	sqlite3_stmt *sp_release;
	sqlite3_stmt *sp_rollback;
};

/* A client statement of one whole text (no schema change), kept for its next run. */
struct cached_stmt {
	char *sql;
	size_t len;
	sqlite3_stmt *st;
};

/*
 * The checkpointer: a thread of its own, with a connection of its own,
 * copies the WAL into the database file once it holds CKPT_PAGES pages.
 * SQLite's automatic checkpoint would do it inside a commit on the event
 * loop, fsyncs included (tens of ms on a busy disk).  Started at the
 * first full WAL; stopped (joined) before the file is replaced or closed.
 *
 * The WAL starts over only once every frame in it is in the database
 * file, and under steady writes the thread never gets there: new frames
 * arrive while it copies.  So it runs again and again, each time over
 * fewer new frames, and once what it left is at most CKPT_TAIL frames (or,
 * when it does not get there, once the WAL holds CKPT_MAX: then what it
 * left is what came during its last run) the commit's own thread copies
 * that rest (a moment, fsyncs included), after which the next commit
 * starts the WAL over.  An owner with an event loop that cannot wait even
 * that moment takes the tail over (store_checkpoint_hand_over): it holds
 * its commits while the thread copies the rest.
 */
#define CKPT_PAGES 1000
#define CKPT_TAIL 256
#define CKPT_MAX (2 * CKPT_PAGES)
#define WAL_SIZE_LIMIT "67108864" /* bytes */
/* The WAL file: its header, then frames of a header and a page each. */
#define WAL_HEADER_BYTES 32u
#define WAL_FRAME_HEADER_BYTES 24u

struct checkpointer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool running; /* th exists */
	bool pending; /* a checkpoint is wanted */
	bool paused;  /* store_checkpoints_pause: the database file must not change */
	bool busy;    /* a checkpoint is running */
	bool stop;
	int done;       /* WAL frames in the database file after its last checkpoint */
	bool chasing;   /* wal_hook's own: the WAL passed CKPT_PAGES since it started over */
	bool hand_over; /* store_checkpoint_hand_over: the owner holds commits for the tail */
	bool due;       /* the tail is due (hand_over) */
	bool finishing; /* store_checkpoint_finish: the thread copies the tail */
	int finished;   /* done after the last finish (0: none since the WAL started over) */
	char *path;
};

/*
 * The apply connection's fast path (apply_fast): what it knows of each
 * table changed lately, read at schema cookie `cookie`, and its statements.
 */
#define FAST_UPDATES 8
#define FAST_PASSES 16 /* over a changeset, retries included */

struct fast_table {
	char *name;
	int n_cols;
	unsigned char *pk; /* n_cols flags: a primary-key column */
	char **cols;       /* n_cols names */
	sqlite3_stmt *ins;
	sqlite3_stmt *del;
	struct cached_stmt upd[FAST_UPDATES]; /* by text, one per set of columns changed */
	size_t next_upd;
};

struct fast {
	int64_t cookie;
	struct fast_table *t;
	size_t n;
	sqlite3_stmt *info;
	sqlite3_stmt *sp_begin;
	sqlite3_stmt *sp_release;
	sqlite3_stmt *sp_rollback;
};

struct store {
	char *path;
	/*
	 * The file, read-only, for store_file_fd; open as long as the store
	 * is, since closing any descriptor of the file would drop the lock
	 * the store's connections hold on it for the process.
	 */
	int file_fd;
	/* The WAL as the last commit on our connections left it (wal_hook), and the page size. */
	int wal_frames;
	int page_size;
	struct checkpointer ckpt;
	struct conn w; /* writer: store_exec, store_query, hashes, archive */
	struct cached_stmt cache[STMT_CACHE];
	struct conn a; /* apply: store_apply only */
	uint64_t epoch;
	uint64_t seq;
	/* The schema hash and the schema cookie it was computed at (committed). */
	uint64_t schema_hash;
	int64_t schema_cookie;

	/* Authorizer state for the statement being prepared. */
	enum auth_mode mode;
	bool ddl;
	bool denied;
	char deny_msg[256];

	/* store_apply's filter and conflict handler state. */
	bool apply_missing_table;
	unsigned apply_conflicts;
	struct fast fast;
	uint64_t applied_fast, applied_full;

	char errmsg[512];
};

/* ------------------------------------------------------------------ */
/* Errors                                                               */

static int
errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_IOERR:
		return -EIO;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EPERM;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_ABORT:
		return -ECANCELED;
	case SQLITE_SCHEMA:
		return -ESTALE;
	default:
		/* SQLITE_ERROR, CONSTRAINT, MISMATCH, RANGE, MISUSE: bad input. */
		return -EINVAL;
	}
}

static int __attribute__((format(printf, 3, 4)))
fail(struct store *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

/* Converts rc, keeping SQLite's own message for the connection. */
static int
fail_db(struct store *s, sqlite3 *db, int rc, const char *what)
{
	return fail(s, errno_of(rc), "%s: %s", what, sqlite3_errmsg(db));
}

/* After a store_replace that could not reopen, every call fails. */
static int
check_open(struct store *s)
{
	if (!s->w.db || !s->a.db)
		return fail(s, -EIO, "%s: the database is closed (a replace failed to reopen it)",
		    NZ(s->path));
	return 0;
}

static uint64_t
fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

static uint64_t
fnv1a_u64(uint64_t h, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return fnv1a(h, b, sizeof(b));
}

/* ------------------------------------------------------------------ */
/* Authorizer                                                           */

static bool
reserved(const char *name)
{
	return name && strncasecmp(name, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0;
}

/* Pragmas that only read; anything else may change the connection or the file. */
static bool
pragma_reads(const char *name, const char *arg)
{
	static const char *const inspect[] = {"table_info", "table_xinfo", "table_list",
	    "index_list", "index_info", "index_xinfo", "foreign_key_list", "foreign_key_check",
	    "integrity_check", "quick_check", "compile_options", "page_count", "freelist_count",
	    "data_version", "collation_list", "function_list", "module_list", "pragma_list"};
	static const char *const settings[] = {"schema_version", "user_version", "application_id",
	    "journal_mode", "synchronous", "foreign_keys", "encoding", "page_size"};

	for (size_t i = 0; i < sizeof(inspect) / sizeof(inspect[0]); i++)
		if (strcasecmp(name, inspect[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (strcasecmp(name, settings[i]) == 0)
			return arg == NULL;
	return false;
}

/* Refuses the statement; the first reason is the one reported. */
static int __attribute__((format(printf, 2, 3))) deny(struct store *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->denied) {
		s->denied = true;
		va_start(ap, fmt);
		(void)vsnprintf(s->deny_msg, sizeof(s->deny_msg), fmt, ap);
		va_end(ap);
	}
	return SQLITE_DENY;
}

static int
authorize(
    void *data, int action, const char *a1, const char *a2, const char *dbname, const char *trigger)
{
	struct store *s = data;

	if (s->mode == AUTH_INTERNAL)
		return SQLITE_OK;

	switch (action) {
	case SQLITE_READ:
	case SQLITE_SELECT:
	case SQLITE_FUNCTION:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_PRAGMA:
		if (a1 && pragma_reads(a1, a2))
			return SQLITE_OK;
		return deny(s, "PRAGMA %s: only reading pragmas are allowed", NZ(a1));
	case SQLITE_TRANSACTION:
	case SQLITE_SAVEPOINT:
		return deny(s,
		    "%s: transactions are managed by tandem; send the statements together",
		    action == SQLITE_TRANSACTION ? NZ(a1) : "SAVEPOINT");
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		return deny(s, "%s: other databases are not replicated",
		    action == SQLITE_ATTACH ? "ATTACH" : "DETACH");
	case SQLITE_ANALYZE:
		return deny(s, "ANALYZE: statistics tables are not replicated");
	case SQLITE_CREATE_VTABLE:
	case SQLITE_DROP_VTABLE:
		return deny(s, "table %s: virtual tables are not replicated", NZ(a1));
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_TRIGGER:
	case SQLITE_DROP_TEMP_VIEW:
		return deny(s, "%s: temporary objects are not replicated", NZ(a1));
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		/* Schema statements write sqlite_schema; they are checked on their own. */
		if (a1 && (strcasecmp(a1, "sqlite_master") == 0 ||
		              strcasecmp(a1, "sqlite_temp_master") == 0))
			return SQLITE_OK;
		if (reserved(a1))
			return deny(s, "table %s: reserved for tandem", NZ(a1));
		if (s->mode == AUTH_QUERY)
			return deny(s, "%s: a query cannot write; use exec", NZ(a1));
		if (dbname && strcmp(dbname, "main") != 0)
			return deny(s, "%s: only the main database is replicated", NZ(a1));
		return SQLITE_OK;
	case SQLITE_REINDEX:
		return SQLITE_OK;
	case SQLITE_CREATE_TABLE:
	case SQLITE_DROP_TABLE:
	case SQLITE_CREATE_VIEW:
	case SQLITE_DROP_VIEW:
		if (reserved(a1))
			return deny(s, "%s: names starting with _tandem_ are reserved", NZ(a1));
		s->ddl = true;
		return s->mode == AUTH_QUERY
		           ? deny(s, "%s: a query cannot change the schema", NZ(a1))
		           : SQLITE_OK;
	case SQLITE_CREATE_INDEX:
	case SQLITE_DROP_INDEX:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_ALTER_TABLE:
		/* a1 is the index or trigger (the database for ALTER), a2 the table. */
		if (reserved(a1) || reserved(a2))
			return deny(s, "%s: names starting with _tandem_ are reserved",
			    NZ(reserved(a1) ? a1 : a2));
		s->ddl = true;
		return s->mode == AUTH_QUERY
		           ? deny(s, "%s: a query cannot change the schema", NZ(a2))
		           : SQLITE_OK;
	default:
		return deny(s, "%s: statement not allowed", NZ(a1));
	}
}

/* ------------------------------------------------------------------ */
/* Small statement helpers                                              */

static int
prepare(struct store *s, sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	enum auth_mode old = s->mode;
	int rc;

	s->mode = AUTH_INTERNAL;
	rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL);
	s->mode = old;
	if (rc != SQLITE_OK)
		return fail_db(s, db, rc, "prepare");
	return 0;
}

/* Steps an internal statement to the end and resets it. */
static int
run(struct store *s, sqlite3 *db, sqlite3_stmt *st)
{
	enum auth_mode old = s->mode;
	int rc;

	s->mode = AUTH_INTERNAL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	s->mode = old;
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, db, rc, sqlite3_sql(st));
	return 0;
}

static int
exec_internal(struct store *s, sqlite3 *db, const char *sql)
{
	enum auth_mode old = s->mode;
	int rc;

	s->mode = AUTH_INTERNAL;
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	s->mode = old;
	if (rc != SQLITE_OK)
		return fail_db(s, db, rc, sql);
	return 0;
}

static void
rollback(struct store *s, struct conn *c)
{
	char keep[sizeof(s->errmsg)];

	/* Keep the error that caused the rollback. */
	memcpy(keep, s->errmsg, sizeof(keep));
	if (c->db && !sqlite3_get_autocommit(c->db))
		(void)run(s, c->db, c->rollback);
	memcpy(s->errmsg, keep, sizeof(keep));
}

static int
read_position(struct store *s, struct conn *c, uint64_t *epoch, uint64_t *seq)
{
	enum auth_mode old = s->mode;
	int rc;

	s->mode = AUTH_INTERNAL;
	rc = sqlite3_step(c->get_pos);
	s->mode = old;
	if (rc == SQLITE_ROW) {
		*epoch = (uint64_t)sqlite3_column_int64(c->get_pos, 0);
		*seq = (uint64_t)sqlite3_column_int64(c->get_pos, 1);
	}
	(void)sqlite3_reset(c->get_pos);
	if (rc != SQLITE_ROW)
		return fail_db(s, c->db, rc, "reading the position");
	return 0;
}

static int
write_position(struct store *s, struct conn *c, uint64_t epoch, uint64_t seq)
{
	(void)sqlite3_bind_int64(c->set_pos, 1, (sqlite3_int64)epoch);
	(void)sqlite3_bind_int64(c->set_pos, 2, (sqlite3_int64)seq);
	return run(s, c->db, c->set_pos);
}

/*
 * The hash of the user schema: what must be equal for a changeset to
 * apply the same.  Recomputed only when the schema cookie moved since the
 * last committed hash; the caller caches *cookie with the hash after it
 * commits (a cookie seen in a transaction that rolls back may come again
 * with another schema).
 */
static int
schema_get(struct store *s, struct conn *c, uint64_t *ret, int64_t *cookie)
{
	static const char sql[] = "SELECT type, name, tbl_name, sql FROM sqlite_schema"
	                          " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
	                          " AND" NOT_RESERVED("tbl_name") " ORDER BY name";
	sqlite3_stmt *st;
	uint64_t h = FNV_INIT;
	int rc, err;

	rc = sqlite3_step(c->cookie);
	*cookie = rc == SQLITE_ROW ? sqlite3_column_int64(c->cookie, 0) : -1;
	(void)sqlite3_reset(c->cookie);
	if (rc != SQLITE_ROW)
		return fail_db(s, c->db, rc, "schema version");
	if (*cookie == s->schema_cookie) {
		*ret = s->schema_hash;
		return 0;
	}

	err = prepare(s, c->db, sql, &st);
	if (err)
		return err;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < 4; i++) {
			const unsigned char *t = sqlite3_column_text(st, i);
			size_t n = (size_t)sqlite3_column_bytes(st, i);

			h = fnv1a(h, t ? t : (const unsigned char *)"", n);
			h = fnv1a(h, "\x1f", 1);
		}
	}
	(void)sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, c->db, rc, "schema hash");
	*ret = h;
	return 0;
}

static void
stmts_clear(struct cached_stmt *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		(void)sqlite3_finalize(c[i].st);
		free(c[i].sql);
		c[i] = (struct cached_stmt){0};
	}
}

/* Forgets the tables of the fast path (their shape may have changed). */
static void
fast_tables_clear(struct fast *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct fast_table *t = &f->t[i];

		for (int j = 0; j < t->n_cols; j++)
			free(t->cols[j]);
		free(t->cols);
		free(t->pk);
		free(t->name);
		(void)sqlite3_finalize(t->ins);
		(void)sqlite3_finalize(t->del);
		stmts_clear(t->upd, FAST_UPDATES);
	}
	free(f->t);
	f->t = NULL;
	f->n = 0;
	f->cookie = -1;
}

/* The statements kept for both connections; before they are closed. */
static void
cache_clear(struct store *s)
{
	stmts_clear(s->cache, STMT_CACHE);
	fast_tables_clear(&s->fast);
	(void)sqlite3_finalize(s->fast.info);
	(void)sqlite3_finalize(s->fast.sp_begin);
	(void)sqlite3_finalize(s->fast.sp_release);
	(void)sqlite3_finalize(s->fast.sp_rollback);
	s->fast = (struct fast){.cookie = -1};
}

static void
conn_close(struct conn *c)
{
	(void)sqlite3_finalize(c->begin);
	(void)sqlite3_finalize(c->commit);
	(void)sqlite3_finalize(c->rollback);
	(void)sqlite3_finalize(c->get_pos);
	(void)sqlite3_finalize(c->set_pos);
	(void)sqlite3_finalize(c->cookie);
	(void)sqlite3_finalize(c->add_epoch);
	(void)sqlite3_finalize(c->sp_begin);
	(void)sqlite3_finalize(c->sp_release);
	(void)sqlite3_finalize(c->sp_rollback);
	(void)sqlite3_close_v2(c->db);
	memset(c, 0, sizeof(*c));
}

static int
conn_open(struct store *s, struct conn *c, const char *path, bool create)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	int rc, err;

	rc = sqlite3_open_v2(path, &c->db, flags, STORE_VFS);
	if (rc != SQLITE_OK) {
		err = fail(s, errno_of(rc), "%s: %s", path,
		    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		(void)sqlite3_close_v2(c->db);
		c->db = NULL;
		return err;
	}
	(void)sqlite3_extended_result_codes(c->db, 1);
	(void)sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	return 0;
}

static int
conn_prepare(struct store *s, struct conn *c, bool writer)
{
	int err;

	if ((err = prepare(s, c->db, "BEGIN IMMEDIATE", &c->begin)) ||
	    (err = prepare(s, c->db, "COMMIT", &c->commit)) ||
	    (err = prepare(s, c->db, "ROLLBACK", &c->rollback)) ||
	    (err = prepare(s, c->db,
	         "SELECT (SELECT v FROM " META_TABLE " WHERE k = 'epoch'),"
	         " (SELECT v FROM " META_TABLE " WHERE k = 'seq')",
	         &c->get_pos)) ||
	    (err = prepare(s, c->db,
	         "UPDATE " META_TABLE " SET v = CASE k WHEN 'epoch' THEN ?1 ELSE ?2 END"
	         " WHERE k IN ('epoch', 'seq')",
	         &c->set_pos)) ||
	    (err = prepare(s, c->db, "PRAGMA schema_version", &c->cookie)) ||
	    (err = prepare(s, c->db, "INSERT OR REPLACE INTO " EPOCHS_TABLE " VALUES (?1, ?2)",
	         &c->add_epoch)))
		return err;
	if (writer && ((err = prepare(s, c->db, "SAVEPOINT tandem_txn", &c->sp_begin)) ||
	                  (err = prepare(s, c->db, "RELEASE tandem_txn", &c->sp_release)) ||
	                  (err = prepare(s, c->db, "ROLLBACK TO tandem_txn", &c->sp_rollback))))
		return err;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Checkpoints                                                          */

static int __attribute__((format(printf, 4, 5)))
backup_fail(char *buf, size_t len, int err, const char *fmt, ...);

static void *
ckpt_main(void *arg)
{
	struct checkpointer *k = arg;
	sqlite3 *db = NULL;
	int done;

	if (sqlite3_open_v2(k->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, STORE_VFS) ==
	    SQLITE_OK)
		(void)sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	(void)pthread_mutex_lock(&k->mu);
	for (;;) {
		while ((!k->pending || k->paused) && !k->stop)
			(void)pthread_cond_wait(&k->cv, &k->mu);
		if (k->stop)
			break;
		k->pending = false;
		k->busy = true;
		(void)pthread_mutex_unlock(&k->mu);
		/* PASSIVE: never waits for, nor blocks, a writer or a reader. */
		if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, &done) !=
		    SQLITE_OK)
			done = 0;
		(void)pthread_mutex_lock(&k->mu);
		k->done = done;
		k->busy = false;
		if (k->finishing)
			k->finished = done;
		k->finishing = false;
		(void)pthread_cond_broadcast(&k->cv);
	}
	(void)pthread_mutex_unlock(&k->mu);
	(void)sqlite3_close_v2(db);
	return NULL;
}

/* Wakes the checkpointer, starting it first; false if it cannot start. */
static bool
ckpt_kick(struct store *s)
{
	struct checkpointer *k = &s->ckpt;

	if (!k->running) {
		free(k->path);
		k->path = strdup(s->path);
		k->pending = k->stop = false;
		k->done = k->finished = 0;
		if (k->path == NULL || pthread_create(&k->th, NULL, ckpt_main, k) != 0)
			return false;
		k->running = true;
	}
	(void)pthread_mutex_lock(&k->mu);
	k->pending = true;
	(void)pthread_cond_signal(&k->cv);
	(void)pthread_mutex_unlock(&k->mu);
	return true;
}

/* Stops the checkpointer and waits for it (and its connection) to end. */
static void
ckpt_stop(struct store *s)
{
	struct checkpointer *k = &s->ckpt;

	if (!k->running)
		return;
	(void)pthread_mutex_lock(&k->mu);
	k->stop = true;
	(void)pthread_cond_signal(&k->cv);
	(void)pthread_mutex_unlock(&k->mu);
	(void)pthread_join(k->th, NULL);
	k->running = false;
	k->due = k->finishing = false;
}

void
store_checkpoint_hand_over(struct store *s)
{
	s->ckpt.hand_over = true;
}

/* The tail is due and the thread free to copy it; with k->mu held. */
static bool
tail_due(const struct checkpointer *k)
{
	return k->due && !k->finishing && !k->paused && !k->busy && !k->pending;
}

bool
store_checkpoint_due(struct store *s)
{
	struct checkpointer *k = &s->ckpt;
	bool due;

	(void)pthread_mutex_lock(&k->mu);
	due = tail_due(k);
	(void)pthread_mutex_unlock(&k->mu);
	return due;
}

void
store_checkpoint_finish(struct store *s)
{
	struct checkpointer *k = &s->ckpt;

	(void)pthread_mutex_lock(&k->mu);
	if (tail_due(k)) {
		k->due = false;
		k->finishing = k->pending = true;
		(void)pthread_cond_signal(&k->cv);
	}
	(void)pthread_mutex_unlock(&k->mu);
}

bool
store_checkpoint_finishing(struct store *s)
{
	struct checkpointer *k = &s->ckpt;
	bool finishing;

	(void)pthread_mutex_lock(&k->mu);
	finishing = k->finishing;
	(void)pthread_mutex_unlock(&k->mu);
	return finishing;
}

uint64_t
store_wal_bytes(const struct store *s)
{
	if (s->wal_frames <= 0)
		return 0;
	return WAL_HEADER_BYTES +
	       (uint64_t)s->wal_frames * (uint64_t)(s->page_size + WAL_FRAME_HEADER_BYTES);
}

bool
store_checkpoint_behind(struct store *s)
{
	struct checkpointer *k = &s->ckpt;
	int copied;

	/* Without the thread nobody copies it but the fold itself. */
	if (s->wal_frames <= CKPT_MAX || !k->running)
		return false;
	(void)pthread_mutex_lock(&k->mu);
	copied = k->done;
	(void)pthread_mutex_unlock(&k->mu);
	return s->wal_frames - (copied <= s->wal_frames ? copied : s->wal_frames) > CKPT_MAX;
}

void
store_checkpoints_pause(struct store *s, bool pause)
{
	struct checkpointer *k = &s->ckpt;

	(void)pthread_mutex_lock(&k->mu);
	k->paused = pause;
	if (!pause)
		k->pending = true; /* the WAL may have grown meanwhile */
	else if (!k->busy)
		k->finishing = false; /* not started: commits must not wait for the pause */
	(void)pthread_cond_broadcast(&k->cv);
	(void)pthread_mutex_unlock(&k->mu);
}

int
store_checkpoint_full(struct store *s, char *errbuf, size_t errlen)
{
	struct checkpointer *k = &s->ckpt;
	sqlite3 *db = NULL;
	int rc, log = -1, done = -2, err = 0;

	/* A checkpoint of the checkpointer's may still be running: let it end. */
	(void)pthread_mutex_lock(&k->mu);
	while (k->busy)
		(void)pthread_cond_wait(&k->cv, &k->mu);
	(void)pthread_mutex_unlock(&k->mu);

	rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, STORE_VFS);
	if (rc == SQLITE_OK) {
		(void)sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
		/* A connection learns that the file is in WAL mode by reading it. */
		rc = sqlite3_exec(db, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_FULL, &log, &done);
	if (rc != SQLITE_OK)
		err = backup_fail(errbuf, errlen, errno_of(rc), "%s: checkpoint: %s", s->path,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	else if (log < 0)
		err = backup_fail(errbuf, errlen, -EIO, "%s: checkpoint: not in WAL mode", s->path);
	else if (log != done)
		err = backup_fail(errbuf, errlen, -EBUSY,
		    "%s: checkpoint: %d of %d WAL frames copied", s->path, done, log);
	(void)sqlite3_close_v2(db);
	return err;
}

/*
 * After each commit on our connections, with the WAL at pages frames:
 * past CKPT_PAGES, keeps the checkpointer running, one checkpoint after
 * the other, until what it leaves behind is a tail of CKPT_TAIL frames
 * (or the WAL reaches CKPT_MAX), and copies that tail here (see struct
 * checkpointer).
 */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *s = arg;
	struct checkpointer *k = &s->ckpt;
	bool idle, tail;

	(void)name;
	s->wal_frames = pages;
	if (pages < CKPT_PAGES) {
		if (k->chasing) {
			/* The WAL started over: what was copied is no longer in it. */
			(void)pthread_mutex_lock(&k->mu);
			k->done = k->finished = 0;
			(void)pthread_mutex_unlock(&k->mu);
			k->chasing = false;
		}
		return SQLITE_OK;
	}
	k->chasing = true;
	if (!k->running) {
		if (ckpt_kick(s))
			return SQLITE_OK;
		/* No thread: checkpoint here, as SQLite would have. */
		(void)sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		return SQLITE_OK;
	}
	(void)pthread_mutex_lock(&k->mu);
	idle = !k->busy && !k->pending && !k->paused;
	tail = idle && k->done > 0 && pages >= k->done &&
	       (pages - k->done <= CKPT_TAIL || pages >= CKPT_MAX);
	if (tail)
		k->done = 0;
	if (tail && k->hand_over) {
		/*
		 * The owner stops committing and has the thread copy it; again
		 * only after CKPT_TAIL more frames if a finish did not let the
		 * WAL start over (a reader still used it).
		 */
		k->due = k->finished == 0 || pages >= k->finished + CKPT_TAIL;
		tail = idle = false;
	}
	(void)pthread_mutex_unlock(&k->mu);
	if (tail)
		(void)sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	else if (idle)
		(void)ckpt_kick(s);
	return SQLITE_OK;
}

/* ------------------------------------------------------------------ */
/* Open / close                                                         */

static int
store_init(struct store *s, const char *path)
{
	uint64_t e, q, hash;
	int64_t cookie;
	int fd, err;

	/* A new database is private to tandemd; SQLite gives -wal and -shm the same mode. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(s, -errno, "%s: %s", path, strerror(errno));
	(void)close(fd);

	if ((err = conn_open(s, &s->w, path, false)))
		return err;
	sqlite3_set_authorizer(s->w.db, authorize, s);
	if ((err = exec_internal(s, s->w.db, "PRAGMA journal_mode = WAL")))
		return err;
	{
		sqlite3_stmt *st;
		int wal;

		if ((err = prepare(s, s->w.db, "PRAGMA journal_mode", &st)))
			return err;
		wal = sqlite3_step(st) == SQLITE_ROW &&
		      strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
		(void)sqlite3_finalize(st);
		if (!wal)
			return fail(s, -EIO, "%s: cannot switch to WAL mode", path);
	}
	if ((err = exec_internal(s, s->w.db,
	         "PRAGMA synchronous = NORMAL;"
	         /* A WAL grown while checkpoints waited is cut back when reused. */
	         "PRAGMA journal_size_limit = " WAL_SIZE_LIMIT ";"
	         "BEGIN IMMEDIATE;"
	         "CREATE TABLE IF NOT EXISTS " META_TABLE "(k TEXT PRIMARY KEY NOT NULL, v);"
	         "INSERT OR IGNORE INTO " META_TABLE " VALUES ('epoch', 0), ('seq', 0);"
	         "CREATE TABLE IF NOT EXISTS " EPOCHS_TABLE
	         "(epoch INTEGER PRIMARY KEY, start_seq INTEGER NOT NULL);"
	         /*
	          * A database from before the history knows only where it
	          * stands now: it claims its current epoch from its current
	          * seq on, and (0, 0), which every history holds.
	          */
	         "INSERT INTO " EPOCHS_TABLE " SELECT e.v, CASE e.v WHEN 0 THEN 0 ELSE q.v END"
	         " FROM " META_TABLE " e, " META_TABLE " q WHERE e.k = 'epoch' AND q.k = 'seq'"
	         " AND NOT EXISTS (SELECT 1 FROM " EPOCHS_TABLE ");"
	         "COMMIT")))
		return err;
	if ((err = conn_prepare(s, &s->w, true)))
		return err;
	{
		sqlite3_stmt *st;

		if ((err = prepare(s, s->w.db, "PRAGMA page_size", &st)))
			return err;
		s->page_size = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
		(void)sqlite3_finalize(st);
	}
	s->wal_frames = 0;

	if ((err = conn_open(s, &s->a, path, false)))
		return err;
	if (sqlite3_db_config(s->a.db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL) != SQLITE_OK)
		return fail(s, -EIO, "cannot disable triggers on the apply connection");
	if ((err = exec_internal(
	         s, s->a.db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF")))
		return err;
	if ((err = conn_prepare(s, &s->a, false)))
		return err;
	/* Replaces the automatic checkpoint (sqlite3_wal_hook docs). */
	(void)sqlite3_wal_hook(s->w.db, wal_hook, s);
	(void)sqlite3_wal_hook(s->a.db, wal_hook, s);

	if ((err = read_position(s, &s->w, &e, &q)))
		return err;
	s->schema_cookie = -1;
	if ((err = schema_get(s, &s->w, &hash, &cookie)))
		return err;
	s->schema_hash = hash;
	s->schema_cookie = cookie;
	s->epoch = e;
	s->seq = q;
	s->file_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->file_fd < 0)
		return fail(s, -errno, "%s: %s", path, strerror(errno));
	return 0;
}

struct store *
store_open(const char *path, char **ret_err)
{
	struct store *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->mode = AUTH_INTERNAL;
	s->file_fd = -1;
	s->fast.cookie = -1;
	(void)pthread_mutex_init(&s->ckpt.mu, NULL);
	(void)pthread_cond_init(&s->ckpt.cv, NULL);
	s->path = strdup(path);
	err = s->path ? store_init(s, path) : fail(s, -ENOMEM, "out of memory");
	if (err) {
		if (ret_err)
			*ret_err = strdup(s->errmsg);
		store_close(s);
		errno = -err;
		return NULL;
	}
	s->errmsg[0] = '\0';
	return s;
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	ckpt_stop(s);
	cache_clear(s);
	conn_close(&s->a);
	conn_close(&s->w);
	if (s->file_fd >= 0)
		(void)close(s->file_fd);
	(void)pthread_mutex_destroy(&s->ckpt.mu);
	(void)pthread_cond_destroy(&s->ckpt.cv);
	free(s->ckpt.path);
	free(s->path);
	free(s);
}

const char *
store_errmsg(const struct store *s)
{
	return s->errmsg;
}

int
store_file_fd(const struct store *s)
{
	return s->file_fd;
}

void
store_position(const struct store *s, uint64_t *ret_epoch, uint64_t *ret_seq)
{
	if (ret_epoch)
		*ret_epoch = s->epoch;
	if (ret_seq)
		*ret_seq = s->seq;
}

uint64_t
store_schema_hash(const struct store *s)
{
	return s->schema_hash;
}

/* ------------------------------------------------------------------ */
/* Capture                                                              */

struct parts {
	struct store_part *v;
	size_t n, cap;
};

static void
parts_free(struct parts *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->v[i].data);
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
}

/* Appends a part; takes data (malloc'd) in all cases. */
static int
parts_add(struct store *s, struct parts *ps, enum store_part_type type, void *data, size_t len)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 4;
		struct store_part *v = realloc(ps->v, cap * sizeof(*v));

		if (!v) {
			free(data);
			return fail(s, -ENOMEM, "out of memory");
		}
		ps->v = v;
		ps->cap = cap;
	}
	ps->v[ps->n++] = (struct store_part){.type = type, .data = data, .len = len};
	return 0;
}

/* The position and the epochs are written after the last cut; this only keeps it so. */
static int
filter_meta(void *data, const char *table)
{
	return !reserved(table);
}

static int
session_start(struct store *s, sqlite3_session **ret)
{
	int rc;

	rc = sqlite3session_create(s->w.db, "main", ret);
	if (rc != SQLITE_OK)
		return fail_db(s, s->w.db, rc, "session");
	sqlite3session_table_filter(*ret, filter_meta, NULL);
	rc = sqlite3session_attach(*ret, NULL);
	if (rc != SQLITE_OK) {
		sqlite3session_delete(*ret);
		*ret = NULL;
		return fail_db(s, s->w.db, rc, "session");
	}
	return 0;
}

/*
 * Ends the session (if any) and appends its changeset unless it is empty.
 * With keep pointing to NULL, the session is not deleted but disabled and
 * left in *keep, so that a transaction rolled back to its savepoint can
 * go on with it (its changeset is computed from the rows as they are
 * then, which no longer hold what the rolled-back part did).
 */
static int
session_cut(struct store *s, sqlite3_session **sess, sqlite3_session **keep, struct parts *ps)
{
	void *cs = NULL;
	int n = 0, rc;

	if (!*sess)
		return 0;
	rc = sqlite3session_changeset(*sess, &n, &cs);
	if (keep && !*keep) {
		(void)sqlite3session_enable(*sess, 0);
		*keep = *sess;
	} else {
		sqlite3session_delete(*sess);
	}
	*sess = NULL;
	if (rc != SQLITE_OK) {
		sqlite3_free(cs);
		return fail(s, errno_of(rc), "capturing the changes: %s", sqlite3_errstr(rc));
	}
	if (n > 0) {
		void *copy = malloc((size_t)n);

		if (!copy) {
			sqlite3_free(cs);
			return fail(s, -ENOMEM, "out of memory");
		}
		memcpy(copy, cs, (size_t)n);
		sqlite3_free(cs);
		return parts_add(s, ps, STORE_PART_CHANGESET, copy, (size_t)n);
	}
	sqlite3_free(cs);
	return 0;
}

/* Per-table fingerprints (name and CREATE text) of the user tables. */
struct tables {
	uint64_t *h;
	size_t n;
	bool sequence; /* sqlite_sequence exists */
};

static int
tables_read(struct store *s, struct tables *t)
{
	sqlite3_stmt *st;
	int rc, err;

	memset(t, 0, sizeof(*t));
	err = prepare(s, s->w.db,
	    "SELECT name, sql FROM sqlite_schema WHERE type = 'table'"
	    " AND" NOT_RESERVED("name") " ORDER BY name",
	    &st);
	if (err)
		return err;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *sql = (const char *)sqlite3_column_text(st, 1);
		uint64_t *h;

		if (name && strcmp(name, "sqlite_sequence") == 0)
			t->sequence = true;
		h = realloc(t->h, (t->n + 1) * sizeof(*h));
		if (!h) {
			rc = SQLITE_NOMEM;
			break;
		}
		t->h = h;
		t->h[t->n] = fnv1a(fnv1a(FNV_INIT, name ? name : "", strlen(name ? name : "") + 1),
		    sql ? sql : "", strlen(sql ? sql : ""));
		t->n++;
	}
	(void)sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(t->h);
		t->h = NULL;
		return fail_db(s, s->w.db, rc, "reading the schema");
	}
	return 0;
}

/*
 * Checks one table against what a changeset can carry.  Runs inside the
 * transaction right after the statement that created or altered it.
 */
static int
table_check(struct store *s, const char *name, const char *sql, bool sequence)
{
	sqlite3_stmt *st = NULL;
	char nullable[128] = "";
	int rc, err, npk = 0, wr = 0;
	bool pk_index = false;

	if (strncmp(name, "sqlite_", 7) == 0)
		return 0;
	if (sequence && sql && strcasestr(sql, "AUTOINCREMENT"))
		return fail(s, -EPERM,
		    "table %s: AUTOINCREMENT is not replicated; use INTEGER PRIMARY KEY", name);

	if ((err = prepare(s, s->w.db,
	         "SELECT wr, type FROM pragma_table_list WHERE schema = 'main' AND name = ?", &st)))
		return err;
	(void)sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		wr = sqlite3_column_int(st, 0);
		if (strcmp((const char *)sqlite3_column_text(st, 1), "table") != 0) {
			(void)sqlite3_finalize(st);
			return fail(s, -EPERM, "table %s: virtual tables are not replicated", name);
		}
	}
	(void)sqlite3_finalize(st);

	if ((err = prepare(s, s->w.db,
	         "SELECT name, \"notnull\", pk, hidden FROM pragma_table_xinfo(?)", &st)))
		return err;
	(void)sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *col = (const char *)sqlite3_column_text(st, 0);
		int hidden = sqlite3_column_int(st, 3);

		if (hidden == 2 || hidden == 3) {
			err = fail(s, -EPERM,
			    "table %s: generated column %s is not replicated; store the value "
			    "instead",
			    name, col);
			(void)sqlite3_finalize(st);
			return err;
		}
		if (sqlite3_column_int(st, 2) > 0) {
			npk++;
			if (!sqlite3_column_int(st, 1) && !nullable[0])
				(void)snprintf(nullable, sizeof(nullable), "%s", col);
		}
	}
	(void)sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, s->w.db, rc, "checking the table");
	if (npk == 0)
		return fail(
		    s, -EPERM, "table %s: no PRIMARY KEY; its rows could not be replicated", name);
	if (wr || !nullable[0])
		return 0; /* WITHOUT ROWID enforces NOT NULL on its key. */

	/*
	 * A rowid table's key is NOT NULL only as an INTEGER PRIMARY KEY
	 * (the rowid itself), which, unlike any other key, has no index.
	 */
	if ((err = prepare(
	         s, s->w.db, "SELECT 1 FROM pragma_index_list(?) WHERE origin = 'pk'", &st)))
		return err;
	(void)sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	pk_index = sqlite3_step(st) == SQLITE_ROW;
	(void)sqlite3_finalize(st);
	if (pk_index)
		return fail(s, -EPERM,
		    "table %s: primary-key column %s allows NULL; declare it NOT NULL", name,
		    nullable);
	return 0;
}

/* Checks every table whose name or CREATE text the statement changed. */
static int
tables_check(struct store *s, const struct tables *before)
{
	sqlite3_stmt *st;
	struct tables after;
	int rc, err;

	if ((err = tables_read(s, &after)))
		return err;
	err = prepare(s, s->w.db,
	    "SELECT name, sql FROM sqlite_schema WHERE type = 'table'"
	    " AND" NOT_RESERVED("name") " ORDER BY name",
	    &st);
	if (err) {
		free(after.h);
		return err;
	}
	for (size_t i = 0; (rc = sqlite3_step(st)) == SQLITE_ROW; i++) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *sql = (const char *)sqlite3_column_text(st, 1);
		bool known = false;

		for (size_t j = 0; j < before->n && i < after.n; j++)
			known = known || before->h[j] == after.h[i];
		if (known)
			continue;
		if ((err = table_check(s, name, sql, after.sequence)))
			break;
	}
	(void)sqlite3_finalize(st);
	free(after.h);
	if (err)
		return err;
	if (rc != SQLITE_DONE)
		return fail_db(s, s->w.db, rc, "checking the schema");
	return 0;
}

static int
bind_value(sqlite3_stmt *st, int i, const struct store_value *v)
{
	switch (v->type) {
	case STORE_NULL:
		return sqlite3_bind_null(st, i);
	case STORE_INTEGER:
		return sqlite3_bind_int64(st, i, v->i);
	case STORE_FLOAT:
		return sqlite3_bind_double(st, i, v->f);
	case STORE_TEXT:
		return sqlite3_bind_text64(
		    st, i, v->p ? v->p : "", v->len, SQLITE_STATIC, SQLITE_UTF8);
	case STORE_BLOB:
		return sqlite3_bind_blob64(st, i, v->p ? v->p : "", v->len, SQLITE_STATIC);
	default:
		return SQLITE_MISMATCH;
	}
}

static int
bind_all(struct store *s, sqlite3_stmt *st, const struct store_value *params, size_t n)
{
	int want = sqlite3_bind_parameter_count(st);

	if ((size_t)want != n)
		return fail(s, -EINVAL, "statement takes %d parameters, %zu given", want, n);
	for (size_t i = 0; i < n; i++) {
		int rc = bind_value(st, (int)i + 1, &params[i]);

		if (rc != SQLITE_OK)
			return fail(
			    s, errno_of(rc), "parameter %zu: %s", i + 1, sqlite3_errstr(rc));
	}
	return 0;
}

static bool
blank(const char *p, const char *end)
{
	for (; p && *p && (!end || p < end); p++)
		if (!strchr(" \t\r\n\f\v;", *p))
			return false;
	return true;
}

/*
 * Prepares the next client statement of sql at *tail in mode.  *ret is
 * NULL at the end of the text.  Sets s->ddl for a schema statement.
 */
static int
prepare_client(struct store *s, enum auth_mode mode, const char **tail, sqlite3_stmt **ret)
{
	int rc;

	s->mode = mode;
	s->ddl = false;
	s->denied = false;
	rc = sqlite3_prepare_v2(s->w.db, *tail, -1, ret, tail);
	s->mode = AUTH_INTERNAL;
	if (rc != SQLITE_OK) {
		if (s->denied)
			return fail(s, -EPERM, "%s", s->deny_msg);
		return fail(s, errno_of(rc), "%s", sqlite3_errmsg(s->w.db));
	}
	return 0;
}

/*
 * Runs one client statement of a transaction.  A schema statement is
 * preceded by the changeset so far and followed by its own text, and a
 * new session starts after it.
 */
static int
exec_one(struct store *s, sqlite3_stmt *st, sqlite3_session **sess, sqlite3_session **keep,
    struct parts *ps, bool *schema_changed, int64_t *changes)
{
	struct tables before = {0};
	bool ddl = s->ddl;
	char *text = NULL;
	int rc, err;

	if (ddl) {
		if (sqlite3_bind_parameter_count(st) > 0)
			return fail(s, -EINVAL, "schema statements take no parameters");
		if ((err = session_cut(s, sess, keep, ps)))
			return err;
		if ((err = tables_read(s, &before)))
			return err;
	}

	s->mode = AUTH_EXEC; /* a re-prepare on SQLITE_SCHEMA is authorized again */
	s->denied = false;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	s->mode = AUTH_INTERNAL;
	if (rc != SQLITE_DONE) {
		err = s->denied ? fail(s, -EPERM, "%s", s->deny_msg)
		                : fail(s, errno_of(rc), "%s", sqlite3_errmsg(s->w.db));
		goto out;
	}
	if (!ddl && !sqlite3_stmt_readonly(st))
		*changes += sqlite3_changes64(s->w.db);
	if (!ddl) {
		err = 0;
		goto out;
	}
	if ((err = tables_check(s, &before)))
		goto out;
	text = strdup(sqlite3_sql(st));
	if (!text) {
		err = fail(s, -ENOMEM, "out of memory");
		goto out;
	}
	if ((err = parts_add(s, ps, STORE_PART_DDL, text, strlen(text))))
		goto out;
	*schema_changed = true;
	err = session_start(s, sess);
out:
	free(before.h);
	return err;
}

/*
 * Keeps st, just run for the whole text sql, in its slot of the cache
 * (evicting what was there), or finalizes it.
 */
static void
cache_put(struct store *s, struct cached_stmt *c, const char *sql, size_t len, sqlite3_stmt *st)
{
	char *copy = c ? strdup(sql) : NULL;

	if (!copy) {
		(void)sqlite3_finalize(st);
		return;
	}
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	(void)sqlite3_finalize(c->st);
	free(c->sql);
	*c = (struct cached_stmt){.sql = copy, .len = len, .st = st};
}

/*
 * Runs the statements of one client transaction, with store_exec's
 * checks.  A text that is one statement and no schema change stays
 * prepared for its next run: SQLite prepares it again by itself (and the
 * authorizer sees it again) if the schema changed in between.
 */
static int
exec_txn(struct store *s, const struct store_txn *t, sqlite3_session **sess, sqlite3_session **keep,
    struct parts *ps, bool *schema_changed, int64_t *changes)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct store_stmt *stmt = &t->stmts[i];
		const char *sql = stmt->sql ? stmt->sql : "", *tail = sql;
		size_t len = strlen(sql);
		struct cached_stmt *c = NULL;
		bool first = true;
		int err;

		if (len <= STMT_CACHE_MAX_SQL) {
			c = &s->cache[fnv1a(FNV_INIT, sql, len) % STMT_CACHE];
			if (c->st && c->len == len && memcmp(c->sql, sql, len) == 0) {
				s->ddl = false;
				err = bind_all(s, c->st, stmt->params, stmt->n_params);
				if (!err)
					err = exec_one(
					    s, c->st, sess, keep, ps, schema_changed, changes);
				(void)sqlite3_reset(c->st);
				(void)sqlite3_clear_bindings(c->st);
				if (err)
					return err;
				continue;
			}
		}
		for (;;) {
			sqlite3_stmt *st = NULL;
			bool whole;

			if ((err = prepare_client(s, AUTH_EXEC, &tail, &st)))
				return err;
			if (!st)
				break; /* end of text, or only a comment */
			whole = first && blank(tail, NULL);
			if (first && stmt->n_params > 0 && !whole) {
				(void)sqlite3_finalize(st);
				return fail(s, -EINVAL,
				    "statement %zu: parameters need a single statement", i + 1);
			}
			if (stmt->n_params > 0 || sqlite3_bind_parameter_count(st) > 0)
				err = bind_all(s, st, stmt->params, stmt->n_params);
			whole = whole && !s->ddl;
			if (!err)
				err = exec_one(s, st, sess, keep, ps, schema_changed, changes);
			if (whole)
				cache_put(s, c, sql, len, st);
			else
				(void)sqlite3_finalize(st);
			if (err)
				return err;
			first = false;
		}
	}
	return 0;
}

/*
 * Whether a transaction's error fails the whole group commit: the
 * database itself failed, or SQLite already rolled everything back.
 */
static bool
batch_fatal(struct store *s, int err)
{
	switch (err) {
	case -EBUSY:
	case -EIO:
	case -ENOMEM:
	case -ENOSPC:
	case -EROFS:
	case -EBADMSG:
	case -EINTR:
		return true;
	default:
		return sqlite3_get_autocommit(s->w.db) != 0;
	}
}

static void
parts_truncate(struct parts *ps, size_t n)
{
	while (ps->n > n)
		free(ps->v[--ps->n].data);
}

/*
 * Runs one transaction of a group commit inside its savepoint.  A client
 * error rolls the transaction back to the savepoint, drops the parts it
 * added and, if a schema statement cut the session, goes on with the
 * session it cut.  Returns 0 with *res filled (res->rc says how the
 * transaction went), or -errno when the whole batch must fail.
 */
static int
exec_savepoint(struct store *s, const struct store_txn *t, sqlite3_session **sess, struct parts *ps,
    bool *schema_changed, struct store_txn_result *res)
{
	sqlite3_session *keep = NULL;
	sqlite3_int64 rowid = sqlite3_last_insert_rowid(s->w.db);
	size_t mark = ps->n;
	bool ddl = false;
	int64_t changes = 0;
	int err, rc;

	if ((err = run(s, s->w.db, s->w.sp_begin)))
		return err;
	rc = exec_txn(s, t, sess, &keep, ps, &ddl, &changes);
	if (rc == 0) {
		if (keep)
			sqlite3session_delete(keep);
		if ((err = run(s, s->w.db, s->w.sp_release)))
			return err;
		*schema_changed = *schema_changed || ddl;
		*res = (struct store_txn_result){
		    .changes = changes, .last_rowid = sqlite3_last_insert_rowid(s->w.db)};
		return 0;
	}

	if (keep) {
		if (*sess)
			sqlite3session_delete(*sess);
		*sess = keep;
		(void)sqlite3session_enable(keep, 1);
	}
	if (batch_fatal(s, rc))
		return rc;
	*res = (struct store_txn_result){.rc = rc, .error = strdup(s->errmsg)};
	if (!res->error)
		return fail(s, -ENOMEM, "out of memory");
	if ((err = run(s, s->w.db, s->w.sp_rollback)) || (err = run(s, s->w.db, s->w.sp_release)))
		return err;
	parts_truncate(ps, mark);
	sqlite3_set_last_insert_rowid(s->w.db, rowid);
	return 0;
}

/*
 * The capture of store_exec and store_exec_batch: txns[0..n) in one
 * transaction under one session.  In a batch each runs in its own
 * savepoint and a client error stays in its results[i]; otherwise (n is
 * 1) any error fails the call.
 */
static int
exec_frame(struct store *s, const struct store_txn *txns, size_t n,
    struct store_txn_result *results, bool batch, struct store_frame *ret_frame)
{
	sqlite3_session *sess = NULL;
	struct parts ps = {0};
	bool schema_changed = false;
	uint64_t epoch, seq, before, after;
	int64_t changes = 0, cookie;
	int err;

	s->errmsg[0] = '\0';
	for (size_t i = 0; i < n; i++)
		results[i] = (struct store_txn_result){0};
	if ((err = check_open(s)) || (err = run(s, s->w.db, s->w.begin)))
		goto fail;
	if ((err = read_position(s, &s->w, &epoch, &seq)) ||
	    (err = schema_get(s, &s->w, &before, &cookie)))
		goto fail;
	/*
	 * The session must exist before a statement is prepared: without a
	 * preupdate hook SQLite compiles "DELETE FROM t" to a truncation
	 * that reports no rows.
	 */
	if ((err = session_start(s, &sess)))
		goto fail;

	for (size_t i = 0; i < n; i++) {
		if (batch) {
			err = exec_savepoint(s, &txns[i], &sess, &ps, &schema_changed, &results[i]);
		} else {
			err = exec_txn(
			    s, &txns[i], &sess, NULL, &ps, &schema_changed, &results[i].changes);
			results[i].last_rowid = sqlite3_last_insert_rowid(s->w.db);
		}
		if (err)
			goto fail;
		changes += results[i].changes;
	}
	if ((err = session_cut(s, &sess, NULL, &ps)))
		goto fail;

	after = before;
	if (schema_changed && (err = schema_get(s, &s->w, &after, &cookie)))
		goto fail;
	if ((err = write_position(s, &s->w, epoch, seq + 1)))
		goto fail;
	if ((err = run(s, s->w.db, s->w.commit)))
		goto fail;

	*ret_frame = (struct store_frame){
	    .epoch = epoch,
	    .seq = seq + 1,
	    .schema_before = before,
	    .schema_after = after,
	    .parts = ps.v,
	    .n_parts = ps.n,
	    .changes = changes,
	    .last_rowid = sqlite3_last_insert_rowid(s->w.db),
	};
	s->epoch = epoch;
	s->seq = seq + 1;
	s->schema_hash = after;
	s->schema_cookie = cookie;
	s->errmsg[0] = '\0'; /* what failed is in results */
	return 0;

fail:
	if (sess)
		sqlite3session_delete(sess);
	parts_free(&ps);
	rollback(s, &s->w);
	for (size_t i = 0; batch && i < n; i++) {
		free(results[i].error);
		results[i] = (struct store_txn_result){.rc = err, .error = strdup(s->errmsg)};
	}
	return err;
}

int
store_exec(struct store *s, const struct store_stmt *stmts, size_t n, struct store_frame *ret_frame)
{
	const struct store_txn t = {.stmts = stmts, .n = n};
	struct store_txn_result r;

	return exec_frame(s, &t, 1, &r, false, ret_frame);
}

int
store_exec_batch(struct store *s, const struct store_txn *txns, size_t n,
    struct store_txn_result *results, struct store_frame *ret_frame)
{
	return exec_frame(s, txns, n, results, true, ret_frame);
}

void
store_txn_results_clear(struct store_txn_result *results, size_t n)
{
	for (size_t i = 0; results && i < n; i++) {
		free(results[i].error);
		results[i] = (struct store_txn_result){0};
	}
}

void
store_frame_clear(struct store_frame *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_parts; i++)
		free(f->parts[i].data);
	free(f->parts);
	memset(f, 0, sizeof(*f));
}

/* ------------------------------------------------------------------ */
/* Query                                                                */

static int
copy_value(struct store_value *v, sqlite3_stmt *st, int i)
{
	const void *src;
	char *p;

	memset(v, 0, sizeof(*v));
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		v->type = STORE_INTEGER;
		v->i = sqlite3_column_int64(st, i);
		return 0;
	case SQLITE_FLOAT:
		v->type = STORE_FLOAT;
		v->f = sqlite3_column_double(st, i);
		return 0;
	case SQLITE_TEXT:
		v->type = STORE_TEXT;
		src = sqlite3_column_text(st, i);
		break;
	case SQLITE_BLOB:
		v->type = STORE_BLOB;
		src = sqlite3_column_blob(st, i);
		break;
	default:
		v->type = STORE_NULL;
		return 0;
	}
	v->len = (size_t)sqlite3_column_bytes(st, i);
	p = malloc(v->len + 1);
	if (!p)
		return -ENOMEM;
	if (v->len)
		memcpy(p, src, v->len);
	p[v->len] = '\0';
	v->p = p;
	return 0;
}

int
store_query(struct store *s, const char *sql, const struct store_value *params, size_t n_params,
    struct store_rows *ret_rows)
{
	struct store_rows r = {0};
	const char *tail = sql ? sql : "";
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc, err;

	s->errmsg[0] = '\0';
	if ((err = check_open(s)) || (err = prepare_client(s, AUTH_QUERY, &tail, &st)))
		return err;
	if (!st)
		return fail(s, -EINVAL, "empty query");
	if (!blank(tail, NULL)) {
		err = fail(s, -EINVAL, "a query is a single statement");
		goto out;
	}
	/* The authorizer misses writes that only a pragma or a vtab does. */
	if (!sqlite3_stmt_readonly(st)) {
		err = fail(s, -EPERM, "a query cannot write; use exec");
		goto out;
	}
	if ((err = bind_all(s, st, params, n_params)))
		goto out;

	r.n_cols = (size_t)sqlite3_column_count(st);
	r.names = calloc(r.n_cols + 1, sizeof(*r.names));
	if (!r.names) {
		err = fail(s, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t c = 0; c < r.n_cols; c++) {
		r.names[c] = strdup(sqlite3_column_name(st, (int)c));
		if (!r.names[c]) {
			err = fail(s, -ENOMEM, "out of memory");
			goto out;
		}
	}
	s->mode = AUTH_QUERY;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r.n_rows + 1) * r.n_cols > cap) {
			size_t ncap = cap ? 2 * cap : 16 * (r.n_cols ? r.n_cols : 1);
			struct store_value *v = realloc(r.values, ncap * sizeof(*v));

			if (!v) {
				rc = SQLITE_NOMEM;
				break;
			}
			r.values = v;
			cap = ncap;
		}
		for (size_t c = 0; c < r.n_cols; c++) {
			struct store_value *v = &r.values[r.n_rows * r.n_cols + c];

			if (copy_value(v, st, (int)c) < 0) {
				/* Keep the row freeable: the rest are NULLs. */
				for (; c < r.n_cols; c++)
					r.values[r.n_rows * r.n_cols + c].type = STORE_NULL;
				r.n_rows++;
				rc = SQLITE_NOMEM;
				break;
			}
		}
		if (rc == SQLITE_NOMEM)
			break;
		r.n_rows++;
	}
	s->mode = AUTH_INTERNAL;
	if (rc != SQLITE_DONE) {
		err = fail(s, errno_of(rc), "%s",
		    rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->w.db));
		goto out;
	}
	*ret_rows = r;
	memset(&r, 0, sizeof(r));
out:
	(void)sqlite3_finalize(st);
	store_rows_free(&r);
	return err;
}

void
store_rows_free(struct store_rows *rows)
{
	if (!rows)
		return;
	for (size_t i = 0; i < rows->n_rows * rows->n_cols; i++)
		free((void *)rows->values[i].p);
	free(rows->values);
	for (size_t c = 0; rows->names && c < rows->n_cols; c++)
		free(rows->names[c]);
	free(rows->names);
	memset(rows, 0, sizeof(*rows));
}

/* ------------------------------------------------------------------ */
/* Apply                                                                */

/* A changeset for a table we lack would be skipped silently: refuse it instead. */
static int
apply_filter(void *data, const char *table)
{
	struct store *s = data;

	if (sqlite3_table_column_metadata(
	        s->a.db, "main", table, NULL, NULL, NULL, NULL, NULL, NULL) != SQLITE_OK)
		s->apply_missing_table = true;
	return 1;
}

static int
apply_conflict(void *data, int reason, sqlite3_changeset_iter *it)
{
	struct store *s = data;

	s->apply_conflicts++;
	return SQLITE_CHANGESET_ABORT;
}

static int
apply_ddl(struct store *s, const struct store_part *p)
{
	const char *sql = p->data;
	const char *end = sql + p->len;

	while (sql < end && !blank(sql, end)) {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		int rc;

		rc = sqlite3_prepare_v2(s->a.db, sql, (int)(end - sql), &st, &tail);
		if (rc == SQLITE_OK && st) {
			while ((rc = sqlite3_step(st)) == SQLITE_ROW)
				;
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
		}
		if (rc != SQLITE_OK) {
			int err = fail(
			    s, -ESTALE, "schema statement fails here: %s", sqlite3_errmsg(s->a.db));

			(void)sqlite3_finalize(st);
			return err;
		}
		(void)sqlite3_finalize(st);
		fast_tables_clear(&s->fast);
		if (!tail || tail <= sql)
			break;
		sql = tail;
	}
	return 0;
}

/* Steps st once and resets it; the step's result code. */
static int
step_once(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	return rc;
}

/* Prepares the text of str (finished here) on the apply connection, or NULL. */
static sqlite3_stmt *
fast_prepare(struct store *s, sqlite3_str *str)
{
	sqlite3_stmt *st = NULL;
	char *sql = sqlite3_str_finish(str);

	if (sql == NULL || sqlite3_prepare_v3(s->a.db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
	                       NULL) != SQLITE_OK) {
		(void)sqlite3_finalize(st);
		st = NULL;
	}
	sqlite3_free(sql);
	return st;
}

/* Reads table name's columns and prepares its INSERT and DELETE; false if it cannot. */
static bool
fast_table_load(struct store *s, struct fast_table *t, const char *name)
{
	sqlite3_str *ins, *del;
	int rc, n = 0;

	if (!s->fast.info &&
	    sqlite3_prepare_v3(s->a.db, "SELECT name, pk FROM pragma_table_info(?1, 'main')", -1,
	        SQLITE_PREPARE_PERSISTENT, &s->fast.info, NULL) != SQLITE_OK)
		return false;
	t->name = strdup(name);
	if (!t->name)
		return false;
	(void)sqlite3_bind_text(s->fast.info, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s->fast.info)) == SQLITE_ROW) {
		const char *col = (const char *)sqlite3_column_text(s->fast.info, 0);
		char **cols = realloc(t->cols, (size_t)(n + 1) * sizeof(*cols));
		unsigned char *pk = realloc(t->pk, (size_t)(n + 1));

		if (cols)
			t->cols = cols;
		if (pk)
			t->pk = pk;
		if (!cols || !pk || !col || !(t->cols[n] = strdup(col)))
			break;
		t->pk[n] = sqlite3_column_int(s->fast.info, 1) > 0;
		t->n_cols = ++n;
	}
	(void)sqlite3_reset(s->fast.info);
	(void)sqlite3_clear_bindings(s->fast.info);
	if (rc != SQLITE_DONE || n == 0)
		return false; /* a table we lack: the full path says so */

	ins = sqlite3_str_new(s->a.db);
	del = sqlite3_str_new(s->a.db);
	sqlite3_str_appendf(ins, "INSERT INTO main.\"%w\" VALUES (", name);
	sqlite3_str_appendf(del, "DELETE FROM main.\"%w\" WHERE ", name);
	for (int i = 0; i < n; i++) {
		sqlite3_str_appendf(ins, "%s?%d", i ? ", " : "", i + 1);
		sqlite3_str_appendf(del, "%s\"%w\" IS ?%d", i ? " AND " : "", t->cols[i], i + 1);
	}
	sqlite3_str_appendall(ins, ")");
	t->ins = fast_prepare(s, ins);
	t->del = fast_prepare(s, del);
	return t->ins && t->del;
}

/* The fast path's table name, read now if need be; NULL if it cannot be used. */
static struct fast_table *
fast_table(struct store *s, const char *name)
{
	struct fast *f = &s->fast;
	struct fast_table *t;

	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->t[i].name, name) == 0)
			return f->t[i].ins ? &f->t[i] : NULL;
	t = realloc(f->t, (f->n + 1) * sizeof(*t));
	if (!t)
		return NULL;
	f->t = t;
	t = &f->t[f->n++];
	*t = (struct fast_table){0};
	/* A table that cannot be used stays listed, without statements. */
	if (!fast_table_load(s, t, name)) {
		if (!t->name) {
			f->n--;
			return NULL;
		}
		(void)sqlite3_finalize(t->ins);
		(void)sqlite3_finalize(t->del);
		t->ins = t->del = NULL;
		return NULL;
	}
	return t;
}

/*
 * Appends " WHERE c IS ?k AND ..." for each column the change at it has an
 * old value of, column i bound at ?(offset + i + 1).
 */
static void
append_old_match(
    sqlite3_str *str, const struct fast_table *t, sqlite3_changeset_iter *it, int offset)
{
	sqlite3_value *v;
	bool first = true;

	for (int i = 0; i < t->n_cols; i++) {
		if (sqlite3changeset_old(it, i, &v) != SQLITE_OK || !v)
			continue;
		sqlite3_str_appendf(str, "%s\"%w\" IS ?%d", first ? " WHERE " : " AND ", t->cols[i],
		    offset + i + 1);
		first = false;
	}
}

/* The UPDATE of t that sets the columns with a new value in it, kept by its text. */
static sqlite3_stmt *
fast_update(struct store *s, struct fast_table *t, sqlite3_changeset_iter *it)
{
	sqlite3_str *str = sqlite3_str_new(s->a.db);
	struct cached_stmt *c;
	sqlite3_value *v;
	bool first = true;
	char *sql;
	size_t len;

	sqlite3_str_appendf(str, "UPDATE main.\"%w\" SET ", t->name);
	for (int i = 0; i < t->n_cols; i++) {
		if (sqlite3changeset_new(it, i, &v) != SQLITE_OK || !v)
			continue;
		sqlite3_str_appendf(str, "%s\"%w\" = ?%d", first ? "" : ", ", t->cols[i], i + 1);
		first = false;
	}
	if (first) /* nothing set: the row must still be there */
		sqlite3_str_appendf(str, "\"%w\" = \"%w\"", t->cols[0], t->cols[0]);
	append_old_match(str, t, it, t->n_cols);
	sql = sqlite3_str_finish(str);
	if (!sql)
		return NULL;
	len = strlen(sql);
	for (size_t i = 0; i < FAST_UPDATES; i++) {
		if (t->upd[i].st && t->upd[i].len == len && memcmp(t->upd[i].sql, sql, len) == 0) {
			sqlite3_free(sql);
			return t->upd[i].st;
		}
	}
	c = &t->upd[t->next_upd++ % FAST_UPDATES];
	stmts_clear(c, 1);
	c->sql = strdup(sql);
	if (c->sql && sqlite3_prepare_v3(
	                  s->a.db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st, NULL) == SQLITE_OK) {
		c->len = len;
	} else {
		stmts_clear(c, 1);
	}
	sqlite3_free(sql);
	return c->st;
}

/* What became of one change on the fast path. */
enum fast_result {
	FAST_DONE,  /* applied as SQLite's apply would have */
	FAST_RETRY, /* met a constraint (UNIQUE) that a later change may lift */
	FAST_NO,    /* anything else: SQLite's apply must decide */
};

/*
 * Binds to st the values of the change at it: its new ones at ?1.., its
 * old ones after them (at ?1.. without new ones).  False, with st's
 * bindings cleared, if one cannot be bound.
 */
static bool
bind_change(const struct fast_table *t, sqlite3_changeset_iter *it, sqlite3_stmt *st, bool use_new,
    bool use_old)
{
	sqlite3_value *v;

	for (int i = 0; i < t->n_cols; i++) {
		if ((use_new && sqlite3changeset_new(it, i, &v) == SQLITE_OK && v &&
		        sqlite3_bind_value(st, i + 1, v) != SQLITE_OK) ||
		    (use_old && sqlite3changeset_old(it, i, &v) == SQLITE_OK && v &&
		        sqlite3_bind_value(st, (use_new ? t->n_cols : 0) + i + 1, v) !=
		            SQLITE_OK)) {
			(void)sqlite3_clear_bindings(st);
			return false;
		}
	}
	return true;
}

/*
 * Binds to st the values of the change (bind_change) and runs it: done
 * if it did exactly what the change says, one row inserted, or one row
 * with every old value the change holds updated or deleted.
 */
static enum fast_result
fast_run(struct store *s, struct fast_table *t, sqlite3_changeset_iter *it, sqlite3_stmt *st,
    bool use_new, bool use_old)
{
	int rc;

	if (!bind_change(t, it, st, use_new, use_old))
		return FAST_NO;
	rc = step_once(st);
	if (rc == SQLITE_DONE)
		return sqlite3_changes(s->a.db) == 1 ? FAST_DONE : FAST_NO;
	return (rc & 0xff) == SQLITE_CONSTRAINT ? FAST_RETRY : FAST_NO;
}

/* Applies the change at it as SQLite's own apply would. */
static enum fast_result
fast_change(struct store *s, sqlite3_changeset_iter *it)
{
	struct fast_table *t;
	const char *name;
	unsigned char *pk;
	int n, op, indirect, n_pk;
	sqlite3_value *v;

	if (sqlite3changeset_op(it, &name, &n, &op, &indirect) != SQLITE_OK ||
	    sqlite3changeset_pk(it, &pk, &n_pk) != SQLITE_OK || !(t = fast_table(s, name)) ||
	    t->n_cols != n || n_pk != n)
		return FAST_NO;
	for (int i = 0; i < n; i++) {
		if (!pk[i] != !t->pk[i])
			return FAST_NO;
		/* The key's old values say which row (an insert has none). */
		if (pk[i] && op != SQLITE_INSERT &&
		    (sqlite3changeset_old(it, i, &v) != SQLITE_OK || !v))
			return FAST_NO;
		if (op == SQLITE_INSERT && (sqlite3changeset_new(it, i, &v) != SQLITE_OK || !v))
			return FAST_NO;
		if (op == SQLITE_DELETE && (sqlite3changeset_old(it, i, &v) != SQLITE_OK || !v))
			return FAST_NO;
	}
	switch (op) {
	case SQLITE_INSERT:
		return fast_run(s, t, it, t->ins, true, false);
	case SQLITE_DELETE:
		return fast_run(s, t, it, t->del, false, true);
	case SQLITE_UPDATE: {
		sqlite3_stmt *st = fast_update(s, t, it);

		return st ? fast_run(s, t, it, st, true, true) : FAST_NO;
	}
	default:
		return FAST_NO;
	}
}

/*
 * One pass over the changeset p: applies the changes whose ordinal is in
 * retry[0..*n_retry) (all of them when retry is NULL) and leaves in retry
 * those that met a constraint.  False if a change could not be applied.
 */
static bool
fast_pass(struct store *s, const struct store_part *p, int **retry, size_t *n_retry)
{
	sqlite3_changeset_iter *it = NULL;
	int *todo = *retry, *again = NULL;
	size_t n_todo = *n_retry, n_again = 0, next = 0;
	bool ok = true;
	int rc = SQLITE_DONE;

	if (sqlite3changeset_start(&it, (int)p->len, p->data) != SQLITE_OK) {
		ok = false;
	} else {
		for (int i = 0; ok && (rc = sqlite3changeset_next(it)) == SQLITE_ROW; i++) {
			enum fast_result r;
			int *more;

			if (todo) {
				if (next == n_todo || todo[next] != i)
					continue;
				next++;
			}
			r = fast_change(s, it);
			if (r == FAST_NO)
				ok = false;
			else if (r == FAST_RETRY &&
			         (more = realloc(again, (n_again + 1) * sizeof(*again))) != NULL)
				(again = more)[n_again++] = i;
			else if (r == FAST_RETRY)
				ok = false;
		}
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			ok = false;
	}
	if (sqlite3changeset_finalize(it) != SQLITE_OK)
		ok = false;
	free(todo);
	*retry = again;
	*n_retry = n_again;
	return ok;
}

/* A row taken out of a cycle: its values as the change leaves them. */
struct moved_row {
	size_t table; /* in s->fast.t */
	int n;
	sqlite3_value **v; /* n */
};

static void
moved_free(struct moved_row *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; m[i].v && c < m[i].n; c++)
			sqlite3_value_free(m[i].v[c]);
		free(m[i].v);
	}
	free(m);
}

/*
 * Takes out the row of the UPDATE at it: reads it where every old value
 * the change holds matches, keeps it with the new values set, deletes it.
 * False if there is no such row or anything fails.
 */
static bool
fast_take_out(struct store *s, sqlite3_changeset_iter *it, struct moved_row *m)
{
	sqlite3_str *str = sqlite3_str_new(s->a.db);
	struct fast_table *t;
	sqlite3_stmt *st = NULL;
	sqlite3_value *v;
	const char *name;
	char *sql;
	int n, op, indirect;
	bool ok = false;

	if (sqlite3changeset_op(it, &name, &n, &op, &indirect) != SQLITE_OK ||
	    op != SQLITE_UPDATE || !(t = fast_table(s, name)) || t->n_cols != n) {
		sqlite3_free(sqlite3_str_finish(str));
		return false;
	}
	sqlite3_str_appendall(str, "SELECT ");
	for (int i = 0; i < n; i++)
		sqlite3_str_appendf(str, "%s\"%w\"", i ? ", " : "", t->cols[i]);
	sqlite3_str_appendf(str, " FROM main.\"%w\"", t->name);
	append_old_match(str, t, it, 0);
	sql = sqlite3_str_finish(str);
	m->table = (size_t)(t - s->fast.t);
	m->n = n;
	m->v = calloc((size_t)n, sizeof(*m->v));
	if (!sql || !m->v || sqlite3_prepare_v2(s->a.db, sql, -1, &st, NULL) != SQLITE_OK ||
	    !bind_change(t, it, st, false, true) || sqlite3_step(st) != SQLITE_ROW)
		goto out;
	/* Deleted as it is now, kept with the change's new values. */
	for (int i = 0; i < n; i++) {
		if (sqlite3_bind_value(t->del, i + 1, sqlite3_column_value(st, i)) != SQLITE_OK)
			goto out;
		if (sqlite3changeset_new(it, i, &v) != SQLITE_OK || !v)
			v = sqlite3_column_value(st, i);
		if (!(m->v[i] = sqlite3_value_dup(v)))
			goto out;
	}
	ok = sqlite3_step(st) == SQLITE_DONE && step_once(t->del) == SQLITE_DONE &&
	     sqlite3_changes(s->a.db) == 1;
out:
	(void)sqlite3_clear_bindings(t->del);
	(void)sqlite3_finalize(st);
	sqlite3_free(sql);
	return ok;
}

/*
 * Values that went round in a cycle (rows that swapped UNIQUE values)
 * hold each other up: no UPDATE of the cycle can go first.  Takes out
 * the rows of every UPDATE left in retry, then puts each back with its
 * new values; what is not an UPDATE stays in retry for the next pass.
 * False if a row is not as its change says or does not go back in.
 */
static bool
fast_cycle(struct store *s, const struct store_part *p, int **retry, size_t *n_retry)
{
	sqlite3_changeset_iter *it = NULL;
	struct moved_row *moved = calloc(*n_retry, sizeof(*moved));
	int *left = *retry;
	size_t n_moved = 0, n_left = 0, next = 0;
	bool ok = moved != NULL && sqlite3changeset_start(&it, (int)p->len, p->data) == SQLITE_OK;

	for (int i = 0; ok && next < *n_retry && sqlite3changeset_next(it) == SQLITE_ROW; i++) {
		const char *name;
		int n, op, indirect;

		if ((*retry)[next] != i)
			continue;
		next++;
		if (sqlite3changeset_op(it, &name, &n, &op, &indirect) != SQLITE_OK)
			ok = false;
		else if (op != SQLITE_UPDATE)
			left[n_left++] = i;
		else
			ok = fast_take_out(s, it, &moved[n_moved++]);
	}
	if (sqlite3changeset_finalize(it) != SQLITE_OK || next < *n_retry)
		ok = false;
	for (size_t i = 0; ok && i < n_moved; i++) {
		struct fast_table *t = &s->fast.t[moved[i].table];

		for (int c = 0; ok && c < moved[i].n; c++)
			ok = sqlite3_bind_value(t->ins, c + 1, moved[i].v[c]) == SQLITE_OK;
		if (!ok) {
			(void)sqlite3_clear_bindings(t->ins);
			break;
		}
		/* One row in: an ON CONFLICT IGNORE would otherwise drop it silently. */
		ok = step_once(t->ins) == SQLITE_DONE && sqlite3_changes(s->a.db) == 1;
	}
	moved_free(moved, n_moved);
	*n_retry = n_left;
	return ok;
}

/*
 * The fast path of apply_changeset: applies the changeset change by
 * change with statements kept from one frame to the next, inside a
 * savepoint.  SQLite's own apply prepares its statements again for every
 * changeset and, by turning a pragma on and off, makes every statement of
 * the connection be prepared again; that was most of the cost of a frame.
 * A change that meets a constraint (a UNIQUE value that another row of
 * the changeset gives up) is tried again after the others, for as long as
 * that gets further (FAST_PASSES at most): a changeset holds each row's
 * final state, so in whatever order they all apply, the result is the
 * active's.
 * Returns 0 when every change did what it says; 1 when one did not (a
 * conflict, a missing table): everything is undone and the caller applies
 * the changeset the full way, which decides; -errno when the transaction
 * itself failed.
 */
static int
apply_fast(struct store *s, const struct store_part *p)
{
	struct fast *f = &s->fast;
	int *retry = NULL;
	size_t n_retry = 0, before;
	char why[256] = "";
	bool ok;

	if (!f->sp_begin &&
	    (sqlite3_prepare_v3(s->a.db, "SAVEPOINT tandem_cs", -1, SQLITE_PREPARE_PERSISTENT,
	         &f->sp_begin, NULL) != SQLITE_OK ||
	        sqlite3_prepare_v3(s->a.db, "RELEASE tandem_cs", -1, SQLITE_PREPARE_PERSISTENT,
	            &f->sp_release, NULL) != SQLITE_OK ||
	        sqlite3_prepare_v3(s->a.db, "ROLLBACK TO tandem_cs", -1, SQLITE_PREPARE_PERSISTENT,
	            &f->sp_rollback, NULL) != SQLITE_OK)) {
		(void)sqlite3_finalize(f->sp_begin);
		(void)sqlite3_finalize(f->sp_release);
		f->sp_begin = f->sp_release = NULL;
		return 1;
	}
	if (step_once(f->sp_begin) != SQLITE_DONE)
		return 1;
	ok = fast_pass(s, p, &retry, &n_retry);
	for (int pass = 1; ok && n_retry > 0; pass++) {
		before = n_retry;
		ok = pass < FAST_PASSES && fast_pass(s, p, &retry, &n_retry);
		/* Nothing more applied: what is left holds itself up. */
		if (ok && n_retry == before)
			ok = fast_cycle(s, p, &retry, &n_retry);
		ok = ok && n_retry < before;
	}
	free(retry);
	if (!ok) {
		/* The error that stopped it (if any), before the savepoint's own. */
		if (sqlite3_errcode(s->a.db) != SQLITE_OK)
			(void)snprintf(why, sizeof(why), "%s", sqlite3_errmsg(s->a.db));
		(void)step_once(f->sp_rollback);
	}
	if (step_once(f->sp_release) != SQLITE_DONE || sqlite3_get_autocommit(s->a.db))
		return fail(s, -EIO, "the apply transaction ended: %s",
		    why[0] ? why : sqlite3_errmsg(s->a.db));
	if (!ok)
		return 1;
	s->applied_fast++;
	return 0;
}

static int
apply_changeset(struct store *s, const struct store_part *p)
{
	int rc;

	if (p->len > (size_t)INT32_MAX)
		return fail(s, -E2BIG, "changeset of %zu bytes", p->len);
	if ((rc = apply_fast(s, p)) <= 0)
		return rc;
	s->applied_full++;
	s->apply_missing_table = false;
	s->apply_conflicts = 0;
	rc = sqlite3changeset_apply_v2(s->a.db, (int)p->len, p->data, apply_filter, apply_conflict,
	    s, NULL, NULL, SQLITE_CHANGESETAPPLY_NOSAVEPOINT);
	if (s->apply_missing_table)
		return fail(s, -ESTALE, "changeset for a table we do not have");
	if (s->apply_conflicts)
		return fail(s, -ESTALE, "changeset conflicts with our rows: the replicas diverged");
	if (rc != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_MISUSE)
			return fail(s, -EBADMSG, "corrupt changeset");
		if ((rc & 0xff) == SQLITE_SCHEMA || (rc & 0xff) == SQLITE_ABORT ||
		    (rc & 0xff) == SQLITE_CONSTRAINT)
			return fail(s, -ESTALE, "changeset does not apply: %s", sqlite3_errstr(rc));
		return fail_db(s, s->a.db, rc, "applying a changeset");
	}
	return 0;
}

/* Where the apply transaction stands, frame after frame. */
struct apply_pos {
	uint64_t epoch;
	uint64_t seq;
	uint64_t hash;
	int64_t cookie;
};

/*
 * Checks and applies one frame inside the apply transaction, after the
 * frames before it; records its epoch when it begins one.  The position
 * itself is written once, by the caller.
 */
static int
apply_frame(struct store *s, const struct store_frame *f, struct apply_pos *at)
{
	bool ddl = false;
	int err;

	if (f->epoch < at->epoch)
		return fail(s, -EPROTO,
		    "frame (%" PRIu64 ", %" PRIu64 ") is from an older epoch than ours (%" PRIu64
		    ")",
		    f->epoch, f->seq, at->epoch);
	if (f->seq <= at->seq) {
		if (f->epoch == at->epoch)
			return fail(s, -EALREADY, "frame %" PRIu64 " already applied", f->seq);
		return fail(s, -ESTALE,
		    "epoch %" PRIu64 " continues from seq %" PRIu64 ", we are at %" PRIu64
		    ": the replicas diverged",
		    f->epoch, f->seq - 1, at->seq);
	}
	if (f->seq != at->seq + 1)
		return fail(s, -EPROTO, "frame %" PRIu64 " after %" PRIu64 ": frames are missing",
		    f->seq, at->seq);
	if (at->hash != f->schema_before)
		return fail(s, -ESTALE, "schema differs from the active's: the replicas diverged");

	for (size_t i = 0; i < f->n_parts; i++) {
		const struct store_part *p = &f->parts[i];

		switch (p->type) {
		case STORE_PART_CHANGESET:
			err = apply_changeset(s, p);
			break;
		case STORE_PART_DDL:
			err = apply_ddl(s, p);
			ddl = true;
			break;
		default:
			err = fail(s, -EBADMSG, "part %zu: unknown type %d", i, (int)p->type);
			break;
		}
		if (err)
			return err;
	}
	if (ddl && (err = schema_get(s, &s->a, &at->hash, &at->cookie)))
		return err;
	if (at->hash != f->schema_after)
		return fail(s, -ESTALE, "schema after the frame differs from the active's");
	if (f->epoch > at->epoch) {
		(void)sqlite3_bind_int64(s->a.add_epoch, 1, (sqlite3_int64)f->epoch);
		(void)sqlite3_bind_int64(s->a.add_epoch, 2, (sqlite3_int64)(f->seq - 1));
		if ((err = run(s, s->a.db, s->a.add_epoch)))
			return err;
	}
	at->epoch = f->epoch;
	at->seq = f->seq;
	return 0;
}

/* store_apply and store_apply_batch: frames[0..n) in one transaction. */
static int
apply_frames(struct store *s, const struct store_frame *frames, size_t n, bool skip_duplicates,
    size_t *ret_applied)
{
	struct apply_pos at;
	size_t applied = 0;
	int err;

	s->errmsg[0] = '\0';
	if ((err = check_open(s)) || (err = run(s, s->a.db, s->a.begin)))
		return err;
	if ((err = read_position(s, &s->a, &at.epoch, &at.seq)) ||
	    (err = schema_get(s, &s->a, &at.hash, &at.cookie)))
		goto fail;
	if (at.cookie != s->fast.cookie) {
		fast_tables_clear(&s->fast);
		s->fast.cookie = at.cookie;
	}
	for (size_t i = 0; i < n; i++) {
		err = apply_frame(s, &frames[i], &at);
		if (err == -EALREADY && skip_duplicates && applied == 0)
			continue;
		if (err)
			goto fail;
		applied++;
	}
	if (applied == 0) {
		rollback(s, &s->a);
		s->errmsg[0] = '\0';
		if (ret_applied)
			*ret_applied = 0;
		return 0;
	}
	if ((err = write_position(s, &s->a, at.epoch, at.seq)))
		goto fail;
	if ((err = run(s, s->a.db, s->a.commit)))
		goto fail;
	s->epoch = at.epoch;
	s->seq = at.seq;
	s->schema_hash = at.hash;
	s->schema_cookie = at.cookie;
	if (ret_applied)
		*ret_applied = applied;
	return 0;

fail:
	rollback(s, &s->a);
	return err;
}

void
store_apply_counts(const struct store *s, uint64_t *ret_fast, uint64_t *ret_full)
{
	*ret_fast = s->applied_fast;
	*ret_full = s->applied_full;
}

int
store_apply(struct store *s, const struct store_frame *f)
{
	return apply_frames(s, f, 1, false, NULL);
}

int
store_apply_batch(struct store *s, const struct store_frame *frames, size_t n, size_t *ret_applied)
{
	return apply_frames(s, frames, n, true, ret_applied);
}

/* ------------------------------------------------------------------ */
/* Epoch, hashes, archive                                               */

int
store_set_epoch(struct store *s, uint64_t epoch)
{
	uint64_t e, q;
	int err;

	s->errmsg[0] = '\0';
	if ((err = check_open(s)) || (err = exec_internal(s, s->w.db, "PRAGMA synchronous = FULL")))
		return err;
	if ((err = run(s, s->w.db, s->w.begin)))
		goto out;
	if ((err = read_position(s, &s->w, &e, &q)))
		goto out;
	if (epoch < e) {
		err = fail(
		    s, -EINVAL, "epoch %" PRIu64 " is older than ours (%" PRIu64 ")", epoch, e);
		goto out;
	}
	if ((err = write_position(s, &s->w, epoch, q)))
		goto out;
	if (epoch > e) {
		(void)sqlite3_bind_int64(s->w.add_epoch, 1, (sqlite3_int64)epoch);
		(void)sqlite3_bind_int64(s->w.add_epoch, 2, (sqlite3_int64)q);
		if ((err = run(s, s->w.db, s->w.add_epoch)))
			goto out;
	}
	if ((err = run(s, s->w.db, s->w.commit)))
		goto out;
	s->epoch = epoch;
	s->seq = q;
out:
	rollback(s, &s->w);
	{
		char keep[sizeof(s->errmsg)];

		memcpy(keep, s->errmsg, sizeof(keep));
		(void)exec_internal(s, s->w.db, "PRAGMA synchronous = NORMAL");
		memcpy(s->errmsg, keep, sizeof(keep));
	}
	return err;
}

static uint64_t
hash_value(uint64_t h, sqlite3_stmt *st, int i)
{
	int type = sqlite3_column_type(st, i);

	h = fnv1a_u64(h, (uint64_t)type);
	switch (type) {
	case SQLITE_INTEGER:
		return fnv1a_u64(h, (uint64_t)sqlite3_column_int64(st, i));
	case SQLITE_FLOAT: {
		double d = sqlite3_column_double(st, i);
		uint64_t u;

		memcpy(&u, &d, sizeof(u));
		return fnv1a_u64(h, u);
	}
	case SQLITE_TEXT:
	case SQLITE_BLOB: {
		const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, i)
		                                    : sqlite3_column_blob(st, i);
		size_t n = (size_t)sqlite3_column_bytes(st, i);

		h = fnv1a_u64(h, n);
		return n ? fnv1a(h, p, n) : h;
	}
	default:
		return h;
	}
}

/* Hashes one table's rows, ordered by every column (distinct keys leave no ties). */
static int
hash_table(struct store *s, const char *name, uint64_t *h)
{
	sqlite3_str *q = sqlite3_str_new(s->w.db);
	sqlite3_stmt *st = NULL;
	char *sql;
	int rc, err, ncol;

	sqlite3_str_appendf(q, "SELECT * FROM main.\"%w\"", name);
	sql = sqlite3_str_finish(q);
	if (!sql)
		return fail(s, -ENOMEM, "out of memory");
	err = prepare(s, s->w.db, sql, &st);
	sqlite3_free(sql);
	if (err)
		return err;
	ncol = sqlite3_column_count(st);
	(void)sqlite3_finalize(st);

	q = sqlite3_str_new(s->w.db);
	sqlite3_str_appendf(q, "SELECT * FROM main.\"%w\" ORDER BY 1", name);
	for (int c = 2; c <= ncol; c++)
		sqlite3_str_appendf(q, ", %d", c);
	sql = sqlite3_str_finish(q);
	if (!sql)
		return fail(s, -ENOMEM, "out of memory");
	err = prepare(s, s->w.db, sql, &st);
	sqlite3_free(sql);
	if (err)
		return err;

	*h = fnv1a(*h, name, strlen(name) + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		for (int c = 0; c < ncol; c++)
			*h = hash_value(*h, st, c);
	(void)sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, s->w.db, rc, name);
	return 0;
}

int
store_content_hash(struct store *s, uint64_t *ret_hash)
{
	sqlite3_stmt *st;
	uint64_t h, schema;
	int64_t cookie;
	int rc, err;

	s->errmsg[0] = '\0';
	if ((err = check_open(s)) || (err = exec_internal(s, s->w.db, "BEGIN")))
		return err;
	if ((err = schema_get(s, &s->w, &schema, &cookie)))
		goto out;
	h = fnv1a_u64(FNV_INIT, schema);
	err = prepare(s, s->w.db,
	    "SELECT name FROM sqlite_schema WHERE type = 'table'"
	    " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND" NOT_RESERVED("name") " ORDER BY name",
	    &st);
	if (err)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((err = hash_table(s, (const char *)sqlite3_column_text(st, 0), &h)))
			break;
	(void)sqlite3_finalize(st);
	if (!err && rc != SQLITE_DONE)
		err = fail_db(s, s->w.db, rc, "content hash");
	if (!err)
		*ret_hash = h;
out:
	rollback(s, &s->w);
	return err;
}

/* dir/diverged-EPOCH-YYYYmmddTHHMMSSZ.db, now (UTC), in *ret (malloc'd). */
static int
archive_name(struct store *s, const char *dir, uint64_t epoch, char **ret)
{
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);

	if (!gmtime_r(&now, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
		return fail(s, -EINVAL, "cannot format the time");
	if (asprintf(ret, "%s/diverged-%" PRIu64 "-%s.db", dir, epoch, stamp) < 0)
		return fail(s, -ENOMEM, "out of memory");
	return 0;
}

int
store_archive(struct store *s, const char *dir, uint64_t epoch, char **ret_path)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	char *path = NULL;
	int fd, rc, err;

	s->errmsg[0] = '\0';
	if ((err = check_open(s)) || (err = archive_name(s, dir, epoch, &path)))
		return err;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = fail(s, -errno, "%s: %s", path, strerror(errno));
		free(path);
		return err;
	}
	(void)close(fd);

	rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		err = fail(s, errno_of(rc), "%s: %s", path, sqlite3_errstr(rc));
		goto fail;
	}
	b = sqlite3_backup_init(dst, "main", s->w.db, "main");
	if (!b) {
		err = fail_db(s, dst, sqlite3_errcode(dst), path);
		goto fail;
	}
	/* One pass: a stepwise copy restarts on every commit of the writer. */
	rc = sqlite3_backup_step(b, -1);
	(void)sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		err = fail(s, errno_of(rc), "%s: %s", path, sqlite3_errstr(rc));
		goto fail;
	}
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK) {
		err = fail(s, errno_of(rc), "%s: %s", path, sqlite3_errstr(rc));
		goto fail;
	}
	*ret_path = path;
	return 0;

fail:
	(void)sqlite3_close_v2(dst);
	(void)unlink(path);
	free(path);
	return err;
}

/* ------------------------------------------------------------------ */
/* Epoch history, backup, replace                                      */

int
store_has_position(struct store *s, uint64_t epoch, uint64_t seq)
{
	sqlite3_stmt *st = NULL;
	uint64_t start, end;
	int rc, err;

	s->errmsg[0] = '\0';
	if (epoch == 0 && seq == 0)
		return 1;
	if (epoch > INT64_MAX || seq > INT64_MAX)
		return 0;
	if ((err = check_open(s)) ||
	    (err = prepare(s, s->w.db,
	         "SELECT (SELECT start_seq FROM " EPOCHS_TABLE " WHERE epoch = ?1),"
	         " (SELECT start_seq FROM " EPOCHS_TABLE " WHERE epoch > ?1"
	         " ORDER BY epoch LIMIT 1)",
	         &st)))
		return err;
	(void)sqlite3_bind_int64(st, 1, (sqlite3_int64)epoch);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		err = fail_db(s, s->w.db, rc, "reading the epochs");
		(void)sqlite3_finalize(st);
		return err;
	}
	if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		(void)sqlite3_finalize(st);
		return 0; /* an epoch we never saw */
	}
	/* An epoch ends where the next one we know began, the newest where we are. */
	start = (uint64_t)sqlite3_column_int64(st, 0);
	end = sqlite3_column_type(st, 1) == SQLITE_NULL ? s->seq
	                                                : (uint64_t)sqlite3_column_int64(st, 1);
	(void)sqlite3_finalize(st);
	return start <= seq && seq <= end;
}

static int
fsync_path(const char *path, bool dir)
{
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		err = -errno;
	(void)close(fd);
	return err;
}

/* Fsyncs the directory holding path, so a new name in it survives a crash. */
static int
fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int err;

	if (!copy)
		return -ENOMEM;
	err = fsync_path(dirname(copy), true);
	free(copy);
	return err;
}

static int __attribute__((format(printf, 4, 5)))
backup_fail(char *buf, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	if (buf && len) {
		va_start(ap, fmt);
		(void)vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

#define BACKUP_MMAP "2147418112" /* SQLite's largest */

int
store_backup_file(const char *db_path, const char *dest_path, uint64_t *ret_epoch,
    uint64_t *ret_seq, char *errbuf, size_t errlen)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3_backup *b;
	uint64_t epoch, seq;
	bool created = false;
	int fd, rc, err;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	rc = sqlite3_open_v2(db_path, &src, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		err = backup_fail(errbuf, errlen, errno_of(rc), "%s: %s", db_path,
		    src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
		goto out;
	}
	(void)sqlite3_busy_timeout(src, BUSY_TIMEOUT_MS);
	/* Pages read from a mapping, not by a read() each. */
	(void)sqlite3_exec(src, "PRAGMA mmap_size = " BACKUP_MMAP, NULL, NULL, NULL);

	/* One read transaction: the position read is the one of the pages copied. */
	rc = sqlite3_exec(src, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(src,
		    "SELECT (SELECT v FROM " META_TABLE " WHERE k = 'epoch'),"
		    " (SELECT v FROM " META_TABLE " WHERE k = 'seq')",
		    -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW || sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
	    sqlite3_column_type(st, 1) != SQLITE_INTEGER) {
		err = errno_of(rc);
		if (rc == SQLITE_ROW || err == -EINVAL || err == -EBADMSG)
			err = backup_fail(errbuf, errlen, -EBADMSG, "%s: not a tandem database: %s",
			    db_path, rc == SQLITE_ROW ? "no position" : sqlite3_errmsg(src));
		else
			err = backup_fail(
			    errbuf, errlen, err, "%s: %s", db_path, sqlite3_errmsg(src));
		goto out;
	}
	epoch = (uint64_t)sqlite3_column_int64(st, 0);
	seq = (uint64_t)sqlite3_column_int64(st, 1);
	(void)sqlite3_finalize(st);
	st = NULL;

	fd = open(dest_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = backup_fail(errbuf, errlen, -errno, "%s: %s", dest_path, strerror(errno));
		goto out;
	}
	created = true;
	(void)close(fd);

	rc = sqlite3_open_v2(dest_path, &dst, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		err = backup_fail(
		    errbuf, errlen, errno_of(rc), "%s: %s", dest_path, sqlite3_errstr(rc));
		goto out;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		err = backup_fail(errbuf, errlen, errno_of(sqlite3_errcode(dst)), "%s: %s",
		    dest_path, sqlite3_errmsg(dst));
		goto out;
	}
	/* The source's open read transaction is the snapshot copied. */
	rc = sqlite3_backup_step(b, -1);
	(void)sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		err = backup_fail(
		    errbuf, errlen, errno_of(rc), "%s: %s", dest_path, sqlite3_errstr(rc));
		goto out;
	}
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK) {
		err = backup_fail(
		    errbuf, errlen, errno_of(rc), "%s: %s", dest_path, sqlite3_errstr(rc));
		goto out;
	}
	if ((err = fsync_path(dest_path, false)) || (err = fsync_dir_of(dest_path))) {
		err = backup_fail(errbuf, errlen, err, "%s: fsync: %s", dest_path, strerror(-err));
		goto out;
	}
	if (ret_epoch)
		*ret_epoch = epoch;
	if (ret_seq)
		*ret_seq = seq;
	err = 0;
out:
	(void)sqlite3_finalize(st);
	(void)sqlite3_close_v2(dst);
	(void)sqlite3_close_v2(src); /* ends the read transaction */
	if (err && created)
		(void)unlink(dest_path);
	return err;
}

/* Checks that path holds a store database: SQLite, with a position. */
static int
check_store_file(struct store *s, const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc, err = 0;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		err = fail(
		    s, errno_of(rc), "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	(void)sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	rc = sqlite3_prepare_v2(db,
	    "SELECT (SELECT v FROM " META_TABLE " WHERE k = 'epoch'),"
	    " (SELECT v FROM " META_TABLE " WHERE k = 'seq')",
	    -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
	    sqlite3_column_type(st, 1) == SQLITE_INTEGER)
		goto out;
	err = errno_of(rc);
	if (rc == SQLITE_ROW || err == -EINVAL || err == -EBADMSG)
		err = fail(s, -EBADMSG, "%s: not a tandem database: %s", path,
		    rc == SQLITE_ROW ? "no position" : sqlite3_errmsg(db));
	else
		err = fail(s, err, "%s: %s", path, sqlite3_errmsg(db));
out:
	(void)sqlite3_finalize(st);
	(void)sqlite3_close_v2(db); /* the last connection: folds its -wal into the file */
	return err;
}

/* Removes path + suffix if it is there. */
static int
unlink_suffix(struct store *s, const char *path, const char *suffix)
{
	char *name = NULL;
	int err = 0;

	if (asprintf(&name, "%s%s", path, suffix) < 0)
		return fail(s, -ENOMEM, "out of memory");
	if (unlink(name) != 0 && errno != ENOENT)
		err = fail(s, -errno, "%s: %s", name, strerror(errno));
	free(name);
	return err;
}

static void *
closer_main(void *arg)
{
	(void)close((int)(intptr_t)arg);
	return NULL;
}

void
store_close_later(int fd)
{
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	if (fd < 0)
		return;
	if (pthread_attr_init(&attr) != 0) {
		(void)close(fd);
		return;
	}
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, closer_main, (void *)(intptr_t)fd);
	(void)pthread_attr_destroy(&attr);
	if (rc != 0)
		(void)close(fd);
}

void
store_remove_later(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	(void)unlink(path);
	store_close_later(fd);
}

int
store_replace(struct store *s, const char *new_path, const char *archive_dir, char **ret_archive)
{
	char *archive = NULL, keep[sizeof(s->errmsg)];
	bool renamed = false;
	int err, rc, old_fd;

	s->errmsg[0] = '\0';
	if ((err = check_store_file(s, new_path)))
		return err;
	if ((err = fsync_path(new_path, false)))
		return fail(s, err, "%s: fsync: %s", new_path, strerror(-err));
	if (archive_dir && (err = archive_name(s, archive_dir, s->epoch, &archive)))
		return err;

	/* Fold the -wal into the file, so the file alone is all we had. */
	ckpt_stop(s);
	if (s->w.db)
		(void)exec_internal(s, s->w.db, "PRAGMA wal_checkpoint(TRUNCATE)");
	/* Keeps the old file's blocks until store_close_later frees them. */
	old_fd = s->file_fd;
	s->file_fd = -1;
	cache_clear(s);
	conn_close(&s->a);
	conn_close(&s->w);

	if (archive && link(s->path, archive) != 0) {
		if (errno != EXDEV) {
			err = fail(s, -errno, "%s: %s", archive, strerror(errno));
			goto reopen;
		}
		/* Another file system: copy it. */
		err = store_backup_file(s->path, archive, NULL, NULL, keep, sizeof(keep));
		if (err) {
			err = fail(s, err, "%s", keep);
			goto reopen;
		}
	}
	if (rename(new_path, s->path) != 0) {
		err = fail(s, -errno, "%s: %s", s->path, strerror(errno));
		if (archive)
			(void)unlink(archive);
		goto reopen;
	}
	renamed = true;
	/* A -wal of the old file would be replayed into the new one. */
	if ((err = unlink_suffix(s, s->path, "-wal")) || (err = unlink_suffix(s, s->path, "-shm")))
		goto reopen;
	if ((err = fsync_dir_of(s->path)) || (archive && (err = fsync_dir_of(archive)))) {
		err = fail(s, err, "%s: fsync of the directory: %s", s->path, strerror(-err));
		goto reopen;
	}

reopen:
	/*
	 * The old file, gone from its name, is freed on a thread.  Still in
	 * place, it is the one store_init locks again: closed now, or the
	 * close would drop that lock.
	 */
	if (renamed)
		store_close_later(old_fd);
	else if (old_fd >= 0)
		(void)close(old_fd);
	memcpy(keep, s->errmsg, sizeof(keep));
	rc = store_init(s, s->path);
	if (rc) {
		cache_clear(s);
		conn_close(&s->a);
		conn_close(&s->w);
		if (!err)
			err = rc;
		else
			(void)snprintf(s->errmsg + strlen(s->errmsg),
			    sizeof(s->errmsg) - strlen(s->errmsg), " (and %s)", keep);
	} else {
		memcpy(s->errmsg, keep, sizeof(keep));
	}
	if (err) {
		free(archive);
		return err;
	}
	if (ret_archive)
		*ret_archive = archive;
	else
		free(archive);
	return 0;
}

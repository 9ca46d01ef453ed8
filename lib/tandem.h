/*
 * tandem.h: the client library of the pair's replicated database.
 *
 * An application on either node connects to the local tandemd and runs
 * SQL on the pair's SQLite database: writes on the active (refused on the
 * standby, naming the active), reads on either.  In sync mode a commit
 * returns once the standby has applied it, so a committed write survives
 * a failover.
 *
 * One struct tandem is one connection; use it from one thread at a time
 * (give each writer thread its own connection: concurrent commits are
 * batched by tandemd, so throughput grows with the number of writers).
 * Link with `pkg-config --libs tandem`.  The environment variable
 * TANDEM_CTL_SERVICE, when set, names the IPC service to use instead of tandemd's
 * ("tandem"), for tests.
 *
 * Errors: functions return 0 or a negative errno value, and
 * tandem_errmsg() says what went wrong in one line for a human:
 *   -EINVAL        SQL error (syntax, constraint, parameter count);
 *   -EPERM         statement refused (it would not replicate: a table
 *                  without primary key, transaction control, ...);
 *   -EROFS         this node is not the active; tandem_active() names it;
 *   -ECONNABORTED  the node lost the active role while the commit waited
 *                  for the standby: it may or may not have been kept;
 *   -EBUSY, -EIO   the database could not commit now;
 *   -ENOTCONN      tandemd is not running or the connection broke;
 *   -EMSGSIZE      request or result larger than the protocol allows;
 *   -EPROTO        a reply this library does not understand;
 *   -ENOMEM.
 */
#ifndef TANDEM_H
#define TANDEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tandem;

enum tandem_type {
	TANDEM_NULL = 0,
	TANDEM_INTEGER,
	TANDEM_FLOAT,
	TANDEM_TEXT,
	TANDEM_BLOB,
};

/*
 * A typed SQL value: i for TANDEM_INTEGER, f for TANDEM_FLOAT, p and len
 * for TANDEM_TEXT (UTF-8, len bytes) and TANDEM_BLOB.  Texts returned by
 * tandem_query are also NUL-terminated.
 */
struct tandem_value {
	enum tandem_type type;
	int64_t i;
	double f;
	const void *p;
	size_t len;
};

/* Helpers to build parameters. */
struct tandem_value tandem_int(int64_t i);
struct tandem_value tandem_float(double f);
struct tandem_value tandem_text(const char *s); /* NUL-terminated; NULL gives TANDEM_NULL */
struct tandem_value tandem_blob(const void *p, size_t len);
struct tandem_value tandem_null(void);

/* One statement of a transaction; params are bound by position (?, ?N, :name). */
struct tandem_stmt {
	const char *sql;
	const struct tandem_value *params;
	size_t n_params;
};

/* What a committed transaction did. */
struct tandem_commit {
	int64_t changes;
	int64_t last_rowid;
	/* The replicated position it committed at. */
	uint64_t epoch;
	uint64_t seq;
};

/* Rows of a query: n_rows rows of n_cols values, row after row. */
struct tandem_rows {
	size_t n_cols;
	size_t n_rows;
	char **names;
	struct tandem_value *values;
};

/*
 * Connects to the local tandemd.  Returns NULL with errno set (ENOTCONN
 * when tandemd is not running, ENOMEM).
 */
struct tandem *tandem_connect(void);

/* Closes the connection and frees t.  NULL is a no-op. */
void tandem_close(struct tandem *t);

/* The message of the last failed call on t ("" if none); valid until the next call. */
const char *tandem_errmsg(const struct tandem *t);

/* After -EROFS: the name of the active node ("" if there is none now). */
const char *tandem_active(const struct tandem *t);

/*
 * Runs stmts[0..n) as one transaction on the active and fills *ret (may be
 * NULL).  Without params, a statement's sql may hold several statements
 * separated by ';'.
 */
int tandem_transaction(
    struct tandem *t, const struct tandem_stmt *stmts, size_t n, struct tandem_commit *ret);

/* One statement as its own transaction. */
int tandem_exec(struct tandem *t, const char *sql, const struct tandem_value *params,
    size_t n_params, struct tandem_commit *ret);

/* Runs one read-only statement on this node and returns its rows (free with tandem_rows_free). */
int tandem_query(struct tandem *t, const char *sql, const struct tandem_value *params,
    size_t n_params, struct tandem_rows *ret);

/* The value at row, col of rows (no bounds check beyond an assert). */
const struct tandem_value *tandem_rows_at(const struct tandem_rows *rows, size_t row, size_t col);

/* Frees what tandem_query put in rows and zeroes it.  NULL is a no-op. */
void tandem_rows_free(struct tandem_rows *rows);

#ifdef __cplusplus
}
#endif

#endif

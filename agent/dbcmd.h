/*
 * dbcmd: the JSON side of the db-exec, db-query and db-hash commands
 * (ctl-proto.h), as pure functions.  It turns request fields into the
 * statements and values of replicate/store.h and a query's rows into
 * reply fields; it knows nothing of the daemon, the loop or the store.
 *
 * Decoded statements and values are copied into one allocation that does
 * not borrow from the request, so they may outlive it (a write waiting in
 * a group commit): free them with dbcmd_params_free or
 * dbcmd_statements_free.
 */
#ifndef TANDEM_DBCMD_H
#define TANDEM_DBCMD_H

#include <jansson.h>
#include <stddef.h>

#include "replicate/store.h"

/*
 * Decodes params (a JSON array of values, or NULL / JSON null for none)
 * into *ret (n values in *ret_n).  A value is null, an integer, a real, a
 * string (UTF-8 text) or {"blob": "<base64>"}.  Returns 0 with *ret set
 * (NULL when there are no values) and owned by the caller (free with
 * dbcmd_params_free); -EINVAL with a one-line message in err (errlen
 * bytes, always NUL-terminated when errlen > 0) naming the bad parameter
 * by its 1-based position, for anything else (booleans, arrays, an object
 * that is not {"blob": string}, bad base64); -ENOMEM.  On failure *ret
 * and *ret_n are untouched.  params is only read.
 */
int dbcmd_params(json_t *params, struct store_value **ret, size_t *ret_n, char *err, size_t errlen);

/* Frees values from dbcmd_params.  NULL is a no-op. */
void dbcmd_params_free(struct store_value *values);

/*
 * Decodes the "statements" of a db-exec request: a non-empty array of
 * objects, each with a non-empty string "sql" and optional "params" (as
 * dbcmd_params; unknown fields are ignored).  Returns 0 with *ret (n
 * statements in *ret_n) owned by the caller: statements, their sql and
 * their parameters are one allocation, freed by dbcmd_statements_free.
 * Returns -EINVAL with a one-line err naming the statement (1-based) and
 * parameter, or -ENOMEM; *ret and *ret_n are then untouched.  request is
 * only read.
 */
int dbcmd_statements(
    json_t *request, struct store_stmt **ret, size_t *ret_n, char *err, size_t errlen);

/* Frees statements from dbcmd_statements.  NULL is a no-op. */
void dbcmd_statements_free(struct store_stmt *stmts);

/*
 * Returns a new object {"columns": [names...], "rows": [[values...]...]}
 * for rows (integers as JSON integers, floats as reals, texts as strings,
 * NULL as null, blobs as {"blob": "<base64>"}); the caller owns it and
 * adds "ok".  Returns NULL with errno set: ENOMEM; ERANGE for an infinite
 * or NaN float and EILSEQ for a text that is not valid UTF-8 (JSON can
 * hold neither; the client may CAST such a column to BLOB).
 */
json_t *dbcmd_rows_json(const struct store_rows *rows);

/*
 * The reply's "code" for an error rc of store_* or replicate_*: -EINVAL
 * "sql", -EPERM "refused", -EROFS "not-active", -ECONNABORTED
 * "unknown-outcome", -EBUSY "busy", -EIO "io", -EMSGSIZE "too-large",
 * anything else "failed".  The string is static.
 */
const char *dbcmd_error_code(int rc);

#endif

/*
 * tandem.c: libtandem, the client of the pair's replicated database.  It
 * owns one libqb IPC connection to the local tandemd (the service of
 * agent/ctl-proto.h, or TANDEM_CTL_SERVICE's), the JSON encoding of the db-exec
 * and db-query requests, the decoding of their replies, and the mapping of
 * the reply's error "code" to the errno values of tandem.h.  It shares
 * nothing with tandemd but the wire format.
 *
 * One request is in flight per connection.  When the connection breaks or
 * a reply does not come in time, the call fails with -ENOTCONN and the
 * connection is dropped: a late reply must never be read as the answer to
 * the next request.  The next call connects again, so an application
 * carries on across a restart of tandemd.
 *
 * A query's rows are one allocation, laid out as the values, the column
 * name pointers, then the bytes of names, texts and blobs; rows->values is
 * its start.  Decoding runs twice over the reply, once to check it and
 * measure, once to fill.
 */
#define _GNU_SOURCE
#include "tandem.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/evp.h>
#include <qb/qbipcc.h>

#include "ctl-proto.h"

#define TANDEM_EXPORT __attribute__((visibility("default")))

/* How long a call waits for tandemd (a sync commit waits for the standby). */
#define TANDEM_TIMEOUT_MS (120 * 1000)

struct tandem {
	/* NULL after a broken connection: the next call connects again. */
	qb_ipcc_connection_t *conn;
	char *service;
	/* CTL_MAX_MSG bytes for the reply. */
	char *buf;
	char errmsg[512];
	char active[256];
};

static int seterr(struct tandem *t, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the message of a failed call; returns rc. */
static int
seterr(struct tandem *t, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

/* Values */

TANDEM_EXPORT struct tandem_value
tandem_int(int64_t i)
{
	struct tandem_value v = {.type = TANDEM_INTEGER, .i = i};

	return v;
}

TANDEM_EXPORT struct tandem_value
tandem_float(double f)
{
	struct tandem_value v = {.type = TANDEM_FLOAT, .f = f};

	return v;
}

TANDEM_EXPORT struct tandem_value
tandem_text(const char *s)
{
	struct tandem_value v = {.type = TANDEM_NULL};

	if (s != NULL) {
		v.type = TANDEM_TEXT;
		v.p = s;
		v.len = strlen(s);
	}
	return v;
}

TANDEM_EXPORT struct tandem_value
tandem_blob(const void *p, size_t len)
{
	struct tandem_value v = {.type = TANDEM_BLOB, .p = p, .len = len};

	return v;
}

TANDEM_EXPORT struct tandem_value
tandem_null(void)
{
	struct tandem_value v = {.type = TANDEM_NULL};

	return v;
}

/* Base64, as tandemd's agent/dbcmd.c reads and writes it */

static bool
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Checks padded base64 (EVP_DecodeBlock skips white space and counts padding as data). */
static int
b64_check(const char *s, size_t len, size_t *ret_len)
{
	size_t i, pad = 0;

	if (len % 4 != 0 || len > INT_MAX)
		return -EPROTO;
	if (len > 0 && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	for (i = 0; i < len - pad; i++) {
		if (!b64_char((unsigned char)s[i]))
			return -EPROTO;
	}
	*ret_len = len / 4 * 3 - pad;
	return 0;
}

static json_t *
b64_json(const void *p, size_t len)
{
	size_t n = (len + 2) / 3 * 4;
	unsigned char *buf;
	json_t *s;

	if (len > INT_MAX / 2)
		return NULL;
	buf = malloc(n + 1);
	if (buf == NULL)
		return NULL;
	if (len > 0)
		(void)EVP_EncodeBlock(buf, p, (int)len);
	s = json_stringn((const char *)buf, n);
	free(buf);
	return s;
}

/* Requests */

/* Returns a new JSON value for parameter v (index i from 0), or NULL with t's message set. */
static json_t *
value_json(struct tandem *t, const struct tandem_value *v, size_t stmt, size_t i, int *ret_rc)
{
	char where[64];
	json_t *j = NULL, *b;

	if (stmt > 0)
		(void)snprintf(where, sizeof(where), "statement %zu, parameter %zu", stmt, i + 1);
	else
		(void)snprintf(where, sizeof(where), "parameter %zu", i + 1);
	*ret_rc = -ENOMEM;
	switch (v->type) {
	case TANDEM_NULL:
		j = json_null();
		break;
	case TANDEM_INTEGER:
		j = json_integer(v->i);
		break;
	case TANDEM_FLOAT:
		if (!isfinite(v->f)) {
			*ret_rc = seterr(
			    t, -EINVAL, "%s: an infinite or NaN float cannot be stored", where);
			return NULL;
		}
		j = json_real(v->f);
		break;
	case TANDEM_TEXT:
		if (v->p == NULL && v->len > 0) {
			*ret_rc = seterr(t, -EINVAL, "%s: a text with no pointer", where);
			return NULL;
		}
		j = json_stringn(v->len > 0 ? v->p : "", v->len);
		if (j == NULL) {
			/* jansson refuses invalid UTF-8; see whether that is why. */
			j = json_stringn_nocheck(v->len > 0 ? v->p : "", v->len);
			if (j != NULL) {
				json_decref(j);
				*ret_rc = seterr(t, -EINVAL,
				    "%s: the text is not valid UTF-8 (pass it as a blob)", where);
				return NULL;
			}
		}
		break;
	case TANDEM_BLOB:
		if (v->p == NULL && v->len > 0) {
			*ret_rc = seterr(t, -EINVAL, "%s: a blob with no pointer", where);
			return NULL;
		}
		b = b64_json(v->p, v->len);
		if (b == NULL)
			break;
		j = json_pack("{s:o}", "blob", b);
		break;
	default:
		*ret_rc = seterr(t, -EINVAL, "%s: unknown value type %d", where, (int)v->type);
		return NULL;
	}
	if (j == NULL)
		(void)seterr(t, -ENOMEM, "out of memory");
	return j;
}

/* Returns the new array of params[0..n), or NULL with *ret_rc and t's message set. */
static json_t *
params_json(struct tandem *t, const struct tandem_value *params, size_t n, size_t stmt, int *ret_rc)
{
	json_t *arr, *v;
	size_t i;

	if (params == NULL && n > 0) {
		*ret_rc = seterr(t, -EINVAL, "%zu parameters but no array of them", n);
		return NULL;
	}
	arr = json_array();
	if (arr == NULL) {
		*ret_rc = seterr(t, -ENOMEM, "out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		v = value_json(t, &params[i], stmt, i, ret_rc);
		if (v == NULL || json_array_append_new(arr, v) < 0) {
			if (v != NULL)
				*ret_rc = seterr(t, -ENOMEM, "out of memory");
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* The connection */

static const char *
service_name(void)
{
	const char *name = getenv("TANDEM_CTL_SERVICE");

	return name != NULL && name[0] != '\0' ? name : CTL_SERVICE_NAME;
}

static int
ipc_connect(struct tandem *t)
{
	int e;

	t->conn = qb_ipcc_connect(t->service, CTL_MAX_MSG);
	if (t->conn != NULL)
		return 0;
	e = errno;
	if (e == ENOMEM)
		return seterr(t, -ENOMEM, "out of memory");
	if (e == EACCES || e == EPERM)
		return seterr(t, -ENOTCONN, "tandemd refused the connection (%s)", strerror(e));
	return seterr(
	    t, -ENOTCONN, "tandemd is not running on this node (connect: %s)", strerror(e));
}

static void
ipc_drop(struct tandem *t)
{
	if (t->conn != NULL)
		qb_ipcc_disconnect(t->conn);
	t->conn = NULL;
}

/* Maps the "code" of an error reply to our errno. */
static int
code_errno(const char *code)
{
	static const struct {
		const char *code;
		int rc;
	} map[] = {
	    {"sql", -EINVAL},
	    {"refused", -EPERM},
	    {"not-active", -EROFS},
	    {"unknown-outcome", -ECONNABORTED},
	    {"busy", -EBUSY},
	    {"io", -EIO},
	    {"too-large", -EMSGSIZE},
	};
	size_t i;

	for (i = 0; code != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(code, map[i].code) == 0)
			return map[i].rc;
	}
	/* "failed", none, or one newer than us: the database could not do it. */
	return -EIO;
}

/*
 * Sends request (borrowed) and waits for the reply.  Returns 0 and sets
 * *ret_reply to the {"ok": true} reply (the caller owns it), or -errno
 * with t's message (and after -EROFS, t->active) set.
 */
static int
roundtrip(struct tandem *t, json_t *request, json_t **ret_reply)
{
	struct qb_ipc_request_header hdr;
	struct qb_ipc_response_header *rhdr;
	struct iovec iov[2];
	json_t *reply = NULL, *e, *active;
	json_error_t jerr;
	char *text, *padded;
	size_t len, pad;
	ssize_t n;
	int ret;

	text = json_dumps(request, JSON_COMPACT);
	if (text == NULL)
		return seterr(t, -ENOMEM, "out of memory");
	/*
	 * Pad with spaces (JSON white space) to a multiple of 8 bytes: libqb
	 * hands the server each message in place in its ring, where chunks
	 * are 4-byte aligned, and the header is declared 8-byte aligned.
	 * Whole multiples of 8 keep every message of a long-lived connection
	 * where the first one was.
	 */
	len = strlen(text) + 1;
	pad = (8 - (sizeof(hdr) + len) % 8) % 8;
	if (pad > 0) {
		padded = realloc(text, len + pad);
		if (padded == NULL) {
			free(text);
			return seterr(t, -ENOMEM, "out of memory");
		}
		text = padded;
		memset(text + len - 1, ' ', pad);
		len += pad;
		text[len - 1] = '\0';
	}
	if (sizeof(hdr) + len > CTL_MAX_MSG) {
		ret = seterr(t, -EMSGSIZE,
		    "the request is %zu bytes, more than the %zu tandemd takes", len,
		    (size_t)CTL_MAX_MSG - sizeof(hdr));
		goto out;
	}
	if (t->conn == NULL) {
		ret = ipc_connect(t);
		if (ret < 0)
			goto out;
	}

	memset(&hdr, 0, sizeof(hdr));
	hdr.id = CTL_MSG_REQUEST;
	hdr.size = (int32_t)(sizeof(hdr) + len);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = text;
	iov[1].iov_len = len;
	n = qb_ipcc_sendv_recv(t->conn, iov, 2, t->buf, CTL_MAX_MSG, TANDEM_TIMEOUT_MS);
	if (n < 0) {
		ipc_drop(t);
		if (n == -ETIMEDOUT)
			ret = seterr(t, -ENOTCONN,
			    "tandemd did not answer within %d s; the outcome is unknown",
			    TANDEM_TIMEOUT_MS / 1000);
		else
			ret = seterr(
			    t, -ENOTCONN, "lost the connection to tandemd (%s)", strerror((int)-n));
		goto out;
	}

	rhdr = (struct qb_ipc_response_header *)(void *)t->buf;
	if ((size_t)n <= sizeof(*rhdr) || rhdr->id != CTL_MSG_REQUEST || rhdr->size != n) {
		ipc_drop(t);
		ret = seterr(t, -EPROTO, "tandemd sent a malformed reply");
		goto out;
	}
	len = (size_t)n - sizeof(*rhdr);
	if (t->buf[n - 1] == '\0')
		len--;
	reply = json_loadb(t->buf + sizeof(*rhdr), len, JSON_ALLOW_NUL, &jerr);
	if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok"))) {
		ret = seterr(
		    t, -EPROTO, "tandemd sent a reply that is not a JSON object with \"ok\"");
		goto out;
	}
	if (json_is_false(json_object_get(reply, "ok"))) {
		e = json_object_get(reply, "error");
		ret = code_errno(json_string_value(json_object_get(reply, "code")));
		(void)seterr(t, ret, "%s", json_is_string(e) ? json_string_value(e) : "failed");
		if (ret == -EROFS) {
			active = json_object_get(reply, "active");
			(void)snprintf(t->active, sizeof(t->active), "%s",
			    json_is_string(active) ? json_string_value(active) : "");
		}
		goto out;
	}
	*ret_reply = reply;
	reply = NULL;
	ret = 0;

out:
	json_decref(reply);
	free(text);
	return ret;
}

/* Lifecycle */

TANDEM_EXPORT struct tandem *
tandem_connect(void)
{
	struct tandem *t;
	int rc;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->service = strdup(service_name());
	t->buf = malloc(CTL_MAX_MSG);
	if (t->service == NULL || t->buf == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = ipc_connect(t);
	if (rc < 0)
		goto fail;
	return t;

fail:
	free(t->buf);
	free(t->service);
	free(t);
	errno = -rc;
	return NULL;
}

TANDEM_EXPORT void
tandem_close(struct tandem *t)
{
	if (t == NULL)
		return;
	ipc_drop(t);
	free(t->buf);
	free(t->service);
	free(t);
}

TANDEM_EXPORT const char *
tandem_errmsg(const struct tandem *t)
{
	return t != NULL ? t->errmsg : "";
}

TANDEM_EXPORT const char *
tandem_active(const struct tandem *t)
{
	return t != NULL ? t->active : "";
}

/* Writes */

static int
get_int(json_t *reply, const char *key, json_int_t min, json_int_t *ret)
{
	json_t *v = json_object_get(reply, key);

	if (!json_is_integer(v) || json_integer_value(v) < min)
		return -EPROTO;
	*ret = json_integer_value(v);
	return 0;
}

TANDEM_EXPORT int
tandem_transaction(
    struct tandem *t, const struct tandem_stmt *stmts, size_t n, struct tandem_commit *ret)
{
	json_t *request = NULL, *list, *params, *reply = NULL;
	json_int_t changes, rowid, epoch, seq;
	size_t i;
	int rc;

	if (t == NULL)
		return -EINVAL;
	if (stmts == NULL || n == 0)
		return seterr(t, -EINVAL, "a transaction needs at least one statement");
	request = json_pack("{s:s, s:[]}", "command", "db-exec", "statements");
	list = json_object_get(request, "statements");
	if (request == NULL) {
		rc = seterr(t, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (stmts[i].sql == NULL) {
			rc = seterr(t, -EINVAL, "statement %zu has no SQL", i + 1);
			goto out;
		}
		params = params_json(t, stmts[i].params, stmts[i].n_params, n > 1 ? i + 1 : 0, &rc);
		if (params == NULL)
			goto out;
		if (json_array_append_new(
		        list, json_pack("{s:s, s:o}", "sql", stmts[i].sql, "params", params)) < 0) {
			rc = seterr(t, -EINVAL, "statement %zu: the SQL is not valid UTF-8", i + 1);
			goto out;
		}
	}
	rc = roundtrip(t, request, &reply);
	if (rc < 0)
		goto out;
	if (get_int(reply, "changes", 0, &changes) < 0 ||
	    get_int(reply, "last_rowid", INT64_MIN, &rowid) < 0 ||
	    get_int(reply, "epoch", 0, &epoch) < 0 || get_int(reply, "seq", 0, &seq) < 0) {
		rc = seterr(t, -EPROTO,
		    "tandemd's reply to db-exec lacks changes, last_rowid, "
		    "epoch or seq");
		goto out;
	}
	if (ret != NULL) {
		ret->changes = changes;
		ret->last_rowid = rowid;
		ret->epoch = (uint64_t)epoch;
		ret->seq = (uint64_t)seq;
	}
	rc = 0;

out:
	json_decref(reply);
	json_decref(request);
	return rc;
}

TANDEM_EXPORT int
tandem_exec(struct tandem *t, const char *sql, const struct tandem_value *params, size_t n_params,
    struct tandem_commit *ret)
{
	struct tandem_stmt st = {.sql = sql, .params = params, .n_params = n_params};

	return tandem_transaction(t, &st, 1, ret);
}

/* Reads */

/* Where a query's rows go; the pointers are NULL while measuring. */
struct rows_arena {
	char *bytes;
	size_t n_bytes;
};

static char *
arena_bytes(struct rows_arena *a, size_t n)
{
	char *p = a->bytes != NULL ? a->bytes + a->n_bytes : NULL;

	a->n_bytes += n;
	return p;
}

/* Decodes one reply value into *out (NULL while measuring). */
static int
value_decode(json_t *v, struct tandem_value *out, struct rows_arena *a)
{
	struct tandem_value val = {.type = TANDEM_NULL};
	json_t *blob;
	const char *s;
	size_t len, n;
	char *p;

	switch (json_typeof(v)) {
	case JSON_NULL:
		break;
	case JSON_INTEGER:
		val.type = TANDEM_INTEGER;
		val.i = json_integer_value(v);
		break;
	case JSON_REAL:
		val.type = TANDEM_FLOAT;
		val.f = json_real_value(v);
		break;
	case JSON_STRING:
		len = json_string_length(v);
		p = arena_bytes(a, len + 1);
		if (p != NULL)
			memcpy(p, json_string_value(v), len + 1);
		val.type = TANDEM_TEXT;
		val.p = p;
		val.len = len;
		break;
	case JSON_OBJECT:
		blob = json_object_get(v, "blob");
		if (!json_is_string(blob))
			return -EPROTO;
		s = json_string_value(blob);
		len = json_string_length(blob);
		if (b64_check(s, len, &n) < 0)
			return -EPROTO;
		p = arena_bytes(a, len / 4 * 3 + 1);
		if (p != NULL && len > 0)
			(void)EVP_DecodeBlock(
			    (unsigned char *)p, (const unsigned char *)s, (int)len);
		val.type = TANDEM_BLOB;
		val.p = p;
		val.len = n;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
	case JSON_ARRAY:
		return -EPROTO;
	}
	if (out != NULL)
		*out = val;
	return 0;
}

/* One pass over columns and rows: measuring when a->bytes is NULL. */
static int
rows_decode(
    json_t *columns, json_t *rows, struct tandem_value *values, char **names, struct rows_arena *a)
{
	size_t n_cols = json_array_size(columns), r, c, len;
	json_t *row, *v;
	char *p;
	int rc;

	json_array_foreach(columns, c, v)
	{
		if (!json_is_string(v))
			return -EPROTO;
		len = json_string_length(v);
		p = arena_bytes(a, len + 1);
		if (p != NULL) {
			memcpy(p, json_string_value(v), len + 1);
			names[c] = p;
		}
	}
	json_array_foreach(rows, r, row)
	{
		if (!json_is_array(row) || json_array_size(row) != n_cols)
			return -EPROTO;
		json_array_foreach(row, c, v)
		{
			rc = value_decode(v, values != NULL ? &values[r * n_cols + c] : NULL, a);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static size_t
align_up(size_t n)
{
	size_t al = alignof(max_align_t);

	return (n + al - 1) / al * al;
}

TANDEM_EXPORT int
tandem_query(struct tandem *t, const char *sql, const struct tandem_value *params, size_t n_params,
    struct tandem_rows *ret)
{
	json_t *request = NULL, *plist, *reply = NULL, *columns, *rows;
	struct rows_arena a = {0};
	size_t n_cols, n_rows, values_size, names_size;
	char *block;
	int rc;

	if (t == NULL)
		return -EINVAL;
	if (sql == NULL || ret == NULL)
		return seterr(t, -EINVAL, "tandem_query needs SQL and somewhere to put the rows");
	plist = params_json(t, params, n_params, 0, &rc);
	if (plist == NULL)
		return rc;
	request = json_pack("{s:s, s:s, s:o}", "command", "db-query", "sql", sql, "params", plist);
	if (request == NULL)
		return seterr(t, -EINVAL, "the SQL is not valid UTF-8");
	rc = roundtrip(t, request, &reply);
	if (rc < 0)
		goto out;
	columns = json_object_get(reply, "columns");
	rows = json_object_get(reply, "rows");
	if (!json_is_array(columns) || !json_is_array(rows) ||
	    rows_decode(columns, rows, NULL, NULL, &a) < 0) {
		rc =
		    seterr(t, -EPROTO, "tandemd's reply to db-query has malformed columns or rows");
		goto out;
	}
	n_cols = json_array_size(columns);
	n_rows = json_array_size(rows);
	values_size = align_up(n_rows * n_cols * sizeof(struct tandem_value));
	names_size = align_up(n_cols * sizeof(char *));
	block = malloc(values_size + names_size + a.n_bytes + 1);
	if (block == NULL) {
		rc = seterr(t, -ENOMEM, "out of memory");
		goto out;
	}
	a.bytes = block + values_size + names_size;
	a.n_bytes = 0;
	rc = rows_decode(columns, rows, (struct tandem_value *)(void *)block,
	    (char **)(void *)(block + values_size), &a);
	assert(rc == 0);
	ret->n_cols = n_cols;
	ret->n_rows = n_rows;
	ret->values = (struct tandem_value *)(void *)block;
	ret->names = (char **)(void *)(block + values_size);

out:
	json_decref(reply);
	json_decref(request);
	return rc;
}

TANDEM_EXPORT const struct tandem_value *
tandem_rows_at(const struct tandem_rows *rows, size_t row, size_t col)
{
	assert(rows != NULL && row < rows->n_rows && col < rows->n_cols);
	return &rows->values[row * rows->n_cols + col];
}

TANDEM_EXPORT void
tandem_rows_free(struct tandem_rows *rows)
{
	if (rows == NULL)
		return;
	/* values is the start of the one allocation (see the file comment). */
	free(rows->values);
	memset(rows, 0, sizeof(*rows));
}

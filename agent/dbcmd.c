/*
 * dbcmd.c: owns the JSON encoding of SQL values, statements and rows in
 * the db-* commands of ctl-proto.h, on the daemon's side (lib/tandem.c
 * holds the client's mirror of it).  Rule 5 at this door: a request with
 * a value of the wrong shape is refused with one line naming it before
 * anything reaches the store.
 *
 * Decoding runs twice over the JSON: once to check it and measure what it
 * needs, once to fill a single allocation laid out as the statements,
 * then every statement's values, then the bytes of sql, texts and blobs.
 * So a decoded request owns its memory, and one free releases it.
 */
#include "dbcmd.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* Where decoding puts things; bytes and values are NULL while measuring. */
struct arena {
	char *bytes;
	size_t n_bytes;
	struct store_value *values;
	size_t n_values;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Base64 */

static bool
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* The '=' that end padded base64 s (len bytes): 0, 1 or 2. */
static size_t
b64_pad(const char *s, size_t len)
{
	size_t pad = 0;

	if (len > 0 && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	return pad;
}

/*
 * Checks that s (len bytes) is canonical padded base64 and returns the
 * decoded length in *ret_len (EVP_DecodeBlock needs len / 4 * 3 bytes of
 * room, padding included).  EVP_DecodeBlock itself skips white space and
 * counts padding as data, hence the check.
 */
static int
b64_check(const char *s, size_t len, size_t *ret_len)
{
	size_t pad, i;
	bool bad = false;

	if (len % 4 != 0 || len > INT_MAX)
		return -EINVAL;
	pad = b64_pad(s, len);
	/* No early exit: a loop the compiler can vectorize (blobs of 100s of KiB). */
	for (i = 0; i < len - pad; i++)
		bad |= !b64_char((unsigned char)s[i]);
	if (bad)
		return -EINVAL;
	*ret_len = len / 4 * 3 - pad;
	return 0;
}

/* Decodes checked base64 s into out (len / 4 * 3 bytes of room). */
static void
b64_decode(const char *s, size_t len, unsigned char *out)
{
	if (len > 0)
		(void)EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
}

/* Returns a new JSON string of p (len bytes) in base64, or NULL. */
static json_t *
b64_json(const void *p, size_t len)
{
	size_t n = (len + 2) / 3 * 4;
	unsigned char *buf;
	json_t *s;

	if (len > INT_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	buf = malloc(n + 1);
	if (buf == NULL)
		return NULL;
	if (len > 0)
		(void)EVP_EncodeBlock(buf, p, (int)len);
	s = json_stringn((const char *)buf, n);
	free(buf);
	if (s == NULL)
		errno = ENOMEM;
	return s;
}

/* Decoding */

/* Reserves n bytes (measuring) or returns where they go (filling). */
static char *
arena_bytes(struct arena *a, size_t n)
{
	char *p = a->bytes != NULL ? a->bytes + a->n_bytes : NULL;

	a->n_bytes += n;
	return p;
}

/*
 * Decodes v into *out (NULL while measuring).  where names the value for
 * errors ("parameter 2" or "statement 1, parameter 2").
 */
static int
value_decode(json_t *v, struct store_value *out, struct arena *a, const char *where, char *err,
    size_t errlen)
{
	struct store_value val;
	json_t *blob;
	const char *s;
	size_t len, n;
	char *p;

	memset(&val, 0, sizeof(val));
	switch (json_typeof(v)) {
	case JSON_NULL:
		val.type = STORE_NULL;
		break;
	case JSON_INTEGER:
		val.type = STORE_INTEGER;
		val.i = json_integer_value(v);
		break;
	case JSON_REAL:
		val.type = STORE_FLOAT;
		val.f = json_real_value(v);
		break;
	case JSON_STRING:
		s = json_string_value(v);
		len = json_string_length(v);
		p = arena_bytes(a, len + 1);
		if (p != NULL) {
			memcpy(p, s, len);
			p[len] = '\0';
		}
		val.type = STORE_TEXT;
		val.p = p;
		val.len = len;
		break;
	case JSON_OBJECT:
		blob = json_object_get(v, "blob");
		if (!json_is_string(blob) || json_object_size(v) != 1) {
			seterr(err, errlen,
			    "%s: an object must be {\"blob\": \"<base64>\"} and nothing else",
			    where);
			return -EINVAL;
		}
		s = json_string_value(blob);
		len = json_string_length(blob);
		/* Checked while measuring; the same text again while filling. */
		if (a->bytes != NULL)
			n = len / 4 * 3 - b64_pad(s, len);
		else if (b64_check(s, len, &n) < 0) {
			seterr(err, errlen, "%s: the blob is not valid base64", where);
			return -EINVAL;
		}
		/* One more byte, so that an empty blob still has a pointer. */
		p = arena_bytes(a, len / 4 * 3 + 1);
		if (p != NULL)
			b64_decode(s, len, (unsigned char *)p);
		val.type = STORE_BLOB;
		val.p = p;
		val.len = n;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		seterr(err, errlen, "%s: %s is not an SQL value (use 1 or 0)", where,
		    json_is_true(v) ? "true" : "false");
		return -EINVAL;
	case JSON_ARRAY:
		seterr(err, errlen, "%s: an array is not an SQL value", where);
		return -EINVAL;
	}
	if (out != NULL)
		*out = val;
	return 0;
}

/*
 * Decodes the array params (NULL or JSON null: none) into the arena's
 * values; *ret_first and *ret_n say where they went (filling only).
 * prefix starts each error ("" or "statement 2, ").
 */
static int
params_decode(json_t *params, struct arena *a, const char *prefix, struct store_value **ret_first,
    size_t *ret_n, char *err, size_t errlen)
{
	struct store_value *first;
	char where[64];
	json_t *v;
	size_t i;
	int ret;

	if (params == NULL || json_is_null(params)) {
		*ret_first = NULL;
		*ret_n = 0;
		return 0;
	}
	if (!json_is_array(params)) {
		seterr(err, errlen, "%sparams must be an array of values", prefix);
		return -EINVAL;
	}
	first = a->values != NULL ? a->values + a->n_values : NULL;
	json_array_foreach(params, i, v)
	{
		(void)snprintf(where, sizeof(where), "%sparameter %zu", prefix, i + 1);
		ret = value_decode(v, first != NULL ? &first[i] : NULL, a, where, err, errlen);
		if (ret < 0)
			return ret;
	}
	a->n_values += json_array_size(params);
	*ret_first = json_array_size(params) > 0 ? first : NULL;
	*ret_n = json_array_size(params);
	return 0;
}

/* Rounds n up for the alignment of what follows it in one allocation. */
static size_t
align_up(size_t n)
{
	size_t al = alignof(max_align_t);

	return (n + al - 1) / al * al;
}

int
dbcmd_params(json_t *params, struct store_value **ret, size_t *ret_n, char *err, size_t errlen)
{
	struct arena a = {0};
	struct store_value *first;
	size_t n, values_size;
	void *block;
	int rc;

	/* Measure and check. */
	rc = params_decode(params, &a, "", &first, &n, err, errlen);
	if (rc < 0)
		return rc;
	if (a.n_values == 0) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	values_size = align_up(a.n_values * sizeof(struct store_value));
	block = malloc(values_size + a.n_bytes + 1);
	if (block == NULL) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	a.values = block;
	a.bytes = (char *)block + values_size;
	a.n_values = 0;
	a.n_bytes = 0;
	rc = params_decode(params, &a, "", &first, &n, err, errlen);
	assert(rc == 0);
	*ret = first;
	*ret_n = n;
	return 0;
}

void
dbcmd_params_free(struct store_value *values)
{
	free(values);
}

/* One pass over the statements: measuring when a->bytes is NULL. */
static int
statements_decode(json_t *stmts, struct store_stmt *out, struct arena *a, char *err, size_t errlen)
{
	struct store_value *first;
	char prefix[48];
	json_t *st, *sql;
	size_t i, n, len;
	char *p;
	int rc;

	json_array_foreach(stmts, i, st)
	{
		(void)snprintf(prefix, sizeof(prefix), "statement %zu, ", i + 1);
		if (!json_is_object(st)) {
			seterr(err, errlen,
			    "statement %zu: not an object {\"sql\": ..., \"params\": [...]}",
			    i + 1);
			return -EINVAL;
		}
		sql = json_object_get(st, "sql");
		if (!json_is_string(sql) || json_string_length(sql) == 0) {
			seterr(err, errlen, "statement %zu: \"sql\" must be a non-empty string",
			    i + 1);
			return -EINVAL;
		}
		len = json_string_length(sql);
		if (memchr(json_string_value(sql), '\0', len) != NULL) {
			seterr(err, errlen, "statement %zu: the SQL holds a NUL character", i + 1);
			return -EINVAL;
		}
		p = arena_bytes(a, len + 1);
		if (p != NULL)
			memcpy(p, json_string_value(sql), len + 1);
		rc = params_decode(
		    json_object_get(st, "params"), a, prefix, &first, &n, err, errlen);
		if (rc < 0)
			return rc;
		if (out != NULL) {
			out[i].sql = p;
			out[i].params = first;
			out[i].n_params = n;
		}
	}
	return 0;
}

int
dbcmd_statements(json_t *request, struct store_stmt **ret, size_t *ret_n, char *err, size_t errlen)
{
	json_t *stmts = json_object_get(request, "statements");
	struct arena a = {0};
	size_t n, stmts_size, values_size;
	char *block;
	int rc;

	if (!json_is_array(stmts) || json_array_size(stmts) == 0) {
		seterr(err, errlen, "\"statements\" must be a non-empty array");
		return -EINVAL;
	}
	n = json_array_size(stmts);
	rc = statements_decode(stmts, NULL, &a, err, errlen);
	if (rc < 0)
		return rc;
	stmts_size = align_up(n * sizeof(struct store_stmt));
	values_size = align_up(a.n_values * sizeof(struct store_value));
	block = malloc(stmts_size + values_size + a.n_bytes);
	if (block == NULL) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	a.values = (struct store_value *)(void *)(block + stmts_size);
	a.bytes = block + stmts_size + values_size;
	a.n_values = 0;
	a.n_bytes = 0;
	rc = statements_decode(stmts, (struct store_stmt *)(void *)block, &a, err, errlen);
	assert(rc == 0);
	*ret = (struct store_stmt *)(void *)block;
	*ret_n = n;
	return 0;
}

void
dbcmd_statements_free(struct store_stmt *stmts)
{
	free(stmts);
}

/* Encoding */

static json_t *
value_json(const struct store_value *v)
{
	json_t *j, *b;

	switch (v->type) {
	case STORE_NULL:
		return json_null();
	case STORE_INTEGER:
		j = json_integer(v->i);
		break;
	case STORE_FLOAT:
		if (!isfinite(v->f)) {
			errno = ERANGE;
			return NULL;
		}
		j = json_real(v->f);
		break;
	case STORE_TEXT:
		j = json_stringn(v->len > 0 ? v->p : "", v->len);
		if (j == NULL) {
			/* jansson refuses invalid UTF-8; memory is the other reason. */
			j = json_stringn_nocheck(v->len > 0 ? v->p : "", v->len);
			errno = j != NULL ? EILSEQ : ENOMEM;
			json_decref(j);
			return NULL;
		}
		return j;
	case STORE_BLOB:
		b = b64_json(v->p, v->len);
		if (b == NULL)
			return NULL;
		j = json_object();
		if (j == NULL || json_object_set_new(j, "blob", b) < 0) {
			json_decref(j);
			errno = ENOMEM;
			return NULL;
		}
		return j;
	default:
		errno = EINVAL;
		return NULL;
	}
	if (j == NULL)
		errno = ENOMEM;
	return j;
}

json_t *
dbcmd_rows_json(const struct store_rows *rows)
{
	json_t *obj, *columns, *list, *row, *v;
	size_t r, c;

	obj = json_object();
	columns = json_array();
	list = json_array();
	if (obj == NULL || columns == NULL || list == NULL ||
	    json_object_set(obj, "columns", columns) < 0 || json_object_set(obj, "rows", list) < 0)
		goto nomem;
	for (c = 0; c < rows->n_cols; c++) {
		v = json_string(rows->names[c] != NULL ? rows->names[c] : "");
		if (v == NULL) {
			/* A column name that is not UTF-8. */
			v = json_string("?");
		}
		if (json_array_append_new(columns, v) < 0)
			goto nomem;
	}
	for (r = 0; r < rows->n_rows; r++) {
		row = json_array();
		if (row == NULL || json_array_append_new(list, row) < 0)
			goto nomem;
		for (c = 0; c < rows->n_cols; c++) {
			v = value_json(&rows->values[r * rows->n_cols + c]);
			if (v == NULL)
				goto fail;
			if (json_array_append_new(row, v) < 0)
				goto nomem;
		}
	}
	json_decref(columns);
	json_decref(list);
	return obj;

nomem:
	errno = ENOMEM;
fail:
	json_decref(columns);
	json_decref(list);
	json_decref(obj);
	return NULL;
}

const char *
dbcmd_error_code(int rc)
{
	switch (rc) {
	case -EINVAL:
		return "sql";
	case -EPERM:
		return "refused";
	case -EROFS:
		return "not-active";
	case -ECONNABORTED:
		return "unknown-outcome";
	case -EBUSY:
		return "busy";
	case -EIO:
		return "io";
	case -EMSGSIZE:
		return "too-large";
	default:
		return "failed";
	}
}

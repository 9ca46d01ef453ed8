/*
 * test-dbcmd.c: the db-* JSON codec (agent/dbcmd.c): every value type in
 * and out, every refusal naming what is wrong, decoded requests that
 * outlive their JSON, and the error codes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbcmd.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

static json_t *
load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

	if (j == NULL)
		fail_msg("bad test JSON %s: %s", text, err.text);
	return j;
}

/* params */

static void
test_params_none(void **state)
{
	struct store_value *v = (void *)1;
	size_t n = 99;
	char err[128] = "";
	json_t *j;

	assert_int_equal(dbcmd_params(NULL, &v, &n, err, sizeof(err)), 0);
	assert_null(v);
	assert_int_equal(n, 0);

	j = json_null();
	n = 99;
	assert_int_equal(dbcmd_params(j, &v, &n, err, sizeof(err)), 0);
	assert_null(v);
	assert_int_equal(n, 0);

	j = load("[]");
	n = 99;
	assert_int_equal(dbcmd_params(j, &v, &n, err, sizeof(err)), 0);
	assert_null(v);
	assert_int_equal(n, 0);
	json_decref(j);
	dbcmd_params_free(NULL);
}

static void
test_params_types(void **state)
{
	static const unsigned char bytes[] = {0x00, 0x01, 0x02, 0xff};
	json_t *j = load("[null, 42, -9223372036854775808, 2.5, \"h\\u00e9llo\", \"\","
	                 " {\"blob\": \"AAEC/w==\"}, {\"blob\": \"\"}, \"a\\u0000b\","
	                 " {\"blob\": \"YWI=\"}, 1e3]");
	struct store_value *v = NULL;
	size_t n = 0;
	char err[128] = "";

	assert_int_equal(dbcmd_params(j, &v, &n, err, sizeof(err)), 0);
	/* The values do not borrow from the JSON. */
	json_decref(j);
	assert_int_equal(n, 11);
	assert_int_equal(v[0].type, STORE_NULL);
	assert_int_equal(v[1].type, STORE_INTEGER);
	assert_int_equal(v[1].i, 42);
	assert_int_equal(v[2].type, STORE_INTEGER);
	assert_true(v[2].i == INT64_MIN);
	assert_int_equal(v[3].type, STORE_FLOAT);
	assert_true(v[3].f == 2.5);
	assert_int_equal(v[4].type, STORE_TEXT);
	assert_int_equal(v[4].len, 6);
	assert_string_equal(v[4].p, "h\xc3\xa9llo");
	assert_int_equal(v[5].type, STORE_TEXT);
	assert_int_equal(v[5].len, 0);
	assert_non_null(v[5].p);
	assert_int_equal(v[6].type, STORE_BLOB);
	assert_int_equal(v[6].len, 4);
	assert_memory_equal(v[6].p, bytes, 4);
	/* An empty blob still has a pointer: SQLite binds a NULL pointer as NULL. */
	assert_int_equal(v[7].type, STORE_BLOB);
	assert_int_equal(v[7].len, 0);
	assert_non_null(v[7].p);
	assert_int_equal(v[8].type, STORE_TEXT);
	assert_int_equal(v[8].len, 3);
	assert_memory_equal(v[8].p, "a\0b", 4);
	assert_int_equal(v[9].type, STORE_BLOB);
	assert_int_equal(v[9].len, 2);
	assert_memory_equal(v[9].p, "ab", 2);
	assert_int_equal(v[10].type, STORE_FLOAT);
	assert_true(v[10].f == 1000.0);
	dbcmd_params_free(v);
}

static void
test_params_bad(void **state)
{
	static const struct {
		const char *json;
		const char *err;
	} cases[] = {
	    {"{\"a\": 1}", "params must be an array of values"},
	    {"\"x\"", "params must be an array of values"},
	    {"[1, {\"x\": 1}]", "parameter 2: an object must be {\"blob\": \"<base64>\"}"},
	    {"[{}]", "parameter 1: an object must be"},
	    {"[{\"blob\": 5}]", "parameter 1: an object must be"},
	    {"[{\"blob\": \"AAEC\", \"type\": \"x\"}]", "parameter 1: an object must be"},
	    {"[[1]]", "parameter 1: an array is not an SQL value"},
	    {"[1, 2, true]", "parameter 3: true is not an SQL value (use 1 or 0)"},
	    {"[false]", "parameter 1: false is not an SQL value"},
	    {"[1, 2, {\"blob\": \"abc\"}]", "parameter 3: the blob is not valid base64"},
	    {"[{\"blob\": \"ab!c\"}]", "parameter 1: the blob is not valid base64"},
	    {"[{\"blob\": \"a===\"}]", "parameter 1: the blob is not valid base64"},
	    {"[{\"blob\": \"AA=A\"}]", "parameter 1: the blob is not valid base64"},
	    {"[{\"blob\": \"AAEC \"}]", "parameter 1: the blob is not valid base64"},
	    {"[{\"blob\": \" AAE\"}]", "parameter 1: the blob is not valid base64"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = load(cases[i].json);
		struct store_value *v = (void *)1;
		size_t n = 99;
		char err[160] = "";

		assert_int_equal(dbcmd_params(j, &v, &n, err, sizeof(err)), -EINVAL);
		if (strstr(err, cases[i].err) != err)
			fail_msg(
			    "%s: got \"%s\", want \"%s...\"", cases[i].json, err, cases[i].err);
		/* Untouched on failure. */
		assert_ptr_equal(v, (void *)1);
		assert_int_equal(n, 99);
		json_decref(j);
	}
}

static void
test_params_small_err(void **state)
{
	json_t *j = load("[true]");
	struct store_value *v = NULL;
	size_t n = 0;
	char err[8];

	assert_int_equal(dbcmd_params(j, &v, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "paramet");
	assert_int_equal(dbcmd_params(j, &v, &n, NULL, 0), -EINVAL);
	json_decref(j);
}

/* statements */

static void
test_statements(void **state)
{
	json_t *j = load("{\"command\": \"db-exec\", \"statements\": ["
	                 "{\"sql\": \"CREATE TABLE t (k INTEGER PRIMARY KEY, v)\"},"
	                 "{\"sql\": \"INSERT INTO t VALUES (?, ?)\", \"params\": [1, \"one\"],"
	                 " \"comment\": \"unknown fields are ignored\"},"
	                 "{\"sql\": \"INSERT INTO t VALUES (?, ?)\", \"params\": null},"
	                 "{\"sql\": \"INSERT INTO t VALUES (?, ?)\","
	                 " \"params\": [2.5, {\"blob\": \"/w==\"}]}]}");
	struct store_stmt *st = NULL;
	size_t n = 0;
	char err[128] = "";

	assert_int_equal(dbcmd_statements(j, &st, &n, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(n, 4);
	assert_string_equal(st[0].sql, "CREATE TABLE t (k INTEGER PRIMARY KEY, v)");
	assert_int_equal(st[0].n_params, 0);
	assert_null(st[0].params);
	assert_string_equal(st[1].sql, "INSERT INTO t VALUES (?, ?)");
	assert_int_equal(st[1].n_params, 2);
	assert_int_equal(st[1].params[0].type, STORE_INTEGER);
	assert_int_equal(st[1].params[0].i, 1);
	assert_int_equal(st[1].params[1].type, STORE_TEXT);
	assert_string_equal(st[1].params[1].p, "one");
	assert_int_equal(st[2].n_params, 0);
	assert_int_equal(st[3].n_params, 2);
	assert_int_equal(st[3].params[0].type, STORE_FLOAT);
	assert_true(st[3].params[0].f == 2.5);
	assert_int_equal(st[3].params[1].type, STORE_BLOB);
	assert_int_equal(st[3].params[1].len, 1);
	assert_int_equal(((const unsigned char *)st[3].params[1].p)[0], 0xff);
	dbcmd_statements_free(st);
	dbcmd_statements_free(NULL);
}

static void
test_statements_bad(void **state)
{
	static const struct {
		const char *json;
		const char *err;
	} cases[] = {
	    {"{\"command\": \"db-exec\"}", "\"statements\" must be a non-empty array"},
	    {"{\"statements\": []}", "\"statements\" must be a non-empty array"},
	    {"{\"statements\": {\"sql\": \"x\"}}", "\"statements\" must be a non-empty array"},
	    {"{\"statements\": \"SELECT 1\"}", "\"statements\" must be a non-empty array"},
	    {"{\"statements\": [{\"sql\": \"x\"}, 1]}", "statement 2: not an object"},
	    {"{\"statements\": [{\"params\": []}]}",
	        "statement 1: \"sql\" must be a non-empty string"},
	    {"{\"statements\": [{\"sql\": \"\"}]}",
	        "statement 1: \"sql\" must be a non-empty string"},
	    {"{\"statements\": [{\"sql\": 5}]}", "statement 1: \"sql\" must be a non-empty string"},
	    {"{\"statements\": [{\"sql\": \"a\\u0000b\"}]}",
	        "statement 1: the SQL holds a NUL character"},
	    {"{\"statements\": [{\"sql\": \"x\"}, {\"sql\": \"y\", \"params\": [1, true]}]}",
	        "statement 2, parameter 2: true is not an SQL value"},
	    {"{\"statements\": [{\"sql\": \"x\", \"params\": {}}]}",
	        "statement 1, params must be an array of values"},
	    {"{\"statements\": [{\"sql\": \"x\", \"params\": [{\"blob\": \"=\"}]}]}",
	        "statement 1, parameter 1: the blob is not valid base64"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = load(cases[i].json);
		struct store_stmt *st = (void *)1;
		size_t n = 99;
		char err[160] = "";

		assert_int_equal(dbcmd_statements(j, &st, &n, err, sizeof(err)), -EINVAL);
		if (strstr(err, cases[i].err) != err)
			fail_msg(
			    "%s: got \"%s\", want \"%s...\"", cases[i].json, err, cases[i].err);
		assert_ptr_equal(st, (void *)1);
		assert_int_equal(n, 99);
		json_decref(j);
	}
}

/* rows */

static void
check_rows_json(const struct store_rows *rows, const char *want)
{
	json_t *j = dbcmd_rows_json(rows);
	char *text;

	assert_non_null(j);
	text = json_dumps(j, JSON_COMPACT);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
	json_decref(j);
}

static void
test_rows_json(void **state)
{
	static const unsigned char bytes[] = {0x00, 0x01, 0x02, 0xff};
	static char k[] = "k", v[] = "v", w[] = "w";
	char *names[] = {k, v, w};
	struct store_value values[] = {
	    {.type = STORE_INTEGER, .i = 1},
	    {.type = STORE_TEXT, .p = "a", .len = 1},
	    {.type = STORE_NULL},
	    {.type = STORE_INTEGER, .i = INT64_MIN},
	    {.type = STORE_FLOAT, .f = 2.5},
	    {.type = STORE_BLOB, .p = bytes, .len = 4},
	    {.type = STORE_FLOAT, .f = 3.0},
	    {.type = STORE_BLOB, .p = NULL, .len = 0},
	    {.type = STORE_TEXT, .p = "x\0y", .len = 3},
	};
	struct store_rows rows = {.n_cols = 3, .n_rows = 3, .names = names, .values = values};
	struct store_rows empty = {.n_cols = 3, .n_rows = 0, .names = names, .values = NULL};
	struct store_rows none = {0};

	check_rows_json(&rows, "{\"columns\":[\"k\",\"v\",\"w\"],\"rows\":[[1,\"a\",null],"
	                       "[-9223372036854775808,2.5,{\"blob\":\"AAEC/w==\"}],"
	                       "[3.0,{\"blob\":\"\"},\"x\\u0000y\"]]}");
	check_rows_json(&empty, "{\"columns\":[\"k\",\"v\",\"w\"],\"rows\":[]}");
	check_rows_json(&none, "{\"columns\":[],\"rows\":[]}");
}

static void
test_rows_json_unrepresentable(void **state)
{
	static char v[] = "v";
	char *names[] = {v};
	struct store_value inf = {.type = STORE_FLOAT, .f = INFINITY};
	struct store_value nan_ = {.type = STORE_FLOAT, .f = NAN};
	struct store_value bad = {.type = STORE_TEXT, .p = "\xff\xfe", .len = 2};
	struct store_rows rows = {.n_cols = 1, .n_rows = 1, .names = names};

	rows.values = &inf;
	errno = 0;
	assert_null(dbcmd_rows_json(&rows));
	assert_int_equal(errno, ERANGE);
	rows.values = &nan_;
	errno = 0;
	assert_null(dbcmd_rows_json(&rows));
	assert_int_equal(errno, ERANGE);
	rows.values = &bad;
	errno = 0;
	assert_null(dbcmd_rows_json(&rows));
	assert_int_equal(errno, EILSEQ);
}

/* Every value decoded from params encodes back to the same JSON. */
static void
test_round_trip(void **state)
{
	const char *text = "[null,42,2.5,\"h\\u00e9\",{\"blob\":\"AAEC/w==\"},{\"blob\":\"\"}]";
	json_t *j = load(text), *out;
	struct store_value *v = NULL;
	static char name[6][2] = {"a", "b", "c", "d", "e", "f"};
	char *names[] = {name[0], name[1], name[2], name[3], name[4], name[5]};
	struct store_rows rows = {.n_cols = 6, .n_rows = 1, .names = names};
	size_t n = 0;
	char err[128];

	assert_int_equal(dbcmd_params(j, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 6);
	rows.values = v;
	out = dbcmd_rows_json(&rows);
	assert_non_null(out);
	assert_true(json_equal(json_array_get(json_object_get(out, "rows"), 0), j));
	json_decref(out);
	json_decref(j);
	dbcmd_params_free(v);
}

/* error codes */

static void
test_error_code(void **state)
{
	assert_string_equal(dbcmd_error_code(-EINVAL), "sql");
	assert_string_equal(dbcmd_error_code(-EPERM), "refused");
	assert_string_equal(dbcmd_error_code(-EROFS), "not-active");
	assert_string_equal(dbcmd_error_code(-ECONNABORTED), "unknown-outcome");
	assert_string_equal(dbcmd_error_code(-EBUSY), "busy");
	assert_string_equal(dbcmd_error_code(-EIO), "io");
	assert_string_equal(dbcmd_error_code(-EMSGSIZE), "too-large");
	assert_string_equal(dbcmd_error_code(-ENOMEM), "failed");
	assert_string_equal(dbcmd_error_code(-ESTALE), "failed");
	assert_string_equal(dbcmd_error_code(0), "failed");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_params_none),
	    cmocka_unit_test(test_params_types),
	    cmocka_unit_test(test_params_bad),
	    cmocka_unit_test(test_params_small_err),
	    cmocka_unit_test(test_statements),
	    cmocka_unit_test(test_statements_bad),
	    cmocka_unit_test(test_rows_json),
	    cmocka_unit_test(test_rows_json_unrepresentable),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_error_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

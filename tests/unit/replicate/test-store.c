/*
 * test-store: the real store.c on real files.  Each test captures
 * transactions on database A (the active) and applies the frames on
 * database B (the standby), then compares content hashes, positions, and
 * that every refused input changed nothing.  SQLite is used directly only
 * to prepare a diverged standby behind the store's back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "replicate/store.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

static char tmpdir[] = "/tmp/tandem-store-XXXXXX";
static int counter;

struct pair {
	char pa[128], pb[128];
	struct store *a, *b;
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
group_setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	char *err = NULL;

	assert_non_null(p);
	counter++;
	(void)snprintf(p->pa, sizeof(p->pa), "%s/a%d.db", tmpdir, counter);
	(void)snprintf(p->pb, sizeof(p->pb), "%s/b%d.db", tmpdir, counter);
	p->a = store_open(p->pa, &err);
	assert_null(err);
	assert_non_null(p->a);
	p->b = store_open(p->pb, &err);
	assert_null(err);
	assert_non_null(p->b);
	*state = p;
	return 0;
}

static int
teardown(void **state)
{
	struct pair *p = *state;

	store_close(p->a);
	store_close(p->b);
	free(p);
	return 0;
}

/* Runs one SQL text (no parameters) and expects success. */
static void
exec_ok(struct store *s, const char *sql, struct store_frame *f)
{
	struct store_stmt st = {.sql = sql};
	int rc = store_exec(s, &st, 1, f);

	if (rc != 0)
		fail_msg("exec '%s': %d %s", sql, rc, store_errmsg(s));
}

/* Runs sql on A, applies the frame on B, and checks both agree. */
static void
ship(struct pair *p, const char *sql)
{
	struct store_frame f;
	uint64_t ha, hb, ea, sa, eb, sb;
	int rc;

	exec_ok(p->a, sql, &f);
	rc = store_apply(p->b, &f);
	if (rc != 0)
		fail_msg("apply '%s': %d %s", sql, rc, store_errmsg(p->b));
	store_frame_clear(&f);
	assert_int_equal(store_content_hash(p->a, &ha), 0);
	assert_int_equal(store_content_hash(p->b, &hb), 0);
	assert_true(ha == hb);
	store_position(p->a, &ea, &sa);
	store_position(p->b, &eb, &sb);
	assert_true(ea == eb && sa == sb);
}

static uint64_t
hash_of(struct store *s)
{
	uint64_t h = 0;

	assert_int_equal(store_content_hash(s, &h), 0);
	return h;
}

static uint64_t
seq_of(struct store *s)
{
	uint64_t seq;

	store_position(s, NULL, &seq);
	return seq;
}

/* The single integer a query returns. */
static int64_t
query_int(struct store *s, const char *sql)
{
	struct store_rows r;
	int64_t v;

	if (store_query(s, sql, NULL, 0, &r) != 0)
		fail_msg("query '%s': %s", sql, store_errmsg(s));
	assert_int_equal(r.n_rows, 1);
	assert_int_equal(r.values[0].type, STORE_INTEGER);
	v = r.values[0].i;
	store_rows_free(&r);
	return v;
}

static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void
test_dml(void **state)
{
	struct pair *p = *state;
	static const unsigned char blob[] = {0, 1, 2, 0xff};
	const struct store_value vals[] = {
	    {.type = STORE_INTEGER, .i = 7},
	    {.type = STORE_TEXT, .p = "seven", .len = 5},
	    {.type = STORE_BLOB, .p = blob, .len = sizeof(blob)},
	    {.type = STORE_FLOAT, .f = 7.5},
	};
	const struct store_value nulls[] = {
	    {.type = STORE_INTEGER, .i = 8},
	    {.type = STORE_NULL},
	    {.type = STORE_NULL},
	    {.type = STORE_NULL},
	};
	struct store_stmt ins[] = {
	    {.sql = "INSERT INTO kv VALUES (?, ?, ?, ?)", .params = vals, .n_params = 4},
	    {.sql = "INSERT INTO kv VALUES (?1, ?2, ?3, ?4)", .params = nulls, .n_params = 4},
	};
	struct store_frame f;

	ship(p, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT, b BLOB, d REAL)");
	assert_int_equal(store_exec(p->a, ins, 2, &f), 0);
	assert_int_equal(f.changes, 2);
	assert_int_equal(f.last_rowid, 8);
	assert_int_equal(f.n_parts, 1);
	assert_int_equal(f.parts[0].type, STORE_PART_CHANGESET);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));

	ship(p, "UPDATE kv SET v = 'eight' WHERE k = 8");
	ship(p, "DELETE FROM kv WHERE k = 7");
	ship(p, "INSERT INTO kv(k, v) VALUES (1, 'a'), (2, 'b'), (3, 'c');"
	        "UPDATE kv SET k = 30 WHERE k = 3; DELETE FROM kv WHERE k = 1");
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM kv"), 3);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM kv WHERE k = 30"), 1);
	assert_int_equal(seq_of(p->b), 5);

	/* DELETE without WHERE must be captured row by row (no truncate shortcut). */
	ship(p, "DELETE FROM kv");
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM kv"), 0);
}

static void
test_multi_statement(void **state)
{
	struct pair *p = *state;
	struct store_stmt sts[] = {
	    {.sql = "INSERT INTO t VALUES (1, 'x')"},
	    {.sql = "INSERT INTO t VALUES (2, 'y'); INSERT INTO t VALUES (3, 'z')"},
	    {.sql = "UPDATE t SET v = 'w' WHERE k = 1; SELECT * FROM t"},
	};
	struct store_frame f;
	uint64_t seq;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	seq = seq_of(p->a);
	assert_int_equal(store_exec(p->a, sts, 3, &f), 0);
	assert_true(f.seq == seq + 1);
	assert_int_equal(f.n_parts, 1);
	assert_int_equal(f.changes, 4);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t WHERE v = 'w'"), 1);
}

static void
test_empty_transaction(void **state)
{
	struct pair *p = *state;
	struct store_frame f;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY)");
	assert_int_equal(store_exec(p->a, NULL, 0, &f), 0);
	assert_int_equal(f.n_parts, 0);
	assert_true(f.schema_before == f.schema_after);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);

	exec_ok(p->a, "UPDATE t SET k = 2 WHERE k = 1", &f);
	assert_int_equal(f.n_parts, 0);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);

	/* Insert then delete in one transaction: the net effect is nothing. */
	exec_ok(p->a, "INSERT INTO t VALUES (1); DELETE FROM t", &f);
	assert_int_equal(f.n_parts, 0);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_int_equal(seq_of(p->b), 4);
	assert_true(hash_of(p->a) == hash_of(p->b));
}

static void
test_ddl_in_order(void **state)
{
	struct pair *p = *state;
	struct store_frame f;

	exec_ok(p->a,
	    "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
	    "INSERT INTO t VALUES (1, 'one'), (2, 'two')",
	    &f);
	assert_int_equal(f.n_parts, 2);
	assert_int_equal(f.parts[0].type, STORE_PART_DDL);
	assert_string_equal(f.parts[0].data, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);");
	assert_int_equal(f.parts[1].type, STORE_PART_CHANGESET);
	assert_true(f.schema_before != f.schema_after);
	assert_true(f.schema_after == store_schema_hash(p->a));
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_true(store_schema_hash(p->a) == store_schema_hash(p->b));

	/* Data on t, then t altered, then data on the new column: three parts. */
	exec_ok(p->a,
	    "INSERT INTO t VALUES (3, 'three');"
	    "ALTER TABLE t ADD COLUMN n INTEGER;"
	    "UPDATE t SET n = k * 10;"
	    "CREATE INDEX t_n ON t(n)",
	    &f);
	assert_int_equal(f.n_parts, 4);
	assert_int_equal(f.parts[0].type, STORE_PART_CHANGESET);
	assert_int_equal(f.parts[1].type, STORE_PART_DDL);
	assert_int_equal(f.parts[2].type, STORE_PART_CHANGESET);
	assert_int_equal(f.parts[3].type, STORE_PART_DDL);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_int_equal(query_int(p->b, "SELECT sum(n) FROM t"), 60);
	assert_int_equal(
	    query_int(p->b, "SELECT count(*) FROM sqlite_schema WHERE name = 't_n'"), 1);

	ship(p, "ALTER TABLE t RENAME TO u; DROP INDEX t_n; CREATE VIEW w AS SELECT k FROM u");
	ship(p, "DROP VIEW w; DROP TABLE u");
}

static void
test_refused_ddl(void **state)
{
	static const struct {
		const char *sql, *table, *reason;
	} cases[] = {
	    {"CREATE TABLE nopk(a, b)", "nopk", "PRIMARY KEY"},
	    {"CREATE TABLE nullpk(a TEXT PRIMARY KEY, b)", "nullpk", "allows NULL"},
	    {"CREATE TABLE intpk(a INT PRIMARY KEY, b)", "intpk", "allows NULL"},
	    {"CREATE TABLE twopk(a, b NOT NULL, PRIMARY KEY(a, b))", "twopk",
	        "column a allows NULL"},
	    {"CREATE TABLE gen(a INTEGER PRIMARY KEY, b, c AS (b * 2))", "gen", "generated"},
	    {"CREATE TABLE gens(a INTEGER PRIMARY KEY, b, c INT GENERATED ALWAYS AS (b) STORED)",
	        "gens", "generated column c"},
	    {"CREATE VIRTUAL TABLE vt USING fts5(x)", "vt", "virtual"},
	    {"CREATE TABLE ai(a INTEGER PRIMARY KEY AUTOINCREMENT, b)", "ai", "AUTOINCREMENT"},
	    {"CREATE TEMP TABLE tmp(a INTEGER PRIMARY KEY)", "tmp", "temporary"},
	    {"CREATE TABLE good(a INTEGER PRIMARY KEY); ALTER TABLE good ADD COLUMN g AS (a + 1)",
	        "good", "generated"},
	    {"CREATE TABLE good(a INTEGER PRIMARY KEY); CREATE TABLE sel AS SELECT * FROM good",
	        "sel", "PRIMARY KEY"},
	    {"CREATE TABLE _tandem_x(a INTEGER PRIMARY KEY)", "_tandem_x", "reserved"},
	    {"INSERT INTO _tandem_meta VALUES ('x', 1)", "_tandem_meta", "reserved"},
	    {"DROP TABLE _tandem_meta", "_tandem_meta", "reserved"},
	    {"BEGIN", "BEGIN", "transactions"},
	    {"SAVEPOINT sp", "SAVEPOINT", "transactions"},
	    {"PRAGMA foreign_keys = ON", "foreign_keys", "reading pragmas"},
	    {"PRAGMA writable_schema = 1", "writable_schema", "reading pragmas"},
	    {"ANALYZE", "ANALYZE", "statistics"},
	};
	struct pair *p = *state;
	uint64_t hash, schema, seq;
	struct store_frame f;

	ship(p, "CREATE TABLE base(k INTEGER PRIMARY KEY); INSERT INTO base VALUES (1)");
	hash = hash_of(p->a);
	schema = store_schema_hash(p->a);
	seq = seq_of(p->a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_stmt st = {.sql = cases[i].sql};
		int rc = store_exec(p->a, &st, 1, &f);

		if (rc != -EPERM || !strstr(store_errmsg(p->a), cases[i].table) ||
		    !strstr(store_errmsg(p->a), cases[i].reason))
			fail_msg("'%s': rc %d, message '%s'", cases[i].sql, rc, store_errmsg(p->a));
		assert_true(seq_of(p->a) == seq);
		assert_true(hash_of(p->a) == hash);
		assert_true(store_schema_hash(p->a) == schema);
	}
	assert_int_equal(
	    query_int(p->a, "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite%'"), 2);

	/* What a changeset does carry is accepted. */
	ship(p, "CREATE TABLE wr(a TEXT PRIMARY KEY, b) WITHOUT ROWID;"
	        "CREATE TABLE nn(a TEXT PRIMARY KEY NOT NULL, b);"
	        "CREATE TABLE two(a NOT NULL, b NOT NULL, c, PRIMARY KEY(a, b));"
	        "INSERT INTO wr VALUES ('x', 1); INSERT INTO nn VALUES ('y', 2);"
	        "INSERT INTO two VALUES (1, 2, 3); PRAGMA table_info(two)");
}

static void
test_duplicate_and_gap(void **state)
{
	struct pair *p = *state;
	struct store_frame f, g;
	uint64_t hash;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	exec_ok(p->a, "INSERT INTO t VALUES (1, 'x')", &f);
	assert_int_equal(store_apply(p->b, &f), 0);
	hash = hash_of(p->b);
	assert_int_equal(store_apply(p->b, &f), -EALREADY);
	assert_true(hash_of(p->b) == hash);
	assert_int_equal(seq_of(p->b), 2);

	/* A gap: seq + 2. */
	g = f;
	g.seq = f.seq + 2;
	assert_int_equal(store_apply(p->b, &g), -EPROTO);
	assert_non_null(strstr(store_errmsg(p->b), "missing"));

	/* An older epoch is refused; a newer one that does not continue our seq diverged. */
	assert_int_equal(store_set_epoch(p->b, 3), 0);
	g = f;
	g.epoch = 2;
	g.seq = f.seq + 1;
	assert_int_equal(store_apply(p->b, &g), -EPROTO);
	g.epoch = 4;
	g.seq = f.seq;
	assert_int_equal(store_apply(p->b, &g), -ESTALE);
	assert_true(hash_of(p->b) == hash);
	assert_int_equal(seq_of(p->b), 2);
	store_frame_clear(&f);
}

static void
test_schema_mismatch(void **state)
{
	struct pair *p = *state;
	struct store_frame f, g;
	uint64_t hash;

	/*
	 * B got its table behind the store's back, with one more column.  A
	 * frame that ends by dropping the table would leave equal schemas, so
	 * only the hash before tells; without it the changeset for the wider
	 * table would be skipped silently.
	 */
	store_close(p->b);
	raw_exec(p->pb, "CREATE TABLE extra(k INTEGER PRIMARY KEY, more)");
	p->b = store_open(p->pb, NULL);
	assert_non_null(p->b);
	hash = hash_of(p->b);

	exec_ok(p->a, "CREATE TABLE extra(k INTEGER PRIMARY KEY)", &f);
	assert_int_equal(store_apply(p->b, &f), -ESTALE);
	assert_int_equal(seq_of(p->b), 0);
	store_frame_clear(&f);
	exec_ok(p->a, "INSERT INTO extra VALUES (1); DROP TABLE extra", &f);
	g = f;
	g.seq = 1;
	assert_int_equal(store_apply(p->b, &g), -ESTALE);
	assert_non_null(strstr(store_errmsg(p->b), "schema differs"));
	assert_int_equal(seq_of(p->b), 0);
	assert_true(hash_of(p->b) == hash);
	store_frame_clear(&f);

	/* A frame whose DDL leaves another schema than the active's is undone. */
	store_close(p->b);
	assert_int_equal(unlink(p->pb), 0);
	p->b = store_open(p->pb, NULL);
	exec_ok(p->a, "CREATE TABLE t(k INTEGER PRIMARY KEY)", &f);
	g = f;
	g.epoch = 0;
	g.seq = 1;
	g.schema_before = store_schema_hash(p->b);
	g.schema_after ^= 1;
	assert_int_equal(store_apply(p->b, &g), -ESTALE);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM sqlite_schema WHERE name = 't'"), 0);
	assert_int_equal(seq_of(p->b), 0);
	store_frame_clear(&f);
}

static void
test_conflict(void **state)
{
	struct pair *p = *state;
	struct store_frame f;
	uint64_t hash;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	raw_exec(p->pb, "INSERT INTO t VALUES (5, 'standby')");
	hash = hash_of(p->b);

	exec_ok(p->a, "INSERT INTO t VALUES (4, 'a'); INSERT INTO t VALUES (5, 'active')", &f);
	assert_int_equal(store_apply(p->b, &f), -ESTALE);
	assert_non_null(strstr(store_errmsg(p->b), "diverged"));
	assert_true(hash_of(p->b) == hash);
	assert_int_equal(seq_of(p->b), 1);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t"), 1);

	/* Without the standby's own row the same frame applies. */
	raw_exec(p->pb, "DELETE FROM t");
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));

	/* An update of a row the standby changed conflicts too (DATA). */
	ship(p, "INSERT INTO t VALUES (6, 'x')");
	raw_exec(p->pb, "UPDATE t SET v = 'y'");
	exec_ok(p->a, "UPDATE t SET v = 'z'", &f);
	assert_int_equal(store_apply(p->b, &f), -ESTALE);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t WHERE v = 'y'"), 3);
	store_frame_clear(&f);
}

static void
test_triggers_fire_once(void **state)
{
	struct pair *p = *state;

	ship(p,
	    "CREATE TABLE t(k INTEGER PRIMARY KEY, v);"
	    "CREATE TABLE log(id INTEGER PRIMARY KEY, k UNIQUE);"
	    "CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log(k) VALUES (new.k); END;"
	    "INSERT INTO t VALUES (1, 'x')");
	ship(p, "INSERT INTO t VALUES (2, 'y'), (3, 'z')");
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM log"), 3);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM log"), 3);
}

static void
test_query(void **state)
{
	struct pair *p = *state;
	const struct store_value param = {.type = STORE_TEXT, .p = "b", .len = 1};
	struct store_rows r;
	struct store_frame f;

	exec_ok(p->a,
	    "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, b BLOB, d REAL);"
	    "INSERT INTO t VALUES (1, 'a', x'00ff', 1.5), (2, 'b', NULL, NULL)",
	    &f);
	store_frame_clear(&f);

	assert_int_equal(store_query(p->a, "SELECT k, v, b, d FROM t ORDER BY k", NULL, 0, &r), 0);
	assert_int_equal(r.n_cols, 4);
	assert_int_equal(r.n_rows, 2);
	assert_string_equal(r.names[1], "v");
	assert_int_equal(r.values[0].type, STORE_INTEGER);
	assert_int_equal(r.values[0].i, 1);
	assert_int_equal(r.values[1].type, STORE_TEXT);
	assert_string_equal(r.values[1].p, "a");
	assert_int_equal(r.values[2].type, STORE_BLOB);
	assert_int_equal(r.values[2].len, 2);
	assert_memory_equal(r.values[2].p, "\x00\xff", 2);
	assert_int_equal(r.values[3].type, STORE_FLOAT);
	assert_true(r.values[3].f == 1.5);
	assert_int_equal(r.values[6].type, STORE_NULL);
	store_rows_free(&r);

	assert_int_equal(store_query(p->a, "SELECT k FROM t WHERE v = ?", &param, 1, &r), 0);
	assert_int_equal(r.n_rows, 1);
	assert_int_equal(r.values[0].i, 2);
	store_rows_free(&r);

	assert_int_equal(store_query(p->a, "SELECT k FROM t WHERE 0", NULL, 0, &r), 0);
	assert_int_equal(r.n_rows, 0);
	assert_int_equal(r.n_cols, 1);
	store_rows_free(&r);

	assert_int_equal(query_int(p->a, "SELECT v FROM _tandem_meta WHERE k = 'seq'"), 1);

	assert_int_equal(store_query(p->a, "INSERT INTO t(k) VALUES (9)", NULL, 0, &r), -EPERM);
	assert_non_null(strstr(store_errmsg(p->a), "cannot write"));
	assert_int_equal(store_query(p->a, "DELETE FROM t", NULL, 0, &r), -EPERM);
	assert_int_equal(
	    store_query(p->a, "CREATE TABLE x(k INTEGER PRIMARY KEY)", NULL, 0, &r), -EPERM);
	assert_int_equal(store_query(p->a, "PRAGMA user_version = 3", NULL, 0, &r), -EPERM);
	assert_int_equal(store_query(p->a, "BEGIN", NULL, 0, &r), -EPERM);
	assert_int_equal(store_query(p->a, "SELECT 1; SELECT 2", NULL, 0, &r), -EINVAL);
	assert_int_equal(store_query(p->a, "SELEC 1", NULL, 0, &r), -EINVAL);
	assert_int_equal(store_query(p->a, "", NULL, 0, &r), -EINVAL);
	assert_int_equal(store_query(p->a, "SELECT ?", NULL, 0, &r), -EINVAL);
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM t"), 2);
	assert_int_equal(seq_of(p->a), 1);
}

static void
test_exec_errors(void **state)
{
	struct pair *p = *state;
	const struct store_value one = {.type = STORE_INTEGER, .i = 1};
	struct store_stmt multi = {
	    .sql = "INSERT INTO t VALUES (?, 'x'); SELECT 1", .params = &one, .n_params = 1};
	struct store_stmt count = {
	    .sql = "INSERT INTO t VALUES (?, ?)", .params = &one, .n_params = 1};
	struct store_stmt missing = {.sql = "INSERT INTO t VALUES (?, 'x')"};
	struct store_stmt dup[] = {{.sql = "INSERT INTO t VALUES (7, 'x')"},
	    {.sql = "CREATE TABLE u(k INTEGER PRIMARY KEY)"},
	    {.sql = "INSERT INTO t VALUES (7, 'again')"}};
	struct store_stmt syntax = {.sql = "INSERT INTO t VALUS (1)"};
	struct store_frame f;
	uint64_t hash, seq;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	hash = hash_of(p->a);
	seq = seq_of(p->a);
	assert_int_equal(store_exec(p->a, &syntax, 1, &f), -EINVAL);
	assert_non_null(strstr(store_errmsg(p->a), "syntax"));
	assert_int_equal(store_exec(p->a, &multi, 1, &f), -EINVAL);
	assert_int_equal(store_exec(p->a, &count, 1, &f), -EINVAL);
	assert_int_equal(store_exec(p->a, &missing, 1, &f), -EINVAL);
	assert_int_equal(store_exec(p->a, dup, 3, &f), -EINVAL);
	assert_non_null(strstr(store_errmsg(p->a), "UNIQUE"));
	assert_true(hash_of(p->a) == hash);
	assert_true(seq_of(p->a) == seq);
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM sqlite_schema WHERE name = 'u'"), 0);
}

static void
test_apply_errors(void **state)
{
	struct pair *p = *state;
	static unsigned char garbage[] = "this is not a changeset";
	static char ddl_z[] = "CREATE TABLE z(k INTEGER PRIMARY KEY)";
	static char ddl_t[] = "CREATE TABLE t(k INTEGER PRIMARY KEY)";
	struct store_part bad_cs = {
	    .type = STORE_PART_CHANGESET, .data = garbage, .len = sizeof(garbage)};
	struct store_part bad_ddl[] = {
	    {.type = STORE_PART_DDL, .data = ddl_z, .len = sizeof(ddl_z) - 1},
	    {.type = STORE_PART_DDL, .data = ddl_t, .len = sizeof(ddl_t) - 1},
	};
	struct store_frame f, g;
	uint64_t hash;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY)");
	hash = hash_of(p->b);
	exec_ok(p->a, "INSERT INTO t VALUES (1)", &f);

	g = f;
	g.parts = &bad_cs;
	g.n_parts = 1;
	assert_int_equal(store_apply(p->b, &g), -EBADMSG);

	/* The second DDL fails (t exists): the first is undone with it. */
	g.parts = bad_ddl;
	g.n_parts = 2;
	assert_int_equal(store_apply(p->b, &g), -ESTALE);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM sqlite_schema WHERE name = 'z'"), 0);

	/* A changeset for a table B does not have is refused, not skipped. */
	store_frame_clear(&f);
	exec_ok(p->a, "CREATE TABLE only_a(k INTEGER PRIMARY KEY)", &f);
	store_frame_clear(&f);
	exec_ok(p->a, "INSERT INTO only_a VALUES (1)", &f);
	g = f;
	g.seq = seq_of(p->b) + 1;
	g.schema_before = g.schema_after = store_schema_hash(p->b);
	assert_int_equal(store_apply(p->b, &g), -ESTALE);
	assert_non_null(strstr(store_errmsg(p->b), "table"));
	assert_true(hash_of(p->b) == hash);
	assert_int_equal(seq_of(p->b), 1);
	store_frame_clear(&f);
}

static void
test_epoch_and_reopen(void **state)
{
	struct pair *p = *state;
	struct store_frame f;
	uint64_t epoch, seq;
	char *err = NULL;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY)");
	assert_int_equal(store_set_epoch(p->a, 5), 0);
	assert_int_equal(store_set_epoch(p->a, 5), 0);
	assert_int_equal(store_set_epoch(p->a, 4), -EINVAL);
	exec_ok(p->a, "INSERT INTO t VALUES (1)", &f);
	assert_true(f.epoch == 5 && f.seq == 2);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	store_position(p->b, &epoch, &seq);
	assert_true(epoch == 5 && seq == 2);

	store_close(p->b);
	p->b = store_open(p->pb, &err);
	assert_non_null(p->b);
	store_position(p->b, &epoch, &seq);
	assert_true(epoch == 5 && seq == 2);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_true(store_schema_hash(p->a) == store_schema_hash(p->b));
}

static void
test_open_errors(void **state)
{
	char path[256], *err = NULL;
	FILE *fp;

	(void)snprintf(path, sizeof(path), "%s/no/such/dir.db", tmpdir);
	assert_null(store_open(path, &err));
	assert_int_equal(errno, ENOENT);
	assert_non_null(err);
	assert_non_null(strstr(err, "no/such"));
	free(err);
	err = NULL;

	(void)snprintf(path, sizeof(path), "%s/garbage.db", tmpdir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 512; i++)
		(void)fputs("not a database file ", fp);
	assert_int_equal(fclose(fp), 0);
	assert_null(store_open(path, &err));
	assert_int_equal(errno, EBADMSG);
	assert_non_null(err);
	free(err);
	store_close(NULL);
	store_frame_clear(NULL);
	store_rows_free(NULL);
}

static void
test_archive(void **state)
{
	struct pair *p = *state;
	char dir[256], *path = NULL, *again = NULL;
	struct stat st;
	sqlite3 *db;
	sqlite3_stmt *q;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2)");
	(void)snprintf(dir, sizeof(dir), "%s/archive%d", tmpdir, counter);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(store_archive(p->a, dir, 7, &path), 0);
	assert_non_null(strstr(path, "/diverged-7-"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 2);
	(void)sqlite3_finalize(q);
	(void)sqlite3_close(db);

	/* Within the same second the name is taken: refused, nothing overwritten. */
	if (store_archive(p->a, dir, 7, &again) == 0) {
		assert_string_not_equal(again, path);
		free(again);
	} else {
		assert_int_equal(stat(path, &st), 0);
	}
	free(path);

	(void)snprintf(dir, sizeof(dir), "%s/missing%d", tmpdir, counter);
	assert_int_equal(store_archive(p->a, dir, 7, &path), -ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dml, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_multi_statement, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ddl_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_ddl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_and_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflict, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_triggers_fire_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_query, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epoch_and_reopen, setup, teardown),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test_setup_teardown(test_archive, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

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
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "other-process.h"
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

/* Runs sql on A and applies the frame on B, without ship's comparisons. */
static void
relay(struct pair *p, const char *sql)
{
	struct store_frame f;

	exec_ok(p->a, sql, &f);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
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

/* The changesets B applied by its fast path and by SQLite's own apply. */
static void
counts_of(struct store *s, uint64_t *fast, uint64_t *full)
{
	store_apply_counts(s, fast, full);
}

/*
 * Ordinary frames take the fast path, and leave B as SQLite's own apply
 * would: inserts, updates of some columns, of the key, deletes, several
 * tables and a composite key of text and integer in one frame, every
 * type of value, NULL included.
 */
static void
test_apply_fast(void **state)
{
	struct pair *p = *state;
	uint64_t fast, full, fast0, full0;

	ship(p, "CREATE TABLE a(k INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB, n);"
	        "CREATE TABLE c(x TEXT NOT NULL, y INTEGER NOT NULL, v, PRIMARY KEY (x, y))"
	        " WITHOUT ROWID");
	counts_of(p->b, &fast0, &full0);
	ship(p, "INSERT INTO a VALUES (1, 'one', 1.5, x'00ff', NULL), (2, 'two', -2.0, x'', 7)");
	ship(p, "INSERT INTO c VALUES ('p', 1, 'v1'), ('p', 2, NULL), ('q', 1, 3.25)");
	ship(p, "UPDATE a SET t = 'uno' WHERE k = 1; UPDATE c SET v = 'w' WHERE x = 'p'");
	ship(p, "UPDATE a SET r = NULL, n = 'n' WHERE k = 2; DELETE FROM c WHERE y = 2");
	ship(p, "UPDATE a SET k = 10 WHERE k = 1; UPDATE c SET x = 'z' WHERE x = 'q'");
	ship(p, "DELETE FROM a WHERE k = 2; INSERT INTO a(k, t) VALUES (3, 'three')");
	counts_of(p->b, &fast, &full);
	assert_int_equal(full, full0);
	assert_int_equal(fast - fast0, 6);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM a WHERE k IN (3, 10)"), 2);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM c WHERE x = 'z'"), 1);
}

/* B changes a row on its own (mine), then A runs sql: B refuses that frame as diverged. */
static void
refused_after_own_change(struct pair *p, const char *mine, const char *sql)
{
	struct store_frame f;

	raw_exec(p->pb, mine);
	exec_ok(p->a, sql, &f);
	assert_int_equal(store_apply(p->b, &f), -ESTALE);
	assert_non_null(strstr(store_errmsg(p->b), "diverged"));
	store_frame_clear(&f);
}

/*
 * A chain of UNIQUE values moved along in one transaction applies in
 * either direction: a change that meets the constraint first is tried
 * again after the others (SQLite's own apply, with a handler that aborts
 * on every conflict, refused one of the two as a divergence).  A row the
 * standby changed on its own is still refused, by SQLite's apply.
 */
static void
test_apply_fast_falls_back(void **state)
{
	struct pair *p = *state;
	uint64_t fast, full, fast0, full0;

	ship(p, "CREATE TABLE u(k INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE);"
	        "INSERT INTO u VALUES (1, 'a'), (2, 'b'), (3, 'c')");
	counts_of(p->b, &fast0, &full0);
	ship(p, "UPDATE u SET v = 'd' WHERE k = 3; UPDATE u SET v = 'c' WHERE k = 2;"
	        "UPDATE u SET v = 'b' WHERE k = 1");
	ship(p, "UPDATE u SET v = 'a' WHERE k = 1; UPDATE u SET v = 'b' WHERE k = 2;"
	        "UPDATE u SET v = 'c' WHERE k = 3");
	counts_of(p->b, &fast, &full);
	assert_int_equal(full, full0);
	assert_int_equal(fast - fast0, 2);
	assert_int_equal(query_int(p->b, "SELECT k FROM u WHERE v = 'c'"), 3);

	/* A row B changed on its own: the fast path backs out, SQLite refuses. */
	refused_after_own_change(
	    p, "UPDATE u SET v = 'mine' WHERE k = 2", "UPDATE u SET v = 'z' WHERE k = 2");
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM u WHERE v = 'mine'"), 1);
	counts_of(p->b, &fast, &full);
	assert_int_equal(full - full0, 1);
}

/*
 * Rows that swap UNIQUE values in one transaction hold each other up: no
 * one of them can go first.  The standby takes them out and puts them
 * back with their new values, keeping the columns the swap did not touch,
 * in a two-row and a three-row cycle, with a chain behind one.  A row
 * of a cycle that the standby changed on its own is still refused.
 */
static void
test_apply_fast_cycle(void **state)
{
	struct pair *p = *state;
	uint64_t fast, full, fast0, full0;

	ship(p, "CREATE TABLE u(k INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE, w);"
	        "CREATE TABLE c(x TEXT PRIMARY KEY, n INTEGER UNIQUE) WITHOUT ROWID;"
	        "INSERT INTO u VALUES (1, 'a', 'one'), (2, 'b', x'02'), (3, 'c', 3.5), (4, 'd', 4);"
	        "INSERT INTO c VALUES ('p', 1), ('q', 2), ('r', 3)");
	counts_of(p->b, &fast0, &full0);
	ship(p, "UPDATE u SET v = 't' WHERE k = 1; UPDATE u SET v = 'a' WHERE k = 2;"
	        "UPDATE u SET v = 'b' WHERE k = 1");
	assert_int_equal(query_int(p->b, "SELECT k FROM u WHERE v = 'a' AND w = x'02'"), 2);
	assert_int_equal(query_int(p->b, "SELECT k FROM u WHERE v = 'b' AND w = 'one'"), 1);
	ship(p, "UPDATE c SET n = 0 WHERE x = 'p'; UPDATE c SET n = 1 WHERE x = 'r';"
	        "UPDATE c SET n = 3 WHERE x = 'q'; UPDATE c SET n = 2 WHERE x = 'p'");
	assert_int_equal(query_int(p->b, "SELECT n FROM c WHERE x = 'r'"), 1);
	/* A cycle of k = 1 and 2, and 4 takes what 3 gave up, 3 what 1 gave up. */
	ship(p, "UPDATE u SET v = 'e' WHERE k = 3; UPDATE u SET v = 'c' WHERE k = 4;"
	        "UPDATE u SET v = 't' WHERE k = 1; UPDATE u SET v = 'b' WHERE k = 2;"
	        "UPDATE u SET v = 'a' WHERE k = 1; UPDATE u SET v = 'x' WHERE k = 3");
	counts_of(p->b, &fast, &full);
	assert_int_equal(full, full0);
	assert_int_equal(fast - fast0, 3);
	assert_int_equal(query_int(p->b, "SELECT k FROM u WHERE v = 'c'"), 4);

	/* A row of a cycle that B changed on its own: refused, nothing applied. */
	refused_after_own_change(p, "UPDATE u SET w = 'mine', v = 'm' WHERE k = 2",
	    "UPDATE u SET v = 't' WHERE k = 1; UPDATE u SET v = 'a' WHERE k = 2;"
	    "UPDATE u SET v = 'b' WHERE k = 1");
	assert_int_equal(query_int(p->b, "SELECT k FROM u WHERE v = 'a'"), 1);
	assert_int_equal(query_int(p->b, "SELECT k FROM u WHERE v = 'm'"), 2);
}

/*
 * Applies f on p's B with no file of this process growing past 4 KiB:
 * writes further fail (EFBIG, "disk I/O error" to SQLite) as on a failing
 * disk.  SIGXFSZ is ignored meanwhile, and the limit and the signal's
 * disposition are put back before anything is asserted.
 */
static int
apply_write_fails(struct pair *p, const struct store_frame *f)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_sa;
	struct rlimit old, small;
	int rc;

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 4096; /* the WAL's first frame ends past it */
	assert_int_equal(sigaction(SIGXFSZ, &ign, &old_sa), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	rc = store_apply(p->b, f);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
	return rc;
}

/*
 * A standby whose writes fail (a file size limit its WAL meets) refuses a
 * frame and keeps nothing of it, whether the write fails at the commit (a
 * small frame) or while SQLite spills a big one before it (15 MB, more
 * than SQLite's default page cache of 2 MB); once it can write again the
 * same frames apply.
 */
static void
test_apply_write_fails(void **state)
{
	struct pair *p = *state;
	struct store_frame small, big;
	uint64_t e0, s0, h0, e, q, h, ha;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
	exec_ok(p->a, "INSERT INTO t VALUES (1, randomblob(100))", &small);
	exec_ok(p->a,
	    "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
	    " INSERT INTO t SELECT i, randomblob(3000) FROM n",
	    &big);
	store_position(p->b, &e0, &s0);
	assert_int_equal(store_content_hash(p->b, &h0), 0);

	assert_true(apply_write_fails(p, &small) < 0);
	assert_non_null(strstr(store_errmsg(p->b), "disk I/O error"));
	store_position(p->b, &e, &q);
	assert_true(e == e0 && q == s0);
	assert_int_equal(store_content_hash(p->b, &h), 0);
	assert_true(h == h0);
	assert_int_equal(store_apply(p->b, &small), 0);

	store_position(p->b, &e0, &s0);
	assert_int_equal(store_content_hash(p->b, &h0), 0);
	assert_true(apply_write_fails(p, &big) < 0);
	/* SQLite gave up the whole transaction while spilling. */
	assert_string_equal(store_errmsg(p->b), "the apply transaction ended: disk I/O error");
	store_position(p->b, &e, &q);
	assert_true(e == e0 && q == s0);
	assert_int_equal(store_content_hash(p->b, &h), 0);
	assert_true(h == h0);
	assert_int_equal(store_apply(p->b, &big), 0);
	assert_int_equal(store_content_hash(p->a, &ha), 0);
	assert_int_equal(store_content_hash(p->b, &h), 0);
	assert_true(h == ha);
	store_frame_clear(&small);
	store_frame_clear(&big);
}

/*
 * What the fast path knows of a table follows schema changes, whether
 * they come in a frame or were made by this node's own writer: a column
 * added, a table dropped and made again with other columns.
 */
static void
test_apply_fast_schema(void **state)
{
	struct pair *p = *state;
	struct store_frame f;
	uint64_t fast, full, full0;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	ship(p, "INSERT INTO t VALUES (1, 'a')");
	counts_of(p->b, &fast, &full0);
	ship(p, "ALTER TABLE t ADD COLUMN w; UPDATE t SET w = 'new' WHERE k = 1");
	ship(p, "INSERT INTO t VALUES (2, 'b', 'c')");
	ship(p, "DROP TABLE t; CREATE TABLE t(name TEXT PRIMARY KEY NOT NULL, k, v, w)");
	ship(p, "INSERT INTO t VALUES ('n', 1, 2, 3)");
	ship(p, "UPDATE t SET w = 4 WHERE name = 'n'");
	counts_of(p->b, &fast, &full);
	assert_int_equal(full, full0);

	/* A frame undone (its schema too) leaves nothing behind in what it read. */
	exec_ok(p->a, "CREATE TABLE g(k INTEGER PRIMARY KEY, v); INSERT INTO g VALUES (1, 1)", &f);
	f.schema_after ^= 1;
	assert_int_equal(store_apply(p->b, &f), -ESTALE);
	f.schema_after ^= 1;
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));
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
	/* base, _tandem_meta and _tandem_epochs. */
	assert_int_equal(
	    query_int(p->a, "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite%'"), 3);

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

/*
 * While a store is open no other process reads or writes its file (a
 * write behind its back would never be captured); once it is closed they
 * can.
 */
static void
test_other_process_locked_out(void **state)
{
	struct pair *p = *state;
	char *err = NULL;

	ship(p, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
	assert_int_equal(other_process(p->pa, "SELECT count(*) FROM kv"), SQLITE_BUSY);
	assert_int_equal(other_process(p->pa, "INSERT INTO kv VALUES (1, 'x')"), SQLITE_BUSY);
	store_close(p->a);
	assert_int_equal(other_process(p->pa, "INSERT INTO kv VALUES (1, 'x')"), SQLITE_OK);
	p->a = store_open(p->pa, &err);
	assert_null(err);
	assert_non_null(p->a);
	assert_int_equal(other_process(p->pa, "SELECT count(*) FROM kv"), SQLITE_BUSY);
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

/* The rows of kv(k) on s, as "1,3" (k order). */
static void
assert_keys(struct store *s, const char *table, const char *want)
{
	char sql[128];
	struct store_rows r;

	(void)snprintf(sql, sizeof(sql),
	    "SELECT coalesce(group_concat(k, ','), '') FROM (SELECT k FROM %s ORDER BY k)", table);
	if (store_query(s, sql, NULL, 0, &r) != 0)
		fail_msg("query '%s': %s", sql, store_errmsg(s));
	assert_int_equal(r.n_rows, 1);
	assert_int_equal(r.values[0].type, STORE_TEXT);
	if (strcmp(r.values[0].p, want) != 0)
		fail_msg("%s holds %s, want %s", table, (const char *)r.values[0].p, want);
	store_rows_free(&r);
}

/* A transaction of one SQL text. */
#define TXN(text)                                                                                  \
	{                                                                                          \
		.stmts = &(const struct store_stmt){.sql = (text)}, .n = 1                         \
	}

static void
test_batch_savepoints(void **state)
{
	struct pair *p = *state;
	const struct store_txn txns[] = {
	    TXN("INSERT INTO kv VALUES (1, 'one')"),
	    TXN("INSERT INTO kv VALUES (2, 'two'); INSERT INTO kv VALUES (1, 'dup')"),
	    TXN("INSERT INTO kv VALUES (3, 'three')"),
	    /* Changes to rows the batch already changed, then undone. */
	    TXN("UPDATE kv SET v = 'x' WHERE k = 1; DELETE FROM kv WHERE k = 3;"
	        "INSERT INTO kv VALUES (4, 'four'); INSERT INTO nosuch VALUES (1)"),
	    TXN("INSERT INTO _tandem_epochs VALUES (9, 9)"),
	    TXN("BEGIN"),
	    TXN("SELECT 1"),
	};
	enum {
		N = sizeof(txns) / sizeof(txns[0])
	};
	struct store_txn_result res[N];
	struct store_frame f;
	uint64_t seq;

	ship(
	    p, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (9, 'nine')");
	seq = seq_of(p->a);
	assert_int_equal(store_exec_batch(p->a, txns, N, res, &f), 0);
	assert_true(f.seq == seq + 1);
	assert_int_equal(res[0].rc, 0);
	assert_int_equal(res[0].changes, 1);
	assert_int_equal(res[0].last_rowid, 1);
	assert_null(res[0].error);
	assert_int_equal(res[1].rc, -EINVAL);
	assert_non_null(strstr(res[1].error, "UNIQUE"));
	assert_int_equal(res[2].rc, 0);
	assert_int_equal(res[2].last_rowid, 3);
	assert_int_equal(res[3].rc, -EINVAL);
	assert_non_null(strstr(res[3].error, "nosuch"));
	assert_int_equal(res[4].rc, -EPERM);
	assert_non_null(strstr(res[4].error, "reserved"));
	assert_int_equal(res[5].rc, -EPERM);
	assert_int_equal(res[6].rc, 0);
	assert_int_equal(res[6].changes, 0);
	/* The rowid of a rolled-back insert is not reported. */
	assert_int_equal(res[6].last_rowid, 3);
	assert_int_equal(f.changes, 2);
	assert_int_equal(f.last_rowid, 3);
	assert_int_equal(f.n_parts, 1);
	assert_true(f.schema_before == f.schema_after);
	store_txn_results_clear(res, N);
	assert_null(res[1].error);
	assert_int_equal(res[1].rc, 0);

	assert_keys(p->a, "kv", "1,3,9");
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM kv WHERE v = 'x'"), 0);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_keys(p->b, "kv", "1,3,9");
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_int_equal(seq_of(p->b), seq + 1);
}

static void
test_batch_ddl(void **state)
{
	struct pair *p = *state;
	const struct store_txn txns[] = {
	    TXN("INSERT INTO kv VALUES (1, 'a')"),
	    /* The cut before a refused table holds this transaction's row 2. */
	    TXN("INSERT INTO kv VALUES (2, 'b'); CREATE TABLE nopk(a, b)"),
	    TXN("INSERT INTO kv VALUES (3, 'c')"),
	    /* A table created and filled, then the transaction fails. */
	    TXN("UPDATE kv SET v = 'z' WHERE k = 1; CREATE TABLE u(k INTEGER PRIMARY KEY);"
	        "INSERT INTO u VALUES (1); ALTER TABLE kv ADD COLUMN n;"
	        "UPDATE kv SET n = 1; INSERT INTO kv(k) VALUES (3)"),
	    TXN("INSERT INTO kv VALUES (4, 'd'); CREATE TABLE w(k INTEGER PRIMARY KEY);"
	        "INSERT INTO w VALUES (5)"),
	    TXN("INSERT INTO kv VALUES (6, 'f')"),
	    TXN("ALTER TABLE kv ADD COLUMN g AS (k + 1)"),
	    TXN("INSERT INTO kv VALUES (7, 'g')"),
	};
	enum {
		N = sizeof(txns) / sizeof(txns[0])
	};
	struct store_txn_result res[N];
	struct store_frame f;

	ship(p, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
	assert_int_equal(store_exec_batch(p->a, txns, N, res, &f), 0);
	assert_int_equal(res[0].rc, 0);
	assert_int_equal(res[1].rc, -EPERM);
	assert_non_null(strstr(res[1].error, "nopk"));
	assert_int_equal(res[2].rc, 0);
	assert_int_equal(res[3].rc, -EINVAL);
	assert_int_equal(res[4].rc, 0);
	assert_int_equal(res[4].changes, 2);
	assert_int_equal(res[5].rc, 0);
	assert_int_equal(res[6].rc, -EPERM);
	assert_non_null(strstr(res[6].error, "generated"));
	assert_int_equal(res[7].rc, 0);
	store_txn_results_clear(res, N);

	/* kv 1, 3, 4 | CREATE w | w 5, kv 6, 7 */
	assert_int_equal(f.n_parts, 3);
	assert_int_equal(f.parts[0].type, STORE_PART_CHANGESET);
	assert_int_equal(f.parts[1].type, STORE_PART_DDL);
	assert_non_null(strstr(f.parts[1].data, "CREATE TABLE w"));
	assert_int_equal(f.parts[2].type, STORE_PART_CHANGESET);
	assert_true(f.schema_after == store_schema_hash(p->a));
	assert_true(f.schema_before != f.schema_after);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);

	assert_keys(p->b, "kv", "1,3,4,6,7");
	assert_keys(p->b, "w", "5");
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM kv WHERE v = 'z'"), 0);
	assert_int_equal(
	    query_int(p->b, "SELECT count(*) FROM sqlite_schema WHERE name IN ('u', 'nopk')"), 0);
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM pragma_table_info('kv')"), 2);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_true(store_schema_hash(p->a) == store_schema_hash(p->b));

	/* The next frames go on from the schema left behind. */
	ship(p, "INSERT INTO w VALUES (6); ALTER TABLE kv ADD COLUMN n");
	ship(p, "UPDATE kv SET n = k");
}

static void
test_batch_edges(void **state)
{
	struct pair *p = *state;
	const struct store_txn bad[] = {
	    TXN("INSERT INTO kv VALUES (1, 'a'); INSERT INTO kv VALUES (1, 'a')"),
	    TXN("DROP TABLE _tandem_meta"),
	};
	const struct store_txn one[] = {TXN("INSERT INTO kv VALUES (2, 'b')")};
	struct store_txn_result res[2];
	struct store_frame f;
	uint64_t seq, hash;
	sqlite3 *db;

	ship(p, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
	seq = seq_of(p->a);

	/* Every transaction fails: the frame is empty and takes a seq all the same. */
	assert_int_equal(store_exec_batch(p->a, bad, 2, res, &f), 0);
	assert_int_equal(res[0].rc, -EINVAL);
	assert_int_equal(res[1].rc, -EPERM);
	store_txn_results_clear(res, 2);
	assert_int_equal(f.n_parts, 0);
	assert_true(f.seq == seq + 1);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);

	assert_int_equal(store_exec_batch(p->a, NULL, 0, NULL, &f), 0);
	assert_int_equal(f.n_parts, 0);
	assert_true(f.seq == seq + 2);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	store_txn_results_clear(NULL, 3);

	/* The batch as a whole fails: every result says so, nothing is committed. */
	hash = hash_of(p->a);
	assert_int_equal(sqlite3_open(p->pa, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	memset(&f, 0xa5, sizeof(f));
	assert_int_equal(store_exec_batch(p->a, one, 1, res, &f), -EBUSY);
	assert_int_equal(res[0].rc, -EBUSY);
	assert_non_null(res[0].error);
	assert_true(f.seq == 0xa5a5a5a5a5a5a5a5ULL);
	store_txn_results_clear(res, 1);
	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_true(seq_of(p->a) == seq + 2);
	assert_true(hash_of(p->a) == hash);

	assert_int_equal(store_exec_batch(p->a, one, 1, res, &f), 0);
	assert_int_equal(res[0].rc, 0);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));

	/* RAISE(ROLLBACK) ends SQLite's whole transaction: the batch fails with it. */
	ship(p, "CREATE TABLE r(k INTEGER PRIMARY KEY);"
	        "CREATE TRIGGER r_no BEFORE INSERT ON r BEGIN SELECT RAISE(ROLLBACK, 'no'); END");
	seq = seq_of(p->a);
	hash = hash_of(p->a);
	{
		const struct store_txn two[] = {
		    TXN("INSERT INTO kv VALUES (3, 'c')"),
		    TXN("INSERT INTO r VALUES (1)"),
		};

		assert_int_equal(store_exec_batch(p->a, two, 2, res, &f), -EINVAL);
		assert_int_equal(res[0].rc, -EINVAL);
		assert_int_equal(res[1].rc, -EINVAL);
		assert_non_null(strstr(res[0].error, "no"));
		store_txn_results_clear(res, 2);
	}
	assert_true(seq_of(p->a) == seq);
	assert_true(hash_of(p->a) == hash);
	ship(p, "INSERT INTO kv VALUES (3, 'c')");
}

static void
test_apply_batch(void **state)
{
	struct pair *p = *state;
	static unsigned char garbage[] = "this is not a changeset";
	struct store_part bad_cs = {
	    .type = STORE_PART_CHANGESET, .data = garbage, .len = sizeof(garbage)};
	struct store_frame fs[8], g[3];
	size_t applied = 99;
	uint64_t hash, epoch;
	char sql[64];

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	exec_ok(p->a, "CREATE TABLE u(k INTEGER PRIMARY KEY); INSERT INTO u VALUES (1)", &fs[0]);
	for (int i = 1; i < 8; i++) {
		if (i == 4)
			assert_int_equal(store_set_epoch(p->a, 3), 0);
		(void)snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, 'x')", i);
		exec_ok(p->a, sql, &fs[i]);
	}
	hash = hash_of(p->b);

	/* A corrupt frame in the middle: nothing of any frame is applied. */
	g[0] = fs[0];
	g[1] = fs[1];
	g[1].parts = &bad_cs;
	assert_int_equal(store_apply_batch(p->b, g, 2, &applied), -EBADMSG);
	assert_int_equal(applied, 99);
	/* A gap, and a duplicate that is not leading. */
	assert_int_equal(
	    store_apply_batch(p->b, (struct store_frame[]){fs[0], fs[2]}, 2, NULL), -EPROTO);
	assert_int_equal(
	    store_apply_batch(p->b, (struct store_frame[]){fs[0], fs[0]}, 2, NULL), -EALREADY);
	assert_true(hash_of(p->b) == hash);
	assert_int_equal(seq_of(p->b), 1);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM sqlite_schema WHERE name = 'u'"), 0);

	assert_int_equal(store_apply_batch(p->b, fs, 3, &applied), 0);
	assert_int_equal(applied, 3);
	assert_int_equal(seq_of(p->b), 4);
	/* Leading duplicates are skipped; only duplicates is nothing to do. */
	assert_int_equal(store_apply_batch(p->b, fs, 2, &applied), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(store_apply_batch(p->b, fs + 1, 7, &applied), 0);
	assert_int_equal(applied, 5);
	assert_int_equal(store_apply_batch(p->b, NULL, 0, &applied), 0);
	assert_int_equal(applied, 0);
	store_position(p->b, &epoch, NULL);
	assert_true(epoch == 3);
	assert_int_equal(seq_of(p->b), 9);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_true(store_schema_hash(p->a) == store_schema_hash(p->b));
	/* The epoch began in the batch: its start is recorded there too. */
	assert_int_equal(store_has_position(p->b, 0, 5), 1);
	assert_int_equal(store_has_position(p->b, 0, 6), 0);
	assert_int_equal(store_has_position(p->b, 3, 5), 1);
	for (int i = 0; i < 8; i++)
		store_frame_clear(&fs[i]);
}

static void
check_history(struct store *s)
{
	static const struct {
		uint64_t epoch, seq;
		int want;
	} cases[] = {
	    {0, 0, 1},
	    {0, 1, 1},
	    {0, 2, 1},
	    {0, 3, 0},
	    {1, 2, 0},
	    {3, 1, 0},
	    {3, 2, 1},
	    {3, 4, 1},
	    {3, 5, 0},
	    {4, 4, 0},
	    {5, 4, 1},
	    {5, 6, 1},
	    {5, 7, 0},
	    {6, 6, 0},
	    {UINT64_MAX, 1, 0},
	    {0, UINT64_MAX, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = store_has_position(s, cases[i].epoch, cases[i].seq);

		if (rc != cases[i].want)
			fail_msg("has_position(%llu, %llu) = %d, want %d",
			    (unsigned long long)cases[i].epoch, (unsigned long long)cases[i].seq,
			    rc, cases[i].want);
	}
}

static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The database file itself reaches min bytes within 10 s. */
static bool
file_grows_to(const char *path, off_t min)
{
	for (int i = 0; i < 1000; i++) {
		if (file_size(path) >= min)
			return true;
		(void)usleep(10000);
	}
	fprintf(stderr, "%s: %lld bytes, want %lld\n", path, (long long)file_size(path),
	    (long long)min);
	return false;
}

/*
 * The WAL is copied into the database file by the checkpointer thread,
 * not left to grow (automatic checkpoints are off: they would run in a
 * commit, on the event loop), on the writing side as on the applying one.
 */
static void
test_checkpoints(void **state)
{
	struct pair *p = *state;
	off_t before_a = file_size(p->pa), before_b = file_size(p->pb);

	relay(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
	/* 300 transactions of 4 pages and more: 1 200 pages, past CKPT_PAGES. */
	for (int i = 0; i < 300; i++)
		relay(p, "INSERT INTO t(v) VALUES (randomblob(16000))");
	assert_true(file_grows_to(p->pa, before_a + 2 * 1024 * 1024));
	assert_true(file_grows_to(p->pb, before_b + 2 * 1024 * 1024));

	assert_true(hash_of(p->a) == hash_of(p->b));
}

static void wait_finished(struct store *s);

/* As the owner does: when the WAL's tail is due, commits wait for its finish. */
static void
finish_if_due(struct store *s)
{
	if (store_checkpoint_due(s)) {
		store_checkpoint_finish(s);
		wait_finished(s);
	}
}

/*
 * Under steady commits, with never a pause for the checkpointer to catch
 * up, the WAL still starts over (its file stays near CKPT_PAGES pages)
 * instead of growing with every commit, on both sides.  Both stores are
 * handed over, as tandemd's are: however little CPU the checkpointer gets
 * beside the commits (tests run in parallel), the WAL is bounded.
 */
static void
test_checkpoints_steady(void **state)
{
	struct pair *p = *state;
	char wal_a[272], wal_b[272];
	off_t most = 0;

	(void)snprintf(wal_a, sizeof(wal_a), "%s-wal", p->pa);
	(void)snprintf(wal_b, sizeof(wal_b), "%s-wal", p->pb);
	store_checkpoint_hand_over(p->a);
	store_checkpoint_hand_over(p->b);
	relay(p, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
	/* About 2 pages a commit: 13 000 pages and more, 50 MiB if never cut. */
	for (int i = 0; i < 6000; i++) {
		relay(p, "INSERT INTO kv(v) VALUES ('0123456789012345678901234567')");
		finish_if_due(p->a);
		finish_if_due(p->b);
		if (i % 100 == 0) {
			off_t a = file_size(wal_a), b = file_size(wal_b);

			most = a > most ? a : most;
			most = b > most ? b : most;
		}
	}
	/*
	 * Near 8 MiB (CKPT_MAX) when the checkpointer gets a CPU; 13 to 16
	 * MiB seen with four of these tests on two CPUs; 49 MiB and more when
	 * the WAL is never cut.
	 */
	if (most > 24 * 1024 * 1024)
		fail_msg("the WAL grew to %lld bytes", (long long)most);
	assert_true(hash_of(p->a) == hash_of(p->b));
}

/* The frames in the WAL of the database at path (read with a connection of its own). */
static int
wal_frames(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int frames = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	/* PASSIVE: returns (busy, frames in the WAL, frames copied). */
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		frames = sqlite3_column_int(st, 1);
	(void)sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return frames;
}

/* Creates kv on s (handed over) and commits rows into it until the WAL's tail is due. */
static void
commit_until_due(struct store *s)
{
	struct store_frame f;

	exec_ok(s, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)", &f);
	store_frame_clear(&f);
	for (int i = 0; i < 20000 && !store_checkpoint_due(s); i++) {
		exec_ok(s, "INSERT INTO kv(v) VALUES ('0123456789012345678901234567')", &f);
		store_frame_clear(&f);
	}
	assert_true(store_checkpoint_due(s));
}

/* Waits (10 s at most) until s's checkpointer has finished the tail. */
static void
wait_finished(struct store *s)
{
	for (int i = 0; i < 1000 && store_checkpoint_finishing(s); i++)
		(void)usleep(10000);
}

/*
 * Handed over, a commit never copies the WAL's tail itself: it becomes
 * due, and once the owner (committing nothing) had the checkpointer
 * finish it, the next commit starts the WAL over.
 */
static void
test_checkpoint_hand_over(void **state)
{
	struct pair *p = *state;
	struct store_frame f;

	store_checkpoint_hand_over(p->a);
	assert_false(store_checkpoint_due(p->a));
	store_checkpoint_finish(p->a); /* not due: nothing to do */
	assert_false(store_checkpoint_finishing(p->a));
	commit_until_due(p->a);
	assert_true(wal_frames(p->pa) >= 1000);
	store_checkpoint_finish(p->a);
	assert_false(store_checkpoint_due(p->a));
	wait_finished(p->a);
	assert_false(store_checkpoint_finishing(p->a));
	exec_ok(p->a, "INSERT INTO kv(v) VALUES ('after')", &f);
	store_frame_clear(&f);
	assert_true(wal_frames(p->pa) < 10);
}

/*
 * A reader that keeps the WAL from starting over after a finish does not
 * make every commit after it due again (each one a hold of the owner's
 * commits for a checkpoint that copies nothing).
 */
static void
test_checkpoint_hand_over_reader(void **state)
{
	struct pair *p = *state;
	struct store_frame f;
	sqlite3 *db;
	sqlite3_stmt *st;
	int i, holds = 0;

	store_checkpoint_hand_over(p->a);
	commit_until_due(p->a);
	/* A read transaction opened before the finish holds the WAL as it is. */
	assert_int_equal(sqlite3_open(p->pa, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM kv", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	store_checkpoint_finish(p->a);
	wait_finished(p->a);
	for (i = 0; i < 100; i++) {
		exec_ok(p->a, "INSERT INTO kv(v) VALUES ('0123456789012345678901234567')", &f);
		store_frame_clear(&f);
		if (store_checkpoint_due(p->a)) {
			holds++;
			store_checkpoint_finish(p->a);
			wait_finished(p->a);
		}
	}
	assert_int_equal(holds, 0);
	(void)sqlite3_finalize(st);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Copies the file at path to dest, byte for byte. */
static void
copy_file(const char *path, const char *dest)
{
	char buf[65536];
	FILE *in = fopen(path, "rb"), *out = fopen(dest, "wb");
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	assert_int_equal(fclose(in), 0);
	assert_int_equal(fclose(out), 0);
}

/*
 * A full checkpoint makes the file alone the database; paused, the
 * checkpointer leaves the file as it is however the WAL grows; resumed,
 * it catches up.
 */
static void
test_checkpoint_full_and_pause(void **state)
{
	struct pair *p = *state;
	char copy[256], err[256], wal[272];
	struct store_frame f;
	struct store *c;
	off_t size;

	(void)snprintf(copy, sizeof(copy), "%s/full%d.db", tmpdir, counter);
	exec_ok(p->a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)", &f);
	store_frame_clear(&f);
	for (int i = 0; i < 10; i++) {
		exec_ok(p->a, "INSERT INTO t(v) VALUES (randomblob(1000))", &f);
		store_frame_clear(&f);
	}
	store_checkpoints_pause(p->a, true);
	assert_int_equal(store_checkpoint_full(p->a, err, sizeof(err)), 0);
	size = file_size(p->pa);
	copy_file(p->pa, copy);
	/* Past CKPT_PAGES: the checkpointer would run, but is paused. */
	for (int i = 0; i < 300; i++) {
		exec_ok(p->a, "INSERT INTO t(v) VALUES (randomblob(16000))", &f);
		store_frame_clear(&f);
	}
	(void)usleep(200000);
	assert_int_equal(file_size(p->pa), size);
	/* The file taken then is the database as it was: 10 rows, at seq 11. */
	c = store_open(copy, NULL);
	assert_non_null(c);
	assert_int_equal(query_int(c, "SELECT count(*) FROM t"), 10);
	assert_int_equal(seq_of(c), 11);
	store_close(c);
	store_checkpoints_pause(p->a, false);
	exec_ok(p->a, "INSERT INTO t(v) VALUES (1)", &f);
	store_frame_clear(&f);
	assert_true(file_grows_to(p->pa, size + 2 * 1024 * 1024));
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM t"), 311);

	/* A WAL grown past 64 MiB while paused is cut back once reused. */
	store_checkpoints_pause(p->a, true);
	for (int i = 0; i < 70; i++) {
		exec_ok(p->a, "INSERT INTO t(v) VALUES (randomblob(1048576))", &f);
		store_frame_clear(&f);
	}
	(void)snprintf(wal, sizeof(wal), "%s-wal", p->pa);
	assert_true(file_size(wal) > 70 * 1024 * 1024);
	store_checkpoints_pause(p->a, false);
	exec_ok(p->a, "INSERT INTO t(v) VALUES (2)", &f);
	store_frame_clear(&f);
	assert_true(file_grows_to(p->pa, size + 72 * 1024 * 1024));
	/* The first commit after the checkpointer is done cuts it. */
	for (int i = 0; i < 100 && file_size(wal) > 64 * 1024 * 1024; i++) {
		(void)usleep(100000);
		exec_ok(p->a, "INSERT INTO t(v) VALUES (3)", &f);
		store_frame_clear(&f);
	}
	assert_true(file_size(wal) <= 64 * 1024 * 1024);
}

/* The checkpointer is not behind (store_checkpoint_behind) within 10 s. */
static bool
wait_not_behind(struct store *s)
{
	for (int i = 0; i < 1000; i++) {
		if (!store_checkpoint_behind(s))
			return true;
		(void)usleep(10000);
	}
	return false;
}

/*
 * store_wal_bytes follows the WAL file while checkpoints wait, and
 * store_checkpoint_behind says a fold would now copy a long WAL: past
 * CKPT_MAX frames not yet in the database file, as while checkpoints are
 * paused, and no longer once the checkpointer caught up after the pause.
 */
static void
test_wal_bytes_and_behind(void **state)
{
	struct pair *p = *state;
	struct store_frame f;
	char wal[272];

	(void)snprintf(wal, sizeof(wal), "%s-wal", p->pa);
	assert_int_equal(store_wal_bytes(p->a), 0); /* no commit through the store yet */
	exec_ok(p->a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)", &f);
	store_frame_clear(&f);
	assert_int_equal(store_wal_bytes(p->a), file_size(wal));
	assert_false(store_checkpoint_behind(p->a));
	/* Past CKPT_PAGES: the checkpointer thread starts and copies. */
	for (int i = 0; i < 300; i++) {
		exec_ok(p->a, "INSERT INTO t(v) VALUES (randomblob(16000))", &f);
		store_frame_clear(&f);
	}
	assert_true(wait_not_behind(p->a));

	/* Whatever it copies now, 2 400 frames come after. */
	store_checkpoints_pause(p->a, true);
	/* 600 transactions of 4 pages and more: past CKPT_MAX (2 000 frames). */
	for (int i = 0; i < 600; i++) {
		exec_ok(p->a, "INSERT INTO t(v) VALUES (randomblob(16000))", &f);
		store_frame_clear(&f);
	}
	assert_true(store_wal_bytes(p->a) > 2400 * 4096);
	assert_true(store_checkpoint_behind(p->a));

	store_checkpoints_pause(p->a, false);
	assert_true(wait_not_behind(p->a));
	/* Then the WAL starts over at a commit. */
	for (int i = 0; i < 100 && store_wal_bytes(p->a) > 100 * 4096; i++) {
		(void)usleep(10000);
		exec_ok(p->a, "INSERT INTO t(v) VALUES (1)", &f);
		store_frame_clear(&f);
		finish_if_due(p->a);
	}
	assert_true(store_wal_bytes(p->a) <= 100 * 4096);
}

/*
 * store_wal_bytes is the size of the WAL file while it grows from empty,
 * commit by commit.
 */
static void
test_wal_bytes_file(void **state)
{
	struct pair *p = *state;
	struct store_frame f;
	char wal[272];

	(void)snprintf(wal, sizeof(wal), "%s-wal", p->pa);
	store_checkpoints_pause(p->a, true);
	for (int i = 0; i < 50; i++) {
		exec_ok(p->a,
		    i == 0 ? "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)"
		           : "INSERT INTO t(v) VALUES (randomblob(16000))",
		    &f);
		store_frame_clear(&f);
		assert_int_equal(store_wal_bytes(p->a), file_size(wal));
	}
	store_checkpoints_pause(p->a, false);
}

/*
 * A reader still on an older snapshot keeps the WAL from being folded
 * in: the full checkpoint fails with a clear message (after the busy
 * timeout), and the store goes on as before.
 */
static void
test_checkpoint_full_blocked(void **state)
{
	struct pair *p = *state;
	char err[256] = "";
	struct store_frame f;
	sqlite3 *reader;
	sqlite3_stmt *st;

	exec_ok(p->a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)", &f);
	store_frame_clear(&f);
	assert_int_equal(sqlite3_open(p->pa, &reader), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(reader, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW); /* its read transaction stays open */
	exec_ok(p->a, "INSERT INTO t VALUES (1, 'x')", &f);
	store_frame_clear(&f);
	assert_int_equal(store_checkpoint_full(p->a, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "checkpoint"));
	(void)sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(reader), SQLITE_OK);
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM t"), 1);
	assert_int_equal(seq_of(p->a), 2);
	assert_int_equal(store_checkpoint_full(p->a, err, sizeof(err)), 0);
}

static void
test_epoch_history(void **state)
{
	struct pair *p = *state;
	struct store_stmt st[] = {
	    {.sql = "INSERT INTO _tandem_epochs VALUES (4, 0)"},
	    {.sql = "UPDATE _tandem_epochs SET start_seq = 0"},
	    {.sql = "DELETE FROM _tandem_epochs"},
	    {.sql = "DROP TABLE _tandem_epochs"},
	    {.sql = "CREATE INDEX i ON _tandem_epochs(start_seq)"},
	};
	struct store_frame f;
	char path[256];

	/* Both start empty: the schema hash of no user object is the hash of nothing. */
	assert_true(store_schema_hash(p->a) == 0xcbf29ce484222325ULL);
	/* The history is not content: a promotion alone changes no content hash. */
	assert_int_equal(store_set_epoch(p->b, 7), 0);
	assert_true(hash_of(p->a) == hash_of(p->b));
	store_close(p->b);
	assert_int_equal(unlink(p->pb), 0);
	p->b = store_open(p->pb, NULL);
	assert_non_null(p->b);

	/* Epoch 0 holds seqs 1-2, epoch 3 begins at 2 and holds 3-4, epoch 5 begins at 4. */
	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY)");
	ship(p, "INSERT INTO t VALUES (1)");
	assert_int_equal(store_set_epoch(p->a, 3), 0);
	assert_int_equal(store_set_epoch(p->a, 3), 0);
	ship(p, "INSERT INTO t VALUES (2)");
	ship(p, "INSERT INTO t VALUES (3)");
	assert_int_equal(store_set_epoch(p->a, 5), 0);
	ship(p, "INSERT INTO t VALUES (4)");
	ship(p, "INSERT INTO t VALUES (5)");
	check_history(p->a);
	check_history(p->b);

	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		int rc = store_exec(p->a, &st[i], 1, &f);

		if (rc != -EPERM || !strstr(store_errmsg(p->a), "_tandem_epochs"))
			fail_msg("'%s': rc %d, message '%s'", st[i].sql, rc, store_errmsg(p->a));
	}
	assert_int_equal(query_int(p->a, "SELECT count(*) FROM _tandem_epochs"), 3);

	/* The history is in the file. */
	store_close(p->b);
	p->b = store_open(p->pb, NULL);
	assert_non_null(p->b);
	check_history(p->b);

	/* A database from before the history knows only its own position. */
	(void)snprintf(path, sizeof(path), "%s/old%d.db", tmpdir, counter);
	raw_exec(path, "CREATE TABLE _tandem_meta(k TEXT PRIMARY KEY NOT NULL, v);"
	               "INSERT INTO _tandem_meta VALUES ('epoch', 4), ('seq', 10)");
	store_close(p->b);
	p->b = store_open(path, NULL);
	assert_non_null(p->b);
	assert_int_equal(store_has_position(p->b, 0, 0), 1);
	assert_int_equal(store_has_position(p->b, 0, 5), 0);
	assert_int_equal(store_has_position(p->b, 4, 9), 0);
	assert_int_equal(store_has_position(p->b, 4, 10), 1);
	assert_int_equal(store_has_position(p->b, 4, 11), 0);
	store_close(p->b);
	p->b = store_open(p->pb, NULL);
	assert_non_null(p->b);
}

/* The position a copy holds and its row count in t, read with SQLite directly. */
static void
copy_state(const char *path, uint64_t *epoch, uint64_t *seq, int64_t *rows)
{
	sqlite3 *db;
	sqlite3_stmt *q;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT (SELECT v FROM _tandem_meta WHERE k = 'epoch'),"
	                     " (SELECT v FROM _tandem_meta WHERE k = 'seq'),"
	                     " (SELECT count(*) FROM t),"
	                     " (SELECT integrity_check FROM pragma_integrity_check)",
	                     -1, &q, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	*epoch = (uint64_t)sqlite3_column_int64(q, 0);
	*seq = (uint64_t)sqlite3_column_int64(q, 1);
	*rows = sqlite3_column_int64(q, 2);
	assert_string_equal(sqlite3_column_text(q, 3), "ok");
	(void)sqlite3_finalize(q);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

struct backups {
	const char *src;
	char dest[32][256];
	uint64_t epoch[32], seq[32];
	int n, rc;
	int stop;
};

static void *
backup_loop(void *data)
{
	struct backups *b = data;
	char err[256];

	while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE) && b->n < 32) {
		(void)snprintf(
		    b->dest[b->n], sizeof(b->dest[b->n]), "%s/copy%d-%d.db", tmpdir, counter, b->n);
		b->rc = store_backup_file(
		    b->src, b->dest[b->n], &b->epoch[b->n], &b->seq[b->n], err, sizeof(err));
		if (b->rc != 0)
			break;
		b->n++;
	}
	return NULL;
}

static void
test_backup_file(void **state)
{
	struct pair *p = *state;
	struct backups b = {.src = p->pa};
	char dest[256], err[256];
	uint64_t epoch, seq, e, q, seq0;
	int64_t rows;
	struct stat st;
	pthread_t th;
	struct store *c;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	assert_int_equal(store_set_epoch(p->a, 2), 0);
	ship(p, "INSERT INTO t VALUES (1, 'x')");

	(void)snprintf(dest, sizeof(dest), "%s/copy%d.db", tmpdir, counter);
	assert_int_equal(store_backup_file(p->pa, dest, &epoch, &seq, err, sizeof(err)), 0);
	assert_true(epoch == 2 && seq == 2);
	assert_int_equal(stat(dest, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	copy_state(dest, &e, &q, &rows);
	assert_true(e == 2 && q == 2 && rows == 1);
	c = store_open(dest, NULL);
	assert_non_null(c);
	assert_true(hash_of(c) == hash_of(p->a));
	assert_int_equal(store_has_position(c, 2, 2), 1);
	store_close(c);

	/* The destination exists: refused, and left as it was. */
	assert_int_equal(store_backup_file(p->pa, dest, &epoch, &seq, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "copy"));
	copy_state(dest, &e, &q, &rows);
	assert_true(q == 2);

	/* A source that is missing or no store: no copy is left. */
	(void)snprintf(dest, sizeof(dest), "%s/copy%d-bad.db", tmpdir, counter);
	assert_int_equal(
	    store_backup_file("/nonexistent/x.db", dest, NULL, NULL, err, sizeof(err)), -ENOENT);
	assert_int_not_equal(access(dest, F_OK), 0);
	{
		char plain[256];

		(void)snprintf(plain, sizeof(plain), "%s/plain%d.db", tmpdir, counter);
		raw_exec(plain, "CREATE TABLE plain(k INTEGER PRIMARY KEY)");
		assert_int_equal(
		    store_backup_file(plain, dest, NULL, NULL, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "not a tandem database"));
		assert_int_not_equal(access(dest, F_OK), 0);
		/* No room for the message is fine. */
		assert_int_equal(store_backup_file(plain, dest, NULL, NULL, NULL, 0), -EBADMSG);
	}
	(void)snprintf(dest, sizeof(dest), "%s/nodir%d/copy.db", tmpdir, counter);
	assert_int_equal(store_backup_file(p->pa, dest, NULL, NULL, err, sizeof(err)), -ENOENT);

	/* Copies taken while the active writes hold exactly what their position says. */
	seq0 = seq_of(p->a);
	assert_int_equal(pthread_create(&th, NULL, backup_loop, &b), 0);
	for (int i = 2; i < 400; i++) {
		struct store_frame f;
		char sql[64];

		(void)snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, 'x')", i);
		exec_ok(p->a, sql, &f);
		store_frame_clear(&f);
	}
	__atomic_store_n(&b.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(b.rc, 0);
	assert_true(b.n >= 1);
	for (int i = 0; i < b.n; i++) {
		copy_state(b.dest[i], &e, &q, &rows);
		assert_true(e == 2 && e == b.epoch[i]);
		assert_true(q == b.seq[i]);
		assert_true(rows == (int64_t)(q - seq0) + 1);
	}
}

/* A standby that diverged (rows of its own), and a snapshot of the active. */
static void
diverge(struct pair *p, char *snap, size_t len, const char *name)
{
	char err[256];

	(void)snprintf(snap, len, "%s/%s%d.db", tmpdir, name, counter);
	(void)unlink(snap);
	assert_int_equal(store_backup_file(p->pa, snap, NULL, NULL, err, sizeof(err)), 0);
}

/*
 * A replace whose archive cannot be made (its name is taken: the archives
 * of this second and the next two exist) changes nothing; the store,
 * opened again on the same file, still keeps other processes out.
 */
static void
test_replace_archive_taken(void **state)
{
	struct pair *p = *state;
	char dir[256], snap[256], *archive = NULL;
	uint64_t epoch, seq, e, q, hash;
	time_t now = time(NULL);

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	ship(p, "INSERT INTO t VALUES (1, 'a')");
	(void)snprintf(dir, sizeof(dir), "%s/taken%d", tmpdir, counter);
	assert_int_equal(mkdir(dir, 0700), 0);
	diverge(p, snap, sizeof(snap), "snap");
	for (time_t t = now; t < now + 3; t++) {
		char name[320], stamp[32];
		struct tm tm;
		FILE *fp;

		assert_non_null(gmtime_r(&t, &tm));
		assert_true(strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) > 0);
		store_position(p->b, &epoch, NULL);
		(void)snprintf(name, sizeof(name), "%s/diverged-%llu-%s.db", dir,
		    (unsigned long long)epoch, stamp);
		assert_non_null(fp = fopen(name, "w"));
		assert_int_equal(fclose(fp), 0);
	}
	hash = hash_of(p->b);
	store_position(p->b, &epoch, &seq);
	assert_int_equal(store_replace(p->b, snap, dir, &archive), -EEXIST);
	assert_null(archive);
	assert_int_equal(access(snap, F_OK), 0);
	assert_true(hash_of(p->b) == hash);
	store_position(p->b, &e, &q);
	assert_true(e == epoch && q == seq);
	assert_int_equal(other_process(p->pb, "SELECT count(*) FROM t"), SQLITE_BUSY);
	ship(p, "INSERT INTO t VALUES (2, 'b')");
}

static void
test_replace(void **state)
{
	struct pair *p = *state;
	char dir[256], snap[256], bad[256], *archive = NULL;
	struct store_frame f;
	uint64_t epoch, seq, e, q, hash;
	int64_t rows;
	FILE *fp;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	ship(p, "INSERT INTO t VALUES (1, 'a')");
	/* B goes its own way: epoch 4 and rows A never saw (still in B's -wal). */
	assert_int_equal(store_set_epoch(p->b, 4), 0);
	{
		struct store_stmt st = {.sql = "INSERT INTO t VALUES (2, 'b'), (3, 'c')"};

		assert_int_equal(store_exec(p->b, &st, 1, &f), 0);
		store_frame_clear(&f);
	}
	exec_ok(p->a, "INSERT INTO t VALUES (10, 'z')", &f);
	store_frame_clear(&f);
	assert_int_equal(store_set_epoch(p->a, 5), 0);
	(void)snprintf(dir, sizeof(dir), "%s/archive%d", tmpdir, counter);
	assert_int_equal(mkdir(dir, 0700), 0);
	diverge(p, snap, sizeof(snap), "snap");

	/* Bad new files: nothing changes. */
	hash = hash_of(p->b);
	store_position(p->b, &epoch, &seq);
	(void)snprintf(bad, sizeof(bad), "%s/garbage%d.db", tmpdir, counter);
	fp = fopen(bad, "w");
	assert_non_null(fp);
	for (int i = 0; i < 512; i++)
		(void)fputs("not a database file ", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(store_replace(p->b, bad, dir, &archive), -EBADMSG);
	assert_non_null(strstr(store_errmsg(p->b), "not a tandem database"));
	(void)snprintf(bad, sizeof(bad), "%s/plain%d.db", tmpdir, counter);
	raw_exec(bad, "CREATE TABLE t(k INTEGER PRIMARY KEY)");
	assert_int_equal(store_replace(p->b, bad, dir, &archive), -EBADMSG);
	(void)snprintf(bad, sizeof(bad), "%s/none%d.db", tmpdir, counter);
	assert_int_equal(store_replace(p->b, bad, dir, &archive), -ENOENT);
	(void)snprintf(bad, sizeof(bad), "%s/nodir%d", tmpdir, counter);
	assert_int_equal(store_replace(p->b, snap, bad, &archive), -ENOENT);
	assert_null(archive);
	assert_int_equal(access(snap, F_OK), 0);
	assert_true(hash_of(p->b) == hash);
	store_position(p->b, &e, &q);
	assert_true(e == epoch && q == seq);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t"), 3);

	/* With an archive: B's own data is kept there, whole (its -wal folded in). */
	assert_int_equal(store_replace(p->b, snap, dir, &archive), 0);
	assert_non_null(archive);
	assert_non_null(strstr(archive, "/diverged-4-"));
	assert_int_not_equal(access(snap, F_OK), 0);
	copy_state(archive, &e, &q, &rows);
	assert_true(e == 4 && q == seq && rows == 3);
	free(archive);
	archive = NULL;
	store_position(p->a, &epoch, &seq);
	store_position(p->b, &e, &q);
	assert_true(e == epoch && q == seq);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_true(store_schema_hash(p->a) == store_schema_hash(p->b));
	assert_int_equal(store_has_position(p->b, 5, seq), 1);

	/* B is the standby again. */
	exec_ok(p->a, "INSERT INTO t VALUES (11, 'y')", &f);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));

	/* An archive on another file system is a copy. */
	{
		char shm[] = "/dev/shm/tandem-store-XXXXXX";
		struct stat st;

		if (mkdtemp(shm)) {
			diverge(p, snap, sizeof(snap), "snap3");
			assert_int_equal(store_replace(p->b, snap, shm, &archive), 0);
			assert_int_equal(stat(archive, &st), 0);
			assert_int_equal(st.st_mode & 0777, 0600);
			copy_state(archive, &e, &q, &rows);
			assert_true(e == 5 && q == seq_of(p->b));
			free(archive);
			archive = NULL;
			assert_int_equal(nftw(shm, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
		}
	}

	/* Without an archive the old file is gone, and the store goes on. */
	ship(p, "INSERT INTO t VALUES (12, 'x')");
	diverge(p, snap, sizeof(snap), "snap2");
	ship(p, "INSERT INTO t VALUES (13, 'x')");
	assert_int_equal(store_replace(p->b, snap, NULL, NULL), 0);
	assert_int_equal(seq_of(p->b), seq_of(p->a) - 1);
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t WHERE k = 13"), 0);
	exec_ok(p->a, "INSERT INTO t VALUES (14, 'x')", &f);
	assert_int_equal(store_apply(p->b, &f), -EPROTO);
	store_frame_clear(&f);
	{
		struct store *c;

		store_close(p->b);
		c = store_open(p->pb, NULL);
		assert_non_null(c);
		p->b = c;
		assert_int_equal(query_int(p->b, "SELECT count(*) FROM t WHERE k = 12"), 1);
	}
}

/* A statement run again is not prepared again, but follows the schema all the same. */
static void
test_statement_reuse(void **state)
{
	struct pair *p = *state;
	const struct store_value two[] = {
	    {.type = STORE_INTEGER, .i = 1},
	    {.type = STORE_TEXT, .p = "a", .len = 1},
	};
	const struct store_value other[] = {
	    {.type = STORE_INTEGER, .i = 2},
	    {.type = STORE_TEXT, .p = "b", .len = 1},
	};
	struct store_stmt ins = {
	    .sql = "INSERT INTO t VALUES (?, ?)", .params = two, .n_params = 2};
	struct store_stmt one = {
	    .sql = "INSERT INTO t VALUES (?, ?)", .params = two, .n_params = 1};
	struct store_frame f;

	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	assert_int_equal(store_exec(p->a, &ins, 1, &f), 0);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	/* The same text with a wrong count, then again right. */
	assert_int_equal(store_exec(p->a, &one, 1, &f), -EINVAL);
	ship(p, "DELETE FROM t");
	ins.params = other;
	assert_int_equal(store_exec(p->a, &ins, 1, &f), 0);
	assert_int_equal(f.changes, 1);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_keys(p->b, "t", "2");
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t WHERE v = 'b'"), 1);
	/* DELETE without WHERE again: still row by row. */
	ship(p, "DELETE FROM t");
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t"), 0);

	/* The table changes under the kept statement. */
	ship(p, "ALTER TABLE t ADD COLUMN n");
	assert_int_equal(store_exec(p->a, &ins, 1, &f), -EINVAL);
	assert_non_null(strstr(store_errmsg(p->a), "3 columns"));
	ship(p, "DROP TABLE t");
	assert_int_equal(store_exec(p->a, &ins, 1, &f), -EINVAL);
	assert_non_null(strstr(store_errmsg(p->a), "no such table"));
	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	assert_int_equal(store_exec(p->a, &ins, 1, &f), 0);
	assert_int_equal(store_apply(p->b, &f), 0);
	store_frame_clear(&f);
	assert_true(hash_of(p->a) == hash_of(p->b));
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM t"), 1);

	/* A schema statement run again is a schema statement again. */
	ship(p, "DROP TABLE t");
	ship(p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	assert_int_equal(query_int(p->b, "SELECT count(*) FROM sqlite_schema WHERE name = 't'"), 1);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dml, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_fast, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_fast_falls_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_fast_cycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_write_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_fast_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoints_steady, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_hand_over, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_hand_over_reader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_full_and_pause, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wal_bytes_and_behind, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wal_bytes_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_full_blocked, setup, teardown),
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
	    cmocka_unit_test_setup_teardown(test_other_process_locked_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_archive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_savepoints, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_ddl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_edges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epoch_history, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backup_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replace_archive_taken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_statement_reuse, setup, teardown),
	};

	if (argc == 4 && strcmp(argv[1], OTHER_PROCESS_FLAG) == 0)
		return other_process_run(argv[2], argv[3]);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

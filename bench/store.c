/*
 * store - what the replicated store itself costs, in one process: no
 * tandemd, no IPC, no network.
 *
 * Times N transactions of one INSERT of a 28-byte row into kv(k INTEGER
 * PRIMARY KEY, v TEXT), each on its own:
 *   - plain SQLite: a prepared INSERT on a WAL database with
 *     synchronous=NORMAL (the ceiling, as in bench/replication);
 *   - capture: store_exec_batch on the active's store (the transaction,
 *     its session and changeset, the position, the commit);
 *   - apply: store_apply_batch of that frame on a second store (the
 *     standby's work for it).
 * and prints the p50 and p90 of each, in µs.  The three databases live in
 * a new directory under /tmp, removed at the end.
 *
 * usage: store [COMMITS]   (default 20000)
 * Exit 0 on success, 1 on a store or SQLite error, 2 on bad usage.
 */
#define _GNU_SOURCE
#include "replicate/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

static const char row[] = "0123456789012345678901234567";

static double
now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts t[0..n) and prints its p50 and p90 under label. */
static void
report(const char *label, double *t, size_t n)
{
	qsort(t, n, sizeof(*t), cmp_double);
	printf("%-34s | %8.1f | %8.1f\n", label, t[n / 2], t[n * 9 / 10]);
}

static int
plain(const char *path, double *t, size_t n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db,
		    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
		    "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)",
		    NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO kv(k, v) VALUES (?, ?)", -1, &st, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		double t0 = now_us();

		(void)sqlite3_bind_int64(st, 1, (sqlite3_int64)i + 1);
		(void)sqlite3_bind_text(st, 2, row, (int)sizeof(row) - 1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
		(void)sqlite3_reset(st);
		t[i] = now_us() - t0;
	}
	if (rc != SQLITE_OK)
		fprintf(stderr, "store: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
	(void)sqlite3_finalize(st);
	(void)sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static int
replicated(const char *pa, const char *pb, double *te, double *ta, size_t n)
{
	struct store *a = NULL, *b = NULL;
	struct store_stmt ddl = {.sql = "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)"};
	struct store_frame f = {0};
	char *err = NULL;
	int rc = -1;

	a = store_open(pa, &err);
	if (a != NULL)
		b = store_open(pb, &err);
	if (b == NULL) {
		fprintf(stderr, "store: %s\n", err ? err : strerror(errno));
		goto out;
	}
	if (store_exec(a, &ddl, 1, &f) != 0 || store_apply(b, &f) != 0)
		goto fail;
	store_frame_clear(&f);
	for (size_t i = 0; i < n; i++) {
		const struct store_value v[2] = {
		    {.type = STORE_INTEGER, .i = (int64_t)i + 1},
		    {.type = STORE_TEXT, .p = row, .len = sizeof(row) - 1},
		};
		const struct store_stmt st = {
		    .sql = "INSERT INTO kv(k, v) VALUES (?, ?)", .params = v, .n_params = 2};
		const struct store_txn txn = {&st, 1};
		struct store_txn_result res;
		double t0 = now_us(), t1;

		if (store_exec_batch(a, &txn, 1, &res, &f) != 0 || res.rc != 0)
			goto fail;
		t1 = now_us();
		if (store_apply_batch(b, &f, 1, NULL) != 0)
			goto fail;
		ta[i] = now_us() - t1;
		te[i] = t1 - t0;
		store_frame_clear(&f);
		store_txn_results_clear(&res, 1);
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "store: %s\n", *store_errmsg(b) ? store_errmsg(b) : store_errmsg(a));
out:
	store_frame_clear(&f);
	store_close(b);
	store_close(a);
	free(err);
	return rc;
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/tandem-bench-store-XXXXXX", pp[64], pa[64], pb[64], cmd[128];
	double *tp, *te, *ta;
	unsigned long n = 20000;
	char *end;
	int rc;

	if (argc > 2 || (argc == 2 && (n = strtoul(argv[1], &end, 10),
	                                  *end != '\0' || n < 10 || n > 10000000))) {
		fprintf(
		    stderr, "usage: store [COMMITS]   (COMMITS: 10 .. 10000000, default 20000)\n");
		return 2;
	}
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "store: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	(void)snprintf(pp, sizeof(pp), "%s/plain.db", dir);
	(void)snprintf(pa, sizeof(pa), "%s/active.db", dir);
	(void)snprintf(pb, sizeof(pb), "%s/standby.db", dir);
	tp = calloc(n, sizeof(*tp));
	te = calloc(n, sizeof(*te));
	ta = calloc(n, sizeof(*ta));
	rc = tp && te && ta ? 0 : -1;
	if (rc == 0)
		rc = plain(pp, tp, n);
	if (rc == 0)
		rc = replicated(pa, pb, te, ta, n);
	if (rc == 0) {
		printf("Store, in one process: %lu transactions of one INSERT of a 28-byte row\n\n",
		    n);
		printf("step                               |   p50 µs |   p90 µs\n");
		printf("-----------------------------------+----------+---------\n");
		report("plain SQLite insert and commit", tp, n);
		report("capture and commit (active)", te, n);
		report("apply of that frame (standby)", ta, n);
	}
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "store: could not remove %s\n", dir);
	free(tp);
	free(te);
	free(ta);
	return rc == 0 ? 0 : 1;
}

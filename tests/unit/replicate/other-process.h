/*
 * other-process: SQLite in another process, for the tests of the lock a
 * store holds on its file.  The test program runs itself again: a child
 * forked without exec would share this process's idea of the file's
 * locks (SQLite keeps it in memory).
 */
#ifndef TANDEM_TEST_OTHER_PROCESS_H
#define TANDEM_TEST_OTHER_PROCESS_H

/* The first argument that makes a test program run other_process_run. */
#define OTHER_PROCESS_FLAG "--other-process"

/*
 * Runs sql on the database at path in a new process (this program with
 * OTHER_PROCESS_FLAG path sql) and returns what SQLite answered there
 * (SQLITE_OK, SQLITE_BUSY, ...), or -1 if the process did not run.
 */
int other_process(const char *path, const char *sql);

/* What that process does: opens path, runs sql; its exit status is SQLite's code. */
int other_process_run(const char *path, const char *sql);

#endif

/* other-process: see other-process.h. */
#define _GNU_SOURCE
#include "other-process.h"

#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

int
other_process_run(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	(void)sqlite3_close(db);
	return rc & 0xff;
}

int
other_process(const char *path, const char *sql)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl(
		    "/proc/self/exe", "other-process", OTHER_PROCESS_FLAG, path, sql, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) == 127)
		return -1;
	return WEXITSTATUS(status);
}

/*
 * ctl-proto: the wire format between tandemctl and tandemd.
 *
 * A libqb IPC service named CTL_SERVICE_NAME.  A request is a
 * qb_ipc_request_header (id CTL_MSG_REQUEST) followed by one JSON object,
 * NUL-terminated; the reply is a qb_ipc_response_header (same id) followed
 * by one JSON object, NUL-terminated.  One request at a time per
 * connection; a reply may come much later (failover waits for the move).
 *
 * Requests:
 *   {"command": "status"}
 *   {"command": "failover", "to": "n2" | null, "force": false}
 *   {"command": "log-level", "level": "debug" | null}
 * Replies: {"ok": true, ...command's fields...} or
 *          {"ok": false, "error": "one line for the admin", "exit": N}
 * Unknown request fields are ignored (rule 6).
 *
 * The replicated database (libtandem and tandemctl db; agent/dbcmd.c):
 *   {"command": "db-exec",
 *    "statements": [{"sql": "...", "params": [1, 2.5, "text", null,
 *                                             {"blob": "<base64>"}]}, ...]}
 *     -> {"ok": true, "changes": N, "last_rowid": N, "epoch": N, "seq": N}
 *     The statements are one transaction, run on the active only.
 *   {"command": "db-query", "sql": "...", "params": [...]}
 *     -> {"ok": true, "columns": ["k", "v"], "rows": [[1, "a"], [2, null]]}
 *     One read-only statement, on either node.
 *   {"command": "db-hash"}
 *     -> {"ok": true, "hash": "<16 hex digits>", "epoch": N, "seq": N}
 * A value is null, an integer, a real (a JSON number with a fraction or an
 * exponent), a string (UTF-8 text) or {"blob": "<padded base64>"}, both in
 * params and in rows; params are bound by position, "params" may be
 * absent.  Their errors carry a "code" as well:
 *   {"ok": false, "error": "...", "exit": N, "code": C}
 * with C one of "sql" (syntax, constraint, parameter count; exit 1),
 * "refused" (it would not replicate; exit 1), "not-active" (exit 4, and
 * "active": the active's name, "" if none), "unknown-outcome" (the active
 * role was lost while the commit waited for the standby), "busy", "io",
 * "too-large" (request or result over CTL_MAX_MSG), "failed" (anything
 * else).  libtandem maps them to -EINVAL, -EPERM, -EROFS, -ECONNABORTED,
 * -EBUSY, -EIO, -EMSGSIZE and -EIO.
 */
#ifndef TANDEM_CTL_PROTO_H
#define TANDEM_CTL_PROTO_H

#define CTL_SERVICE_NAME "tandem"
#define CTL_MSG_REQUEST 1
#define CTL_MAX_MSG (256 * 1024)

/* tandemctl's exit codes (documented in tandemctl(8)). */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	/* The daemon refused or the operation failed (the reply says why). */
	CTL_EXIT_FAILED = 1,
	/* Unknown command or option, bad argument. */
	CTL_EXIT_USAGE = 2,
	/* tandemd is not running (or not answering) on this node. */
	CTL_EXIT_NO_DAEMON = 3,
	/* A write sent to the standby: the reply names the active node. */
	CTL_EXIT_NOT_ACTIVE = 4,
};

#endif

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

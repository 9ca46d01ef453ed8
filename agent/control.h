/*
 * control: the libqb IPC server tandemctl talks to.
 *
 * control owns the IPC service (ctl-proto.h), decodes each request into a
 * JSON object and hands it to the agent through one callback, with a
 * handle for the reply.  The agent may reply at once or later (a
 * failover replies when the move is done).  A client that disconnects
 * before its reply is harmless: the reply is dropped.
 */
#ifndef TANDEM_CONTROL_H
#define TANDEM_CONTROL_H

#include <jansson.h>

#include <qb/qbloop.h>

struct control;
/* One request awaiting its reply. */
struct control_request;

/*
 * Called for each well-formed request (a JSON object with a string
 * "command").  request is borrowed for the duration of the call.  The
 * agent must call control_reply exactly once for req, now or later.
 * Malformed requests are answered by control itself with an error.
 */
typedef void (*control_request_fn)(struct control_request *req, json_t *request, void *data);

/*
 * Creates the IPC service name on loop (libqb's loop adaptor).  Returns
 * NULL with errno set (EADDRINUSE when another tandemd serves name).
 */
struct control *control_new(
    qb_loop_t *loop, const char *name, control_request_fn on_request, void *data);

/*
 * Destroys the service; pending requests are dropped (their clients see
 * the connection close).  control_free(NULL) is a no-op.
 */
void control_free(struct control *c);

/*
 * Sends reply (a JSON object; control takes the reference) for req and
 * frees req.  If the client has gone, the reply is dropped.
 */
void control_reply(struct control_request *req, json_t *reply);

/* Builds {"ok": false, "error": message, "exit": code} and replies with it. */
void control_reply_error(struct control_request *req, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

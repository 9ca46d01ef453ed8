/*
 * control.c: owns the libqb IPC service that tandemctl talks to, every
 * connection's pending request, and the decoding of requests and encoding
 * of replies (ctl-proto.h).  It enforces rule 5 at this door: a request
 * that is not a JSON object with a string "command" is answered with an
 * error and exit code 2 here and never reaches the agent.  What a command
 * means is the agent's business: control hands each well-formed request to
 * on_request with a handle, and the agent answers through control_reply,
 * now or much later (a failover answers once the move is done).
 *
 * The service is libqb's native type (shared memory rings on Linux, with
 * the setup socket as the doorbell), plugged into the caller's qb_loop.
 * libqb's poll handlers take no context pointer, so the loop is kept in a
 * file-level variable: every control in a process must use the same loop,
 * which for one single-threaded daemon is the only sensible setup anyway.
 *
 * Lifetimes.  A pending request holds a reference on its connection, so
 * the connection object outlives a client that disconnects early; libqb
 * then calls connection_closed, we mark the request closed, and the reply
 * that comes later is dropped instead of written to a dead ring.  The
 * last unref (ours, in control_reply) triggers connection_destroyed.  The
 * connection in turn holds a reference on the service, so control_free
 * may destroy the service while requests are pending: it first lets go of
 * their connections (the clients then see the connection close) and
 * leaves the requests orphaned; the agent's control_reply on an orphan
 * just frees it.  This keeps the contract "control_reply exactly once per
 * request" valid in every shutdown order.
 *
 * Access: root, and the user tandemd runs as (so that tests need no root).
 */
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <qb/qbipcs.h>
#include <qb/qblist.h>
#include <qb/qblog.h>
#include <qb/qbloop.h>

#include "ctl-proto.h"

struct control {
	qb_ipcs_service_t *service;
	control_request_fn on_request;
	void *data;
	/* Requests handed to the agent and not yet answered. */
	struct qb_list_head pending;
};

struct control_request {
	struct qb_list_head list;
	/* NULL once control_free orphaned the request. */
	struct control *control;
	/* Holds a reference while not NULL. */
	qb_ipcs_connection_t *conn;
	/* The client went away: the reply will be dropped. */
	bool closed;
};

/* See the file comment: libqb's poll handlers have no context pointer. */
static qb_loop_t *control_loop;
static unsigned int control_count;

/* libqb to qb_loop glue */

static int32_t
loop_job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
	return qb_loop_job_add(control_loop, p, data, fn);
}

static int32_t
loop_dispatch_add(
    enum qb_loop_priority p, int32_t fd, int32_t events, void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_add(control_loop, p, fd, events, data, fn);
}

static int32_t
loop_dispatch_mod(
    enum qb_loop_priority p, int32_t fd, int32_t events, void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(control_loop, p, fd, events, data, fn);
}

static int32_t
loop_dispatch_del(int32_t fd)
{
	return qb_loop_poll_del(control_loop, fd);
}

static struct qb_ipcs_poll_handlers poll_handlers = {
    .job_add = loop_job_add,
    .dispatch_add = loop_dispatch_add,
    .dispatch_mod = loop_dispatch_mod,
    .dispatch_del = loop_dispatch_del,
};

/* Replies */

/* The reply used when we cannot even build the real one. */
static const char reply_no_memory[] =
    "{\"ok\":false,\"error\":\"tandemd is out of memory\",\"exit\":1}";

static void
send_text(qb_ipcs_connection_t *conn, const char *text)
{
	struct qb_ipc_response_header hdr;
	struct iovec iov[2];
	size_t len = strlen(text) + 1;
	ssize_t rc;

	memset(&hdr, 0, sizeof(hdr));
	hdr.id = CTL_MSG_REQUEST;
	hdr.size = (int32_t)(sizeof(hdr) + len);
	hdr.error = 0;
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)text;
	iov[1].iov_len = len;
	rc = qb_ipcs_response_sendv(conn, iov, 2);
	if (rc < 0)
		qb_log(LOG_WARNING, "control: cannot send a reply to tandemctl: %s, ignoring",
		    strerror((int)-rc));
}

/* Sends reply (borrowed) on conn, or an error reply when it cannot be encoded. */
static void
send_json(qb_ipcs_connection_t *conn, json_t *reply)
{
	char *text = NULL;

	if (reply != NULL)
		text = json_dumps(reply, JSON_COMPACT);
	if (text == NULL) {
		send_text(conn, reply_no_memory);
		return;
	}
	if (sizeof(struct qb_ipc_response_header) + strlen(text) + 1 > CTL_MAX_MSG) {
		qb_log(LOG_ERR, "control: a reply of %zu bytes is too long for tandemctl",
		    strlen(text));
		free(text);
		send_text(conn, "{\"ok\":false,\"error\":\"the reply is too long\",\"exit\":1,"
		                "\"code\":\"too-large\"}");
		return;
	}
	send_text(conn, text);
	free(text);
}

static json_t *
error_object(int exit_code, const char *message)
{
	return json_pack("{s:b, s:s, s:i}", "ok", 0, "error", message, "exit", exit_code);
}

static void
send_error(qb_ipcs_connection_t *conn, int exit_code, const char *message)
{
	json_t *reply = error_object(exit_code, message);

	send_json(conn, reply);
	json_decref(reply);
}

static void
request_free(struct control_request *req)
{
	if (req->conn != NULL) {
		if (qb_ipcs_context_get(req->conn) == req)
			qb_ipcs_context_set(req->conn, NULL);
		/* May be the last reference: connection_destroyed runs now. */
		qb_ipcs_connection_unref(req->conn);
		req->conn = NULL;
	}
	qb_list_del(&req->list);
	free(req);
}

void
control_reply(struct control_request *req, json_t *reply)
{
	if (req == NULL) {
		json_decref(reply);
		return;
	}
	if (req->conn != NULL && !req->closed)
		send_json(req->conn, reply);
	else
		qb_log(LOG_DEBUG, "control: the client has gone, reply dropped");
	json_decref(reply);
	request_free(req);
}

void
control_reply_error(struct control_request *req, int exit_code, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	control_reply(req, error_object(exit_code, message));
}

/* Service callbacks */

static int32_t
on_accept(qb_ipcs_connection_t *conn, uid_t uid, gid_t gid)
{
	if (uid == 0 || uid == geteuid())
		return 0;
	qb_log(LOG_NOTICE, "control: refused a tandemctl connection from uid %u", (unsigned)uid);
	return -EACCES;
}

static void
on_created(qb_ipcs_connection_t *conn)
{
	qb_ipcs_context_set(conn, NULL);
}

static int32_t
on_closed(qb_ipcs_connection_t *conn)
{
	struct control_request *req = qb_ipcs_context_get(conn);

	if (req != NULL) {
		qb_log(LOG_DEBUG, "control: tandemctl left before its reply");
		req->closed = true;
	}
	return 0;
}

static void
on_destroyed(qb_ipcs_connection_t *conn)
{
	/* A pending request holds a reference, so none can be left here. */
	qb_ipcs_context_set(conn, NULL);
}

/*
 * Returns the request object from one message, or NULL with *why set to a
 * one-line reason for the admin.
 */
static json_t *
request_parse(const void *data, size_t size, char *why, size_t why_len)
{
	struct qb_ipc_request_header hdr_copy, *hdr = &hdr_copy;
	const char *body;
	size_t len;
	json_error_t err;
	json_t *obj, *cmd;

	/* libqb may hand over a message that is not aligned for the header. */
	if (size >= sizeof(hdr_copy))
		memcpy(&hdr_copy, data, sizeof(hdr_copy));
	if (size < sizeof(*hdr) || hdr->size < 0 || (size_t)hdr->size != size) {
		(void)snprintf(why, why_len, "malformed request: bad header");
		return NULL;
	}
	if (hdr->id != CTL_MSG_REQUEST) {
		(void)snprintf(why, why_len, "malformed request: unknown message id %d", hdr->id);
		return NULL;
	}
	if (size > CTL_MAX_MSG) {
		(void)snprintf(
		    why, why_len, "request too long (%zu bytes, at most %d)", size, CTL_MAX_MSG);
		return NULL;
	}
	body = (const char *)data + sizeof(*hdr);
	len = size - sizeof(*hdr);
	if (len > 0 && body[len - 1] == '\0')
		len--;
	if (len == 0 || memchr(body, '\0', len) != NULL) {
		(void)snprintf(
		    why, why_len, "malformed request: %s", len == 0 ? "empty" : "NUL byte inside");
		return NULL;
	}
	/* A text value may hold NUL (as \u0000); SQL texts can. */
	obj = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (obj == NULL) {
		(void)snprintf(why, why_len, "malformed request: not JSON (%s)", err.text);
		return NULL;
	}
	if (!json_is_object(obj)) {
		(void)snprintf(why, why_len, "malformed request: not a JSON object");
		json_decref(obj);
		return NULL;
	}
	cmd = json_object_get(obj, "command");
	if (!json_is_string(cmd) || json_string_length(cmd) == 0) {
		(void)snprintf(why, why_len, "malformed request: no string \"command\"");
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static int32_t
on_message(qb_ipcs_connection_t *conn, void *data, size_t size)
{
	struct control *c = qb_ipcs_connection_service_context_get(conn);
	struct control_request *req;
	char why[256];
	json_t *obj;

	obj = request_parse(data, size, why, sizeof(why));
	if (obj == NULL) {
		qb_log(LOG_NOTICE, "control: %s", why);
		send_error(conn, CTL_EXIT_USAGE, why);
		return 0;
	}
	if (qb_ipcs_context_get(conn) != NULL) {
		/* The protocol is one request at a time per connection. */
		json_decref(obj);
		send_error(conn, CTL_EXIT_USAGE, "a request is already pending on this connection");
		return 0;
	}
	req = calloc(1, sizeof(*req));
	if (req == NULL) {
		json_decref(obj);
		send_text(conn, reply_no_memory);
		return 0;
	}
	req->control = c;
	req->conn = conn;
	qb_ipcs_connection_ref(conn);
	qb_ipcs_context_set(conn, req);
	qb_list_add_tail(&req->list, &c->pending);

	qb_log(LOG_DEBUG, "control: request \"%s\"",
	    json_string_value(json_object_get(obj, "command")));
	/* The agent may reply (and so free req) before this returns. */
	c->on_request(req, obj, c->data);
	json_decref(obj);
	return 0;
}

static struct qb_ipcs_service_handlers service_handlers = {
    .connection_accept = on_accept,
    .connection_created = on_created,
    .msg_process = on_message,
    .connection_closed = on_closed,
    .connection_destroyed = on_destroyed,
};

/* Lifecycle */

struct control *
control_new(qb_loop_t *loop, const char *name, control_request_fn on_request, void *data)
{
	struct control *c;
	int32_t rc;

	if (loop == NULL || name == NULL || name[0] == '\0' || on_request == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (control_count > 0 && control_loop != loop) {
		errno = EBUSY;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->on_request = on_request;
	c->data = data;
	qb_list_init(&c->pending);

	c->service = qb_ipcs_create(name, 0, QB_IPC_NATIVE, &service_handlers);
	if (c->service == NULL) {
		rc = errno != 0 ? -errno : -ENOMEM;
		free(c);
		errno = -rc;
		return NULL;
	}
	control_loop = loop;
	control_count++;
	qb_ipcs_service_context_set(c->service, c);
	qb_ipcs_poll_handlers_set(c->service, &poll_handlers);
	qb_ipcs_enforce_buffer_size(c->service, CTL_MAX_MSG);
	/* On failure qb_ipcs_run has already released the service. */
	rc = qb_ipcs_run(c->service);
	if (rc < 0) {
		control_count--;
		free(c);
		errno = -rc;
		return NULL;
	}
	return c;
}

void
control_free(struct control *c)
{
	struct qb_list_head *pos, *next;

	if (c == NULL)
		return;
	qb_list_for_each_safe (pos, next, &c->pending) {
		struct control_request *req = qb_list_entry(pos, struct control_request, list);

		if (qb_ipcs_context_get(req->conn) == req)
			qb_ipcs_context_set(req->conn, NULL);
		qb_ipcs_connection_unref(req->conn);
		req->conn = NULL;
		req->control = NULL;
		qb_list_del(&req->list);
		qb_list_init(&req->list);
	}
	qb_ipcs_destroy(c->service);
	control_count--;
	free(c);
}

/*
 * stream: the replication byte stream between the two nodes, TLS 1.3 with
 * mutual certificate authentication, on the caller's qb_loop.  Internal to
 * replicate/: it moves bytes and knows nothing of frames or SQLite.
 *
 * Trust: one cluster CA (made by tools/tandem-certs).  A peer is accepted
 * only if its certificate chains to the CA, its subject's O= is the cluster
 * name and, when the caller names the peer it expects, its CN= is that
 * node's name.  TLS 1.2 and older are refused.
 *
 * Nothing blocks: sockets are non-blocking, the handshake is driven by the
 * loop, stream_send() queues what the socket does not take at once and
 * POLLOUT is on only while bytes wait.  No callback step reads or writes
 * more than a bounded amount (256 KiB read, 1 MiB written), so the loop
 * keeps turning under any load.
 *
 * Events come through one callback per stream.  Every struct stream that
 * the caller is given (returned by stream_connect(), or passed to the
 * listener's callback) belongs to the caller, who frees it with
 * stream_free(), normally when it sees STREAM_EVENT_CLOSED.
 *
 * stream never logs above debug: failures arrive as -errno plus a one-line
 * reason the agent can log as it is.
 */
#ifndef TANDEM_STREAM_H
#define TANDEM_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <qb/qbloop.h>

struct stream_tls;
struct stream_listener;
struct stream;

/* Longest node or cluster name, in bytes without the NUL (an X.509 CN's limit). */
#define STREAM_NAME_MAX 64

struct stream_tls_config {
	/* PEM file with the cluster CA certificate (more than one during a CA change). */
	const char *ca_file;
	/* PEM file with this node's certificate, optionally followed by intermediates. */
	const char *cert_file;
	/* PEM file with the private key of cert_file. */
	const char *key_file;
	/* The cluster name: the O= of every certificate, this node's included. */
	const char *cluster;
	/* A connection not verified within this time is closed; 0 means 10000. */
	unsigned int handshake_timeout_ms;
};

enum stream_event {
	/*
	 * Handshake done and the peer verified; info->peer names it.  On the
	 * connecting side this comes only once the listener has accepted our
	 * certificate too (TLS 1.3 lets a client finish before that).
	 */
	STREAM_EVENT_CONNECTED,
	/* info->data, info->len: the next bytes from the peer, in order (len > 0). */
	STREAM_EVENT_DATA,
	/* stream_send() had to queue bytes, and the queue is now empty. */
	STREAM_EVENT_DRAINED,
	/*
	 * The connection is over: the socket is closed and no other event
	 * follows.  info->error is 0 after a stream_close() that completed,
	 * else -errno: -EACCES (a certificate refused, by us or by the peer),
	 * -EPROTO (not TLS 1.3, garbage, a TLS error), -ETIMEDOUT (handshake
	 * too slow), -ESHUTDOWN (the peer closed cleanly), -ECONNRESET (the
	 * peer vanished), -ECONNREFUSED and other socket errors.  info->reason
	 * says it in one line, e.g. "peer certificate not signed by the
	 * cluster CA (unable to get local issuer certificate)".
	 */
	STREAM_EVENT_CLOSED,
};

struct stream_info {
	/* The peer's verified node name (CN); NULL before CONNECTED. */
	const char *peer;
	/* The peer's address and port, "192.0.2.12:7405" or "[2001:db8::12]:7405". */
	const char *address;
	/* DATA only. */
	const void *data;
	size_t len;
	/* CLOSED only. */
	int error;
	const char *reason;
};

/*
 * The strings and bytes in info are valid only during the call.  The
 * callback may call any function of this header, stream_free(s) included.
 */
typedef void (*stream_event_fn)(
    struct stream *s, enum stream_event event, const struct stream_info *info, void *data);

/*
 * Loads the CA, this node's certificate and key (cfg is copied; the caller
 * may free it afterwards) and checks them together: the key matches the
 * certificate, the certificate chains to the CA and its O= is cfg->cluster.
 * Returns NULL with errno set on failure: EINVAL for a bad config or
 * mismatched files, ENOENT / EACCES for a file that cannot be read, ENOMEM.
 * If reason is not NULL, a one-line explanation naming the file is written
 * to it (reason_len bytes at most) on failure; it is untouched on success.
 * The result must outlive every listener and stream made with it.
 */
struct stream_tls *stream_tls_new(
    const struct stream_tls_config *cfg, char *reason, size_t reason_len);

/* This node's name, the CN of cert_file. */
const char *stream_tls_name(const struct stream_tls *tls);

/* Frees tls.  stream_tls_free(NULL) is a no-op. */
void stream_tls_free(struct stream_tls *tls);

/*
 * Listens on addr (numeric IPv4 or IPv6; NULL means every IPv4 address)
 * and port (0 picks a free one, see stream_listener_port()).  Each accepted
 * connection becomes a struct stream that reports through on_event with
 * data: CONNECTED once verified, or CLOSED if the handshake fails, and from
 * then on it belongs to the caller (stream_set_callback() can redirect it).
 * expected_peer, if not NULL, is the only node name accepted.  Returns NULL
 * with errno set: EINVAL for a bad address or name, EADDRINUSE and other
 * socket errors.  The socket is non-blocking and close-on-exec.
 */
struct stream_listener *stream_listen(qb_loop_t *loop, struct stream_tls *tls, const char *addr,
    uint16_t port, const char *expected_peer, stream_event_fn on_event, void *data);

/* The port the listener is bound to. */
uint16_t stream_listener_port(const struct stream_listener *l);

/*
 * Stops listening and frees l.  Streams it accepted are not touched.
 * stream_listener_free(NULL) is a no-op.
 */
void stream_listener_free(struct stream_listener *l);

/*
 * Connects to addr (numeric IPv4 or IPv6) and port and runs the handshake
 * on loop; the peer must be the node expected_peer.  Returns the stream at
 * once; on_event receives CONNECTED or CLOSED later, never during this
 * call.  Bytes given to stream_send() before CONNECTED are sent once the
 * peer is verified.  Returns NULL with errno set: EINVAL for a bad address
 * or name, or the socket's error if the connect fails at once.
 */
struct stream *stream_connect(qb_loop_t *loop, struct stream_tls *tls, const char *addr,
    uint16_t port, const char *expected_peer, stream_event_fn on_event, void *data);

/* Sends the following events of s to on_event with data. */
void stream_set_callback(struct stream *s, stream_event_fn on_event, void *data);

/*
 * Sends len bytes of buf (copied) after those sent before.  Never blocks
 * and never calls the callback: what the socket does not take now is
 * queued and sent from the loop, and a write error arrives later as
 * CLOSED.  The queue has no limit; see stream_pending() and DRAINED.
 * Callers should gather small writes of one loop turn into one call.
 * Returns 0, -ENOTCONN after CLOSED or stream_close(), -ENOMEM.
 */
int stream_send(struct stream *s, const void *buf, size_t len);

/* Bytes given to stream_send() and not yet written to the socket. */
size_t stream_pending(const struct stream *s);

/* The verified peer name, or NULL before CONNECTED. */
const char *stream_peer(const struct stream *s);

/*
 * Stops delivering DATA, sends what is queued, then TLS close_notify, and
 * closes the socket.  CLOSED follows from the loop with error 0 (or the
 * error that cut the sending short).  A stream not yet connected is
 * closed at once (CLOSED still follows from the loop).  Returns 0, or
 * -ENOTCONN if s is already closed or closing.
 */
int stream_close(struct stream *s);

/*
 * Closes the socket at once, without close_notify (the peer sees the
 * connection drop), drops queued bytes and frees s.  No event follows.
 * Allowed inside s's own callback.  stream_free(NULL) is a no-op.
 */
void stream_free(struct stream *s);

#endif /* TANDEM_STREAM_H */

/*
 * wire: the frames of the replication stream, encoded and decoded.  Pure:
 * no sockets, no TLS, no SQLite; stream.c moves the bytes, store.c and
 * snapshot.c produce and consume the contents.
 *
 * Every frame is a 16-byte header and a payload, integers little-endian:
 *
 *   0  magic "TNDM"   4  u8 version   5  u8 type   6  u16 flags
 *   8  u32 payload length             12 u32 CRC-32C of bytes 0..11
 *                                        followed by the payload
 *
 * Rule 6 (mixed versions interoperate): the version byte is the major
 * protocol version; a frame of another major version is refused with
 * -EPROTO.  Within one major version a newer peer may append fields to any
 * payload and set flag bits: a reader ignores bytes past the fields it
 * knows and flags it does not know.  An unknown frame type or DATA part
 * kind is refused, because skipping it would let the replicas diverge.
 *
 * The CRC does not replace TLS: it catches our own framing bugs and
 * corruption of frames kept on disk or replayed by tests.
 */
#ifndef TANDEM_WIRE_H
#define TANDEM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1
#define WIRE_HEADER_LEN 16

/* Payload limits, checked from the header before the payload is read. */
#define WIRE_MAX_DATA (64u << 20)         /* a DATA frame's payload */
#define WIRE_MAX_CHUNK (1u << 20)         /* the bytes of one SNAPSHOT_CHUNK */
#define WIRE_MAX_CONTROL (64u << 10)      /* HELLO, ACK, SNAPSHOT_BEGIN/END, ERROR */
#define WIRE_CHUNK_SLACK WIRE_MAX_CONTROL /* room for a chunk's own fields */

#define WIRE_CLUSTER_MAX 64 /* bytes of a cluster name, without the NUL */
#define WIRE_TEXT_MAX 512   /* bytes of an ERROR text, without the NUL */

enum wire_type {
	WIRE_HELLO = 1,
	WIRE_DATA = 2,
	WIRE_ACK = 3,
	WIRE_SNAPSHOT_BEGIN = 4,
	WIRE_SNAPSHOT_CHUNK = 5,
	WIRE_SNAPSHOT_END = 6,
	WIRE_ERROR = 7,
};

enum wire_part_kind {
	WIRE_PART_CHANGESET = 1, /* an SQLite session changeset */
	WIRE_PART_DDL = 2,       /* SQL text of a schema change */
};

/* Codes of an ERROR frame; a reader accepts any value. */
enum wire_error_code {
	WIRE_ERR_PROTOCOL = 1, /* malformed or unexpected frame */
	WIRE_ERR_CLUSTER = 2,  /* HELLO from another cluster */
	WIRE_ERR_EPOCH = 3,    /* frame from an older epoch */
	WIRE_ERR_SEQ = 4,      /* gap in the sequence */
	WIRE_ERR_SCHEMA = 5,   /* schema hash mismatch */
	WIRE_ERR_APPLY = 6,    /* the standby could not apply a frame */
	WIRE_ERR_SNAPSHOT = 7, /* the active gave a snapshot up; another follows */
};

/* First frame each side sends: who it is and where its data stands. */
struct wire_hello {
	char cluster[WIRE_CLUSTER_MAX + 1]; /* 1..WIRE_CLUSTER_MAX bytes, no NUL inside */
	uint32_t node_id;
	uint32_t incarnation;
	uint64_t epoch;
	uint64_t seq; /* last applied position */
	uint64_t schema_hash;
};

/* One part of a DATA frame; data points into the frame (or the caller's memory). */
struct wire_part {
	enum wire_part_kind kind;
	const uint8_t *data;
	uint32_t len;
};

/*
 * One replicated transaction at (epoch, seq).  A decoded frame has its
 * parts already checked; walk them with wire_parts_next().  The encoder
 * ignores part_count, parts and parts_len and takes an array instead.
 */
struct wire_data {
	uint64_t epoch;
	uint64_t seq;
	uint64_t schema_hash_before;
	uint64_t schema_hash_after;
	uint32_t part_count;
	const uint8_t *parts;
	size_t parts_len;
};

struct wire_ack {
	uint64_t epoch;
	uint64_t seq;
};

struct wire_snapshot_begin {
	uint64_t epoch;
	uint64_t seq; /* the position the snapshot holds */
	uint64_t total_bytes;
	uint64_t schema_hash;
};

struct wire_snapshot_chunk {
	uint64_t offset;
	const uint8_t *data; /* len <= WIRE_MAX_CHUNK */
	uint32_t len;
};

struct wire_snapshot_end {
	uint64_t hash; /* 64-bit hash of the whole snapshot content */
};

struct wire_error {
	uint32_t code; /* enum wire_error_code, or a newer one */
	char text[WIRE_TEXT_MAX + 1];
};

struct wire_frame {
	enum wire_type type;
	uint16_t flags; /* none defined in version 1; unknown bits are ignored */
	union {
		struct wire_hello hello;
		struct wire_data data;
		struct wire_ack ack;
		struct wire_snapshot_begin snapshot_begin;
		struct wire_snapshot_chunk snapshot_chunk;
		struct wire_snapshot_end snapshot_end;
		struct wire_error error;
	} u;
};

/*
 * A growable byte buffer that encoders append to.  A zeroed struct is an
 * empty buffer; wire_buf_release() frees its memory.  The caller may
 * consume data[0..len) as it likes and set len = 0 to reuse the memory.
 */
struct wire_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Frees b's memory and leaves it empty and reusable.  NULL is a no-op. */
void wire_buf_release(struct wire_buf *b);

/*
 * Encoders: each appends one complete frame to out.  Return 0, -EINVAL for
 * a field out of range (empty, too long or NUL-containing cluster name;
 * unknown part kind), -EMSGSIZE when the payload would pass its limit
 * (WIRE_MAX_DATA, or WIRE_MAX_CHUNK for chunk bytes), or -ENOMEM.  On
 * failure out is unchanged.  Nothing is retained from the arguments.
 */
int wire_encode_hello(struct wire_buf *out, const struct wire_hello *h);
int wire_encode_data(
    struct wire_buf *out, const struct wire_data *d, const struct wire_part *parts, size_t nparts);
int wire_encode_ack(struct wire_buf *out, const struct wire_ack *a);
int wire_encode_snapshot_begin(struct wire_buf *out, const struct wire_snapshot_begin *b);
int wire_encode_snapshot_chunk(struct wire_buf *out, const struct wire_snapshot_chunk *c);
int wire_encode_snapshot_end(struct wire_buf *out, const struct wire_snapshot_end *e);
/* A text longer than WIRE_TEXT_MAX bytes is cut; text may be NULL (empty). */
int wire_encode_error(struct wire_buf *out, uint32_t code, const char *text);

/*
 * Encodes any decoded frame back (the fields this version knows; flags are
 * kept).  Same returns as the encoders above, -EINVAL for an unknown type.
 */
int wire_encode_frame(struct wire_buf *out, const struct wire_frame *f);

/* Walks the parts of a decoded DATA frame: init once, then next until false. */
struct wire_part_iter {
	const uint8_t *p;
	uint32_t left;
};

void wire_parts_init(struct wire_part_iter *it, const struct wire_data *d);

/* Stores the next part in *ret and returns true, or returns false at the end. */
bool wire_parts_next(struct wire_part_iter *it, struct wire_part *ret);

/*
 * The incremental decoder of one connection's byte stream.  Feed it bytes
 * as they arrive, in any split, then call wire_reader_next() until it
 * returns 0.  Once it has returned an error the reader stays failed: the
 * connection is to be dropped and the peer resynced.
 */
struct wire_reader;

/* Returns a new reader, or NULL with errno ENOMEM. */
struct wire_reader *wire_reader_new(void);

/* Frees r and its buffer.  NULL is a no-op. */
void wire_reader_free(struct wire_reader *r);

/*
 * Appends len bytes of data (copied) to r.  Returns 0, -ENOMEM (r is then
 * failed), or the error r already failed with.  A header already buffered
 * is checked at once, so a frame announcing a payload past its limit fails
 * here with -EMSGSIZE instead of being buffered.  Invalidates the frame
 * last returned by wire_reader_next().
 */
int wire_reader_feed(struct wire_reader *r, const void *data, size_t len);

/*
 * Decodes the next complete frame into *ret.  Returns 1 with *ret set (its
 * pointers point into r's buffer, valid until the next call on r), 0 when
 * more bytes are needed (*ret untouched), or, *ret untouched and r failed
 * for good:
 *   -EBADMSG   bad magic, CRC, unknown type or part kind, a length or
 *              field that does not fit the payload or its range;
 *   -EPROTO    another major version;
 *   -EMSGSIZE  the header announces a payload past the type's limit
 *              (found before the payload is buffered), or a chunk's
 *              bytes pass WIRE_MAX_CHUNK;
 *   -ENOMEM    from an earlier wire_reader_feed().
 */
int wire_reader_next(struct wire_reader *r, struct wire_frame *ret);

/* Bytes buffered in r and not yet returned as frames. */
size_t wire_reader_pending(const struct wire_reader *r);

/*
 * The position rule of the stream (rule 2, and the epoch as fencing
 * token): a frame at (epoch, seq) may be applied after (prev_epoch,
 * prev_seq) only when seq == prev_seq + 1 and epoch >= prev_epoch.
 * Returns 0 when it is the next one, -EALREADY when it is a duplicate of
 * or older than what is applied in the same epoch (skip it), -EPROTO for a
 * gap, an older epoch, or an old seq in a newer epoch (diverged history:
 * resync).
 */
int wire_check_next(uint64_t prev_epoch, uint64_t prev_seq, uint64_t epoch, uint64_t seq);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (0 to start). */
uint32_t wire_crc32c(uint32_t crc, const void *data, size_t len);
/* The same by table, on any CPU (wire_crc32c uses the CPU's instruction if it has one). */
uint32_t wire_crc32c_soft(uint32_t crc, const void *data, size_t len);

#endif

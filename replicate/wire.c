/*
 * wire: codec of the replication stream's frames (layout in wire.h) and
 * the incremental reader that cuts them out of a connection's bytes.
 *
 * The reader checks a frame's header as soon as its 16 bytes are there:
 * magic, major version, type and the type's payload limit, so a peer
 * cannot make it buffer a frame it would refuse anyway.  Only then does it
 * wait for the payload, verify the CRC and decode the fields.  Anything
 * wrong fails the reader for good: a stream that lost its framing cannot
 * be trusted again, and the caller drops the connection and resyncs
 * (issue: "a corrupt or out-of-order frame drops the connection and leads
 * to a resync, never to a partial apply").
 *
 * Rule 6: bytes past the fields of version 1 and unknown flag bits are
 * ignored; another major version is -EPROTO.  wire_check_next() holds the
 * position rule the standby applies frames by (epoch as fencing token).
 */
#include "wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t wire_magic[4] = {'T', 'N', 'D', 'M'};

/* Fixed payload sizes of version 1, before any variable part. */
enum {
	HELLO_MIN = 1 + 4 + 4 + 8 + 8 + 8, /* plus the cluster name */
	DATA_FIXED = 8 * 4 + 4,            /* plus the parts */
	PART_HEADER = 1 + 4,
	ACK_LEN = 16,
	SNAPSHOT_BEGIN_LEN = 32,
	CHUNK_FIXED = 8 + 4, /* plus the bytes */
	SNAPSHOT_END_LEN = 8,
	ERROR_FIXED = 4 + 2, /* plus the text */
};

/* CRC-32C, reflected polynomial 0x82F63B78, sliced by 8 for snapshot speed. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
			    (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t
wire_crc32c_soft(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	(void)pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		                        (uint32_t)p[3] << 24);

		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
		      crc_table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The SSE4.2 crc32 instruction computes CRC-32C: about ten times the table's speed. */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;

	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, sizeof(v));
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

static bool crc_hw;
static pthread_once_t hw_once = PTHREAD_ONCE_INIT;

static void
hw_init(void)
{
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
}
#endif

uint32_t
wire_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__) && defined(__GNUC__)
	(void)pthread_once(&hw_once, hw_init);
	if (crc_hw)
		return crc32c_sse42(crc, data, len);
#endif
	return wire_crc32c_soft(crc, data, len);
}

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = n; i > 0; i--)
		v = (v << 8) | p[i - 1];
	return v;
}

/* The largest payload a frame of this type may announce; 0 for an unknown type. */
static size_t
payload_limit(unsigned int type)
{
	switch (type) {
	case WIRE_DATA:
		return WIRE_MAX_DATA;
	case WIRE_SNAPSHOT_CHUNK:
		return (size_t)WIRE_MAX_CHUNK + WIRE_CHUNK_SLACK;
	case WIRE_HELLO:
	case WIRE_ACK:
	case WIRE_SNAPSHOT_BEGIN:
	case WIRE_SNAPSHOT_END:
	case WIRE_ERROR:
		return WIRE_MAX_CONTROL;
	default:
		return 0;
	}
}

/* ---- encoding ---- */

void
wire_buf_release(struct wire_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/*
 * Reserves a frame of plen payload bytes at the end of out and returns a
 * pointer to its payload, or NULL with *err set.  out->len is not moved
 * until frame_finish(), so a failed encoder leaves out as it was.
 */
static uint8_t *
frame_start(struct wire_buf *out, enum wire_type type, uint16_t flags, size_t plen, int *err)
{
	size_t need;
	uint8_t *h;

	if (plen > payload_limit(type)) {
		*err = -EMSGSIZE;
		return NULL;
	}
	need = out->len + WIRE_HEADER_LEN + plen;
	if (need > out->cap) {
		size_t cap = out->cap + out->cap / 2;
		uint8_t *n;

		if (cap < need)
			cap = need;
		n = realloc(out->data, cap);
		if (n == NULL) {
			*err = -ENOMEM;
			return NULL;
		}
		out->data = n;
		out->cap = cap;
	}
	h = out->data + out->len;
	memcpy(h, wire_magic, 4);
	h[4] = WIRE_VERSION;
	h[5] = (uint8_t)type;
	put_le(h + 6, flags, 2);
	put_le(h + 8, plen, 4);
	return h + WIRE_HEADER_LEN;
}

static int
frame_finish(struct wire_buf *out, size_t plen)
{
	uint8_t *h = out->data + out->len;
	uint32_t crc = wire_crc32c(0, h, 12);

	crc = wire_crc32c(crc, h + WIRE_HEADER_LEN, plen);
	put_le(h + 12, crc, 4);
	out->len += WIRE_HEADER_LEN + plen;
	return 0;
}

static int
encode_hello(struct wire_buf *out, uint16_t flags, const struct wire_hello *h)
{
	size_t nlen = strnlen(h->cluster, sizeof(h->cluster));
	size_t plen = HELLO_MIN + nlen;
	uint8_t *p;
	int err;

	if (nlen == 0 || nlen > WIRE_CLUSTER_MAX)
		return -EINVAL;
	p = frame_start(out, WIRE_HELLO, flags, plen, &err);
	if (p == NULL)
		return err;
	p[0] = (uint8_t)nlen;
	memcpy(p + 1, h->cluster, nlen);
	p += 1 + nlen;
	put_le(p, h->node_id, 4);
	put_le(p + 4, h->incarnation, 4);
	put_le(p + 8, h->epoch, 8);
	put_le(p + 16, h->seq, 8);
	put_le(p + 24, h->schema_hash, 8);
	return frame_finish(out, plen);
}

int
wire_encode_hello(struct wire_buf *out, const struct wire_hello *h)
{
	return encode_hello(out, 0, h);
}

static uint8_t *
put_data_fixed(uint8_t *p, const struct wire_data *d, uint32_t count)
{
	put_le(p, d->epoch, 8);
	put_le(p + 8, d->seq, 8);
	put_le(p + 16, d->schema_hash_before, 8);
	put_le(p + 24, d->schema_hash_after, 8);
	put_le(p + 32, count, 4);
	return p + DATA_FIXED;
}

int
wire_encode_data(
    struct wire_buf *out, const struct wire_data *d, const struct wire_part *parts, size_t nparts)
{
	size_t plen = DATA_FIXED;
	uint8_t *p;
	int err;

	if (nparts > UINT32_MAX)
		return -EMSGSIZE;
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].kind != WIRE_PART_CHANGESET && parts[i].kind != WIRE_PART_DDL)
			return -EINVAL;
		if (parts[i].len > WIRE_MAX_DATA)
			return -EMSGSIZE;
		plen += PART_HEADER + parts[i].len;
		if (plen > WIRE_MAX_DATA)
			return -EMSGSIZE;
	}
	p = frame_start(out, WIRE_DATA, 0, plen, &err);
	if (p == NULL)
		return err;
	p = put_data_fixed(p, d, (uint32_t)nparts);
	for (size_t i = 0; i < nparts; i++) {
		p[0] = (uint8_t)parts[i].kind;
		put_le(p + 1, parts[i].len, 4);
		if (parts[i].len > 0)
			memcpy(p + PART_HEADER, parts[i].data, parts[i].len);
		p += PART_HEADER + parts[i].len;
	}
	return frame_finish(out, plen);
}

/* Re-encodes a decoded DATA frame: its parts area is already in wire form. */
static int
encode_data_raw(struct wire_buf *out, uint16_t flags, const struct wire_data *d)
{
	size_t plen = DATA_FIXED + d->parts_len;
	uint8_t *p;
	int err;

	if (d->parts_len > WIRE_MAX_DATA)
		return -EMSGSIZE;
	p = frame_start(out, WIRE_DATA, flags, plen, &err);
	if (p == NULL)
		return err;
	p = put_data_fixed(p, d, d->part_count);
	if (d->parts_len > 0)
		memcpy(p, d->parts, d->parts_len);
	return frame_finish(out, plen);
}

static int
encode_ack(struct wire_buf *out, uint16_t flags, const struct wire_ack *a)
{
	int err;
	uint8_t *p = frame_start(out, WIRE_ACK, flags, ACK_LEN, &err);

	if (p == NULL)
		return err;
	put_le(p, a->epoch, 8);
	put_le(p + 8, a->seq, 8);
	return frame_finish(out, ACK_LEN);
}

int
wire_encode_ack(struct wire_buf *out, const struct wire_ack *a)
{
	return encode_ack(out, 0, a);
}

static int
encode_snapshot_begin(struct wire_buf *out, uint16_t flags, const struct wire_snapshot_begin *b)
{
	int err;
	uint8_t *p = frame_start(out, WIRE_SNAPSHOT_BEGIN, flags, SNAPSHOT_BEGIN_LEN, &err);

	if (p == NULL)
		return err;
	put_le(p, b->epoch, 8);
	put_le(p + 8, b->seq, 8);
	put_le(p + 16, b->total_bytes, 8);
	put_le(p + 24, b->schema_hash, 8);
	return frame_finish(out, SNAPSHOT_BEGIN_LEN);
}

int
wire_encode_snapshot_begin(struct wire_buf *out, const struct wire_snapshot_begin *b)
{
	return encode_snapshot_begin(out, 0, b);
}

static int
encode_snapshot_chunk(struct wire_buf *out, uint16_t flags, const struct wire_snapshot_chunk *c)
{
	size_t plen = CHUNK_FIXED + (size_t)c->len;
	uint8_t *p;
	int err;

	if (c->len > WIRE_MAX_CHUNK)
		return -EMSGSIZE;
	p = frame_start(out, WIRE_SNAPSHOT_CHUNK, flags, plen, &err);
	if (p == NULL)
		return err;
	put_le(p, c->offset, 8);
	put_le(p + 8, c->len, 4);
	if (c->len > 0)
		memcpy(p + CHUNK_FIXED, c->data, c->len);
	return frame_finish(out, plen);
}

int
wire_encode_snapshot_chunk(struct wire_buf *out, const struct wire_snapshot_chunk *c)
{
	return encode_snapshot_chunk(out, 0, c);
}

static int
encode_snapshot_end(struct wire_buf *out, uint16_t flags, const struct wire_snapshot_end *e)
{
	int err;
	uint8_t *p = frame_start(out, WIRE_SNAPSHOT_END, flags, SNAPSHOT_END_LEN, &err);

	if (p == NULL)
		return err;
	put_le(p, e->hash, 8);
	return frame_finish(out, SNAPSHOT_END_LEN);
}

int
wire_encode_snapshot_end(struct wire_buf *out, const struct wire_snapshot_end *e)
{
	return encode_snapshot_end(out, 0, e);
}

static int
encode_error(struct wire_buf *out, uint16_t flags, uint32_t code, const char *text)
{
	size_t tlen = text != NULL ? strnlen(text, WIRE_TEXT_MAX) : 0;
	size_t plen = ERROR_FIXED + tlen;
	uint8_t *p;
	int err;

	p = frame_start(out, WIRE_ERROR, flags, plen, &err);
	if (p == NULL)
		return err;
	put_le(p, code, 4);
	put_le(p + 4, tlen, 2);
	if (tlen > 0)
		memcpy(p + ERROR_FIXED, text, tlen);
	return frame_finish(out, plen);
}

int
wire_encode_error(struct wire_buf *out, uint32_t code, const char *text)
{
	return encode_error(out, 0, code, text);
}

int
wire_encode_frame(struct wire_buf *out, const struct wire_frame *f)
{
	switch (f->type) {
	case WIRE_HELLO:
		return encode_hello(out, f->flags, &f->u.hello);
	case WIRE_DATA:
		return encode_data_raw(out, f->flags, &f->u.data);
	case WIRE_ACK:
		return encode_ack(out, f->flags, &f->u.ack);
	case WIRE_SNAPSHOT_BEGIN:
		return encode_snapshot_begin(out, f->flags, &f->u.snapshot_begin);
	case WIRE_SNAPSHOT_CHUNK:
		return encode_snapshot_chunk(out, f->flags, &f->u.snapshot_chunk);
	case WIRE_SNAPSHOT_END:
		return encode_snapshot_end(out, f->flags, &f->u.snapshot_end);
	case WIRE_ERROR:
		return encode_error(out, f->flags, f->u.error.code, f->u.error.text);
	default:
		return -EINVAL;
	}
}

/* ---- decoding ---- */

void
wire_parts_init(struct wire_part_iter *it, const struct wire_data *d)
{
	it->p = d->parts;
	it->left = d->part_count;
}

bool
wire_parts_next(struct wire_part_iter *it, struct wire_part *ret)
{
	/* The decoder checked every kind and length, so this cannot overrun. */
	if (it->left == 0)
		return false;
	ret->kind = (enum wire_part_kind)it->p[0];
	ret->len = (uint32_t)get_le(it->p + 1, 4);
	ret->data = it->p + PART_HEADER;
	it->p += PART_HEADER + ret->len;
	it->left--;
	return true;
}

/* A bounds-checked read position in a payload; bad sticks once set. */
struct cursor {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *
take(struct cursor *c, size_t n)
{
	const uint8_t *p = c->p;

	if (c->bad || n > c->left) {
		c->bad = true;
		return NULL;
	}
	c->p += n;
	c->left -= n;
	return p;
}

static uint64_t
take_le(struct cursor *c, size_t n)
{
	const uint8_t *p = take(c, n);

	return p != NULL ? get_le(p, n) : 0;
}

/* Copies a u8/u16-length string of 1..max (or 0..max) bytes without NUL into dst. */
static void
take_string(struct cursor *c, size_t lenbytes, size_t min, size_t max, char *dst)
{
	size_t n = (size_t)take_le(c, lenbytes);
	const uint8_t *p;

	if (c->bad)
		return;
	if (n < min || n > max) {
		c->bad = true;
		return;
	}
	p = take(c, n);
	if (p == NULL)
		return;
	if (memchr(p, '\0', n) != NULL) {
		c->bad = true;
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

static int
decode_payload(enum wire_type type, const uint8_t *payload, size_t plen, struct wire_frame *f)
{
	struct cursor c = {.p = payload, .left = plen};

	switch (type) {
	case WIRE_HELLO: {
		struct wire_hello *h = &f->u.hello;

		take_string(&c, 1, 1, WIRE_CLUSTER_MAX, h->cluster);
		h->node_id = (uint32_t)take_le(&c, 4);
		h->incarnation = (uint32_t)take_le(&c, 4);
		h->epoch = take_le(&c, 8);
		h->seq = take_le(&c, 8);
		h->schema_hash = take_le(&c, 8);
		break;
	}
	case WIRE_DATA: {
		struct wire_data *d = &f->u.data;

		d->epoch = take_le(&c, 8);
		d->seq = take_le(&c, 8);
		d->schema_hash_before = take_le(&c, 8);
		d->schema_hash_after = take_le(&c, 8);
		d->part_count = (uint32_t)take_le(&c, 4);
		d->parts = c.p;
		/* Each part takes at least 5 bytes, so a lying count ends the loop soon. */
		for (uint32_t i = 0; i < d->part_count && !c.bad; i++) {
			uint64_t kind = take_le(&c, 1);
			uint64_t len = take_le(&c, 4);

			if (kind != WIRE_PART_CHANGESET && kind != WIRE_PART_DDL)
				c.bad = true;
			(void)take(&c, (size_t)len);
		}
		d->parts_len = (size_t)(c.p - d->parts);
		break;
	}
	case WIRE_ACK:
		f->u.ack.epoch = take_le(&c, 8);
		f->u.ack.seq = take_le(&c, 8);
		break;
	case WIRE_SNAPSHOT_BEGIN:
		f->u.snapshot_begin.epoch = take_le(&c, 8);
		f->u.snapshot_begin.seq = take_le(&c, 8);
		f->u.snapshot_begin.total_bytes = take_le(&c, 8);
		f->u.snapshot_begin.schema_hash = take_le(&c, 8);
		break;
	case WIRE_SNAPSHOT_CHUNK: {
		struct wire_snapshot_chunk *k = &f->u.snapshot_chunk;

		k->offset = take_le(&c, 8);
		k->len = (uint32_t)take_le(&c, 4);
		if (!c.bad && k->len > WIRE_MAX_CHUNK)
			return -EMSGSIZE;
		if (k->len > UINT64_MAX - k->offset)
			c.bad = true;
		k->data = take(&c, k->len);
		break;
	}
	case WIRE_SNAPSHOT_END:
		f->u.snapshot_end.hash = take_le(&c, 8);
		break;
	case WIRE_ERROR:
		f->u.error.code = (uint32_t)take_le(&c, 4);
		take_string(&c, 2, 0, WIRE_TEXT_MAX, f->u.error.text);
		break;
	default:
		return -EBADMSG;
	}
	/* Bytes left in c are fields of a newer minor version: ignored (rule 6). */
	return c.bad ? -EBADMSG : 0;
}

struct wire_reader {
	uint8_t *buf;
	size_t cap;
	size_t start; /* pending bytes are buf[start, end) */
	size_t end;
	size_t consumed; /* bytes of the frame last returned, dropped on the next call */
	int error;       /* 0, or the error the reader failed with */
};

struct wire_reader *
wire_reader_new(void)
{
	struct wire_reader *r = calloc(1, sizeof(*r));

	if (r == NULL)
		errno = ENOMEM;
	return r;
}

void
wire_reader_free(struct wire_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r);
}

size_t
wire_reader_pending(const struct wire_reader *r)
{
	return r->end - r->start - r->consumed;
}

static void
drop_consumed(struct wire_reader *r)
{
	r->start += r->consumed;
	r->consumed = 0;
	if (r->start == r->end)
		r->start = r->end = 0;
}

static int
fail(struct wire_reader *r, int err)
{
	r->error = err;
	/* The buffered bytes will never be decoded: give the memory back now. */
	free(r->buf);
	r->buf = NULL;
	r->cap = r->start = r->end = r->consumed = 0;
	return err;
}

/*
 * Checks the header at the front of the pending bytes, if complete.
 * Returns 0 (complete and valid, or not complete yet) or the error r failed with.
 */
static int
check_header(struct wire_reader *r)
{
	const uint8_t *h;

	if (r->end - r->start < WIRE_HEADER_LEN)
		return 0;
	h = r->buf + r->start;
	if (memcmp(h, wire_magic, 4) != 0)
		return fail(r, -EBADMSG);
	if (h[4] != WIRE_VERSION)
		return fail(r, -EPROTO);
	if (payload_limit(h[5]) == 0)
		return fail(r, -EBADMSG);
	if (get_le(h + 8, 4) > payload_limit(h[5]))
		return fail(r, -EMSGSIZE);
	return 0;
}

int
wire_reader_feed(struct wire_reader *r, const void *data, size_t len)
{
	size_t pending;

	if (r->error != 0)
		return r->error;
	drop_consumed(r);
	pending = r->end - r->start;
	if (len > r->cap - r->end) {
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, pending);
			r->start = 0;
			r->end = pending;
		}
		if (len > r->cap - r->end) {
			size_t cap = r->cap + r->cap / 2;
			uint8_t *n;

			if (len > SIZE_MAX / 2 - pending)
				return fail(r, -ENOMEM);
			if (cap < pending + len)
				cap = pending + len;
			if (cap < 4096)
				cap = 4096;
			n = realloc(r->buf, cap);
			if (n == NULL)
				return fail(r, -ENOMEM);
			r->buf = n;
			r->cap = cap;
		}
	}
	if (len > 0)
		memcpy(r->buf + r->end, data, len);
	r->end += len;
	return check_header(r);
}

int
wire_reader_next(struct wire_reader *r, struct wire_frame *ret)
{
	struct wire_frame f;
	const uint8_t *h;
	size_t plen;
	uint32_t crc;
	int err;

	if (r->error != 0)
		return r->error;
	drop_consumed(r);
	if (r->end - r->start < WIRE_HEADER_LEN)
		return 0;
	err = check_header(r);
	if (err != 0)
		return err;
	h = r->buf + r->start;
	plen = (size_t)get_le(h + 8, 4);
	if (r->end - r->start < WIRE_HEADER_LEN + plen)
		return 0;
	crc = wire_crc32c(0, h, 12);
	crc = wire_crc32c(crc, h + WIRE_HEADER_LEN, plen);
	if (crc != (uint32_t)get_le(h + 12, 4))
		return fail(r, -EBADMSG);
	memset(&f, 0, sizeof(f));
	f.type = (enum wire_type)h[5];
	f.flags = (uint16_t)get_le(h + 6, 2);
	err = decode_payload(f.type, h + WIRE_HEADER_LEN, plen, &f);
	if (err != 0)
		return fail(r, err);
	r->consumed = WIRE_HEADER_LEN + plen;
	*ret = f;
	return 1;
}

int
wire_check_next(uint64_t prev_epoch, uint64_t prev_seq, uint64_t epoch, uint64_t seq)
{
	if (epoch < prev_epoch)
		return -EPROTO;
	if (prev_seq != UINT64_MAX && seq == prev_seq + 1)
		return 0;
	if (seq <= prev_seq)
		return epoch == prev_epoch ? -EALREADY : -EPROTO;
	return -EPROTO;
}

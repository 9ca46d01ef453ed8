/*
 * Unit test of the replication frame codec, linking the real wire.c: round
 * trip of every frame type, every split of the byte stream, and every way
 * a frame can be bad (truncated, oversized, wrong version or magic,
 * corrupted, garbage, unknown type, lying part counts), plus the (epoch,
 * seq) rule the standby applies frames by.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

static const uint8_t changeset[] = {0x54, 0x02, 0x01, 0x6b, 0x76, 0x00, 0x12, 0x00, 0xff};
static const char ddl[] = "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)";
static const uint8_t snapshot_bytes[] = "SQLite format 3\0 and more pages";

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the CRC of the frame at f after a test edited it. */
static void
fix_crc(uint8_t *f)
{
	uint32_t plen =
	    (uint32_t)f[8] | (uint32_t)f[9] << 8 | (uint32_t)f[10] << 16 | (uint32_t)f[11] << 24;
	uint32_t crc = wire_crc32c(0, f, 12);

	crc = wire_crc32c(crc, f + WIRE_HEADER_LEN, plen);
	put_le(f + 12, crc, 4);
}

/* Writes a frame with a valid CRC and any header fields into buf; returns its length. */
static size_t
raw_frame(
    uint8_t *buf, uint8_t version, uint8_t type, uint16_t flags, const void *payload, uint32_t plen)
{
	memcpy(buf, "TNDM", 4);
	buf[4] = version;
	buf[5] = type;
	put_le(buf + 6, flags, 2);
	put_le(buf + 8, plen, 4);
	if (plen > 0)
		memcpy(buf + WIRE_HEADER_LEN, payload, plen);
	fix_crc(buf);
	return WIRE_HEADER_LEN + plen;
}

static struct wire_hello
sample_hello(void)
{
	struct wire_hello h = {
	    .node_id = 2,
	    .incarnation = 0xdeadbeef,
	    .epoch = 0x0102030405060708ull,
	    .seq = 77,
	    .schema_hash = 0xfedcba9876543210ull,
	};

	strcpy(h.cluster, "lab-pair");
	return h;
}

static struct wire_data
sample_data(void)
{
	struct wire_data d = {
	    .epoch = 3,
	    .seq = 0x1122334455667788ull,
	    .schema_hash_before = 0xaaaa,
	    .schema_hash_after = 0xbbbb,
	};
	return d;
}

static const struct wire_part sample_parts[] = {
    {WIRE_PART_DDL, (const uint8_t *)ddl, sizeof(ddl) - 1},
    {WIRE_PART_CHANGESET, changeset, sizeof(changeset)},
    {WIRE_PART_CHANGESET, NULL, 0},
};

/* One frame of every type, in stream order; ends[i] is where frame i ends. */
static size_t
sample_stream(struct wire_buf *b, size_t *ends)
{
	struct wire_hello h = sample_hello();
	struct wire_data d = sample_data();
	struct wire_ack a = {.epoch = 3, .seq = 9};
	struct wire_snapshot_begin sb = {
	    .epoch = 3, .seq = 8, .total_bytes = 4096, .schema_hash = 5};
	struct wire_snapshot_chunk sc = {
	    .offset = 1024, .data = snapshot_bytes, .len = sizeof(snapshot_bytes)};
	struct wire_snapshot_end se = {.hash = 0x0123456789abcdefull};
	size_t n = 0;

	assert_int_equal(wire_encode_hello(b, &h), 0);
	ends[n++] = b->len;
	assert_int_equal(wire_encode_data(b, &d, sample_parts, 3), 0);
	ends[n++] = b->len;
	assert_int_equal(wire_encode_ack(b, &a), 0);
	ends[n++] = b->len;
	assert_int_equal(wire_encode_snapshot_begin(b, &sb), 0);
	ends[n++] = b->len;
	assert_int_equal(wire_encode_snapshot_chunk(b, &sc), 0);
	ends[n++] = b->len;
	assert_int_equal(wire_encode_snapshot_end(b, &se), 0);
	ends[n++] = b->len;
	assert_int_equal(wire_encode_error(b, WIRE_ERR_SCHEMA, "schema hash differs"), 0);
	ends[n++] = b->len;
	return n;
}

/* The reader of the last decode_one(), whose buffer the frame points into. */
static struct wire_reader *last_reader;

/*
 * Feeds len bytes to a new reader and returns the first result of next().
 * The frame stays valid until the next decode_one().
 */
static int
decode_one(const uint8_t *buf, size_t len, struct wire_frame *f)
{
	int feed, ret;

	wire_reader_free(last_reader);
	last_reader = wire_reader_new();
	assert_non_null(last_reader);
	feed = wire_reader_feed(last_reader, buf, len);
	ret = wire_reader_next(last_reader, f);
	/* feed reports only header errors, and the same one next() does. */
	if (feed != 0)
		assert_int_equal(feed, ret);
	return ret;
}

static int
teardown(void **state)
{
	wire_reader_free(last_reader);
	last_reader = NULL;
	return 0;
}

/* The canonical encoding of a decoded frame, to compare frames byte for byte. */
static void
canon(const struct wire_frame *f, struct wire_buf *out)
{
	assert_int_equal(wire_encode_frame(out, f), 0);
}

static void
test_crc32c(void **state)
{
	uint8_t buf[300];

	/* The check value of CRC-32C (RFC 3720, iSCSI). */
	assert_int_equal(wire_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(wire_crc32c(0, "", 0), 0);
	/* The sliced loop agrees with the bytewise tail for every split. */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	for (size_t k = 0; k <= sizeof(buf); k++)
		assert_int_equal(wire_crc32c(wire_crc32c(0, buf, k), buf + k, sizeof(buf) - k),
		    wire_crc32c(0, buf, sizeof(buf)));
	/* The instruction and the table agree, at every length and alignment. */
	{
		static uint8_t big[4096 + 16];
		uint32_t seed = 12345;

		for (size_t k = 0; k < sizeof(big); k++) {
			seed = seed * 1103515245u + 12345u;
			big[k] = (uint8_t)(seed >> 16);
		}
		for (size_t off = 0; off < 16; off++)
			for (size_t n = 0; n <= 4096; n += (n < 64 ? 1 : 61))
				assert_int_equal(wire_crc32c(7, big + off, n),
				    wire_crc32c_soft(7, big + off, n));
		assert_int_equal(wire_crc32c_soft(0, "123456789", 9), 0xE3069283u);
	}
}

static void
test_round_trip(void **state)
{
	struct wire_buf b = {0};
	struct wire_reader *r = wire_reader_new();
	struct wire_frame f;
	struct wire_part_iter it;
	struct wire_part p;
	size_t ends[8];
	size_t n = sample_stream(&b, ends);

	assert_int_equal(n, 7);
	/* Header layout, little-endian whatever the host. */
	assert_memory_equal(b.data, "TNDM", 4);
	assert_int_equal(b.data[4], WIRE_VERSION);
	assert_int_equal(b.data[5], WIRE_HELLO);
	assert_int_equal(b.data[8], ends[0] - WIRE_HEADER_LEN);

	assert_non_null(r);
	assert_int_equal(wire_reader_feed(r, b.data, b.len), 0);

	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.type, WIRE_HELLO);
	assert_int_equal(f.flags, 0);
	assert_string_equal(f.u.hello.cluster, "lab-pair");
	assert_int_equal(f.u.hello.node_id, 2);
	assert_int_equal(f.u.hello.incarnation, 0xdeadbeef);
	assert_true(f.u.hello.epoch == 0x0102030405060708ull);
	assert_int_equal(f.u.hello.seq, 77);
	assert_true(f.u.hello.schema_hash == 0xfedcba9876543210ull);

	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.type, WIRE_DATA);
	assert_int_equal(f.u.data.epoch, 3);
	assert_true(f.u.data.seq == 0x1122334455667788ull);
	assert_int_equal(f.u.data.schema_hash_before, 0xaaaa);
	assert_int_equal(f.u.data.schema_hash_after, 0xbbbb);
	assert_int_equal(f.u.data.part_count, 3);
	wire_parts_init(&it, &f.u.data);
	for (size_t i = 0; i < 3; i++) {
		assert_true(wire_parts_next(&it, &p));
		assert_int_equal(p.kind, sample_parts[i].kind);
		assert_int_equal(p.len, sample_parts[i].len);
		if (p.len > 0)
			assert_memory_equal(p.data, sample_parts[i].data, p.len);
	}
	assert_false(wire_parts_next(&it, &p));

	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.type, WIRE_ACK);
	assert_int_equal(f.u.ack.epoch, 3);
	assert_int_equal(f.u.ack.seq, 9);

	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.type, WIRE_SNAPSHOT_BEGIN);
	assert_int_equal(f.u.snapshot_begin.epoch, 3);
	assert_int_equal(f.u.snapshot_begin.seq, 8);
	assert_int_equal(f.u.snapshot_begin.total_bytes, 4096);
	assert_int_equal(f.u.snapshot_begin.schema_hash, 5);

	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.type, WIRE_SNAPSHOT_CHUNK);
	assert_int_equal(f.u.snapshot_chunk.offset, 1024);
	assert_int_equal(f.u.snapshot_chunk.len, sizeof(snapshot_bytes));
	assert_memory_equal(f.u.snapshot_chunk.data, snapshot_bytes, sizeof(snapshot_bytes));

	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.type, WIRE_SNAPSHOT_END);
	assert_true(f.u.snapshot_end.hash == 0x0123456789abcdefull);

	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.type, WIRE_ERROR);
	assert_int_equal(f.u.error.code, WIRE_ERR_SCHEMA);
	assert_string_equal(f.u.error.text, "schema hash differs");

	assert_int_equal(wire_reader_next(r, &f), 0);
	assert_int_equal(wire_reader_pending(r), 0);
	wire_reader_free(r);
	wire_buf_release(&b);
	wire_buf_release(NULL);
	wire_reader_free(NULL);
}

/* Re-encoding every decoded frame gives back the exact stream. */
static void
test_reencode_identical(void **state)
{
	struct wire_buf b = {0}, again = {0};
	struct wire_reader *r = wire_reader_new();
	struct wire_frame f;
	size_t ends[8];
	int ret;

	(void)sample_stream(&b, ends);
	assert_int_equal(wire_reader_feed(r, b.data, b.len), 0);
	while ((ret = wire_reader_next(r, &f)) == 1)
		canon(&f, &again);
	assert_int_equal(ret, 0);
	assert_int_equal(again.len, b.len);
	assert_memory_equal(again.data, b.data, b.len);
	f.type = (enum wire_type)99;
	assert_int_equal(wire_encode_frame(&again, &f), -EINVAL);
	wire_reader_free(r);
	wire_buf_release(&b);
	wire_buf_release(&again);
}

/* A stream cut after k bytes yields exactly the frames before the cut, then 0. */
static void
test_truncated_everywhere(void **state)
{
	struct wire_buf b = {0};
	struct wire_frame f;
	size_t ends[8];
	size_t n = sample_stream(&b, ends);

	for (size_t k = 0; k < b.len; k++) {
		struct wire_reader *r = wire_reader_new();
		size_t whole = 0, got = 0;
		int ret;

		while (whole < n && ends[whole] <= k)
			whole++;
		assert_int_equal(wire_reader_feed(r, b.data, k), 0);
		while ((ret = wire_reader_next(r, &f)) == 1)
			got++;
		assert_int_equal(ret, 0);
		assert_int_equal(got, whole);
		assert_int_equal(wire_reader_pending(r), k - (whole ? ends[whole - 1] : 0));
		/* The rest arrives: every remaining frame comes out. */
		assert_int_equal(wire_reader_feed(r, b.data + k, b.len - k), 0);
		while ((ret = wire_reader_next(r, &f)) == 1)
			got++;
		assert_int_equal(ret, 0);
		assert_int_equal(got, n);
		wire_reader_free(r);
	}
	wire_buf_release(&b);
}

static void
test_one_byte_at_a_time(void **state)
{
	struct wire_buf b = {0}, again = {0};
	struct wire_reader *r = wire_reader_new();
	struct wire_frame f;
	size_t ends[8];
	size_t n = sample_stream(&b, ends), got = 0;

	for (size_t i = 0; i < b.len; i++) {
		int ret;

		assert_int_equal(wire_reader_feed(r, b.data + i, 1), 0);
		ret = wire_reader_next(r, &f);
		if (i + 1 == ends[got]) {
			assert_int_equal(ret, 1);
			canon(&f, &again);
			got++;
			assert_int_equal(wire_reader_next(r, &f), 0);
		} else {
			assert_int_equal(ret, 0);
		}
	}
	assert_int_equal(got, n);
	assert_int_equal(again.len, b.len);
	assert_memory_equal(again.data, b.data, b.len);
	wire_reader_free(r);
	wire_buf_release(&b);
	wire_buf_release(&again);
}

/* The header alone says too big: refused before any payload is buffered. */
static void
test_oversized(void **state)
{
	static const struct {
		uint8_t type;
		uint32_t len;
	} cases[] = {
	    {WIRE_DATA, WIRE_MAX_DATA + 1},
	    {WIRE_DATA, UINT32_MAX},
	    {WIRE_SNAPSHOT_CHUNK, WIRE_MAX_CHUNK + WIRE_CHUNK_SLACK + 1},
	    {WIRE_ACK, WIRE_MAX_CONTROL + 1},
	    {WIRE_HELLO, WIRE_MAX_CONTROL + 1},
	    {WIRE_ERROR, WIRE_MAX_CONTROL + 1},
	};
	uint8_t h[WIRE_HEADER_LEN];
	struct wire_frame f;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wire_reader *r = wire_reader_new();
		uint8_t more[64] = {0};

		(void)raw_frame(h, WIRE_VERSION, cases[i].type, 0, NULL, 0);
		put_le(h + 8, cases[i].len, 4);
		assert_int_equal(wire_reader_feed(r, h, sizeof(h)), -EMSGSIZE);
		assert_int_equal(wire_reader_pending(r), 0);
		assert_int_equal(wire_reader_next(r, &f), -EMSGSIZE);
		/* Failed for good: later bytes are not buffered either. */
		assert_int_equal(wire_reader_feed(r, more, sizeof(more)), -EMSGSIZE);
		assert_int_equal(wire_reader_pending(r), 0);
		wire_reader_free(r);
	}
}

static void
test_size_limits(void **state)
{
	struct wire_buf b = {0};
	struct wire_data d = sample_data();
	struct wire_part big[2] = {
	    {WIRE_PART_CHANGESET, changeset, WIRE_MAX_DATA - 100},
	    {WIRE_PART_CHANGESET, changeset, 100},
	};
	struct wire_snapshot_chunk c = {.offset = 0, .len = WIRE_MAX_CHUNK + 1};
	uint8_t *chunk = calloc(1, WIRE_MAX_CHUNK);
	uint8_t payload[16];
	uint8_t frame[WIRE_HEADER_LEN + sizeof(payload)];
	struct wire_frame f;

	/* The encoder checks sizes before reading the parts. */
	assert_int_equal(wire_encode_data(&b, &d, big, 2), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	assert_int_equal(wire_encode_snapshot_chunk(&b, &c), -EMSGSIZE);
	assert_int_equal(b.len, 0);

	/* A chunk of exactly the limit goes through. */
	assert_non_null(chunk);
	chunk[WIRE_MAX_CHUNK - 1] = 0x5a;
	c.data = chunk;
	c.len = WIRE_MAX_CHUNK;
	c.offset = 7 * (uint64_t)WIRE_MAX_CHUNK;
	assert_int_equal(wire_encode_snapshot_chunk(&b, &c), 0);
	assert_int_equal(decode_one(b.data, b.len, &f), 1);
	assert_int_equal(f.u.snapshot_chunk.len, WIRE_MAX_CHUNK);
	assert_int_equal(f.u.snapshot_chunk.offset, 7 * (uint64_t)WIRE_MAX_CHUNK);
	free(chunk);

	/* A chunk whose own length passes the limit inside an allowed payload. */
	memset(payload, 0, sizeof(payload));
	put_le(payload + 8, WIRE_MAX_CHUNK + 1, 4);
	(void)raw_frame(frame, WIRE_VERSION, WIRE_SNAPSHOT_CHUNK, 0, payload, sizeof(payload));
	assert_int_equal(decode_one(frame, sizeof(frame), &f), -EMSGSIZE);
	/* A chunk whose offset + length wraps. */
	put_le(payload, UINT64_MAX - 2, 8);
	put_le(payload + 8, 4, 4);
	(void)raw_frame(frame, WIRE_VERSION, WIRE_SNAPSHOT_CHUNK, 0, payload, 16);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 16, &f), -EBADMSG);
	wire_buf_release(&b);
}

static void
test_wrong_version(void **state)
{
	struct wire_buf b = {0};
	struct wire_ack a = {.epoch = 1, .seq = 1};
	struct wire_frame f;
	static const uint8_t versions[] = {0, WIRE_VERSION + 1, 0xff};

	assert_int_equal(wire_encode_ack(&b, &a), 0);
	for (size_t i = 0; i < sizeof(versions); i++) {
		b.data[4] = versions[i];
		fix_crc(b.data);
		assert_int_equal(decode_one(b.data, b.len, &f), -EPROTO);
		/* Known from the header alone. */
		assert_int_equal(decode_one(b.data, WIRE_HEADER_LEN, &f), -EPROTO);
	}
	wire_buf_release(&b);
}

static void
test_bad_magic(void **state)
{
	struct wire_buf b = {0};
	struct wire_ack a = {.epoch = 1, .seq = 1};
	struct wire_frame f;

	assert_int_equal(wire_encode_ack(&b, &a), 0);
	for (size_t i = 0; i < 4; i++) {
		b.data[i] ^= 0x20;
		fix_crc(b.data);
		assert_int_equal(decode_one(b.data, b.len, &f), -EBADMSG);
		assert_int_equal(decode_one(b.data, WIRE_HEADER_LEN, &f), -EBADMSG);
		b.data[i] ^= 0x20;
	}
	wire_buf_release(&b);
}

/*
 * Any single flipped bit, in any frame, is never taken for a valid frame:
 * the decoder fails or waits for bytes that would complete a longer frame,
 * even when a valid frame follows.
 */
static void
test_every_bit_flip(void **state)
{
	struct wire_buf b = {0}, tail = {0};
	struct wire_ack a = {.epoch = 4, .seq = 5};
	size_t ends[8];
	size_t n = sample_stream(&b, ends), failed = 0;

	assert_int_equal(wire_encode_ack(&tail, &a), 0);
	for (size_t i = 0; i < n; i++) {
		size_t start = i ? ends[i - 1] : 0, len = ends[i] - start;
		uint8_t *copy = malloc(len + tail.len);

		assert_non_null(copy);
		for (size_t bit = 0; bit < len * 8; bit++) {
			struct wire_reader *r = wire_reader_new();
			struct wire_frame f;
			int ret;

			memcpy(copy, b.data + start, len);
			memcpy(copy + len, tail.data, tail.len);
			copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			(void)wire_reader_feed(r, copy, len + tail.len);
			ret = wire_reader_next(r, &f);
			assert_true(ret <= 0);
			if (ret < 0) {
				assert_true(ret == -EBADMSG || ret == -EPROTO || ret == -EMSGSIZE);
				failed++;
			}
			wire_reader_free(r);
		}
		free(copy);
	}
	/* Most flips fail at once; only some length flips wait for more. */
	assert_true(failed > ends[n - 1] * 7);
	wire_buf_release(&b);
	wire_buf_release(&tail);
}

static void
test_garbage(void **state)
{
	uint8_t junk[4096];
	uint32_t x = 12345;
	struct wire_buf b = {0};
	struct wire_ack a = {.epoch = 1, .seq = 2};
	struct wire_frame f;
	struct wire_reader *r;

	for (int round = 0; round < 200; round++) {
		size_t len = 1 + x % sizeof(junk);

		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (uint8_t)(x >> 16);
		}
		/* Half the rounds start with a plausible magic and version. */
		if (round % 2 && len >= 6) {
			memcpy(junk, "TNDM", 4);
			junk[4] = WIRE_VERSION;
		}
		assert_true(decode_one(junk, len, &f) <= 0);
	}

	/* A valid frame followed by garbage: the frame, then failure for good. */
	assert_int_equal(wire_encode_ack(&b, &a), 0);
	r = wire_reader_new();
	assert_int_equal(wire_reader_feed(r, b.data, b.len), 0);
	assert_int_equal(wire_reader_feed(r, "garbage-garbage-garbage", 23), 0);
	assert_int_equal(wire_reader_next(r, &f), 1);
	assert_int_equal(f.u.ack.seq, 2);
	assert_int_equal(wire_reader_next(r, &f), -EBADMSG);
	/* A valid frame after the failure is not accepted. */
	assert_int_equal(wire_reader_feed(r, b.data, b.len), -EBADMSG);
	assert_int_equal(wire_reader_next(r, &f), -EBADMSG);
	wire_reader_free(r);
	wire_buf_release(&b);
}

static void
test_unknown_type(void **state)
{
	static const uint8_t types[] = {0, WIRE_ERROR + 1, 0x80, 0xff};
	uint8_t payload[16] = {0}, frame[WIRE_HEADER_LEN + sizeof(payload)];
	struct wire_frame f;

	for (size_t i = 0; i < sizeof(types); i++) {
		(void)raw_frame(frame, WIRE_VERSION, types[i], 0, payload, sizeof(payload));
		assert_int_equal(decode_one(frame, sizeof(frame), &f), -EBADMSG);
		assert_int_equal(decode_one(frame, WIRE_HEADER_LEN, &f), -EBADMSG);
	}
}

/*
 * Rule 6: a newer minor version appends fields and sets flags; a reader of
 * this version decodes what it knows and ignores the rest.
 */
static void
test_trailing_fields_ignored(void **state)
{
	struct wire_buf b = {0}, canon_old = {0}, canon_new = {0};
	size_t ends[8];
	size_t n = sample_stream(&b, ends);
	static const uint8_t extra[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

	for (size_t i = 0; i < n; i++) {
		size_t start = i ? ends[i - 1] : 0, len = ends[i] - start;
		uint8_t *ext = malloc(len + sizeof(extra));
		struct wire_frame f_old, f_new;

		assert_non_null(ext);
		memcpy(ext, b.data + start, len);
		memcpy(ext + len, extra, sizeof(extra));
		put_le(ext + 8, len - WIRE_HEADER_LEN + sizeof(extra), 4);
		put_le(ext + 6, 0x8001, 2);
		fix_crc(ext);
		canon_old.len = canon_new.len = 0;
		assert_int_equal(decode_one(b.data + start, len, &f_old), 1);
		canon(&f_old, &canon_old);
		assert_int_equal(decode_one(ext, len + sizeof(extra), &f_new), 1);
		assert_int_equal(f_new.flags, 0x8001);
		f_new.flags = 0;
		canon(&f_new, &canon_new);
		assert_int_equal(canon_old.len, canon_new.len);
		assert_memory_equal(canon_old.data, canon_new.data, canon_old.len);
		free(ext);
	}
	wire_buf_release(&b);
	wire_buf_release(&canon_old);
	wire_buf_release(&canon_new);
}

/* A DATA payload: the fixed fields, then count, then raw part bytes. */
static size_t
data_payload(uint8_t *p, uint32_t count, const uint8_t *parts, size_t parts_len)
{
	memset(p, 0, 32);
	put_le(p + 8, 42, 8);
	put_le(p + 32, count, 4);
	memcpy(p + 36, parts, parts_len);
	return 36 + parts_len;
}

static void
test_parts_lying(void **state)
{
	/* Two parts: DDL "abc", changeset of 2 bytes. */
	static const uint8_t two[] = {2, 3, 0, 0, 0, 'a', 'b', 'c', 1, 2, 0, 0, 0, 0xee, 0xff};
	static const uint8_t long_len[] = {1, 0xff, 0xff, 0xff, 0xff, 0};
	static const uint8_t past_end[] = {1, 4, 0, 0, 0, 1, 2, 3};
	static const uint8_t bad_kind[] = {3, 1, 0, 0, 0, 9};
	static const uint8_t zero_kind[] = {0, 1, 0, 0, 0, 9};
	static const uint8_t cut_header[] = {1, 1, 0};
	uint8_t payload[128], frame[WIRE_HEADER_LEN + sizeof(payload)];
	struct wire_frame f;
	struct wire_part_iter it;
	struct wire_part p;
	size_t plen;

	/* The honest frame. */
	plen = data_payload(payload, 2, two, sizeof(two));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), 1);
	assert_int_equal(f.u.data.part_count, 2);
	assert_int_equal(f.u.data.seq, 42);

	/* More parts announced than present. */
	static const uint32_t counts[] = {3, 255, UINT32_MAX};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		plen = data_payload(payload, counts[i], two, sizeof(two));
		(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
		assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), -EBADMSG);
	}
	/* A part longer than the payload, or running past its end. */
	plen = data_payload(payload, 1, long_len, sizeof(long_len));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), -EBADMSG);
	plen = data_payload(payload, 1, past_end, sizeof(past_end));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), -EBADMSG);
	/* A part header cut short. */
	plen = data_payload(payload, 1, cut_header, sizeof(cut_header));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), -EBADMSG);
	/* Unknown part kinds are refused, never skipped. */
	plen = data_payload(payload, 1, bad_kind, sizeof(bad_kind));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), -EBADMSG);
	plen = data_payload(payload, 1, zero_kind, sizeof(zero_kind));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), -EBADMSG);
	/* Fewer announced than present: the rest is a newer field, ignored. */
	plen = data_payload(payload, 1, two, sizeof(two));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, (uint32_t)plen);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + plen, &f), 1);
	wire_parts_init(&it, &f.u.data);
	assert_true(wire_parts_next(&it, &p));
	assert_int_equal(p.kind, WIRE_PART_DDL);
	assert_int_equal(p.len, 3);
	assert_false(wire_parts_next(&it, &p));
	/* The fixed fields cut short. */
	(void)raw_frame(frame, WIRE_VERSION, WIRE_DATA, 0, payload, 35);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 35, &f), -EBADMSG);
}

static void
test_short_fields(void **state)
{
	uint8_t payload[64] = {0}, frame[WIRE_HEADER_LEN + sizeof(payload)];
	struct wire_frame f;
	static const struct {
		uint8_t type;
		uint32_t min;
	} cases[] = {
	    {WIRE_ACK, 16},
	    {WIRE_SNAPSHOT_BEGIN, 32},
	    {WIRE_SNAPSHOT_END, 8},
	    {WIRE_SNAPSHOT_CHUNK, 12},
	    {WIRE_ERROR, 6},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (uint32_t len = 0; len < cases[i].min; len++) {
			(void)raw_frame(frame, WIRE_VERSION, cases[i].type, 0, payload, len);
			assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + len, &f), -EBADMSG);
		}
		(void)raw_frame(frame, WIRE_VERSION, cases[i].type, 0, payload, cases[i].min);
		assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + cases[i].min, &f), 1);
	}
}

static void
test_strings(void **state)
{
	struct wire_buf b = {0};
	struct wire_hello h = sample_hello();
	struct wire_frame f;
	uint8_t payload[WIRE_TEXT_MAX + 64], frame[WIRE_HEADER_LEN + sizeof(payload)];
	char text[WIRE_TEXT_MAX + 100];

	/* Encoder: empty or unterminated (too long) cluster names. */
	h.cluster[0] = '\0';
	assert_int_equal(wire_encode_hello(&b, &h), -EINVAL);
	memset(h.cluster, 'x', sizeof(h.cluster));
	assert_int_equal(wire_encode_hello(&b, &h), -EINVAL);
	assert_int_equal(b.len, 0);
	/* The longest name goes through. */
	h.cluster[WIRE_CLUSTER_MAX] = '\0';
	assert_int_equal(wire_encode_hello(&b, &h), 0);
	assert_int_equal(decode_one(b.data, b.len, &f), 1);
	assert_int_equal(strlen(f.u.hello.cluster), WIRE_CLUSTER_MAX);

	/* Decoder: name length 0, past the limit, past the payload, or with a NUL. */
	memset(payload, 0, sizeof(payload));
	(void)raw_frame(frame, WIRE_VERSION, WIRE_HELLO, 0, payload, 33);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 33, &f), -EBADMSG);
	payload[0] = WIRE_CLUSTER_MAX + 1;
	memset(payload + 1, 'a', WIRE_CLUSTER_MAX + 1);
	(void)raw_frame(frame, WIRE_VERSION, WIRE_HELLO, 0, payload, 33 + WIRE_CLUSTER_MAX + 1);
	assert_int_equal(
	    decode_one(frame, WIRE_HEADER_LEN + 33 + WIRE_CLUSTER_MAX + 1, &f), -EBADMSG);
	payload[0] = 40;
	(void)raw_frame(frame, WIRE_VERSION, WIRE_HELLO, 0, payload, 30);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 30, &f), -EBADMSG);
	payload[0] = 3;
	memcpy(payload + 1, "a\0b", 3);
	(void)raw_frame(frame, WIRE_VERSION, WIRE_HELLO, 0, payload, 36);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 36, &f), -EBADMSG);
	memcpy(payload + 1, "abc", 3);
	(void)raw_frame(frame, WIRE_VERSION, WIRE_HELLO, 0, payload, 36);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 36, &f), 1);
	assert_string_equal(f.u.hello.cluster, "abc");
	/* A HELLO that ends inside its fixed fields. */
	(void)raw_frame(frame, WIRE_VERSION, WIRE_HELLO, 0, payload, 35);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 35, &f), -EBADMSG);

	/* ERROR text: cut by the encoder, refused by the decoder when too long or with a NUL. */
	b.len = 0;
	memset(text, 'e', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	assert_int_equal(wire_encode_error(&b, 77, text), 0);
	assert_int_equal(decode_one(b.data, b.len, &f), 1);
	assert_int_equal(f.u.error.code, 77);
	assert_int_equal(strlen(f.u.error.text), WIRE_TEXT_MAX);
	b.len = 0;
	assert_int_equal(wire_encode_error(&b, 1, NULL), 0);
	assert_int_equal(decode_one(b.data, b.len, &f), 1);
	assert_string_equal(f.u.error.text, "");
	memset(payload, 'e', sizeof(payload));
	put_le(payload, 1, 4);
	put_le(payload + 4, WIRE_TEXT_MAX + 1, 2);
	(void)raw_frame(frame, WIRE_VERSION, WIRE_ERROR, 0, payload, 6 + WIRE_TEXT_MAX + 1);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 6 + WIRE_TEXT_MAX + 1, &f), -EBADMSG);
	put_le(payload + 4, 3, 2);
	memcpy(payload + 6, "o\0k", 3);
	(void)raw_frame(frame, WIRE_VERSION, WIRE_ERROR, 0, payload, 9);
	assert_int_equal(decode_one(frame, WIRE_HEADER_LEN + 9, &f), -EBADMSG);
	wire_buf_release(&b);
}

static void
test_encoder_refuses(void **state)
{
	struct wire_buf b = {0};
	struct wire_data d = sample_data();
	struct wire_part bad[2] = {
	    {WIRE_PART_CHANGESET, changeset, sizeof(changeset)},
	    {(enum wire_part_kind)3, changeset, 1},
	};
	struct wire_ack a = {.epoch = 1, .seq = 1};
	size_t before;

	assert_int_equal(wire_encode_ack(&b, &a), 0);
	before = b.len;
	assert_int_equal(wire_encode_data(&b, &d, bad, 2), -EINVAL);
	assert_int_equal(b.len, before);
	/* No parts at all is a valid (empty) transaction. */
	assert_int_equal(wire_encode_data(&b, &d, NULL, 0), 0);
	wire_buf_release(&b);
}

/*
 * Frames returned stay valid while the caller works, until the next call,
 * and the buffer compacts and grows under a stream fed in uneven pieces.
 */
static void
test_pointers_into_buffer(void **state)
{
	struct wire_buf b = {0};
	struct wire_reader *r = wire_reader_new();
	uint8_t data[1000];
	struct wire_snapshot_chunk c = {.data = data, .len = sizeof(data)};
	struct wire_frame f;
	size_t got = 0;
	int ret;

	for (int i = 0; i < 100; i++) {
		memset(data, i, sizeof(data));
		c.offset = (uint64_t)i * sizeof(data);
		c.len = (uint32_t)(sizeof(data) - (size_t)i * 7);
		assert_int_equal(wire_encode_snapshot_chunk(&b, &c), 0);
	}
	for (size_t off = 0, step = 1; off < b.len; off += step, step = step * 7 % 2999 + 1) {
		size_t n = off + step > b.len ? b.len - off : step;

		assert_int_equal(wire_reader_feed(r, b.data + off, n), 0);
		while ((ret = wire_reader_next(r, &f)) == 1) {
			assert_int_equal(f.type, WIRE_SNAPSHOT_CHUNK);
			assert_int_equal(f.u.snapshot_chunk.offset, got * sizeof(data));
			assert_int_equal(f.u.snapshot_chunk.len, sizeof(data) - got * 7);
			memset(data, (int)got, sizeof(data));
			assert_memory_equal(f.u.snapshot_chunk.data, data, f.u.snapshot_chunk.len);
			got++;
		}
		assert_int_equal(ret, 0);
	}
	assert_int_equal(got, 100);
	assert_int_equal(wire_reader_pending(r), 0);
	wire_reader_free(r);
	wire_buf_release(&b);
}

static void
test_check_next(void **state)
{
	/* The next one, in the same or a newer epoch. */
	assert_int_equal(wire_check_next(3, 10, 3, 11), 0);
	assert_int_equal(wire_check_next(3, 10, 4, 11), 0);
	assert_int_equal(wire_check_next(0, 0, 1, 1), 0);
	/* Duplicates and older ones of the same epoch: skip. */
	assert_int_equal(wire_check_next(3, 10, 3, 10), -EALREADY);
	assert_int_equal(wire_check_next(3, 10, 3, 2), -EALREADY);
	assert_int_equal(wire_check_next(3, 10, 3, 0), -EALREADY);
	/* A gap. */
	assert_int_equal(wire_check_next(3, 10, 3, 12), -EPROTO);
	assert_int_equal(wire_check_next(3, 10, 4, 12), -EPROTO);
	/* An older epoch, whatever its seq: the fencing token. */
	assert_int_equal(wire_check_next(3, 10, 2, 11), -EPROTO);
	assert_int_equal(wire_check_next(3, 10, 2, 10), -EPROTO);
	assert_int_equal(wire_check_next(3, 10, 0, 5), -EPROTO);
	/* A newer epoch that rewinds: the histories diverged. */
	assert_int_equal(wire_check_next(3, 10, 4, 10), -EPROTO);
	assert_int_equal(wire_check_next(3, 10, 4, 9), -EPROTO);
	/* The end of the sequence space does not wrap. */
	assert_int_equal(wire_check_next(3, UINT64_MAX, 3, 0), -EALREADY);
	assert_int_equal(wire_check_next(3, UINT64_MAX, 4, 0), -EPROTO);
	assert_int_equal(wire_check_next(3, UINT64_MAX - 1, 3, UINT64_MAX), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_reencode_identical),
	    cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_one_byte_at_a_time),
	    cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_wrong_version),
	    cmocka_unit_test(test_bad_magic),
	    cmocka_unit_test(test_every_bit_flip),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_unknown_type),
	    cmocka_unit_test(test_trailing_fields_ignored),
	    cmocka_unit_test(test_parts_lying),
	    cmocka_unit_test(test_short_fields),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_encoder_refuses),
	    cmocka_unit_test(test_pointers_into_buffer),
	    cmocka_unit_test(test_check_next),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}

/*
 * Fuzz harness of the replication frame codec (replicate/wire.c).
 *
 * The input is a byte stream as a peer could send it.  Three properties
 * are checked, beyond the sanitizers' memory and undefined-behaviour
 * checks: the frames and the final status do not depend on how the stream
 * is split into feeds; every decoded DATA frame's parts walk exactly its
 * parts area; and decoding is canonical, i.e. re-encoding the frames and
 * decoding them again gives back the same bytes.  The checks run on the
 * input as is and once more with every frame's CRC made right, so that
 * mutations reach the payload decoder instead of stopping at the CRC.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
check_parts(const struct wire_data *d)
{
	struct wire_part_iter it;
	struct wire_part p;
	uint32_t n = 0;
	size_t bytes = 0;

	wire_parts_init(&it, d);
	while (wire_parts_next(&it, &p)) {
		check(p.kind == WIRE_PART_CHANGESET || p.kind == WIRE_PART_DDL);
		check(p.data >= d->parts && p.data + p.len <= d->parts + d->parts_len);
		bytes += 5 + (size_t)p.len;
		n++;
	}
	check(n == d->part_count);
	check(bytes == d->parts_len);
}

/*
 * Decodes data fed in pieces of the given step sequence (0: all at once),
 * appends the canonical encoding of each frame to out, and returns the
 * final status (0 or the reader's error).
 */
static int
decode_all(const uint8_t *data, size_t size, size_t step, struct wire_buf *out)
{
	struct wire_reader *r = wire_reader_new();
	struct wire_frame f;
	size_t off = 0;
	int ret = 0;

	if (r == NULL)
		abort();
	do {
		size_t n = step == 0 || size - off < step ? size - off : step;
		int feed = wire_reader_feed(r, data + off, n);

		off += n;
		while ((ret = wire_reader_next(r, &f)) == 1) {
			if (f.type == WIRE_DATA)
				check_parts(&f.u.data);
			check(wire_encode_frame(out, &f) == 0);
		}
		check(feed == 0 || feed == ret);
		if (step != 0)
			step = step % 13 + 1;
	} while (off < size && ret == 0);
	wire_reader_free(r);
	return ret;
}

/* Rewrites the CRC of every complete frame the headers of buf delimit. */
static void
fix_crcs(uint8_t *buf, size_t size)
{
	size_t pos = 0;

	while (size - pos >= WIRE_HEADER_LEN) {
		uint8_t *h = buf + pos;
		size_t plen =
		    (size_t)h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 | (size_t)h[11] << 24;
		uint32_t crc;

		if (plen > size - pos - WIRE_HEADER_LEN)
			return;
		crc = wire_crc32c(wire_crc32c(0, h, 12), h + WIRE_HEADER_LEN, plen);
		for (int i = 0; i < 4; i++)
			h[12 + i] = (uint8_t)(crc >> (8 * i));
		pos += WIRE_HEADER_LEN + plen;
	}
}

static void
check_stream(const uint8_t *data, size_t size)
{
	struct wire_buf whole = {0}, pieces = {0}, again = {0};
	int ret_whole, ret_pieces;

	ret_whole = decode_all(data, size, 0, &whole);
	ret_pieces = decode_all(data, size, 1, &pieces);

	check(ret_whole <= 0 && ret_whole == ret_pieces);
	check(whole.len == pieces.len);
	check(whole.len == 0 || memcmp(whole.data, pieces.data, whole.len) == 0);
	if (whole.len > 0) {
		check(decode_all(whole.data, whole.len, 0, &again) == 0);
		check(again.len == whole.len && memcmp(again.data, whole.data, whole.len) == 0);
	}
	wire_buf_release(&whole);
	wire_buf_release(&pieces);
	wire_buf_release(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	if (size == 0)
		return 0;
	check_stream(data, size);
	fixed = malloc(size);
	if (fixed == NULL)
		abort();
	memcpy(fixed, data, size);
	fix_crcs(fixed, size);
	check_stream(fixed, size);
	free(fixed);
	return 0;
}

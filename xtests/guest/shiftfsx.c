// SPDX-License-Identifier: GPL-2.0
/*
 * shiftfsx: fsx-style random operations with collapse and insert range
 * (the fsx crate has neither), checked against a model of the file in
 * memory after every read and in whole every 1000 operations and at the
 * end. Operations: write, read, mapwrite, mapread, truncate, punch hole,
 * zero range, fallocate, collapse range, insert range, fsync.
 *
 *   shiftfsx FILE OPS SEED [MAXLEN]
 *
 * MAXLEN (default 16 MiB) bounds the file. Operations are 4 KiB-aligned
 * where the call demands it (collapse/insert), byte-aligned otherwise.
 * Prints each kind's count; exits 1 on the first mismatch or unexpected
 * error, with the last operations.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK 4096ULL
#define MAXOP (256 * 1024ULL)
#define HIST 32

enum op { WRITE, READ, MAPWRITE, MAPREAD, TRUNCATE, PUNCH, ZERO, FALLOC, COLLAPSE, INSERT, FSYNC, NOPS };
static const char *names[NOPS] = { "write", "read", "mapwrite", "mapread", "truncate", "punch",
				   "zero", "falloc", "collapse", "insert", "fsync" };
static const int weights[NOPS] = { 10, 8, 4, 4, 3, 3, 2, 2, 4, 4, 1 };

static uint64_t rng;
static uint64_t maxlen = 16ULL << 20;
static unsigned char *model, *buf;
static uint64_t size;
static int fd;
static long counts[NOPS];
static char hist[HIST][96];
static long opno;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void dump_and_die(const char *fmt, const char *what, uint64_t a, uint64_t b)
{
	fprintf(stderr, "shiftfsx: op %ld: ", opno);
	fprintf(stderr, fmt, what, (unsigned long long)a, (unsigned long long)b);
	fprintf(stderr, "\nlast operations (newest last):\n");
	for (long i = opno - HIST + 1; i <= opno; i++)
		if (i >= 0 && hist[i % HIST][0])
			fprintf(stderr, "  %ld %s\n", i, hist[i % HIST]);
	exit(1);
}

static void fail_errno(const char *what, uint64_t a, uint64_t b)
{
	char f[128];

	snprintf(f, sizeof(f), "%%s %%llu %%llu: %s", strerror(errno));
	dump_and_die(f, what, a, b);
}

static void check(const unsigned char *got, uint64_t off, uint64_t len, const char *what)
{
	for (uint64_t i = 0; i < len; i++)
		if (got[i] != model[off + i])
			dump_and_die("%s: mismatch at byte %llu (of %llu read)", what, off + i, len);
}

static void check_size(void)
{
	struct stat st;

	if (fstat(fd, &st))
		fail_errno("fstat", 0, 0);
	if ((uint64_t)st.st_size != size)
		dump_and_die("%s: size %llu, model %llu", "fstat", st.st_size, size);
}

static void verify_all(void)
{
	uint64_t off = 0;

	check_size();
	while (off < size) {
		uint64_t n = size - off < MAXOP ? size - off : MAXOP;
		ssize_t r = pread(fd, buf, n, off);

		if (r != (ssize_t)n)
			fail_errno("pread (verify)", off, n);
		check(buf, off, n, "verify");
		off += n;
	}
}

static void fill(unsigned char *p, uint64_t n)
{
	unsigned char v = rnd();

	for (uint64_t i = 0; i < n; i++)
		p[i] = v + i * 7 + (i >> 9);
}

/* A range inside [0, lim) (lim > 0), byte-aligned. */
static void range(uint64_t lim, uint64_t *off, uint64_t *len)
{
	*off = below(lim);
	*len = 1 + below(MAXOP < lim - *off ? MAXOP : lim - *off);
}

static void falloc(int mode, uint64_t off, uint64_t len, const char *what)
{
	if (fallocate(fd, mode, off, len))
		fail_errno(what, off, len);
}

static void step(enum op op)
{
	uint64_t off = 0, len = 0;
	unsigned char *m;

	switch (op) {
	case WRITE:
		range(maxlen, &off, &len);
		fill(buf, len);
		if (pwrite(fd, buf, len, off) != (ssize_t)len)
			fail_errno("pwrite", off, len);
		memcpy(model + off, buf, len);
		if (off + len > size)
			size = off + len;
		break;
	case READ:
		if (!size)
			return;
		range(size, &off, &len);
		if (pread(fd, buf, len, off) != (ssize_t)len)
			fail_errno("pread", off, len);
		check(buf, off, len, "read");
		break;
	case MAPWRITE:
	case MAPREAD: {
		if (!size)
			return;
		range(size, &off, &len);
		uint64_t base = off & ~(BLK - 1);
		uint64_t mlen = off + len - base;

		m = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, base);
		if (m == MAP_FAILED)
			fail_errno("mmap", base, mlen);
		if (op == MAPWRITE) {
			fill(m + (off - base), len);
			memcpy(model + off, m + (off - base), len);
			if (msync(m, mlen, MS_SYNC))
				fail_errno("msync", base, mlen);
		} else {
			check(m + (off - base), off, len, "mapread");
		}
		munmap(m, mlen);
		break;
	}
	case TRUNCATE:
		len = below(maxlen);
		if (ftruncate(fd, len))
			fail_errno("ftruncate", len, 0);
		if (len > size)
			memset(model + size, 0, len - size);
		else
			memset(model + len, 0, size - len);
		size = len;
		break;
	case PUNCH:
	case ZERO:
		if (!size)
			return;
		range(size, &off, &len);
		falloc(op == PUNCH ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE,
		       off, len, names[op]);
		memset(model + off, 0, len);
		break;
	case FALLOC:
		range(maxlen, &off, &len);
		falloc(0, off, len, "fallocate");
		if (off + len > size) {
			memset(model + size, 0, off + len - size);
			size = off + len;
		}
		break;
	case COLLAPSE: {
		uint64_t blocks = size / BLK;

		/* off + len must stay below the size. */
		if (blocks < 2)
			return;
		off = below(blocks - 1) * BLK;
		len = (1 + below((size - off - 1) / BLK < 64 ? (size - off - 1) / BLK : 64)) * BLK;
		if (off + len >= size)
			return;
		falloc(FALLOC_FL_COLLAPSE_RANGE, off, len, "collapse");
		memmove(model + off, model + off + len, size - off - len);
		memset(model + size - len, 0, len);
		size -= len;
		break;
	}
	case INSERT: {
		uint64_t blocks = size / BLK;

		if (!blocks)
			return;
		off = below(blocks) * BLK;
		len = (1 + below(64)) * BLK;
		if (size + len > maxlen)
			return;
		falloc(FALLOC_FL_INSERT_RANGE, off, len, "insert");
		memmove(model + off + len, model + off, size - off);
		memset(model + off, 0, len);
		size += len;
		break;
	}
	case FSYNC:
		if (fsync(fd))
			fail_errno("fsync", 0, 0);
		break;
	default:
		return;
	}
	counts[op]++;
	snprintf(hist[opno % HIST], sizeof(hist[0]), "%s %llu %llu -> size %llu", names[op],
		 (unsigned long long)off, (unsigned long long)len, (unsigned long long)size);
}

int main(int argc, char **argv)
{
	long ops;
	int total = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: shiftfsx FILE OPS SEED [MAXLEN]\n");
		return 2;
	}
	ops = atol(argv[2]);
	rng = strtoull(argv[3], NULL, 0) * 0x9E3779B97F4A7C15ULL + 1;
	if (argc > 4)
		maxlen = strtoull(argv[4], NULL, 0);
	model = calloc(1, maxlen + MAXOP);
	buf = malloc(MAXOP);
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (!model || !buf || fd < 0) {
		perror("shiftfsx: setup");
		return 2;
	}
	for (int i = 0; i < NOPS; i++)
		total += weights[i];
	for (opno = 0; opno < ops; opno++) {
		int w = below(total), op = 0;

		while (w >= weights[op])
			w -= weights[op++];
		step(op);
		if (opno % 1000 == 999)
			verify_all();
	}
	verify_all();
	for (int i = 0; i < NOPS; i++)
		printf("%s %ld\n", names[i], counts[i]);
	printf("shiftfsx: %ld operations, file %llu bytes, no mismatch\n", ops,
	       (unsigned long long)size);
	return 0;
}

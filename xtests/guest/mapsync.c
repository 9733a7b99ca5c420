// SPDX-License-Identifier: GPL-2.0
/*
 * MAP_SYNC durability workload and checker (vm-tests/mapsync_crash.sh).
 *
 *   mapsync crash FILE REPORT SEED [MAXBYTES]
 *     Creates FILE, maps MAXBYTES (default 256 MiB) of it with
 *     MAP_SHARED_VALIDATE | MAP_SYNC, prints "@@crash-armed", then loops:
 *     ftruncate to a larger size, store a pattern into the new bytes
 *     (through the mapping only), flush the lines (clwb, else clflushopt,
 *     else clflush) and sfence, then append the new size to REPORT and
 *     print it ("flushed N"). No msync, no fsync: with MAP_SYNC the write
 *     faults made the blocks durable, the flushes the data.
 *   mapsync verify FILE REPORT SEED
 *     Every byte below the last size in REPORT must hold the pattern.
 *   mapsync probe FILE
 *     Exit 0 if MAP_SHARED_VALIDATE | MAP_SYNC maps FILE, else print errno.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

static uint64_t pattern(uint64_t off, uint64_t seed)
{
	return (off + 1) * 0x9E3779B97F4A7C15ull ^ (seed << 32 | seed);
}

enum flush_kind { CLWB, CLFLUSHOPT, CLFLUSH };

static enum flush_kind detect(void)
{
	unsigned a, b, c, d;

	if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
		if (b & (1u << 24))
			return CLWB;
		if (b & (1u << 23))
			return CLFLUSHOPT;
	}
	return CLFLUSH;
}

static void flush(enum flush_kind k, char *p, size_t len)
{
	char *end = p + len;

	for (p = (char *)((uintptr_t)p & ~63ul); p < end; p += 64) {
		switch (k) {
		case CLWB:
			asm volatile("clwb %0" : "+m"(*p));
			break;
		case CLFLUSHOPT:
			asm volatile("clflushopt %0" : "+m"(*p));
			break;
		case CLFLUSH:
			asm volatile("clflush %0" : "+m"(*p));
			break;
		}
	}
	asm volatile("sfence" ::: "memory");
}

static int crash(const char *file, const char *report, uint64_t seed, uint64_t max)
{
	static const char *names[] = { "clwb", "clflushopt", "clflush" };
	enum flush_kind k = detect();
	uint64_t size = 0, rnd = seed * 2654435761u + 1;
	int fd, rfd;
	char *m;

	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	rfd = open(report, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (fd < 0 || rfd < 0) {
		perror("open");
		return 1;
	}
	m = mmap(NULL, max, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	if (m == MAP_FAILED) {
		perror("mmap MAP_SYNC");
		return 1;
	}
	printf("flush with %s\n@@crash-armed\n", names[k]);
	fflush(stdout);
	while (size < max) {
		uint64_t grow, o;
		char line[32];
		int n;

		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		/* 8 bytes to ~1 MiB, often not page-aligned. */
		grow = ((rnd >> 33) % 256) * 4096 + ((rnd >> 20) % 512) * 8 + 8;
		if (size + grow > max)
			grow = max - size;
		if (ftruncate(fd, size + grow)) {
			perror("ftruncate");
			return 1;
		}
		for (o = size; o < size + grow; o += 8)
			*(volatile uint64_t *)(m + o) = pattern(o, seed);
		flush(k, m + size, grow);
		size += grow;
		n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)size);
		if (write(rfd, line, n) != n) {
			perror("report");
			return 1;
		}
		printf("flushed %llu\n", (unsigned long long)size);
		fflush(stdout);
	}
	printf("workload finished before the kill (%llu bytes)\n", (unsigned long long)size);
	return 0;
}

static int verify(const char *file, const char *report, uint64_t seed)
{
	uint64_t want = 0, o, buf[8192];
	char line[64];
	struct stat st;
	FILE *r;
	int fd;

	r = fopen(report, "r");
	if (!r) {
		perror(report);
		return 1;
	}
	/* The last complete line: a line cut by the kill has no newline. */
	while (fgets(line, sizeof(line), r))
		if (strchr(line, '\n'))
			want = strtoull(line, NULL, 10);
	fclose(r);
	fd = open(file, O_RDONLY);
	if (fd < 0) {
		if (want == 0)
			return 0;
		perror(file);
		return 1;
	}
	if (fstat(fd, &st)) {
		perror("fstat");
		return 1;
	}
	if ((uint64_t)st.st_size < want) {
		printf("FAIL: size %lld < %llu reported flushed\n", (long long)st.st_size,
		       (unsigned long long)want);
		return 1;
	}
	for (o = 0; o < want;) {
		ssize_t n = pread(fd, buf, sizeof(buf), o);
		uint64_t i;

		if (n <= 0) {
			printf("FAIL: read at %llu: %s\n", (unsigned long long)o, n ? strerror(errno) : "EOF");
			return 1;
		}
		for (i = 0; i < (uint64_t)n / 8 && o + i * 8 < want; i++) {
			if (buf[i] != pattern(o + i * 8, seed)) {
				printf("FAIL: byte %llu: %#llx, want %#llx (reported flushed: %llu)\n",
				       (unsigned long long)(o + i * 8), (unsigned long long)buf[i],
				       (unsigned long long)pattern(o + i * 8, seed),
				       (unsigned long long)want);
				return 1;
			}
		}
		o += n;
	}
	printf("verified %llu bytes (file size %lld)\n", (unsigned long long)want, (long long)st.st_size);
	return 0;
}

static int probe(const char *file)
{
	int fd = open(file, O_RDWR);
	void *m;

	if (fd < 0) {
		perror(file);
		return 2;
	}
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	if (m == MAP_FAILED) {
		printf("MAP_SYNC refused: %s\n", strerror(errno));
		return 1;
	}
	printf("MAP_SYNC accepted\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "crash"))
		return crash(argv[2], argv[3], strtoull(argv[4], NULL, 0),
			     argc > 5 ? strtoull(argv[5], NULL, 0) : 256ull << 20);
	if (argc == 5 && !strcmp(argv[1], "verify"))
		return verify(argv[2], argv[3], strtoull(argv[4], NULL, 0));
	if (argc == 3 && !strcmp(argv[1], "probe"))
		return probe(argv[2]);
	fprintf(stderr, "usage: mapsync crash FILE REPORT SEED [MAXBYTES] | verify FILE REPORT SEED | probe FILE\n");
	return 2;
}

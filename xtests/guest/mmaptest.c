// SPDX-License-Identifier: GPL-2.0
/*
 * DAX mmap checks that xfs_io cannot express (vm-tests/mmap_ops.sh).
 * Each subcommand works in directory DIR, prints "ok: ..." lines and exits
 * 0, or prints "FAIL: ..." and exits 1.
 *
 *   mmaptest pmd DIR        2 MiB-aligned shared mapping of a 4 MiB file:
 *                           write faults map 2 MiB pages (smaps
 *                           FilePmdMapped), data reaches read()
 *   mmaptest coherence DIR  random write()/pread() vs stores/loads through
 *                           shared mappings, 20000 steps, one model
 *   mmaptest private DIR    MAP_PRIVATE stores stay private; a read fault on
 *                           a hole allocates nothing
 *   mmaptest truncate DIR   shrink a mapped file: SIGBUS past the end, the
 *                           tail of the last page zeroed, regrowth reads 0
 *   mmaptest mprotect DIR   read-only then read-write again; SIGSEGV on a
 *                           store to the read-only mapping
 *   mmaptest self DIR       write() whose source is a mapping of the same
 *                           range of the same file (fault on the source)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); exit(1); } while (0)
#define CHECK(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)

static char path[4096];

static int create(const char *dir, const char *name, off_t size)
{
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	CHECK(ftruncate(fd, size) == 0, "ftruncate: %s", strerror(errno));
	return fd;
}

static long blocks(int fd)
{
	struct stat st;

	CHECK(fstat(fd, &st) == 0, "fstat");
	return st.st_blocks;
}

/* kB of FilePmdMapped in the smaps entry of the mapping at addr. */
static long smaps_pmd(void *addr)
{
	char line[256], start[32];
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	CHECK(f, "smaps");
	snprintf(start, sizeof(start), "%lx-", (unsigned long)addr);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ':') && line[0] != ' ' &&
		    strncmp(line, "FilePmdMapped", 13) && strchr(line, ' ') > strchr(line, '-'))
			in = !strncmp(line, start, strlen(start));
		if (in && !strncmp(line, "FilePmdMapped:", 14))
			kb = atol(line + 14);
	}
	fclose(f);
	return kb;
}

static void pmd(const char *dir)
{
	const size_t len = 4 << 20, huge = 2 << 20;
	int fd = create(dir, "pmd", len);
	char *res, *m;
	long kb;
	size_t i;

	/* A 2 MiB-aligned address: reserve 6 MiB, map inside it. */
	res = mmap(NULL, len + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(res != MAP_FAILED, "reserve");
	m = (char *)(((uintptr_t)res + huge - 1) & ~(huge - 1));
	m = mmap(m, len, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap MAP_SYNC: %s", strerror(errno));
	for (i = 0; i < len; i += 4096)
		m[i] = (char)(i >> 12);
	kb = smaps_pmd(m);
	printf("FilePmdMapped: %ld kB after write faults on 2 MiB-aligned holes\n", kb);
	CHECK(kb >= 2048, "no 2 MiB mapping (FilePmdMapped %ld kB)", kb);
	for (i = 0; i < len; i += 4096) {
		char c;

		CHECK(pread(fd, &c, 1, i) == 1 && c == (char)(i >> 12), "read() at %zu", i);
	}
	munmap(m, len);
	/* A new mapping of the now allocated file: read faults map PMDs too. */
	m = mmap(m, len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap again");
	for (i = 0; i < len; i += 4096)
		CHECK(m[i] == (char)(i >> 12), "mapping at %zu", i);
	kb = smaps_pmd(m);
	printf("FilePmdMapped: %ld kB after read faults\n", kb);
	CHECK(kb >= 2048, "no 2 MiB mapping on read faults (%ld kB)", kb);
	printf("ok: pmd\n");
}

static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void coherence(const char *dir)
{
	const size_t len = 1 << 20;
	int fd = create(dir, "coh", len);
	char *model = calloc(1, len), *buf = malloc(65536);
	char *a, *b;
	int step;

	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	CHECK(a != MAP_FAILED && b != MAP_FAILED, "mmap");
	for (step = 0; step < 20000; step++) {
		size_t off = rnd() % len, n = 1 + rnd() % 16384, i;
		unsigned char v = rnd();

		if (off + n > len)
			n = len - off;
		switch (rnd() % 6) {
		case 0: /* write() */
			memset(buf, v, n);
			CHECK(pwrite(fd, buf, n, off) == (ssize_t)n, "pwrite");
			memset(model + off, v, n);
			break;
		case 1: /* store through a */
			memset(a + off, v, n);
			memset(model + off, v, n);
			break;
		case 2: /* store through b (MAP_SYNC) */
			memset(b + off, v, n);
			memset(model + off, v, n);
			break;
		case 3: /* read() */
			CHECK(pread(fd, buf, n, off) == (ssize_t)n, "pread");
			for (i = 0; i < n; i++)
				CHECK(buf[i] == model[off + i], "step %d: read() at %zu: %d, want %d",
				      step, off + i, buf[i], model[off + i]);
			break;
		case 4: /* load through a */
			for (i = 0; i < n; i++)
				CHECK(a[off + i] == model[off + i], "step %d: mapping a at %zu", step, off + i);
			break;
		case 5: /* load through b */
			for (i = 0; i < n; i++)
				CHECK(b[off + i] == model[off + i], "step %d: mapping b at %zu", step, off + i);
			break;
		}
	}
	CHECK(msync(a, len, MS_SYNC) == 0, "msync");
	CHECK(fsync(fd) == 0, "fsync");
	printf("ok: coherence (20000 steps, write/read vs two shared mappings)\n");
}

static void private(const char *dir)
{
	const size_t len = 64 << 10;
	int fd = create(dir, "priv", len);
	char *p, *s, c;
	long before;

	s = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(s != MAP_FAILED && p != MAP_FAILED, "mmap");
	before = blocks(fd);
	CHECK(p[100] == 0 && s[8000] == 0, "hole reads zero");
	CHECK(blocks(fd) == before, "read faults on holes allocated blocks (%ld -> %ld)", before, blocks(fd));
	p[100] = 'p';
	CHECK(blocks(fd) == before, "private store allocated blocks");
	CHECK(pread(fd, &c, 1, 100) == 1 && c == 0, "private store reached the file");
	CHECK(s[100] == 0, "private store visible in a shared mapping");
	s[200] = 's';
	CHECK(pread(fd, &c, 1, 200) == 1 && c == 's', "shared store missing from the file");
	CHECK(blocks(fd) > before, "shared store allocated nothing");
	CHECK(p[100] == 'p', "private copy lost");
	printf("ok: private (copy-on-write stays private, holes stay holes on read)\n");
}

static sigjmp_buf jb;

static void on_signal(int sig)
{
	siglongjmp(jb, sig);
}

/* The signal an access raises (0: none). */
static int touch(volatile char *p, int store)
{
	int sig = sigsetjmp(jb, 1);

	if (sig)
		return sig;
	if (store)
		*p = 1;
	else
		(void)*p;
	return 0;
}

static void truncate_(const char *dir)
{
	const size_t len = 5 * 4096;
	int fd = create(dir, "trunc", len);
	char *m;
	size_t i;

	signal(SIGBUS, on_signal);
	signal(SIGSEGV, on_signal);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap");
	memset(m, 'x', len);
	CHECK(ftruncate(fd, 4096 + 100) == 0, "shrink");
	CHECK(touch(m + 3 * 4096, 0) == SIGBUS, "no SIGBUS reading past the end");
	CHECK(touch(m + 2 * 4096, 1) == SIGBUS, "no SIGBUS storing past the end");
	CHECK(m[4096 + 99] == 'x', "byte before the new end lost");
	CHECK(m[4096 + 100] == 0, "tail of the last page not zeroed in the mapping");
	CHECK(ftruncate(fd, len) == 0, "regrow");
	for (i = 4096 + 100; i < len; i++)
		CHECK(m[i] == 0, "old byte %zu came back after regrowth", i);
	m[len - 1] = 'y';
	CHECK(pread(fd, &m[0], 1, len - 1) == 1 && m[0] == 'y', "store after regrowth");
	printf("ok: truncate of a mapped file (SIGBUS past the end, tail zeroed, regrowth zero)\n");
}

static void mprotect_(const char *dir)
{
	const size_t len = 16 << 10;
	int fd = create(dir, "prot", len);
	char *m, c;

	signal(SIGSEGV, on_signal);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap");
	m[10] = 'a';
	CHECK(mprotect(m, len, PROT_READ) == 0, "mprotect ro");
	CHECK(m[10] == 'a', "read after mprotect");
	CHECK(touch(m + 4096, 1) == SIGSEGV, "store to a read-only mapping did not fault");
	CHECK(mprotect(m, len, PROT_READ | PROT_WRITE) == 0, "mprotect rw");
	m[4096] = 'b';
	CHECK(pread(fd, &c, 1, 4096) == 1 && c == 'b', "store after mprotect rw");
	printf("ok: mprotect\n");
}

static void self(const char *dir)
{
	const size_t len = 256 << 10;
	int fd = create(dir, "self", len);
	char *m, *buf = malloc(len);
	size_t i;

	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap");
	/* Source: pages of this file not faulted yet (a hole, then data). */
	CHECK(write(fd, m + len / 2, len / 2) == (ssize_t)(len / 2), "write from own hole mapping");
	for (i = 0; i < len; i++)
		m[i] = (char)(i * 7);
	/* Source and destination the same range. */
	CHECK(pwrite(fd, m, len, 0) == (ssize_t)len, "pwrite from own mapping");
	CHECK(pread(fd, buf, len, 0) == (ssize_t)len, "pread");
	for (i = 0; i < len; i++)
		CHECK(buf[i] == (char)(i * 7), "byte %zu", i);
	/* Shifted by a page. */
	CHECK(pwrite(fd, m, len - 4096, 4096) == (ssize_t)(len - 4096), "pwrite shifted");
	printf("ok: write() from a mapping of the same file\n");
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mmaptest pmd|coherence|private|truncate|mprotect|self DIR\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "pmd"))
		pmd(argv[2]);
	else if (!strcmp(argv[1], "coherence"))
		coherence(argv[2]);
	else if (!strcmp(argv[1], "private"))
		private(argv[2]);
	else if (!strcmp(argv[1], "truncate"))
		truncate_(argv[2]);
	else if (!strcmp(argv[1], "mprotect"))
		mprotect_(argv[2]);
	else if (!strcmp(argv[1], "self"))
		self(argv[2]);
	else
		FAIL("unknown subcommand %s", argv[1]);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * DAX mmap checks that xfs_io cannot express (vm-tests/mmap_ops.sh).
 * Each subcommand works in directory DIR, prints "ok: ..." lines and exits
 * 0, or prints "FAIL: ..." and exits 1.
 *
 *   mmaptest pmd DIR        2 MiB faults (PAGEMAP_SCAN PAGE_IS_HUGE): write
 *                           and read faults, mmap(NULL), mremap, punch and
 *                           truncate of a PMD-mapped file; data reaches
 *                           read()
 *   mmaptest hugekb PID FILE  kB of PID's mappings of FILE mapped by PMDs
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
#include <linux/falloc.h>
#include <sys/ioctl.h>
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

/*
 * 2 MiB mappings. /proc/PID/smaps cannot show them for DAX on 6.12: its
 * FilePmdMapped skips devmap PMDs (vm_normal_page_pmd() returns NULL for
 * them, and zone-device folios are not counted). The PAGEMAP_SCAN ioctl
 * of /proc/PID/pagemap (Linux 6.7) walks the page tables themselves and
 * reports PAGE_IS_HUGE for a range mapped by one PMD.
 */
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct pm_scan_arg_)
#define PAGE_IS_PRESENT_ (1 << 3)
#define PAGE_IS_PFNZERO_ (1 << 5)
#define PAGE_IS_HUGE_ (1 << 6)
struct page_region_ {
	uint64_t start, end, categories;
};
struct pm_scan_arg_ {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

/* kB of [start, end) in process pid mapped by PMDs with data (not the
 * huge zero page). */
static long huge_kb_of(int pid, uint64_t start, uint64_t end)
{
	struct page_region_ vec[64];
	struct pm_scan_arg_ a;
	char name[64];
	long kb = 0;
	int fd, n, i;

	snprintf(name, sizeof(name), "/proc/%d/pagemap", pid);
	fd = open(name, O_RDONLY);
	CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	while (start < end) {
		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.start = start;
		a.end = end;
		a.vec = (uintptr_t)vec;
		a.vec_len = 64;
		a.category_inverted = PAGE_IS_PFNZERO_;
		a.category_mask = PAGE_IS_HUGE_ | PAGE_IS_PRESENT_ | PAGE_IS_PFNZERO_;
		a.return_mask = PAGE_IS_HUGE_;
		n = ioctl(fd, PAGEMAP_SCAN_, &a);
		CHECK(n >= 0, "PAGEMAP_SCAN: %s", strerror(errno));
		for (i = 0; i < n; i++)
			kb += (long)((vec[i].end - vec[i].start) >> 10);
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	close(fd);
	return kb;
}

static long huge_kb(void *addr, size_t len)
{
	return huge_kb_of(getpid(), (uintptr_t)addr, (uintptr_t)addr + len);
}

/* mmaptest hugekb PID FILE: kB PMD-mapped over PID's mappings of FILE. */
static void hugekb(int pid, const char *file)
{
	char name[64], line[4096], path[4096];
	unsigned long long s, e;
	long kb = 0;
	FILE *f;

	snprintf(name, sizeof(name), "/proc/%d/maps", pid);
	f = fopen(name, "r");
	CHECK(f, "%s: %s", name, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %4095s", &s, &e, path) == 3 &&
		    !strcmp(path, file))
			kb += huge_kb_of(pid, s, e);
	fclose(f);
	printf("%ld\n", kb);
}

static void on_signal(int sig);
static int touch(volatile char *p, int store);

/* A 2 MiB-aligned address with room for len bytes (PROT_NONE reserve). */
static char *aligned_area(size_t len)
{
	const size_t huge = 2 << 20;
	char *res = mmap(NULL, len + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(res != MAP_FAILED, "reserve");
	return (char *)(((uintptr_t)res + huge - 1) & ~(huge - 1));
}

static void pmd(const char *dir)
{
	const size_t len = 4 << 20, huge = 2 << 20;
	int fd = create(dir, "pmd", len);
	char *m, *n, *q;
	long kb;
	size_t i;

	/* Write faults on 2 MiB-aligned holes of a MAP_SYNC mapping. */
	m = mmap(aligned_area(len), len, PROT_READ | PROT_WRITE,
		 MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap MAP_SYNC: %s", strerror(errno));
	for (i = 0; i < len; i += 4096)
		m[i] = (char)(i >> 12);
	kb = huge_kb(m, len);
	printf("PMD-mapped: %ld kB after write faults on 2 MiB-aligned holes\n", kb);
	CHECK(kb == 4096, "want both 2 MiB ranges PMD-mapped (%ld kB PMD-mapped)", kb);
	for (i = 0; i < len; i += 4096) {
		char c;

		CHECK(pread(fd, &c, 1, i) == 1 && c == (char)(i >> 12), "read() at %zu", i);
	}
	munmap(m, len);
	/* A new mapping of the now allocated file: read faults map PMDs too. */
	m = mmap(aligned_area(len), len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap again");
	for (i = 0; i < len; i += 4096)
		CHECK(m[i] == (char)(i >> 12), "mapping at %zu", i);
	kb = huge_kb(m, len);
	printf("PMD-mapped: %ld kB after read faults\n", kb);
	CHECK(kb == 4096, "no 2 MiB mappings on read faults (%ld kB)", kb);
	munmap(m, len);

	/* The kernel picks a 2 MiB-aligned address by itself
	 * (get_unmapped_area): a plain mmap(NULL) gets PMDs. */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap(NULL)");
	CHECK(((uintptr_t)m & (huge - 1)) == 0, "mmap(NULL) of 4 MiB not 2 MiB-aligned: %p", m);
	for (i = 0; i < len; i += 4096)
		CHECK(m[i] == (char)(i >> 12), "mmap(NULL) mapping at %zu", i);
	kb = huge_kb(m, len);
	printf("PMD-mapped: %ld kB through mmap(NULL)\n", kb);
	CHECK(kb == 4096, "mmap(NULL): no 2 MiB mappings (%ld kB)", kb);

	/* mremap moves the PMDs to another 2 MiB-aligned address. */
	q = aligned_area(len);
	n = mremap(m, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q);
	CHECK(n == q, "mremap: %s", strerror(errno));
	kb = huge_kb(n, len);
	for (i = 0; i < len; i += 4096)
		CHECK(n[i] == (char)(i >> 12), "after mremap at %zu", i);
	printf("PMD-mapped: %ld kB after mremap to a new address\n", kb);
	CHECK(kb == 4096, "mremap lost the 2 MiB mappings (%ld kB)", kb);
	/* Grow the file and the mapping: the new 2 MiB ranges fault as PMDs. */
	CHECK(ftruncate(fd, 2 * len) == 0, "ftruncate 8 MiB");
	m = mremap(n, len, 2 * len, MREMAP_MAYMOVE);
	CHECK(m != MAP_FAILED, "mremap grow: %s", strerror(errno));
	for (i = len; i < 2 * len; i += 4096)
		m[i] = (char)(i >> 12);
	for (i = 0; i < 2 * len; i += 4096)
		CHECK(m[i] == (char)(i >> 12), "after mremap grow at %zu", i);
	kb = huge_kb(m, 2 * len);
	printf("PMD-mapped: %ld kB after growing to 8 MiB with mremap (at %p)\n", kb, m);
	CHECK(((uintptr_t)m & (huge - 1)) ? kb >= 0 : kb == 8192,
	      "grown mapping at a 2 MiB-aligned address without PMDs (%ld kB)", kb);

	/* Punch a page out of a PMD-mapped range, store into it again. */
	CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, huge + 8192, 4096) == 0,
	      "punch: %s", strerror(errno));
	CHECK(m[huge + 8192] == 0, "punched page not zero in the mapping");
	CHECK(m[huge + 4096] == (char)((huge + 4096) >> 12) && m[huge + 12288] == (char)((huge + 12288) >> 12),
	      "neighbours of the punched page changed");
	m[huge + 8192] = 'P';
	{
		char c;

		CHECK(pread(fd, &c, 1, huge + 8192) == 1 && c == 'P', "store into the punched page");
	}
	m[huge + 8192] = (char)((huge + 8192) >> 12);

	/* Truncate through the middle of a PMD-mapped range. */
	signal(SIGBUS, on_signal);
	memset(m + len + huge / 2, (char)((len + huge / 2) >> 12), 4096);
	CHECK(ftruncate(fd, len + huge / 2 + 100) == 0, "shrink to 5 MiB + 100");
	CHECK(touch(m + len + huge - 4096, 0) == SIGBUS, "no SIGBUS past the new end (PMD range)");
	CHECK(touch(m + len + huge, 1) == SIGBUS, "no SIGBUS storing past the new end");
	CHECK(m[len + huge / 2 + 99] == (char)((len + huge / 2) >> 12), "byte before the new end lost");
	CHECK(m[len + huge / 2 + 100] == 0, "tail of the last page not zeroed");
	for (i = 0; i < len + huge / 2; i += 4096)
		CHECK(m[i] == (char)(i >> 12), "after truncate at %zu", i);
	CHECK(ftruncate(fd, 2 * len) == 0, "regrow");
	for (i = len + huge / 2 + 100; i < 2 * len; i += 512)
		CHECK(m[i] == 0, "old data at %zu came back after regrowth", i);
	for (i = len + huge / 2 + 4096; i < 2 * len; i += 4096)
		m[i] = (char)(i >> 12);
	/* Back to the 4 MiB the remount check expects. */
	munmap(m, 2 * len);
	CHECK(ftruncate(fd, len) == 0, "truncate to 4 MiB");
	CHECK(fsync(fd) == 0, "fsync");
	close(fd);
	printf("ok: pmd (write/read faults, mmap(NULL), mremap, punch, truncate)\n");
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
	if (argc != 3 && !(argc == 4 && !strcmp(argv[1], "hugekb"))) {
		fprintf(stderr, "usage: mmaptest hugekb PID FILE | mmaptest pmd|coherence|private|truncate|mprotect|self DIR\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "hugekb")) {
		hugekb(atoi(argv[2]), argv[3]);
		return 0;
	}
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

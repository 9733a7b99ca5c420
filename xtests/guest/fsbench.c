// Guest-side benchmark programs of `cargo xt bench` (issue 6), one binary.
// Every measuring subcommand prints result lines "CASE VALUE UNIT" on stdout
// (UNIT: us, ms, ops/s, MiB/s); anything else goes to stderr.
//
//   fsbench syscalls DIR N          syscall latencies, N operations per case
//   fsbench mail DIR SECS NFILES    mail-server mix (varmail-like), ops/s
//   fsbench fileserver DIR SECS NFILES  file-server mix, ops/s
//   fsbench mdscale DIR THREADS N   create then unlink N files per thread,
//                                   one directory per thread, aggregate ops/s
//   fsbench mmapprobe DIR           exit 0 if DIR's fs supports shared
//                                   mmap and MAP_SYNC, 3 if not
//   fsbench mapsync DIR PAGES [MIB] first-touch write faults with and
//                                   without MAP_SYNC; fsync of 4 dirty pages
//                                   in a MIB (default 128) MiB mapping
//   fsbench fsyncmap DIR ROUNDS     fsync after dirtying one page of a
//                                   1 GiB and of a 4 MiB mapping (sparse
//                                   files), ROUNDS times each
//   fsbench populate DIR FROM TO SIZE  files FROM..TO-1 of SIZE bytes, 1000
//                                   a directory (p0000/f000000, ...)
//   fsbench unclean DEV             clear a novars superblock's CLEAN bit (the
//                                   state a power cut leaves), both copies
//   fsbench statall DIR             stat every entry under DIR (nftw)
//   fsbench preadloop DIR BS N      N preads of BS bytes over a 1 MiB file
//                                   (for profiling one case alone)
//   fsbench mount DEV DIR TYPE [OPTS]  mount(2), prints the time it took (ms)
//
// Build: gcc -O2 -pthread -o fsbench fsbench.c  (the harness does it)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define NA_EXIT 3

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static char buf[1 << 20];

/* xorshift: a cheap, seeded, reproducible choice of files and offsets. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static void result(const char *name, double value, const char *unit)
{
	printf("%s %.3f %s\n", name, value, unit);
	fflush(stdout);
}

/* Profiling one case: with FSBENCH_PROFILE=CASE and FSBENCH_PERF_CTL=FIFO
 * (perf record --control fifo:FIFO -D -1), perf samples only that case's
 * loop (xtests/bench/profile.sh). */
static void perf_ctl(const char *name, const char *cmd)
{
	const char *want = getenv("FSBENCH_PROFILE"), *ctl = getenv("FSBENCH_PERF_CTL");
	if (!want || !ctl || strcmp(want, name))
		return;
	FILE *f = fopen(ctl, "w");
	if (!f)
		die("perf control fifo");
	fprintf(f, "%s\n", cmd);
	fclose(f);
	usleep(100000); /* perf acts on the command asynchronously */
}

#define CASE(name, n, body)                                          \
	do {                                                         \
		perf_ctl(name, "enable");                            \
		double t0 = now_ns();                                \
		for (int i = 0; i < (n); i++) {                      \
			body;                                        \
		}                                                    \
		result(name, (now_ns() - t0) / (n) / 1000, "us");    \
		perf_ctl(name, "disable");                           \
	} while (0)

static void write_all(int fd, size_t len)
{
	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		if (write(fd, buf, n) != (ssize_t)n)
			die("write");
		len -= n;
	}
}

/* ---- syscall latencies ---- */

/* The append cases fill n * 42 KiB: when another case is profiled (with
 * many more iterations than a device holds appends for), they run only
 * enough to give the overwrites and reads their first 1 MiB. */
static int append_n(int n)
{
	const char *want = getenv("FSBENCH_PROFILE");
	if (!want || !strncmp(want, "append", 6))
		return n;
	return n < 64 ? n : 64;
}

static int syscalls(const char *dir, int n)
{
	char name[64], name2[64];
	struct stat st;
	if (chdir(dir))
		die("chdir");
	int fd = open("append", O_CREAT | O_WRONLY | O_APPEND, 0644);
	if (fd < 0)
		die("open");
	static const int sizes[] = { 1024, 4096, 16384 };
	static const char *plain[] = { "append-1k", "append-4k", "append-16k" };
	static const char *synced[] = { "append-1k+fsync", "append-4k+fsync", "append-16k+fsync" };
	for (int s = 0; s < 3; s++) {
		int sz = sizes[s];
		CASE(plain[s], append_n(n), if (write(fd, buf, sz) != sz) die("write"));
		CASE(synced[s], append_n(n), if (write(fd, buf, sz) != sz || fsync(fd)) die("write+fsync"));
	}
	close(fd);
	/* The append file holds at least n * 42 KiB: reads and overwrites
	 * stay within its first 1 MiB. */
	fd = open("append", O_RDWR);
	if (fd < 0)
		die("open");
	CASE("overwrite-4k", n, if (pwrite(fd, buf, 4096, (off_t)(i % 64) * 4096) != 4096) die("pwrite"));
	CASE("read-1k", n, if (pread(fd, buf, 1024, (off_t)(i % 64) * 4096) != 1024) die("pread"));
	CASE("read-4k", n, if (pread(fd, buf, 4096, (off_t)(i % 64) * 4096) != 4096) die("pread"));
	CASE("read-16k", n, if (pread(fd, buf, 16384, (off_t)(i % 16) * 16384) != 16384) die("pread"));
	close(fd);
	CASE("creat", n, {
		snprintf(name, sizeof(name), "f%d", i);
		int f = open(name, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (f < 0)
			die("creat");
		close(f);
	});
	CASE("stat", n, {
		snprintf(name, sizeof(name), "f%d", i);
		if (stat(name, &st))
			die("stat");
	});
	CASE("rename", n, {
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(name2, sizeof(name2), "g%d", i);
		if (rename(name, name2))
			die("rename");
	});
	CASE("unlink", n, {
		snprintf(name, sizeof(name), "g%d", i);
		if (unlink(name))
			die("unlink");
	});
	CASE("mkdir", n, {
		snprintf(name, sizeof(name), "d%d", i);
		if (mkdir(name, 0755))
			die("mkdir");
	});
	CASE("rmdir", n, {
		snprintf(name, sizeof(name), "d%d", i);
		if (rmdir(name))
			die("rmdir");
	});
	return 0;
}

/* ---- mail server and file server mixes ---- */

static void fname(char *out, size_t len, int i)
{
	snprintf(out, len, "d%02d/m%06d", i % 16, i);
}

static void make_dirs(void)
{
	char d[16];
	for (int i = 0; i < 16; i++) {
		snprintf(d, sizeof(d), "d%02d", i);
		if (mkdir(d, 0755) && errno != EEXIST)
			die("mkdir");
	}
}

static void create_file(int i, size_t size, int sync)
{
	char name[64];
	fname(name, sizeof(name), i);
	int fd = open(name, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		die("create");
	write_all(fd, size);
	if (sync && fsync(fd))
		die("fsync");
	close(fd);
}

static void append_file(int i, size_t size, int sync)
{
	char name[64];
	fname(name, sizeof(name), i);
	int fd = open(name, O_WRONLY | O_APPEND);
	if (fd < 0)
		die("open append");
	write_all(fd, size);
	if (sync && fsync(fd))
		die("fsync");
	close(fd);
}

static void read_file(int i)
{
	char name[64];
	fname(name, sizeof(name), i);
	int fd = open(name, O_RDONLY);
	if (fd < 0)
		die("open read");
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static void delete_file(int i)
{
	char name[64];
	fname(name, sizeof(name), i);
	if (unlink(name))
		die("unlink");
}

/* Files grow by appends; a file that passes `cap` is recreated, so a long
 * run keeps the working set's size. */
static size_t *sizes_of;

/* varmail-like (filebench): per step one of delete+create+append+fsync,
 * open+append+fsync, open+read whole file; messages 1-16 KiB. */
static int mail(const char *dir, double secs, int nfiles)
{
	if (chdir(dir))
		die("chdir");
	make_dirs();
	sizes_of = calloc(nfiles, sizeof(*sizes_of));
	for (int i = 0; i < nfiles; i++) {
		sizes_of[i] = 1024 + rnd(15 * 1024);
		create_file(i, sizes_of[i], 0);
	}
	long ops = 0;
	double t0 = now_ns(), end = t0 + secs * 1e9;
	while (now_ns() < end) {
		int i = rnd(nfiles);
		size_t msg = 1024 + rnd(15 * 1024);
		switch (ops % 4) {
		case 0: /* deliver a new message into a fresh mailbox file */
			delete_file(i);
			sizes_of[i] = msg;
			create_file(i, msg, 1);
			break;
		case 1: /* append a message */
			if (sizes_of[i] > 256 * 1024) {
				sizes_of[i] = msg;
				create_file(i, msg, 1);
			} else {
				sizes_of[i] += msg;
				append_file(i, msg, 1);
			}
			break;
		default: /* two reads of a whole mailbox per two writes */
			read_file(i);
		}
		ops++;
	}
	result("mail", ops / ((now_ns() - t0) / 1e9), "ops/s");
	return 0;
}

/* fileserver-like (filebench): create+write whole file (no fsync), append,
 * read whole file, stat, delete (then recreate); files 16-128 KiB. */
static int fileserver(const char *dir, double secs, int nfiles)
{
	char name[64];
	struct stat st;
	if (chdir(dir))
		die("chdir");
	make_dirs();
	sizes_of = calloc(nfiles, sizeof(*sizes_of));
	for (int i = 0; i < nfiles; i++) {
		sizes_of[i] = 16384 + rnd(112 * 1024);
		create_file(i, sizes_of[i], 0);
	}
	long ops = 0;
	double t0 = now_ns(), end = t0 + secs * 1e9;
	while (now_ns() < end) {
		int i = rnd(nfiles);
		switch (ops % 5) {
		case 0:
			delete_file(i);
			sizes_of[i] = 16384 + rnd(112 * 1024);
			create_file(i, sizes_of[i], 0);
			break;
		case 1:
			if (sizes_of[i] > 512 * 1024) {
				sizes_of[i] = 16384;
				create_file(i, sizes_of[i], 0);
			} else {
				sizes_of[i] += 16384;
				append_file(i, 16384, 0);
			}
			break;
		case 2:
		case 3:
			read_file(i);
			break;
		default:
			fname(name, sizeof(name), i);
			if (stat(name, &st))
				die("stat");
		}
		ops++;
	}
	result("fileserver", ops / ((now_ns() - t0) / 1e9), "ops/s");
	return 0;
}

/* ---- metadata scaling ---- */

struct md_arg {
	int t, n;
	pthread_barrier_t *bar;
};

static void *md_thread(void *p)
{
	struct md_arg *a = p;
	char name[64];
	for (int phase = 0; phase < 2; phase++) {
		pthread_barrier_wait(a->bar);
		for (int i = 0; i < a->n; i++) {
			snprintf(name, sizeof(name), "t%d/f%d", a->t, i);
			if (phase == 0) {
				int fd = open(name, O_CREAT | O_EXCL | O_WRONLY, 0644);
				if (fd < 0)
					die("create");
				close(fd);
			} else if (unlink(name)) {
				die("unlink");
			}
		}
		pthread_barrier_wait(a->bar);
	}
	return NULL;
}

static int mdscale(const char *dir, int threads, int n)
{
	pthread_t th[64];
	struct md_arg args[64];
	pthread_barrier_t bar;
	char name[64];
	if (threads < 1 || threads > 64)
		return 2;
	if (chdir(dir))
		die("chdir");
	pthread_barrier_init(&bar, NULL, threads + 1);
	for (int t = 0; t < threads; t++) {
		snprintf(name, sizeof(name), "t%d", t);
		if (mkdir(name, 0755))
			die("mkdir");
		args[t] = (struct md_arg){ t, n, &bar };
		pthread_create(&th[t], NULL, md_thread, &args[t]);
	}
	static const char *what[] = { "create", "unlink" };
	for (int phase = 0; phase < 2; phase++) {
		pthread_barrier_wait(&bar);
		double t0 = now_ns();
		pthread_barrier_wait(&bar);
		snprintf(name, sizeof(name), "%s-%dt", what[phase], threads);
		result(name, (double)threads * n / ((now_ns() - t0) / 1e9), "ops/s");
	}
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	return 0;
}

/* ---- mmap / MAP_SYNC ---- */

static int open_sized(const char *name, off_t size)
{
	int fd = open(name, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0)
		die("open");
	if (ftruncate(fd, size))
		die("ftruncate");
	return fd;
}

/* 0: works; NA_EXIT: the fs refuses shared mappings or MAP_SYNC. */
static int mmapprobe(const char *dir)
{
	if (chdir(dir))
		die("chdir");
	int fd = open_sized("mmapprobe", 4096);
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	int ok = p != MAP_FAILED;
	if (!ok)
		fprintf(stderr, "mmap(MAP_SYNC): %s\n", strerror(errno));
	else
		munmap(p, 4096);
	close(fd);
	unlink("mmapprobe");
	return ok ? 0 : NA_EXIT;
}

static inline void persist(volatile char *p)
{
	asm volatile("clwb %0" : "+m"(*p));
	asm volatile("sfence" ::: "memory");
}

static double touch_pages(const char *name, int pages, int flags)
{
	size_t len = (size_t)pages * 4096;
	int fd = open_sized(name, len);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	double t0 = now_ns();
	for (int i = 0; i < pages; i++) {
		p[(size_t)i * 4096] = 1;
		persist(p + (size_t)i * 4096);
	}
	double us = (now_ns() - t0) / pages / 1000;
	munmap(p, len);
	close(fd);
	unlink(name);
	return us;
}

static int mapsync(const char *dir, int pages, size_t mib)
{
	if (chdir(dir))
		die("chdir");
	if (mmapprobe(".") != 0)
		return NA_EXIT;
	result("fault-4k", touch_pages("faults", pages, MAP_SHARED), "us");
	result("fault-4k+MAP_SYNC", touch_pages("faults", pages, MAP_SHARED_VALIDATE | MAP_SYNC), "us");
	/* A big file written with write() (blocks allocated), mapped and
	 * dirtied once, then fsync'ed: each round dirties 4 random pages and
	 * fsyncs. The cost should follow the 4 pages, not the mapping's size
	 * (the case keeps its 128 MiB name in quick mode). */
	size_t len = mib << 20;
	int fd = open("big", O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0)
		die("open");
	write_all(fd, len);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	for (size_t o = 0; o < len; o += 4096)
		p[o] = 2;
	if (fsync(fd))
		die("fsync");
	int rounds = pages / 4 < 20 ? 20 : pages / 4;
	double total = 0;
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < 4; k++)
			p[rnd(len / 4096) * 4096] = 3;
		double t0 = now_ns();
		if (fsync(fd))
			die("fsync");
		total += now_ns() - t0;
	}
	result("fsync-4-dirty-of-128m", total / rounds / 1000, "us");
	munmap(p, len);
	close(fd);
	unlink("big");
	return 0;
}

/* fsync after dirtying ONE page of a MIB MiB shared mapping of a sparse
 * file (ftruncate, map it all: the 1 GiB case is as large as the NVDIMM).
 * Setup: a load every 2 MiB of the whole mapping (mapping entries
 * everywhere, which a precise fsync must not walk), then 16 pages spread
 * over the file stored once and fsync'ed (their blocks allocated). Each
 * timed round stores into one of those 16 pages and fsyncs: only the fsync
 * is timed. The cost should not depend on the mapping's size. */
static double fsync_one_dirty(const char *name, size_t mib, int rounds)
{
	size_t len = mib << 20, npages = len / 4096, pages[16];
	int fd = open_sized(name, len);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	for (size_t o = 0; o < len; o += 2 << 20)
		(void)*(volatile char *)(p + o);
	for (int k = 0; k < 16; k++) {
		pages[k] = k * (npages / 16) + rnd(npages / 16);
		p[pages[k] * 4096] = 1;
	}
	if (fsync(fd))
		die("fsync");
	double total = 0;
	for (int r = 0; r < rounds; r++) {
		p[pages[rnd(16)] * 4096 + rnd(4096)] = (char)r;
		double t0 = now_ns();
		if (fsync(fd))
			die("fsync");
		total += now_ns() - t0;
	}
	munmap(p, len);
	close(fd);
	unlink(name);
	return total / rounds / 1000;
}

static int fsyncmap(const char *dir, int rounds)
{
	if (chdir(dir))
		die("chdir");
	if (mmapprobe(".") != 0)
		return NA_EXIT;
	if (rounds < 1)
		return 2;
	result("fsync-1-dirty-of-4m", fsync_one_dirty("map4m", 4, rounds), "us");
	result("fsync-1-dirty-of-1g", fsync_one_dirty("map1g", 1024, rounds), "us");
	return 0;
}

/* ---- images for mount/fsck timing ---- */

static int populate(const char *dir, int from, int to, int size)
{
	char name[64];
	if (chdir(dir))
		die("chdir");
	double t0 = now_ns();
	for (int i = from; i < to; i++) {
		if (i % 1000 == 0 || i == from) {
			snprintf(name, sizeof(name), "p%04d", i / 1000);
			if (mkdir(name, 0755) && errno != EEXIST)
				die("mkdir");
		}
		snprintf(name, sizeof(name), "p%04d/f%06d", i / 1000, i);
		int fd = open(name, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0)
			die("create");
		if (size)
			write_all(fd, size);
		close(fd);
	}
	fprintf(stderr, "populate: %d files of %d bytes in %.1f s\n", to - from, size, (now_ns() - t0) / 1e9);
	return 0;
}

/* The superblock (layout/FORMAT.md): magic "NOVARSFS" at 0, block count at
 * 40, `state` at 128 outside the checksum, bit 0 CLEAN; a backup copy in
 * the last block. Mount clears CLEAN with the same 8-byte store. */
static int unclean(const char *dev)
{
	/* O_DIRECT: the block device's page cache may hold a stale copy of the
	 * superblock (the kernel writes it through DAX), and writing that page
	 * back would undo the kernel's last stores. */
	static char blk[4096] __attribute__((aligned(4096)));
	uint64_t blocks;
	int fd = open(dev, O_RDWR | O_DIRECT);
	if (fd < 0)
		die(dev);
	if (pread(fd, blk, 4096, 0) != 4096)
		die("pread");
	memcpy(&blocks, blk + 40, 8);
	if (memcmp(blk, "NOVARSFS", 8) || blocks < 2) {
		fprintf(stderr, "%s: not a novars file system\n", dev);
		return 1;
	}
	off_t copies[2] = { 0, (off_t)(blocks - 1) * 4096 };
	for (int i = 0; i < 2; i++) {
		uint64_t state;
		if (pread(fd, blk, 4096, copies[i]) != 4096)
			die("pread");
		memcpy(&state, blk + 128, 8);
		state &= ~1ull;
		memcpy(blk + 128, &state, 8);
		if (pwrite(fd, blk, 4096, copies[i]) != 4096)
			die("pwrite");
	}
	close(fd);
	return 0;
}

static long nstat;
static int stat_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)p, (void)st, (void)type, (void)f;
	nstat++;
	return 0;
}

static int statall(const char *dir)
{
	if (nftw(dir, stat_one, 64, FTW_PHYS))
		die("nftw");
	fprintf(stderr, "statall: %ld entries\n", nstat);
	return 0;
}

static int preadloop(const char *dir, int bs, int n)
{
	if (chdir(dir))
		die("chdir");
	if (bs < 1 || bs > (int)sizeof(buf))
		return 2;
	int fd = open("preadloop", O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0)
		die("open");
	write_all(fd, 1 << 20);
	int per = (1 << 20) / bs;
	CASE("preadloop", n, if (pread(fd, buf, bs, (off_t)(i % per) * bs) != bs) die("pread"));
	close(fd);
	return 0;
}

static int do_mount(const char *dev, const char *dir, const char *type, const char *opts)
{
	double t0 = now_ns();
	if (mount(dev, dir, type, 0, *opts ? opts : NULL))
		die("mount");
	printf("%.3f\n", (now_ns() - t0) / 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	memset(buf, 'x', sizeof(buf));
	const char *cmd = argc > 1 ? argv[1] : "";
	if (!strcmp(cmd, "syscalls") && argc == 4)
		return syscalls(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "mail") && argc == 5)
		return mail(argv[2], atof(argv[3]), atoi(argv[4]));
	if (!strcmp(cmd, "fileserver") && argc == 5)
		return fileserver(argv[2], atof(argv[3]), atoi(argv[4]));
	if (!strcmp(cmd, "mdscale") && argc == 5)
		return mdscale(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (!strcmp(cmd, "mmapprobe") && argc == 3)
		return mmapprobe(argv[2]);
	if (!strcmp(cmd, "mapsync") && (argc == 4 || argc == 5))
		return mapsync(argv[2], atoi(argv[3]), argc == 5 ? (size_t)atoi(argv[4]) : 128);
	if (!strcmp(cmd, "fsyncmap") && argc == 4)
		return fsyncmap(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "populate") && argc == 6)
		return populate(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(cmd, "unclean") && argc == 3)
		return unclean(argv[2]);
	if (!strcmp(cmd, "statall") && argc == 3)
		return statall(argv[2]);
	if (!strcmp(cmd, "preadloop") && argc == 5)
		return preadloop(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (!strcmp(cmd, "mount") && (argc == 5 || argc == 6))
		return do_mount(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : "");
	fprintf(stderr, "usage: see the comment at the top of fsbench.c\n");
	return 2;
}

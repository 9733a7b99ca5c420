// SPDX-License-Identifier: GPL-2.0
/*
 * Sealed block maps (NOVARS_IOC_SEAL, novafs-kmod/novars_ioctl.h), for
 * vm-tests/seals.sh. Prints "ok: ..." per check; "FAIL: ..." and exit 1.
 *
 *   sealtest all DIR     every EBUSY case, in-place writes (FIEMAP equal),
 *                        holders counted per open file, release on close,
 *                        dup, exit and SIGKILL, EBADF on a read-only fd
 *   sealtest info FILE   print "holders N" (exit 0)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "novars_ioctl.h"

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); exit(1); } while (0)
#define CHECK(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)

static int seal(int fd, uint64_t off, uint64_t len)
{
	struct novars_seal s = { .offset = off, .length = len, .flags = 0 };

	return ioctl(fd, NOVARS_IOC_SEAL, &s) ? errno : 0;
}

static unsigned holders(int fd)
{
	struct novars_seal_info si;

	CHECK(ioctl(fd, NOVARS_IOC_SEAL_INFO, &si) == 0, "SEAL_INFO: %s", strerror(errno));
	CHECK(si.sealed == (si.holders != 0), "sealed %u with %u holders", si.sealed, si.holders);
	return si.holders;
}

/* The file's physical extents as text (FIEMAP). */
static void fiemap(int fd, char *out, size_t cap)
{
	char buf[sizeof(struct fiemap) + 256 * sizeof(struct fiemap_extent)];
	struct fiemap *fm = (struct fiemap *)buf;
	size_t n = 0;
	unsigned i;

	memset(buf, 0, sizeof(buf));
	fm->fm_length = ~0ull;
	fm->fm_extent_count = 256;
	CHECK(ioctl(fd, FS_IOC_FIEMAP, fm) == 0, "FIEMAP: %s", strerror(errno));
	out[0] = 0;
	for (i = 0; i < fm->fm_mapped_extents && n + 64 < cap; i++)
		n += snprintf(out + n, cap - n, "%llu+%llu@%llu ",
			      (unsigned long long)fm->fm_extents[i].fe_logical,
			      (unsigned long long)fm->fm_extents[i].fe_length,
			      (unsigned long long)fm->fm_extents[i].fe_physical);
}

static void expect_err(int r, int want, const char *what)
{
	CHECK(r == want, "%s: %s, want %s", what, r ? strerror(r) : "success", strerror(want));
	printf("ok: %s -> %s\n", what, strerror(want));
}

static int err(int r)
{
	return r < 0 ? errno : 0;
}

static void all(const char *dir)
{
	const size_t mb = 1 << 20;
	char path[4096], before[16384], after[16384], *buf = malloc(2 * mb), *m;
	struct stat st;
	int fd, fd2, ro, p[2];
	pid_t pid;
	size_t i;

	snprintf(path, sizeof(path), "%s/sealed", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	memset(buf, 'a', mb);
	/* 1 MiB of data, a hole, then 4 KiB at 1.5 MiB. */
	CHECK(pwrite(fd, buf, mb, 0) == (ssize_t)mb, "pwrite");
	CHECK(pwrite(fd, buf, 4096, mb + mb / 2) == 4096, "pwrite");
	CHECK(holders(fd) == 0, "sealed before any seal");

	/* Seal [0, 2 MiB): fills the hole, grows the size to 2 MiB. */
	CHECK(seal(fd, 0, 2 * mb) == 0, "seal: %s", strerror(errno));
	CHECK(holders(fd) == 1, "holders after seal: %u", holders(fd));
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)(2 * mb), "size after seal %lld", (long long)st.st_size);
	CHECK(pread(fd, buf, 4096, mb + 4096) == 4096 && buf[0] == 0 && buf[4095] == 0, "filled hole not zero");
	fiemap(fd, before, sizeof(before));
	CHECK(strstr(before, "0+"), "no extents: %s", before);
	printf("ok: seal allocates and grows the size; extents %s\n", before);
	CHECK(seal(fd, 0, mb) == 0, "second seal through the same file");
	CHECK(holders(fd) == 1, "a second seal through one open file counted twice");
	printf("ok: one hold per open file\n");

	/* Everything that would move or free a block. */
	expect_err(err(ftruncate(fd, mb)), EBUSY, "ftruncate down while sealed");
	expect_err(err(ftruncate(fd, 3 * mb)), EBUSY, "ftruncate up while sealed");
	expect_err(err(truncate(path, 0)), EBUSY, "truncate(path) while sealed");
	expect_err(err(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)), EBUSY, "punch hole while sealed");
	expect_err(err(fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096)), EBUSY, "zero range while sealed");
	expect_err(err(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096)), EBUSY, "collapse range while sealed");
	expect_err(err(fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096)), EBUSY, "insert range while sealed");
	expect_err(err(pwrite(fd, buf, 4096, 4 * mb)), EBUSY, "write() into a hole while sealed");
	expect_err(err(fallocate(fd, 0, 0, 2 * mb + 5000)), EBUSY, "fallocate extending the size while sealed");
	expect_err(err(open(path, O_RDWR | O_TRUNC)), EBUSY, "open with O_TRUNC while sealed");
	CHECK(fallocate(fd, 0, 0, mb) == 0, "fallocate inside the sealed size: %s", strerror(errno));
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * mb) == 0, "fallocate KEEP_SIZE while sealed: %s", strerror(errno));
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)(2 * mb), "size changed by refused calls");

	/* In place: write() (unaligned, across extents) and stores. */
	memset(buf, 'b', 2 * mb);
	CHECK(pwrite(fd, buf, mb + 12345, 777) == (ssize_t)(mb + 12345), "in-place pwrite");
	m = mmap(NULL, 2 * mb, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap sealed file");
	memset(m + mb + mb / 2 - 100, 'c', 8192);
	CHECK(msync(m, 2 * mb, MS_SYNC) == 0, "msync");
	CHECK(pwrite(fd, buf, 100, 2 * mb - 100) == 100, "write() to the last block");
	fiemap(fd, after, sizeof(after));
	CHECK(!strcmp(before, after), "extents moved while sealed:\n before %s\n after  %s", before, after);
	CHECK(pread(fd, buf, 2 * mb, 0) > 0, "pread");
	/* Before: 'a' in [0, 1 MiB) and [1.5 MiB, +4 KiB), zeros elsewhere. */
	CHECK(buf[776] == 'a' && buf[777] == 'b' && buf[mb + 12345 + 776] == 'b' && buf[mb + 12345 + 777] == 0, "in-place data wrong");
	CHECK(buf[mb + mb / 2 - 101] == 0 && buf[mb + mb / 2 - 100] == 'c' && buf[mb + mb / 2 + 8091] == 'c' && buf[mb + mb / 2 + 8092] == 0, "mapped store wrong");
	CHECK(buf[2 * mb - 101] == 0 && buf[2 * mb - 100] == 'b' && buf[2 * mb - 1] == 'b', "last block wrong");
	munmap(m, 2 * mb);
	printf("ok: write(), stores and msync update in place (FIEMAP identical)\n");

	/* Read-only files cannot seal; they can ask. */
	ro = open(path, O_RDONLY);
	CHECK(ro >= 0, "open ro");
	expect_err(seal(ro, 0, 4096), EBADF, "seal through a read-only fd");
	CHECK(holders(ro) == 1, "info through a read-only fd");
	expect_err(seal(fd, 0, 0), EINVAL, "seal of length 0");

	/* A second open file is a second holder; each close drops its own. */
	fd2 = open(path, O_RDWR);
	CHECK(fd2 >= 0 && seal(fd2, 0, 4096) == 0, "second holder");
	CHECK(holders(fd) == 2, "holders %u, want 2", holders(fd));
	close(fd2);
	CHECK(holders(fd) == 1, "close of the second holder: %u", holders(fd));
	fd2 = dup(fd);
	close(fd);
	CHECK(holders(fd2) == 1, "the seal went with one of two fds of the same open file");
	close(fd2);
	CHECK(holders(ro) == 0, "seal kept after the last close");
	printf("ok: holders counted per open file, released on (last) close\n");
	fd = open(path, O_RDWR);
	CHECK(ftruncate(fd, mb) == 0, "ftruncate after release: %s", strerror(errno));

	/* Release on exit and on SIGKILL. */
	for (i = 0; i < 2; i++) {
		char c;

		CHECK(pipe(p) == 0, "pipe");
		pid = fork();
		if (pid == 0) {
			int cfd = open(path, O_RDWR);

			if (cfd < 0 || seal(cfd, 0, mb))
				_exit(2);
			if (write(p[1], "s", 1) != 1)
				_exit(3);
			if (i == 0)
				_exit(0);
			pause();
			_exit(4);
		}
		CHECK(read(p[0], &c, 1) == 1, "child did not seal");
		if (i == 1) {
			CHECK(holders(ro) == 1, "child's seal not visible");
			kill(pid, SIGKILL);
		}
		waitpid(pid, NULL, 0);
		CHECK(holders(ro) == 0, "seal survived the child's %s", i ? "SIGKILL" : "exit");
		close(p[0]);
		close(p[1]);
	}
	CHECK(ftruncate(fd, 0) == 0, "ftruncate after the children");
	printf("ok: seal released on process exit and on SIGKILL\n");

	/* Renamed over while sealed: the name goes, the sealed open file keeps
	 * its blocks and data until it is closed (as an unlinked open file). */
	memset(buf, 'd', mb);
	CHECK(pwrite(fd, buf, mb, 0) == (ssize_t)mb, "pwrite before the rename");
	CHECK(seal(fd, 0, mb) == 0, "seal before the rename: %s", strerror(errno));
	fiemap(fd, before, sizeof(before));
	{
		char other[4200];
		int o;

		snprintf(other, sizeof(other), "%s/other", dir);
		o = open(other, O_RDWR | O_CREAT | O_TRUNC, 0644);
		CHECK(o >= 0 && pwrite(o, "new", 3, 0) == 3, "other file");
		close(o);
		CHECK(rename(other, path) == 0, "rename over the sealed file: %s", strerror(errno));
	}
	fiemap(fd, after, sizeof(after));
	CHECK(!strcmp(before, after), "extents moved by the rename:\n before %s\n after  %s", before, after);
	CHECK(holders(fd) == 1, "seal lost by the rename");
	CHECK(pread(fd, buf, mb, 0) == (ssize_t)mb && buf[0] == 'd' && buf[mb - 1] == 'd', "data of the renamed-over sealed file");
	close(fd);
	printf("ok: rename over a sealed file: its blocks stay until the last close\n");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "all")) {
		all(argv[2]);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "info")) {
		int fd = open(argv[2], O_RDONLY);

		CHECK(fd >= 0, "open %s", argv[2]);
		printf("holders %u\n", holders(fd));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "hold")) {
		int fd = open(argv[2], O_RDWR | O_CREAT, 0644);

		CHECK(fd >= 0 && seal(fd, 0, strtoull(argv[3], NULL, 0)) == 0, "seal: %s", strerror(errno));
		printf("sealed\n");
		pause();
		return 0;
	}
	fprintf(stderr, "usage: sealtest all DIR | info FILE | hold FILE LEN\n");
	return 2;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * File handles for vm:export: name_to_handle_at(2) and open_by_handle_at(2)
 * from the shell. A handle is printed as TYPE:HEX (handle_type, then the
 * f_handle bytes in hex).
 *
 *   fhandle get PATH              handle of PATH (a symlink itself, not its target)
 *   fhandle read MNT HANDLE       open by handle, print the contents
 *   fhandle path MNT HANDLE       open by handle, print readlink /proc/self/fd/N
 *   fhandle link MNT HANDLE       open a symlink by handle (O_PATH), print its target
 *   fhandle ino HANDLE            the inode number and generation in a handle
 *   fhandle forge HANDLE INO GEN  the handle with another inode number and
 *                                 generation ("-": keep)
 *
 * Handle types understood by ino/forge: FILEID_INO32_GEN (1, ext4: u32 ino,
 * u32 gen) and FILEID_INO64_GEN(_PARENT) (0x81/0x82, novars: u64 ino, u32 gen).
 * An open that fails prints "error ENAME" and exits 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BYTES 128

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static struct file_handle *alloc_handle(void)
{
	struct file_handle *h = calloc(1, sizeof(*h) + MAX_BYTES);

	if (!h)
		die("calloc");
	h->handle_bytes = MAX_BYTES;
	return h;
}

static void print_handle(const struct file_handle *h)
{
	printf("%x:", h->handle_type);
	for (unsigned int i = 0; i < h->handle_bytes; i++)
		printf("%02x", h->f_handle[i]);
	printf("\n");
}

static struct file_handle *parse_handle(const char *s)
{
	struct file_handle *h = alloc_handle();
	char *end;
	size_t n;

	h->handle_type = (int)strtol(s, &end, 16);
	if (*end != ':')
		goto bad;
	s = end + 1;
	n = strlen(s);
	if (n % 2 || n / 2 > MAX_BYTES)
		goto bad;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b;

		if (sscanf(s + 2 * i, "%2x", &b) != 1)
			goto bad;
		h->f_handle[i] = (unsigned char)b;
	}
	h->handle_bytes = (unsigned int)(n / 2);
	return h;
bad:
	fprintf(stderr, "not a handle: %s\n", s);
	exit(1);
}

static const char *errname(int e)
{
	switch (e) {
	case ESTALE: return "ESTALE";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EPERM: return "EPERM";
	case EIO: return "EIO";
	case EUCLEAN: return "EUCLEAN";
	case ENOMEM: return "ENOMEM";
	case ELOOP: return "ELOOP";
	default: return strerror(e);
	}
}

static int open_handle(const char *mnt, const char *hs, int flags)
{
	struct file_handle *h = parse_handle(hs);
	int mfd = open(mnt, O_RDONLY | O_DIRECTORY);
	int fd;

	if (mfd < 0)
		die(mnt);
	fd = open_by_handle_at(mfd, h, flags);
	if (fd < 0) {
		printf("error %s\n", errname(errno));
		exit(2);
	}
	close(mfd);
	free(h);
	return fd;
}

/* The inode number and generation words of a handle. */
static void fields(struct file_handle *h, uint64_t **ino64, uint32_t **ino32, uint32_t **gen)
{
	*ino64 = NULL;
	*ino32 = NULL;
	switch (h->handle_type) {
	case 1:
		if (h->handle_bytes < 8)
			break;
		*ino32 = (uint32_t *)h->f_handle;
		*gen = (uint32_t *)(h->f_handle + 4);
		return;
	case 0x81:
	case 0x82:
		if (h->handle_bytes < 12)
			break;
		*ino64 = (uint64_t *)h->f_handle;
		*gen = (uint32_t *)(h->f_handle + 8);
		return;
	}
	fprintf(stderr, "handle type %#x not understood\n", h->handle_type);
	exit(1);
}

int main(int argc, char **argv)
{
	char buf[4096];
	ssize_t n;
	int fd;

	if (argc == 3 && !strcmp(argv[1], "get")) {
		struct file_handle *h = alloc_handle();
		int mount_id;

		if (name_to_handle_at(AT_FDCWD, argv[2], h, &mount_id, 0))
			die("name_to_handle_at");
		print_handle(h);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "read")) {
		fd = open_handle(argv[2], argv[3], O_RDONLY);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		if (n < 0)
			die("read");
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "path")) {
		char proc[64];

		fd = open_handle(argv[2], argv[3], O_RDONLY);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		n = readlink(proc, buf, sizeof(buf) - 1);
		if (n < 0)
			die("readlink");
		buf[n] = 0;
		printf("%s\n", buf);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "link")) {
		fd = open_handle(argv[2], argv[3], O_PATH | O_NOFOLLOW);
		n = readlinkat(fd, "", buf, sizeof(buf) - 1);
		if (n < 0)
			die("readlinkat");
		buf[n] = 0;
		printf("%s\n", buf);
		return 0;
	}
	if ((argc == 3 && !strcmp(argv[1], "ino")) || (argc == 5 && !strcmp(argv[1], "forge"))) {
		struct file_handle *h = parse_handle(argv[2]);
		uint64_t *ino64, v;
		uint32_t *ino32, *gen;

		fields(h, &ino64, &ino32, &gen);
		if (argc == 3) {
			printf("%llu %u\n", ino64 ? (unsigned long long)*ino64 : (unsigned long long)*ino32, *gen);
			return 0;
		}
		if (strcmp(argv[3], "-")) {
			v = strtoull(argv[3], NULL, 0);
			if (ino64)
				*ino64 = v;
			else
				*ino32 = (uint32_t)v;
		}
		if (strcmp(argv[4], "-"))
			*gen = (uint32_t)strtoul(argv[4], NULL, 0);
		print_handle(h);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of fhandle.c\n");
	return 1;
}

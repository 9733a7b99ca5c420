// First syscall microbenchmark (issue 4; the full suite is issue 6).
// Usage: syscalls DIR N  -> one line per case: "case ns_per_op"
// Every case runs N operations in DIR; medians come from the caller's runs.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

#define CASE(name, n, body)                                   \
	do {                                                  \
		double t0 = now_ns();                         \
		for (int i = 0; i < (n); i++) {               \
			body;                                 \
		}                                             \
		printf("%-16s %.0f\n", name, (now_ns() - t0) / (n)); \
	} while (0)

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	if (chdir(argv[1]))
		die("chdir");
	int n = atoi(argv[2]);
	static char buf[16384];
	char name[64], name2[64];
	memset(buf, 'x', sizeof(buf));
	int fd = open("append", O_CREAT | O_WRONLY | O_APPEND, 0644);
	if (fd < 0)
		die("open");
	CASE("append-1k", n, if (write(fd, buf, 1024) != 1024) die("write"));
	CASE("append-4k", n, if (write(fd, buf, 4096) != 4096) die("write"));
	CASE("append-1k+fsync", n, if (write(fd, buf, 1024) != 1024 || fsync(fd)) die("write+fsync"));
	close(fd);
	fd = open("append", O_RDWR);
	CASE("overwrite-4k", n, if (pwrite(fd, buf, 4096, (off_t)(i % 64) * 4096) != 4096) die("pwrite"));
	CASE("read-1k", n, if (pread(fd, buf, 1024, (off_t)(i % 64) * 4096) != 1024) die("pread"));
	CASE("read-4k", n, if (pread(fd, buf, 4096, (off_t)(i % 64) * 4096) != 4096) die("pread"));
	close(fd);
	CASE("creat", n, {
		snprintf(name, sizeof(name), "f%d", i);
		int f = open(name, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (f < 0) die("creat");
		close(f);
	});
	struct stat st;
	CASE("stat", n, { snprintf(name, sizeof(name), "f%d", i); if (stat(name, &st)) die("stat"); });
	CASE("rename", n, {
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(name2, sizeof(name2), "g%d", i);
		if (rename(name, name2)) die("rename");
	});
	CASE("unlink", n, { snprintf(name, sizeof(name), "g%d", i); if (unlink(name)) die("unlink"); });
	CASE("mkdir", n, { snprintf(name, sizeof(name), "d%d", i); if (mkdir(name, 0755)) die("mkdir"); });
	CASE("rmdir", n, { snprintf(name, sizeof(name), "d%d", i); if (rmdir(name)) die("rmdir"); });
	return 0;
}

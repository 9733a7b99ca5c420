// SPDX-License-Identifier: GPL-2.0
// xt-link: -lpmem
/*
 * A real MAP_SYNC client (vm-tests/pmdk.sh): libpmem's pmem_map_file maps
 * FILE (created, LEN bytes) and tells whether the mapping is persistent
 * memory, which for a file on a DAX file system means MAP_SYNC worked;
 * then pmem_memcpy_persist of a pattern and pmem_is_pmem of the range.
 *   pmemmap FILE LEN      prints "is_pmem N pmem_is_pmem N", exit 0
 *   pmemmap -c FILE LEN   checks the pattern (after a remount)
 */
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	int check = argc == 4 && !strcmp(argv[1], "-c");
	const char *file = argv[1 + check];
	size_t len, mapped, i;
	int is_pmem;
	char *m;

	if (argc != 3 + check) {
		fprintf(stderr, "usage: pmemmap [-c] FILE LEN\n");
		return 2;
	}
	len = strtoull(argv[2 + check], NULL, 0);
	m = pmem_map_file(file, check ? 0 : len, check ? 0 : PMEM_FILE_CREATE, 0644, &mapped, &is_pmem);
	if (!m) {
		fprintf(stderr, "pmem_map_file: %s\n", pmem_errormsg());
		return 1;
	}
	if (check) {
		for (i = 0; i < len; i++)
			if (m[i] != (char)(i * 13 + 1)) {
				printf("FAIL: byte %zu\n", i);
				return 1;
			}
		printf("pattern intact (%zu bytes)\n", len);
		return 0;
	}
	for (i = 0; i < len; i += 4096) {
		char page[4096];
		size_t j;

		for (j = 0; j < sizeof(page); j++)
			page[j] = (char)((i + j) * 13 + 1);
		if (is_pmem)
			pmem_memcpy_persist(m + i, page, sizeof(page));
		else {
			memcpy(m + i, page, sizeof(page));
			pmem_msync(m + i, sizeof(page));
		}
	}
	printf("is_pmem %d pmem_is_pmem %d mapped %zu\n", is_pmem, pmem_is_pmem(m, mapped), mapped);
	pmem_unmap(m, mapped);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * C side of novars: what Rust cannot reach in Linux 6.12 (the fs_context
 * API and the file_system_type, `static inline` helpers, DAX and iomap).
 * Everything with logic lives in Rust; this file only wires VFS tables to
 * Rust entry points and states the layout assumptions both sides share.
 */
#include <linux/build_bug.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/module.h>

#include "novars_shim.h"

/*
 * novars maps its 4 KiB blocks straight into user space with DAX: a block
 * must be a page. layout::BLOCK_SIZE is asserted equal to PAGE_SIZE on the
 * Rust side too (novars_main.rs).
 */
static_assert(PAGE_SIZE == 4096);

static int novars_get_tree(struct fs_context *fc)
{
	return get_tree_bdev(fc, novars_fill_super);
}

static const struct fs_context_operations novars_context_ops = {
	.get_tree = novars_get_tree,
};

static int novars_init_fs_context(struct fs_context *fc)
{
	fc->ops = &novars_context_ops;
	return 0;
}

static struct file_system_type novars_fs_type = {
	.owner = THIS_MODULE,
	.name = "novars",
	.init_fs_context = novars_init_fs_context,
	.kill_sb = kill_block_super,
	.fs_flags = FS_REQUIRES_DEV,
};

int novars_register_fs(void)
{
	return register_filesystem(&novars_fs_type);
}

void novars_unregister_fs(void)
{
	unregister_filesystem(&novars_fs_type);
}

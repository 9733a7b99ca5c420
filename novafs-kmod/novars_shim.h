/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the C shim (novars_shim.c) and the Rust crate
 * (novars_main.rs). Every function here has a matching `extern "C"`
 * declaration or definition in Rust; keep the two in step. Structs shared
 * with Rust get a static_assert on their layout in novars_shim.c.
 */
#ifndef NOVARS_SHIM_H
#define NOVARS_SHIM_H

struct super_block;
struct fs_context;

/* Implemented in C, called from Rust. */

/* Register / unregister the "novars" file_system_type. */
int novars_register_fs(void);
void novars_unregister_fs(void);

/* Implemented in Rust, called from C. */

/* fill_super for get_tree_bdev(): read the superblock, build the root. */
int novars_fill_super(struct super_block *sb, struct fs_context *fc);

#endif /* NOVARS_SHIM_H */

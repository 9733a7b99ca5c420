/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the C shim (novars_shim.c) and the Rust crate
 * (novars_main.rs and its modules). Every function here has a matching
 * `extern "C"` declaration or definition in Rust (shim.rs); keep the two in
 * step. Structs shared with Rust are fixed-width only and get a
 * static_assert on their layout in novars_shim.c, mirrored by const asserts
 * in shim.rs.
 */
#ifndef NOVARS_SHIM_H
#define NOVARS_SHIM_H

#include <linux/types.h>

struct super_block;
struct inode;
struct dir_context;
struct dax_device;

/* Mount options, parsed in C (fs_parser), read by Rust. */
struct novars_opts {
	u32 errors;	/* layout ERRORS_*: 1 continue, 2 remount-ro, 3 panic */
	u32 flags;	/* NOVARS_OPT_* */
};
#define NOVARS_OPT_ERRORS_SET	1u
#define NOVARS_OPT_DAX		2u

/*
 * The head of Rust's per-mount state (`SbInfo`, `#[repr(C)]`, this struct
 * first), reachable from C through sb->s_fs_info.
 */
struct novars_sb_c {
	struct dax_device *dax;
	u64 dax_part_off;	/* byte offset of the fs on the dax device */
	void *kaddr;		/* kernel address of byte 0 of the fs */
	u64 size;		/* bytes mapped at kaddr */
	u32 errors;		/* current errors= behaviour */
	u32 pad;
	u8 uuid[16];
};

/* Attributes Rust hands to C to fill a VFS inode. */
struct novars_iattr {
	u32 mode;
	u32 uid;
	u32 gid;
	u32 nlink;
	u64 size;
	u64 rdev;	/* new_encode_dev() value */
	u64 blocks;	/* 512-byte sectors in use */
	u32 generation;
	u32 link_len;	/* symlinks: length of the target in link */
	s64 atime_sec, mtime_sec, ctime_sec, btime_sec;
	u32 atime_nsec, mtime_nsec, ctime_nsec, btime_nsec;
	char *link;	/* symlinks: kmalloc'd NUL-terminated target, owned by the inode */
};

/* One mapping answer for iomap_begin. */
struct novars_map {
	u64 offset;	/* file byte offset the mapping starts at */
	u64 length;	/* bytes */
	u64 addr;	/* byte offset of the data on the fs, if mapped */
	u32 mapped;	/* 0: hole, 1: mapped */
	u32 flags;	/* NOVARS_MAP_NEW: just allocated (zeroed) */
	u64 blocks;	/* i_blocks after an allocation (NOVARS_MAP_NEW) */
};
#define NOVARS_MAP_NEW	1u

/* statfs numbers. */
struct novars_statfs {
	u64 blocks, bfree, files, ffree;
};

/* Arguments of novars_rs_create (files, dirs, nodes, symlinks). */
struct novars_create_args {
	u32 mode, uid, gid, dir_nlink;
	u64 rdev;
	s64 now_sec;
	u32 now_nsec, tlen;
	const char *target;
};

/* Arguments of novars_rs_rename. */
struct novars_rename_args {
	void *old_dir, *new_dir, *moved, *victim;
	const u8 *old_name, *new_name;
	u32 old_len, new_len, moved_mode, victim_nlink, old_dir_nlink, new_dir_nlink;
	s64 now_sec;
	u32 now_nsec, flags;
	u32 wh_uid, wh_gid;	/* RENAME_WHITEOUT: owner of the whiteout */
};

/* Arguments of novars_rs_setattr; valid uses layout's SETATTR bits. */
struct novars_setattr_args {
	u32 valid, mode, uid, gid;
	u64 size, old_size;
	s64 atime_sec, mtime_sec, ctime_sec;
	u32 atime_nsec, mtime_nsec, ctime_nsec, pad;
};
#define NOVARS_SA_MODE	1u
#define NOVARS_SA_UID	2u
#define NOVARS_SA_GID	4u
#define NOVARS_SA_SIZE	8u
#define NOVARS_SA_ATIME	16u
#define NOVARS_SA_MTIME	32u
#define NOVARS_SA_CTIME	64u

/* What a write changed. */
struct novars_write_out {
	u64 size, blocks;
	u64 filled;	/* holes an in-place write allocated */
};
/* novars_rs_write flags: update mapped blocks in place (DAX-mapped range). */
#define NOVARS_W_INPLACE	1u
/* novars_setattr_args.pad: zero the tail of the new last page in place. */
#define NOVARS_SA_TAIL_INPLACE	1u

/* What a fallocate left (set also when it failed part-way). */
struct novars_falloc_out {
	u64 size, blocks;
	u32 changed, pad;	/* changed: something committed; update the times */
};

/* ---- Implemented in C, called from Rust. ---- */

int novars_register_fs(void);
void novars_unregister_fs(void);

/* Map the whole DAX device of sb; fills dax, dax_part_off, kaddr, size. */
int novars_dax_map(struct super_block *sb, struct novars_sb_c *c);
void novars_dax_unmap(struct novars_sb_c *c);

/* Persistence primitives (x86): see pm.rs. */
void novars_flush(const void *addr, size_t len);
void novars_memcpy_nt(void *dst, const void *src, size_t len);

/* Get the VFS inode ino (read via novars_rs_read_inode); ERR_PTR on error. */
struct inode *novars_iget(struct super_block *sb, u64 ino);

/* dir_emit() for readdir: returns 0 when the caller's buffer is full. */
int novars_dir_emit(struct dir_context *ctx, const char *name, int len, u64 ino, u32 dt, u64 pos);

/* The device name (sb->s_id). */
const char *novars_sb_id(struct super_block *sb);
u32 novars_cpu(void);
/* Copy len bytes of user data from an iov_iter to pmem (non-temporal). */
size_t novars_copy_from_iter(void *iter, void *dst, size_t len);
bool novars_sb_rdonly(struct super_block *sb);

/* Per-inode log locks (locks.rs); subclass < NOVARS_MAX_LOCKED. */
#define NOVARS_MAX_LOCKED 4	/* locks.rs MAX_LOCKED */
struct mutex;
void novars_log_lock_init(struct mutex *m);
void novars_log_lock(struct mutex *m, unsigned int subclass);
void novars_log_unlock(struct mutex *m);

/* ---- Implemented in Rust, called from C. ---- */

int novars_rs_fill_super(struct super_block *sb, const struct novars_opts *opts, int silent);
void novars_rs_put_super(struct super_block *sb);
/* Remount read-only (ro) or read-write; 0 or -errno. */
int novars_rs_remount(struct super_block *sb, bool ro);
void novars_rs_statfs(struct super_block *sb, struct novars_statfs *out);
/* Read inode ino: fills *attr and returns the Rust inode info (or NULL and *err). */
void *novars_rs_read_inode(struct super_block *sb, u64 ino, struct novars_iattr *attr, int *err);
void novars_rs_free_inode_info(void *info);
/* Lookup name in dir: returns the inode number, 0 if absent, or -errno. */
s64 novars_rs_lookup(struct inode *dir, void *dir_info, const u8 *name, size_t len);
/* readdir from position pos (>= 2): calls novars_dir_emit per entry. */
int novars_rs_readdir(struct inode *dir, void *dir_info, struct dir_context *ctx, u64 pos);
/* iomap_begin: the mapping at pos. */
int novars_rs_iomap_begin(struct inode *inode, void *info, u64 pos, u64 length, u32 flags,
			  u64 size, s64 now_sec, u32 now_nsec, struct novars_map *out);

s64 novars_rs_create(struct inode *dir, void *dir_info, const u8 *name, size_t len,
		     const struct novars_create_args *args);
s64 novars_rs_tmpfile(struct inode *dir, void *dir_info, const struct novars_create_args *args);
int novars_rs_link(struct inode *dir, void *dir_info, const u8 *name, size_t len,
		   void *target_info, u32 mode, u32 nlink, s64 now_sec, u32 now_nsec);
int novars_rs_unlink(struct inode *dir, void *dir_info, const u8 *name, size_t len,
		     void *victim_info, u32 vnlink, bool rmdir, u32 dir_nlink,
		     s64 now_sec, u32 now_nsec);
int novars_rs_rename(struct super_block *sb, const struct novars_rename_args *args);
s64 novars_rs_write(struct inode *inode, void *info, void *iter, u64 pos, u64 len,
		    u64 size, s64 now_sec, u32 now_nsec, u32 flags,
		    struct novars_write_out *out);
s64 novars_rs_setattr(struct inode *inode, void *info, const struct novars_setattr_args *args);
void novars_rs_evict(struct inode *inode, void *info);
/* Seals (seal.rs, novars_ioctl.h); slot is &file->private_data. */
int novars_rs_seal(struct inode *inode, void *info, void **slot, u64 off, u64 len,
		   u64 size, s64 now_sec, u32 now_nsec, struct novars_write_out *out);
void novars_rs_unseal(void *info, void **slot);
u32 novars_rs_seal_count(void *info);
/* fallocate: mode is KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE] or 0;
 * out->size holds the size on entry. Returns 0 or -errno. */
int novars_rs_fallocate(struct inode *inode, void *info, u32 mode, u64 off, u64 len,
			s64 now_sec, u32 now_nsec, struct novars_falloc_out *out);

#endif /* NOVARS_SHIM_H */

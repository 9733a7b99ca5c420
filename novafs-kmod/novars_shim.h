/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the C shim (novars_shim.c) and the Rust crate
 * (novars_main.rs and its modules). Every function here has a matching
 * `extern "C"` declaration or definition in Rust (shim.rs); keep the two in
 * step. Structs shared with Rust are fixed-width only and get a
 * static_assert on their layout in novars_shim.c, mirrored by const asserts
 * in shim.rs. Every value C and Rust share is a `#define` here (or in
 * novars_trace.h) that shim.rs reads at compile time and asserts equal to
 * its Rust definition (layout, or the module): one definition, checked.
 */
#ifndef NOVARS_SHIM_H
#define NOVARS_SHIM_H

#include <linux/types.h>

struct super_block;
struct inode;
struct dir_context;
struct dax_device;

/* Mount options of one fs_context: allocated by C, parsed and read by
 * Rust (super_.rs). */
struct novars_opts {
	u32 errors;
	u32 flags;
};

/*
 * The head of Rust's per-mount state (`SbInfo`, `#[repr(C)]`, this struct
 * first), reachable from C through sb->s_fs_info.
 */
struct novars_sb_c {
	struct dax_device *dax;
	u64 dax_part_off;	/* byte offset of the fs on the dax device */
	void *kaddr;		/* kernel address of byte 0 of the fs */
	u64 size;		/* bytes mapped at kaddr */
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
	u64 blocks, bfree, files, ffree, bavail, namelen;
};

/* The calling task and the parent directory, for a new inode's owner. */
struct novars_owner {
	u32 fsuid, fsgid;	/* the caller's, in init_user_ns */
	u32 dir_mode, dir_gid;	/* the parent directory's */
};

/* Arguments of novars_rs_create (files, dirs, nodes, symlinks, O_TMPFILE). */
struct novars_create_args {
	u32 mode;	/* file type and the permission bits asked for */
	u32 tlen;	/* symlinks: strlen(target) */
	struct novars_owner owner;
	u64 rdev;	/* new_encode_dev() value */
	s64 now_sec;
	u32 now_nsec, pad;
	const char *target;
};

/* Link counts after a namespace operation, from Rust's own state: C sets
 * exactly these (set_nlink) on the inodes the operation names. */
struct novars_nlinks {
	u32 dir;	/* the (old) parent directory */
	u32 new_dir;	/* rename: the new parent (== dir in one directory) */
	u32 inode;	/* link: the target; unlink, rmdir: the removed inode */
	u32 victim;	/* rename: the inode the new name named before */
};

/* Arguments of novars_rs_rename (flags: RENAME_* as the VFS gives them). */
struct novars_rename_args {
	void *old_dir, *new_dir, *moved, *victim;
	const u8 *old_name, *new_name;
	u32 old_len, new_len, moved_mode, flags;
	s64 now_sec;
	u32 now_nsec, pad;
	struct novars_owner owner;	/* of the whiteout (RENAME_WHITEOUT) */
};

/* Arguments of novars_rs_setattr_begin and novars_rs_setattr: the iattr
 * as the VFS gives it (valid: ATTR_* bits, equal to layout's SETATTR
 * bits); Rust may add to valid and the times (truncate). */
struct novars_setattr_args {
	u32 valid, mode, uid, gid;
	u64 size, old_size;
	s64 atime_sec, mtime_sec, ctime_sec, now_sec;
	u32 atime_nsec, mtime_nsec, ctime_nsec, now_nsec;
	u32 inode_mode;	/* the inode's file type and mode */
	u32 facts;	/* NOVARS_SA_TAIL_MAPPED */
};
#define NOVARS_SA_MODE	1u
#define NOVARS_SA_UID	2u
#define NOVARS_SA_GID	4u
#define NOVARS_SA_SIZE	8u
#define NOVARS_SA_ATIME	16u
#define NOVARS_SA_MTIME	32u
#define NOVARS_SA_CTIME	64u
#define NOVARS_SA_ALL	127u
/* facts: the page holding the new size has a DAX entry (mapped, or was). */
#define NOVARS_SA_TAIL_MAPPED	1u

/* Largest readdir position (cookie: an entry's 63-bit sequence number). */
#define NOVARS_DIR_POS_MAX	0x7fffffffffffffff

/* What a write changed. */
struct novars_write_out {
	u64 size, blocks;
	u64 filled;	/* holes filled in place: drop their zero-page mappings */
};
/* novars_rs_write facts: some page of the range has a DAX entry. */
#define NOVARS_W_MAPPED	1u

/* What novars_rs_fallocate_begin answers (>= 0) for a mode. */
#define NOVARS_FA_GROWS		1u	/* may extend i_size to offset + len */
#define NOVARS_FA_SHIFTS	2u	/* moves every block from offset on */

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

/* One mount option (value NULL: a flag): 0, -ENOPARAM (not novars's:
 * the VFS says so) or -EINVAL (a bad value). */
int novars_rs_parse_param(struct novars_opts *opts, const char *key, const char *value);
struct seq_file;
struct dentry;
int novars_rs_show_options(struct seq_file *m, struct dentry *root);
int novars_rs_fill_super(struct super_block *sb, const struct novars_opts *opts, int silent);
void novars_rs_put_super(struct super_block *sb);
/* reconfigure: new options; ro_change: the VFS asks to switch to ro (true
 * read-only, false read-write). 0 or -errno. */
int novars_rs_reconfigure(struct super_block *sb, const struct novars_opts *opts,
			  bool ro_change, bool ro);
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

/* Namespace operations: the new inode number (create) or 0, or -errno;
 * *out gets the link counts to set. */
s64 novars_rs_create(struct inode *dir, void *dir_info, const u8 *name, size_t len,
		     const struct novars_create_args *args, struct novars_nlinks *out);
s64 novars_rs_tmpfile(struct inode *dir, void *dir_info, const struct novars_create_args *args);
int novars_rs_link(struct inode *dir, void *dir_info, const u8 *name, size_t len,
		   void *target_info, u32 mode, s64 now_sec, u32 now_nsec,
		   struct novars_nlinks *out);
int novars_rs_unlink(struct inode *dir, void *dir_info, const u8 *name, size_t len,
		     void *victim_info, bool rmdir, s64 now_sec, u32 now_nsec,
		     struct novars_nlinks *out);
int novars_rs_rename(struct super_block *sb, const struct novars_rename_args *args,
		     struct novars_nlinks *out);
/* write(2): bytes written or -errno; facts: NOVARS_W_MAPPED. */
s64 novars_rs_write(struct inode *inode, void *info, void *iter, u64 pos, u64 len,
		    u64 size, s64 now_sec, u32 now_nsec, u32 facts,
		    struct novars_write_out *out);
/* setattr: _begin checks and completes *args before C prepares a size
 * change (0: go on, 1: nothing to do, or -errno); then novars_rs_setattr
 * logs it and returns the new i_blocks or -errno. */
int novars_rs_setattr_begin(void *info, struct novars_setattr_args *args);
s64 novars_rs_setattr(struct inode *inode, void *info, const struct novars_setattr_args *args);
/* evict: frees the inode if Rust's link count is 0. */
void novars_rs_evict(struct inode *inode, void *info);
/* Seals (seal.rs, novars_ioctl.h); slot is &file->private_data. _check:
 * the ioctl's argument (NULL: not copied) from a file open for writing or
 * not; 0 or -errno. */
struct novars_seal;
struct novars_seal_info;
int novars_rs_seal_check(bool writable, const struct novars_seal *s);
int novars_rs_seal(struct inode *inode, void *info, void **slot, u64 off, u64 len,
		   u64 size, s64 now_sec, u32 now_nsec, struct novars_write_out *out);
void novars_rs_unseal(void *info, void **slot);
void novars_rs_seal_info(void *info, struct novars_seal_info *out);
/* fallocate: _begin, before any lock: NOVARS_FA_* for mode, or -errno;
 * then (inode lock held) novars_rs_fallocate, with out->size holding the
 * size on entry: 0 or -errno. */
int novars_rs_fallocate_begin(void *info, u32 mode);
int novars_rs_fallocate(struct inode *inode, void *info, u32 mode, u64 off, u64 len,
			s64 now_sec, u32 now_nsec, struct novars_falloc_out *out);

#endif /* NOVARS_SHIM_H */

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
struct file;
struct export_operations;
struct dentry;
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

/* What Rust answers for a VFS inode: all of it for novars_iget, the
 * fields named in valid (NOVARS_I_*) for novars_inode_set, which Rust
 * calls after each change it commits. */
struct novars_iattr {
	u32 valid;
	u32 mode, uid, gid, nlink, generation;
	u64 size;
	u64 rdev;	/* new_encode_dev() value */
	u64 blocks;	/* 512-byte sectors in use */
	s64 atime_sec, mtime_sec, ctime_sec;
	u32 atime_nsec, mtime_nsec, ctime_nsec;
	u32 flags;	/* inode flags: FS_*_FL values (chattr) */
	char *link;	/* symlinks: kmalloc'd NUL-terminated target, owned by the inode */
};
#define NOVARS_I_NLINK	1u
#define NOVARS_I_SIZE	2u
#define NOVARS_I_BLOCKS	4u
#define NOVARS_I_ATIME	8u
#define NOVARS_I_MTIME	16u
#define NOVARS_I_CTIME	32u
#define NOVARS_I_FLAGS	64u

/* One mapping answer for iomap_begin. */
struct novars_map {
	u64 offset;	/* file byte offset the mapping starts at */
	u64 length;	/* bytes */
	u64 addr;	/* byte offset of the data on the fs, if mapped */
	u32 mapped;	/* 0: hole, 1: mapped, NOVARS_MAPPED_UNWRITTEN */
	u32 flags;	/* NOVARS_MAP_NEW: just allocated (zeroed) */
};
#define NOVARS_MAP_NEW	1u
#define NOVARS_MAPPED_UNWRITTEN	2u

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
	const char *target;
	/* The new inode's access and default ACLs as xattr values, or NULL:
	 * Rust logs them in the commit that creates the inode. */
	const void *acl[2];
	u32 acl_len[2];
};

/* Arguments of novars_rs_rename (flags: RENAME_* as the VFS gives them;
 * victim: the inode new_name names, or NULL). */
struct novars_rename_args {
	struct inode *old_dir, *new_dir, *moved, *victim;
	const u8 *old_name, *new_name;
	u32 old_len, new_len, flags, pad;
	struct novars_owner owner;	/* of the whiteout (RENAME_WHITEOUT) */
};

/* Largest readdir position (cookie: an entry's 63-bit sequence number). */
#define NOVARS_DIR_POS_MAX	0x7fffffffffffffff

/* Extended-attribute namespaces: xattr handler flags and the index of
 * novars_rs_getxattr/setxattr (layout's `xa`). */
#define NOVARS_XA_USER		1u
#define NOVARS_XA_TRUSTED	2u
#define NOVARS_XA_SECURITY	3u
#define NOVARS_XA_ACL_ACCESS	4u
#define NOVARS_XA_ACL_DEFAULT	5u
/* setxattr flags, as <linux/xattr.h> (asserted in novars_xattr.c). */
#define NOVARS_XATTR_CREATE	1u
#define NOVARS_XATTR_REPLACE	2u

/* novars_xattr.c: the xattr handlers, listxattr, the ACL inode
 * operations, and a new inode's inherited ACLs and security labels. */
struct posix_acl;
struct xattr_handler;
extern const struct xattr_handler * const novars_xattr_handlers[];
ssize_t novars_listxattr(struct dentry *dentry, char *buf, size_t size);
/* A chmod's new access ACL (none: acl NULL) and its xattr value. */
struct novars_acl_change {
	struct posix_acl *acl;
	void *value;
	size_t size;
};
#ifdef CONFIG_FS_POSIX_ACL
struct posix_acl *novars_get_acl(struct inode *inode, int type, bool rcu);
int novars_acl_chmod(struct inode *inode, umode_t mode, struct novars_acl_change *c);
void novars_acl_chmod_done(struct inode *inode, struct novars_acl_change *c, bool logged);
int novars_set_acl(struct mnt_idmap *idmap, struct dentry *dentry, struct posix_acl *acl,
		   int type);
#else	/* a kernel without ACLs: none stored, none inherited */
#define novars_get_acl NULL
#define novars_set_acl NULL
static inline int novars_acl_chmod(struct inode *inode, umode_t mode,
				   struct novars_acl_change *c) { return 0; }
static inline void novars_acl_chmod_done(struct inode *inode, struct novars_acl_change *c,
					 bool logged) {}
#endif
struct novars_create_args;
int novars_new_acl(struct inode *dir, umode_t *mode, struct posix_acl **default_acl,
		   struct posix_acl **acl, struct novars_create_args *a);
int novars_new_attrs(struct inode *inode, struct inode *dir, const struct qstr *name,
		     struct posix_acl *default_acl, struct posix_acl *acl,
		     struct novars_create_args *a);
/* i_flags from FS_*_FL flags; the chattr/xfs_io inode operations. */
void novars_set_iflags(struct inode *inode, u32 flags);
struct fileattr;
int novars_fileattr_get(struct dentry *dentry, struct fileattr *fa);
int novars_fileattr_set(struct mnt_idmap *idmap, struct dentry *dentry, struct fileattr *fa);

/* ---- Implemented in C, called from Rust. ---- */

int novars_register_fs(void);
void novars_unregister_fs(void);

/* Map the DAX device of sb: fills dax, dax_part_off, kaddr and size (the
 * device's bytes); returns the pages mapped at kaddr or -errno (and
 * novars_dax_unmap is due if dax is set). */
long novars_dax_map(struct super_block *sb, struct novars_sb_c *c);
void novars_dax_unmap(struct novars_sb_c *c);

/* Persistence primitives (x86): see pm.rs. */
void novars_flush(const void *addr, size_t len);
void novars_memcpy_nt(void *dst, const void *src, size_t len);

/* Get the VFS inode ino (read via novars_rs_read_inode); ERR_PTR on error. */
struct inode *novars_iget(struct super_block *sb, u64 ino);
/* The same for a file handle naming ino with generation gen: Rust reads
 * the inode as user input (ESTALE, never an fs error, for what is not a
 * live inode of that generation). A cached inode is returned as it is. */
struct inode *novars_iget_handle(struct super_block *sb, u64 ino, u32 gen);
void novars_inode_set(struct inode *inode, const struct novars_iattr *a);

/* dir_emit() for readdir: returns 0 when the caller's buffer is full. */
int novars_dir_emit(struct dir_context *ctx, const char *name, int len, u64 ino, u32 dt, u64 pos);

u32 novars_cpu(void);
/* cond_resched() (a macro): long loops over the device yield with it. */
void novars_cond_resched(void);
/* Copy len bytes of user data from an iov_iter to pmem (non-temporal). */
size_t novars_copy_from_iter(void *iter, void *dst, size_t len);
bool novars_sb_rdonly(struct super_block *sb);
void novars_sb_set_rdonly(struct super_block *sb);
/* A kernel thread that runs novars_rs_rebuild(sb) once, then waits for
 * novars_rebuild_stop (NULL if it could not be started). */
struct task_struct;
struct task_struct *novars_rebuild_start(struct super_block *sb);
void novars_rebuild_stop(struct task_struct *t);

/* Per-inode log locks (locks.rs); subclass < locks.rs MAX_LOCKED. */
struct mutex;
void novars_log_lock_init(struct mutex *m);
void novars_log_lock(struct mutex *m, unsigned int subclass);
void novars_log_unlock(struct mutex *m);
/* Wait for pinned pages from byte start on (invalidate lock held). */
int novars_break_layouts(struct inode *inode, loff_t start);

/* ---- Implemented in Rust, called from C. ---- */

/*
 * Rust finds its per-inode state from the VFS inode (struct novars_inode in
 * novars_shim.c) and sets the VFS inodes an operation changed itself
 * (novars_inode_set), with times from current_time().
 */
/* One mount option (value NULL: a flag): 0, -ENOPARAM (not novars's:
 * the VFS says so) or -EINVAL (a bad value). */
int novars_rs_parse_param(struct novars_opts *opts, const char *key, const char *value);
struct seq_file;
int novars_rs_show_options(struct seq_file *m, struct dentry *root);
int novars_rs_write_inode(struct inode *inode, struct writeback_control *wbc);
int novars_rs_fill_super(struct super_block *sb, const struct novars_opts *opts, int silent);
void novars_rs_put_super(struct super_block *sb);
void novars_rs_rebuild(struct super_block *sb);
/* reconfigure: new options; ro_given: the request says read-only or
 * read-write (ro: which). 0 or -errno. */
int novars_rs_reconfigure(struct super_block *sb, const struct novars_opts *opts,
			  bool ro_given, bool ro);
void novars_rs_statfs(struct super_block *sb, struct novars_statfs *out);
/* Read inode ino (gen: NULL, or a file handle's generation): fills *attr
 * and returns the Rust inode info (or NULL and *err). */
void *novars_rs_read_inode(struct super_block *sb, u64 ino, const u32 *gen,
			   struct novars_iattr *attr, int *err);
void novars_rs_free_inode_info(void *info);
/* inode_operations lookup and getattr (getattr adds btime and the DAX
 * attribute to generic_fillattr's answer). */
struct dentry *novars_rs_lookup(struct inode *dir, struct dentry *dentry, unsigned int flags);
struct mnt_idmap;
struct path;
struct kstat;
int novars_rs_getattr(struct mnt_idmap *idmap, const struct path *path, struct kstat *stat,
		      u32 request_mask, unsigned int query_flags);
/* readdir from position pos (>= 2): calls novars_dir_emit per entry. */
int novars_rs_readdir(struct inode *dir, struct dir_context *ctx, u64 pos);
/* iomap_begin: the mapping at pos (size: i_size). */
int novars_rs_iomap_begin(struct inode *inode, u64 pos, u64 length, u32 flags, u64 size,
			  struct novars_map *out);

/* Namespace operations: the new inode (create; ERR_PTR on error), or 0
 * or -errno. */
struct inode *novars_rs_create(struct inode *dir, const u8 *name, size_t len,
			       const struct novars_create_args *args);
/* O_TMPFILE: the new inode (link count 1 for d_tmpfile) or ERR_PTR. */
struct inode *novars_rs_tmpfile(struct inode *dir, const struct novars_create_args *args);
int novars_rs_link(struct inode *dir, const u8 *name, size_t len, struct inode *target);
int novars_rs_unlink(struct inode *dir, const u8 *name, size_t len, struct inode *victim,
		     bool rmdir);
int novars_rs_rename(const struct novars_rename_args *args);
/* write(2), the inode lock held, page faults disabled: bytes written or
 * -errno. */
s64 novars_rs_write(struct inode *inode, void *iter, u64 pos, u64 len);
/* setattr after setattr_prepare (uid, gid: the iattr's in init_user_ns):
 * logs the change and sets the VFS inode (setattr_copy). 0 or -errno. */
struct iattr;
int novars_rs_setattr(struct mnt_idmap *idmap, struct inode *inode, struct iattr *attr,
		      u32 uid, u32 gid, const void *acl, size_t acl_len);
/* evict: frees the inode if Rust's link count is 0. */
void novars_rs_evict(struct inode *inode);
/* Seals (seal.rs, novars_ioctl.h): the ioctls with their user-space
 * argument at arg. 0 or -errno. */
long novars_rs_ioc_seal(struct file *file, bool writable, unsigned long arg);
long novars_rs_ioc_seal_info(struct inode *inode, unsigned long arg);

/* The file-system ioctls (fsioctl.rs): shutdown, label; -ENOTTY for any
 * other. Whether one changes the file system (write access first). */
long novars_rs_ioctl_fs(struct super_block *sb, unsigned int cmd, unsigned long arg);
bool novars_rs_ioctl_writes(unsigned int cmd);
/* 0, or -EIO once shut down: open, mmap, fsync, writeback ask. */
int novars_rs_live(struct super_block *sb);
/* Shutdown: tear down every mapping of every inode, so stores fault. */
void novars_unmap_all(struct super_block *sb);
/* novars_fs.c: the file-system ioctls of files and directories; the
 * export operations. */
long novars_fs_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
extern const struct export_operations novars_export_ops;
/* file_operations release (last close): drops the file's seal, if any. */
int novars_rs_release(struct inode *inode, struct file *file);
int novars_rs_getxattr(struct inode *inode, int index, const char *name, void *buf, size_t size);
int novars_rs_setxattr(struct inode *inode, int index, const char *name, const void *value,
		       size_t size, int flags, u32 mode);
ssize_t novars_rs_listxattr(struct inode *inode, bool trusted, char *buf, size_t size);
/* Inode flags (FS_*_FL) and project id; set: 0 or -errno. */
int novars_rs_get_flags(struct inode *inode, u32 *flags, u32 *projid);
int novars_rs_set_flags(struct inode *inode, u32 flags, bool fsx, u32 projid, bool other);
/* Export operations (export.rs): file handles FILEID_INO64_GEN (3 words:
 * u64 ino, u32 generation) and FILEID_INO64_GEN_PARENT (6 words: the
 * parent's after them), as <linux/exportfs.h> (asserted in novars_shim.c).
 * fh: the handle's words (fid->raw), len: their number. */
#define NOVARS_FH_INO64_GEN		0x81
#define NOVARS_FH_INO64_GEN_PARENT	0x82
#define NOVARS_FH_INVALID		0xff
int novars_rs_encode_fh(struct inode *inode, u32 *fh, int *max_len, struct inode *parent);
struct dentry *novars_rs_fh_to_dentry(struct super_block *sb, const u32 *fh, int len, int type,
				      bool parent);
struct dentry *novars_rs_get_parent(struct dentry *child);
/* fallocate, the inode lock held: 0 or -errno. */
long novars_rs_fallocate(struct file *file, int mode, loff_t off, loff_t len);

#endif /* NOVARS_SHIM_H */

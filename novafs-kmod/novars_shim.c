// SPDX-License-Identifier: GPL-2.0
/*
 * C side of novars: what Rust cannot reach in Linux 6.12 (the fs_context
 * API, the VFS operation tables, DAX and iomap, and `static inline`
 * helpers). It decides nothing about novars: it takes the inode locks of
 * the VFS entry points (Rust takes the invalidate lock where it reads or
 * drops page-cache entries), hands Rust the facts it cannot read itself
 * (the caller's ids), sets VFS inodes to the values Rust answers
 * (novars_inode_set: link counts, sizes, block counts, times), and states
 * the layouts both sides share. Every check, limit and choice is in Rust
 * (DESIGN.md).
 */
#include <linux/build_bug.h>
#include <linux/dax.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/iomap.h>
#include <linux/kthread.h>
#include <linux/libnvdimm.h>
#include <linux/mm.h>
#include <linux/mnt_idmapping.h>
#include <linux/module.h>
#include <linux/namei.h>
#include <linux/pagemap.h>
#include <linux/posix_acl.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/uio.h>
#include <linux/wait_bit.h>

#include "novars_ioctl.h"
#include "novars_shim.h"
#include "novars_trace.h"

/*
 * Layouts shared with Rust (mirrored by const asserts in shim.rs). Kernel
 * values that Rust's bindings have (PAGE_SIZE, ATTR_*, RENAME_*, S_IF*,
 * MAX_LOCKDEP_SUBCLASSES) are asserted there; these are the others.
 */
static_assert(sizeof(struct novars_opts) == 8);
static_assert(sizeof(struct novars_sb_c) == 48 && offsetof(struct novars_sb_c, kaddr) == 16 &&
	      offsetof(struct novars_sb_c, uuid) == 32);
static_assert(sizeof(struct novars_iattr) == 96 &&
	      offsetof(struct novars_iattr, generation) == 20 &&
	      offsetof(struct novars_iattr, atime_sec) == 48 &&
	      offsetof(struct novars_iattr, atime_nsec) == 72 &&
	      offsetof(struct novars_iattr, link) == 88);
static_assert(sizeof(struct novars_map) == 32 && sizeof(struct novars_statfs) == 48);
static_assert(sizeof(struct novars_owner) == 16);
static_assert(sizeof(struct novars_create_args) == 64 &&
	      offsetof(struct novars_create_args, target) == 32 &&
	      offsetof(struct novars_create_args, acl) == 40);
static_assert(sizeof(struct novars_rename_args) == 80 &&
	      offsetof(struct novars_rename_args, old_len) == 48 &&
	      offsetof(struct novars_rename_args, owner) == 64);
static_assert(sizeof(struct novars_seal) == 24 && sizeof(struct novars_seal_info) == 16);
/* Kernel values Rust uses as plain numbers (shim.rs, file.rs, falloc.rs). */
static_assert(IOMAP_WRITE == 1 && IOMAP_FAULT == 1 << 3 && XA_PRESENT == 8);
static_assert(FALLOC_FL_KEEP_SIZE == 1 && FALLOC_FL_PUNCH_HOLE == 2 &&
	      FALLOC_FL_COLLAPSE_RANGE == 8 && FALLOC_FL_ZERO_RANGE == 0x10 &&
	      FALLOC_FL_INSERT_RANGE == 0x20);

/* The VFS inode with novars's per-inode state (owned by Rust). */
struct novars_inode {
	struct inode vfs;
	void *info;		/* Rust `InodeInfo`, freed in free_inode */
};

/* Rust reaches info from the inode (inode.rs `VfsInode`). */
static_assert(offsetof(struct novars_inode, info) == sizeof(struct inode));

static inline struct novars_inode *NI(struct inode *inode)
{
	return container_of(inode, struct novars_inode, vfs);
}

static struct kmem_cache *novars_inode_cachep;

/* ---------------------------------------------------------------- DAX */

long novars_dax_map(struct super_block *sb, struct novars_sb_c *c)
{
	long got;
	int id;

	c->dax = fs_dax_get_by_bdev(sb->s_bdev, &c->dax_part_off, NULL, NULL);
	if (!c->dax)
		return -EOPNOTSUPP;
	c->size = round_down(bdev_nr_bytes(sb->s_bdev), PAGE_SIZE);
	id = dax_read_lock();
	got = dax_direct_access(c->dax, PHYS_PFN(c->dax_part_off), c->size >> PAGE_SHIFT,
				DAX_ACCESS, &c->kaddr, NULL);
	dax_read_unlock(id);
	return got;
}

void novars_dax_unmap(struct novars_sb_c *c)
{
	fs_put_dax(c->dax, NULL);
	c->dax = NULL;
	c->kaddr = NULL;
	c->size = 0;
}

void novars_flush(const void *addr, size_t len)
{
	arch_wb_cache_pmem((void *)addr, len);
}

void novars_memcpy_nt(void *dst, const void *src, size_t len)
{
	memcpy_flushcache(dst, src, len);
}

u32 novars_cpu(void)
{
	return raw_smp_processor_id();
}

void novars_cond_resched(void)
{
	cond_resched();
}

size_t novars_copy_from_iter(void *iter, void *dst, size_t len)
{
	return _copy_from_iter_flushcache(dst, len, iter);
}

/*
 * Per-inode log locks (locks.rs): a mutex inside Rust's InodeInfo, one
 * lockdep class for all of them, taken with the subclass of its rank in
 * ascending inode order (the 6.12 Rust Mutex cannot say "nested").
 */
void novars_log_lock_init(struct mutex *m)
{
	static struct lock_class_key key;

	__mutex_init(m, "novars_log_lock", &key);
}

void novars_log_lock(struct mutex *m, unsigned int subclass)
{
	mutex_lock_nested(m, subclass);
}

void novars_log_unlock(struct mutex *m)
{
	mutex_unlock(m);
}

bool novars_sb_rdonly(struct super_block *sb)
{
	return sb_rdonly(sb);
}

/* errors=remount-ro after damage found while mounted (as ext4 does). */
void novars_sb_set_rdonly(struct super_block *sb)
{
	sb->s_flags |= SB_RDONLY;
}

/*
 * The free-space rebuild after a crash (super_.rs SbInfo::ensure_alloc),
 * started in the background at mount: the thread runs it once, then
 * waits for put_super's novars_rebuild_stop (so the task cannot exit, and
 * its task_struct go, before kthread_stop is called).
 */
static int novars_rebuild_main(void *sb)
{
	novars_rs_rebuild(sb);
	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop())
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

struct task_struct *novars_rebuild_start(struct super_block *sb)
{
	struct task_struct *t = kthread_run(novars_rebuild_main, sb, "novars-rebuild");

	return IS_ERR(t) ? NULL : t;
}

void novars_rebuild_stop(struct task_struct *t)
{
	kthread_stop(t);
}

/* ------------------------------------------------------------- inodes */

static struct inode *novars_alloc_inode(struct super_block *sb)
{
	struct novars_inode *ni = alloc_inode_sb(sb, novars_inode_cachep, GFP_KERNEL);

	if (!ni)
		return NULL;
	ni->info = NULL;
	return &ni->vfs;
}

static void novars_free_inode(struct inode *inode)
{
	struct novars_inode *ni = NI(inode);

	novars_rs_free_inode_info(ni->info);
	if (S_ISLNK(inode->i_mode))
		kfree(inode->i_link);
	kmem_cache_free(novars_inode_cachep, ni);
}

static void novars_evict_inode(struct inode *inode)
{
	truncate_inode_pages_final(&inode->i_data);
	novars_rs_evict(inode);
	clear_inode(inode);
}

/* Set the VFS inode to what Rust answers: the fields named in a->valid. */
void novars_inode_set(struct inode *inode, const struct novars_iattr *a)
{
	if (a->valid & NOVARS_I_NLINK)
		set_nlink(inode, a->nlink);
	if (a->valid & NOVARS_I_SIZE)
		i_size_write(inode, a->size);
	if (a->valid & NOVARS_I_BLOCKS)
		inode->i_blocks = a->blocks;
	if (a->valid & NOVARS_I_ATIME)
		inode_set_atime(inode, a->atime_sec, a->atime_nsec);
	if (a->valid & NOVARS_I_MTIME)
		inode_set_mtime(inode, a->mtime_sec, a->mtime_nsec);
	if (a->valid & NOVARS_I_CTIME)
		inode_set_ctime(inode, a->ctime_sec, a->ctime_nsec);
	if (a->valid & NOVARS_I_FLAGS)
		novars_set_iflags(inode, a->flags);
}

/*
 * Wait until no page of the file from byte start on is pinned (O_DIRECT,
 * RDMA through a mapping of it), unmapping it from user space on the way,
 * before its blocks are freed (shim.rs drop_dax_entries). Called and
 * returns with the invalidate lock held for writing; drops it while waiting.
 */
int novars_break_layouts(struct inode *inode, loff_t start)
{
	struct address_space *mapping = inode->i_mapping;
	struct page *page;
	int err;

	while ((page = dax_layout_busy_page_range(mapping, start, LLONG_MAX))) {
		filemap_invalidate_unlock(mapping);
		err = wait_var_event_killable(&page->_refcount,
					      page_ref_count(page) == 1);
		filemap_invalidate_lock(mapping);
		if (err)
			return err;
	}
	return 0;
}

/* Rust logs the change, prepares a size change and sets the inode (setattr.rs). */
static int novars_setattr(struct mnt_idmap *idmap, struct dentry *dentry,
			  struct iattr *attr)
{
	NOVARS_TRACE_OP(attr->ia_valid & ATTR_SIZE ? NOVARS_OP_TRUNCATE : NOVARS_OP_SETATTR);
	struct novars_acl_change acl = {};
	int err = setattr_prepare(idmap, dentry, attr);

	/* An access ACL follows a new mode (its owner, group-or-mask and
	 * other entries), logged in the same commit as the mode. */
	if (!err && (attr->ia_valid & ATTR_MODE))
		err = novars_acl_chmod(d_inode(dentry), attr->ia_mode, &acl);
	err = err ?: novars_rs_setattr(idmap, d_inode(dentry), attr,
				       from_kuid(&init_user_ns, AS_KUIDT(attr->ia_vfsuid)),
				       from_kgid(&init_user_ns, AS_KGIDT(attr->ia_vfsgid)),
				       acl.value, acl.size);
	novars_acl_chmod_done(d_inode(dentry), &acl, !err);
	return err;
}

/* The facts Rust decides a new inode's owner from (its rules: namei.rs). */
static struct novars_owner novars_owner(struct inode *dir)
{
	return (struct novars_owner){
		.fsuid = from_kuid(&init_user_ns, current_fsuid()),
		.fsgid = from_kgid(&init_user_ns, current_fsgid()),
		.dir_mode = dir->i_mode,
		.dir_gid = i_gid_read(dir),
	};
}

static int novars_new(struct inode *dir, struct dentry *dentry, umode_t mode,
		      dev_t rdev, const char *target)
{
	struct novars_create_args a = {
		.owner = novars_owner(dir), .rdev = new_encode_dev(rdev),
		.target = target, .tlen = target ? strlen(target) : 0,
	};
	struct posix_acl *default_acl, *acl;
	struct inode *inode;
	int err;

	err = novars_new_acl(dir, &mode, &default_acl, &acl, &a);
	if (err)
		return err;
	a.mode = mode;
	inode = novars_rs_create(dir, dentry->d_name.name, dentry->d_name.len, &a);
	/* The ACLs went in with the creation; security labels follow. On an
	 * error there the name stays, as on ext4 after a failed label. */
	err = novars_new_attrs(inode, dir, &dentry->d_name, default_acl, acl, &a);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	d_instantiate(dentry, inode);
	return err;
}

static int novars_create(struct mnt_idmap *idmap, struct inode *dir,
			 struct dentry *dentry, umode_t mode, bool excl)
{
	NOVARS_TRACE_OP(NOVARS_OP_CREATE);
	return novars_new(dir, dentry, mode | S_IFREG, 0, NULL);
}

static int novars_mkdir(struct mnt_idmap *idmap, struct inode *dir,
			struct dentry *dentry, umode_t mode)
{
	NOVARS_TRACE_OP(NOVARS_OP_MKDIR);
	return novars_new(dir, dentry, mode | S_IFDIR, 0, NULL);
}

static int novars_mknod(struct mnt_idmap *idmap, struct inode *dir,
			struct dentry *dentry, umode_t mode, dev_t rdev)
{
	NOVARS_TRACE_OP(NOVARS_OP_MKNOD);
	return novars_new(dir, dentry, mode, rdev, NULL);
}

static int novars_symlink(struct mnt_idmap *idmap, struct inode *dir,
			  struct dentry *dentry, const char *target)
{
	NOVARS_TRACE_OP(NOVARS_OP_SYMLINK);
	return novars_new(dir, dentry, S_IFLNK | 0777, 0, target);
}

static int novars_tmpfile(struct mnt_idmap *idmap, struct inode *dir,
			  struct file *file, umode_t mode)
{
	NOVARS_TRACE_OP(NOVARS_OP_CREATE);
	struct novars_create_args a = { .owner = novars_owner(dir) };
	struct posix_acl *default_acl, *acl;
	struct inode *inode;
	int err;

	err = novars_new_acl(dir, &mode, &default_acl, &acl, &a);
	if (err)
		return err;
	a.mode = mode;
	inode = novars_rs_tmpfile(dir, &a);
	err = novars_new_attrs(inode, dir, &file_dentry(file)->d_name, default_acl, acl, &a);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	if (err) {
		iput(inode);
		return err;
	}
	d_tmpfile(file, inode);
	return finish_open_simple(file, 0);
}

static int novars_link(struct dentry *old_dentry, struct inode *dir,
		       struct dentry *dentry)
{
	NOVARS_TRACE_OP(NOVARS_OP_LINK);
	struct inode *inode = d_inode(old_dentry);
	int err;

	err = novars_rs_link(dir, dentry->d_name.name, dentry->d_name.len, inode);
	if (err)
		return err;
	ihold(inode);
	d_instantiate(dentry, inode);
	return 0;
}

static int novars_unlink(struct inode *dir, struct dentry *dentry)
{
	NOVARS_TRACE_OP(NOVARS_OP_UNLINK);
	return novars_rs_unlink(dir, dentry->d_name.name, dentry->d_name.len,
				d_inode(dentry), false);
}

static int novars_rmdir(struct inode *dir, struct dentry *dentry)
{
	NOVARS_TRACE_OP(NOVARS_OP_RMDIR);
	return novars_rs_unlink(dir, dentry->d_name.name, dentry->d_name.len,
				d_inode(dentry), true);
}

/* rename(2), RENAME_NOREPLACE (checked by the VFS), _EXCHANGE, _WHITEOUT
 * (the whiteout is made in Rust's transaction; nothing of it is cached). */
static int novars_rename(struct mnt_idmap *idmap, struct inode *old_dir,
			 struct dentry *old_dentry, struct inode *new_dir,
			 struct dentry *new_dentry, unsigned int flags)
{
	NOVARS_TRACE_OP(NOVARS_OP_RENAME);
	struct novars_rename_args a = {
		.old_dir = old_dir, .new_dir = new_dir,
		.moved = d_inode(old_dentry), .victim = d_inode(new_dentry),
		.old_name = old_dentry->d_name.name, .old_len = old_dentry->d_name.len,
		.new_name = new_dentry->d_name.name, .new_len = new_dentry->d_name.len,
		.flags = flags, .owner = novars_owner(old_dir),
	};

	return novars_rs_rename(&a);
}

static void novars_inode_init_once(void *p)
{
	struct novars_inode *ni = p;

	inode_init_once(&ni->vfs);
}

/* ---------------------------------------------------------- directories */

int novars_dir_emit(struct dir_context *ctx, const char *name, int len,
		    u64 ino, u32 dt, u64 pos)
{
	ctx->pos = pos;
	if (!dir_emit(ctx, name, len, ino, dt))
		return 0;
	ctx->pos = pos + 1;
	return 1;
}

static int novars_readdir(struct file *file, struct dir_context *ctx)
{
	struct inode *inode = file_inode(file);

	if (!dir_emit_dots(file, ctx))
		return 0;
	return novars_rs_readdir(inode, ctx, ctx->pos);
}

static loff_t novars_dir_llseek(struct file *file, loff_t offset, int whence)
{
	return generic_file_llseek_size(file, offset, whence, NOVARS_DIR_POS_MAX, 0);
}

static const struct file_operations novars_dir_fops = {
	.llseek		= novars_dir_llseek,
	.read		= generic_read_dir,
	.iterate_shared	= novars_readdir,
	.fsync		= noop_fsync,
	.unlocked_ioctl	= novars_fs_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

static const struct inode_operations novars_dir_iops = {
	.lookup		= novars_rs_lookup,
	.create		= novars_create,
	.mkdir		= novars_mkdir,
	.mknod		= novars_mknod,
	.tmpfile	= novars_tmpfile,
	.symlink	= novars_symlink,
	.link		= novars_link,
	.unlink		= novars_unlink,
	.rmdir		= novars_rmdir,
	.rename		= novars_rename,
	.getattr	= novars_rs_getattr,
	.setattr	= novars_setattr,
	.listxattr	= novars_listxattr,
	.get_inode_acl	= novars_get_acl,
	.set_acl	= novars_set_acl,
	.fileattr_get	= novars_fileattr_get,
	.fileattr_set	= novars_fileattr_set,
};

/* -------------------------------------------------------------- files */

static int novars_iomap_begin(struct inode *inode, loff_t pos, loff_t length,
			      unsigned int flags, struct iomap *iomap,
			      struct iomap *srcmap)
{
	struct novars_sb_c *c = inode->i_sb->s_fs_info;
	struct novars_map m = {};
	int err;

	/* IOMAP_WRITE comes from write faults (DAX mmap): holes get blocks. */
	err = novars_rs_iomap_begin(inode, pos, length, flags, i_size_read(inode), &m);
	if (err)
		return err;
	iomap->flags = m.flags & NOVARS_MAP_NEW ? IOMAP_F_NEW : 0;
	iomap->bdev = inode->i_sb->s_bdev;
	iomap->dax_dev = c->dax;
	iomap->offset = m.offset;
	iomap->length = m.length;
	if (m.mapped) {
		iomap->type = m.mapped == NOVARS_MAPPED_UNWRITTEN ? IOMAP_UNWRITTEN : IOMAP_MAPPED;
		iomap->addr = m.addr + c->dax_part_off;
	} else {
		iomap->type = IOMAP_HOLE;
		iomap->addr = IOMAP_NULL_ADDR;
	}
	return 0;
}

static const struct iomap_ops novars_iomap_ops = {
	.iomap_begin	= novars_iomap_begin,
};

static ssize_t novars_file_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	ssize_t ret;

	if (!iov_iter_count(to))
		return 0;
	if (!inode_trylock_shared(inode)) {
		if (iocb->ki_flags & IOCB_NOWAIT)
			return -EAGAIN;
		inode_lock_shared(inode);
	}
	ret = dax_iomap_rw(iocb, to, &novars_iomap_ops);
	inode_unlock_shared(inode);
	file_accessed(iocb->ki_filp);
	return ret;
}

static ssize_t novars_file_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	NOVARS_TRACE_OP(NOVARS_OP_WRITE);
	struct file *file = iocb->ki_filp;
	struct inode *inode = file_inode(file);
	size_t count;
	ssize_t ret;

	if (!inode_trylock(inode)) {
		if (iocb->ki_flags & IOCB_NOWAIT)
			return -EAGAIN;
		inode_lock(inode);
	}
	/* RWF_NOWAIT without O_DIRECT: EINVAL from here, as on ext4. */
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	ret = file_remove_privs(file);
	if (ret)
		goto out;
	count = iov_iter_count(from);
	for (;;) {
		/*
		 * Rust holds locks a fault on the source buffer would take (a
		 * mapping of a novars file): copy without faulting, and on a
		 * short copy fault the buffer in here, unlocked, and retry.
		 */
		pagefault_disable();
		ret = novars_rs_write(inode, from, iocb->ki_pos, count);
		pagefault_enable();
		if (ret > 0)
			iocb->ki_pos += ret;
		if (ret != -EFAULT)
			break;
		iov_iter_revert(from, count - iov_iter_count(from));
		/* A source mapped from this very range gets DAX entries here,
		 * so the retry writes in place and cannot livelock. */
		if (fault_in_iov_iter_readable(from, count) == count)
			break;
	}
out:
	inode_unlock(inode);
	return ret;
}

static loff_t novars_file_llseek(struct file *file, loff_t offset, int whence)
{
	struct inode *inode = file_inode(file);

	if (whence != SEEK_HOLE && whence != SEEK_DATA)
		return generic_file_llseek(file, offset, whence);
	inode_lock_shared(inode);
	offset = whence == SEEK_HOLE ? iomap_seek_hole(inode, offset, &novars_iomap_ops) :
				       iomap_seek_data(inode, offset, &novars_iomap_ops);
	inode_unlock_shared(inode);
	if (offset < 0)
		return offset;
	return vfs_setpos(file, offset, inode->i_sb->s_maxbytes);
}

/* fallocate(2): Rust checks the mode and drops the DAX entries (falloc.rs). */
static long novars_fallocate(struct file *file, int mode, loff_t offset, loff_t len)
{
	NOVARS_TRACE_OP(NOVARS_OP_FALLOCATE);
	struct inode *inode = file_inode(file);
	long ret;

	inode_lock(inode);
	ret = novars_rs_fallocate(file, mode, offset, len);
	inode_unlock(inode);
	return ret;
}

static int novars_fiemap(struct inode *inode, struct fiemap_extent_info *fi,
			 u64 start, u64 len)
{
	int err;

	inode_lock_shared(inode);
	err = iomap_fiemap(inode, fi, start, len, &novars_iomap_ops);
	inode_unlock_shared(inode);
	return err;
}

static int novars_file_open(struct inode *inode, struct file *file)
{
	/* Every access is direct (DAX): O_DIRECT is accepted; RWF_NOWAIT
	 * answers EAGAIN instead of waiting for the inode lock. */
	int err = novars_rs_live(inode->i_sb);

	if (err)
		return err;
	file->f_mode |= FMODE_CAN_ODIRECT | FMODE_NOWAIT;
	return generic_file_open(inode, file);
}

/*
 * DAX faults. A write fault on a hole allocates zeroed blocks and commits
 * them to the inode's log inside iomap_begin (mmap.rs), so nothing is left
 * for MAP_SYNC to flush: novars never sets IOMAP_F_DIRTY and DAX never
 * answers VM_FAULT_NEEDDSYNC (handled anyway, should that change). The
 * invalidate lock (shared) keeps faults out of truncate, fallocate, seals
 * and write()s deciding between copy-on-write and in place.
 */
static vm_fault_t novars_dax_huge_fault(struct vm_fault *vmf, unsigned int order)
{
	NOVARS_TRACE_OP(NOVARS_OP_FAULT);
	struct file *file = vmf->vma->vm_file;
	struct inode *inode = file_inode(file);
	struct address_space *mapping = file->f_mapping;
	/* A write to a private mapping copies the page: a read for novars. */
	bool write = (vmf->flags & FAULT_FLAG_WRITE) &&
		     (vmf->vma->vm_flags & VM_SHARED);
	vm_fault_t ret;
	int err = 0;
	pfn_t pfn;

	if (write) {
		sb_start_pagefault(inode->i_sb);
		file_update_time(file);
	}
	filemap_invalidate_lock_shared(mapping);
	ret = dax_iomap_fault(vmf, order, &pfn, &err, &novars_iomap_ops);
	if (write && (ret & VM_FAULT_NEEDDSYNC))
		ret = dax_finish_sync_fault(vmf, order, pfn);
	filemap_invalidate_unlock_shared(mapping);
	if (write)
		sb_end_pagefault(inode->i_sb);
	return ret;
}

static vm_fault_t novars_dax_fault(struct vm_fault *vmf)
{
	return novars_dax_huge_fault(vmf, 0);
}

static const struct vm_operations_struct novars_dax_vm_ops = {
	.fault		= novars_dax_fault,
	.huge_fault	= novars_dax_huge_fault,
	.page_mkwrite	= novars_dax_fault,
	.pfn_mkwrite	= novars_dax_fault,
};

static int novars_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct novars_sb_c *c = file_inode(file)->i_sb->s_fs_info;
	int err = novars_rs_live(file_inode(file)->i_sb);

	if (err)
		return err;
	/* MAP_SYNC only where the device is synchronous (not virtio-pmem). */
	if (!daxdev_mapping_supported(vma, c->dax))
		return -EOPNOTSUPP;
	file_accessed(file);
	vma->vm_ops = &novars_dax_vm_ops;
	vm_flags_set(vma, VM_HUGEPAGE);
	return 0;
}

/*
 * fsync/msync: every system call and every fault is durable when it
 * returns; what is left are user stores through mappings without
 * MAP_SYNC, and the times the VFS set itself (write_inode logs them).
 * Write back the cache lines of exactly the pages DAX tagged dirty in the
 * range (dax_writeback_mapping_range walks the tags).
 */
static int novars_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	int err = novars_rs_live(file_inode(file)->i_sb);

	if (err)
		return err;
	err = file_write_and_wait_range(file, start, end);

	/* And the times the VFS changed (a write fault's mtime), as ext4. */
	return err ?: sync_inode_metadata(file_inode(file), 1);
}

static int novars_dax_writepages(struct address_space *mapping,
				 struct writeback_control *wbc)
{
	struct novars_sb_c *c = mapping->host->i_sb->s_fs_info;
	int err = novars_rs_live(mapping->host->i_sb);

	return err ?: dax_writeback_mapping_range(mapping, c->dax, wbc);
}

/* The ioctls of novars_ioctl.h: Rust copies and checks their arguments. */
static long novars_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case NOVARS_IOC_SEAL:
		return novars_rs_ioc_seal(file, file->f_mode & FMODE_WRITE, arg);
	case NOVARS_IOC_SEAL_INFO:
		return novars_rs_ioc_seal_info(file_inode(file), arg);
	}
	return novars_fs_ioctl(file, cmd, arg);
}

static const struct file_operations novars_file_fops = {
	.mmap		= novars_file_mmap,
	/* 2 MiB-aligned addresses for large mappings, so PMD faults can map
	 * them (NULL without CONFIG_TRANSPARENT_HUGEPAGE). */
	.get_unmapped_area = thp_get_unmapped_area,
	.llseek		= novars_file_llseek,
	.read_iter	= novars_file_read_iter,
	.write_iter	= novars_file_write_iter,
	.splice_read	= copy_splice_read,
	.splice_write	= iter_file_splice_write,
	.open		= novars_file_open,
	.release	= novars_rs_release,
	.unlocked_ioctl	= novars_file_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.fallocate	= novars_fallocate,
	.fsync		= novars_fsync,
	.fop_flags	= FOP_MMAP_SYNC,
};

static const struct inode_operations novars_file_iops = {
	.getattr	= novars_rs_getattr,
	.setattr	= novars_setattr,
	.fiemap		= novars_fiemap,
	.listxattr	= novars_listxattr,
	.get_inode_acl	= novars_get_acl,
	.set_acl	= novars_set_acl,
	.fileattr_get	= novars_fileattr_get,
	.fileattr_set	= novars_fileattr_set,
};

static const struct inode_operations novars_special_iops = {
	.getattr	= novars_rs_getattr,
	.setattr	= novars_setattr,
	.listxattr	= novars_listxattr,
	.get_inode_acl	= novars_get_acl,
	.set_acl	= novars_set_acl,
};

/* Symlinks: the target is in i_link; owner and times are logged (lchown,
 * utimensat with AT_SYMLINK_NOFOLLOW), statx reports btime. */
static const struct inode_operations novars_symlink_iops = {
	.get_link	= simple_get_link,
	.getattr	= novars_rs_getattr,
	.setattr	= novars_setattr,
	.listxattr	= novars_listxattr,
};

static const struct address_space_operations novars_dax_aops = {
	.writepages	= novars_dax_writepages,
	.dirty_folio	= noop_dirty_folio,
};

/* An inode from Rust's attributes (novars_rs_read_inode), with its tables;
 * gen: NULL, or the generation of the file handle naming ino. */
static struct inode *novars_iget_gen(struct super_block *sb, u64 ino, const u32 *gen)
{
	struct novars_iattr a = {};
	struct inode *inode;
	int err = -EIO;

	inode = iget_locked(sb, ino);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW))
		return inode;
	NI(inode)->info = novars_rs_read_inode(sb, ino, gen, &a, &err);
	if (!NI(inode)->info) {
		iget_failed(inode);
		return ERR_PTR(err);
	}
	inode->i_mode = a.mode;
	i_uid_write(inode, a.uid);
	i_gid_write(inode, a.gid);
	inode->i_generation = a.generation;
	novars_inode_set(inode, &a);
	switch (a.mode & S_IFMT) {
	case S_IFREG:
		inode->i_op = &novars_file_iops;
		inode->i_fop = &novars_file_fops;
		inode->i_mapping->a_ops = &novars_dax_aops;
		inode->i_flags |= S_DAX;
		break;
	case S_IFDIR:
		inode->i_op = &novars_dir_iops;
		inode->i_fop = &novars_dir_fops;
		break;
	case S_IFLNK:
		inode->i_op = &novars_symlink_iops;
		inode->i_link = a.link;	/* freed in novars_free_inode */
		a.link = NULL;
		break;
	default:
		inode->i_op = &novars_special_iops;
		init_special_inode(inode, a.mode, new_decode_dev((u32)a.rdev));
		break;
	}
	kfree(a.link);
	unlock_new_inode(inode);
	return inode;
}

struct inode *novars_iget(struct super_block *sb, u64 ino)
{
	return novars_iget_gen(sb, ino, NULL);
}

struct inode *novars_iget_handle(struct super_block *sb, u64 ino, u32 gen)
{
	return novars_iget_gen(sb, ino, &gen);
}

/* -------------------------------------------------------------- super */

static void novars_put_super(struct super_block *sb)
{
	NOVARS_TRACE_OP(NOVARS_OP_UNMOUNT);
	novars_rs_put_super(sb);
}

static int novars_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct super_block *sb = dentry->d_sb;
	struct novars_sb_c *c = sb->s_fs_info;
	struct novars_statfs s = {};

	novars_rs_statfs(sb, &s);
	buf->f_type = sb->s_magic;
	buf->f_bsize = PAGE_SIZE;
	buf->f_frsize = PAGE_SIZE;
	buf->f_blocks = s.blocks;
	buf->f_bfree = s.bfree;
	buf->f_bavail = s.bavail;
	buf->f_files = s.files;
	buf->f_ffree = s.ffree;
	buf->f_namelen = s.namelen;
	buf->f_fsid = uuid_to_fsid(c->uuid);
	return 0;
}

static const struct super_operations novars_sops = {
	.alloc_inode	= novars_alloc_inode,
	.free_inode	= novars_free_inode,
	.evict_inode	= novars_evict_inode,
	.write_inode	= novars_rs_write_inode,
	.put_super	= novars_put_super,
	.statfs		= novars_statfs,
	.show_options	= novars_rs_show_options,
};

/* -------------------------------------------------------- fs_context */

/* A mount option: Rust knows them (super_.rs); a flag has no value. */
static int novars_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	int err = -EINVAL;

	if (param->type == fs_value_is_flag || param->type == fs_value_is_string)
		err = novars_rs_parse_param(fc->fs_private, param->key,
					    param->type == fs_value_is_string ? param->string : NULL);
	if (err == -EINVAL)
		return invalfc(fc, "Bad value for '%s'", param->key);
	return err;
}

static int novars_fill_super_c(struct super_block *sb, struct fs_context *fc)
{
	int err;

	NOVARS_TRACE_OP(NOVARS_OP_MOUNT);
	sb->s_op = &novars_sops;
	sb->s_xattr = novars_xattr_handlers;
	sb->s_export_op = &novars_export_ops;
#ifdef CONFIG_FS_POSIX_ACL
	/* The umask is then ours to apply: posix_acl_create() does. */
	sb->s_flags |= SB_POSIXACL;
#endif
	err = novars_rs_fill_super(sb, fc->fs_private, fc->sb_flags & SB_SILENT);
	if (!err) {
		struct novars_sb_c *c = sb->s_fs_info;

		/* FS_IOC_GETFSUUID, overlayfs and others read it. */
		super_set_uuid(sb, c->uuid, sizeof(c->uuid));
	}
	return err;
}

static int novars_get_tree(struct fs_context *fc)
{
	return get_tree_bdev(fc, novars_fill_super_c);
}

static int novars_reconfigure(struct fs_context *fc)
{
	struct super_block *sb = fc->root->d_sb;

	sync_filesystem(sb);
	/* The VFS refuses read-write on a read-only device (EACCES). */
	return novars_rs_reconfigure(sb, fc->fs_private, fc->sb_flags_mask & SB_RDONLY,
				     fc->sb_flags & SB_RDONLY);
}

static void novars_free_fc(struct fs_context *fc)
{
	kfree(fc->fs_private);
}

static const struct fs_context_operations novars_context_ops = {
	.parse_param	= novars_parse_param,
	.get_tree	= novars_get_tree,
	.reconfigure	= novars_reconfigure,
	.free		= novars_free_fc,
};

static int novars_init_fs_context(struct fs_context *fc)
{
	struct novars_opts *o = kzalloc(sizeof(*o), GFP_KERNEL);

	if (!o)
		return -ENOMEM;
	fc->fs_private = o;
	fc->ops = &novars_context_ops;
	return 0;
}

static struct file_system_type novars_fs_type = {
	.owner		= THIS_MODULE,
	.name		= "novars",
	.init_fs_context = novars_init_fs_context,
	.kill_sb	= kill_block_super,
	.fs_flags	= FS_REQUIRES_DEV,
};

int novars_register_fs(void)
{
	int err;

	novars_inode_cachep = kmem_cache_create("novars_inode_cache",
						sizeof(struct novars_inode), 0,
						SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT,
						novars_inode_init_once);
	if (!novars_inode_cachep)
		return -ENOMEM;
	err = novars_trace_init();
	if (!err)
		err = register_filesystem(&novars_fs_type);
	if (err) {
		novars_trace_exit();
		kmem_cache_destroy(novars_inode_cachep);
	}
	return err;
}

void novars_unregister_fs(void)
{
	unregister_filesystem(&novars_fs_type);
	novars_trace_exit();
	/* Inodes are freed by RCU: wait for them before the cache goes. */
	rcu_barrier();
	kmem_cache_destroy(novars_inode_cachep);
}

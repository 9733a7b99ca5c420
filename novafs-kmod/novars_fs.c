// SPDX-License-Identifier: GPL-2.0
/*
 * novars: VFS glue for the file system as a whole: the file-system ioctls
 * (shutdown, label: fsioctl.rs), tearing down every mapping at a shutdown,
 * and the export operations (export.rs). Every decision is in Rust.
 */

#include <linux/exportfs.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/sched.h>

#include "novars_shim.h"

static_assert(NOVARS_FH_INO64_GEN == FILEID_INO64_GEN &&
	      NOVARS_FH_INO64_GEN_PARENT == FILEID_INO64_GEN_PARENT &&
	      NOVARS_FH_INVALID == FILEID_INVALID);

/* The file-system ioctls (fsioctl.rs), on files and directories alike. */
long novars_fs_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	bool writes = novars_rs_ioctl_writes(cmd);
	long ret;

	if (writes) {
		ret = mnt_want_write_file(file);
		if (ret)
			return ret;
	}
	ret = novars_rs_ioctl_fs(file_inode(file)->i_sb, cmd, arg);
	if (writes)
		mnt_drop_write_file(file);
	return ret;
}

/* Shutdown: every inode's mappings go (a later store faults and gets
 * SIGBUS). The walk of s_inodes as drop_pagecache_sb does it. */
void novars_unmap_all(struct super_block *sb)
{
	struct inode *inode, *prev = NULL;

	spin_lock(&sb->s_inode_list_lock);
	list_for_each_entry(inode, &sb->s_inodes, i_sb_list) {
		spin_lock(&inode->i_lock);
		if ((inode->i_state & (I_FREEING | I_WILL_FREE | I_NEW)) ||
		    !mapping_mapped(inode->i_mapping)) {
			spin_unlock(&inode->i_lock);
			continue;
		}
		__iget(inode);
		spin_unlock(&inode->i_lock);
		spin_unlock(&sb->s_inode_list_lock);
		unmap_mapping_range(inode->i_mapping, 0, 0, 1);
		iput(prev);
		prev = inode;
		cond_resched();
		spin_lock(&sb->s_inode_list_lock);
	}
	spin_unlock(&sb->s_inode_list_lock);
	iput(prev);
}

static struct dentry *novars_fh_to_dentry(struct super_block *sb, struct fid *fid, int fh_len,
					  int fh_type)
{
	return novars_rs_fh_to_dentry(sb, fid->raw, fh_len, fh_type, false);
}

static struct dentry *novars_fh_to_parent(struct super_block *sb, struct fid *fid, int fh_len,
					  int fh_type)
{
	return novars_rs_fh_to_dentry(sb, fid->raw, fh_len, fh_type, true);
}

/*
 * File handles for open_by_handle_at(2) and knfsd. No commit_metadata:
 * every novars operation is durable when it returns (its journal or tail
 * commit is fenced), so there is nothing left for nfsd to commit.
 */
const struct export_operations novars_export_ops = {
	.encode_fh	= novars_rs_encode_fh,
	.fh_to_dentry	= novars_fh_to_dentry,
	.fh_to_parent	= novars_fh_to_parent,
	.get_parent	= novars_rs_get_parent,
};

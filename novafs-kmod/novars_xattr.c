// SPDX-License-Identifier: GPL-2.0
/*
 * novars: VFS glue for an inode's attributes: extended attributes, POSIX
 * ACLs and inode flags. Every decision (names, flags, limits, errnos, what
 * is logged) is in xattr.rs and iflags.rs; this file converts between the
 * VFS's forms (xattr handlers, struct posix_acl, struct fileattr, i_flags)
 * and the values Rust stores.
 */

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/fileattr.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/security.h>
#include <linux/slab.h>
#include <linux/xattr.h>

#include "novars_ioctl.h"
#include "novars_shim.h"
#include "novars_trace.h"

static_assert(XATTR_CREATE == NOVARS_XATTR_CREATE && XATTR_REPLACE == NOVARS_XATTR_REPLACE);

static int novars_xattr_get(const struct xattr_handler *h, struct dentry *dentry,
			    struct inode *inode, const char *name, void *buf, size_t size)
{
	return novars_rs_getxattr(inode, h->flags, name, buf, size);
}

static int novars_xattr_set(const struct xattr_handler *h, struct mnt_idmap *idmap,
			    struct dentry *dentry, struct inode *inode, const char *name,
			    const void *value, size_t size, int flags)
{
	NOVARS_TRACE_OP(NOVARS_OP_XATTR);
	return novars_rs_setxattr(inode, h->flags, name, value, size, flags, U32_MAX);
}

static bool novars_xattr_list_trusted(struct dentry *dentry)
{
	return capable(CAP_SYS_ADMIN);
}

static const struct xattr_handler novars_xattr_user = {
	.prefix	= XATTR_USER_PREFIX,
	.flags	= NOVARS_XA_USER,
	.get	= novars_xattr_get,
	.set	= novars_xattr_set,
};

static const struct xattr_handler novars_xattr_trusted = {
	.prefix	= XATTR_TRUSTED_PREFIX,
	.flags	= NOVARS_XA_TRUSTED,
	.list	= novars_xattr_list_trusted,
	.get	= novars_xattr_get,
	.set	= novars_xattr_set,
};

static const struct xattr_handler novars_xattr_security = {
	.prefix	= XATTR_SECURITY_PREFIX,
	.flags	= NOVARS_XA_SECURITY,
	.get	= novars_xattr_get,
	.set	= novars_xattr_set,
};

/* The ACLs are reached through get_inode_acl/set_acl, not handlers. */
const struct xattr_handler * const novars_xattr_handlers[] = {
	&novars_xattr_user, &novars_xattr_trusted, &novars_xattr_security, NULL,
};

ssize_t novars_listxattr(struct dentry *dentry, char *buf, size_t size)
{
	return novars_rs_listxattr(d_inode(dentry), capable(CAP_SYS_ADMIN), buf, size);
}

#ifdef CONFIG_FS_POSIX_ACL
static int novars_acl_index(int type)
{
	return type == ACL_TYPE_ACCESS ? NOVARS_XA_ACL_ACCESS : NOVARS_XA_ACL_DEFAULT;
}

struct posix_acl *novars_get_acl(struct inode *inode, int type, bool rcu)
{
	int idx = novars_acl_index(type);
	struct posix_acl *acl;
	void *buf;
	int n;

	if (rcu)
		return ERR_PTR(-ECHILD);
	for (;;) {
		n = novars_rs_getxattr(inode, idx, "", NULL, 0);
		if (n == -ENODATA)
			return NULL;
		if (n < 0)
			return ERR_PTR(n);
		buf = kmalloc(max(n, 1), GFP_KERNEL);
		if (!buf)
			return ERR_PTR(-ENOMEM);
		n = novars_rs_getxattr(inode, idx, "", buf, n);
		if (n != -ERANGE)	/* grown meanwhile: again */
			break;
		kfree(buf);
	}
	acl = n == -ENODATA ? NULL : n < 0 ? ERR_PTR(n) :
		posix_acl_from_xattr(&init_user_ns, buf, n);
	kfree(buf);
	return acl;
}

/* Stores `acl` (NULL: removes it) and, if newmode is not U32_MAX, the
 * mode with it, in one commit. */
static int novars_store_acl(struct inode *inode, int type, struct posix_acl *acl, u32 newmode)
{
	void *value = NULL;
	size_t size = 0;
	int err;

	if (acl) {
		size = posix_acl_xattr_size(acl->a_count);
		value = kmalloc(size, GFP_KERNEL);
		if (!value)
			return -ENOMEM;
		err = posix_acl_to_xattr(&init_user_ns, acl, value, size);
		if (err < 0)
			goto out;
	}
	err = novars_rs_setxattr(inode, novars_acl_index(type), "", value, size, 0, newmode);
	if (!err) {
		if (newmode != U32_MAX)
			inode->i_mode = newmode;
		set_cached_acl(inode, type, acl);
	}
out:
	kfree(value);
	return err;
}

/* For a chmod: the access ACL, if any, with its owner, group-or-mask and
 * other entries following `mode` (as posix_acl_chmod), as an xattr value
 * in `c` for setattr to log with the mode. */
int novars_acl_chmod(struct inode *inode, umode_t mode, struct novars_acl_change *c)
{
	struct posix_acl *acl = get_inode_acl(inode, ACL_TYPE_ACCESS);
	int err;

	if (IS_ERR_OR_NULL(acl))
		return PTR_ERR_OR_ZERO(acl);
	err = __posix_acl_chmod(&acl, GFP_KERNEL, mode);
	if (err)
		return err;	/* __posix_acl_chmod released it */
	c->acl = acl;
	c->size = posix_acl_xattr_size(acl->a_count);
	c->value = kmalloc(c->size, GFP_KERNEL);
	if (!c->value)
		return -ENOMEM;
	err = posix_acl_to_xattr(&init_user_ns, acl, c->value, c->size);
	return err < 0 ? err : 0;
}

/* After setattr: the VFS caches the new ACL if it was logged; `c` freed. */
void novars_acl_chmod_done(struct inode *inode, struct novars_acl_change *c, bool logged)
{
	if (logged && c->acl)
		set_cached_acl(inode, ACL_TYPE_ACCESS, c->acl);
	posix_acl_release(c->acl);
	kfree(c->value);
}

int novars_set_acl(struct mnt_idmap *idmap, struct dentry *dentry, struct posix_acl *acl,
		   int type)
{
	struct inode *inode = d_inode(dentry);
	umode_t mode = inode->i_mode;
	int err;

	NOVARS_TRACE_OP(NOVARS_OP_XATTR);
	if (type == ACL_TYPE_ACCESS && acl) {
		err = posix_acl_update_mode(idmap, inode, &mode, &acl);
		if (err)
			return err;
	}
	return novars_store_acl(inode, type, acl, mode != inode->i_mode ? mode : U32_MAX);
}

#endif /* CONFIG_FS_POSIX_ACL */

static int novars_initxattrs(struct inode *inode, const struct xattr *xattrs, void *fs_info)
{
	const struct xattr *x;
	int err = 0;

	for (x = xattrs; x->name; x++) {
		err = novars_rs_setxattr(inode, NOVARS_XA_SECURITY, x->name, x->value,
					 x->value_len, 0, U32_MAX);
		if (err)
			break;
	}
	return err;
}

#ifdef CONFIG_FS_POSIX_ACL
/* `acl` as an xattr value in a->acl[i] (NULL for none). */
static int novars_acl_value(struct posix_acl *acl, struct novars_create_args *a, int i)
{
	size_t size;
	void *value;
	int err;

	if (!acl)
		return 0;
	size = posix_acl_xattr_size(acl->a_count);
	value = kmalloc(size, GFP_KERNEL);
	if (!value)
		return -ENOMEM;
	err = posix_acl_to_xattr(&init_user_ns, acl, value, size);
	if (err < 0) {
		kfree(value);
		return err;
	}
	a->acl[i] = value;
	a->acl_len[i] = size;
	return 0;
}
#endif

/* A new inode's ACLs, inherited from dir's default ACL (without one the
 * umask applies: SB_POSIXACL leaves that to the file system): *mode as
 * they make it, and the ACLs as xattr values in `a` (access, default),
 * which Rust logs in the commit that creates the inode. novars_new_attrs
 * frees them, whatever happened in between. */
int novars_new_acl(struct inode *dir, umode_t *mode, struct posix_acl **default_acl,
		   struct posix_acl **acl, struct novars_create_args *a)
{
	int err;

	*default_acl = *acl = NULL;
	err = posix_acl_create(dir, mode, default_acl, acl);
#ifdef CONFIG_FS_POSIX_ACL
	err = err ?: novars_acl_value(*acl, a, 0);
	err = err ?: novars_acl_value(*default_acl, a, 1);
	if (err)
		novars_new_attrs(ERR_PTR(err), dir, NULL, *default_acl, *acl, a);
#endif
	return err;
}

/* After the creation (`inode`, or an ERR_PTR if it failed): the VFS caches
 * the ACLs it was created with; the security labels (initxattrs). Frees
 * what novars_new_acl made. */
int novars_new_attrs(struct inode *inode, struct inode *dir, const struct qstr *name,
		     struct posix_acl *default_acl, struct posix_acl *acl,
		     struct novars_create_args *a)
{
	int err = 0;

	kfree(a->acl[0]);
	kfree(a->acl[1]);
	a->acl[0] = a->acl[1] = NULL;
	if (!IS_ERR(inode)) {
#ifdef CONFIG_FS_POSIX_ACL
		set_cached_acl(inode, ACL_TYPE_ACCESS, acl);
		if (S_ISDIR(inode->i_mode))
			set_cached_acl(inode, ACL_TYPE_DEFAULT, default_acl);
#endif
		err = security_inode_init_security(inode, dir, name, novars_initxattrs, NULL);
	}
	posix_acl_release(default_acl);
	posix_acl_release(acl);
	return err;
}

/* The VFS's view of the inode flags (as ext4_set_inode_flags). */
void novars_set_iflags(struct inode *inode, u32 fl)
{
	unsigned int f = 0;

	if (fl & FS_SYNC_FL)
		f |= S_SYNC;
	if (fl & FS_IMMUTABLE_FL)
		f |= S_IMMUTABLE;
	if (fl & FS_APPEND_FL)
		f |= S_APPEND;
	if (fl & FS_NOATIME_FL)
		f |= S_NOATIME;
	if (fl & FS_DIRSYNC_FL)
		f |= S_DIRSYNC;
	inode_set_flags(inode, f, S_SYNC | S_IMMUTABLE | S_APPEND | S_NOATIME | S_DIRSYNC);
}

/* chattr and xfs_io chattr: the flags Rust keeps (iflags.rs). */
int novars_fileattr_get(struct dentry *dentry, struct fileattr *fa)
{
	u32 flags, projid;
	int err = novars_rs_get_flags(d_inode(dentry), &flags, &projid);

	if (err)
		return err;
	fileattr_fill_flags(fa, flags);
	fa->fsx_projid = projid;
	return 0;
}

int novars_fileattr_set(struct mnt_idmap *idmap, struct dentry *dentry,
			       struct fileattr *fa)
{
	NOVARS_TRACE_OP(NOVARS_OP_FILEATTR);
	return novars_rs_set_flags(d_inode(dentry), fa->flags, fa->fsx_valid, fa->fsx_projid,
				   fa->fsx_valid && (fa->fsx_extsize || fa->fsx_cowextsize));
}

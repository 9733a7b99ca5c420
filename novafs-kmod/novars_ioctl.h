/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * novars ioctls, for user programs and the module alike.
 *
 * NOVARS_IOC_SEAL (file open for writing; no capability needed):
 *   Allocates every hole in [offset, offset + length) with zeroed blocks
 *   (durable when the call returns; the size grows to offset + length if it
 *   was smaller, as fallocate(2) mode 0), then seals the file's block map
 *   for as long as this open file stays open: until its last close, or the
 *   exit of the process (also by SIGKILL). While any seal is held:
 *     - truncate (either direction), fallocate punch/zero/collapse/insert,
 *       and write()s or write faults that would allocate a hole fail with
 *       EBUSY (a fault: SIGBUS);
 *     - write() and write faults update blocks in place: the physical
 *       extents (FIEMAP) never change.
 *   Seals live only in memory: nothing is written to the media about them,
 *   a crash or a remount has none. An open file holds at most one seal;
 *   sealing again through it only allocates. flags must be 0.
 *   Errors: EBADF (not open for writing), EINVAL (length 0, flags, not a
 *   regular file), EFBIG (range past the largest file), ENOSPC, EROFS,
 *   EOVERFLOW (2^32 - 1 holders already).
 *
 * NOVARS_IOC_SEAL_INFO (any open file): whether the file's block map is
 *   sealed and by how many open files.
 */
#ifndef NOVARS_IOCTL_H
#define NOVARS_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

struct novars_seal {
	__u64 offset;
	__u64 length;
	__u64 flags;	/* 0 */
};

struct novars_seal_info {
	__u32 sealed;	/* 1 if any seal is held, else 0 */
	__u32 holders;	/* open files holding a seal */
	__u64 reserved;	/* 0 */
};

#define NOVARS_IOC_SEAL		_IOW('N', 0x51, struct novars_seal)
#define NOVARS_IOC_SEAL_INFO	_IOR('N', 0x52, struct novars_seal_info)

#endif /* NOVARS_IOCTL_H */

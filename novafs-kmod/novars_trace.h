/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The persistence trace of the tracing build (issue 7; Kbuild NOVARS_TRACE=y
 * defines NOVARS_TRACE for C and `--cfg novars_trace` for Rust). The format
 * is layout/src/format/trace.rs; the buffer and its debugfs files are in
 * novars_trace.c; pm.rs records the stores, copies, flushes and fences.
 *
 * NOVARS_TRACE_OP(code), as the first declaration of a VFS entry point,
 * brackets the call with OP_BEGIN/OP_END records (OP_END at scope exit).
 * In a normal build it declares an unused constant: no code.
 */
#ifndef NOVARS_TRACE_H
#define NOVARS_TRACE_H

#include <linux/cleanup.h>
#include <linux/types.h>

/* layout::trace: the header's magic and version, record kinds (kind::*)
 * and operation codes (op::*); shim.rs asserts each equal to layout's. */
#define NOVARS_TRACE_MAGIC	0x5254564e	/* "NVTR" little-endian */
#define NOVARS_TRACE_VERSION	1
#define NOVARS_KIND_STORE	1
#define NOVARS_KIND_NT_STORE	2
#define NOVARS_KIND_OP_BEGIN	5
#define NOVARS_KIND_OP_END	6
#define NOVARS_KIND_USER_STORE	7

#define NOVARS_OP_MOUNT		1
#define NOVARS_OP_UNMOUNT	2
#define NOVARS_OP_CREATE	3
#define NOVARS_OP_MKDIR		4
#define NOVARS_OP_WRITE		5
#define NOVARS_OP_TRUNCATE	6
#define NOVARS_OP_SETATTR	7
#define NOVARS_OP_LINK		8
#define NOVARS_OP_UNLINK	9
#define NOVARS_OP_RMDIR		10
#define NOVARS_OP_RENAME	11
#define NOVARS_OP_SYMLINK	12
#define NOVARS_OP_MKNOD		13
#define NOVARS_OP_FALLOCATE	14
#define NOVARS_OP_FSYNC		15
#define NOVARS_OP_FAULT		16
#define NOVARS_OP_XATTR		17
#define NOVARS_OP_FILEATTR	18

/* pm::Fault::FaultCommitNoFlush: applies only inside a DAX fault. */
#define NOVARS_FAULT_IN_PAGE_FAULT	5

#ifdef NOVARS_TRACE
struct novars_trace_op {
	u64 code;
	u32 nr;
};

struct novars_trace_op novars_trace_op_begin(u64 code);
void novars_trace_op_end(struct novars_trace_op *op);
/* Appends one record (kind: layout::trace::kind; data: `len` bytes for
 * STORE and NT_STORE, else NULL). Called from pm.rs. */
void novars_trace_rec(u8 kind, u64 pos, u32 len, const void *data);
/* Is deliberate fault `bit` (pm.rs `Fault`) switched on? */
bool novars_trace_fault(u32 bit);
/* The block pm::Fault::Poison makes unreadable (debugfs poison_block). */
u64 novars_trace_poison_block(void);
int novars_trace_init(void);
void novars_trace_exit(void);

#define NOVARS_TRACE_OP(code)						\
	struct novars_trace_op __novars_trace_op			\
		__cleanup(novars_trace_op_end) = novars_trace_op_begin(code)
#else
static inline int novars_trace_init(void) { return 0; }
static inline void novars_trace_exit(void) { }
#define NOVARS_TRACE_OP(code) const u8 __novars_trace_op __maybe_unused = 0
#endif

#endif /* NOVARS_TRACE_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * Tracing build only (Kbuild NOVARS_TRACE=y): the in-memory persistence
 * trace of issue 7 and its debugfs files, in /sys/kernel/debug/novars/:
 *
 *   enable   write 1: empty the buffer (allocated at buf_mib MiB) and
 *            start recording; write 0: stop (the trace is then readable)
 *   trace    the trace (layout/src/format/trace.rs: header, records);
 *            EBUSY while recording
 *   buf_mib  buffer size for the next `enable` (default 64)
 *   faults   deliberate faults for the checker's self-test (pm::Fault bits)
 *   poison_block  the block pm::Fault::Poison makes unreadable
 *   user_store
 *            a program that stored into a MAP_SYNC mapping and flushed and
 *            fenced its lines writes here: an 8-byte little-endian device
 *            offset, then the bytes (1 to 4096); recorded as USER_STORE
 *            (durable from this point on; the checker's oracle then wants
 *            them in every later crash image). Ignored while not recording.
 *
 * Records are appended under one spinlock, so they are in one global
 * order; a full buffer counts the records it drops in the header (the
 * checker then refuses the trace).
 */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "novars_trace.h"

#define USER_STORE_MAX		4096

/* layout::trace::TraceHeader and TraceRecord (little-endian x86). */
struct novars_trace_header {
	u32 magic;
	u32 version;
	u64 bytes;
	u64 dropped;
	u64 reserved;
};

struct novars_trace_record {
	u8 kind;
	u8 pad[3];
	u32 len;
	u64 pos;
};

static_assert(sizeof(struct novars_trace_header) == 32);
static_assert(sizeof(struct novars_trace_record) == 16);
static_assert(offsetof(struct novars_trace_record, len) == 4);
static_assert(offsetof(struct novars_trace_record, pos) == 8);

static DEFINE_MUTEX(trace_mutex);	/* enable/disable, read, free */
static DEFINE_SPINLOCK(trace_lock);	/* appends */
static bool trace_on;
static u8 *trace_buf;			/* header, then records */
static size_t trace_cap;		/* bytes of trace_buf */
static size_t trace_len;		/* bytes of records after the header */
static u64 trace_dropped;
static atomic_t trace_opnr;
static u32 trace_buf_mib = 64;
static u32 trace_faults;
static u64 trace_poison_block = U64_MAX;	/* pm::Fault::Poison */
static struct dentry *trace_dir;
/* The task inside a DAX fault (NOVARS_OP_FAULT), for the fault-only faults. */
static struct task_struct *trace_fault_task;

bool novars_trace_fault(u32 bit)
{
	if (bit >= 32 || !(READ_ONCE(trace_faults) & (1u << bit)))
		return false;
	/* pm::Fault::FaultCommitNoFlush applies inside a DAX fault only. */
	if (bit == NOVARS_FAULT_IN_PAGE_FAULT)
		return READ_ONCE(trace_fault_task) == current;
	return true;
}

u64 novars_trace_poison_block(void)
{
	return READ_ONCE(trace_poison_block);
}

void novars_trace_rec(u8 kind, u64 pos, u32 len, const void *data)
{
	struct novars_trace_record r = { .kind = kind, .len = len, .pos = pos };
	size_t pay = 0, at;
	unsigned long flags;

	if (!READ_ONCE(trace_on))
		return;
	if (kind == NOVARS_KIND_STORE || kind == NOVARS_KIND_NT_STORE ||
	    kind == NOVARS_KIND_USER_STORE)
		pay = round_up((size_t)len, 8);
	spin_lock_irqsave(&trace_lock, flags);
	if (!trace_on)
		goto out;
	at = sizeof(struct novars_trace_header) + trace_len;
	if (trace_cap - at < sizeof(r) + pay) {
		trace_dropped++;
		goto out;
	}
	memcpy(trace_buf + at, &r, sizeof(r));
	if (pay) {
		memcpy(trace_buf + at + sizeof(r), data, len);
		memset(trace_buf + at + sizeof(r) + len, 0, pay - len);
	}
	trace_len += sizeof(r) + pay;
out:
	spin_unlock_irqrestore(&trace_lock, flags);
}

struct novars_trace_op novars_trace_op_begin(u64 code)
{
	struct novars_trace_op op = { .code = code };

	if (!READ_ONCE(trace_on))
		return op;
	op.nr = atomic_inc_return(&trace_opnr);
	novars_trace_rec(NOVARS_KIND_OP_BEGIN, code, op.nr, NULL);
	if (code == NOVARS_OP_FAULT)
		WRITE_ONCE(trace_fault_task, current);
	return op;
}

void novars_trace_op_end(struct novars_trace_op *op)
{
	/* A call that began while tracing was off has no OP_BEGIN. */
	if (!op->nr)
		return;
	if (op->code == NOVARS_OP_FAULT && READ_ONCE(trace_fault_task) == current)
		WRITE_ONCE(trace_fault_task, NULL);
	novars_trace_rec(NOVARS_KIND_OP_END, op->code, op->nr, NULL);
}

/* Stops recording and waits for appends in flight; trace_mutex held. */
static void trace_stop(void)
{
	struct novars_trace_header h = {
		.magic = NOVARS_TRACE_MAGIC,
		.version = NOVARS_TRACE_VERSION,
	};

	WRITE_ONCE(trace_on, false);
	spin_lock_irq(&trace_lock);
	spin_unlock_irq(&trace_lock);
	if (!trace_buf)
		return;
	h.bytes = trace_len;
	h.dropped = trace_dropped;
	memcpy(trace_buf, &h, sizeof(h));
}

static int trace_enable_set(void *data, u64 val)
{
	size_t cap = (size_t)clamp(trace_buf_mib, 1u, 1024u) << 20;

	mutex_lock(&trace_mutex);
	trace_stop();
	if (val) {
		if (cap != trace_cap) {
			vfree(trace_buf);
			trace_cap = 0;
			trace_buf = vmalloc(cap);
			if (!trace_buf) {
				mutex_unlock(&trace_mutex);
				return -ENOMEM;
			}
			trace_cap = cap;
		}
		trace_len = 0;
		trace_dropped = 0;
		atomic_set(&trace_opnr, 0);
		/* Every append sees the empty buffer (spinlock release). */
		spin_lock_irq(&trace_lock);
		trace_on = true;
		spin_unlock_irq(&trace_lock);
	}
	mutex_unlock(&trace_mutex);
	return 0;
}

static int trace_enable_get(void *data, u64 *val)
{
	*val = READ_ONCE(trace_on);
	return 0;
}

DEFINE_DEBUGFS_ATTRIBUTE(trace_enable_fops, trace_enable_get, trace_enable_set, "%llu\n");

static ssize_t trace_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&trace_mutex);
	if (READ_ONCE(trace_on))
		ret = -EBUSY;
	else if (!trace_buf)
		ret = 0;
	else
		ret = simple_read_from_buffer(ubuf, count, ppos, trace_buf,
					      sizeof(struct novars_trace_header) + trace_len);
	mutex_unlock(&trace_mutex);
	return ret;
}

static const struct file_operations trace_fops = {
	.owner	= THIS_MODULE,
	.read	= trace_read,
	.llseek	= default_llseek,
};

/*
 * A store through a MAP_SYNC mapping, reported by the program that made it
 * durable (stored, flushed, fenced): `u64 pos` (device offset, as FIEMAP
 * gives it) and the bytes, in one write(2). Records the bytes as given; the
 * checker verifies that they persist in the file, it does not trust them
 * to be on the media.
 */
static ssize_t trace_user_store(struct file *file, const char __user *ubuf,
				size_t count, loff_t *ppos)
{
	__le64 pos;
	size_t len;
	u8 *buf;

	if (count <= sizeof(pos) || count - sizeof(pos) > USER_STORE_MAX)
		return -EINVAL;
	len = count - sizeof(pos);
	buf = kmalloc(count, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	if (copy_from_user(buf, ubuf, count)) {
		kfree(buf);
		return -EFAULT;
	}
	memcpy(&pos, buf, sizeof(pos));
	novars_trace_rec(NOVARS_KIND_USER_STORE, le64_to_cpu(pos), len, buf + sizeof(pos));
	kfree(buf);
	return count;
}

static const struct file_operations user_store_fops = {
	.owner	= THIS_MODULE,
	.write	= trace_user_store,
	.llseek	= noop_llseek,
};

int novars_trace_init(void)
{
	trace_dir = debugfs_create_dir("novars", NULL);
	debugfs_create_file_unsafe("enable", 0600, trace_dir, NULL, &trace_enable_fops);
	debugfs_create_file("trace", 0400, trace_dir, NULL, &trace_fops);
	debugfs_create_u32("buf_mib", 0600, trace_dir, &trace_buf_mib);
	debugfs_create_x32("faults", 0600, trace_dir, &trace_faults);
	debugfs_create_u64("poison_block", 0600, trace_dir, &trace_poison_block);
	debugfs_create_file("user_store", 0200, trace_dir, NULL, &user_store_fops);
	pr_info("novars: tracing build: /sys/kernel/debug/novars\n");
	return 0;
}

void novars_trace_exit(void)
{
	debugfs_remove_recursive(trace_dir);
	mutex_lock(&trace_mutex);
	trace_stop();
	vfree(trace_buf);
	trace_buf = NULL;
	trace_cap = 0;
	mutex_unlock(&trace_mutex);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Produces real kernel splats for the log scanner's test data
 * (xtests/testdata/*.log); never loaded by tests. See ../README.md.
 *
 *   insmod novars_splat.ko what=warn|bug|oops|kasan|lockdep
 *
 * The module refuses to stay loaded (init returns -EAGAIN) so it can be
 * loaded again with another `what`.
 */
#include <linux/bug.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>

static char *what = "warn";
module_param(what, charp, 0444);

static DEFINE_MUTEX(splat_a);
static DEFINE_MUTEX(splat_b);

static noinline void splat_lockdep(void)
{
	/* A then B, then B then A: lockdep reports a possible deadlock. */
	mutex_lock(&splat_a);
	mutex_lock(&splat_b);
	mutex_unlock(&splat_b);
	mutex_unlock(&splat_a);
	mutex_lock(&splat_b);
	mutex_lock(&splat_a);
	mutex_unlock(&splat_a);
	mutex_unlock(&splat_b);
}

static noinline void splat_kasan(void)
{
	char *p = kmalloc(32, GFP_KERNEL);
	volatile char *q = p;

	if (!p)
		return;
	kfree(p);
	pr_info("novars_splat: read after free: %d\n", q[3]);
}

static int __init splat_init(void)
{
	if (!strcmp(what, "warn"))
		WARN_ON(1);
	else if (!strcmp(what, "bug"))
		BUG();
	else if (!strcmp(what, "oops"))
		*(volatile int *)8 = 1;
	else if (!strcmp(what, "kasan"))
		splat_kasan();
	else if (!strcmp(what, "lockdep"))
		splat_lockdep();
	return -EAGAIN;
}
module_init(splat_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("novars test-data generator: provokes kernel splats");

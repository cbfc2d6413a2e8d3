/* Tests of the sim's watch_stores option (sim_stores.h, sim_lines.c):
 * stores seen a page at a time, where the kernel has what it takes. */
#include "../../src/core/memory.h"
#include "../../src/core/sim.h"
#include "check.h"
#include "faults.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024ull * 1024ull)
#define PAGE 4096ull
#define BASE 0x10000000ull

static int
open_watching(const pa_sys *sys, pa_memory **out)
{
    pa_sim_options o = {64, PA_COHERENCE_WARN, 1};
    return pa_sim_open(sys, BASE, 4 * MiB, &o, out);
}

/* A kernel before 6.7 refuses the features asked of UFFDIO_API. */
static int
old_kernel_ioctl(int fd, unsigned long request, void *arg)
{
    if (request == UFFDIO_API) {
        errno = EINVAL;
        return -1;
    }
    return pa_sys_real.ioctl(fd, request, arg);
}

/* What opening with watch_stores gives here: 0, or why not. */
static int here;

static void
test_a_kernel_without_it_is_refused_and_nothing_is_left(void)
{
    pa_sys old = pa_sys_real;
    old.ioctl = old_kernel_ioctl;
    long fds = held("userfaultfd"), maps = held("pynq_alloc-sim");
    pa_memory *none = NULL;
    /* Without userfaultfd at all (qemu-user), that is the answer. */
    CHECK_EQ(open_watching(&old, &none),
             here == -ENOSYS || here == -EPERM ? here : -EOPNOTSUPP);
    CHECK(none == NULL);
    CHECK_EQ(held("userfaultfd"), fds);
    CHECK_EQ(held("pynq_alloc-sim"), maps);
    pa_sim_options off = {64, PA_COHERENCE_OFF, 1};
    CHECK_EQ(pa_sim_open(NULL, BASE, MiB, &off, &none), -EINVAL);
    CHECK(strcmp(pa_sim_invalid_option(BASE, MiB, &off), "watch_stores")
          == 0);
}

static pa_hazard got[PA_HAZARDS_KEPT];
static size_t ngot;

static void
take(void)
{
    ngot = pa_hazards_take(got, PA_HAZARDS_KEPT, NULL);
}

/* Whether hazard i is `kind` over bytes [lo, hi) of b. */
static int
is(size_t i, int kind, const pa_block *b, uint64_t lo, uint64_t hi)
{
    return i < ngot && got[i].kind == kind
           && got[i].block == b->device_address
           && got[i].start == b->device_address + lo
           && got[i].end == b->device_address + hi;
}

static void
device_fill(pa_memory *m, const pa_block *b, uint64_t at, uint64_t n,
            uint8_t v)
{
    uint8_t *bytes = malloc(n);
    memset(bytes, v, n);
    CHECK_EQ(pa_memory_device_write(m, b->device_address + at, bytes, n), 0);
    free(bytes);
}

static pa_memory *m;

static void
test_a_store_of_the_same_bytes_is_seen(void)
{
    pa_block b;
    CHECK_EQ(pa_memory_alloc(m, 2 * PAGE, 0, 0, PA_ALLOC_CACHEABLE, &b), 0);
    take();
    memset(b.cpu, 0, PAGE);                 /* zeros over zeros */
    device_fill(m, &b, 0, 2 * PAGE, 7);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_WRITE_UNDER_DIRTY, &b, 0, PAGE));
    /* Every line of the page is the device's: its write-back undoes it. */
    CHECK_EQ(pa_memory_flush(m, &b, 0, 2 * PAGE), 0);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_WRITEBACK_CLOBBERED, &b, 0, PAGE));
    CHECK_EQ(pa_memory_invalidate(m, &b, 0, 2 * PAGE), 0);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
}

static void
test_only_what_is_sure_is_said(void)
{
    pa_block b;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, PA_ALLOC_CACHEABLE, &b), 0);
    take();
    memset(b.cpu, 0, 64);
    /* Part of the page: the store may be elsewhere in it. */
    device_fill(m, &b, 2048, 64, 7);
    take();
    CHECK_EQ(ngot, 0);
    CHECK_EQ(pa_memory_check(m, &b, PA_HAZARD_UNFLUSHED, 0), PAGE);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_UNFLUSHED, &b, 0, PAGE));
    /* A flush of part of it forgets the store: it may have been there. */
    CHECK_EQ(pa_memory_flush(m, &b, 100, 8), 0);
    device_fill(m, &b, 0, PAGE, 7);
    CHECK_EQ(pa_memory_invalidate(m, &b, 0, PAGE), 0);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
}

static void
test_faults_leave_nothing_behind(void)
{
    inject_everywhere(open_watching, &pa_sys_real, "userfaultfd");
    inject_everywhere(open_watching, &pa_sys_real, "pynq_alloc-sim");
}

int
main(void)
{
    here = open_watching(NULL, &m);
    RUN(test_a_kernel_without_it_is_refused_and_nothing_is_left);
    if (here != 0) {
        /* Linux before 6.7, or userfaultfd forbidden: said, not failed
         * (tests/test_coherence_stores.py skips likewise). */
        fprintf(stderr, "test_sim_stores: watch_stores cannot be had "
                "here (%s): its kernel tests are skipped\n",
                strerror(-here));
        return check_report("test_sim_stores");
    }
    RUN(test_a_store_of_the_same_bytes_is_seen);
    RUN(test_only_what_is_sure_is_said);
    pa_memory_close(m);
    RUN(test_faults_leave_nothing_behind);
    return check_report("test_sim_stores");
}

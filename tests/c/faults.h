/*
 * Fault injection through pa_sys: a table that passes every call on to
 * another table, except that call number `fault_at` (counting from 1, over
 * the calls that can fail) fails with `fault_errno`.  close, munmap and
 * the ioctl `fault_exempt` (a release, such as GEM_CLOSE) are passed on
 * always: a backend cannot do anything about them failing.  With
 * `fault_at` 0 nothing fails, and the counts say what calls were made.
 *
 * inject_everywhere() runs a whole use of a memory (open, allocate cached
 * and uncached, sync, release, stats, close) with each of its calls
 * failing in turn with ENOMEM, EINTR and EIO.  Whatever fails, the caller
 * gets that error (or the call is retried, or has a fallback), the figures
 * stay exact, and no mapping or file descriptor is left behind.
 */
#ifndef PA_FAULTS_H
#define PA_FAULTS_H

#include "../../src/core/memory.h"
#include "../../src/core/sys.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const pa_sys *fault_base;
static long fault_calls, fault_at;
static long fault_mmaps, fault_munmaps;    /* calls made, for tests of reuse */
static int fault_errno;
static unsigned long fault_exempt;

/* Counts a call; 1 if this one must fail (errno is then set). */
static int
fault_now(void)
{
    if (++fault_calls == fault_at) {
        errno = fault_errno;
        return 1;
    }
    return 0;
}

static int
faulty_open(const char *path, int flags)
{
    return fault_now() ? -1 : fault_base->open(path, flags);
}

static int
faulty_ioctl(int fd, unsigned long request, void *arg)
{
    return request != fault_exempt && fault_now()
           ? -1 : fault_base->ioctl(fd, request, arg);
}

static void *
faulty_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    fault_mmaps++;
    return fault_now() ? MAP_FAILED
                       : fault_base->mmap(addr, len, prot, flags, fd, off);
}

static int
counted_munmap(void *addr, size_t len)
{
    fault_munmaps++;
    return fault_base->munmap(addr, len);
}

static ssize_t
faulty_pread(int fd, void *buf, size_t n, off_t offset)
{
    return fault_now() ? -1 : fault_base->pread(fd, buf, n, offset);
}

static ssize_t
faulty_pwrite(int fd, const void *buf, size_t n, off_t offset)
{
    return fault_now() ? -1 : fault_base->pwrite(fd, buf, n, offset);
}

static int
faulty_memfd_create(const char *name, unsigned int flags)
{
    return fault_now() ? -1 : fault_base->memfd_create(name, flags);
}

static int
faulty_ftruncate(int fd, off_t length)
{
    return fault_now() ? -1 : fault_base->ftruncate(fd, length);
}

static int
faulty_flock(int fd, int operation)
{
    return fault_now() ? -1 : fault_base->flock(fd, operation);
}

static int
faulty_fallocate(int fd, int mode, off_t offset, off_t len)
{
    return fault_now() ? -1 : fault_base->fallocate(fd, mode, offset, len);
}

/* A table over base in which call `at` fails with err. */
static pa_sys
faulty_sys(const pa_sys *base, long at, int err)
{
    fault_base = base;
    fault_calls = fault_mmaps = fault_munmaps = 0;
    fault_at = at;
    fault_errno = err;
    pa_sys sys = *base;
    sys.open = faulty_open;
    sys.ioctl = faulty_ioctl;
    sys.mmap = faulty_mmap;
    sys.munmap = counted_munmap;
    sys.pread = faulty_pread;
    sys.pwrite = faulty_pwrite;
    sys.memfd_create = faulty_memfd_create;
    sys.ftruncate = faulty_ftruncate;
    sys.flock = faulty_flock;
    sys.fallocate = faulty_fallocate;
    return sys;
}

/* Mappings and file descriptors of this process that name `what` (a
 * memfd's name, a device's path): what a failed call must not leak. */
static inline long
held(const char *what)
{
    char line[4096], link[300], target[4096];
    long n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        n += strstr(line, what) != NULL;
    }
    if (f != NULL) {
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strstr(target, what) != NULL;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

#define FAULT_PAGE 4096ull

typedef int (*opener)(const pa_sys *sys, pa_memory **out);

/* 0 or the first error; cleans up after itself whatever fails. */
static inline int
use(opener open_it, const pa_sys *sys)
{
    pa_memory *m = NULL;
    pa_block a, b;
    pa_stats s;
    int rc = open_it(sys, &m);
    if (rc != 0) {
        CHECK(m == NULL);
        return rc;
    }
    rc = pa_memory_alloc(m, 3 * FAULT_PAGE, 0, 0, PA_ALLOC_CACHEABLE, &a);
    if (rc == 0) {
        rc = pa_memory_alloc(m, 70000, 0, 0, 0, &b);
        if (rc == 0) {
            rc = pa_memory_flush(m, &a, 0, FAULT_PAGE);
            int rc2 = pa_memory_invalidate(m, &a, 100, 200);
            rc = rc != 0 ? rc : rc2;
            if (!pa_memory_try_keep(m, &b)) {
                pa_memory_release(m, &b);
            }
        }
        pa_memory_release(m, &a);
    }
    pa_memory_stats(m, &s);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.buffers, 0);
    pa_memory_close(m);
    return rc;
}

/* Fails each call of use() in turn, with each error. */
static inline void
inject_everywhere(opener open_it, const pa_sys *base, const char *resource)
{
    static const int errs[] = {ENOMEM, EINTR, EIO};
    pa_sys warm = *base;
    CHECK_EQ(use(open_it, &warm), 0);
    for (int e = 0; e < 3; e++) {
        for (long at = 1; at < 1000; at++) {
            long before = held(resource);
            pa_sys sys = faulty_sys(base, at, errs[e]);
            int rc = use(open_it, &sys);
            CHECK_EQ(held(resource), before);
            if (fault_calls < at) {             /* every call was made */
                CHECK_EQ(rc, 0);
                break;
            }
            if (rc != 0 && rc != -errs[e]
                    && !(errs[e] == ENOMEM && rc == -PA_ENOMAP)) {
                fprintf(stderr, "call %ld failing with errno %d gave %d\n",
                        at, errs[e], rc);
                CHECK(0);
            }
        }
    }
}

#endif

/* Tests of the zocl backend against a stand-in driver behind pa_sys: it
 * keeps each BO in a memfd, checks every request number and field, and
 * counts what is left open.  Its memory banks behave as zocl's do (see
 * create_bo). */
#include "../../src/core/zocl.h"
#include "check.h"
#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* DRM_IOCTL_VERSION's argument, as the kernel defines it. */
struct drm_version {
    int version_major, version_minor, version_patchlevel;
    size_t name_len;
    char *name;
    size_t date_len;
    char *date;
    size_t desc_len;
    char *desc;
};

#define MiB (1024ull * 1024ull)
#define PAGE 4096ull
#define DEVICE "/dev/dri/renderD128"
#define FAKE_FD 777
#define NOT_DRM "/dev/not-drm"      /* a device that is no DRM node */
#define NOT_DRM_FD 778
#define CACHEABLE (1u << 24)
/* The driver's own flags, which it writes back (zocl_bo.h). */
#define DRV_COHERENT (1u << 26)
#define DRV_CMA (1u << 29)

typedef struct fake_bo {
    int memfd;
    int open;
    int in_plddr;
    int in_buddy;           /* CMA was full: from the page allocator */
    uint64_t size;
    uint64_t paddr;
    uint32_t flags;         /* as requested: INFO_BO gives these back */
} fake_bo;

/*
 * A loaded xclbin's memory topology as zocl_init_mem sets it up: bank 0
 * is CMA (not reserved in the device tree), bank 1 PL-DDR (reserved, so
 * range-allocated), bank 2 is listed but unused.  Without an xclbin there
 * are no banks at all.
 */
typedef struct fake_bank {
    int used;
    int cma;
} fake_bank;

static const fake_bank topology[] = {{1, 1}, {1, 0}, {0, 1}};
static int xclbin_loaded;

static fake_bo bos[256];
static uint32_t next_handle = 1;
static uint64_t next_paddr = 0x60000000;
static uint64_t next_plddr = 0x400000000;
static uint64_t next_buddy = 0x20000000;
static uint64_t pool_left = 64 * MiB;
static int open_bos, bad_requests, syncs, cma_fallbacks, device_opens;
static int device_closes, last_open_flags;
/* CREATE_BOs that CMA could not satisfy: where zocl corrupts kernel
 * memory (zocl_create_cma_mem's failure path). */
static int cma_failures;
static uint32_t last_request_flags;
static const char *driver_name = "zocl";
static struct { uint32_t handle, dir; uint64_t offset, size; } last_sync;
static char meminfo[64];

static int
fake_open(const char *path, int flags)
{
    if (strcmp(path, DEVICE) == 0 || strcmp(path, NOT_DRM) == 0) {
        device_opens++;
        last_open_flags = flags;
        return strcmp(path, DEVICE) == 0 ? FAKE_FD : NOT_DRM_FD;
    }
    return pa_sys_real.open(path, flags);
}

static int
fake_close(int fd)
{
    if (fd == FAKE_FD || fd == NOT_DRM_FD) {
        device_closes++;
        return 0;
    }
    return close(fd);
}

static fake_bo *
live_bo(uint32_t handle)
{
    return handle < 256 && bos[handle].open ? &bos[handle] : NULL;
}

static int
fail(int err)
{
    errno = err;
    return -1;
}

/* CMA aligns a block of n pages to the power of two at or above n, up to
 * 256 pages (Debian's CONFIG_CMA_ALIGNMENT=8: 1 MiB). */
static uint64_t
cma_alignment(uint64_t size)
{
    uint64_t pages = 1;
    while (pages < size / PAGE && pages < 256) {
        pages *= 2;
    }
    return pages * PAGE;
}

/*
 * CREATE_BO as zocl_create_bo_ioctl does it (zocl_bo.c): the bank is bits
 * 0-15 of the flags.  A bank the loaded xclbin does not list, or lists as
 * unused, is no error: the driver logs "Allocating BO from CMA for invalid
 * or unused memory index" and allocates from CMA.  A PL-DDR bank cannot be
 * cached, so the driver clears the cacheable bit.  The flags it used are
 * written back.  A CMA BO of a page or less is two pages
 * (zocl_create_cma_mem), aligned as CMA aligns it.
 */
static int
create_bo(void *arg)
{
    struct { uint64_t size; uint32_t handle, flags; } *a = arg;
    uint32_t requested = a->flags, bank = requested & 0xFFFFu;
    last_request_flags = requested;
    if ((requested & ~(CACHEABLE | 0xFFFFu)) != 0) {
        bad_requests++;
    }
    const fake_bank *b = xclbin_loaded
        && bank < sizeof(topology) / sizeof(topology[0])
        ? &topology[bank] : NULL;
    int from_cma = b == NULL || !b->used || b->cma;
    if (b == NULL || !b->used) {
        cma_fallbacks++;
    }
    uint32_t flags = requested & (CACHEABLE | 0xFFFFu);
    flags |= from_cma ? DRV_CMA : 0;
    if ((flags & CACHEABLE) == 0) {
        flags |= DRV_COHERENT;
    }
    else if (!from_cma) {
        flags &= ~CACHEABLE;
    }
    a->flags = flags;
    if (a->size == 0) {
        return fail(EINVAL);
    }
    uint64_t size = (a->size + PAGE - 1) & ~(PAGE - 1);
    if (from_cma && size == PAGE) {
        size = 2 * PAGE;
    }
    /* What CMA cannot hold comes from the page allocator, up to its
     * largest block (4 MiB); anything larger fails. */
    int from_buddy = from_cma && size > pool_left && size <= 4 * MiB;
    if (from_cma && size > pool_left && !from_buddy) {
        cma_failures++;
        return fail(ENOMEM);
    }
    uint64_t *next = from_buddy ? &next_buddy
                     : from_cma ? &next_paddr : &next_plddr;
    if (from_cma) {
        uint64_t align = cma_alignment(size);
        next_paddr = (next_paddr + align - 1) & ~(align - 1);
    }
    uint32_t h = next_handle++;
    bos[h] = (fake_bo){memfd_create("bo", MFD_CLOEXEC), 1, !from_cma,
                       from_buddy, size, *next, requested};
    CHECK(ftruncate(bos[h].memfd, (off_t)size) == 0);
    if (!from_cma) {
        /* CMA BOs come zeroed; PL-DDR holds what was there before. */
        char stale[PAGE];
        memset(stale, 0xA5, sizeof(stale));
        for (uint64_t at = 0; at < size; at += PAGE) {
            CHECK(pwrite(bos[h].memfd, stale, PAGE, (off_t)at) == PAGE);
        }
    }
    *next += size;
    pool_left -= from_cma && !from_buddy ? size : 0;
    open_bos++;
    a->handle = h;
    return 0;
}

static int
fake_ioctl(int fd, unsigned long request, void *arg)
{
    if (fd == NOT_DRM_FD) {
        return fail(ENOTTY);
    }
    if (fd != FAKE_FD) {
        return fail(EBADF);
    }
    /* As the kernel's drm_copy_field: as much of the name as fits, no
     * NUL, and the whole name's length. */
    if (request == (unsigned long)_IOWR('d', 0x00, struct drm_version)) {
        struct drm_version *v = arg;
        size_t n = strlen(driver_name);
        if (v->name != NULL) {
            memcpy(v->name, driver_name, n < v->name_len ? n : v->name_len);
        }
        v->name_len = n;
        return 0;
    }
    switch (request) {
    case 0xC0106440u:                           /* CREATE_BO */
        return create_bo(arg);
    case 0xC0186445u: {                         /* INFO_BO */
        struct { uint32_t handle, flags; uint64_t size, paddr; } *a = arg;
        fake_bo *bo = live_bo(a->handle);
        if (bo == NULL) {
            return fail(ENOENT);
        }
        a->flags = bo->flags;
        a->size = bo->size;
        a->paddr = bo->paddr;
        return 0;
    }
    case 0xC0106443u: {                         /* MAP_BO */
        struct { uint32_t handle, pad; uint64_t offset; } *a = arg;
        if (a->pad != 0 || live_bo(a->handle) == NULL) {
            bad_requests++;
            return fail(EINVAL);
        }
        a->offset = (uint64_t)a->handle << 32;
        return 0;
    }
    case 0xC0186444u: {                         /* SYNC_BO */
        struct { uint32_t handle, dir; uint64_t offset, size; } *a = arg;
        fake_bo *bo = live_bo(a->handle);
        if (bo == NULL || a->dir > 1 || a->offset + a->size > bo->size) {
            bad_requests++;
            return fail(EINVAL);
        }
        last_sync.handle = a->handle;
        last_sync.dir = a->dir;
        last_sync.offset = a->offset;
        last_sync.size = a->size;
        syncs++;
        return 0;
    }
    case 0x40086409u: {                         /* GEM_CLOSE */
        struct { uint32_t handle, pad; } *a = arg;
        fake_bo *bo = live_bo(a->handle);
        if (bo == NULL || a->pad != 0) {
            bad_requests++;
            return fail(EINVAL);
        }
        close(bo->memfd);
        bo->open = 0;
        if (!bo->in_plddr && !bo->in_buddy) {
            pool_left += bo->size;
        }
        open_bos--;
        return 0;
    }
    default:
        bad_requests++;
        return fail(ENOTTY);
    }
}

static void *
fake_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    if (fd != FAKE_FD) {
        return mmap(addr, len, prot, flags, fd, offset);
    }
    fake_bo *bo = live_bo((uint32_t)((uint64_t)offset >> 32));
    if (bo == NULL || len != bo->size || (flags & MAP_SHARED) == 0) {
        bad_requests++;
        errno = EINVAL;
        return MAP_FAILED;
    }
    return mmap(addr, len, prot, flags, bo->memfd, 0);
}

static pa_sys stand_in;

static pa_memory *
open_bank_as(int64_t bank, int cma)
{
    pa_memory *m = NULL;
    char err[256];
    CHECK_EQ(pa_zocl_open(&stand_in, DEVICE, bank, cma, meminfo, &m, err,
                          sizeof(err)), 0);
    return m;
}

static pa_memory *
open_bank(int64_t bank)
{
    return open_bank_as(bank, 1);
}

static pa_memory *
open_zocl(void)
{
    return open_bank(0);
}

static void
test_allocate_sync_release(void)
{
    pa_memory *m = open_zocl();
    pa_block b, u;
    CHECK_EQ(pa_memory_alloc(m, 100, 0, 0, 1, &b), 0);
    fake_bo *bo = &bos[(uint32_t)b.handle];
    CHECK_EQ(bo->flags, 1u << 24);              /* bank 0, cacheable */
    CHECK_EQ(bo->size, 2 * PAGE);               /* zocl's least */
    CHECK_EQ(b.device_address, bo->paddr);
    CHECK(b.cacheable && !b.coherent);
    memcpy(b.cpu, "bo data", 7);
    char seen[8] = "";
    CHECK_EQ(pread(bo->memfd, seen, 7, 0), 7);
    CHECK(memcmp(seen, "bo data", 7) == 0);

    CHECK_EQ(pa_memory_flush(m, &b, 8, 16), 0);
    CHECK_EQ(last_sync.handle, (uint32_t)b.handle);
    CHECK_EQ(last_sync.dir, 0);
    CHECK_EQ(last_sync.offset, 8);
    CHECK_EQ(last_sync.size, 16);
    CHECK_EQ(pa_memory_invalidate(m, &b, 0, PAGE), 0);
    CHECK_EQ(last_sync.dir, 1);
    CHECK_EQ(last_sync.size, PAGE);

    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &u), 0);
    CHECK_EQ(bos[(uint32_t)u.handle].flags, 0);
    CHECK(u.coherent);
    int before = syncs;
    CHECK_EQ(pa_memory_flush(m, &u, 0, PAGE), 0);
    CHECK_EQ(syncs, before);

    /* Release gives the BO back at once: nothing is kept for reuse. */
    CHECK_EQ(open_bos, 2);
    pa_memory_release(m, &b);
    pa_memory_release(m, &u);
    CHECK_EQ(open_bos, 0);
    pa_memory_close(m);
}

static void
test_alignment_beyond_a_page(void)
{
    pa_memory *m = open_zocl();
    pa_block pad, b, c;
    CHECK_EQ(pa_memory_alloc(m, 3 * PAGE, 0, 0, 1, &pad), 0);   /* misalign */
    /* CMA aligns a 16-page BO to 64 KiB itself: nothing extra asked. */
    int opened = next_handle;
    CHECK_EQ(pa_memory_alloc(m, 16 * PAGE, 64 * 1024, 0, 1, &b), 0);
    CHECK_EQ(b.device_address % (64 * 1024), 0);
    CHECK_EQ(bos[(uint32_t)b.handle].size, 16 * PAGE);
    CHECK_EQ((int)next_handle - opened, 1);
    /* More than CMA aligns by itself (it stops at 1 MiB): the first BO
     * lies misaligned and is given back for one with room to slide. */
    opened = next_handle;
    CHECK_EQ(pa_memory_alloc(m, 2 * PAGE, 4 * MiB, 0, 1, &c), 0);
    CHECK_EQ(c.device_address % (4 * MiB), 0);
    CHECK_EQ((int)next_handle - opened, 2);
    fake_bo *bo = &bos[(uint32_t)c.handle];
    CHECK_EQ(bo->size, 2 * PAGE + 4 * MiB - PAGE);
    uint64_t lead = c.device_address - bo->paddr;
    CHECK(lead > 0);
    CHECK_EQ(pa_memory_flush(m, &c, 0, 2 * PAGE), 0);
    CHECK_EQ(last_sync.offset, lead);           /* the block's own span */
    /* Retire: the whole BO mapping turns anonymous, so the block's range
     * stays usable, and the BO goes back to the kernel at once. */
    CHECK(c.map_base < c.cpu && c.map_length == bo->size);
    ((char *)c.cpu)[0] = 1;
    CHECK_EQ(pa_memory_retire(m, &c), 0);
    CHECK_EQ(open_bos, 2);
    CHECK_EQ(((char *)c.cpu)[0], 0);
    ((char *)c.cpu)[5] = 7;
    pa_memory_unmap_retired(m, &c);
    pa_memory_release(m, &b);
    pa_memory_release(m, &pad);
    CHECK_EQ(open_bos, 0);
    pa_memory_close(m);
}

/* zocl corrupts kernel memory when CMA cannot satisfy a CREATE_BO, so a
 * request that cannot fit in all of CMA less this memory's own CMA BOs
 * never reaches it. */
static void
test_what_cma_cannot_hold_is_not_asked_for(void)
{
    pa_memory *m = open_zocl();
    pa_block held, b;
    int failures = cma_failures, created = next_handle;
    /* meminfo says CmaTotal is 256 MiB. */
    CHECK_EQ(pa_memory_alloc(m, 256 * MiB + 1, 0, 0, 1, &b), -ENOMEM);
    CHECK_EQ(pa_memory_alloc(m, 48 * MiB, 0, 0, 1, &held), 0);
    CHECK_EQ(pa_memory_alloc(m, 208 * MiB + PAGE, 0, 0, 1, &b), -ENOMEM);
    CHECK_EQ((int)next_handle - created, 1);
    CHECK_EQ(cma_failures, failures);
    /* What might fit is the driver's to refuse: the stand-in's CMA is
     * 64 MiB, the kernel's other users hold the rest. */
    CHECK_EQ(pa_memory_alloc(m, 17 * MiB, 0, 0, 1, &b), -ENOMEM);
    CHECK_EQ(cma_failures, failures + 1);
    /* Up to the page allocator's largest block (4 MiB), a BO comes from
     * there when CMA is full: never refused here, however many. */
    pa_block small[70];
    for (int i = 0; i < 70; i++) {
        CHECK_EQ(pa_memory_alloc(m, 4 * MiB, 0, 0, 1, &small[i]), 0);
    }
    CHECK_EQ(cma_failures, failures + 1);
    for (int i = 0; i < 70; i++) {
        pa_memory_release(m, &small[i]);
    }
    pa_memory_release(m, &held);
    /* A bank not known to be in CMA (an xclbin that uses it) goes to the
     * driver whatever the size, until the driver says where it is. */
    xclbin_loaded = 1;
    pa_memory *plddr = open_bank_as(1, 0);
    CHECK_EQ(pa_memory_alloc(plddr, 300 * MiB, 0, 0, 0, &b), 0);
    CHECK(b.device_address >= 0x400000000);
    pa_memory_release(plddr, &b);
    pa_memory_close(plddr);
    pa_memory *unknown = open_bank_as(0, 0);
    failures = cma_failures;
    CHECK_EQ(pa_memory_alloc(unknown, 300 * MiB, 0, 0, 0, &b), -ENOMEM);
    CHECK_EQ(cma_failures, failures + 1);
    CHECK_EQ(pa_memory_alloc(unknown, PAGE, 0, 0, 0, &held), 0);
    CHECK_EQ(pa_memory_alloc(unknown, 300 * MiB, 0, 0, 0, &b), -ENOMEM);
    CHECK_EQ(cma_failures, failures + 1);       /* now known to be CMA */
    pa_memory_release(unknown, &held);
    pa_memory_close(unknown);
    xclbin_loaded = 0;
    pa_memory_close(m);
}

static void
test_errors(void)
{
    pa_memory *m = open_zocl(), *none = NULL;
    pa_block b;
    char err[256] = "";
    CHECK_EQ(pa_memory_alloc(m, 65 * MiB, 0, 0, 1, &b), -ENOMEM);
    /* The kernel puts the BO above the limit: refused and closed. */
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0x1000, 1, &b), -ENOMEM);
    CHECK_EQ(open_bos, 0);
    CHECK_EQ(pa_memory_device_read(m, 0x60000000, err, 1), -ENOTSUP);
    CHECK_EQ(pa_zocl_open(&stand_in, "/dev/dri/renderD999", 0, 1, meminfo,
                          &none, err, sizeof(err)), -ENOENT);
    CHECK(strcmp(err, "/dev/dri/renderD999") == 0 && none == NULL);
    /* Another driver's render node gets none of zocl's ioctls. */
    driver_name = "lima";
    CHECK_EQ(pa_zocl_open(&stand_in, DEVICE, 0, 1, meminfo, &none, err,
                          sizeof(err)), -ENODEV);
    driver_name = "zoclx";
    CHECK_EQ(pa_zocl_open(&stand_in, DEVICE, 0, 1, meminfo, &none, err,
                          sizeof(err)), -ENODEV);
    driver_name = "zocl";
    CHECK(none == NULL && strcmp(err, DEVICE) == 0);
    pa_memory_close(m);
}

/* Each request carries its bank in bits 0-15 and the cacheable bit, and
 * lands where the driver puts that bank. */
static void
test_banks(void)
{
    static const struct {
        int64_t bank;
        int cacheable;
        int in_plddr;       /* else CMA */
        int fallback;       /* an index the xclbin does not use */
        int cached;         /* what the block reports */
    } cases[] = {
        {0, 1, 0, 0, 1}, {0, 0, 0, 0, 0},
        {1, 1, 1, 0, 0},    /* PL-DDR: the driver turns caching off */
        {1, 0, 1, 0, 0},
        {2, 1, 0, 1, 1},    /* listed but unused */
        {9, 0, 0, 1, 0},    /* not listed */
        {PA_BANK_COUNT - 1, 1, 0, 1, 1},
    };
    xclbin_loaded = 1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pa_memory *m = open_bank(cases[i].bank);
        pa_block b;
        int fallbacks = cma_fallbacks;
        CHECK_EQ(pa_memory_alloc(m, 2 * PAGE, 0, 0, cases[i].cacheable, &b),
                 0);
        uint32_t expected = (uint32_t)cases[i].bank
                            | (cases[i].cacheable ? CACHEABLE : 0);
        CHECK_EQ(last_request_flags, expected);
        CHECK_EQ(bos[(uint32_t)b.handle].flags, expected);
        CHECK_EQ(bos[(uint32_t)b.handle].in_plddr, cases[i].in_plddr);
        CHECK_EQ(b.device_address >= 0x400000000, cases[i].in_plddr);
        CHECK_EQ(cma_fallbacks - fallbacks, cases[i].fallback);
        CHECK_EQ(b.cacheable, cases[i].cached);
        CHECK_EQ(b.coherent, !cases[i].cached);
        /* New memory reads as zeros, the whole BO included. */
        const char *bytes = b.map_base;
        uint64_t nonzero = 0;
        for (uint64_t at = 0; at < b.map_length; at++) {
            nonzero += bytes[at] != 0;
        }
        CHECK_EQ(nonzero, 0);
        int before = syncs;
        CHECK_EQ(pa_memory_flush(m, &b, 0, PAGE), 0);
        CHECK_EQ(syncs - before, cases[i].cached);
        char text[32];
        pa_memory_describe(m, text, sizeof(text));
        char expected_text[32];
        snprintf(expected_text, sizeof(expected_text), "bank=%lld",
                 (long long)cases[i].bank);
        CHECK(strcmp(text, expected_text) == 0);
        pa_memory_release(m, &b);
        pa_memory_close(m);
    }
    /* With no xclbin loaded every bank, 0 included, gets CMA memory. */
    xclbin_loaded = 0;
    pa_memory *m = open_bank(1);
    pa_block b;
    int fallbacks = cma_fallbacks;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 1, &b), 0);
    CHECK(!bos[(uint32_t)b.handle].in_plddr && b.cacheable);
    CHECK_EQ(cma_fallbacks - fallbacks, 1);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_a_bank_outside_16_bits_is_refused_unopened(void)
{
    static const int64_t bad[] = {-1, PA_BANK_COUNT, 1ll << 32, INT64_MIN};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pa_memory *none = NULL;
        char err[256] = "";
        int opens = device_opens;
        CHECK_EQ(pa_zocl_open(&stand_in, DEVICE, bad[i], 1, meminfo, &none, err,
                              sizeof(err)), -EINVAL);
        CHECK(none == NULL && device_opens == opens);
    }
}

static void
test_stats_come_from_meminfo(void)
{
    pa_memory *m = open_zocl();
    pa_block b;
    pa_stats s;
    CHECK_EQ(pa_memory_size(m), 256 * MiB);
    CHECK_EQ(pa_memory_alloc(m, 3 * PAGE, 0, 0, 1, &b), 0);
    pa_memory_stats(m, &s);
    CHECK_EQ(s.total, 256 * MiB);
    CHECK_EQ(s.free, 200 * MiB);
    CHECK_EQ(s.used, 3 * PAGE);
    CHECK_EQ(s.buffers, 1);
    pa_memory_release(m, &b);
    pa_memory_stats(m, &s);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.buffers, 0);
    pa_memory_close(m);
}

static int interruptions;      /* the next ioctls fail with EINTR */

static int
interrupting_ioctl(int fd, unsigned long request, void *arg)
{
    if (interruptions > 0) {
        interruptions--;
        return fail(EINTR);
    }
    return fake_ioctl(fd, request, arg);
}

/* A signal during an ioctl must not fail a sync, nor leak a BO by
 * skipping its GEM_CLOSE: each call is retried, as libdrm does. */
static void
test_interrupted_ioctls_are_retried(void)
{
    pa_memory *m = open_zocl();
    pa_block b;
    stand_in.ioctl = interrupting_ioctl;
    interruptions = 3;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, PA_ALLOC_CACHEABLE, &b), 0);
    CHECK_EQ(interruptions, 0);
    interruptions = 2;
    CHECK_EQ(pa_memory_flush(m, &b, 0, PAGE), 0);
    CHECK_EQ(last_sync.handle, (uint32_t)b.handle);
    int before = open_bos;
    interruptions = 2;
    pa_memory_release(m, &b);
    CHECK_EQ(open_bos, before - 1);
    stand_in.ioctl = fake_ioctl;
    pa_memory_close(m);
}

static int
open_zocl_through(const pa_sys *sys, pa_memory **out)
{
    char err[256];
    return pa_zocl_open(sys, DEVICE, 0, 1, meminfo, out, err, sizeof(err));
}

static void
test_faults_leak_no_bo(void)
{
    fault_exempt = 0x40086409u;                 /* GEM_CLOSE */
    inject_everywhere(open_zocl_through, &stand_in, "memfd:bo");
    CHECK_EQ(open_bos, 0);
}

/* The driver's name of any DRM node, for the Python probe. */
static void
test_drm_driver_name(void)
{
    char name[16] = "junk";
    int opens = device_opens, closes = device_closes;
    CHECK_EQ(pa_drm_driver_name(&stand_in, DEVICE, name, sizeof(name)), 0);
    CHECK(strcmp(name, "zocl") == 0);
    CHECK_EQ(last_open_flags, O_RDWR | O_CLOEXEC);
    driver_name = "lima";
    CHECK_EQ(pa_drm_driver_name(&stand_in, DEVICE, name, sizeof(name)), 0);
    CHECK(strcmp(name, "lima") == 0);
    /* Truncated to cap - 1 bytes, and terminated. */
    driver_name = "a-rather-long-driver";
    CHECK_EQ(pa_drm_driver_name(&stand_in, DEVICE, name, 8), 0);
    CHECK(strcmp(name, "a-rathe") == 0);
    CHECK_EQ(pa_drm_driver_name(&stand_in, DEVICE, name, 1), 0);
    CHECK_EQ(name[0], '\0');
    driver_name = "zocl";
    CHECK_EQ(device_opens - opens, 4);
    CHECK_EQ(device_closes - closes, 4);
    /* Not a DRM node: the ioctl's error; no node: the open's. */
    strcpy(name, "junk");
    CHECK_EQ(pa_drm_driver_name(&stand_in, NOT_DRM, name, sizeof(name)),
             -ENOTTY);
    CHECK_EQ(name[0], '\0');
    CHECK_EQ(device_closes - closes, 5);
    CHECK_EQ(pa_drm_driver_name(&stand_in, "/dev/dri/renderD999", name,
                                sizeof(name)), -ENOENT);
    CHECK_EQ(pa_drm_driver_name(&stand_in, DEVICE, name, 0), -ERANGE);
    /* An open or an ioctl that fails gives its error; nothing stays open. */
    pa_sys sys = faulty_sys(&stand_in, 1, EACCES);
    CHECK_EQ(pa_drm_driver_name(&sys, DEVICE, name, sizeof(name)), -EACCES);
    sys = faulty_sys(&stand_in, 2, EIO);
    CHECK_EQ(pa_drm_driver_name(&sys, DEVICE, name, sizeof(name)), -EIO);
    CHECK_EQ(device_opens - device_closes, opens - closes);
    /* zocl_open asks the same way: only zocl's node is opened. */
    pa_memory *none = NULL;
    char err[256];
    CHECK_EQ(pa_zocl_open(&stand_in, NOT_DRM, 0, 1, meminfo, &none, err,
                          sizeof(err)), -ENODEV);
    CHECK(none == NULL);
}

/* A BO lives as long as the open file it was created through, and a
 * forked child shares its parent's: so the child's first allocation opens
 * the device anew, its BOs are made through that file, which closes with
 * the memory (or with the child, however it ends), and the parent opens
 * nothing. */
static void
test_a_forked_child_allocates_through_a_file_of_its_own(void)
{
    pa_memory *m = open_bank(0);
    pa_block mine;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, PA_ALLOC_CACHEABLE, &mine), 0);
    int opens = device_opens;
    pid_t pid = fork();
    if (pid == 0) {
        pa_block a, b;
        int ok = pa_memory_alloc(m, PAGE, 0, 0, 0, &a) == 0
                 && device_opens == opens + 1
                 && pa_memory_alloc(m, 3 * PAGE, 0, 0, 0, &b) == 0
                 && device_opens == opens + 1
                 && pa_memory_flush(m, &mine, 0, 64) == 0;
        pa_memory_release(m, &a);
        pa_memory_release(m, &b);
        int closes = device_closes;
        pa_memory_close(m);
        _exit(ok && device_closes == closes + 2 && bad_requests == 0 ? 0 : 1);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(device_opens, opens);
    pa_memory_release(m, &mine);
    int closes = device_closes;
    pa_memory_close(m);
    CHECK_EQ(device_closes, closes + 1);
}

static void
test_every_request_was_well_formed_and_nothing_leaked(void)
{
    CHECK_EQ(bad_requests, 0);
    CHECK_EQ(open_bos, 0);
}

int
main(void)
{
    stand_in = pa_sys_real;
    stand_in.open = fake_open;
    stand_in.close = fake_close;
    stand_in.ioctl = fake_ioctl;
    stand_in.mmap = fake_mmap;
    snprintf(meminfo, sizeof(meminfo), "/tmp/pa-meminfo-XXXXXX");
    int fd = mkstemp(meminfo);
    const char *text = "MemTotal:  2000000 kB\nCmaTotal:  262144 kB\n"
                       "CmaFree:   204800 kB\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    RUN(test_allocate_sync_release);
    RUN(test_alignment_beyond_a_page);
    RUN(test_what_cma_cannot_hold_is_not_asked_for);
    RUN(test_errors);
    RUN(test_banks);
    RUN(test_a_bank_outside_16_bits_is_refused_unopened);
    RUN(test_stats_come_from_meminfo);
    RUN(test_interrupted_ioctls_are_retried);
    RUN(test_faults_leak_no_bo);
    RUN(test_drm_driver_name);
    RUN(test_a_forked_child_allocates_through_a_file_of_its_own);
    RUN(test_every_request_was_well_formed_and_nothing_leaked);
    unlink(meminfo);
    return check_report("test_zocl");
}

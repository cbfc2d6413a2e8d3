/* The zocl backend (see zocl.h). */
#include "zocl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

/* The driver's ioctl arguments: the same layout on arm, arm64 and x86-64. */
struct zocl_create_bo {
    uint64_t size;
    uint32_t handle;        /* out */
    uint32_t flags;         /* bits 0-15 bank; ZOCL_CACHEABLE */
};

struct zocl_map_bo {
    uint32_t handle;
    uint32_t pad;
    uint64_t offset;        /* out: for mmap */
};

struct zocl_sync_bo {
    uint32_t handle;
    uint32_t dir;           /* ZOCL_TO_DEVICE or ZOCL_FROM_DEVICE */
    uint64_t offset;
    uint64_t size;
};

struct zocl_info_bo {
    uint32_t handle;
    uint32_t flags;         /* out */
    uint64_t size;          /* out: page-rounded */
    uint64_t paddr;         /* out: the device address */
};

struct drm_gem_close {
    uint32_t handle;
    uint32_t pad;
};

/* DRM_IOCTL_VERSION's argument: native layout, as the kernel's own. */
struct drm_version {
    int version_major;
    int version_minor;
    int version_patchlevel;
    size_t name_len;
    char *name;
    size_t date_len;
    char *date;
    size_t desc_len;
    char *desc;
};

#define ZOCL_CREATE_BO 0xC0106440u
#define ZOCL_MAP_BO 0xC0106443u
#define ZOCL_SYNC_BO 0xC0186444u
#define ZOCL_INFO_BO 0xC0186445u
#define DRM_GEM_CLOSE 0x40086409u
#define ZOCL_BANK_MASK 0xFFFFu
#define ZOCL_CACHEABLE (1u << 24)
#define ZOCL_FROM_CMA (1u << 29)    /* written back: ZOCL_BO_FLAGS_CMA */
#define ZOCL_TO_DEVICE 0u
#define ZOCL_FROM_DEVICE 1u

_Static_assert(_IOWR('d', 0x40, struct zocl_create_bo) == ZOCL_CREATE_BO,
               "CREATE_BO");
_Static_assert(_IOWR('d', 0x43, struct zocl_map_bo) == ZOCL_MAP_BO, "MAP_BO");
_Static_assert(_IOWR('d', 0x44, struct zocl_sync_bo) == ZOCL_SYNC_BO,
               "SYNC_BO");
_Static_assert(_IOWR('d', 0x45, struct zocl_info_bo) == ZOCL_INFO_BO,
               "INFO_BO");
_Static_assert(_IOW('d', 0x09, struct drm_gem_close) == DRM_GEM_CLOSE,
               "GEM_CLOSE");
#define DRM_VERSION _IOWR('d', 0x00, struct drm_version)

typedef struct zocl_state {
    const pa_sys *sys;
    int fd;
    char meminfo[PATH_MAX];
    uint32_t bank;          /* CREATE_BO's flags, bits 0-15 */
    uint64_t used;          /* bytes of live BOs */
} zocl_state;

static zocl_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

static void
gem_close(zocl_state *s, uint32_t handle)
{
    struct drm_gem_close close_arg = {handle, 0};
    pa_sys_ioctl(s->sys, s->fd, DRM_GEM_CLOSE, &close_arg);
}

static int
zocl_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
           int cacheable, pa_block *blk)
{
    zocl_state *s = state_of(m);
    uint64_t page = pa_page_size();
    /* CMA aligns to pages; more alignment needs room to slide. */
    uint64_t extra = align > page ? align - page : 0;
    if (size > UINT64_MAX - extra) {
        return -ENOMEM;
    }
    struct zocl_create_bo create = {size + extra, 0,
                                    s->bank | (cacheable ? ZOCL_CACHEABLE
                                                         : 0)};
    if (pa_sys_ioctl(s->sys, s->fd, ZOCL_CREATE_BO, &create) != 0) {
        return -errno;
    }
    /* The driver writes back the flags it used.  It turns caching off in a
     * PL-DDR bank and maps that BO write-combined (zocl_bo.c,
     * zocl_create_bo_ioctl; zocl_drv.c, zocl_gem_mmap). */
    if ((create.flags & ZOCL_CACHEABLE) == 0) {
        cacheable = 0;
    }
    int rc;
    struct zocl_info_bo info = {create.handle, 0, 0, 0};
    struct zocl_map_bo map = {create.handle, 0, 0};
    if (pa_sys_ioctl(s->sys, s->fd, ZOCL_INFO_BO, &info) != 0
            || pa_sys_ioctl(s->sys, s->fd, ZOCL_MAP_BO, &map) != 0) {
        rc = -errno;
        goto fail;
    }
    uint64_t start = (info.paddr + align - 1) & ~(align - 1);
    uint64_t lead = start - info.paddr;
    if (info.size < lead + size || start + size > limit) {
        /* The kernel chooses where a BO lies; it lay out of bounds. */
        rc = -ENOMEM;
        goto fail;
    }
    char *base = s->sys->mmap(NULL, info.size, PROT_READ | PROT_WRITE,
                              MAP_SHARED, s->fd, (off_t)map.offset);
    if (base == MAP_FAILED) {
        rc = pa_mmap_error(errno);
        goto fail;
    }
    if ((create.flags & ZOCL_FROM_CMA) == 0) {
        /* Only CMA BOs come zeroed; a bank's range allocator hands memory
         * out as it is (zocl_create_range_mem).  It is mapped
         * write-combined, where memset is safe. */
        memset(base, 0, info.size);
    }
    s->used += info.size;
    blk->device_address = start;
    blk->cpu = base + lead;
    blk->size = size;
    blk->map_base = base;
    blk->map_length = info.size;
    blk->handle = create.handle;
    blk->cacheable = (uint8_t)cacheable;
    blk->coherent = (uint8_t)!cacheable;    /* mapped write-combined */
    return 0;
fail:
    gem_close(s, create.handle);
    return rc;
}

static void
zocl_free(pa_memory *m, pa_block *blk, int keep_va)
{
    zocl_state *s = state_of(m);
    if (!keep_va) {
        s->sys->munmap(blk->map_base, blk->map_length);
    }
    s->used -= blk->map_length;
    gem_close(s, (uint32_t)blk->handle);
}

static int
zocl_sync(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len,
          uint32_t dir)
{
    zocl_state *s = state_of(m);
    uint64_t lead = (uint64_t)((char *)blk->cpu - (char *)blk->map_base);
    struct zocl_sync_bo sync = {(uint32_t)blk->handle, dir, lead + offset,
                                len};
    return pa_sys_ioctl(s->sys, s->fd, ZOCL_SYNC_BO, &sync) == 0
           ? 0 : -errno;
}

static int
zocl_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    return zocl_sync(m, blk, offset, len, ZOCL_TO_DEVICE);
}

static int
zocl_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
                uint64_t len)
{
    return zocl_sync(m, blk, offset, len, ZOCL_FROM_DEVICE);
}

/* A "Name:   N kB" line of meminfo text, in bytes; 0 if absent. */
static uint64_t
meminfo_bytes(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    return p != NULL ? strtoull(p + strlen(name), NULL, 10) * 1024 : 0;
}

static void
zocl_stats(pa_memory *m, pa_stats *out)
{
    zocl_state *s = state_of(m);
    char text[8192];
    uint64_t total = 0, free_bytes = 0;
    if (pa_sys_read_text(s->sys, s->meminfo, text, sizeof(text)) == 0) {
        total = meminfo_bytes(text, "CmaTotal:");
        free_bytes = meminfo_bytes(text, "CmaFree:");
    }
    /* The kernel's CMA pool, shared with other users; its fragmentation
     * is not visible, so the largest block is at most what is free. */
    out->total = total > s->used ? total : s->used;
    out->used = s->used;
    out->free = free_bytes;
    out->largest_free = free_bytes;
}

static void
zocl_describe(const pa_memory *m, char *buf, size_t cap)
{
    const zocl_state *s = pa_memory_state(m);
    snprintf(buf, cap, "bank=%u", (unsigned)s->bank);
}

static void
zocl_destroy(zocl_state *s)
{
    if (s->fd >= 0) {
        s->sys->close(s->fd);
    }
    free(s);
}

static void
zocl_close(pa_memory *m)
{
    zocl_destroy(state_of(m));
}

static const pa_backend_ops zocl_ops = {
    .kind = "zocl",
    .reuse_blocks = 0,      /* a kept BO would hold kernel memory */
    .sync_calls_driver = 1,
    .alloc = zocl_alloc,
    .zero = NULL,           /* every BO zocl_alloc returns reads as zeros */
    .free = zocl_free,
    .flush = zocl_flush,
    .invalidate = zocl_invalidate,
    .device_read = NULL,
    .device_write = NULL,
    .stats = zocl_stats,
    .close = zocl_close,
    .describe = zocl_describe,
};

/*
 * 0 if fd is driven by zocl; -ENODEV if by another driver (or is no DRM
 * node at all), since driver-specific DRM ioctl numbers overlap and
 * zocl's must never reach a GPU's render node, say; else the error of
 * asking.
 */
static int
check_zocl(const pa_sys *sys, int fd)
{
    char name[16] = "";
    struct drm_version v;
    memset(&v, 0, sizeof(v));
    v.name = name;
    v.name_len = sizeof(name) - 1;
    if (pa_sys_ioctl(sys, fd, DRM_VERSION, &v) != 0) {
        return errno == ENOTTY || errno == EINVAL ? -ENODEV : -errno;
    }
    return v.name_len == 4 && memcmp(name, "zocl", 4) == 0 ? 0 : -ENODEV;
}

int
pa_zocl_open(const pa_sys *sys, const char *device, int64_t bank,
             const char *meminfo, pa_memory **out, char *err_path,
             size_t err_cap)
{
    if (bank < 0 || bank > (int64_t)ZOCL_BANK_MASK) {
        return -EINVAL;
    }
    if (sys == NULL) {
        sys = &pa_sys_real;
    }
    zocl_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->sys = sys;
    s->bank = (uint32_t)bank;
    snprintf(s->meminfo, sizeof(s->meminfo), "%s", meminfo);
    s->fd = sys->open(device, O_RDWR);
    int rc = s->fd < 0 ? -errno : check_zocl(sys, s->fd);
    if (rc != 0) {
        snprintf(err_path, err_cap, "%s", device);
        zocl_destroy(s);
        return rc;
    }
    char text[8192];
    uint64_t total = 0;
    if (pa_sys_read_text(sys, meminfo, text, sizeof(text)) == 0) {
        total = meminfo_bytes(text, "CmaTotal:");
    }
    rc = pa_memory_create(&zocl_ops, s, 0, total, out);
    if (rc != 0) {
        zocl_destroy(s);
    }
    return rc;
}

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

/*
 * A BO belongs to the open file it was created through, not to a
 * process, and lives until that file's last descriptor closes.  A forked
 * child shares its parent's open file, so a BO it created there would
 * outlive it, held by the parent's descriptor, if it died without freeing.
 * So each process creates its BOs through an open file of its own, opened
 * at its first allocation, and a block records its file's descriptor (for
 * SYNC_BO and GEM_CLOSE).  The descriptors of the files an ancestor
 * created its BOs through stay open here, for the blocks inherited.
 */
typedef struct zocl_state {
    const pa_sys *sys;
    int *fds;               /* every descriptor this state closes: the */
    size_t nfds;            /* opener's, then each later process's own */
    int32_t fd_owner;       /* the process whose own file fds[nfds-1] is */
    char device[PATH_MAX];
    char meminfo[PATH_MAX];
    uint32_t bank;          /* CREATE_BO's flags, bits 0-15 */
    int cma;                /* the bank's BOs come from CMA (see alloc) */
    uint64_t cma_total;     /* the kernel's CmaTotal; 0 if unknown */
    uint64_t buddy_max;     /* the page allocator's largest block */
    uint64_t used;          /* bytes of live BOs */
    uint64_t cma_used;      /* of which larger than buddy_max: in CMA */
} zocl_state;

static zocl_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

static void
gem_close(zocl_state *s, int fd, uint32_t handle)
{
    struct drm_gem_close close_arg = {handle, 0};
    pa_sys_ioctl(s->sys, fd, DRM_GEM_CLOSE, &close_arg);
}

/* A block's handle: the GEM handle in bits 0-31, whether the BO is in CMA
 * in bit 32, the descriptor of its open file from bit 33. */
#define HANDLE_CMA (1ull << 32)
#define HANDLE_FD_SHIFT 33

static int
fd_of(const pa_block *blk)
{
    return (int)(blk->handle >> HANDLE_FD_SHIFT);
}

static int check_zocl(const pa_sys *sys, int fd);

/* The descriptor of this process's own open file of the device, opened
 * at its first allocation after a fork (see zocl_state); the memory's
 * lock is held.  -errno if it cannot be opened. */
static int
own_fd(zocl_state *s)
{
    int32_t self = pa_process_id();
    if (s->fd_owner == self) {
        return s->fds[s->nfds - 1];
    }
    int *grown = realloc(s->fds, (s->nfds + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    s->fds = grown;
    int fd = s->sys->open(s->device, O_RDWR);
    if (fd < 0) {
        return -errno;
    }
    int rc = check_zocl(s->sys, fd);
    if (rc != 0) {
        s->sys->close(fd);
        return rc;
    }
    s->fds[s->nfds++] = fd;
    s->fd_owner = self;
    return fd;
}

/* The size of the BO that zocl makes for a request of `size` bytes: a page
 * or less becomes two pages, so that it comes from CMA
 * (zocl_create_cma_mem). */
static uint64_t
bo_size(uint64_t size, uint64_t page)
{
    return size <= page ? 2 * page : (size + page - 1) & ~(page - 1);
}

/*
 * CREATE_BO for `size` bytes, then INFO_BO and MAP_BO.  0 with the BO
 * open, or -errno with nothing left open.
 *
 * zocl corrupts kernel memory when a CREATE_BO cannot be satisfied (its
 * failure path writes into the BO it has just freed).  A BO up to the page
 * allocator's largest block may come from there when CMA is full; a
 * larger one only from CMA.  So a larger request that cannot fit even in
 * all of CMA less this memory's own such BOs is refused here without
 * asking.  What else holds CMA is not known, so the rest still goes to
 * the driver.
 */
static int
create_bo(zocl_state *s, int fd, uint64_t size, int cacheable,
          struct zocl_create_bo *create, struct zocl_info_bo *info,
          struct zocl_map_bo *map)
{
    uint64_t page = pa_page_size();
    uint64_t bytes = bo_size(size, page);
    if (s->cma && s->cma_total != 0 && bytes > s->buddy_max
            && bytes > s->cma_total - s->cma_used) {
        return -ENOMEM;
    }
    *create = (struct zocl_create_bo){size, 0,
                                      s->bank | (cacheable ? ZOCL_CACHEABLE
                                                           : 0)};
    if (pa_sys_ioctl(s->sys, fd, ZOCL_CREATE_BO, create) != 0) {
        return -errno;
    }
    /* The driver writes back where the BO came from: what the next
     * request in this bank will get (an xclbin may have been loaded). */
    s->cma = (create->flags & ZOCL_FROM_CMA) != 0;
    *info = (struct zocl_info_bo){create->handle, 0, 0, 0};
    *map = (struct zocl_map_bo){create->handle, 0, 0};
    if (pa_sys_ioctl(s->sys, fd, ZOCL_INFO_BO, info) != 0
            || pa_sys_ioctl(s->sys, fd, ZOCL_MAP_BO, map) != 0) {
        int rc = -errno;
        gem_close(s, fd, create->handle);
        return rc;
    }
    return 0;
}

static int
zocl_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
           int cacheable, pa_block *blk)
{
    zocl_state *s = state_of(m);
    uint64_t page = pa_page_size();
    struct zocl_create_bo create;
    struct zocl_info_bo info;
    struct zocl_map_bo map;
    uint64_t start, lead;
    int fd = own_fd(s);
    if (fd < 0) {
        return fd;
    }
    /* CMA aligns a BO to its size's power of two, up to 1 MiB
     * (CONFIG_CMA_ALIGNMENT), so ask for the size alone first.  Only a BO
     * that lies misaligned is given back for one with room to slide. */
    for (uint64_t extra = 0;; extra = align - page) {
        if (size > UINT64_MAX - extra) {
            return -ENOMEM;
        }
        int rc = create_bo(s, fd, size + extra, cacheable, &create, &info,
                           &map);
        if (rc != 0) {
            return rc;
        }
        start = (info.paddr + align - 1) & ~(align - 1);
        lead = start - info.paddr;
        if (info.size >= lead + size && start + size <= limit) {
            break;
        }
        gem_close(s, fd, create.handle);
        if (extra != 0 || align <= page || start + size > limit) {
            /* The kernel chooses where a BO lies; it lay out of bounds. */
            return -ENOMEM;
        }
    }
    /* The driver turns caching off in a PL-DDR bank and maps that BO
     * write-combined (zocl_bo.c, zocl_create_bo_ioctl; zocl_drv.c,
     * zocl_gem_mmap). */
    if ((create.flags & ZOCL_CACHEABLE) == 0) {
        cacheable = 0;
    }
    char *base = s->sys->mmap(NULL, info.size, PROT_READ | PROT_WRITE,
                              MAP_SHARED, fd, (off_t)map.offset);
    if (base == MAP_FAILED) {
        int rc = pa_mmap_error(errno);
        gem_close(s, fd, create.handle);
        return rc;
    }
    if ((create.flags & ZOCL_FROM_CMA) == 0) {
        /* Only CMA BOs come zeroed; a bank's range allocator hands memory
         * out as it is (zocl_create_range_mem).  It is mapped
         * write-combined, where memset is safe. */
        memset(base, 0, info.size);
    }
    else if (info.size > s->buddy_max) {
        s->cma_used += info.size;
    }
    s->used += info.size;
    blk->device_address = start;
    blk->cpu = base + lead;
    blk->size = size;
    blk->map_base = base;
    blk->map_length = info.size;
    blk->handle = create.handle
                  | ((create.flags & ZOCL_FROM_CMA) ? HANDLE_CMA : 0)
                  | (uint64_t)fd << HANDLE_FD_SHIFT;
    blk->cacheable = (uint8_t)cacheable;
    blk->coherent = (uint8_t)!cacheable;    /* mapped write-combined */
    return 0;
}

static void
zocl_free(pa_memory *m, pa_block *blk, int keep_va)
{
    zocl_state *s = state_of(m);
    if (!keep_va) {
        s->sys->munmap(blk->map_base, blk->map_length);
    }
    s->used -= blk->map_length;
    if ((blk->handle & HANDLE_CMA) && blk->map_length > s->buddy_max) {
        s->cma_used -= blk->map_length;
    }
    gem_close(s, fd_of(blk), (uint32_t)blk->handle);
}

static int
zocl_sync(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len,
          uint32_t dir)
{
    zocl_state *s = state_of(m);
    uint64_t lead = (uint64_t)((char *)blk->cpu - (char *)blk->map_base);
    struct zocl_sync_bo sync = {(uint32_t)blk->handle, dir, lead + offset,
                                len};
    return pa_sys_ioctl(s->sys, fd_of(blk), ZOCL_SYNC_BO, &sync) == 0
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
    for (size_t i = 0; i < s->nfds; i++) {
        s->sys->close(s->fds[i]);
    }
    free(s->fds);
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

/* DRM_IOCTL_VERSION on fd: the driver's name into name, NUL-terminated
 * and truncated to cap - 1 bytes (cap > 0).  0 or -errno. */
static int
drm_version_name(const pa_sys *sys, int fd, char *name, size_t cap)
{
    struct drm_version v;
    memset(&v, 0, sizeof(v));
    memset(name, 0, cap);
    v.name = name;
    v.name_len = cap - 1;
    if (pa_sys_ioctl(sys, fd, DRM_VERSION, &v) != 0) {
        return -errno;
    }
    /* name_len comes back as the whole name's length; the driver copied
     * no more than there was room for (drm_copy_field). */
    name[v.name_len < cap - 1 ? v.name_len : cap - 1] = '\0';
    return 0;
}

int
pa_drm_driver_name(const pa_sys *sys, const char *node, char *name,
                   size_t cap)
{
    if (cap == 0) {
        return -ERANGE;
    }
    name[0] = '\0';
    if (sys == NULL) {
        sys = &pa_sys_real;
    }
    int fd = sys->open(node, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = drm_version_name(sys, fd, name, cap);
    sys->close(fd);
    if (rc != 0) {
        name[0] = '\0';
    }
    return rc;
}

/*
 * 0 if fd is driven by zocl; -ENODEV if by another driver (or is no DRM
 * node at all), since driver-specific DRM ioctl numbers overlap and
 * zocl's must never reach a GPU's render node, say; else the error of
 * asking.
 */
static int
check_zocl(const pa_sys *sys, int fd)
{
    char name[16];
    int rc = drm_version_name(sys, fd, name, sizeof(name));
    if (rc == -ENOTTY || rc == -EINVAL) {
        return -ENODEV;
    }
    if (rc != 0) {
        return rc;
    }
    /* A longer name would have been cut to 15 bytes, never to "zocl". */
    return strcmp(name, "zocl") == 0 ? 0 : -ENODEV;
}

/* How many block orders the page allocator has: /proc/buddyinfo's lines
 * are "Node 0, zone NAME" and a count per order; Linux's usual 11 if it
 * cannot be read. */
static int
buddy_orders(const pa_sys *sys)
{
    char text[4096], *save = NULL;
    if (pa_sys_read_text(sys, "/proc/buddyinfo", text, sizeof(text)) != 0) {
        return 11;
    }
    char *end = strchr(text, '\n');
    if (end != NULL) {
        *end = '\0';
    }
    int tokens = 0;
    for (char *t = strtok_r(text, " ", &save); t != NULL;
            t = strtok_r(NULL, " ", &save)) {
        tokens++;
    }
    return tokens > 4 && tokens < 40 ? tokens - 4 : 11;
}

int
pa_zocl_open(const pa_sys *sys, const char *device, int64_t bank, int cma,
             const char *meminfo, pa_memory **out, char *err_path,
             size_t err_cap)
{
    if (bank < 0 || bank >= PA_BANK_COUNT) {
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
    s->cma = cma;
    snprintf(s->device, sizeof(s->device), "%s", device);
    snprintf(s->meminfo, sizeof(s->meminfo), "%s", meminfo);
    s->fds = malloc(sizeof(*s->fds));
    if (s->fds == NULL) {
        free(s);
        return -ENOMEM;
    }
    int fd = sys->open(device, O_RDWR);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0) {
        s->fds[s->nfds++] = fd;
        s->fd_owner = pa_process_id();
        rc = check_zocl(sys, fd);
    }
    if (rc != 0) {
        snprintf(err_path, err_cap, "%s", device);
        zocl_destroy(s);
        return rc;
    }
    char text[8192];
    if (pa_sys_read_text(sys, meminfo, text, sizeof(text)) == 0) {
        s->cma_total = meminfo_bytes(text, "CmaTotal:");
    }
    s->buddy_max = pa_page_size() << (buddy_orders(sys) - 1);
    rc = pa_memory_create(&zocl_ops, s, 0, s->cma_total, out);
    if (rc != 0) {
        zocl_destroy(s);
    }
    return rc;
}

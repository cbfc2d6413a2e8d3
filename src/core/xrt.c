/*
 * The xrt backend (see xrt.h).
 *
 * XRT's C API, declared here from its public headers in Xilinx/XRT
 * (src/runtime_src/core/include/xrt/): handles are opaque pointers;
 * xrtBufferFlags is a uint64_t whose bits 0-15 carry the bank and bit 24
 * asks for a cacheable BO (xrt_mem.h); the memory group is a uint32_t;
 * xrtBOSync takes the size before the offset.  Each function catches
 * XRT's exceptions and returns NULL, -1 or UINT64_MAX, with errno set from
 * the exception's code where it has one (xrt_bo.cpp).
 */
#include "xrt.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef void *xrt_device;       /* xrtDeviceHandle */
typedef void *xrt_bo;           /* xrtBufferHandle */

/* enum xclBOSyncDirection (xrt/deprecated/xrt.h). */
enum xrt_sync_direction {
    XRT_SYNC_TO_DEVICE = 0,
    XRT_SYNC_FROM_DEVICE = 1,
};

#define XRT_BO_FLAGS_NONE UINT64_C(0)
#define XRT_BO_FLAGS_CACHEABLE (UINT64_C(1) << 24)

typedef struct xrt_api {
    xrt_device (*device_open)(unsigned int index);
    int (*device_close)(xrt_device device);
    xrt_bo (*bo_alloc)(xrt_device device, size_t size, uint64_t flags,
                       uint32_t group);
    xrt_bo (*bo_alloc_userptr)(xrt_device device, void *userptr, size_t size,
                               uint64_t flags, uint32_t group);
    int (*bo_free)(xrt_bo bo);
    void *(*bo_map)(xrt_bo bo);
    uint64_t (*bo_address)(xrt_bo bo);
    int (*bo_sync)(xrt_bo bo, enum xrt_sync_direction dir, size_t size,
                   size_t offset);
} xrt_api;

typedef struct xrt_state {
    const pa_sys *sys;
    void *library;
    xrt_api api;
    xrt_device device;
    pa_xrt_options options;     /* options.library is not kept */
    uint64_t used;              /* bytes of live BOs */
} xrt_state;

static xrt_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

/* XRT's errno after a failed call, as a negative errno value: XRT leaves
 * errno alone for exceptions without a code, and some codes are negative
 * already (callers set errno to 0 first). */
static int
xrt_error(int otherwise)
{
    int e = errno;
    return e > 0 ? -e : e < 0 ? e : otherwise;
}

static xrt_bo
bo_of(const pa_block *blk)
{
    return (xrt_bo)(uintptr_t)blk->handle;
}

/* Where the block starts in its BO (alignment slack before it). */
static uint64_t
lead_of(const pa_block *blk)
{
    return (uint64_t)((char *)blk->cpu - (char *)blk->map_base);
}

/* Ours is ordinary host memory, and the card's is separate: flush and
 * invalidate are what move data, whatever was asked. */
static int
xr_cacheable_as(const pa_memory *m, int cacheable)
{
    (void)m;
    (void)cacheable;
    return 1;
}

static int
xr_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
         int cacheable, pa_block *blk)
{
    xrt_state *s = state_of(m);
    uint64_t page = pa_page_size();
    /* Card memory comes in pages; more alignment needs room to slide. */
    uint64_t extra = align > page ? align - page : 0, max = SIZE_MAX;
    if (extra > max || size > max - extra) {
        return -ENOMEM;
    }
    uint64_t length = size + extra;
    /* Shared, so that a forked child sees the same host buffer. */
    char *mine = s->sys->mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mine == MAP_FAILED) {
        return -errno;
    }
    /* The cacheable flag as PYNQ passes it: it decides how XRT maps its
     * own host buffer on an edge board; PCIe cards ignore it. */
    uint64_t flags = cacheable ? XRT_BO_FLAGS_CACHEABLE : XRT_BO_FLAGS_NONE;
    uint32_t group = (uint32_t)s->options.bank;
    int rc;
    errno = 0;
    xrt_bo bo = s->options.userptr
        ? s->api.bo_alloc_userptr(s->device, mine, (size_t)length, flags, group)
        : s->api.bo_alloc(s->device, (size_t)length, flags, group);
    if (bo == NULL) {
        rc = xrt_error(-ENOMEM);
        s->sys->munmap(mine, (size_t)length);
        return rc;
    }
    errno = 0;
    uint64_t address = s->api.bo_address(bo);
    /* xrt_bo.h says LLONG_MAX on error; xrt_bo.cpp returns UINT64_MAX. */
    if (address == UINT64_MAX || address == (uint64_t)LLONG_MAX) {
        rc = xrt_error(-EIO);
        goto fail;
    }
    errno = 0;
    if (!s->options.userptr && s->api.bo_map(bo) == NULL) {
        rc = xrt_error(-EIO);       /* a staged BO needs XRT's host buffer */
        goto fail;
    }
    uint64_t start = (address + align - 1) & ~(align - 1);
    if (start - address > extra || start + size > limit) {
        rc = -ENOMEM;       /* XRT chose where it lies: out of bounds */
        goto fail;
    }
    s->used += length;
    blk->device_address = start;
    blk->cpu = mine + (start - address);
    blk->size = size;
    blk->map_base = mine;
    blk->map_length = length;
    blk->handle = (uintptr_t)bo;
    blk->cacheable = (uint8_t)xr_cacheable_as(m, cacheable);
    blk->coherent = 0;
    return 0;
fail:
    s->api.bo_free(bo);
    s->sys->munmap(mine, (size_t)length);
    return rc;
}

static void
xr_free(pa_memory *m, pa_block *blk, int keep_va)
{
    xrt_state *s = state_of(m);
    /* XRT unpins our mapping or releases its own host buffer; ours stays
     * until we unmap it. */
    s->api.bo_free(bo_of(blk));
    if (!keep_va) {
        s->sys->munmap(blk->map_base, (size_t)blk->map_length);
    }
    s->used -= blk->map_length;
}

/* XRT's host buffer of a staged block, or NULL with errno set. */
static char *
staging_of(xrt_state *s, const pa_block *blk)
{
    errno = 0;
    return s->api.bo_map(bo_of(blk));
}

/* xrtBOSync of [at, at + len) of the block's BO. */
static int
bo_sync(xrt_state *s, const pa_block *blk, uint64_t at, uint64_t len,
        enum xrt_sync_direction dir)
{
    errno = 0;
    return s->api.bo_sync(bo_of(blk), dir, (size_t)len, (size_t)at) == 0
           ? 0 : xrt_error(-EIO);
}

static int
xr_sync(xrt_state *s, const pa_block *blk, uint64_t offset, uint64_t len,
        enum xrt_sync_direction dir)
{
    uint64_t at = lead_of(blk) + offset;
    char *ours = (char *)blk->map_base + at, *staging = NULL;
    if (!s->options.userptr) {
        if ((staging = staging_of(s, blk)) == NULL) {
            return xrt_error(-EIO);
        }
        staging += at;
        if (dir == XRT_SYNC_TO_DEVICE) {
            memcpy(staging, ours, (size_t)len);
        }
    }
    int rc = bo_sync(s, blk, at, len, dir);
    if (rc == 0 && staging != NULL && dir == XRT_SYNC_FROM_DEVICE) {
        memcpy(ours, staging, (size_t)len);
    }
    return rc;
}

static int
xr_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    return xr_sync(state_of(m), blk, offset, len, XRT_SYNC_TO_DEVICE);
}

static int
xr_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
              uint64_t len)
{
    return xr_sync(state_of(m), blk, offset, len, XRT_SYNC_FROM_DEVICE);
}

/*
 * Our mapping is new, so it reads as zeros; the card's memory holds
 * whatever an earlier user left (no driver clears it), and so may XRT's
 * own host buffer.  Zeros go to the card by a sync of the whole block.
 */
static int
xr_zero(pa_memory *m, const pa_block *blk)
{
    xrt_state *s = state_of(m);
    if (!s->options.userptr) {
        char *staging = staging_of(s, blk);
        if (staging == NULL) {
            return xrt_error(-EIO);
        }
        memset(staging + lead_of(blk), 0, (size_t)blk->size);
    }
    return bo_sync(s, blk, lead_of(blk), blk->size, XRT_SYNC_TO_DEVICE);
}

/* XRT's C API gives no memory figures: the bank's size as given at open,
 * less what this memory's BOs hold (other users of the card not seen). */
static void
xr_stats(pa_memory *m, pa_stats *out)
{
    xrt_state *s = state_of(m);
    uint64_t total = s->options.size;
    out->total = total > s->used ? total : s->used;
    out->used = s->used;
    out->free = out->total - s->used;
    out->largest_free = out->free;
}

static void
xr_describe(const pa_memory *m, char *buf, size_t cap)
{
    const xrt_state *s = pa_memory_state(m);
    snprintf(buf, cap, "device=%u bank=%u%s", (unsigned)s->options.device,
             (unsigned)s->options.bank,
             s->options.userptr ? "" : " userptr=0");
}

static void
xr_destroy(xrt_state *s)
{
    if (s->device != NULL) {
        s->api.device_close(s->device);
    }
    /* Never dlclose()d (RTLD_NODELETE): XRT's C++ runtime keeps threads
     * and static objects that must not lose their code. */
    free(s);
}

static void
xr_close(pa_memory *m)
{
    xr_destroy(state_of(m));
}

static const pa_backend_ops xrt_ops = {
    .kind = "xrt",
    .reuse_blocks = 0,      /* a kept BO would hold card memory */
    .sync_calls_driver = 1,
    .alloc = xr_alloc,
    .cacheable_as = xr_cacheable_as,
    .zero = xr_zero,
    .free = xr_free,
    .flush = xr_flush,
    .invalidate = xr_invalidate,
    /* xrtBORead/xrtBOWrite reach only the host buffer, and a sync would
     * overwrite it: the card's memory has no side-effect-free view. */
    .device_read = NULL,
    .device_write = NULL,
    .stats = xr_stats,
    .close = xr_close,
    .describe = xr_describe,
};

int
pa_xrt_open(const pa_sys *sys, const pa_xrt_options *options,
            pa_memory **out, int *step, char *err_symbol, size_t err_cap)
{
    err_symbol[0] = '\0';
    *step = 0;
    /* struct xcl_bo_flags: the bank is bits 0-15. */
    if (options->bank < 0 || options->bank >= PA_BANK_COUNT) {
        return -EINVAL;
    }
    xrt_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->sys = sys != NULL ? sys : &pa_sys_real;
    s->options = *options;
    s->options.library = NULL;
    s->library = dlopen(options->library, RTLD_NOW | RTLD_LOCAL
                                          | RTLD_NODELETE);
    if (s->library == NULL) {
        *step = PA_XRT_LOAD;
        xr_destroy(s);
        return -ENOENT;
    }
    const pa_symbol symbols[] = {
        {"xrtDeviceOpen", (void **)&s->api.device_open},
        {"xrtDeviceClose", (void **)&s->api.device_close},
        {"xrtBOAlloc", (void **)&s->api.bo_alloc},
        {"xrtBOAllocUserPtr", (void **)&s->api.bo_alloc_userptr},
        {"xrtBOFree", (void **)&s->api.bo_free},
        {"xrtBOMap", (void **)&s->api.bo_map},
        {"xrtBOAddress", (void **)&s->api.bo_address},
        {"xrtBOSync", (void **)&s->api.bo_sync},
    };
    int rc = pa_load_symbols(s->library, symbols,
                             sizeof(symbols) / sizeof(symbols[0]), err_symbol,
                             err_cap);
    if (rc != 0) {
        *step = PA_XRT_SYMBOL;
        xr_destroy(s);
        return rc;
    }
    errno = 0;
    s->device = s->api.device_open(options->device);
    if (s->device == NULL) {
        rc = xrt_error(-ENODEV);
        *step = PA_XRT_DEVICE;
        xr_destroy(s);
        return rc;
    }
    rc = pa_memory_create(&xrt_ops, s, options->base_address,
                              options->size, out);
    if (rc != 0) {
        xr_destroy(s);
    }
    return rc;
}

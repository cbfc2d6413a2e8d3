/* The u-dma-buf backend (see udmabuf.h). */
#include "udmabuf.h"
#include "window.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* The driver's GET_DEV_INFO result (u-dma-buf 4.7+). */
struct udmabuf_dev_info {
    uint64_t flags;         /* bit 9: DMA coherent */
    uint64_t size;
    uint64_t addr;
};

#define UDMABUF_GET_DEV_INFO 0x80185507u
#define UDMABUF_SET_SYNC_FOR_CPU 0x40085505u
#define UDMABUF_SET_SYNC_FOR_DEVICE 0x40085506u
#define UDMABUF_FLAG_COHERENT (1u << 9)
#define UDMABUF_TO_DEVICE 1u
#define UDMABUF_FROM_DEVICE 2u

_Static_assert(_IOR('U', 7, struct udmabuf_dev_info) == UDMABUF_GET_DEV_INFO,
               "GET_DEV_INFO");
_Static_assert(_IOW('U', 5, uint64_t) == UDMABUF_SET_SYNC_FOR_CPU,
               "SET_SYNC_FOR_CPU");
_Static_assert(_IOW('U', 6, uint64_t) == UDMABUF_SET_SYNC_FOR_DEVICE,
               "SET_SYNC_FOR_DEVICE");
_Static_assert(sizeof(struct udmabuf_dev_info) == 24, "dev_info layout");

typedef struct udmabuf_state {
    const pa_sys *sys;
    int fd_cached;          /* opened without O_SYNC: cached mappings */
    int fd_uncached;        /* with O_SYNC: uncached mappings */
    uint64_t phys;
    uint64_t size;
    int coherent;           /* the driver says DMA is coherent */
    int use_ioctl;          /* the driver answered GET_DEV_INFO */
    pa_heap *heap;
    char sync_for_device[PATH_MAX];
    char sync_for_cpu[PATH_MAX];
} udmabuf_state;

static udmabuf_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

static int
ub_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
         int cacheable, pa_block *blk)
{
    udmabuf_state *s = state_of(m);
    int rc = pa_window_alloc(s->sys, s->heap,
                             cacheable ? s->fd_cached : s->fd_uncached,
                             s->phys, size, align, limit, blk);
    if (rc == 0) {
        blk->cacheable = (uint8_t)cacheable;
        blk->coherent = (uint8_t)(s->coherent || !cacheable);
    }
    return rc;
}

static void
ub_free(pa_memory *m, pa_block *blk, int keep_va)
{
    udmabuf_state *s = state_of(m);
    pa_window_free(s->sys, s->heap, blk, keep_va);
}

/*
 * Syncs [offset, offset + len) of the block.  The driver's command is
 * (offset << 32) | size | (direction << 2) | 1 with a 16-byte multiple
 * size below 4 GiB, so the range is rounded out to 16 bytes, clamped to
 * the buffer and sent in pieces of less than 4 GiB.
 */
static int
ub_sync(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len,
        unsigned direction)
{
    udmabuf_state *s = state_of(m);
    uint64_t start = (blk->device_address - s->phys + offset) & ~15ull;
    uint64_t end = (blk->device_address - s->phys + offset + len + 15)
                   & ~15ull;
    if (end > s->size) {
        end = s->size;
    }
    while (start < end) {
        uint64_t piece = end - start;
        if (piece > 0xFFFFFFF0ull) {
            piece = 0xFFFFFFF0ull;
        }
        if (start > 0xFFFFFFFFull) {
            return -EINVAL;     /* the command cannot name such offsets */
        }
        uint64_t cmd = (start << 32) | piece | ((uint64_t)direction << 2)
                       | 1u;
        int rc;
        if (s->use_ioctl) {
            unsigned long req = direction == UDMABUF_TO_DEVICE
                                ? UDMABUF_SET_SYNC_FOR_DEVICE
                                : UDMABUF_SET_SYNC_FOR_CPU;
            rc = pa_sys_ioctl(s->sys, s->fd_cached, req, &cmd) == 0
                 ? 0 : -errno;
        }
        else {
            char text[32];
            snprintf(text, sizeof(text), "0x%" PRIx64, cmd);
            rc = pa_sys_write_text(s->sys, direction == UDMABUF_TO_DEVICE
                                   ? s->sync_for_device : s->sync_for_cpu,
                                   text);
        }
        if (rc != 0) {
            return rc;
        }
        start += piece;
    }
    return 0;
}

static int
ub_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    return ub_sync(m, blk, offset, len, UDMABUF_TO_DEVICE);
}

static int
ub_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
              uint64_t len)
{
    return ub_sync(m, blk, offset, len, UDMABUF_FROM_DEVICE);
}

static void
ub_stats(pa_memory *m, pa_stats *out)
{
    pa_window_stats(state_of(m)->heap, out);
}

static void
ub_destroy(udmabuf_state *s)
{
    if (s->fd_cached >= 0) {
        s->sys->close(s->fd_cached);
    }
    if (s->fd_uncached >= 0) {
        s->sys->close(s->fd_uncached);
    }
    pa_heap_destroy(s->heap);
    free(s);
}

static void
ub_close(pa_memory *m)
{
    ub_destroy(state_of(m));
}

static const pa_backend_ops udmabuf_ops = {
    .kind = "udmabuf",
    .reuse_blocks = 1,      /* one fixed buffer: reuse holds nothing extra */
    .sync_calls_driver = 1,
    .private_heap = 1,
    .alloc = ub_alloc,
    .zero = pa_memory_zero_by_cpu,
    .free = ub_free,
    .flush = ub_flush,
    .invalidate = ub_invalidate,
    .device_read = NULL,
    .device_write = NULL,
    .stats = ub_stats,
    .close = ub_close,
};

/* Reads a number from sysfs_dir/name; 0 or -errno (path in err_path). */
static int
read_attr(const pa_sys *sys, const char *dir, const char *name, int base,
          uint64_t *value, char *err_path, size_t err_cap)
{
    char path[PATH_MAX], text[64], *end;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int rc = pa_sys_read_text(sys, path, text, sizeof(text));
    if (rc == 0) {
        errno = 0;
        *value = strtoull(text, &end, base);
        if (errno != 0 || end == text || *end != '\0') {
            rc = -EINVAL;
        }
    }
    if (rc != 0) {
        snprintf(err_path, err_cap, "%s", path);
    }
    return rc;
}

/* Whether fd is what a u-dma-buf device node is: a character device (or,
 * where the caller allows it, a test's regular file).  0 or -errno. */
static int
check_node(int fd, unsigned flags)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    int stand_in = (flags & PA_UDMABUF_FILE_STAND_IN) && S_ISREG(st.st_mode);
    return S_ISCHR(st.st_mode) || stand_in ? 0 : -ENODEV;
}

/* 0 if the sysfs directory dir is there; -ENODEV if it is not (nothing,
 * or no directory, has that name); else -errno. */
static int
check_sysfs_dir(const pa_sys *sys, const char *dir)
{
    int fd = sys->open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return errno == ENOENT || errno == ENOTDIR ? -ENODEV : -errno;
    }
    sys->close(fd);
    return 0;
}

int
pa_udmabuf_open(const pa_sys *sys, const char *device, const char *sysfs_dir,
                unsigned flags, pa_memory **out, char *err_path,
                size_t err_cap)
{
    if (sys == NULL) {
        sys = &pa_sys_real;
    }
    udmabuf_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->sys = sys;
    s->fd_uncached = -1;
    snprintf(s->sync_for_device, sizeof(s->sync_for_device),
             "%s/sync_for_device", sysfs_dir);
    snprintf(s->sync_for_cpu, sizeof(s->sync_for_cpu), "%s/sync_for_cpu",
             sysfs_dir);
    int rc = 0;
    s->fd_cached = sys->open(device, O_RDWR);
    if (s->fd_cached < 0) {
        rc = -errno;
    }
    else if ((rc = check_node(s->fd_cached, flags)) == 0
             && (s->fd_uncached = sys->open(device, O_RDWR | O_SYNC)) < 0) {
        rc = -errno;
    }
    if (rc != 0) {
        snprintf(err_path, err_cap, "%s", device);
        goto fail;
    }
    /* The heap lives in this process, so only one opener at a time may
     * sub-allocate the buffer.  The lock goes with the open file: a
     * forked child shares it (and may not allocate, see memory.h), and
     * the kernel drops it when the last holder exits, even by kill -9. */
    if (sys->flock(s->fd_cached, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err_path, err_cap, "%s", device);
        goto fail;
    }
    struct udmabuf_dev_info info;
    if (pa_sys_ioctl(sys, s->fd_cached, UDMABUF_GET_DEV_INFO, &info) == 0) {
        s->use_ioctl = 1;
        s->phys = info.addr;
        s->size = info.size;
        s->coherent = (info.flags & UDMABUF_FLAG_COHERENT) != 0;
    }
    else if ((rc = check_sysfs_dir(sys, sysfs_dir)) != 0) {
        /* -ENODEV: neither interface, another driver's device (/dev/null,
         * say), or the sysfs directory is elsewhere. */
        snprintf(err_path, err_cap, "%s", sysfs_dir);
        goto fail;
    }
    else {
        /* Older drivers, and test stand-ins: the sysfs attributes. */
        uint64_t coherent = 0;
        if ((rc = read_attr(sys, sysfs_dir, "phys_addr", 16, &s->phys,
                            err_path, err_cap)) != 0
                || (rc = read_attr(sys, sysfs_dir, "size", 10, &s->size,
                                   err_path, err_cap)) != 0) {
            goto fail;
        }
        if (read_attr(sys, sysfs_dir, "dma_coherent", 10, &coherent,
                      err_path, err_cap) == 0) {
            s->coherent = coherent != 0;
        }
    }
    uint64_t page = pa_page_size();
    s->size &= ~(page - 1);     /* whole pages only: each maps separately */
    if (s->phys % page != 0 || s->size == 0) {
        rc = -EINVAL;
        snprintf(err_path, err_cap, "%s", sysfs_dir);
        goto fail;
    }
    if ((rc = pa_heap_create(s->phys, s->size, page, &s->heap)) != 0
            || (rc = pa_memory_create(&udmabuf_ops, s, s->phys, s->size,
                                      out)) != 0) {
        snprintf(err_path, err_cap, "%s", device);
        goto fail;
    }
    return 0;
fail:
    ub_destroy(s);
    return rc;
}

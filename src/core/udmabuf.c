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

/* GET_SYNC and SET_SYNC's argument (u-dma-buf 4.7+): the sysfs sync_*
 * attributes, with sync_direction in flags bits 2-3 and sync_mode in bits
 * 8-15.  SET_SYNC sets offset, a non-zero size, a direction 0 to 2 and a
 * non-zero mode; flags bits 0-1 (a sync command) are left 0. */
struct udmabuf_sync_args {
    uint64_t flags;
    uint64_t size;
    uint64_t offset;
};

#define UDMABUF_GET_DEV_INFO 0x80185507u
#define UDMABUF_SET_SYNC_FOR_CPU 0x40085505u
#define UDMABUF_SET_SYNC_FOR_DEVICE 0x40085506u
#define UDMABUF_GET_SYNC 0x80185508u
#define UDMABUF_SET_SYNC 0x40185509u
#define UDMABUF_FLAG_COHERENT (1u << 9)
#define UDMABUF_TO_DEVICE 1u
#define UDMABUF_FROM_DEVICE 2u
#define UDMABUF_SYNC_DIR_MASK (3ull << 2)
#define UDMABUF_SYNC_MODE_SHIFT 8
#define UDMABUF_SYNC_MODE_MASK (0xFFull << UDMABUF_SYNC_MODE_SHIFT)
/* sync_mode 2: an O_SYNC open maps write-combined (pgprot_writecombine:
 * Normal non-cacheable on arm64), as zocl maps its uncached BOs; other
 * opens map cached.  The driver's default, 1, maps O_SYNC opens with
 * pgprot_noncached: device memory on arm and arm64. */
#define UDMABUF_SYNC_MODE_WRITECOMBINE 2u

_Static_assert(_IOR('U', 7, struct udmabuf_dev_info) == UDMABUF_GET_DEV_INFO,
               "GET_DEV_INFO");
_Static_assert(_IOW('U', 5, uint64_t) == UDMABUF_SET_SYNC_FOR_CPU,
               "SET_SYNC_FOR_CPU");
_Static_assert(_IOW('U', 6, uint64_t) == UDMABUF_SET_SYNC_FOR_DEVICE,
               "SET_SYNC_FOR_DEVICE");
_Static_assert(_IOR('U', 8, struct udmabuf_sync_args) == UDMABUF_GET_SYNC,
               "GET_SYNC");
_Static_assert(_IOW('U', 9, struct udmabuf_sync_args) == UDMABUF_SET_SYNC,
               "SET_SYNC");
_Static_assert(sizeof(struct udmabuf_dev_info) == 24, "dev_info layout");
_Static_assert(sizeof(struct udmabuf_sync_args) == 24, "sync_args layout");

/* Whether this CPU faults on an unaligned access to device memory (an
 * uncached mapping made with pgprot_noncached): arm and arm64 do; x86
 * takes any access on any memory type. */
#if defined(__aarch64__) || defined(__arm__)
#define DEVICE_MEMORY_FAULTS_UNALIGNED 1
#else
#define DEVICE_MEMORY_FAULTS_UNALIGNED 0
#endif

typedef struct udmabuf_state {
    const pa_sys *sys;
    int fd_cached;          /* opened without O_SYNC: cached mappings */
    int fd_uncached;        /* with O_SYNC: uncached mappings */
    uint64_t phys;
    uint64_t size;
    int coherent;           /* the driver says DMA is coherent */
    int use_ioctl;          /* the driver answered GET_DEV_INFO */
    int write_combine;      /* sync_mode reads 2: uncached is write-combined */
    pa_heap *heap;
    char sync_mode_problem[PATH_MAX + 160];  /* why it is not, if it is not */
    char sync_for_device[PATH_MAX];
    char sync_for_cpu[PATH_MAX];
} udmabuf_state;

static udmabuf_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

/* Uncached blocks only where they are write-combined, or where the
 * driver's other mapping takes unaligned access too (x86). */
static int
ub_cacheable_as(const pa_memory *m, int cacheable)
{
    const udmabuf_state *s = pa_memory_state(m);
    if (!cacheable && !s->write_combine && DEVICE_MEMORY_FAULTS_UNALIGNED) {
        return -ENOTSUP;
    }
    return cacheable;
}

static int
ub_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
         int cacheable, pa_block *blk)
{
    udmabuf_state *s = state_of(m);
    int as = ub_cacheable_as(m, cacheable);
    if (as < 0) {
        return as;
    }
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
    .cacheable_as = ub_cacheable_as,
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

/* The sync_mode in GET_SYNC's flags. */
static unsigned
sync_mode_of(const struct udmabuf_sync_args *args)
{
    return (unsigned)((args->flags & UDMABUF_SYNC_MODE_MASK)
                      >> UDMABUF_SYNC_MODE_SHIFT);
}

/* Errors that say the driver will not take sync_mode 2 from this process
 * (as opposed to a failure of the moment, which fails the open). */
static int
refused(int err)
{
    return err == EACCES || err == EPERM || err == EINVAL || err == EROFS;
}

/* Sets sync_mode 2 through SET_SYNC, keeping the driver's other sync_*
 * settings, and reads it back.  0 with s->write_combine set, or the
 * problem in s; 1 if the driver answers no GET_SYNC (use sysfs); else
 * -errno. */
static int
write_combine_by_ioctl(udmabuf_state *s)
{
    struct udmabuf_sync_args args;
    if (pa_sys_ioctl(s->sys, s->fd_cached, UDMABUF_GET_SYNC, &args) != 0) {
        return errno == ENOTTY || errno == EINVAL ? 1 : -errno;
    }
    if (sync_mode_of(&args) != UDMABUF_SYNC_MODE_WRITECOMBINE) {
        struct udmabuf_sync_args set = {
            (args.flags & UDMABUF_SYNC_DIR_MASK)
            | ((uint64_t)UDMABUF_SYNC_MODE_WRITECOMBINE
               << UDMABUF_SYNC_MODE_SHIFT),
            args.size, args.offset};
        if (pa_sys_ioctl(s->sys, s->fd_cached, UDMABUF_SET_SYNC, &set) != 0) {
            if (!refused(errno)) {
                return -errno;
            }
            snprintf(s->sync_mode_problem, sizeof(s->sync_mode_problem),
                     "the driver's SET_SYNC ioctl failed (%s)",
                     strerror(errno));
            return 0;
        }
        if (pa_sys_ioctl(s->sys, s->fd_cached, UDMABUF_GET_SYNC, &args)
                != 0) {
            return -errno;
        }
    }
    s->write_combine = sync_mode_of(&args) == UDMABUF_SYNC_MODE_WRITECOMBINE;
    if (!s->write_combine) {
        snprintf(s->sync_mode_problem, sizeof(s->sync_mode_problem),
                 "the driver's sync_mode reads %u after SET_SYNC set 2",
                 sync_mode_of(&args));
    }
    return 0;
}

/* The same through sysfs_dir/sync_mode: 0 with s->write_combine set, or
 * the problem in s; else -errno. */
static int
write_combine_by_sysfs(udmabuf_state *s, const char *sysfs_dir)
{
    char path[PATH_MAX], ignored[8];
    uint64_t mode;
    snprintf(path, sizeof(path), "%s/sync_mode", sysfs_dir);
    int rc = read_attr(s->sys, sysfs_dir, "sync_mode", 0, &mode, ignored,
                       sizeof(ignored));
    if (rc == -ENOENT) {
        snprintf(s->sync_mode_problem, sizeof(s->sync_mode_problem),
                 "%s is not there (a driver without sync_mode)", path);
        return 0;
    }
    if (rc == 0 && mode != UDMABUF_SYNC_MODE_WRITECOMBINE) {
        rc = pa_sys_write_text(s->sys, path, "2");
        if (refused(-rc)) {
            snprintf(s->sync_mode_problem, sizeof(s->sync_mode_problem),
                     "%s cannot be set to 2 (%s), and the driver answers "
                     "no ioctl to set it", path, strerror(-rc));
            return 0;
        }
        if (rc == 0) {
            rc = read_attr(s->sys, sysfs_dir, "sync_mode", 0, &mode, ignored,
                           sizeof(ignored));
        }
    }
    if (rc != 0) {
        return rc;
    }
    s->write_combine = mode == UDMABUF_SYNC_MODE_WRITECOMBINE;
    if (!s->write_combine) {
        snprintf(s->sync_mode_problem, sizeof(s->sync_mode_problem),
                 "%s reads %" PRIu64 " after 2 was written to it", path,
                 mode);
    }
    return 0;
}

/* Makes the driver map uncached blocks write-combined (see udmabuf.h):
 * 0, or -errno with the path that failed in err_path. */
static int
choose_write_combine(udmabuf_state *s, const char *device,
                     const char *sysfs_dir, char *err_path, size_t err_cap)
{
    int rc = s->use_ioctl ? write_combine_by_ioctl(s) : 1;
    if (rc < 0) {
        snprintf(err_path, err_cap, "%s", device);
    }
    else if (rc == 1 && (rc = write_combine_by_sysfs(s, sysfs_dir)) != 0) {
        snprintf(err_path, err_cap, "%s/sync_mode", sysfs_dir);
    }
    return rc;
}

int
pa_udmabuf_refuses_uncached(const pa_memory *m, char *why, size_t cap)
{
    const udmabuf_state *s = pa_memory_state(m);
    if (ub_cacheable_as(m, 0) != -ENOTSUP) {
        return 0;
    }
    snprintf(why, cap, "%s", s->sync_mode_problem);
    return 1;
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
    if ((rc = choose_write_combine(s, device, sysfs_dir, err_path, err_cap))
            != 0) {
        goto fail;
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

/* The simulated memory (see sim.h). */
#include "sim.h"
#include "window.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct sim_state {
    const pa_sys *sys;
    pa_heap *heap;
    uint64_t base;
    uint64_t size;
    int device_fd;          /* memory as the device sees it */
    int cache_fd;           /* the CPU's cached copy of it */
    uint8_t *device;        /* all of device_fd, for the device side */
    uint8_t *cache;         /* all of cache_fd, for cache maintenance */
} sim_state;

static sim_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

static int
sim_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
          int cacheable, pa_block *blk)
{
    sim_state *s = state_of(m);
    int rc = pa_window_alloc(s->sys, s->heap,
                             cacheable ? s->cache_fd : s->device_fd, s->base,
                             size, align, limit, blk);
    if (rc == 0) {
        blk->cacheable = (uint8_t)cacheable;
        blk->coherent = (uint8_t)!cacheable;
    }
    return rc;
}

static void
sim_free(pa_memory *m, pa_block *blk, int keep_va)
{
    pa_window_free(state_of(m)->sys, state_of(m)->heap, blk, keep_va);
}

/* Blocks too large to zero inline are zeroed by giving their pages back
 * to the kernel: that reads as zeros, and costs nothing for pages that
 * were never touched, as calloc's fresh pages cost numpy nothing. */
static int
zero_range(const pa_sys *sys, int fd, uint8_t *pool, uint64_t at,
           uint64_t len)
{
    if (len <= PA_ZERO_INLINE_BYTES) {
        memset(pool + at, 0, len);
        return 0;
    }
    return sys->fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          (off_t)at, (off_t)len) == 0 ? 0 : -errno;
}

/* An uncached block maps the device copy, so only that one is zeroed. */
static int
sim_zero(pa_memory *m, const pa_block *blk)
{
    sim_state *s = state_of(m);
    uint64_t at = blk->device_address - s->base;
    int rc = zero_range(s->sys, s->device_fd, s->device, at, blk->size);
    if (rc == 0 && blk->cacheable) {
        rc = zero_range(s->sys, s->cache_fd, s->cache, at, blk->size);
    }
    return rc;
}

static int
sim_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    sim_state *s = state_of(m);
    uint64_t at = blk->device_address - s->base + offset;
    memcpy(s->device + at, s->cache + at, len);
    return 0;
}

static int
sim_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
               uint64_t len)
{
    sim_state *s = state_of(m);
    uint64_t at = blk->device_address - s->base + offset;
    memcpy(s->cache + at, s->device + at, len);
    return 0;
}

/* A bus error unless [addr, addr + n) lies in one allocated block. */
static int
sim_check_range(sim_state *s, uint64_t addr, uint64_t n)
{
    uint64_t start, size;
    if (pa_heap_find(s->heap, addr, &start, &size) != 0
            || n > size - (addr - start)) {
        return -EFAULT;
    }
    return 0;
}

static int
sim_device_read(pa_memory *m, uint64_t addr, void *dst, uint64_t n)
{
    sim_state *s = state_of(m);
    int rc = sim_check_range(s, addr, n);
    if (rc == 0) {
        memcpy(dst, s->device + (addr - s->base), n);
    }
    return rc;
}

static int
sim_device_write(pa_memory *m, uint64_t addr, const void *src, uint64_t n)
{
    sim_state *s = state_of(m);
    int rc = sim_check_range(s, addr, n);
    if (rc == 0) {
        memcpy(s->device + (addr - s->base), src, n);
    }
    return rc;
}

static void
sim_stats(pa_memory *m, pa_stats *out)
{
    pa_window_stats(state_of(m)->heap, out);
}

static void
sim_destroy(sim_state *s)
{
    if (s->device != NULL) {
        s->sys->munmap(s->device, s->size);
    }
    if (s->cache != NULL) {
        s->sys->munmap(s->cache, s->size);
    }
    if (s->device_fd >= 0) {
        s->sys->close(s->device_fd);
    }
    if (s->cache_fd >= 0) {
        s->sys->close(s->cache_fd);
    }
    pa_heap_destroy(s->heap);
    free(s);
}

static void
sim_close(pa_memory *m)
{
    sim_destroy(state_of(m));
}

static const pa_backend_ops sim_ops = {
    .kind = "sim",
    .reuse_blocks = 1,
    .sync_calls_driver = 0,
    .private_heap = 1,
    .alloc = sim_alloc,
    .zero = sim_zero,
    .free = sim_free,
    .flush = sim_flush,
    .invalidate = sim_invalidate,
    .device_read = sim_device_read,
    .device_write = sim_device_write,
    .stats = sim_stats,
    .close = sim_close,
};

/* A sparse pool file of `size` bytes mapped shared, or -errno. */
static int
make_pool(const pa_sys *sys, const char *name, uint64_t size, int *fd,
          uint8_t **map)
{
    *fd = sys->memfd_create(name, MFD_CLOEXEC);
    if (*fd < 0) {
        return -errno;
    }
    if (sys->ftruncate(*fd, (off_t)size) != 0) {
        return -errno;
    }
    void *p = sys->mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd,
                        0);
    if (p == MAP_FAILED) {
        return pa_mmap_error(errno);
    }
    *map = p;
    return 0;
}

int
pa_sim_open(const pa_sys *sys, uint64_t base_address, uint64_t size,
            pa_memory **out)
{
    if (sys == NULL) {
        sys = &pa_sys_real;
    }
    uint64_t page = pa_page_size();
    if (size == 0 || size % page != 0 || base_address % page != 0
            || base_address + size < base_address
            || size > (uint64_t)INT64_MAX) {
        return -EINVAL;
    }
    sim_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->sys = sys;
    s->base = base_address;
    s->size = size;
    s->device_fd = s->cache_fd = -1;
    int rc = pa_heap_create(base_address, size, page, &s->heap);
    if (rc == 0) {
        rc = make_pool(sys, "pynq_alloc-sim-device", size, &s->device_fd,
                       &s->device);
    }
    if (rc == 0) {
        rc = make_pool(sys, "pynq_alloc-sim-cache", size, &s->cache_fd,
                       &s->cache);
    }
    if (rc == 0) {
        rc = pa_memory_create(&sim_ops, s, base_address, size, out);
    }
    if (rc != 0) {
        sim_destroy(s);
    }
    return rc;
}

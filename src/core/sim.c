/* The simulated memory (see sim.h): its pool, heap and backend operations;
 * the line model that flush, invalidate and device access go through is
 * sim_lines.c. */
#include "sim.h"
#include "sim_lines.h"
#include "window.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct sim_state {
    const pa_sys *sys;
    pa_heap *heap;
    uint64_t base;
    uint64_t size;
    int device_fd;          /* memory as the device sees it */
    int cache_fd;           /* the CPU's cached copy of it */
    uint8_t *device;        /* all of device_fd, for the device side */
    uint8_t *cache;         /* all of cache_fd, for cache maintenance */
    sim_lines lines;        /* the line model over the two */
    /* Every address at which this process maps the pool lies in
     * [maps_lo, maps_hi) (it only grows; atomics, read without a lock). */
    uintptr_t maps_lo, maps_hi;
} sim_state;

static sim_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

static sim_lines *
lines_of(const pa_memory *m)
{
    return &((sim_state *)pa_memory_state(m))->lines;
}

/* The pool offset of [offset, ...) of blk. */
static uint64_t
pool_offset(const sim_state *s, const pa_block *blk, uint64_t offset)
{
    return blk->device_address - s->base + offset;
}

/* [p, p + len) maps the pool: widen [maps_lo, maps_hi) to hold it. */
static void
note_mapping(sim_state *s, const void *p, uint64_t len)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + (uintptr_t)len;
    uintptr_t cur = __atomic_load_n(&s->maps_lo, __ATOMIC_RELAXED);
    while ((cur == 0 || lo < cur)
           && !__atomic_compare_exchange_n(&s->maps_lo, &cur, lo, 0,
                                           __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED)) {
    }
    cur = __atomic_load_n(&s->maps_hi, __ATOMIC_RELAXED);
    while (hi > cur
           && !__atomic_compare_exchange_n(&s->maps_hi, &cur, hi, 0,
                                           __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED)) {
    }
}

/* Whether [p, p + n) may be the pool seen through one of its mappings. */
static int
may_alias_pool(sim_state *s, const void *p, uint64_t n)
{
    uintptr_t lo = (uintptr_t)p;
    return lo < __atomic_load_n(&s->maps_hi, __ATOMIC_RELAXED)
           && lo + n > __atomic_load_n(&s->maps_lo, __ATOMIC_RELAXED);
}

/* ---- backend operations -------------------------------------------- */

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
        note_mapping(s, blk->map_base, blk->map_length);
        rc = sim_lines_allocated(&s->lines, pool_offset(s, blk, 0), size,
                                 cacheable, blk->cpu);
        if (rc != 0) {
            pa_window_free(s->sys, s->heap, blk, 0);
        }
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
        /* Reading is cheaper than writing, and a buffer given back
         * unwritten (or a line in, for one that was) is still zero: a
         * block is zero if its first 16 bytes are and each byte equals
         * the one 16 bytes on. */
        uint8_t *p = pool + at;
        static const uint8_t zeros[16];
        if (len < 16 || memcmp(p, zeros, 16) != 0
                || memcmp(p, p + 16, len - 16) != 0) {
            memset(p, 0, len);
        }
        return 0;
    }
    return sys->fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          (off_t)at, (off_t)len) == 0 ? 0 : -errno;
}

/* An uncached block maps the device copy, so only that one is zeroed.  A
 * cacheable one starts clean: both copies zero, nothing pending. */
static int
sim_zero(pa_memory *m, const pa_block *blk)
{
    sim_state *s = state_of(m);
    uint64_t at = pool_offset(s, blk, 0);
    int rc = zero_range(s->sys, s->device_fd, s->device, at, blk->size);
    if (rc == 0 && blk->cacheable) {
        rc = zero_range(s->sys, s->cache_fd, s->cache, at, blk->size);
    }
    if (rc == 0 && blk->cacheable) {
        sim_lines_zeroed(&s->lines, at, blk->size);
    }
    return rc;
}

static int
sim_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    sim_state *s = state_of(m);
    sim_lines_flush(&s->lines, blk, pool_offset(s, blk, offset), len);
    return 0;
}

static int
sim_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
               uint64_t len)
{
    sim_state *s = state_of(m);
    sim_lines_invalidate(&s->lines, blk, pool_offset(s, blk, offset), len);
    return 0;
}

/* The block that holds all of [addr, addr + n), or -EFAULT (a bus error). */
static int
find_block(sim_state *s, uint64_t addr, uint64_t n, pa_block *blk)
{
    uint64_t start, size;
    if (pa_heap_find(s->heap, addr, &start, &size) != 0
            || n > size - (addr - start)) {
        return -EFAULT;
    }
    blk->device_address = start;
    blk->size = size;
    return 0;
}

/* The device reads [addr, addr + n) into out, or writes it from in: a
 * bus error unless the range lies in one block. */
static int
device_io(pa_memory *m, uint64_t addr, uint64_t n, void *out, const void *in)
{
    sim_state *s = state_of(m);
    pa_block blk;
    int rc = find_block(s, addr, n, &blk);
    if (rc == 0) {
        sim_lines_device_io(&s->lines, &blk, addr - s->base, n, out, in);
    }
    return rc;
}

static int
sim_device_read(pa_memory *m, uint64_t addr, void *dst, uint64_t n)
{
    return device_io(m, addr, n, dst, NULL);
}

/* A source in the pool itself (a view of a buffer) is copied as memmove
 * copies: read whole before anything is written.  Comparing addresses
 * cannot tell, as the source's mapping may alias the pool at another
 * address than the destination's, so such a source goes through a copy of
 * its own; any other costs two comparisons. */
static int
sim_device_write(pa_memory *m, uint64_t addr, const void *src, uint64_t n)
{
    sim_state *s = state_of(m);
    if (n == 0 || !may_alias_pool(s, src, n)) {
        return device_io(m, addr, n, NULL, src);
    }
    void *bounce = malloc(n);
    if (bounce == NULL) {
        return -ENOMEM;
    }
    memcpy(bounce, src, n);
    int rc = device_io(m, addr, n, NULL, bounce);
    free(bounce);
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
    sim_lines_destroy(&s->lines);
    uint8_t *maps[] = {s->device, s->cache};
    int fds[] = {s->device_fd, s->cache_fd};
    for (size_t i = 0; i < 2; i++) {
        if (maps[i] != NULL) {
            s->sys->munmap(maps[i], s->size);
        }
        if (fds[i] >= 0) {
            s->sys->close(fds[i]);
        }
    }
    pa_heap_destroy(s->heap);
    free(s);
}

static void
sim_close(pa_memory *m)
{
    sim_destroy(state_of(m));
}

/* ---- coherence tracking (pa_coherence_ops) ------------------------- */

static int
sim_coherence_mode(const pa_memory *m)
{
    return lines_of(m)->mode;
}

static uint64_t
sim_line_size(const pa_memory *m)
{
    return lines_of(m)->line;
}

static int
sim_has_device_writes(pa_memory *m, const pa_block *blk)
{
    return sim_lines_has_device_writes(lines_of(m), blk);
}

static uint64_t
sim_check(pa_memory *m, const pa_block *blk, int kind, uint64_t from)
{
    return sim_lines_check(lines_of(m), blk, kind, from);
}

static const pa_coherence_ops sim_coherence = {
    .mode = sim_coherence_mode,
    .line_size = sim_line_size,
    .has_device_writes = sim_has_device_writes,
    .check = sim_check,
};

/* With tracking on, zeroing is also how a cacheable block starts clean in
 * the model, so every cacheable block is zeroed. */
#define SIM_OPS(tracked) { \
    .kind = "sim", \
    .reuse_blocks = 1, \
    .sync_calls_driver = 0, \
    .private_heap = 1, \
    .always_zero_cacheable = (tracked), \
    .alloc = sim_alloc, \
    .zero = sim_zero, \
    .free = sim_free, \
    .flush = sim_flush, \
    .invalidate = sim_invalidate, \
    .device_read = sim_device_read, \
    .device_write = sim_device_write, \
    .stats = sim_stats, \
    .close = sim_close, \
    /* The model's lock is shared with forked children: a child never \
     * inherits it held but by a thread that will give it back. */ \
    .fork_lock = NULL, \
    .coherence = &sim_coherence, \
}
static const pa_backend_ops sim_ops = SIM_OPS(0);
static const pa_backend_ops sim_tracked_ops = SIM_OPS(1);

const char *
pa_sim_invalid_option(uint64_t base_address, uint64_t size,
                      const pa_sim_options *o)
{
    uint64_t page = pa_page_size();
    if (o->line_size < PA_SIM_LINE_MIN || o->line_size > page
            || (o->line_size & (o->line_size - 1)) != 0) {
        return "line_size";
    }
    if (o->coherence < PA_COHERENCE_OFF || o->coherence > PA_COHERENCE_RAISE) {
        return "coherence";
    }
    if (o->watch_stores != 0
            && (o->watch_stores != 1 || o->coherence == PA_COHERENCE_OFF)) {
        return "watch_stores";
    }
    if (size == 0 || size % page != 0 || size > (uint64_t)INT64_MAX) {
        return "size";
    }
    if (base_address % page != 0 || base_address + size < base_address) {
        return "base_address";
    }
    return NULL;
}

int
pa_sim_open(const pa_sys *sys, uint64_t base_address, uint64_t size,
            const pa_sim_options *options, pa_memory **out)
{
    static const pa_sim_options defaults = {
        .line_size = PA_SIM_LINE_DEFAULT, .coherence = PA_COHERENCE_WARN};
    pa_sim_options opt = options != NULL ? *options : defaults;
    if (opt.line_size == 0) {
        opt.line_size = defaults.line_size;
    }
    if (sys == NULL) {
        sys = &pa_sys_real;
    }
    uint64_t page = pa_page_size();
    if (pa_sim_invalid_option(base_address, size, &opt) != NULL) {
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
        rc = sim_pool_map(sys, "pynq_alloc-sim-device", size, &s->device_fd,
                          &s->device);
    }
    if (rc == 0) {
        rc = sim_pool_map(sys, "pynq_alloc-sim-cache", size, &s->cache_fd,
                          &s->cache);
    }
    if (rc == 0) {
        note_mapping(s, s->device, size);
        note_mapping(s, s->cache, size);
        rc = sim_lines_init(&s->lines, sys, base_address, size, s->device,
                            s->cache, opt.line_size, opt.coherence,
                            opt.watch_stores);
    }
    if (rc == 0) {
        rc = pa_memory_create(sim_lines_tracking(&s->lines)
                              ? &sim_tracked_ops : &sim_ops, s,
                              base_address, size, out);
    }
    if (rc != 0) {
        sim_destroy(s);
    }
    return rc;
}

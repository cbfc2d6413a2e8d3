/* The simulated memory (see sim.h). */
#include "sim.h"
#include "window.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
    /* The coherence model (see sim.h), NULL/-1 with tracking off. */
    int coherence;
    uint64_t line;          /* bytes per cache line */
    int shadow_fd;
    uint8_t *shadow;        /* what the CPU last synced of lines that the
                               device has written since (sparse) */
    uint64_t *written;      /* a bit per line: the device wrote it since
                               the CPU last synced it */
    uint64_t *cached_pages; /* a bit per page: in a cacheable block */
    pthread_mutex_t lock;   /* the model's bits and copies */
    int has_lock;
} sim_state;

/* Sync work is done a page at a time, so that clean pages cost one
 * comparison. */
#define CHUNK 4096u

static sim_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

static int
tracking(const sim_state *s)
{
    return s->coherence != PA_COHERENCE_OFF;
}

/* ---- bits ---------------------------------------------------------- */

static int
bit(const uint64_t *bits, uint64_t i)
{
    return (int)((bits[i / 64] >> (i % 64)) & 1u);
}

static void
set_bits(uint64_t *bits, uint64_t first, uint64_t count, int on)
{
    for (uint64_t i = first, end = first + count, n; i < end; i += n) {
        /* The bits of [i, end) that lie in word i / 64. */
        n = 64 - i % 64 < end - i ? 64 - i % 64 : end - i;
        uint64_t mask = (n == 64 ? ~(uint64_t)0
                                 : (((uint64_t)1 << n) - 1)) << (i % 64);
        bits[i / 64] = on ? bits[i / 64] | mask : bits[i / 64] & ~mask;
    }
}

static int
any_bit(const uint64_t *bits, uint64_t first, uint64_t count)
{
    for (uint64_t i = first; i < first + count; i++) {
        if (i % 64 == 0 && first + count - i >= 64) {
            if (bits[i / 64] != 0) {
                return 1;
            }
            i += 63;
        }
        else if (bit(bits, i)) {
            return 1;
        }
    }
    return 0;
}

/* Records a hazard at pool offsets [lo, hi) of blk. */
static void
note(int kind, const sim_state *s, const pa_block *blk, uint64_t lo,
     uint64_t hi)
{
    pa_hazard_note(kind, blk->device_address, s->base + lo, s->base + hi);
}

/* ---- the line model (all with s->lock held) ---------------------------
 * Offsets are into the pool.  A line is dirty when the CPU's copy differs
 * from what the CPU last synced: the device's copy, unless the device has
 * written the line since, when the shadow keeps it. */

static const uint8_t *
synced(const sim_state *s, uint64_t at)
{
    return bit(s->written, at / s->line) ? s->shadow + at : s->device + at;
}

static int
line_dirty(const sim_state *s, uint64_t at)
{
    return memcmp(s->cache + at, synced(s, at), s->line) != 0;
}

/* Whether [lo, hi) may hold a dirty line or a device-written one; no
 * means the two copies agree and nothing is pending. */
static int
chunk_busy(const sim_state *s, uint64_t lo, uint64_t hi)
{
    return any_bit(s->written, lo / s->line, (hi - lo) / s->line)
           || memcmp(s->cache + lo, s->device + lo, hi - lo) != 0;
}

static uint64_t
line_down(const sim_state *s, uint64_t at)
{
    return at & ~(s->line - 1);
}

static uint64_t
line_up(const sim_state *s, uint64_t at)
{
    return (at + s->line - 1) & ~(s->line - 1);
}

/* The end of the chunk that holds `at`, or hi if sooner. */
static uint64_t
chunk_end(uint64_t at, uint64_t hi)
{
    uint64_t end = (at & ~(uint64_t)(CHUNK - 1)) + CHUNK;
    return end < hi ? end : hi;
}

/* The plain model's copy of a span: only the chunks that differ are
 * written, which changes nothing in the result and spares a warm flush
 * its writes. */
static void
copy_changed(uint8_t *dst, const uint8_t *src, uint64_t at, uint64_t len)
{
    for (uint64_t end, hi = at + len; at < hi; at = end) {
        end = chunk_end(at, hi);
        if (memcmp(dst + at, src + at, end - at) != 0) {
            memcpy(dst + at, src + at, end - at);
        }
    }
}

/* Writes one dirty line back to the device (dc cvac). */
static void
write_back_line(sim_state *s, const pa_block *blk, uint64_t at)
{
    if (!line_dirty(s, at)) {
        return;
    }
    uint64_t i = at / s->line;
    if (bit(s->written, i)) {
        note(PA_HAZARD_WRITEBACK_CLOBBERED, s, blk, at, at + s->line);
        set_bits(s->written, i, 1, 0);
    }
    memcpy(s->device + at, s->cache + at, s->line);
}

/* flush: the dirty lines of [lo, hi), whole lines. */
static void
write_back(sim_state *s, const pa_block *blk, uint64_t lo, uint64_t hi)
{
    for (uint64_t end; lo < hi; lo = end) {
        end = chunk_end(lo, hi);
        if (!any_bit(s->written, lo / s->line, (end - lo) / s->line)) {
            /* Here the device's copy is the synced one: copying clean
             * lines too changes nothing. */
            if (memcmp(s->cache + lo, s->device + lo, end - lo) != 0) {
                memcpy(s->device + lo, s->cache + lo, end - lo);
            }
            continue;
        }
        for (uint64_t at = lo; at < end; at += s->line) {
            write_back_line(s, blk, at);
        }
    }
}

/* invalidate: discards and reloads the lines of [lo, hi), whole lines,
 * each of them one the span covers entirely. */
static void
discard(sim_state *s, const pa_block *blk, uint64_t lo, uint64_t hi)
{
    for (uint64_t end; lo < hi; lo = end) {
        end = chunk_end(lo, hi);
        if (!chunk_busy(s, lo, end)) {
            continue;
        }
        for (uint64_t at = lo; at < end; at += s->line) {
            if (line_dirty(s, at)) {
                note(PA_HAZARD_DISCARDED, s, blk, at, at + s->line);
            }
            memcpy(s->cache + at, s->device + at, s->line);
        }
        set_bits(s->written, lo / s->line, (end - lo) / s->line, 0);
    }
}

/* The device touches [lo, hi): reports dirty lines as `kind`, clipped to
 * the bytes touched; for a write, keeps what the CPU last synced of each
 * line the device writes first. */
static void
device_access(sim_state *s, const pa_block *blk, uint64_t lo, uint64_t hi,
              int kind, int writes)
{
    for (uint64_t at = line_down(s, lo), end; at < hi; at = end) {
        end = chunk_end(at, line_up(s, hi));
        if (!chunk_busy(s, at, end) && !writes) {
            continue;
        }
        for (uint64_t line = at; line < end; line += s->line) {
            uint64_t i = line / s->line;
            if (line_dirty(s, line)) {
                uint64_t a = line > lo ? line : lo;
                uint64_t b = line + s->line < hi ? line + s->line : hi;
                note(kind, s, blk, a, b);
            }
            if (writes && !bit(s->written, i)) {
                memcpy(s->shadow + line, s->device + line, s->line);
                set_bits(s->written, i, 1, 1);
            }
        }
    }
}

static int
in_cacheable_block(const sim_state *s, uint64_t at)
{
    return bit(s->cached_pages, at / pa_page_size());
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
        if (tracking(s)) {
            uint64_t page = pa_page_size();
            pthread_mutex_lock(&s->lock);
            set_bits(s->cached_pages, (blk->device_address - s->base) / page,
                     size / page, cacheable);
            pthread_mutex_unlock(&s->lock);
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
    uint64_t at = blk->device_address - s->base;
    int rc = zero_range(s->sys, s->device_fd, s->device, at, blk->size);
    if (rc == 0 && blk->cacheable) {
        rc = zero_range(s->sys, s->cache_fd, s->cache, at, blk->size);
    }
    if (rc == 0 && blk->cacheable && tracking(s)) {
        pthread_mutex_lock(&s->lock);
        set_bits(s->written, at / s->line, blk->size / s->line, 0);
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

static int
sim_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    sim_state *s = state_of(m);
    uint64_t at = blk->device_address - s->base + offset;
    if (!tracking(s)) {
        copy_changed(s->device, s->cache, at, len);
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    write_back(s, blk, line_down(s, at), line_up(s, at + len));
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
sim_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
               uint64_t len)
{
    sim_state *s = state_of(m);
    uint64_t at = blk->device_address - s->base + offset;
    if (!tracking(s)) {
        copy_changed(s->cache, s->device, at, len);
        return 0;
    }
    uint64_t lo = line_down(s, at), hi = line_up(s, at + len);
    pthread_mutex_lock(&s->lock);
    /* Lines the span covers only in part are cleaned first (dc civac):
     * the CPU's bytes outside the span must survive. */
    uint64_t last = hi - s->line;
    if (lo != at) {
        write_back_line(s, blk, lo);
    }
    if (hi != at + len && !(last == lo && lo != at)) {
        write_back_line(s, blk, last);
    }
    discard(s, blk, lo, hi);
    pthread_mutex_unlock(&s->lock);
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
 * bus error unless the range lies in one block; hazards of a cacheable
 * block's lines are recorded first. */
static int
device_io(pa_memory *m, uint64_t addr, uint64_t n, void *out, const void *in)
{
    sim_state *s = state_of(m);
    pa_block blk;
    int rc = find_block(s, addr, n, &blk);
    if (rc != 0) {
        return rc;
    }
    uint64_t at = addr - s->base;
    pthread_mutex_lock(&s->lock);
    if (n > 0 && tracking(s) && in_cacheable_block(s, at)) {
        device_access(s, &blk, at, at + n,
                      in != NULL ? PA_HAZARD_WRITE_UNDER_DIRTY
                                 : PA_HAZARD_UNFLUSHED_READ, in != NULL);
    }
    if (in != NULL) {
        memcpy(s->device + at, in, n);
    }
    else {
        memcpy(out, s->device + at, n);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
sim_device_read(pa_memory *m, uint64_t addr, void *dst, uint64_t n)
{
    return device_io(m, addr, n, dst, NULL);
}

static int
sim_device_write(pa_memory *m, uint64_t addr, const void *src, uint64_t n)
{
    return device_io(m, addr, n, NULL, src);
}

/* Whether a hazard of `kind` at pool offset lo would be kept, not lost. */
static int
note_fits(int kind, const sim_state *s, const pa_block *blk, uint64_t lo)
{
    return pa_hazard_fits(kind, blk->device_address, s->base + lo);
}

static int
sim_has_device_writes(pa_memory *m, const pa_block *blk)
{
    sim_state *s = state_of(m);
    pthread_mutex_lock(&s->lock);
    int any = any_bit(s->written, (blk->device_address - s->base) / s->line,
                      blk->size / s->line);
    pthread_mutex_unlock(&s->lock);
    return any;
}

static uint64_t
sim_check(pa_memory *m, const pa_block *blk, int kind, uint64_t from)
{
    sim_state *s = state_of(m);
    uint64_t lo = blk->device_address - s->base, hi = lo + blk->size;
    uint64_t stop = hi;
    pthread_mutex_lock(&s->lock);
    for (uint64_t at = line_down(s, lo + from), end; at < stop; at = end) {
        end = chunk_end(at, hi);
        int busy = kind == PA_HAZARD_UNFLUSHED
                   ? chunk_busy(s, at, end)
                   : any_bit(s->written, at / s->line, (end - at) / s->line);
        if (!busy) {
            continue;
        }
        for (uint64_t line = at; line < end; line += s->line) {
            int found = kind == PA_HAZARD_UNFLUSHED
                        ? line_dirty(s, line)
                        : bit(s->written, line / s->line);
            if (found && !note_fits(kind, s, blk, line)) {
                stop = line;
                break;
            }
            if (found) {
                note(kind, s, blk, line, line + s->line);
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return stop - lo;
}

static void
sim_stats(pa_memory *m, pa_stats *out)
{
    pa_window_stats(state_of(m)->heap, out);
}

/* Bytes of a bitmap of n bits, whole words. */
static size_t
bitmap_bytes(uint64_t n)
{
    return (size_t)((n + 63) / 64 * sizeof(uint64_t));
}

/* A bitmap of n bits, all clear, whose pages exist only once touched (a
 * terabyte pool has gigabytes of them). */
static uint64_t *
new_bitmap(const pa_sys *sys, uint64_t n)
{
    void *p = sys->mmap(NULL, bitmap_bytes(n), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void
sim_destroy(sim_state *s)
{
    uint8_t *maps[] = {s->device, s->cache, s->shadow};
    int fds[] = {s->device_fd, s->cache_fd, s->shadow_fd};
    for (size_t i = 0; i < 3; i++) {
        if (maps[i] != NULL) {
            s->sys->munmap(maps[i], s->size);
        }
        if (fds[i] >= 0) {
            s->sys->close(fds[i]);
        }
    }
    if (s->has_lock) {
        pthread_mutex_destroy(&s->lock);
    }
    if (s->written != NULL) {
        s->sys->munmap(s->written, bitmap_bytes(s->size / s->line));
    }
    if (s->cached_pages != NULL) {
        s->sys->munmap(s->cached_pages, bitmap_bytes(s->size / pa_page_size()));
    }
    pa_heap_destroy(s->heap);
    free(s);
}

static void
sim_close(pa_memory *m)
{
    sim_destroy(state_of(m));
}

static pthread_mutex_t *
sim_fork_lock(pa_memory *m)
{
    return &state_of(m)->lock;
}

static int
sim_coherence_mode(const pa_memory *m)
{
    return ((const sim_state *)pa_memory_state(m))->coherence;
}

static uint64_t
sim_line_size(const pa_memory *m)
{
    return ((const sim_state *)pa_memory_state(m))->line;
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
    .fork_lock = (tracked) ? sim_fork_lock : NULL, \
    .coherence = &sim_coherence, \
}
static const pa_backend_ops sim_ops = SIM_OPS(0);
static const pa_backend_ops sim_tracked_ops = SIM_OPS(1);

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

static int
valid_options(const pa_sim_options *o, uint64_t page)
{
    return o->line_size >= 16 && o->line_size <= page
           && (o->line_size & (o->line_size - 1)) == 0
           && o->coherence >= PA_COHERENCE_OFF
           && o->coherence <= PA_COHERENCE_RAISE;
}

/* The model's bitmaps, shadow pool and lock. */
static int
start_model(sim_state *s, uint64_t page)
{
    uint64_t lines = s->size / s->line, pages = s->size / page;
    s->written = new_bitmap(s->sys, lines);
    if (s->written == NULL) {
        return pa_mmap_error(errno);
    }
    s->cached_pages = new_bitmap(s->sys, pages);
    if (s->cached_pages == NULL) {
        return pa_mmap_error(errno);
    }
    int rc = pthread_mutex_init(&s->lock, NULL);
    if (rc != 0) {
        return -rc;
    }
    s->has_lock = 1;
    return make_pool(s->sys, "pynq_alloc-sim-shadow", s->size, &s->shadow_fd,
                     &s->shadow);
}

int
pa_sim_open(const pa_sys *sys, uint64_t base_address, uint64_t size,
            const pa_sim_options *options, pa_memory **out)
{
    static const pa_sim_options defaults = {
        .line_size = 64, .coherence = PA_COHERENCE_WARN};
    pa_sim_options opt = options != NULL ? *options : defaults;
    if (opt.line_size == 0) {
        opt.line_size = defaults.line_size;
    }
    if (sys == NULL) {
        sys = &pa_sys_real;
    }
    uint64_t page = pa_page_size();
    if (size == 0 || size % page != 0 || base_address % page != 0
            || base_address + size < base_address
            || size > (uint64_t)INT64_MAX || !valid_options(&opt, page)) {
        return -EINVAL;
    }
    sim_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->sys = sys;
    s->base = base_address;
    s->size = size;
    s->device_fd = s->cache_fd = s->shadow_fd = -1;
    s->coherence = opt.coherence;
    s->line = opt.line_size;
    int rc = pa_heap_create(base_address, size, page, &s->heap);
    if (rc == 0) {
        rc = make_pool(sys, "pynq_alloc-sim-device", size, &s->device_fd,
                       &s->device);
    }
    if (rc == 0) {
        rc = make_pool(sys, "pynq_alloc-sim-cache", size, &s->cache_fd,
                       &s->cache);
    }
    if (rc == 0 && tracking(s)) {
        rc = start_model(s, page);
    }
    if (rc == 0) {
        rc = pa_memory_create(tracking(s) ? &sim_tracked_ops : &sim_ops, s,
                              base_address, size, out);
    }
    if (rc != 0) {
        sim_destroy(s);
    }
    return rc;
}

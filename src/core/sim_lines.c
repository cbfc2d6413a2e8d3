/*
 * The sim's line model (see sim_lines.h and sim.h).
 *
 * A line is dirty when the CPU's copy differs from what the CPU last
 * synced: the device's copy, unless the device has written the line since,
 * when the shadow keeps it.  Sync work is done a chunk (a page) at a time,
 * so that a chunk where the copies agree and no line is device-written
 * costs one comparison: that is what keeps flush and invalidate of clean
 * buffers as cheap as a memcmp.
 *
 * The device-written lines are two bitmaps: a bit per page says whether
 * the bits of its lines mean anything, and off says that none of them is
 * device-written.  A new block clears its pages' bits and a release scans
 * them, 64 pages a word, however many lines the block has; a page's line
 * bits are cleared when the device first writes one of its lines.  So a
 * cacheable block costs the model a bit per page until it is used, not a
 * bit per line.
 *
 * With watch_stores, the CPU's stores are seen a page at a time
 * (sim_stores.h) and kept as a bit per page, `stored`: the CPU stored
 * somewhere in the page and no sync touched it since.  Where bytes differ
 * the lines say more, so a page speaks only when none of its lines is
 * dirty (a store of the value already there), and only where it is sure:
 * when what happens covers every line of the page, so that the store,
 * wherever it was, is concerned.  A sync of part of a page forgets the
 * page's store, since it may have been in the part synced.  So a correct
 * program is never reported, and a store that changes nothing is reported
 * where its page is wholly read, written, discarded or checked.
 */
#include "sim_lines.h"
#include "pa_assert.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK 4096u

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
        /* The bits of [i, end) that lie in word i / 64, or whole words. */
        n = 64 - i % 64 < end - i ? 64 - i % 64 : end - i;
        if (n == 64 && end - i >= 128) {
            n = (end - i) / 64 * 64;
            memset(&bits[i / 64], on ? 0xFF : 0, (size_t)(n / 64 * 8));
            continue;
        }
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

/* The first set bit of [from, to), or to if there is none. */
static uint64_t
next_bit(const uint64_t *bits, uint64_t from, uint64_t to)
{
    while (from < to) {
        uint64_t word = bits[from / 64] >> (from % 64);
        if (word != 0) {
            uint64_t at = from + (uint64_t)__builtin_ctzll(word);
            return at < to ? at : to;
        }
        from = (from / 64 + 1) * 64;
        /* Clear words eight at a time: most of a large block's pages. */
        for (const uint64_t *w = &bits[from / 64];
             from + 512 <= to && (w[0] | w[1] | w[2] | w[3] | w[4] | w[5]
                                  | w[6] | w[7]) == 0; w += 8) {
            from += 512;
        }
    }
    return to;
}

/* Bytes of a bitmap of n bits, whole words. */
static size_t
bitmap_bytes(uint64_t n)
{
    return (size_t)((n + 63) / 64 * sizeof(uint64_t));
}

/* len bytes of zeros shared with forked children, whose pages exist only
 * once touched (a terabyte pool has gigabytes of bitmaps). */
static void *
new_shared(const pa_sys *sys, size_t len)
{
    void *p = sys->mmap(NULL, len, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A bitmap of n bits, all clear. */
static uint64_t *
new_bitmap(const pa_sys *sys, uint64_t n)
{
    return new_shared(sys, bitmap_bytes(n));
}

/* ---- the lock ------------------------------------------------------ */

void
sim_lines_lock(sim_lines *l)
{
    int rc = pthread_mutex_lock(l->lock);
    if (rc == EOWNERDEAD) {
        /* A process died holding it, mid-way through an update of the
         * bitmaps at worst: they stay usable as they are. */
        rc = pthread_mutex_consistent(l->lock);
    }
    PA_ASSERT(rc == 0);
    (void)rc;
}

void
sim_lines_unlock(sim_lines *l)
{
    pthread_mutex_unlock(l->lock);
}

/* A process-shared, robust mutex in shared memory, or -errno. */
static int
new_shared_lock(const pa_sys *sys, pthread_mutex_t **out)
{
    pthread_mutex_t *lock = new_shared(sys, sizeof(*lock));
    if (lock == NULL) {
        return pa_mmap_error(errno);
    }
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        if (rc == 0) {
            rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        }
        if (rc == 0) {
            rc = pthread_mutex_init(lock, &attr);
        }
        pthread_mutexattr_destroy(&attr);
    }
    if (rc != 0) {
        sys->munmap(lock, sizeof(*lock));
        return -rc;
    }
    *out = lock;
    return 0;
}

/* ---- hazards ------------------------------------------------------- */

/* Records a hazard over pool offsets [lo, hi) of blk. */
static void
note(int kind, const sim_lines *l, const pa_block *blk, uint64_t lo,
     uint64_t hi)
{
    if (!sim_lines_tracking(l)) {
        return;                     /* the plain model reports nothing */
    }
    pa_hazard_note(kind, blk->device_address, l->base + lo, l->base + hi);
}

/* Whether a hazard of `kind` at pool offset lo would be kept, not lost. */
static int
note_fits(int kind, const sim_lines *l, const pa_block *blk, uint64_t lo)
{
    return pa_hazard_fits(kind, blk->device_address, l->base + lo);
}

/* ---- device-written lines (with l->lock held) ---------------------- */

static int
line_written(const sim_lines *l, uint64_t line)
{
    return bit(l->written_pages, line / l->lines_per_page)
           && bit(l->written, line);
}

static void
mark_written(sim_lines *l, uint64_t line)
{
    uint64_t page = line / l->lines_per_page, per = l->lines_per_page;
    if (!bit(l->written_pages, page)) {
        set_bits(l->written, page * per, per, 0);   /* stale till now */
        set_bits(l->written_pages, page, 1, 1);
    }
    set_bits(l->written, line, 1, 1);
}

/* Clears lines [lo, hi) bit by bit, in pages whose bits mean anything. */
static void
clear_lines(sim_lines *l, uint64_t lo, uint64_t hi)
{
    for (uint64_t end; lo < hi; lo = end) {
        uint64_t page = lo / l->lines_per_page;
        end = (page + 1) * l->lines_per_page;
        end = end < hi ? end : hi;
        if (bit(l->written_pages, page)) {
            set_bits(l->written, lo, end - lo, 0);
        }
    }
}

/* Lines [first, first + count) are not device-written: whole pages by
 * their page bits alone. */
static void
clear_written(sim_lines *l, uint64_t first, uint64_t count)
{
    uint64_t per = l->lines_per_page, end = first + count;
    uint64_t p0 = (first + per - 1) / per, p1 = end / per;
    if (p0 >= p1) {
        clear_lines(l, first, end);
        return;
    }
    clear_lines(l, first, p0 * per);
    set_bits(l->written_pages, p0, p1 - p0, 0);
    clear_lines(l, p1 * per, end);
}

/* Whether any of lines [first, first + count) is device-written: only
 * the pages whose bits mean anything are looked at. */
static int
any_written(const sim_lines *l, uint64_t first, uint64_t count)
{
    uint64_t per = l->lines_per_page, end = first + count;
    uint64_t last = (end + per - 1) / per;
    for (uint64_t page = next_bit(l->written_pages, first / per, last);
         page < last; page = next_bit(l->written_pages, page + 1, last)) {
        uint64_t lo = page * per > first ? page * per : first;
        uint64_t hi = (page + 1) * per < end ? (page + 1) * per : end;
        if (any_bit(l->written, lo, hi - lo)) {
            return 1;
        }
    }
    return 0;
}

/* ---- stores seen (watch_stores; all with l->lock held) ------------- */

static int
watching(const sim_lines *l)
{
    return l->stored != NULL && sim_stores_here(&l->stores);
}

static uint64_t
page_down(uint64_t at)
{
    return at & ~(pa_page_size() - 1);
}

static uint64_t
page_up(uint64_t at)
{
    return (at + pa_page_size() - 1) & ~(pa_page_size() - 1);
}

typedef struct taking {
    sim_lines *l;
    uint64_t at;            /* pool offset of the range taken */
} taking;

static void
mark_stored(void *arg, uint64_t lo, uint64_t hi)
{
    taking *t = arg;
    uint64_t page = pa_page_size();
    set_bits(t->l->stored, (t->at + lo) / page, (hi - lo) / page, 1);
}

/* The CPU's stores to the pages of [lo, hi) (pool offsets in blk), seen
 * since they were last taken, go into `stored`, or are forgotten (keep
 * 0). */
static void
take_stores(sim_lines *l, const pa_block *blk, uint64_t lo, uint64_t hi,
            int keep)
{
    if (!watching(l) || lo >= hi) {
        return;
    }
    uint64_t start = blk->device_address - l->base;
    uintptr_t cpu = l->windows[start / pa_page_size()];
    if (cpu == 0) {
        return;             /* mapped before watching, or by another */
    }
    lo = page_down(lo);
    hi = page_up(hi);
    PA_ASSERT(lo >= start && hi <= start + blk->size);
    taking t = {l, lo};
    /* A scan that fails (no memory for page tables) only loses sight of
     * stores: nothing is reported that did not happen. */
    void *at = (void *)(cpu + (uintptr_t)(lo - start));
    (void)sim_stores_take(&l->stores, at, hi - lo,
                          keep ? mark_stored : NULL, &t);
}

static int line_dirty(const sim_lines *l, uint64_t at);
static uint64_t line_down(const sim_lines *l, uint64_t at);
static uint64_t line_up(const sim_lines *l, uint64_t at);

/* Whether the CPU stored in page p (its index in the pool) and changed no
 * byte of it: its store is somewhere in the page, and nothing says where. */
static int
silently_stored(const sim_lines *l, uint64_t p)
{
    if (l->stored == NULL || !bit(l->stored, p)) {
        return 0;
    }
    uint64_t page = pa_page_size();
    for (uint64_t at = p * page; at < (p + 1) * page; at += l->line) {
        if (line_dirty(l, at)) {
            return 0;
        }
    }
    return 1;
}

/* Whether every line of page p was written by the device since synced. */
static int
page_written(const sim_lines *l, uint64_t p)
{
    for (uint64_t i = p * l->lines_per_page;
         i < (p + 1) * l->lines_per_page; i++) {
        if (!line_written(l, i)) {
            return 0;
        }
    }
    return 1;
}

/* A sync of the lines [lo, hi) meets the stored pages there: those whose
 * every line lies in [sure_lo, sure_hi) and that changed no byte are
 * reported as `kind` (if kind is not 0 and the page passes `also`);
 * every page touched forgets its store, synced or not. */
static void
sync_stored(sim_lines *l, const pa_block *blk, uint64_t lo, uint64_t hi,
            uint64_t sure_lo, uint64_t sure_hi, int kind,
            int (*also)(const sim_lines *l, uint64_t p))
{
    if (l->stored == NULL || lo >= hi) {
        return;
    }
    uint64_t page = pa_page_size();
    take_stores(l, blk, lo, hi, 1);
    for (uint64_t p = next_bit(l->stored, lo / page, page_up(hi) / page);
         p < page_up(hi) / page;
         p = next_bit(l->stored, p + 1, page_up(hi) / page)) {
        if (kind != 0 && p * page >= sure_lo && (p + 1) * page <= sure_hi
                && silently_stored(l, p) && (also == NULL || also(l, p))) {
            note(kind, l, blk, p * page, (p + 1) * page);
        }
        set_bits(l->stored, p, 1, 0);
    }
}

/* The device touches bytes [lo, hi): the stored pages of which it touches
 * every line, and that changed no byte, are reported as `kind`. */
static void
device_meets_stored(sim_lines *l, const pa_block *blk, uint64_t lo,
                    uint64_t hi, int kind)
{
    if (l->stored == NULL) {
        return;
    }
    uint64_t page = pa_page_size();
    take_stores(l, blk, lo, hi, 1);
    uint64_t first = page_down(lo) / page, last = page_up(hi) / page;
    for (uint64_t p = next_bit(l->stored, first, last); p < last;
         p = next_bit(l->stored, p + 1, last)) {
        if (line_down(l, lo) <= p * page && line_up(l, hi) >= (p + 1) * page
                && silently_stored(l, p)) {
            note(kind, l, blk, p * page > lo ? p * page : lo,
                 (p + 1) * page < hi ? (p + 1) * page : hi);
        }
    }
}

/* ---- the line model (all with l->lock held) ------------------------ */

/* Whether [lo, hi) is whole lines of the pool. */
static int
whole_lines(const sim_lines *l, uint64_t lo, uint64_t hi)
{
    return lo <= hi && hi <= l->size && lo % l->line == 0
           && hi % l->line == 0;
}

static const uint8_t *
synced(const sim_lines *l, uint64_t at)
{
    return line_written(l, at / l->line) ? l->shadow + at : l->device + at;
}

static int
line_dirty(const sim_lines *l, uint64_t at)
{
    return memcmp(l->cache + at, synced(l, at), l->line) != 0;
}

/* Whether [lo, hi) may hold a dirty line or a device-written one; no
 * means the two copies agree and nothing is pending. */
static int
chunk_busy(const sim_lines *l, uint64_t lo, uint64_t hi)
{
    return any_written(l, lo / l->line, (hi - lo) / l->line)
           || memcmp(l->cache + lo, l->device + lo, hi - lo) != 0;
}

static uint64_t
line_down(const sim_lines *l, uint64_t at)
{
    return at & ~(l->line - 1);
}

static uint64_t
line_up(const sim_lines *l, uint64_t at)
{
    return (at + l->line - 1) & ~(l->line - 1);
}

/* The end of the chunk that holds `at`, or hi if sooner. */
static uint64_t
chunk_end(uint64_t at, uint64_t hi)
{
    uint64_t end = (at & ~(uint64_t)(CHUNK - 1)) + CHUNK;
    return end < hi ? end : hi;
}

/* Writes one dirty line back to the device (dc cvac). */
static void
write_back_line(sim_lines *l, const pa_block *blk, uint64_t at)
{
    PA_ASSERT(whole_lines(l, at, at + l->line));
    if (!line_dirty(l, at)) {
        return;
    }
    uint64_t i = at / l->line;
    if (line_written(l, i)) {
        note(PA_HAZARD_WRITEBACK_CLOBBERED, l, blk, at, at + l->line);
        clear_written(l, i, 1);
    }
    memcpy(l->device + at, l->cache + at, l->line);
}

/* flush: the dirty lines of [lo, hi), whole lines. */
static void
write_back(sim_lines *l, const pa_block *blk, uint64_t lo, uint64_t hi)
{
    PA_ASSERT(whole_lines(l, lo, hi));
    for (uint64_t end; lo < hi; lo = end) {
        end = chunk_end(lo, hi);
        if (!any_written(l, lo / l->line, (end - lo) / l->line)) {
            /* Here the device's copy is the synced one: copying clean
             * lines too changes nothing. */
            if (memcmp(l->cache + lo, l->device + lo, end - lo) != 0) {
                memcpy(l->device + lo, l->cache + lo, end - lo);
            }
            continue;
        }
        for (uint64_t at = lo; at < end; at += l->line) {
            write_back_line(l, blk, at);
        }
    }
}

/* invalidate: discards and reloads the lines of [lo, hi), whole lines,
 * each of them one the span covers entirely. */
static void
discard(sim_lines *l, const pa_block *blk, uint64_t lo, uint64_t hi)
{
    PA_ASSERT(whole_lines(l, lo, hi));
    for (uint64_t end; lo < hi; lo = end) {
        end = chunk_end(lo, hi);
        if (!chunk_busy(l, lo, end)) {
            continue;
        }
        for (uint64_t at = lo; at < end; at += l->line) {
            if (line_dirty(l, at)) {
                note(PA_HAZARD_DISCARDED, l, blk, at, at + l->line);
            }
            memcpy(l->cache + at, l->device + at, l->line);
        }
        clear_written(l, lo / l->line, (end - lo) / l->line);
    }
}

/* The device touches [lo, hi): reports dirty lines as `kind`, clipped to
 * the bytes touched; for a write, keeps what the CPU last synced of each
 * line the device writes first. */
static void
device_access(sim_lines *l, const pa_block *blk, uint64_t lo, uint64_t hi,
              int kind, int writes)
{
    PA_ASSERT(lo < hi && whole_lines(l, line_down(l, lo), line_up(l, hi)));
    for (uint64_t at = line_down(l, lo), end; at < hi; at = end) {
        end = chunk_end(at, line_up(l, hi));
        if (!chunk_busy(l, at, end) && !writes) {
            continue;
        }
        for (uint64_t line = at; line < end; line += l->line) {
            uint64_t i = line / l->line;
            if (line_dirty(l, line)) {
                uint64_t a = line > lo ? line : lo;
                uint64_t b = line + l->line < hi ? line + l->line : hi;
                note(kind, l, blk, a, b);
            }
            if (writes && !line_written(l, i)) {
                memcpy(l->shadow + line, l->device + line, l->line);
                mark_written(l, i);
            }
        }
    }
}

/* invalidate is about to reload a line its span covers only in part, of
 * which [lo, hi) lies outside the span: the bytes there that differ from
 * memory take memory's values, as on an arm64 CPU.  That is said (a clean
 * line may be reloaded at any time on a board, so it is no error). */
static void
note_edge_change(sim_lines *l, const pa_block *blk, uint64_t lo,
                 uint64_t hi)
{
    while (lo < hi && l->cache[lo] == l->device[lo]) {
        lo++;
    }
    while (hi > lo && l->cache[hi - 1] == l->device[hi - 1]) {
        hi--;
    }
    if (lo < hi) {
        note(PA_HAZARD_EDGE_RELOADED, l, blk, lo, hi);
    }
}

static int
in_cacheable_block(const sim_lines *l, uint64_t at)
{
    return bit(l->cached_pages, at / pa_page_size());
}

/* The pool offset of blk, which lies in the pool. */
static uint64_t
offset_of(const sim_lines *l, const pa_block *blk)
{
    uint64_t at = blk->device_address - l->base;
    PA_ASSERT(blk->device_address >= l->base && at <= l->size
              && blk->size <= l->size - at);
    return at;
}

/* ---- what sim.c asks ----------------------------------------------- */

int
sim_lines_allocated(sim_lines *l, uint64_t at, uint64_t size, int cacheable,
                    void *cpu)
{
    uint64_t page = pa_page_size();
    PA_ASSERT(at % page == 0 && size % page == 0 && size <= l->size - at);
    int rc = 0;
    sim_lines_lock(l);
    set_bits(l->cached_pages, at / page, size / page, cacheable);
    if (cacheable && !sim_lines_tracking(l)) {
        /* What the device wrote to a block released here is no longer
         * the device's writes: the new block's copies are as they are
         * (tracking, every cacheable block is zeroed, and that says so). */
        clear_written(l, at / l->line, size / l->line);
    }
    if (cacheable && watching(l)) {
        set_bits(l->stored, at / page, size / page, 0);
        rc = sim_stores_watch(&l->stores, cpu, size);
        l->windows[at / page] = rc == 0 ? (uintptr_t)cpu : 0;
    }
    sim_lines_unlock(l);
    return rc;
}

void
sim_lines_zeroed(sim_lines *l, uint64_t at, uint64_t size)
{
    PA_ASSERT(whole_lines(l, at, at + size));
    sim_lines_lock(l);
    clear_written(l, at / l->line, size / l->line);
    if (l->stored != NULL) {
        /* A block used again starts with no store seen. */
        pa_block blk = {.device_address = l->base + at, .size = size};
        take_stores(l, &blk, at, at + size, 0);
        set_bits(l->stored, at / pa_page_size(), size / pa_page_size(), 0);
    }
    sim_lines_unlock(l);
}

void
sim_lines_flush(sim_lines *l, const pa_block *blk, uint64_t at,
                uint64_t len)
{
    PA_ASSERT(at <= l->size && len <= l->size - at);
    uint64_t lo = line_down(l, at), hi = line_up(l, at + len);
    sim_lines_lock(l);
    /* A silent store's write-back is sure to undo the device's writes
     * only where the device wrote every line of its page. */
    sync_stored(l, blk, lo, hi, lo, hi, PA_HAZARD_WRITEBACK_CLOBBERED,
                page_written);
    write_back(l, blk, lo, hi);
    sim_lines_unlock(l);
}

void
sim_lines_invalidate(sim_lines *l, const pa_block *blk, uint64_t at,
                     uint64_t len)
{
    PA_ASSERT(at <= l->size && len <= l->size - at);
    uint64_t lo = line_down(l, at), hi = line_up(l, at + len);
    sim_lines_lock(l);
    /* Only the lines the span covers whole are discarded. */
    sync_stored(l, blk, lo, hi, line_up(l, at), line_down(l, at + len),
                PA_HAZARD_DISCARDED, NULL);
    /* Lines the span covers only in part are cleaned first (dc civac):
     * the CPU's bytes outside the span must survive. */
    uint64_t last = hi - l->line;
    if (lo != at) {
        write_back_line(l, blk, lo);
        note_edge_change(l, blk, lo, at);
    }
    if (hi != at + len) {
        if (!(last == lo && lo != at)) {
            write_back_line(l, blk, last);
        }
        note_edge_change(l, blk, at + len, last + l->line);
    }
    discard(l, blk, lo, hi);
    sim_lines_unlock(l);
}

void
sim_lines_device_io(sim_lines *l, const pa_block *blk, uint64_t at,
                    uint64_t n, void *out, const void *in)
{
    PA_ASSERT(at <= l->size && n <= l->size - at);
    sim_lines_lock(l);
    if (n > 0 && in_cacheable_block(l, at)) {
        int kind = in != NULL ? PA_HAZARD_WRITE_UNDER_DIRTY
                              : PA_HAZARD_UNFLUSHED_READ;
        device_meets_stored(l, blk, at, at + n, kind);
        device_access(l, blk, at, at + n, kind, in != NULL);
    }
    if (in != NULL) {
        memcpy(l->device + at, in, n);
    }
    else {
        memcpy(out, l->device + at, n);
    }
    sim_lines_unlock(l);
}

int
sim_lines_has_device_writes(sim_lines *l, const pa_block *blk)
{
    PA_ASSERT(sim_lines_tracking(l) && blk->cacheable);
    uint64_t at = offset_of(l, blk);
    sim_lines_lock(l);
    int any = any_written(l, at / l->line, blk->size / l->line);
    sim_lines_unlock(l);
    return any;
}

uint64_t
sim_lines_check(sim_lines *l, const pa_block *blk, int kind, uint64_t from)
{
    PA_ASSERT(sim_lines_tracking(l) && blk->cacheable && from < blk->size);
    uint64_t lo = offset_of(l, blk), hi = lo + blk->size;
    uint64_t stop = hi, page = pa_page_size();
    sim_lines_lock(l);
    int stores = kind == PA_HAZARD_UNFLUSHED && l->stored != NULL;
    if (stores) {
        take_stores(l, blk, line_down(l, lo + from), hi, 1);
    }
    for (uint64_t at = line_down(l, lo + from), end; at < stop; at = end) {
        end = chunk_end(at, hi);
        int busy = kind == PA_HAZARD_UNFLUSHED
                   ? chunk_busy(l, at, end)
                     || (stores && any_bit(l->stored, at / page,
                                           (end - 1) / page - at / page + 1))
                   : any_written(l, at / l->line, (end - at) / l->line);
        if (!busy) {
            continue;
        }
        int silent = 0;
        for (uint64_t line = at; line < end; line += l->line) {
            if (stores && (line == at || line % page == 0)) {
                silent = silently_stored(l, line / page);
            }
            int found = kind == PA_HAZARD_UNFLUSHED
                        ? silent || line_dirty(l, line)
                        : line_written(l, line / l->line);
            if (found && !note_fits(kind, l, blk, line)) {
                stop = line;
                break;
            }
            if (found) {
                note(kind, l, blk, line, line + l->line);
            }
        }
    }
    sim_lines_unlock(l);
    return stop - lo;
}

/* ---- setting up ---------------------------------------------------- */

int
sim_pool_map(const pa_sys *sys, const char *name, uint64_t size, int *fd,
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

/* What watch_stores adds: the kernel's side, a bit per page of stores
 * seen, and this process's table of where its cacheable blocks are. */
static int
watch_init(sim_lines *l)
{
    int rc = sim_stores_open(&l->stores, l->sys);
    if (rc != 0) {
        return rc;
    }
    uint64_t pages = l->size / pa_page_size();
    l->stored = new_bitmap(l->sys, pages);
    if (l->stored == NULL) {
        return pa_mmap_error(errno);
    }
    /* Private: each process maps its blocks where it does. */
    void *p = l->sys->mmap(NULL, (size_t)(pages * sizeof(uintptr_t)),
                           PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                           0);
    if (p == MAP_FAILED) {
        return pa_mmap_error(errno);
    }
    l->windows = p;
    return 0;
}

int
sim_lines_init(sim_lines *l, const pa_sys *sys, uint64_t base, uint64_t size,
               uint8_t *device, uint8_t *cache, uint64_t line, int mode,
               int watch)
{
    *l = (sim_lines){.sys = sys, .base = base, .size = size,
                     .device = device, .cache = cache, .mode = mode,
                     .line = line, .shadow_fd = -1,
                     .stores = {.uffd = -1, .pagemap = -1}};
    int rc = new_shared_lock(sys, &l->lock);
    if (rc != 0) {
        return rc;
    }
    l->lines_per_page = pa_page_size() / line;
    l->written = new_bitmap(sys, size / line);
    if (l->written == NULL) {
        return pa_mmap_error(errno);
    }
    l->written_pages = new_bitmap(sys, size / pa_page_size());
    if (l->written_pages == NULL) {
        return pa_mmap_error(errno);
    }
    l->cached_pages = new_bitmap(sys, size / pa_page_size());
    if (l->cached_pages == NULL) {
        return pa_mmap_error(errno);
    }
    rc = sim_pool_map(sys, "pynq_alloc-sim-shadow", size, &l->shadow_fd,
                      &l->shadow);
    return rc == 0 && watch ? watch_init(l) : rc;
}

void
sim_lines_destroy(sim_lines *l)
{
    if (l->sys == NULL) {
        return;
    }
    if (l->shadow != NULL) {
        l->sys->munmap(l->shadow, l->size);
    }
    if (l->shadow_fd >= 0) {
        l->sys->close(l->shadow_fd);
    }
    if (l->written != NULL) {
        l->sys->munmap(l->written, bitmap_bytes(l->size / l->line));
    }
    if (l->written_pages != NULL) {
        l->sys->munmap(l->written_pages,
                       bitmap_bytes(l->size / pa_page_size()));
    }
    if (l->cached_pages != NULL) {
        l->sys->munmap(l->cached_pages,
                       bitmap_bytes(l->size / pa_page_size()));
    }
    if (l->stores.sys != NULL) {
        sim_stores_close(&l->stores);
    }
    if (l->stored != NULL) {
        l->sys->munmap(l->stored, bitmap_bytes(l->size / pa_page_size()));
    }
    if (l->windows != NULL) {
        l->sys->munmap(l->windows, (size_t)(l->size / pa_page_size()
                                            * sizeof(uintptr_t)));
    }
    if (l->lock != NULL) {
        /* Not destroyed: a forked child may still use it; it goes with
         * the last process's mapping. */
        l->sys->munmap(l->lock, sizeof(*l->lock));
    }
}

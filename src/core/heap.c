/*
 * pa_heap: a two-level segregated-fit allocator (TLSF) kept outside the
 * memory it manages.
 *
 * Every block, free or allocated, is a record in `recs`, linked to its
 * neighbours in address order, so freeing coalesces in O(1).  Free blocks
 * sit in one list per size class; two bitmaps say which lists are non-empty,
 * so a class that can hold a request is found with two bit scans.  Rounding
 * the request up to the next class boundary ("good fit") means any block in
 * that class fits, so the common allocation is O(1) whatever the number of
 * blocks.  Allocation hands back the block's record index as its handle,
 * so freeing touches the block, its neighbours and their lists and nothing
 * else: no per-address table costs a cache miss on the hot path.  Finding
 * a block by address (device-side access) uses a sorted index built on
 * demand after the heap changed.
 *
 * Where good fit finds nothing (the heap is nearly full, or an address
 * limit cuts through it), a scan of the free blocks that are large enough
 * finds any block that fits, so the heap never refuses a request it could
 * serve.  That scan is the only cost that grows with the number of blocks.
 */
#include "heap.h"
#include "pa_assert.h"

#include <errno.h>
#include <stdlib.h>

#define SL_BITS 4                   /* 16 lists per power of two */
#define SL_COUNT (1u << SL_BITS)
#define FL_COUNT 64
#define NIL UINT32_MAX
#define ALLOCATED (UINT32_MAX - 1)  /* free_prev of an allocated block */
#define SPARE (UINT32_MAX - 2)      /* free_prev of an unused record */

/* 32 bytes, two to a cache line. */
typedef struct rec {
    uint64_t addr;
    uint64_t size;
    uint32_t phys_prev;             /* neighbours in address order */
    uint32_t phys_next;
    uint32_t free_prev;             /* size-class list, ALLOCATED or SPARE */
    union {
        uint32_t free_next;         /* size-class list; spare records */
        /* An allocated block: whether the block before it [0] and after
         * it [1] are free, so that freeing it reads no neighbour unless
         * it merges with one.  Set by plain stores, never read-modify-
         * write: a store to a cold line does not hold up what follows. */
        uint8_t neighbour_free[2];
    };
} rec;

static int
is_free(const rec *r)
{
    return r->free_prev != ALLOCATED;
}

/* An allocated block's start and record, in the address index. */
typedef struct entry {
    uint64_t addr;
    uint32_t idx;
} entry;

struct pa_heap {
    uint64_t base;
    uint64_t size;
    uint64_t granule;
    unsigned granule_shift;
    rec *recs;
    uint32_t capacity;              /* records in recs */
    uint32_t spare;                 /* unused records, through free_next */
    uint32_t in_use;                /* records that are blocks */
    uint32_t first;                 /* the block at base: merges keep the
                                       lower record, so it never changes */
    uint64_t fl_map;                /* bit f: some list of class f is full */
    uint32_t sl_map[FL_COUNT];
    uint32_t heads[FL_COUNT][SL_COUNT];
    /* The allocated blocks in address order, for pa_heap_find; rebuilt
     * by the first lookup after a change (index_stale). */
    entry *index;
    uint32_t index_len;
    uint32_t index_cap;
    int index_stale;
    uint64_t used;
    uint64_t blocks;
    uint64_t free_blocks;
    uint64_t peak_used;
    uint64_t failed;
};

static int
is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static unsigned
log2_floor(uint64_t x)
{
    return 63u - (unsigned)__builtin_clzll(x);
}

/* The size class (fl, sl) of a block of `units` granules. */
static void
mapping(uint64_t units, unsigned *fl, unsigned *sl)
{
    if (units < SL_COUNT) {
        *fl = 0;
        *sl = (unsigned)units;
    }
    else {
        unsigned f = log2_floor(units);
        *sl = (unsigned)(units >> (f - SL_BITS)) ^ SL_COUNT;
        *fl = f - SL_BITS + 1;
    }
}

/* ---- size-class lists ---- */

static void
list_insert(pa_heap *h, uint32_t i)
{
    unsigned fl, sl;
    PA_ASSERT(h->recs[i].size != 0 && h->recs[i].size % h->granule == 0);
    mapping(h->recs[i].size >> h->granule_shift, &fl, &sl);
    PA_ASSERT(fl < FL_COUNT);
    rec *r = &h->recs[i];
    r->free_prev = NIL;
    r->free_next = h->heads[fl][sl];
    if (r->free_next != NIL) {
        h->recs[r->free_next].free_prev = i;
    }
    h->heads[fl][sl] = i;
    h->fl_map |= 1ull << fl;
    h->sl_map[fl] |= 1u << sl;
}

static void
list_remove(pa_heap *h, uint32_t i)
{
    unsigned fl, sl;
    rec *r = &h->recs[i];
    PA_ASSERT(r->free_prev != ALLOCATED && r->free_prev != SPARE);
    mapping(r->size >> h->granule_shift, &fl, &sl);
    if (r->free_prev != NIL) {
        h->recs[r->free_prev].free_next = r->free_next;
    }
    else {
        h->heads[fl][sl] = r->free_next;
        if (r->free_next == NIL) {
            h->sl_map[fl] &= ~(1u << sl);
            if (h->sl_map[fl] == 0) {
                h->fl_map &= ~(1ull << fl);
            }
        }
    }
    if (r->free_next != NIL) {
        h->recs[r->free_next].free_prev = r->free_prev;
    }
}

/* The first non-empty list at class (fl, sl) or above, or NIL. */
static uint32_t
first_list_from(const pa_heap *h, unsigned fl, unsigned sl)
{
    uint32_t sl_map = sl < SL_COUNT ? h->sl_map[fl] & (~0u << sl) : 0;
    if (sl_map == 0) {
        uint64_t fl_map = fl + 1 < FL_COUNT ? h->fl_map & (~0ull << (fl + 1))
                                            : 0;
        if (fl_map == 0) {
            return NIL;
        }
        fl = (unsigned)__builtin_ctzll(fl_map);
        sl_map = h->sl_map[fl];
    }
    return h->heads[fl][__builtin_ctz(sl_map)];
}

/* ---- block placement ---- */

/*
 * Where a block of `size` aligned to `align` would start inside free block
 * r; *ok says whether it fits there and ends at or below limit.
 */
static uint64_t
place(const rec *r, uint64_t size, uint64_t align, uint64_t limit, int *ok)
{
    uint64_t start = (r->addr + (align - 1)) & ~(align - 1);
    *ok = start >= r->addr                          /* no wrap */
          && r->size >= size
          && start - r->addr <= r->size - size      /* fits after padding */
          && start <= limit && limit - start >= size;
    return start;
}

/* O(1): a block from a class whose every block holds size + padding. */
static uint32_t
good_fit(const pa_heap *h, uint64_t size, uint64_t align)
{
    uint64_t units = (size + align - h->granule) >> h->granule_shift;
    if (units >= SL_COUNT) {
        /* Round up to the next class boundary. */
        units += (1ull << (log2_floor(units) - SL_BITS)) - 1;
    }
    unsigned fl, sl;
    mapping(units, &fl, &sl);
    return fl < FL_COUNT ? first_list_from(h, fl, sl) : NIL;
}

/* Any free block that fits, the lowest-addressed one: scans every free
 * block of the request's class and above. */
static uint32_t
exhaustive_fit(const pa_heap *h, uint64_t size, uint64_t align,
               uint64_t limit)
{
    unsigned fl, sl;
    uint32_t best = NIL;
    mapping(size >> h->granule_shift, &fl, &sl);
    for (; fl < FL_COUNT; fl++, sl = 0) {
        uint32_t sl_map = h->sl_map[fl] & (~0u << sl);
        while (sl_map != 0) {
            unsigned s = (unsigned)__builtin_ctz(sl_map);
            sl_map &= sl_map - 1;
            for (uint32_t i = h->heads[fl][s]; i != NIL;
                 i = h->recs[i].free_next) {
                int ok;
                place(&h->recs[i], size, align, limit, &ok);
                if (ok && (best == NIL
                           || h->recs[i].addr < h->recs[best].addr)) {
                    best = i;
                }
            }
        }
    }
    return best;
}

/* ---- records ---- */

/* A record for a block; list_insert or free_prev = ALLOCATED says which. */
static uint32_t
rec_new(pa_heap *h, uint64_t addr, uint64_t size)
{
    uint32_t i = h->spare;
    PA_ASSERT(i != NIL);            /* reserve() made room */
    rec *r = &h->recs[i];
    h->spare = r->free_next;
    h->in_use++;
    r->addr = addr;
    r->size = size;
    r->phys_prev = r->phys_next = NIL;
    return i;
}

static void
rec_release(pa_heap *h, uint32_t i)
{
    h->recs[i].free_prev = SPARE;
    h->recs[i].free_next = h->spare;
    h->spare = i;
    h->in_use--;
}

/* Tells allocated block b (NIL: none) whether its neighbour on `side`
 * (0: before, 1: after) is free. */
static void
note_neighbour(pa_heap *h, uint32_t b, int side, uint8_t free)
{
    PA_ASSERT(b == NIL || !is_free(&h->recs[b]));
    if (b != NIL) {
        h->recs[b].neighbour_free[side] = free;
    }
}

/* Links record n right after record p in address order. */
static void
phys_link_after(pa_heap *h, uint32_t p, uint32_t n)
{
    rec *rp = &h->recs[p], *rn = &h->recs[n];
    rn->phys_prev = p;
    rn->phys_next = rp->phys_next;
    if (rp->phys_next != NIL) {
        h->recs[rp->phys_next].phys_prev = n;
    }
    rp->phys_next = n;
}

static void
phys_unlink(pa_heap *h, uint32_t i)
{
    rec *r = &h->recs[i];
    if (r->phys_prev != NIL) {
        h->recs[r->phys_prev].phys_next = r->phys_next;
    }
    if (r->phys_next != NIL) {
        h->recs[r->phys_next].phys_prev = r->phys_prev;
    }
}

/*
 * Makes room for the largest change one allocation makes: two new records.
 * Freeing needs no memory.
 */
static int
reserve(pa_heap *h)
{
    if (h->in_use + 2 > h->capacity) {
        if (h->capacity > UINT32_MAX / 2 - 1) {
            return -ENOMEM;
        }
        uint32_t capacity = h->capacity == 0 ? 64 : 2 * h->capacity;
        rec *recs = realloc(h->recs, (size_t)capacity * sizeof(rec));
        if (recs == NULL) {
            return -ENOMEM;
        }
        h->recs = recs;
        for (uint32_t i = capacity; i-- > h->capacity;) {
            recs[i].free_prev = SPARE;
            recs[i].free_next = h->spare;
            h->spare = i;
        }
        h->capacity = capacity;
    }
    return 0;
}

/* ---- the interface ---- */

int
pa_heap_create(uint64_t base, uint64_t size, uint64_t granule, pa_heap **out)
{
    if (!is_pow2(granule) || size == 0 || base % granule != 0
            || size % granule != 0 || base + size < base) {
        return -EINVAL;
    }
    pa_heap *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return -ENOMEM;
    }
    h->base = base;
    h->size = size;
    h->granule = granule;
    h->granule_shift = log2_floor(granule);
    h->spare = NIL;
    for (unsigned f = 0; f < FL_COUNT; f++) {
        for (unsigned s = 0; s < SL_COUNT; s++) {
            h->heads[f][s] = NIL;
        }
    }
    if (reserve(h) != 0) {
        pa_heap_destroy(h);
        return -ENOMEM;
    }
    h->first = rec_new(h, base, size);
    list_insert(h, h->first);
    h->free_blocks = 1;
    *out = h;
    return 0;
}

void
pa_heap_destroy(pa_heap *h)
{
    if (h == NULL) {
        return;
    }
    free(h->recs);
    free(h->index);
    free(h);
}

int
pa_heap_alloc_block(pa_heap *h, uint64_t size, uint64_t align,
                    uint64_t limit, uint64_t *addr, uint32_t *handle)
{
    if (size == 0 || (align != 0 && !is_pow2(align))) {
        return -EINVAL;
    }
    if (align < h->granule) {
        align = h->granule;
    }
    if (size > h->size) {
        h->failed++;
        return -ENOMEM;
    }
    size = (size + h->granule - 1) & ~(h->granule - 1);
    if (limit == 0) {
        limit = UINT64_MAX;
    }

    /* An alignment beyond the pool's size fits only where a free block
     * happens to start aligned: no size class promises that, so only the
     * scan can find it. */
    int ok = 0;
    uint32_t i = align <= h->size ? good_fit(h, size, align) : NIL;
    if (i != NIL) {
        place(&h->recs[i], size, align, limit, &ok);
    }
    if (!ok) {
        i = exhaustive_fit(h, size, align, limit);
    }
    if (i == NIL) {
        h->failed++;
        return -ENOMEM;
    }
    if (reserve(h) != 0) {          /* may move recs: no pointers yet */
        return -ENOMEM;
    }

    rec *r = &h->recs[i];
    uint64_t start = place(r, size, align, limit, &ok);
    PA_ASSERT(ok && is_free(r) && start % align == 0);
    uint64_t front = start - r->addr;
    uint64_t tail = r->size - front - size;
    /* Free blocks never touch, so these two are allocated (or none). */
    uint32_t before = r->phys_prev, after = r->phys_next;
    PA_ASSERT(before == NIL || !is_free(&h->recs[before]));
    PA_ASSERT(after == NIL || !is_free(&h->recs[after]));
    list_remove(h, i);
    uint32_t used = i;
    if (front != 0) {
        r->size = front;            /* stays free, in a smaller class */
        list_insert(h, i);
        used = rec_new(h, start, size);
        phys_link_after(h, i, used);
    }
    else {
        r->size = size;
        h->free_blocks--;
        note_neighbour(h, before, 1, 0);
    }
    rec *u = &h->recs[used];
    u->free_prev = ALLOCATED;
    u->neighbour_free[0] = front != 0;
    u->neighbour_free[1] = tail != 0;
    if (tail != 0) {
        uint32_t t = rec_new(h, start + size, tail);
        phys_link_after(h, used, t);
        list_insert(h, t);
        h->free_blocks++;
    }
    else {
        note_neighbour(h, after, 0, 0);
    }
    h->used += size;
    h->blocks++;
    h->index_stale = 1;
    if (h->used > h->peak_used) {
        h->peak_used = h->used;
    }
    *addr = start;
    *handle = used;
    return 0;
}

int
pa_heap_alloc(pa_heap *h, uint64_t size, uint64_t align, uint64_t limit,
              uint64_t *addr)
{
    uint32_t handle;
    return pa_heap_alloc_block(h, size, align, limit, addr, &handle);
}

int
pa_heap_free_block(pa_heap *h, uint32_t i, uint64_t addr)
{
    if (i >= h->capacity || h->recs[i].free_prev != ALLOCATED
            || h->recs[i].addr != addr) {
        return -EINVAL;
    }
    rec *r = &h->recs[i];
    uint32_t prev = r->phys_prev, next = r->phys_next;
    int prev_free = r->neighbour_free[0], next_free = r->neighbour_free[1];
    /* The block lies in the range, its neighbours touch it and know it,
     * and its record of which of them are free is right. */
    PA_ASSERT(r->size != 0 && r->size % h->granule == 0
              && r->addr - h->base <= h->size - r->size
              && h->used >= r->size && h->blocks > 0);
    PA_ASSERT(prev == NIL
              ? i == h->first
              : h->recs[prev].phys_next == i
                && h->recs[prev].addr + h->recs[prev].size == r->addr);
    PA_ASSERT(next == NIL
              ? r->addr + r->size == h->base + h->size
              : h->recs[next].phys_prev == i
                && h->recs[next].addr == r->addr + r->size);
    PA_ASSERT(prev_free == (prev != NIL && is_free(&h->recs[prev])));
    PA_ASSERT(next_free == (next != NIL && is_free(&h->recs[next])));
    h->index_stale = 1;
    h->used -= r->size;
    h->blocks--;
    h->free_blocks++;
    if (next_free) {
        list_remove(h, next);
        r->size += h->recs[next].size;
        phys_unlink(h, next);
        rec_release(h, next);
        h->free_blocks--;
    }
    else {
        note_neighbour(h, next, 0, 1);
    }
    if (!prev_free) {
        note_neighbour(h, prev, 1, 1);
    }
    else {
        list_remove(h, prev);
        h->recs[prev].size += r->size;
        phys_unlink(h, i);
        rec_release(h, i);
        i = prev;
        h->free_blocks--;
    }
    list_insert(h, i);
    return 0;
}

/* Rebuilds the address index from the address-ordered block list; 0, or
 * -ENOMEM (the index is then left stale). */
static int
index_rebuild(pa_heap *h)
{
    if (h->index_cap < h->blocks) {
        uint32_t cap = (uint32_t)h->blocks + (uint32_t)h->blocks / 2 + 16;
        entry *index = realloc(h->index, (size_t)cap * sizeof(entry));
        if (index == NULL) {
            return -ENOMEM;
        }
        h->index = index;
        h->index_cap = cap;
    }
    uint32_t n = 0;
    for (uint32_t i = h->first; i != NIL; i = h->recs[i].phys_next) {
        if (!is_free(&h->recs[i])) {
            h->index[n++] = (entry){h->recs[i].addr, i};
        }
    }
    h->index_len = n;
    h->index_stale = 0;
    return 0;
}

/* The allocated block holding addr by walking every block: for when the
 * index cannot be had (no memory).  NIL if none holds it. */
static uint32_t
walk_find(const pa_heap *h, uint64_t addr)
{
    for (uint32_t i = h->first; i != NIL; i = h->recs[i].phys_next) {
        const rec *r = &h->recs[i];
        if (addr - r->addr < r->size) {
            return is_free(r) ? NIL : i;
        }
    }
    return NIL;
}

/* The record of the allocated block that holds addr, or NIL. */
static uint32_t
find_rec(pa_heap *h, uint64_t addr)
{
    if (addr < h->base || addr - h->base >= h->size) {
        return NIL;
    }
    if (h->index_stale && index_rebuild(h) != 0) {
        return walk_find(h, addr);
    }
    /* The last block starting at or below addr. */
    uint32_t lo = 0, hi = h->index_len;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->index[mid].addr <= addr) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return NIL;
    }
    uint32_t i = h->index[lo - 1].idx;
    return addr - h->recs[i].addr < h->recs[i].size ? i : NIL;
}

int
pa_heap_find(const pa_heap *heap, uint64_t addr, uint64_t *start,
             uint64_t *size)
{
    /* The index is a cache: the heap the caller owns, not a const one. */
    pa_heap *h = (pa_heap *)heap;
    uint32_t i = find_rec(h, addr);
    if (i == NIL) {
        return -ENOENT;
    }
    *start = h->recs[i].addr;
    *size = h->recs[i].size;
    return 0;
}

int
pa_heap_free(pa_heap *h, uint64_t addr)
{
    uint32_t i = find_rec(h, addr);
    return i == NIL ? -EINVAL : pa_heap_free_block(h, i, addr);
}

void
pa_heap_get_stats(const pa_heap *h, pa_heap_stats *out)
{
    out->total = h->size;
    out->used = h->used;
    out->free = h->size - h->used;
    out->largest_free = 0;
    if (h->fl_map != 0) {
        /* The largest block is in the highest non-empty list. */
        unsigned fl = log2_floor(h->fl_map);
        unsigned sl = log2_floor(h->sl_map[fl]);
        for (uint32_t i = h->heads[fl][sl]; i != NIL;
             i = h->recs[i].free_next) {
            if (h->recs[i].size > out->largest_free) {
                out->largest_free = h->recs[i].size;
            }
        }
    }
    out->blocks = h->blocks;
    out->free_blocks = h->free_blocks;
    out->peak_used = h->peak_used;
    out->failed = h->failed;
    out->meta_bytes = sizeof(*h) + (uint64_t)h->capacity * sizeof(rec)
                      + (uint64_t)h->index_cap * sizeof(entry);
}

int
pa_heap_check(const pa_heap *h)
{
    /* Address order: blocks tile the range, free ones never touch. */
    uint64_t next = h->base, used = 0, blocks = 0, free_blocks = 0;
    uint32_t records = 0, prev = NIL;
    records = 0;
    int prev_free = 0;
    for (uint32_t i = h->first; i != NIL; prev = i, i = h->recs[i].phys_next) {
        const rec *r = &h->recs[i];
        if (++records > h->in_use || r->phys_prev != prev) {
            return -1;                      /* address-order links */
        }
        if (r->addr != next || r->size == 0 || r->size % h->granule != 0) {
            return -2;                      /* tiling */
        }
        if (is_free(r) && prev_free) {
            return -3;                      /* uncoalesced neighbours */
        }
        if (is_free(r)) {
            free_blocks++;
        }
        else {
            int before = r->phys_prev != NIL && is_free(&h->recs[r->phys_prev]);
            int after = r->phys_next != NIL && r->phys_next < h->capacity
                        && is_free(&h->recs[r->phys_next]);
            if (r->neighbour_free[0] != before
                    || r->neighbour_free[1] != after) {
                return -8;                  /* neighbour flags */
            }
            if (!h->index_stale
                    && (blocks >= h->index_len || h->index[blocks].idx != i
                        || h->index[blocks].addr != r->addr)) {
                return -6;                  /* address index */
            }
            used += r->size;
            blocks++;
        }
        prev_free = is_free(r);
        next = r->addr + r->size;
    }
    if (next != h->base + h->size || records != h->in_use) {
        return -5;                          /* range not covered */
    }
    /* Size classes: each free block in its own list; maps match lists. */
    uint64_t listed = 0;
    for (unsigned f = 0; f < FL_COUNT; f++) {
        for (unsigned s = 0; s < SL_COUNT; s++) {
            uint32_t p = NIL;
            int full = h->heads[f][s] != NIL;
            if (full != !!(h->sl_map[f] & (1u << s))) {
                return -4;                  /* bitmaps */
            }
            for (uint32_t i = h->heads[f][s]; i != NIL;
                 p = i, i = h->recs[i].free_next) {
                unsigned fl, sl;
                mapping(h->recs[i].size >> h->granule_shift, &fl, &sl);
                if (!is_free(&h->recs[i]) || fl != f || sl != s
                        || h->recs[i].free_prev != p
                        || ++listed > free_blocks) {
                    return -4;              /* size-class lists */
                }
            }
        }
        if (!!h->sl_map[f] != !!(h->fl_map & (1ull << f))) {
            return -4;
        }
    }
    /* Spare records: all marked, as many as are not blocks. */
    uint32_t spare = 0;
    for (uint32_t i = h->spare; i != NIL; i = h->recs[i].free_next) {
        if (i >= h->capacity || h->recs[i].free_prev != SPARE
                || ++spare > h->capacity) {
            return -7;                      /* spare records */
        }
    }
    if (spare + h->in_use != h->capacity) {
        return -7;
    }
    if (listed != free_blocks || free_blocks != h->free_blocks
            || blocks != h->blocks
            || (!h->index_stale && h->index_len != h->blocks)
            || used != h->used || h->used > h->peak_used) {
        return -6;                          /* counters */
    }
    return 0;
}

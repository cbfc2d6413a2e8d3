/* Tests of pa_heap: fixed cases for each promise in heap.h, then a seeded
 * random stress checked against a reference model. */
#include "../../src/core/heap.h"
#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define PAGE 4096ull

static void
test_create_rejects_bad_ranges(void)
{
    pa_heap *h = NULL;
    CHECK_EQ(pa_heap_create(0, 1 * MiB, 3000, &h), -EINVAL);
    CHECK_EQ(pa_heap_create(0, 0, PAGE, &h), -EINVAL);
    CHECK_EQ(pa_heap_create(100, 1 * MiB, PAGE, &h), -EINVAL);
    CHECK_EQ(pa_heap_create(0, 1 * MiB + 1, PAGE, &h), -EINVAL);
    CHECK_EQ(pa_heap_create(UINT64_MAX - PAGE + 1, 2 * PAGE, PAGE, &h),
             -EINVAL);
    CHECK(h == NULL);
}

static void
test_alloc_rounds_aligns_and_reports(void)
{
    pa_heap *h;
    pa_heap_stats s;
    uint64_t a, b, c;
    CHECK_EQ(pa_heap_create(0x10000000, 16 * MiB, PAGE, &h), 0);
    CHECK_EQ(pa_heap_alloc(h, 1, 0, 0, &a), 0);
    CHECK_EQ(a, 0x10000000);
    CHECK_EQ(pa_heap_alloc(h, PAGE + 1, 0, 0, &b), 0);
    CHECK_EQ(b, 0x10000000 + PAGE);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 1 * MiB, 0, &c), 0);
    CHECK_EQ(c % MiB, 0);
    CHECK_EQ(c, 0x10000000 + 1 * MiB);
    pa_heap_get_stats(h, &s);
    CHECK_EQ(s.total, 16 * MiB);
    CHECK_EQ(s.used, 4 * PAGE);
    CHECK_EQ(s.free, 16 * MiB - 4 * PAGE);
    CHECK_EQ(s.blocks, 3);
    CHECK_EQ(s.free_blocks, 2);     /* the alignment gap and the tail */
    CHECK_EQ(s.largest_free, 15 * MiB - PAGE);
    CHECK_EQ(pa_heap_check(h), 0);

    uint64_t start, size;
    CHECK_EQ(pa_heap_find(h, b + PAGE + 17, &start, &size), 0);
    CHECK_EQ(start, b);
    CHECK_EQ(size, 2 * PAGE);
    CHECK_EQ(pa_heap_find(h, b + 2 * PAGE, &start, &size), -ENOENT);
    CHECK_EQ(pa_heap_find(h, 0, &start, &size), -ENOENT);
    pa_heap_destroy(h);
}

/* An alignment larger than the pool is served where a free block starts
 * aligned, as any other alignment is. */
static void
test_alignment_beyond_the_pool(void)
{
    pa_heap *h;
    uint64_t a, b;
    CHECK_EQ(pa_heap_create(0x10000000, 1 * MiB, PAGE, &h), 0);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 2 * MiB, 0, &a), 0);
    CHECK_EQ(a, 0x10000000);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 2 * MiB, 0, &b), -ENOMEM);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 1ull << 63, 0, &b), -ENOMEM);
    CHECK_EQ(pa_heap_free(h, a), 0);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 1ull << 28, 0, &a), 0);
    CHECK_EQ(a, 0x10000000);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
    /* A pool whose base is not so aligned has no such block. */
    CHECK_EQ(pa_heap_create(0x10100000, 1 * MiB, PAGE, &h), 0);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 2 * MiB, 0, &a), -ENOMEM);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

static void
test_invalid_requests_change_nothing(void)
{
    pa_heap *h;
    pa_heap_stats before, after;
    uint64_t a = 0xdead;
    CHECK_EQ(pa_heap_create(0, 1 * MiB, PAGE, &h), 0);
    pa_heap_get_stats(h, &before);
    CHECK_EQ(pa_heap_alloc(h, 0, 0, 0, &a), -EINVAL);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 3 * PAGE, 0, &a), -EINVAL);
    CHECK_EQ(pa_heap_alloc(h, 2 * MiB, 0, 0, &a), -ENOMEM);
    CHECK_EQ(pa_heap_alloc(h, UINT64_MAX, 0, 0, &a), -ENOMEM);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, PAGE - 1, &a), -ENOMEM);
    CHECK_EQ(a, 0xdead);
    CHECK_EQ(pa_heap_free(h, 0), -EINVAL);      /* a free block */
    CHECK_EQ(pa_heap_free(h, 12345), -EINVAL);  /* not a block start */
    pa_heap_get_stats(h, &after);
    CHECK_EQ(after.used, before.used);
    CHECK_EQ(after.failed, 3);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

static void
test_double_free_is_rejected(void)
{
    pa_heap *h;
    uint64_t a;
    CHECK_EQ(pa_heap_create(0, 1 * MiB, PAGE, &h), 0);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &a), 0);
    CHECK_EQ(pa_heap_free(h, a), 0);
    CHECK_EQ(pa_heap_free(h, a), -EINVAL);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

static void
test_free_by_handle_checks_the_handle(void)
{
    pa_heap *h;
    uint64_t a, b, c;
    uint32_t ha, hb, hc;
    pa_heap_stats s;
    CHECK_EQ(pa_heap_create(0, 1 * MiB, PAGE, &h), 0);
    CHECK_EQ(pa_heap_alloc_block(h, PAGE, 0, 0, &a, &ha), 0);
    CHECK_EQ(pa_heap_alloc_block(h, 3 * PAGE, 0, 0, &b, &hb), 0);
    CHECK(ha != hb);
    CHECK_EQ(pa_heap_free_block(h, hb, a), -EINVAL);   /* not its address */
    CHECK_EQ(pa_heap_free_block(h, UINT32_MAX, a), -EINVAL);
    CHECK_EQ(pa_heap_free_block(h, 1000000, a), -EINVAL);
    CHECK_EQ(pa_heap_check(h), 0);
    CHECK_EQ(pa_heap_free_block(h, ha, a), 0);
    CHECK_EQ(pa_heap_free_block(h, ha, a), -EINVAL);   /* double free */
    CHECK_EQ(pa_heap_free(h, a), -EINVAL);
    CHECK_EQ(pa_heap_check(h), 0);
    /* A free neighbour's record was merged away: its handle names no
     * block now, whatever the address. */
    CHECK_EQ(pa_heap_free_block(h, hb, b), 0);
    CHECK_EQ(pa_heap_free_block(h, hb, b), -EINVAL);
    CHECK_EQ(pa_heap_free_block(h, hb, 0), -EINVAL);
    /* Handles and addresses mix: a block allocated by one API is freed by
     * the other. */
    CHECK_EQ(pa_heap_alloc(h, 2 * PAGE, 0, 0, &c), 0);
    CHECK_EQ(pa_heap_free(h, c), 0);
    CHECK_EQ(pa_heap_alloc_block(h, 2 * PAGE, 0, 0, &c, &hc), 0);
    CHECK_EQ(pa_heap_free(h, c), 0);
    CHECK_EQ(pa_heap_free_block(h, hc, c), -EINVAL);
    pa_heap_get_stats(h, &s);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.blocks, 0);
    CHECK_EQ(s.free_blocks, 1);
    CHECK(s.meta_bytes > 0);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

static void
test_find_sees_every_change(void)
{
    /* The address index is rebuilt after changes: a lookup never sees a
     * block that is gone or misses one that is new. */
    pa_heap *h;
    uint64_t a, b, start, size;
    uint32_t ha;
    CHECK_EQ(pa_heap_create(0x1000000, 1 * MiB, PAGE, &h), 0);
    CHECK_EQ(pa_heap_find(h, 0x1000000, &start, &size), -ENOENT);
    CHECK_EQ(pa_heap_alloc_block(h, 2 * PAGE, 0, 0, &a, &ha), 0);
    CHECK_EQ(pa_heap_find(h, a + PAGE, &start, &size), 0);
    CHECK_EQ(start, a);
    CHECK_EQ(size, 2 * PAGE);
    CHECK_EQ(pa_heap_check(h), 0);              /* checks the index too */
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &b), 0);
    CHECK_EQ(pa_heap_find(h, b, &start, &size), 0);
    CHECK_EQ(start, b);
    CHECK_EQ(pa_heap_free_block(h, ha, a), 0);
    CHECK_EQ(pa_heap_find(h, a, &start, &size), -ENOENT);
    CHECK_EQ(pa_heap_find(h, a + 2 * PAGE - 1, &start, &size), -ENOENT);
    CHECK_EQ(pa_heap_find(h, b + PAGE, &start, &size), -ENOENT);
    CHECK_EQ(pa_heap_find(h, 0x1000000 - 1, &start, &size), -ENOENT);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

static void
test_limit_is_respected(void)
{
    pa_heap *h;
    uint64_t a, b;
    CHECK_EQ(pa_heap_create(3 * 1024 * MiB, 2048 * MiB, PAGE, &h), 0);
    /* Fill what lies below 4 GiB, then ask again below it. */
    CHECK_EQ(pa_heap_alloc(h, 1024 * MiB, 0, 4096 * MiB, &a), 0);
    CHECK(a + 1024 * MiB <= 4096 * MiB);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 4096 * MiB, &b), -ENOMEM);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &b), 0);
    CHECK_EQ(b, 4096 * MiB);
    /* A block may end exactly at the limit. */
    CHECK_EQ(pa_heap_free(h, a), 0);
    CHECK_EQ(pa_heap_alloc(h, 1024 * MiB, 0, 4096 * MiB, &a), 0);
    CHECK_EQ(a, 3 * 1024 * MiB);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

static void
test_free_coalesces_both_sides(void)
{
    pa_heap *h;
    uint64_t a[5];
    pa_heap_stats s;
    CHECK_EQ(pa_heap_create(0, 5 * PAGE, PAGE, &h), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &a[i]), 0);
    }
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &a[0]) , -ENOMEM);
    CHECK_EQ(pa_heap_free(h, a[1]), 0);
    CHECK_EQ(pa_heap_check(h), 0);      /* a[0] and a[2] see the gap */
    CHECK_EQ(pa_heap_free(h, a[3]), 0);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_get_stats(h, &s);
    CHECK_EQ(s.largest_free, PAGE);
    CHECK_EQ(s.free_blocks, 2);
    CHECK_EQ(pa_heap_alloc(h, 2 * PAGE, 0, 0, &a[1]), -ENOMEM);
    CHECK_EQ(pa_heap_free(h, a[2]), 0);             /* joins 1..3 */
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_get_stats(h, &s);
    CHECK_EQ(s.largest_free, 3 * PAGE);
    CHECK_EQ(s.free_blocks, 1);
    CHECK_EQ(pa_heap_free(h, a[0]), 0);
    CHECK_EQ(pa_heap_free(h, a[4]), 0);
    pa_heap_get_stats(h, &s);
    CHECK_EQ(s.largest_free, 5 * PAGE);
    CHECK_EQ(s.free_blocks, 1);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.peak_used, 5 * PAGE);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

static void
test_exact_fit_that_good_fit_skips(void)
{
    /* 33 pages sits in a size class two pages wide: good fit rounds a
     * 33-page request up past it, so only the fallback scan finds the one
     * free block that fits exactly. */
    pa_heap *h;
    uint64_t a, hole, b, c;
    CHECK_EQ(pa_heap_create(0, 100 * PAGE, PAGE, &h), 0);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &a), 0);
    CHECK_EQ(pa_heap_alloc(h, 33 * PAGE, 0, 0, &hole), 0);
    CHECK_EQ(pa_heap_alloc(h, 66 * PAGE, 0, 0, &b), 0);
    CHECK_EQ(pa_heap_free(h, hole), 0);
    CHECK_EQ(pa_heap_alloc(h, 33 * PAGE, 0, 0, &c), 0);
    CHECK_EQ(c, hole);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &c), -ENOMEM);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
}

/* ---- random stress against a reference model ---- */

typedef struct interval {
    uint64_t start, size;
    uint32_t handle;    /* UINT32_MAX: allocated by address */
} interval;

typedef struct model {
    interval *live;     /* sorted by start */
    size_t n;
} model;

static uint64_t rng_state;

static uint64_t
rnd(void)
{
    /* splitmix64: a fixed seed gives the same run everywhere. */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t
model_lower_bound(const model *m, uint64_t start)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->live[mid].start < start) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* Would any gap between live blocks hold this request? */
static int
model_fits(const model *m, uint64_t base, uint64_t end, uint64_t size,
           uint64_t align, uint64_t limit)
{
    uint64_t gap = base;
    for (size_t i = 0; i <= m->n; i++) {
        uint64_t gap_end = i < m->n ? m->live[i].start : end;
        uint64_t s = (gap + align - 1) & ~(align - 1);
        if (s >= gap && s + size <= gap_end && s + size <= limit) {
            return 1;
        }
        if (i < m->n) {
            gap = m->live[i].start + m->live[i].size;
        }
    }
    return 0;
}

static void
test_random_stress_against_model(void)
{
    const uint64_t base = 0x10000000, total = 64 * MiB;
    const int ops = 100000;
    pa_heap *h;
    model m = {calloc(total / PAGE, sizeof(interval)), 0};
    int invariant_failures = 0, enomem = 0;
    rng_state = 20261123;
    CHECK_EQ(pa_heap_create(base, total, PAGE, &h), 0);

    for (int op = 0; op < ops; op++) {
        /* Allocate more than free while few blocks live, so the heap fills. */
        int do_alloc = m.n == 0 || (rnd() % 100) < (m.n < 400 ? 60 : 45);
        if (do_alloc) {
            uint64_t pages = 1 + (rnd() % 8 == 0 ? rnd() % 512 : rnd() % 16);
            uint64_t size = pages * PAGE - (rnd() % PAGE);   /* unrounded */
            uint64_t align = rnd() % 4 == 0 ? PAGE << (rnd() % 9) : 0;
            uint64_t limit = rnd() % 8 == 0 ? base + (rnd() % total) : 0;
            uint64_t eff_align = align ? align : PAGE;
            uint64_t eff_size = pages * PAGE;
            uint64_t addr;
            uint32_t handle = UINT32_MAX;
            int rc = rnd() % 2 ? pa_heap_alloc(h, size, align, limit, &addr)
                               : pa_heap_alloc_block(h, size, align, limit,
                                                     &addr, &handle);
            int fits = model_fits(&m, base, base + total, eff_size, eff_align,
                                  limit ? limit : UINT64_MAX);
            if (rc == -ENOMEM) {
                enomem++;
                CHECK(!fits);       /* first fit is complete */
                if (fits) {
                    break;
                }
            }
            else {
                CHECK_EQ(rc, 0);
                CHECK(fits);
                CHECK_EQ(addr % eff_align, 0);
                CHECK(addr >= base && addr + eff_size <= base + total);
                CHECK(limit == 0 || addr + eff_size <= limit);
                size_t i = model_lower_bound(&m, addr);
                /* No overlap with either neighbour in the model. */
                CHECK(i == 0 || m.live[i - 1].start + m.live[i - 1].size <= addr);
                CHECK(i == m.n || addr + eff_size <= m.live[i].start);
                memmove(&m.live[i + 1], &m.live[i], (m.n - i) * sizeof(interval));
                m.live[i] = (interval){addr, eff_size, handle};
                m.n++;
            }
        }
        else {
            size_t i = rnd() % m.n;
            if (m.live[i].handle == UINT32_MAX) {
                CHECK_EQ(pa_heap_free(h, m.live[i].start), 0);
            }
            else {
                CHECK_EQ(pa_heap_free_block(h, m.live[i].handle,
                                            m.live[i].start), 0);
            }
            memmove(&m.live[i], &m.live[i + 1], (m.n - i - 1) * sizeof(interval));
            m.n--;
        }
        if (pa_heap_check(h) != 0) {
            invariant_failures++;
            break;
        }
        if (op % 16 == 0) {
            /* Device-side lookups agree with the model. */
            uint64_t at = base + rnd() % total, start = 0, size = 0;
            size_t i = model_lower_bound(&m, at + 1);
            int inside = i > 0 && at - m.live[i - 1].start < m.live[i - 1].size;
            int rc = pa_heap_find(h, at, &start, &size);
            CHECK_EQ(rc, inside ? 0 : -ENOENT);
            if (inside && (start != m.live[i - 1].start
                           || size != m.live[i - 1].size)) {
                CHECK(0);
                break;
            }
        }
        pa_heap_stats s;
        pa_heap_get_stats(h, &s);
        if (s.blocks != m.n) {
            CHECK_EQ(s.blocks, m.n);
            break;
        }
    }
    CHECK_EQ(invariant_failures, 0);
    CHECK(enomem > 0);      /* the run did reach exhaustion */

    /* Freeing everything leaves one free block: full coalescing. */
    while (m.n > 0) {
        m.n--;
        CHECK_EQ(m.live[m.n].handle == UINT32_MAX
                 ? pa_heap_free(h, m.live[m.n].start)
                 : pa_heap_free_block(h, m.live[m.n].handle,
                                      m.live[m.n].start), 0);
    }
    pa_heap_stats s;
    pa_heap_get_stats(h, &s);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.free_blocks, 1);
    CHECK_EQ(s.largest_free, total);
    CHECK_EQ(pa_heap_check(h), 0);
    pa_heap_destroy(h);
    free(m.live);
}

static void
test_find_is_a_lookup_however_far(void)
{
    /* A 4 TiB heap: walking back a granule at a time from its end to a
     * block at its start would take a billion steps. */
    const uint64_t tib = 1024ull * 1024 * MiB;
    pa_heap *h;
    uint64_t a, b, start, size;
    CHECK_EQ(pa_heap_create(0, 4 * tib, PAGE, &h), 0);
    CHECK_EQ(pa_heap_alloc(h, PAGE, 0, 0, &a), 0);
    CHECK_EQ(pa_heap_alloc(h, 2 * tib, 0, 0, &b), 0);
    CHECK_EQ(pa_heap_find(h, b + 2 * tib - 1, &start, &size), 0);
    CHECK_EQ(start, b);
    CHECK_EQ(size, 2 * tib);
    CHECK_EQ(pa_heap_find(h, 4 * tib - 1, &start, &size), -ENOENT);
    CHECK_EQ(pa_heap_find(h, a + PAGE, &start, &size), 0);  /* b's start */
    CHECK_EQ(pa_heap_free(h, b), 0);
    CHECK_EQ(pa_heap_find(h, 3 * tib, &start, &size), -ENOENT);
    pa_heap_destroy(h);
}

int
main(void)
{
    RUN(test_create_rejects_bad_ranges);
    RUN(test_alloc_rounds_aligns_and_reports);
    RUN(test_alignment_beyond_the_pool);
    RUN(test_invalid_requests_change_nothing);
    RUN(test_double_free_is_rejected);
    RUN(test_free_by_handle_checks_the_handle);
    RUN(test_find_sees_every_change);
    RUN(test_limit_is_respected);
    RUN(test_free_coalesces_both_sides);
    RUN(test_exact_fit_that_good_fit_skips);
    RUN(test_random_stress_against_model);
    RUN(test_find_is_a_lookup_however_far);
    return check_report("test_heap");
}

/* Tests of pa_memory over the simulated backend, and over a backend of
 * its own where the sim cannot show a rule. */
#include "../../src/core/memory.h"
#include "../../src/core/sim.h"
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024ull * 1024ull)
#define PAGE 4096ull
#define BASE 0x10000000ull

static pa_memory *
open_sim(uint64_t size)
{
    pa_memory *m = NULL;
    CHECK_EQ(pa_sim_open(NULL, BASE, size, NULL, &m), 0);
    return m;
}

/* Without coherence tracking, which zeroes every block (see
 * test_sim_coherence): for tests of what zero=False leaves. */
static pa_memory *
open_plain_sim(uint64_t size)
{
    static const pa_sim_options untracked = {0, PA_COHERENCE_OFF, 0};
    pa_memory *m = NULL;
    CHECK_EQ(pa_sim_open(NULL, BASE, size, &untracked, &m), 0);
    return m;
}

static void
test_open_rejects_bad_pools(void)
{
    pa_memory *m = NULL;
    CHECK_EQ(pa_sim_open(NULL, BASE, 0, NULL, &m), -EINVAL);
    CHECK_EQ(pa_sim_open(NULL, BASE + 1, MiB, NULL, &m), -EINVAL);
    CHECK_EQ(pa_sim_open(NULL, BASE, MiB + 7, NULL, &m), -EINVAL);
    CHECK_EQ(pa_sim_open(NULL, UINT64_MAX - PAGE + 1, MiB, NULL, &m), -EINVAL);
    CHECK(m == NULL);
}

static void
test_cacheable_block_is_not_coherent(void)
{
    pa_memory *m = open_sim(4 * MiB);
    pa_block b;
    uint8_t seen[64];
    CHECK_EQ(pa_memory_alloc(m, 100, 0, 0, 1, &b), 0);
    CHECK_EQ(b.size, PAGE);
    CHECK(b.cacheable && !b.coherent);
    memset(b.cpu, 0xAB, 64);
    CHECK_EQ(pa_memory_device_read(m, b.device_address, seen, 64), 0);
    CHECK_EQ(seen[0], 0);                   /* not flushed yet */
    /* A partial flush writes back the whole line it touches, no more
     * (test_sim_coherence has the model's cases). */
    memset((uint8_t *)b.cpu + 64, 0xAB, 64);
    CHECK_EQ(pa_memory_flush(m, &b, 8, 16), 0);
    CHECK_EQ(pa_memory_device_read(m, b.device_address, seen, 64), 0);
    CHECK_EQ(seen[0], 0xAB);
    CHECK_EQ(seen[63], 0xAB);
    CHECK_EQ(pa_memory_device_read(m, b.device_address + 64, seen, 1), 0);
    CHECK_EQ(seen[0], 0);
    /* Device writes reach the CPU only through invalidate. */
    memset(seen, 0x5A, sizeof(seen));
    CHECK_EQ(pa_memory_flush(m, &b, 0, PAGE), 0);
    CHECK_EQ(pa_memory_device_write(m, b.device_address + 32, seen, 8), 0);
    CHECK_EQ(((uint8_t *)b.cpu)[32], 0xAB);
    CHECK_EQ(pa_memory_invalidate(m, &b, 32, 4), 0);
    CHECK_EQ(((uint8_t *)b.cpu)[32], 0x5A);
    CHECK_EQ(((uint8_t *)b.cpu)[39], 0x5A);
    CHECK_EQ(((uint8_t *)b.cpu)[40], 0xAB);   /* outside the write */
    pa_hazard h[PA_HAZARDS_KEPT];
    CHECK_EQ(pa_hazards_take(h, PA_HAZARDS_KEPT, NULL), 2);
    CHECK_EQ(h[0].kind, PA_HAZARD_UNFLUSHED_READ);   /* the first read */
    CHECK_EQ(h[1].kind, PA_HAZARD_EDGE_RELOADED);    /* bytes 36 to 40 */
    CHECK_EQ(pa_memory_flush(m, &b, PAGE - 8, 16), -EINVAL);
    CHECK_EQ(pa_memory_invalidate(m, &b, PAGE + 1, 0), -EINVAL);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_uncached_block_is_coherent(void)
{
    pa_memory *m = open_sim(4 * MiB);
    pa_block b;
    uint32_t word = 0;
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, 0, &b), 0);
    CHECK(!b.cacheable && b.coherent);
    ((uint32_t *)b.cpu)[1] = 0xC0FFEE;
    CHECK_EQ(pa_memory_device_read(m, b.device_address + 4, &word, 4), 0);
    CHECK_EQ(word, 0xC0FFEE);
    word = 77;
    CHECK_EQ(pa_memory_device_write(m, b.device_address + 8, &word, 4), 0);
    CHECK_EQ(((uint32_t *)b.cpu)[2], 77);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_device_refuses_ranges_outside_live_blocks(void)
{
    pa_memory *m = open_sim(4 * MiB);
    pa_block a, b;
    uint8_t buf[2 * PAGE];
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 1, &a), 0);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 1, &b), 0);
    CHECK_EQ(b.device_address, a.device_address + PAGE);
    CHECK_EQ(pa_memory_device_read(m, a.device_address, buf, PAGE), 0);
    /* Two adjacent blocks are still two allocations. */
    CHECK_EQ(pa_memory_device_read(m, a.device_address, buf, PAGE + 1),
             -EFAULT);
    CHECK_EQ(pa_memory_device_write(m, b.device_address + PAGE, buf, 1),
             -EFAULT);
    CHECK_EQ(pa_memory_device_read(m, BASE - 1, buf, 1), -EFAULT);
    CHECK_EQ(pa_memory_device_read(m, UINT64_MAX, buf, 2), -EFAULT);
    /* A released block is not live, even while it is kept for reuse. */
    uint64_t gone = b.device_address;
    pa_memory_release(m, &b);
    CHECK_EQ(pa_memory_device_read(m, gone, buf, 1), -EFAULT);
    CHECK_EQ(pa_memory_device_write(m, gone, buf, 1), -EFAULT);
    pa_memory_release(m, &a);
    pa_memory_close(m);
}

static void
test_reuse_is_invisible_in_stats(void)
{
    pa_memory *m = open_sim(4 * MiB);
    pa_block a, b;
    pa_stats s;
    CHECK_EQ(pa_memory_alloc(m, 3 * PAGE, 0, 0, 1, &a), 0);
    void *cpu = a.cpu;
    uint64_t addr = a.device_address;
    pa_memory_stats(m, &s);
    CHECK_EQ(s.used, 3 * PAGE);
    CHECK_EQ(s.buffers, 1);
    pa_memory_release(m, &a);
    /* Only an exact match is reused: size, cacheability, align, limit. */
    CHECK_EQ(pa_memory_try_reuse(m, 2 * PAGE, 0, 0, 1, &b), 0);
    CHECK_EQ(pa_memory_try_reuse(m, 3 * PAGE, 0, 0, 0, &b), 0);
    CHECK_EQ(pa_memory_try_reuse(m, 3 * PAGE, 0, addr + PAGE, 1, &b), 0);
    CHECK_EQ(pa_memory_try_reuse(m, 3 * PAGE - 5, 0, 0, 1, &b), 1);
    CHECK(b.cpu == cpu);                    /* reused, no new mapping */
    CHECK_EQ(b.device_address, addr);
    pa_memory_stats(m, &s);
    CHECK_EQ(s.buffers, 1);
    CHECK_EQ(pa_memory_try_keep(m, &b), 1);  /* room: kept, no syscall */
    CHECK(b.cpu == NULL);
    CHECK_EQ(pa_memory_try_reuse(m, 3 * PAGE, 0, 0, 1, &b), 1);
    CHECK(b.cpu == cpu);
    pa_memory_release(m, &b);
    pa_memory_stats(m, &s);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.free, 4 * MiB);
    CHECK_EQ(s.largest_free, 4 * MiB);
    CHECK_EQ(s.buffers, 0);

    /* Cached blocks never make an allocation fail. */
    pa_block small[8];
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(pa_memory_alloc(m, 512 * 1024, 0, 0, i % 2, &small[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pa_memory_release(m, &small[i]);
    }
    CHECK_EQ(pa_memory_alloc(m, 4 * MiB, 0, 0, 1, &a), 0);
    CHECK_EQ(pa_memory_alloc(m, 1, 0, 0, 1, &b), -ENOMEM);
    pa_memory_release(m, &a);
    pa_memory_close(m);
}

static void
test_alignment_and_limit(void)
{
    pa_memory *m = open_sim(64 * MiB);
    pa_block a, b;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 1, &a), 0);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 2 * MiB, 0, 1, &b), 0);
    CHECK_EQ(b.device_address % (2 * MiB), 0);
    pa_memory_release(m, &b);
    /* A cached block that is not aligned enough is not reused. */
    CHECK_EQ(pa_memory_alloc(m, PAGE, 4 * MiB, 0, 1, &b), 0);
    CHECK_EQ(b.device_address % (4 * MiB), 0);
    pa_memory_release(m, &b);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 3 * PAGE, 0, 1, &b), -EINVAL);
    CHECK_EQ(pa_memory_alloc(m, 2 * PAGE, 0, BASE + 2 * PAGE, 1, &b),
             -ENOMEM);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, BASE + 2 * PAGE, 1, &b), 0);
    CHECK(b.device_address + b.size <= BASE + 2 * PAGE);
    pa_memory_release(m, &b);
    pa_memory_release(m, &a);
    pa_memory_close(m);
}

static void
test_retired_block_is_parked_until_its_space_is_needed(void)
{
    pa_memory *m = open_plain_sim(4 * MiB);
    pa_block a, b, c;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &a), 0);
    memset(a.cpu, 0x11, PAGE);
    CHECK_EQ(pa_memory_retire(m, &a), 0);
    /* Parked: the range keeps the block, and nobody else reaches it. */
    uint8_t *old = a.cpu, dev;
    CHECK(a.parked);
    CHECK_EQ(old[5], 0x11);
    CHECK_EQ(pa_memory_device_read(m, a.device_address, &dev, 1), -EFAULT);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, PA_ALLOC_UNZEROED, &b), 0);
    CHECK(b.device_address != a.device_address);
    pa_memory_release(m, &b);
    /* The whole pool needs its space: the range turns anonymous first. */
    CHECK_EQ(pa_memory_alloc(m, 4 * MiB, 0, 0, PA_ALLOC_UNZEROED, &c), 0);
    CHECK(!a.parked);
    CHECK(c.device_address <= a.device_address
          && a.device_address < c.device_address + c.size);
    CHECK_EQ(old[5], 0);
    old[6] = 0x33;
    uint64_t at = a.device_address - c.device_address;
    CHECK_EQ(((uint8_t *)c.cpu)[at + 5], 0x11);  /* left unzeroed */
    CHECK_EQ(((uint8_t *)c.cpu)[at + 6], 0x11);
    CHECK_EQ(pa_memory_device_read(m, a.device_address + 6, &dev, 1), 0);
    CHECK_EQ(dev, 0x11);
    pa_memory_unmap_retired(m, &a);
    pa_memory_release(m, &c);
    pa_memory_close(m);
}

static void
test_parked_block_is_reused_when_its_arrays_are_gone(void)
{
    pa_memory *m = open_plain_sim(4 * MiB);
    pa_block a, b;
    pa_stats s;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &a), 0);
    void *cpu = a.cpu;
    uint64_t at = a.device_address;
    CHECK_EQ(pa_memory_retire(m, &a), 0);
    pa_memory_unmap_retired(m, &a);
    /* Kept for reuse, mapping and all, as a released block is. */
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &b), 0);
    CHECK_EQ(b.device_address, at);
    CHECK(b.cpu == cpu);
    /* Figures count a parked block free: it is swapped out for them. */
    ((uint8_t *)b.cpu)[0] = 9;
    CHECK_EQ(pa_memory_retire(m, &b), 0);
    pa_memory_stats(m, &s);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.buffers, 0);
    CHECK(!b.parked);
    CHECK_EQ(((uint8_t *)cpu)[0], 0);
    pa_memory_unmap_retired(m, &b);
    pa_memory_close(m);
}

/* At most PARKED_ENTRIES wait; past that, a block is swapped at once. */
static void
test_parking_is_bounded(void)
{
    pa_memory *m = open_plain_sim(4 * MiB);
    pa_block b[65];
    for (int i = 0; i < 65; i++) {
        CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &b[i]), 0);
        ((uint8_t *)b[i].cpu)[0] = 1;
    }
    for (int i = 0; i < 65; i++) {
        CHECK_EQ(pa_memory_retire(m, &b[i]), 0);
    }
    CHECK(b[63].parked && !b[64].parked);
    CHECK_EQ(((uint8_t *)b[64].cpu)[0], 0);
    for (int i = 0; i < 65; i++) {
        pa_memory_unmap_retired(m, &b[i]);
    }
    pa_memory_close(m);
}

/* Fills a block's CPU side and its device side with different bytes. */
static void
dirty_both_sides(pa_memory *m, pa_block *b)
{
    memset(b->cpu, 0xAB, b->size);
    CHECK_EQ(pa_memory_flush(m, b, 0, b->size), 0);
    uint8_t *junk = malloc(b->size);
    memset(junk, 0xCD, b->size);
    CHECK_EQ(pa_memory_device_write(m, b->device_address, junk, b->size), 0);
    free(junk);
}

/* Whether both sides of the whole block read as zeros. */
static int
zero_both_sides(pa_memory *m, const pa_block *b)
{
    uint8_t *dev = malloc(b->size);
    int zero = pa_memory_device_read(m, b->device_address, dev, b->size) == 0;
    for (uint64_t i = 0; zero && i < b->size; i++) {
        zero = dev[i] == 0 && ((uint8_t *)b->cpu)[i] == 0;
    }
    free(dev);
    return zero;
}

static void
test_reused_blocks_read_as_zeros(void)
{
    /* Inline (reuse cache), in place, and by giving pages back. */
    static const uint64_t sizes[] = {PAGE, 64 * 1024, 128 * 1024, 2 * MiB};
    pa_memory *m = open_sim(8 * MiB);
    for (int i = 0; i < 4; i++) {
        for (unsigned cacheable = 0; cacheable < 2; cacheable++) {
            pa_block a, b;
            CHECK_EQ(pa_memory_alloc(m, sizes[i], 0, 0, cacheable, &a), 0);
            CHECK(zero_both_sides(m, &a));
            dirty_both_sides(m, &a);
            uint64_t addr = a.device_address;
            pa_memory_release(m, &a);
            if (!pa_memory_try_reuse(m, sizes[i], 0, 0, cacheable, &b)) {
                /* Too big to zero inline: only the slow path may take it. */
                CHECK(sizes[i] > PA_ZERO_INLINE_BYTES);
                CHECK_EQ(pa_memory_alloc(m, sizes[i], 0, 0, cacheable, &b),
                         0);
            }
            CHECK_EQ(b.device_address, addr);
            CHECK(zero_both_sides(m, &b));
            pa_memory_release(m, &b);
        }
    }
    pa_memory_close(m);
}

static void
test_unzeroed_blocks_keep_old_contents(void)
{
    pa_memory *m = open_plain_sim(4 * MiB);
    pa_block a, b;
    CHECK_EQ(pa_memory_alloc(m, 2 * MiB, 0, 0, PA_ALLOC_CACHEABLE, &a), 0);
    dirty_both_sides(m, &a);
    pa_memory_release(m, &a);
    CHECK_EQ(pa_memory_try_reuse(m, 2 * MiB, 0, 0,
                                 PA_ALLOC_CACHEABLE | PA_ALLOC_UNZEROED, &b),
             1);
    CHECK_EQ(((uint8_t *)b.cpu)[MiB], 0xAB);
    uint8_t dev;
    CHECK_EQ(pa_memory_device_read(m, b.device_address + 7, &dev, 1), 0);
    CHECK_EQ(dev, 0xCD);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

/*
 * A backend like the hugepage one, for what only an arm64 board would show
 * of it: every block mapped cached, coherent or not as the memory says, an
 * uncached request refused where it is not.  Eight pages, handed out in
 * turn; it counts the blocks it makes.
 */
typedef struct cached_only {
    int coherent;
    int allocs;
    uint8_t used[8];
    uint8_t pages[8][PAGE];
} cached_only;

static int
co_cacheable_as(const pa_memory *m, int cacheable)
{
    const cached_only *s = pa_memory_state(m);
    return cacheable || s->coherent ? 1 : -ENOTSUP;
}

static int
co_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
         int cacheable, pa_block *blk)
{
    cached_only *s = pa_memory_state(m);
    int as = co_cacheable_as(m, cacheable);
    (void)align;
    (void)limit;
    if (as < 0) {
        return as;
    }
    for (int i = 0; i < 8 && size == PAGE; i++) {
        if (!s->used[i]) {
            s->used[i] = 1;
            s->allocs++;
            *blk = (pa_block){.device_address = BASE + (uint64_t)i * PAGE,
                              .cpu = s->pages[i], .size = PAGE,
                              .map_base = s->pages[i], .map_length = PAGE,
                              .cacheable = (uint8_t)as,
                              .coherent = (uint8_t)s->coherent};
            return 0;
        }
    }
    return -ENOMEM;
}

static void
co_free(pa_memory *m, pa_block *blk, int keep_va)
{
    cached_only *s = pa_memory_state(m);
    (void)keep_va;
    s->used[(blk->device_address - BASE) / PAGE] = 0;
}

static int
co_sync(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    (void)m;
    (void)blk;
    (void)offset;
    (void)len;
    return 0;
}

static void
co_stats(pa_memory *m, pa_stats *out)
{
    const cached_only *s = pa_memory_state(m);
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 8; i++) {
        out->used += s->used[i] * PAGE;
    }
}

static void
co_close(pa_memory *m)
{
    (void)m;
}

static const pa_backend_ops cached_only_ops = {
    .kind = "cached-only",
    .reuse_blocks = 1,
    .alloc = co_alloc,
    .cacheable_as = co_cacheable_as,
    .zero = pa_memory_zero_by_cpu,
    .free = co_free,
    .flush = co_sync,
    .invalidate = co_sync,
    .stats = co_stats,
    .close = co_close,
};

static void
test_reuse_serves_what_alloc_would_make(void)
{
    /* Coherent: a kept block serves requests of either kind, as alloc
     * would serve them with its like. */
    static cached_only coherent = {.coherent = 1}, not_coherent;
    pa_memory *m = NULL;
    pa_block a, b;
    CHECK_EQ(pa_memory_create(&cached_only_ops, &coherent, BASE, 8 * PAGE,
                              &m), 0);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, PA_ALLOC_CACHEABLE, &a), 0);
    memset(a.cpu, 0xAB, PAGE);
    pa_memory_release(m, &a);
    CHECK_EQ(pa_memory_try_reuse(m, PAGE, 0, 0, 0, &b), 1);
    CHECK(b.cacheable && b.coherent && b.device_address == BASE);
    CHECK_EQ(((uint8_t *)b.cpu)[PAGE - 1], 0);
    pa_memory_release(m, &b);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &b), 0);
    CHECK_EQ(b.device_address, BASE);
    CHECK_EQ(coherent.allocs, 1);
    pa_memory_release(m, &b);
    pa_memory_close(m);

    /* Not coherent: an uncached request is refused, kept block or not;
     * a cacheable one still takes it. */
    CHECK_EQ(pa_memory_create(&cached_only_ops, &not_coherent, BASE,
                              8 * PAGE, &m), 0);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &a), -ENOTSUP);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, PA_ALLOC_CACHEABLE, &a), 0);
    CHECK(a.cacheable && !a.coherent);
    pa_memory_release(m, &a);
    CHECK_EQ(pa_memory_try_reuse(m, PAGE, 0, 0, 0, &b), 0);
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, PA_ALLOC_UNZEROED, &b), -ENOTSUP);
    CHECK_EQ(pa_memory_try_reuse(m, PAGE, 0, 0, PA_ALLOC_CACHEABLE, &b), 1);
    CHECK_EQ(b.device_address, BASE);
    CHECK_EQ(not_coherent.allocs, 1);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

typedef struct worker_arg {
    pa_memory *m;
    int seed;
    int errors;
} worker_arg;

static void *
worker(void *p)
{
    worker_arg *w = p;
    pa_block held[16];
    unsigned x = (unsigned)w->seed;
    for (int i = 0; i < 2000; i++) {
        int n = 1 + (int)(x % 16);
        for (int j = 0; j < n; j++) {
            x = x * 1103515245u + 12345u;
            if (pa_memory_alloc(w->m, (x >> 8) % (64 * 1024), 0, 0,
                                (int)(x & 1), &held[j]) != 0) {
                w->errors++;
                n = j;
                break;
            }
            memset(held[j].cpu, w->seed, 8);
        }
        for (int j = 0; j < n; j++) {
            if (((uint8_t *)held[j].cpu)[7] != (uint8_t)w->seed) {
                w->errors++;    /* another thread got the same block */
            }
            pa_memory_release(w->m, &held[j]);
        }
    }
    return NULL;
}

static void
test_threads_share_a_memory(void)
{
    pa_memory *m = open_sim(64 * MiB);
    pthread_t t[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){m, i + 1, 0};
        pthread_create(&t[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(args[i].errors, 0);
    }
    pa_stats s;
    pa_memory_stats(m, &s);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.buffers, 0);
    CHECK_EQ(s.largest_free, 64 * MiB);
    pa_memory_close(m);
}

int
main(void)
{
    RUN(test_open_rejects_bad_pools);
    RUN(test_cacheable_block_is_not_coherent);
    RUN(test_uncached_block_is_coherent);
    RUN(test_device_refuses_ranges_outside_live_blocks);
    RUN(test_reuse_is_invisible_in_stats);
    RUN(test_alignment_and_limit);
    RUN(test_retired_block_is_parked_until_its_space_is_needed);
    RUN(test_parked_block_is_reused_when_its_arrays_are_gone);
    RUN(test_parking_is_bounded);
    RUN(test_reused_blocks_read_as_zeros);
    RUN(test_unzeroed_blocks_keep_old_contents);
    RUN(test_reuse_serves_what_alloc_would_make);
    RUN(test_threads_share_a_memory);
    return check_report("test_memory");
}

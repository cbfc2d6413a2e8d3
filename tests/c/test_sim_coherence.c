/* Tests of the simulated memory's cache-line model and its hazards. */
#include "../../src/core/memory.h"
#include "../../src/core/sim.h"
#include "../../src/core/sim_lines.h"
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MiB (1024ull * 1024ull)
#define PAGE 4096ull
#define BASE 0x10000000ull

static pa_memory *
open_model(uint64_t line, int coherence)
{
    pa_sim_options o = {line, coherence, 0};
    pa_memory *m = NULL;
    CHECK_EQ(pa_sim_open(NULL, BASE, 4 * MiB, &o, &m), 0);
    return m;
}

static pa_block
cached_block(pa_memory *m, uint64_t size)
{
    pa_block b;
    CHECK_EQ(pa_memory_alloc(m, size, 0, 0, PA_ALLOC_CACHEABLE, &b), 0);
    CHECK(!b.coherent);
    return b;
}

static pa_hazard got[PA_HAZARDS_KEPT];
static size_t ngot;

/* Takes this thread's hazards into got/ngot. */
static void
take(void)
{
    ngot = pa_hazards_take(got, PA_HAZARDS_KEPT, NULL);
}

/* Whether hazard i is `kind` over bytes [lo, hi) of b. */
static int
is(size_t i, int kind, const pa_block *b, uint64_t lo, uint64_t hi)
{
    if (i >= ngot) {
        return 0;
    }
    const pa_hazard *h = &got[i];
    if (!(h->kind == kind && h->block == b->device_address
            && h->start == b->device_address + lo
            && h->end == b->device_address + hi)) {
        fprintf(stderr, "  hazard %zu: kind %d, bytes %llu to %llu of the "
                "block at 0x%llx\n", i, h->kind,
                (unsigned long long)(h->start - h->block),
                (unsigned long long)(h->end - h->block),
                (unsigned long long)h->block);
        return 0;
    }
    return 1;
}

/* Records b's standing hazards, CPU writes (if unflushed) then device
 * writes, as far as one record holds. */
static void
check(pa_memory *m, const pa_block *b, int unflushed)
{
    uint64_t from = 0;
    if (unflushed) {
        from = pa_memory_check(m, b, PA_HAZARD_UNFLUSHED, 0);
        if (from < b->size) {
            return;             /* the record is full */
        }
    }
    pa_memory_check(m, b, PA_HAZARD_UNINVALIDATED, 0);
}

static uint8_t
device_byte(pa_memory *m, const pa_block *b, uint64_t at)
{
    uint8_t v = 0;
    CHECK_EQ(pa_memory_device_read(m, b->device_address + at, &v, 1), 0);
    return v;
}

static void
device_fill(pa_memory *m, const pa_block *b, uint64_t at, uint64_t n,
            uint8_t v)
{
    uint8_t *bytes = malloc(n);
    memset(bytes, v, n);
    CHECK_EQ(pa_memory_device_write(m, b->device_address + at, bytes, n), 0);
    free(bytes);
}

/* A correct program: flushing a whole buffer again must not
 * write the clean lines of the device's output back over it. */
static void
test_flush_leaves_clean_lines_alone(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, 2 * PAGE);
    uint8_t *cpu = b.cpu;
    take();
    memset(cpu, 1, PAGE);                       /* input */
    CHECK_EQ(pa_memory_flush(m, &b, 0, b.size), 0);
    device_fill(m, &b, PAGE, PAGE, 7);          /* output */
    memset(cpu, 2, PAGE);                       /* new input */
    CHECK_EQ(pa_memory_flush(m, &b, 0, b.size), 0);
    CHECK_EQ(device_byte(m, &b, 0), 2);
    CHECK_EQ(device_byte(m, &b, PAGE), 7);
    CHECK_EQ(device_byte(m, &b, 2 * PAGE - 1), 7);
    CHECK_EQ(pa_memory_invalidate(m, &b, 0, b.size), 0);
    CHECK_EQ(cpu[PAGE], 7);
    CHECK_EQ(cpu[0], 2);
    check(m, &b, 1);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_flush_writes_back_whole_dirty_lines_only(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, PAGE);
    uint8_t *cpu = b.cpu;
    memset(cpu, 0xAB, 256);
    CHECK_EQ(pa_memory_flush(m, &b, 70, 1), 0);     /* line 64 only */
    CHECK_EQ(device_byte(m, &b, 64), 0xAB);
    CHECK_EQ(device_byte(m, &b, 127), 0xAB);
    take();             /* the reads of lines 0 and 128 are hazards */
    CHECK_EQ(ngot, 0);  /* ...but those bytes were not read */
    uint8_t dev[256];
    CHECK_EQ(pa_memory_device_read(m, b.device_address, dev, 256), 0);
    CHECK_EQ(dev[63], 0);
    CHECK_EQ(dev[128], 0);
    take();
    CHECK_EQ(ngot, 2);
    CHECK(is(0, PA_HAZARD_UNFLUSHED_READ, &b, 0, 64));
    CHECK(is(1, PA_HAZARD_UNFLUSHED_READ, &b, 128, 256));
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_forgotten_flush_is_reported_over_the_bytes_read(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, PAGE);
    ((uint8_t *)b.cpu)[100] = 9;
    uint8_t dev[40];
    CHECK_EQ(pa_memory_device_read(m, b.device_address + 90, dev, 40), 0);
    CHECK_EQ(dev[10], 0);                   /* stale, as on a board */
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_UNFLUSHED_READ, &b, 90, 128));
    /* Reading clean lines is no hazard. */
    CHECK_EQ(pa_memory_device_read(m, b.device_address + 128, dev, 40), 0);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_device_write_under_dirty_lines(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, PAGE);
    uint8_t *cpu = b.cpu;
    cpu[130] = 1;
    device_fill(m, &b, 120, 20, 5);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_WRITE_UNDER_DIRTY, &b, 128, 140));
    /* The write-back that follows clobbers what the device wrote. */
    CHECK_EQ(pa_memory_flush(m, &b, 0, PAGE), 0);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_WRITEBACK_CLOBBERED, &b, 128, 192));
    CHECK_EQ(device_byte(m, &b, 135), 0);   /* the CPU's line won */
    CHECK_EQ(device_byte(m, &b, 125), 5);   /* a clean line: kept */
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_invalidate_discards_dirty_interior_lines(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, PAGE);
    uint8_t *cpu = b.cpu;
    memset(cpu + 64, 3, 64);
    device_fill(m, &b, 0, 512, 8);          /* hazard: line 64 is dirty */
    take();
    CHECK_EQ(pa_memory_invalidate(m, &b, 0, 512), 0);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_DISCARDED, &b, 64, 128));
    CHECK_EQ(cpu[64], 8);                   /* the CPU's write is lost */
    CHECK_EQ(cpu[511], 8);
    check(m, &b, 1);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

/* Lines the span covers in part are cleaned, so the CPU's bytes outside
 * it survive and reach the device; no hazard, no device write. */
static void
test_invalidate_cleans_partial_edge_lines(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, PAGE);
    uint8_t *cpu = b.cpu;
    cpu[10] = 1;
    cpu[200] = 2;
    CHECK_EQ(pa_memory_invalidate(m, &b, 32, 192), 0);   /* [32, 224) */
    take();
    CHECK_EQ(ngot, 0);
    CHECK_EQ(cpu[10], 1);
    CHECK_EQ(cpu[200], 2);
    CHECK_EQ(device_byte(m, &b, 10), 1);
    CHECK_EQ(device_byte(m, &b, 200), 2);
    /* One line, covered in part at both ends. */
    cpu[300] = 4;
    CHECK_EQ(pa_memory_invalidate(m, &b, 260, 8), 0);
    CHECK_EQ(cpu[300], 4);
    CHECK_EQ(device_byte(m, &b, 300), 4);
    /* A dirty edge line over device data: the cleaning clobbers it. */
    cpu[1000] = 6;
    device_fill(m, &b, 1000, 1, 9);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_WRITE_UNDER_DIRTY, &b, 1000, 1001));
    CHECK_EQ(pa_memory_invalidate(m, &b, 1024, 64), 0);
    CHECK_EQ(pa_memory_invalidate(m, &b, 990, 20), 0);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_WRITEBACK_CLOBBERED, &b, 960, 1024));
    CHECK_EQ(device_byte(m, &b, 1000), 6);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_check_lists_standing_hazards(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_RAISE);
    pa_block b = cached_block(m, 2 * PAGE);
    uint8_t *cpu = b.cpu;
    memset(cpu + 64, 1, 128);
    device_fill(m, &b, PAGE, 100, 2);
    take();
    check(m, &b, 1);
    take();
    CHECK_EQ(ngot, 2);
    CHECK(is(0, PA_HAZARD_UNFLUSHED, &b, 64, 192));
    CHECK(is(1, PA_HAZARD_UNINVALIDATED, &b, PAGE, PAGE + 128));
    check(m, &b, 0);                    /* device writes only */
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_UNINVALIDATED, &b, PAGE, PAGE + 128));
    CHECK_EQ(pa_memory_flush(m, &b, 0, PAGE), 0);
    CHECK_EQ(pa_memory_invalidate(m, &b, PAGE, PAGE), 0);
    check(m, &b, 1);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_line_size_option(void)
{
    pa_memory *m = open_model(256, PA_COHERENCE_WARN);
    CHECK_EQ(pa_memory_line_size(m), 256);
    CHECK_EQ(pa_memory_coherence(m), PA_COHERENCE_WARN);
    pa_block b = cached_block(m, PAGE);
    ((uint8_t *)b.cpu)[300] = 1;
    check(m, &b, 1);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_UNFLUSHED, &b, 256, 512));
    pa_memory_release(m, &b);
    pa_memory_close(m);
    static const uint64_t bad[] = {PA_SIM_LINE_MIN / 2, 48, 2 * PAGE};
    for (size_t i = 0; i < 3; i++) {
        pa_sim_options o = {bad[i], PA_COHERENCE_WARN, 0};
        pa_memory *x = NULL;
        CHECK_EQ(pa_sim_open(NULL, BASE, MiB, &o, &x), -EINVAL);
    }
    pa_sim_options o = {64, 3, 0};
    pa_memory *x = NULL;
    CHECK_EQ(pa_sim_open(NULL, BASE, MiB, &o, &x), -EINVAL);
    /* The limits themselves are lines; no options is the default line. */
    static const uint64_t good[] = {PA_SIM_LINE_MIN, PAGE};
    for (size_t i = 0; i < 2; i++) {
        o = (pa_sim_options){good[i], PA_COHERENCE_WARN, 0};
        CHECK_EQ(pa_sim_open(NULL, BASE, MiB, &o, &x), 0);
        CHECK_EQ(pa_memory_line_size(x), good[i]);
        pa_memory_close(x);
    }
    CHECK_EQ(pa_sim_open(NULL, BASE, MiB, NULL, &x), 0);
    CHECK_EQ(pa_memory_line_size(x), PA_SIM_LINE_DEFAULT);
    CHECK_EQ(pa_memory_coherence(x), PA_COHERENCE_WARN);
    pa_memory_close(x);
}

/* Off: the line model's bytes, nothing recorded: a flush writes back the
 * whole dirty line, and invalidate reloads the clean edge lines. */
static void
test_tracking_off(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_OFF);
    CHECK_EQ(pa_memory_coherence(m), PA_COHERENCE_OFF);
    pa_block b = cached_block(m, PAGE);
    uint8_t *cpu = b.cpu;
    memset(cpu, 0xAB, 64);
    CHECK_EQ(device_byte(m, &b, 0), 0);
    CHECK_EQ(pa_memory_flush(m, &b, 8, 16), 0);
    CHECK_EQ(device_byte(m, &b, 0), 0xAB);
    CHECK_EQ(device_byte(m, &b, 63), 0xAB);
    CHECK_EQ(device_byte(m, &b, 64), 0);
    device_fill(m, &b, 64, 64, 7);
    CHECK_EQ(pa_memory_invalidate(m, &b, 72, 8), 0);
    CHECK_EQ(cpu[64], 7);
    CHECK_EQ(cpu[127], 7);
    check(m, &b, 1);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

/* Uncached blocks are one copy: nothing to report, ever. */
static void
test_uncached_blocks_have_no_hazards(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_RAISE);
    pa_block c = cached_block(m, PAGE);
    pa_block u;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &u), 0);
    ((uint8_t *)u.cpu)[5] = 1;
    device_fill(m, &u, 0, 64, 2);
    CHECK_EQ(device_byte(m, &u, 5), 2);
    take();
    CHECK_EQ(ngot, 0);
    /* Released and taken again cacheable, a block starts clean. */
    uint64_t addr = u.device_address;
    pa_memory_release(m, &c);
    pa_memory_release(m, &u);
    pa_stats st;
    pa_memory_stats(m, &st);            /* empties the reuse cache */
    pa_block again = cached_block(m, 2 * PAGE);
    CHECK(again.device_address <= addr
          && addr < again.device_address + again.size);
    check(m, &again, 1);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &again);
    pa_memory_close(m);
}

/* zero=False still starts a block clean while tracking: a previous
 * user's unsynced lines are not this one's hazards. */
static void
test_unzeroed_blocks_start_clean(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block a = cached_block(m, 2 * MiB), b;
    memset(a.cpu, 1, a.size);
    device_fill(m, &a, 0, PAGE, 2);
    take();
    uint64_t addr = a.device_address;
    pa_memory_release(m, &a);
    CHECK_EQ(pa_memory_alloc(m, 2 * MiB, 0, 0,
                             PA_ALLOC_CACHEABLE | PA_ALLOC_UNZEROED, &b), 0);
    CHECK_EQ(b.device_address, addr);
    CHECK_EQ(((uint8_t *)b.cpu)[5], 0);
    check(m, &b, 1);
    take();
    CHECK_EQ(ngot, 0);
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_hazards_merge_and_overflow(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, PAGE);
    uint8_t *cpu = b.cpu;
    for (uint64_t at = 0; at < PAGE; at += 128) {
        cpu[at] = 1;            /* every other line dirty: 32 ranges */
    }
    /* A check stops where the record is full, and goes on from there. */
    uint64_t from = pa_memory_check(m, &b, PA_HAZARD_UNFLUSHED, 0);
    CHECK_EQ(from, PA_HAZARDS_KEPT * 128);
    take();
    CHECK_EQ(ngot, PA_HAZARDS_KEPT);
    CHECK(is(PA_HAZARDS_KEPT - 1, PA_HAZARD_UNFLUSHED, &b, from - 128,
             from - 64));
    CHECK_EQ(pa_memory_check(m, &b, PA_HAZARD_UNFLUSHED, from), PAGE);
    take();
    CHECK_EQ(ngot, PAGE / 128 - PA_HAZARDS_KEPT);
    CHECK(is(0, PA_HAZARD_UNFLUSHED, &b, from, from + 64));
    /* Operations that find more than a record holds count the rest. */
    uint8_t dev[PAGE];
    CHECK_EQ(pa_memory_device_read(m, b.device_address, dev, PAGE), 0);
    uint64_t lost = 0;
    ngot = pa_hazards_take(got, PA_HAZARDS_KEPT, &lost);
    CHECK_EQ(ngot, PA_HAZARDS_KEPT);
    CHECK_EQ(lost, PAGE / 128 - PA_HAZARDS_KEPT);
    CHECK(!pa_hazards_pending());
    memset(cpu, 1, PAGE);       /* one run of dirty lines: one record */
    CHECK_EQ(pa_memory_check(m, &b, PA_HAZARD_UNFLUSHED, 0), PAGE);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_UNFLUSHED, &b, 0, PAGE));
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

/* What the device wrote and the CPU has not invalidated is one bitmap
 * look away; uncached blocks and an untracked sim have none. */
static void
test_device_writes_are_seen(void)
{
    pa_memory *m = open_model(64, PA_COHERENCE_WARN);
    pa_block b = cached_block(m, 2 * PAGE), u;
    CHECK_EQ(pa_memory_alloc(m, PAGE, 0, 0, 0, &u), 0);
    CHECK_EQ(pa_memory_has_device_writes(m, &b), 0);
    device_fill(m, &b, PAGE + 64, 8, 7);
    device_fill(m, &u, 0, 8, 7);
    CHECK_EQ(pa_memory_has_device_writes(m, &b), 1);
    CHECK_EQ(pa_memory_has_device_writes(m, &u), 0);
    CHECK_EQ(pa_memory_invalidate(m, &b, PAGE, 128), 0);
    CHECK_EQ(pa_memory_has_device_writes(m, &b), 0);
    pa_memory_release(m, &u);
    pa_memory_release(m, &b);
    pa_memory_close(m);

    m = open_model(128, PA_COHERENCE_OFF);
    CHECK_EQ(pa_memory_line_size(m), 128);
    b = cached_block(m, PAGE);
    device_fill(m, &b, 0, 8, 7);
    CHECK_EQ(pa_memory_has_device_writes(m, &b), 0);
    CHECK_EQ(pa_memory_check(m, &b, PA_HAZARD_UNINVALIDATED, 0), PAGE);
    CHECK(!pa_hazards_pending());
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

/* A new block's device-written lines are cleared page by page (a bit per
 * page says whether its line bits mean anything): an earlier block's
 * lines over the same pages never show through, neither in the pages the
 * device writes again nor in the others, and a page whose written lines
 * are all synced has none, whatever its page bit. */
static void
test_an_earlier_blocks_device_writes_stay_gone(void)
{
    for (uint64_t line = 16; line <= PAGE; line *= 4) {
        pa_memory *m = open_model(line, PA_COHERENCE_WARN);
        pa_block a = cached_block(m, 3 * PAGE), b;
        uint64_t old2 = 2 * PAGE - 8, old3 = 2 * PAGE + 3 * line % PAGE;
        device_fill(m, &a, 0, 8, 7);
        device_fill(m, &a, old2, 8, 7);
        device_fill(m, &a, old3, 8, 7);
        take();
        uint64_t at = a.device_address;
        pa_memory_release(m, &a);           /* never invalidated */
        CHECK_EQ(pa_memory_try_reuse(m, 3 * PAGE, 0, 0, PA_ALLOC_CACHEABLE,
                                     &b), 1);
        CHECK_EQ(b.device_address, at);
        CHECK_EQ(pa_memory_has_device_writes(m, &b), 0);
        check(m, &b, 1);
        take();
        CHECK_EQ(ngot, 0);
        /* The device writes in the first page again: only its own line
         * is written, not the earlier block's. */
        device_fill(m, &b, PAGE - 8, 8, 9);
        take();
        CHECK_EQ(ngot, 0);
        check(m, &b, 1);
        take();
        CHECK_EQ(ngot, 1);
        CHECK(is(0, PA_HAZARD_UNINVALIDATED, &b, PAGE - line, PAGE));
        /* CPU writes over the earlier block's lines flush without a
         * clobbered write; the one written line is clobbered. */
        memset(b.cpu, 1, 8);
        memset((uint8_t *)b.cpu + old3, 1, 8);
        memset((uint8_t *)b.cpu + PAGE - 8, 1, 8);
        CHECK_EQ(pa_memory_flush(m, &b, 0, b.size), 0);
        take();
        CHECK_EQ(ngot, 1);
        CHECK(is(0, PA_HAZARD_WRITEBACK_CLOBBERED, &b, PAGE - line, PAGE));
        CHECK_EQ(pa_memory_has_device_writes(m, &b), 0);
        CHECK_EQ(device_byte(m, &b, old2), 0);   /* zeroed */
        CHECK_EQ(pa_memory_invalidate(m, &b, 0, b.size), 0);
        CHECK_EQ(((uint8_t *)b.cpu)[old2], 0);
        check(m, &b, 1);
        take();
        CHECK_EQ(ngot, 0);
        pa_memory_release(m, &b);
        pa_memory_close(m);
    }
}

/* A backend that has nothing to give and no coherence slot. */
static int
plain_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
            int cacheable, pa_block *blk)
{
    (void)m, (void)size, (void)align, (void)limit, (void)cacheable;
    (void)blk;
    return -ENOMEM;
}

static void
plain_free(pa_memory *m, pa_block *blk, int keep_va)
{
    (void)m, (void)blk, (void)keep_va;
}

static int
plain_sync(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    (void)m, (void)blk, (void)offset, (void)len;
    return 0;
}

static void
plain_stats(pa_memory *m, pa_stats *out)
{
    (void)m;
    memset(out, 0, sizeof(*out));
}

static void
plain_close(pa_memory *m)
{
    (void)m;
}

/* Nothing tracked, and the generic calls say so. */
static void
test_other_memories_track_nothing(void)
{
    static const pa_backend_ops plain = {
        .kind = "plain", .alloc = plain_alloc, .free = plain_free,
        .flush = plain_sync, .invalidate = plain_sync,
        .stats = plain_stats, .close = plain_close};
    pa_memory *m = NULL;
    CHECK_EQ(pa_memory_create(&plain, NULL, BASE, MiB, &m), 0);
    pa_block b = {.device_address = BASE, .size = PAGE, .cacheable = 1};
    CHECK_EQ(pa_memory_coherence(m), -1);
    CHECK_EQ(pa_memory_line_size(m), 0);
    CHECK_EQ(pa_memory_has_device_writes(m, &b), 0);
    CHECK_EQ(pa_memory_check(m, &b, PA_HAZARD_UNFLUSHED, 0), PAGE);
    CHECK_EQ(pa_memory_check(m, &b, PA_HAZARD_UNINVALIDATED, 8), PAGE);
    CHECK(!pa_hazards_pending());
    pa_memory_close(m);
}

/* The one check of the sim's options names the first one that is wrong,
 * and pa_sim_open refuses exactly what it names. */
/* Runs child() in a forked child and waits for it to exit 0. */
static void
in_child(void (*child)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        child(arg);
        _exit(0);
    }
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

typedef struct forked_write {
    pa_memory *m;
    pa_block b;
} forked_write;

static void
child_device_fill(void *arg)
{
    forked_write *w = arg;
    device_fill(w->m, &w->b, 0, PAGE, 7);
    if (check_failures != 0) {
        _exit(1);
    }
}

/* The model describes shared memory, so it is shared as that memory is:
 * a forked child's device write is a device write in the parent too, and
 * the parent's flush of its unchanged, synced lines leaves the device's
 * bytes alone, with no hazard but the standing uninvalidated one. */
static void
test_a_forked_childs_device_writes_are_the_parents(void)
{
    forked_write w = {open_model(64, PA_COHERENCE_WARN), {0}};
    w.b = cached_block(w.m, PAGE);
    memset(w.b.cpu, 1, PAGE);
    CHECK_EQ(pa_memory_flush(w.m, &w.b, 0, PAGE), 0);
    in_child(child_device_fill, &w);
    CHECK_EQ(pa_memory_has_device_writes(w.m, &w.b), 1);
    CHECK_EQ(pa_memory_flush(w.m, &w.b, 0, PAGE), 0);
    take();
    CHECK_EQ(ngot, 0);
    CHECK_EQ(device_byte(w.m, &w.b, 0), 7);
    CHECK_EQ(device_byte(w.m, &w.b, PAGE - 1), 7);
    check(w.m, &w.b, 1);
    take();
    CHECK_EQ(ngot, 1);
    CHECK(is(0, PA_HAZARD_UNINVALIDATED, &w.b, 0, PAGE));
    CHECK_EQ(pa_memory_invalidate(w.m, &w.b, 0, PAGE), 0);
    CHECK_EQ(((uint8_t *)w.b.cpu)[PAGE - 1], 7);
    pa_memory_release(w.m, &w.b);
    pa_memory_close(w.m);
}

static void
child_dies_holding(void *arg)
{
    sim_lines_lock(arg);
    _exit(0);
}

/* A child that dies holding the model's lock does not stop the parent:
 * the lock is robust. */
static void
test_a_child_that_dies_holding_the_lock(void)
{
    if (getenv("PA_NO_ROBUST_FUTEX") != NULL) {
        printf("test_sim_coherence: the dead holder's lock skipped (qemu-user "
               "has no robust futexes)\n");
        return;
    }
    int fds[2] = {-1, -1};
    uint8_t *pools[2] = {NULL, NULL};
    CHECK_EQ(sim_pool_map(&pa_sys_real, "test-device", PAGE, &fds[0],
                          &pools[0]), 0);
    CHECK_EQ(sim_pool_map(&pa_sys_real, "test-cache", PAGE, &fds[1],
                          &pools[1]), 0);
    sim_lines l;
    CHECK_EQ(sim_lines_init(&l, &pa_sys_real, BASE, PAGE, pools[0],
                            pools[1], 64, PA_COHERENCE_WARN, 0), 0);
    in_child(child_dies_holding, &l);
    pa_block b = {.device_address = BASE, .size = PAGE};
    uint8_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8] = {0};
    alarm(10);                  /* a hang is a failure */
    sim_lines_device_io(&l, &b, 8, sizeof(in), NULL, in);
    sim_lines_device_io(&l, &b, 8, sizeof(out), out, NULL);
    alarm(0);
    CHECK(memcmp(in, out, sizeof(in)) == 0);
    sim_lines_destroy(&l);
    for (int i = 0; i < 2; i++) {
        munmap(pools[i], PAGE);
        close(fds[i]);
    }
}

static void
test_invalid_options_are_named(void)
{
    uint64_t page = pa_page_size();
    struct {
        uint64_t base, size, line;
        int coherence;
        const char *named;
    } cases[] = {
        {BASE, MiB, 64, PA_COHERENCE_WARN, NULL},
        {BASE, MiB, PA_SIM_LINE_MIN, PA_COHERENCE_OFF, NULL},
        {BASE, MiB, 8, PA_COHERENCE_WARN, "line_size"},
        {BASE, MiB, 48, PA_COHERENCE_WARN, "line_size"},
        {BASE, MiB, 2 * page, PA_COHERENCE_WARN, "line_size"},
        {BASE, MiB, 64, 3, "coherence"},
        {BASE, 0, 64, PA_COHERENCE_WARN, "size"},
        {BASE, MiB + 1, 64, PA_COHERENCE_WARN, "size"},
        {BASE + 1, MiB, 64, PA_COHERENCE_WARN, "base_address"},
        {UINT64_MAX - page + 1, 2 * page, 64, PA_COHERENCE_WARN,
         "base_address"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pa_sim_options o = {cases[i].line, cases[i].coherence, 0};
        const char *named = pa_sim_invalid_option(cases[i].base,
                                                  cases[i].size, &o);
        CHECK(named == cases[i].named
              || (named != NULL && cases[i].named != NULL
                  && strcmp(named, cases[i].named) == 0));
        pa_memory *m = NULL;
        int rc = pa_sim_open(NULL, cases[i].base, cases[i].size, &o, &m);
        CHECK_EQ(rc, cases[i].named == NULL ? 0 : -EINVAL);
        if (m != NULL) {
            pa_memory_close(m);
        }
    }
}

int
main(void)
{
    RUN(test_invalid_options_are_named);
    RUN(test_flush_leaves_clean_lines_alone);
    RUN(test_flush_writes_back_whole_dirty_lines_only);
    RUN(test_forgotten_flush_is_reported_over_the_bytes_read);
    RUN(test_device_write_under_dirty_lines);
    RUN(test_invalidate_discards_dirty_interior_lines);
    RUN(test_invalidate_cleans_partial_edge_lines);
    RUN(test_check_lists_standing_hazards);
    RUN(test_line_size_option);
    RUN(test_tracking_off);
    RUN(test_uncached_blocks_have_no_hazards);
    RUN(test_unzeroed_blocks_start_clean);
    RUN(test_hazards_merge_and_overflow);
    RUN(test_device_writes_are_seen);
    RUN(test_an_earlier_blocks_device_writes_stay_gone);
    RUN(test_other_memories_track_nothing);
    RUN(test_a_forked_childs_device_writes_are_the_parents);
    RUN(test_a_child_that_dies_holding_the_lock);
    return check_report("test_sim_coherence");
}

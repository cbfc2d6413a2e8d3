/* The allocator benchmark's workload (see heap_workload.h). */
#include "heap_workload.h"
#include "heap.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define PAGE 4096u
#define SPAN 16u                /* blocks of 1..SPAN pages */

uint64_t
pa_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double
pa_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* A live block, in 8 bytes (the first page's number and the handle), so
 * that the harness's own table is no larger than malloc's pointers: its
 * random read is part of every figure. */
typedef struct held {
    uint32_t page;
    uint32_t handle;
} held;

static int
take(pa_heap *h, uint64_t size, held *b)
{
    uint64_t addr;
    int rc = pa_heap_alloc_block(h, size, 0, 0, &addr, &b->handle);
    b->page = (uint32_t)(addr / PAGE);
    return rc;
}

int
pa_heap_workload(uint64_t live, uint64_t ops, uint64_t seed, int ahead,
                 double *ns, uint64_t *meta)
{
    if (live < 1 || live > PA_WORKLOAD_MAX_LIVE || ops < 1) {
        return -EINVAL;
    }
    pa_heap *h = NULL;
    held *b = malloc(live * sizeof(held));
    if (b == NULL || pa_heap_create(0, 4ull * SPAN * PAGE * live, PAGE, &h)) {
        free(b);
        return -ENOMEM;
    }
    int failed = 0;
    for (uint64_t i = 0; i < live && !failed; i++) {
        failed = take(h, (1 + pa_splitmix(&seed) % SPAN) * PAGE, &b[i]) != 0;
    }
    double t0 = pa_now_ns();
    uint64_t next = pa_splitmix(&seed);
    for (uint64_t i = 0; i < ops && !failed; i++) {
        uint64_t r = next;
        held *v = &b[r % live];
        next = pa_splitmix(&seed);
        if (ahead) {
            __builtin_prefetch(&b[next % live]);
        }
        failed = pa_heap_free_block(h, v->handle, (uint64_t)v->page * PAGE)
                     != 0
                 || take(h, (1 + (r >> 32) % SPAN) * PAGE, v) != 0;
    }
    *ns = (pa_now_ns() - t0) / (double)ops;
    pa_heap_stats s;
    pa_heap_get_stats(h, &s);
    *meta = s.meta_bytes;
    failed = failed || pa_heap_check(h) != 0;
    pa_heap_destroy(h);
    free(b);
    return failed ? -EFAULT : 0;
}

int
pa_random_read(uint64_t nbytes, uint64_t reads, uint64_t seed, double *ns)
{
    size_t lines = (size_t)(nbytes / 64);
    if (lines < 2 || reads < 1) {
        return -EINVAL;
    }
    uint64_t *line = malloc(lines * 64);
    if (line == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < lines; i++) {
        line[i * 8] = i;
    }
    for (size_t i = lines - 1; i > 0; i--) {
        size_t j = (size_t)(pa_splitmix(&seed) % i);
        uint64_t t = line[i * 8];
        line[i * 8] = line[j * 8];
        line[j * 8] = t;
    }
    uint64_t at = 0;
    for (size_t i = 0; i < lines; i++) {       /* warm: every line once */
        at = line[at * 8];
    }
    double t0 = pa_now_ns();
    for (uint64_t i = 0; i < reads; i++) {
        at = line[at * 8];
    }
    *ns = (pa_now_ns() - t0) / (double)reads;
    volatile uint64_t sink = at;    /* the reads are not dead code */
    (void)sink;
    free(line);
    return 0;
}

/*
 * pa_heap against the C library's malloc/free, in one process, on the
 * workload of benchmarks/bench.py's heap line: with N blocks live (sizes
 * of 1 to 16 pages), free a random one and allocate a random size in its
 * place, 500,000 times.  Each figure is the best of several rounds taken
 * in turn with the others.  The heap's extra cost at 100,000 live over
 * 100 live is given in units of one dependent random read over an array
 * the size of the heap's bookkeeping (a cache miss there), measured here.
 *
 * Transparent huge pages are off (as on PYNQ boards' kernels), so that
 * the heap's bookkeeping and the unit's array lie in pages of one size.
 *
 * malloc is a peer, not a model: it keeps its bookkeeping inside the
 * memory it hands out, which pa_heap must not (device memory), and it
 * touches that memory (one page per live block here).
 *
 * bench.py's heap row runs this program once per figure, so that the
 * settings a measurement needs change this process and never the user's:
 *   heap_bench heap LIVE OPS SEED     ->  ns_per_op=X meta_bytes=N
 *   heap_bench read NBYTES READS SEED ->  ns_per_read=X
 */
#include "heap_workload.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define PAGE 4096u
#define SPAN 16u                /* blocks of 1..SPAN pages, as the workload */
#define OPS 500000
#define ROUNDS 5

static void
die(const char *what)
{
    fprintf(stderr, "heap_bench: %s\n", what);
    exit(1);
}

/* ns per free+alloc with `live` blocks in pa_heap; *meta: its bookkeeping.
 * With `ahead` the harness's own random read no longer counts, which
 * shows what of the extra cost is the harness's; bench.py's figure is the
 * plain one. */
static double
run_heap(uint32_t live, uint64_t seed, int ahead, uint64_t *meta)
{
    double ns;
    if (pa_heap_workload(live, OPS, seed, ahead, &ns, meta) != 0) {
        die("the heap refused a request sized to fit, or broke");
    }
    return ns;
}

/* The same with malloc and free. */
static double
run_malloc(uint32_t live, uint64_t seed)
{
    void **b = malloc(live * sizeof(void *));
    if (b == NULL) {
        die("out of memory");
    }
    for (uint32_t i = 0; i < live; i++) {
        if ((b[i] = malloc((1 + pa_splitmix(&seed) % SPAN) * PAGE)) == NULL) {
            die("malloc failed");
        }
    }
    double t0 = pa_now_ns();
    for (int i = 0; i < OPS; i++) {
        uint64_t r = pa_splitmix(&seed);
        void **v = &b[r % live];
        free(*v);
        if ((*v = malloc((1 + (r >> 32) % SPAN) * PAGE)) == NULL) {
            die("malloc failed");
        }
    }
    double ns = (pa_now_ns() - t0) / OPS;
    for (uint32_t i = 0; i < live; i++) {
        free(b[i]);
    }
    free(b);
    return ns;
}

static double
random_read(uint64_t nbytes, uint64_t seed)
{
    double ns;
    if (pa_random_read(nbytes, 2000000, seed, &ns) != 0) {
        die("out of memory");
    }
    return ns;
}

static double
min(double a, double b)
{
    return a < b ? a : b;
}

/* A decimal count of at least `lo`, or exit 2. */
static uint64_t
count(const char *text, uint64_t lo)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-'
            || v < lo) {
        fprintf(stderr, "heap_bench: bad count: %s\n", text);
        exit(2);
    }
    return v;
}

/* One figure for bench.py, machine-readable on stdout; 0, 1 if the
 * workload failed, 2 for bad arguments. */
static int
one_figure(char **argv)
{
#ifdef M_MMAP_THRESHOLD
    /* Large blocks in fresh mappings, which the THP setting reaches:
     * glibc otherwise serves them, after a first one is freed, from its
     * heap, whose pages may have come huge before. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    uint64_t a = count(argv[2], 1), n = count(argv[3], 1),
             seed = count(argv[4], 0);
    double ns;
    int rc;
    if (strcmp(argv[1], "heap") == 0) {
        uint64_t meta;
        if (a > 1000000) {
            fprintf(stderr, "heap_bench: LIVE must be 1 to 1,000,000\n");
            return 2;
        }
        rc = pa_heap_workload(a, n, seed, 0, &ns, &meta);
        if (rc == 0) {
            printf("ns_per_op=%.3f meta_bytes=%llu\n", ns,
                   (unsigned long long)meta);
        }
    }
    else if (strcmp(argv[1], "read") == 0) {
        if (a < 128) {
            fprintf(stderr, "heap_bench: NBYTES must be at least 128\n");
            return 2;
        }
        rc = pa_random_read(a, n, seed, &ns);
        if (rc == 0) {
            printf("ns_per_read=%.3f\n", ns);
        }
    }
    else {
        fprintf(stderr, "heap_bench: unknown figure: %s\n", argv[1]);
        return 2;
    }
    if (rc == -ENOMEM) {
        die("out of memory");
    }
    if (rc != 0) {
        die("the heap refused a request sized to fit, or broke");
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 5) {
        return one_figure(argv);
    }
    if (argc != 1) {
        fprintf(stderr, "usage: heap_bench\n"
                "       heap_bench heap LIVE OPS SEED\n"
                "       heap_bench read NBYTES READS SEED\n");
        return 2;
    }
    double heap_small = 1e30, heap_large = 1e30, malloc_small = 1e30,
           malloc_large = 1e30, unit = 1e30, ahead_small = 1e30,
           ahead_large = 1e30;
    uint64_t meta_small = 0, meta_large = 0;
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    for (uint64_t seed = 1; seed <= ROUNDS; seed++) {
        heap_small = min(heap_small, run_heap(100, seed, 0, &meta_small));
        heap_large = min(heap_large, run_heap(100000, seed, 0, &meta_large));
        ahead_small = min(ahead_small, run_heap(100, seed, 1, &meta_small));
        ahead_large = min(ahead_large, run_heap(100000, seed, 1, &meta_large));
        malloc_small = min(malloc_small, run_malloc(100, seed));
        malloc_large = min(malloc_large, run_malloc(100000, seed));
        unit = min(unit, random_read(meta_large, seed));
    }
    printf("free+alloc of 1-16 pages, best of %d rounds of %d:\n", ROUNDS,
           OPS);
    printf("%-14s %12s %12s %12s\n", "", "100 live", "100,000 live",
           "extra");
    printf("%-14s %10.1fns %10.1fns %10.1fns\n", "pa_heap", heap_small,
           heap_large, heap_large - heap_small);
    printf("%-14s %10.1fns %10.1fns %10.1fns\n", "  read ahead", ahead_small,
           ahead_large, ahead_large - ahead_small);
    printf("%-14s %10.1fns %10.1fns %10.1fns\n", "malloc/free", malloc_small,
           malloc_large, malloc_large - malloc_small);
    printf("pa_heap bookkeeping: %llu bytes at 100 live, %llu at 100,000\n",
           (unsigned long long)meta_small, (unsigned long long)meta_large);
    printf("dependent random read over %llu bytes: %.1fns\n",
           (unsigned long long)meta_large, unit);
    printf("pa_heap's extra cost at 100,000 live: %.2f random reads "
           "(target <= 1.5); %.2f with the harness reading ahead\n",
           (heap_large - heap_small) / unit, (ahead_large - ahead_small) / unit);
    return 0;
}

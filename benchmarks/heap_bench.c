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
 * malloc (and mimalloc, where libmimalloc.so.2 is installed: Debian's
 * libmimalloc2.0) is a peer, not a model: it keeps its bookkeeping inside the memory it hands
 * out, which pa_heap must not (device memory), and it touches that memory
 * (one page per live block here), so it runs at 100,000 live at most.
 * pa_heap also runs with 4,000,000 live, its bookkeeping then far past
 * the last-level cache, so that its figure there is about memory.
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
#include <dlfcn.h>
#include <sys/prctl.h>

#define PAGE 4096u
#define SPAN 16u                /* blocks of 1..SPAN pages, as the workload */
#define OPS 500000
#define ROUNDS 5
#define MANY 4000000u           /* live blocks past the cache */

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

/* A malloc/free pair to run the workload on. */
typedef struct peer {
    const char *name;
    void *(*alloc)(size_t);
    void (*release)(void *);
} peer;

/* The same workload with a peer's malloc and free. */
static double
run_peer(const peer *p, uint32_t live, uint64_t seed)
{
    void **b = malloc(live * sizeof(void *));
    if (b == NULL) {
        die("out of memory");
    }
    for (uint32_t i = 0; i < live; i++) {
        if ((b[i] = p->alloc((1 + pa_splitmix(&seed) % SPAN) * PAGE)) == NULL) {
            die("a peer's malloc failed");
        }
    }
    double t0 = pa_now_ns();
    for (int i = 0; i < OPS; i++) {
        uint64_t r = pa_splitmix(&seed);
        void **v = &b[r % live];
        p->release(*v);
        if ((*v = p->alloc((1 + (r >> 32) % SPAN) * PAGE)) == NULL) {
            die("a peer's malloc failed");
        }
    }
    double ns = (pa_now_ns() - t0) / OPS;
    for (uint32_t i = 0; i < live; i++) {
        p->release(b[i]);
    }
    free(b);
    return ns;
}

/* The peers found: the C library's, then mimalloc by dlopen, its symbols
 * kept to itself (RTLD_LOCAL) so that it replaces nobody's malloc. */
static size_t
find_peers(peer *out)
{
    size_t n = 0;
    out[n++] = (peer){"malloc/free", malloc, free};
    void *lib = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
    void *a = lib == NULL ? NULL : dlsym(lib, "mi_malloc");
    void *r = lib == NULL ? NULL : dlsym(lib, "mi_free");
    if (a != NULL && r != NULL) {
        peer mi = {"mimalloc", NULL, NULL};
        memcpy(&mi.alloc, &a, sizeof(a));   /* object to function pointer */
        memcpy(&mi.release, &r, sizeof(r));
        out[n++] = mi;
    }
    return n;
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
        if (a > PA_WORKLOAD_MAX_LIVE) {
            fprintf(stderr, "heap_bench: LIVE must be 1 to %u\n",
                    PA_WORKLOAD_MAX_LIVE);
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
    double heap[3] = {1e30, 1e30, 1e30}, ahead[3] = {1e30, 1e30, 1e30},
           unit[3] = {1e30, 1e30, 1e30}, peer_ns[2][2];
    const uint32_t live[3] = {100, 100000, MANY};
    uint64_t meta[3] = {0, 0, 0};
    peer peers[2];
    size_t n_peers = find_peers(peers);
    for (size_t p = 0; p < n_peers; p++) {
        peer_ns[p][0] = peer_ns[p][1] = 1e30;
    }
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    for (uint64_t seed = 1; seed <= ROUNDS; seed++) {
        for (int i = 0; i < 3; i++) {
            heap[i] = min(heap[i], run_heap(live[i], seed, 0, &meta[i]));
            ahead[i] = min(ahead[i], run_heap(live[i], seed, 1, &meta[i]));
            if (i > 0) {
                unit[i] = min(unit[i], random_read(meta[i], seed));
            }
        }
        for (size_t p = 0; p < n_peers; p++) {
            for (int i = 0; i < 2; i++) {
                peer_ns[p][i] = min(peer_ns[p][i],
                                    run_peer(&peers[p], live[i], seed));
            }
        }
    }
    printf("free+alloc of 1-16 pages, best of %d rounds of %d:\n", ROUNDS,
           OPS);
    printf("%-14s %12s %12s %12s\n", "", "100 live", "100,000 live",
           "4,000,000");
    printf("%-14s %10.1fns %10.1fns %10.1fns\n", "pa_heap", heap[0], heap[1],
           heap[2]);
    printf("%-14s %10.1fns %10.1fns %10.1fns\n", "  read ahead", ahead[0],
           ahead[1], ahead[2]);
    for (size_t p = 0; p < n_peers; p++) {
        printf("%-14s %10.1fns %10.1fns %12s\n", peers[p].name,
               peer_ns[p][0], peer_ns[p][1], "-");
    }
    printf("pa_heap bookkeeping: %llu bytes at 100 live, %llu at 100,000, "
           "%llu at 4,000,000\n", (unsigned long long)meta[0],
           (unsigned long long)meta[1], (unsigned long long)meta[2]);
    for (int i = 1; i < 3; i++) {
        printf("dependent random read over %llu bytes: %.1fns; pa_heap's "
               "extra cost at %u live over 100: %.2f random reads (target "
               "<= 1.5), %.2f with the harness reading ahead\n",
               (unsigned long long)meta[i], unit[i], live[i],
               (heap[i] - heap[0]) / unit[i], (ahead[i] - ahead[0]) / unit[i]);
    }
    return 0;
}

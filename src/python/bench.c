/*
 * C-side helpers for benchmarks/bench.py; nothing else uses them.
 *
 * _heap_bench(live_blocks, operations, seed) -> (ns per operation,
 *     bookkeeping bytes): the allocator's own cost, free of Python's.
 *     With `live_blocks` blocks allocated, it times `operations` rounds of
 *     freeing a random block and allocating a random size in its place.
 *     benchmarks/heap_bench.c runs the same workload outside Python.
 * _random_read_bench(nbytes, reads, seed) -> ns per read: one dependent
 *     read at a random cache line of an array of nbytes, the cost of a
 *     cache miss over memory of that size (the heap's unit).
 *
 * Both run with transparent huge pages off, so that the heap's bookkeeping
 * and the array of the unit lie in pages of the same size (with THP on,
 * either may or may not get huge pages, and a random read's cost differs
 * by 4x with the TLB misses); PYNQ boards' kernels have no THP either.
 */
#include "glue.h"
#include "heap.h"

#include <malloc.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

/* Turns transparent huge pages off for this process; returns the old
 * setting, for thp_restore. */
static int
thp_off(void)
{
#ifdef M_MMAP_THRESHOLD
    /* Large blocks in fresh mappings, which the setting reaches: glibc
     * otherwise serves them, after a first one is freed, from its heap,
     * whose pages may have come huge before. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    int was = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    return was;
}

static void
thp_restore(int was)
{
    if (was == 0) {
        prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
    }
}

static uint64_t
splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* A live block, in 8 bytes (the first page's number and the handle), so
 * that the harness's own table is no larger than the 8-byte addresses it
 * kept before handles: its random read is part of every figure. */
typedef struct held {
    uint32_t page;
    uint32_t handle;
} held;

/* Allocates size bytes into *b; 0 or an error. */
static int
take(pa_heap *h, uint64_t size, held *b)
{
    uint64_t addr;
    int rc = pa_heap_alloc_block(h, size, 0, 0, &addr, &b->handle);
    b->page = (uint32_t)(addr / 4096);
    return rc;
}

PyObject *
pa_heap_bench(PyObject *module, PyObject *args)
{
    Py_ssize_t live, ops;
    unsigned long long seed_arg;
    (void)module;
    if (!PyArg_ParseTuple(args, "nnK:_heap_bench", &live, &ops, &seed_arg)) {
        return NULL;
    }
    uint64_t seed = seed_arg;
    if (live < 1 || ops < 1 || live > 1000000) {
        PyErr_SetString(PyExc_ValueError, "live_blocks must be 1 to 1,000,000 "
                        "and operations positive");
        return NULL;
    }
    const uint64_t page = 4096, span = 16;     /* blocks of 1-16 pages */
    held *blocks = PyMem_Malloc((size_t)live * sizeof(held));
    pa_heap *h = NULL;
    if (blocks == NULL
            || pa_heap_create(0, 4 * span * page * (uint64_t)live, page, &h)) {
        PyMem_Free(blocks);
        return PyErr_NoMemory();
    }
    int failed = 0;
    double ns = 0;
    pa_heap_stats stats;
    int thp = thp_off();
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < live && !failed; i++) {
        failed = take(h, (1 + splitmix(&seed) % span) * page,
                      &blocks[i]) != 0;
    }
    double t0 = now_ns();
    for (Py_ssize_t i = 0; i < ops && !failed; i++) {
        uint64_t r = splitmix(&seed);
        held *victim = &blocks[r % (uint64_t)live];
        failed = pa_heap_free_block(h, victim->handle,
                                    (uint64_t)victim->page * page) != 0
                 || take(h, (1 + (r >> 32) % span) * page, victim) != 0;
    }
    ns = (now_ns() - t0) / (double)ops;
    pa_heap_get_stats(h, &stats);
    Py_END_ALLOW_THREADS
    pa_heap_destroy(h);
    thp_restore(thp);
    PyMem_Free(blocks);
    if (failed) {
        PyErr_SetString(PyExc_RuntimeError, "the heap refused a request the "
                        "benchmark sized to fit");
        return NULL;
    }
    return Py_BuildValue("(dK)", ns, (unsigned long long)stats.meta_bytes);
}

PyObject *
pa_random_read_bench(PyObject *module, PyObject *args)
{
    Py_ssize_t nbytes, reads;
    unsigned long long seed_arg;
    (void)module;
    if (!PyArg_ParseTuple(args, "nnK:_random_read_bench", &nbytes, &reads,
                          &seed_arg)) {
        return NULL;
    }
    uint64_t seed = seed_arg;
    size_t lines = (size_t)nbytes / 64;
    if (lines < 2 || reads < 1) {
        PyErr_SetString(PyExc_ValueError, "nbytes must be at least 128 and "
                        "reads positive");
        return NULL;
    }
    /* One 64-byte line per slot, each naming the next in one random cycle
     * through all of them (Sattolo's shuffle), so every read depends on the
     * one before and the prefetcher cannot guess it. */
    int thp = thp_off();
    uint64_t *line = malloc(lines * 64);
    if (line == NULL) {
        thp_restore(thp);
        return PyErr_NoMemory();
    }
    double ns;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < lines; i++) {
        line[i * 8] = i;
    }
    for (size_t i = lines - 1; i > 0; i--) {
        size_t j = (size_t)(splitmix(&seed) % i);
        uint64_t t = line[i * 8];
        line[i * 8] = line[j * 8];
        line[j * 8] = t;
    }
    uint64_t at = 0;
    for (size_t i = 0; i < lines; i++) {   /* warm: every line once */
        at = line[at * 8];
    }
    double t0 = now_ns();
    for (Py_ssize_t i = 0; i < reads; i++) {
        at = line[at * 8];
    }
    ns = (now_ns() - t0) / (double)reads;
    volatile uint64_t sink = at;    /* the reads are not dead code */
    (void)sink;
    Py_END_ALLOW_THREADS
    free(line);
    thp_restore(thp);
    return PyFloat_FromDouble(ns);
}

/*
 * _heap_bench(live_blocks, operations, seed) -> nanoseconds per operation.
 *
 * The allocator's own cost, free of Python's, for benchmarks/: with
 * `live_blocks` blocks allocated, time `operations` rounds of freeing a
 * random block and allocating a random size in its place.
 */
#include "glue.h"
#include "heap.h"

#include <time.h>

static uint64_t
splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
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
    if (live < 1 || ops < 1) {
        PyErr_SetString(PyExc_ValueError, "live_blocks and operations must be "
                        "positive");
        return NULL;
    }
    const uint64_t page = 4096, span = 16;     /* blocks of 1-16 pages */
    uint64_t *addr = PyMem_Malloc((size_t)live * sizeof(uint64_t));
    pa_heap *h = NULL;
    if (addr == NULL
            || pa_heap_create(0, 4 * span * page * (uint64_t)live, page, &h)) {
        PyMem_Free(addr);
        return PyErr_NoMemory();
    }
    int failed = 0;
    double ns = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < live && !failed; i++) {
        failed = pa_heap_alloc(h, (1 + splitmix(&seed) % span) * page, 0, 0,
                               &addr[i]) != 0;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (Py_ssize_t i = 0; i < ops && !failed; i++) {
        uint64_t r = splitmix(&seed);
        size_t victim = (size_t)(r % (uint64_t)live);
        failed = pa_heap_free(h, addr[victim]) != 0
                 || pa_heap_alloc(h, (1 + (r >> 32) % span) * page, 0, 0,
                                  &addr[victim]) != 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9
          + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)ops;
    Py_END_ALLOW_THREADS
    pa_heap_destroy(h);
    PyMem_Free(addr);
    if (failed) {
        PyErr_SetString(PyExc_RuntimeError, "the heap refused a request the "
                        "benchmark sized to fit");
        return NULL;
    }
    return PyFloat_FromDouble(ns);
}

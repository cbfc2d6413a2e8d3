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
#include "heap_workload.h"

#include <errno.h>

#include <malloc.h>
#include <stdlib.h>
#include <sys/prctl.h>

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

PyObject *
pa_heap_bench(PyObject *module, PyObject *args)
{
    Py_ssize_t live, ops;
    unsigned long long seed;
    double ns = 0;
    uint64_t meta = 0;
    int rc;
    (void)module;
    if (!PyArg_ParseTuple(args, "nnK:_heap_bench", &live, &ops, &seed)) {
        return NULL;
    }
    if (live < 1 || ops < 1 || live > 1000000) {
        PyErr_SetString(PyExc_ValueError, "live_blocks must be 1 to 1,000,000 "
                        "and operations positive");
        return NULL;
    }
    int thp = thp_off();
    Py_BEGIN_ALLOW_THREADS
    rc = pa_heap_workload((uint64_t)live, (uint64_t)ops, seed, 0, &ns, &meta);
    Py_END_ALLOW_THREADS
    thp_restore(thp);
    if (rc == -ENOMEM) {
        return PyErr_NoMemory();
    }
    if (rc != 0) {
        PyErr_SetString(PyExc_RuntimeError, "the heap refused a request the "
                        "benchmark sized to fit");
        return NULL;
    }
    return Py_BuildValue("(dK)", ns, (unsigned long long)meta);
}

PyObject *
pa_random_read_bench(PyObject *module, PyObject *args)
{
    Py_ssize_t nbytes, reads;
    unsigned long long seed;
    double ns = 0;
    int rc;
    (void)module;
    if (!PyArg_ParseTuple(args, "nnK:_random_read_bench", &nbytes, &reads,
                          &seed)) {
        return NULL;
    }
    if (nbytes < 128 || reads < 1) {
        PyErr_SetString(PyExc_ValueError, "nbytes must be at least 128 and "
                        "reads positive");
        return NULL;
    }
    int thp = thp_off();
    Py_BEGIN_ALLOW_THREADS
    rc = pa_random_read((uint64_t)nbytes, (uint64_t)reads, seed, &ns);
    Py_END_ALLOW_THREADS
    thp_restore(thp);
    if (rc != 0) {
        return PyErr_NoMemory();
    }
    return PyFloat_FromDouble(ns);
}

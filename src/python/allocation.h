/*
 * allocation.c: the Allocation type, owner of one block of device memory.
 *
 * Object graph (no cycles through these types):
 *   Buffer (ndarray subclass) --base--> ... --base--> Allocation --> Memory
 * The Allocation is the `base` at the root of every array on its block, so
 * it lives exactly as long as some array can reach the mapping.
 */
#ifndef PA_ALLOCATION_H
#define PA_ALLOCATION_H

#include "numpy_api.h"

#include "memory_object.h"

struct pa_trace;

typedef struct {
    PyObject_HEAD
    MemoryObject *memory;   /* strong: a Memory outlives its allocations */
    pa_block blk;
    int freed;              /* freebuffer() was called */
    int retired;            /* the device memory has been given back */
    int busy;               /* syncs running without the GIL */
    PyObject *prev, *next;  /* the Memory's list of live Allocations */
    /* The Buffer that allocate() made on it, borrowed (its dealloc clears
     * this first of all), or NULL once gone. */
    PyObject *root;
    /* The root's shape and dtype, kept when the Allocation outlives it
     * (PYNQ's frame caches hold the Allocation as `pointer`). */
    PyArray_Descr *root_dtype;
    npy_intp *root_dims;
    int root_nd;
    struct pa_trace *trace; /* where it was allocated, while tracing */
    /* inventory.c's count of its views while it lists them, with no
     * Python code running between the count's start and its end; -1
     * otherwise. */
    Py_ssize_t views_counted;
} AllocationObject;

extern PyTypeObject pa_AllocationType;

/* A new Allocation of blk in memory, linked into its list; NULL if out of
 * memory (the caller still owns blk). */
AllocationObject *pa_allocation_new(MemoryObject *memory, const pa_block *blk);

/* Gives the device memory back now (freebuffer).  Deferred while syncs
 * run without the GIL: the last of them to end does it.  0 or -1. */
int pa_allocation_free(AllocationObject *a);

/* Around a sync that runs without the GIL.  The caller holds a strong
 * reference to `a` from before enter to after leave.  GIL held for both. */
void pa_allocation_enter(AllocationObject *a);
void pa_allocation_leave(AllocationObject *a);

/* Records root as the Buffer allocate() made on a (and the call site,
 * while tracing).  0, or -1 with an error. */
int pa_allocation_adopt_root(AllocationObject *a, PyObject *root);

/* From a Buffer's dealloc, before anything of it can run Python code:
 * if it is a's root, a forgets it (keeping its shape and dtype where they
 * are still wanted).  Never fails, never runs Python code. */
void pa_allocation_root_gone(AllocationObject *a, PyObject *buffer);

#endif

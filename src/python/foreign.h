/*
 * foreign.c: memory that pynq_alloc did not allocate, lent to Buffers by
 * its owner.  PYNQ's devices make their buffers this way: an XRT BO's
 * mapping, a test's mock, a video frame, each with a device address, the
 * owner's `device` (which syncs it) and `bo`.
 *
 * Object graph:
 *   view --base--> root Buffer --slot--> Foreign --> device, bo, memory
 *                      |
 *                      +--base--> ... the owner's memory (numpy's chain)
 * numpy's base chain keeps the owner's memory alive as long as any array
 * on it, so the memory is never released under a live view, whatever
 * freebuffer() was asked.
 */
#ifndef PA_FOREIGN_H
#define PA_FOREIGN_H

#include "numpy_api.h"

#include <stdint.h>

typedef struct {
    PyObject_HEAD
    char *cpu;                  /* the root's first element */
    npy_intp lo, hi;            /* the root's bytes: [cpu + lo, cpu + hi) */
    uint64_t device_address;    /* of cpu */
    int coherent;
    int freed;                  /* freebuffer() was called on the root */
    PyObject *device;           /* syncs it: flush/invalidate(bo, offset,
                                 * vaddr, nbytes); None if nothing does */
    PyObject *bo;               /* the owner's handle, returned as is */
    PyObject *memory;           /* whatever the owner records (PYNQ: the
                                 * memory bank), None until set */
} ForeignObject;

extern PyTypeObject pa_ForeignType;

/* A new record of root's memory, or NULL with an error.  span says
 * whether root has bytes ([lo, hi) around its data) or none (0). */
ForeignObject *pa_foreign_new(PyArrayObject *root, int span, npy_intp lo,
                              npy_intp hi, uint64_t device_address,
                              int coherent, PyObject *device, PyObject *bo);

/* 1 if arr's first element lies in f's memory, else 0. */
int pa_foreign_holds(const ForeignObject *f, PyArrayObject *arr);

/* The signed byte offset of p from f's first element. */
long long pa_foreign_offset(const ForeignObject *f, const char *p);

/* Asks f's device to flush or invalidate (`what`) the nbytes at p, which
 * the caller checked lie in f.  Exactly one call of the device's method.
 * None, or NULL with an error. */
PyObject *pa_foreign_sync(ForeignObject *f, const char *what, const char *p,
                          npy_intp nbytes);

#endif

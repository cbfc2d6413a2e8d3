/*
 * inventory.c: what holds a Memory's device memory, as records with named
 * fields (pynq_alloc._core.AllocationRecord), which pynq_alloc._inventory
 * turns into BufferInfo and sentences.
 */
#ifndef PA_INVENTORY_H
#define PA_INVENTORY_H

#include "allocation.h"

/* A new record of a struct sequence type from its n values, stolen; any
 * may be NULL (an error is set), and then so is the result. */
PyObject *pa_record_new(PyTypeObject *type, PyObject **values, int n);

/* Makes the record type and adds it to the module; 0 or -1. */
int pa_inventory_init(PyObject *module);

/* A record of a alone (views: 0), or NULL with an error. */
PyObject *pa_inventory_record(AllocationObject *a);

/* A list of records of m's allocations that hold device memory now, with
 * exact counts of their Buffer views, or NULL with an error.  Safe from
 * any thread, whatever finalizers run meanwhile: what it lists is held
 * while the records are made. */
PyObject *pa_inventory_records(MemoryObject *m);

/* "; 3 live buffers hold ..." for a MemoryError about m, or NULL (no
 * error set: the MemoryError goes out without it). */
PyObject *pa_inventory_oom_hint(MemoryObject *m);

#endif

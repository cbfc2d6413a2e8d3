/* memory_object.c: the Memory type, one source of contiguous memory. */
#ifndef PA_MEMORY_OBJECT_H
#define PA_MEMORY_OBJECT_H

#include "numpy_api.h"

#include "memory.h"

typedef struct {
    PyObject_HEAD
    pa_memory *mem;
    PyObject *weakrefs;     /* open_memory keeps one Memory per device */
    /* The newest of its Allocations that are alive, linked through their
     * `prev`/`next` (allocation.h), borrowed: the list keeps nothing
     * alive.  Changed only with the GIL held. */
    PyObject *allocations;
    /* Hazards of blocks released since the last check() (coherence.c),
     * or NULL. */
    PyObject *released_hazards;
} MemoryObject;

extern PyTypeObject pa_MemoryType;

/* A new Memory that owns mem (closed if this fails), or NULL. */
PyObject *pa_memory_wrap(pa_memory *mem);

#endif

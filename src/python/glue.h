/*
 * Shared declarations of the CPython/NumPy glue around the C core.
 *
 * Object graph (no cycles, so no type here needs the garbage collector):
 *   Buffer (ndarray subclass) --base--> ... --base--> Allocation --> Memory
 * A Buffer has no C fields of its own; what it knows about device memory
 * comes from the Allocation at the root of its base chain.
 */
#ifndef PA_GLUE_H
#define PA_GLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL pynq_alloc_ARRAY_API
#ifndef PA_GLUE_IMPORTS_NUMPY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "memory.h"
#include "hazard.h"

typedef struct {
    PyObject_HEAD
    pa_memory *mem;
    PyObject *weakrefs;     /* open_memory keeps one Memory per device */
    PyObject *allocations;  /* inventory.c: newest live Allocation, borrowed */
    PyObject *released_hazards; /* coherence.c: of blocks released since
                                   the last check(), or NULL */
} MemoryObject;

/* inventory.c: an Allocation's place in its Memory's list of live ones,
 * and what Memory.buffers() reports of it.  The list is intrusive and
 * kept under the GIL, so listing holds no references. */
typedef struct {
    PyObject *prev, *next;  /* AllocationObjects of the same Memory */
    PyObject *root;         /* borrowed: the Buffer allocate() returned;
                               NULL once it is gone */
    PyArray_Descr *dtype;   /* the root's shape and dtype, kept when the */
    npy_intp *dims;         /* Allocation outlives it (PYNQ's frame caches) */
    int nd;
    struct pa_trace *trace; /* allocation site while tracing, else NULL */
} pa_inventory_entry;

typedef struct {
    PyObject_HEAD
    MemoryObject *memory;   /* strong: a Memory outlives its allocations */
    pa_block blk;
    int freed;              /* freebuffer() was called */
    int retired;            /* the device memory has been given back */
    int busy;               /* cache maintenance running without the GIL */
    pa_inventory_entry inv;
} AllocationObject;

extern PyTypeObject pa_MemoryType;
extern PyTypeObject pa_AllocationType;
extern PyTypeObject pa_BufferType;

/* errors.c: the one place errno values become exceptions.  -ENOMEM is
 * MemoryError, -EINVAL and -EFAULT ValueError, anything else OSError
 * (with `path` as its filename when not NULL).  Always returns NULL. */
PyObject *pa_raise(int err, const char *path, const char *format, ...);
/* Always an OSError: for a backend that cannot be opened. */
PyObject *pa_raise_os(int err, const char *path, const char *format, ...);

/* allocation.c */
AllocationObject *pa_allocation_new(MemoryObject *memory, const pa_block *blk);
/* Gives the device memory back now (freebuffer); 0 or -1 with an error. */
int pa_allocation_free(AllocationObject *a);
/* Marks cache maintenance started/ended; the end may complete a deferred
 * free.  Both with the GIL held. */
void pa_allocation_enter(AllocationObject *a);
void pa_allocation_leave(AllocationObject *a);

/* memory_object.c */
PyObject *pa_memory_wrap(pa_memory *mem);

/* allocate.c: allocate(shape, dtype, ...) for a given or default target. */
PyObject *pa_allocate_impl(MemoryObject *target, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames,
                           int accept_target);
int pa_allocate_init(void);

/* module.c */
MemoryObject *pa_default_memory(void);
/* A new reference to the Memory that a target other than a Memory or None
 * stands for (PYNQ's memories and devices), or NULL with TypeError. */
MemoryObject *pa_target_memory(PyObject *target);

/* open_backends.c: _open_<kind>(**options) -> Memory, one per backend. */
extern PyMethodDef pa_open_methods[];

/* inventory.c */
void pa_inventory_add(AllocationObject *a);
void pa_inventory_remove(AllocationObject *a);
/* Records root as the Buffer allocate() made on a, and the call site when
 * tracing is on (the only cost then).  0, or -1 with an error. */
int pa_inventory_adopt(AllocationObject *a, PyObject *root);
/* module.function(*args), stealing the tuple args (which may be NULL: an
 * error already set). */
PyObject *pa_call_package(const char *module, const char *function,
                          PyObject *args);
/* What Memory.buffers() reports of one allocation, as a raw tuple (see
 * pynq_alloc/_inventory.py), or NULL with an error. */
PyObject *pa_inventory_raw(AllocationObject *a);
/* From the dealloc of every Buffer: forgets a root that goes. */
void pa_inventory_root_gone(PyObject *buffer);
/* "; 3 live buffers hold ..." for a MemoryError, or NULL (no error set). */
PyObject *pa_inventory_oom_hint(MemoryObject *m);
PyObject *pa_memory_buffers(MemoryObject *m, PyObject *unused);
PyObject *pa_memory_repr_html(MemoryObject *m, PyObject *unused);
extern const char pa_memory_buffers_doc[];
extern PyMethodDef pa_inventory_methods[];   /* _core._trace */
#define PA_INVENTORY_MEMORY_METHODS \
    {"buffers", (PyCFunction)pa_memory_buffers, METH_NOARGS, \
     pa_memory_buffers_doc}, \
    {"_repr_html_", (PyCFunction)pa_memory_repr_html, METH_NOARGS, NULL},

/* buffer.c */
int pa_buffer_type_ready(void);

/* coherence.c: the simulated memory's coherence hazards (sim.h), told to
 * the user through pynq_alloc._coherence. */
/* Warns of or raises the calling thread's hazards, as m's mode says; also
 * when nothing is pending, 0.  0, or -1 with an exception. */
int pa_coherence_report(MemoryObject *m);
/* a's device writes never invalidated, as a list for report_list (empty
 * off the sim), or NULL with an error. */
PyObject *pa_coherence_uninvalidated(AllocationObject *a);
/* Warns of or raises the hazards of such a list (stolen); 0 or -1. */
int pa_coherence_report_list(AllocationObject *a, PyObject *list);
/* Release by the last reference: keeps them for Memory.check() instead
 * (nothing may be raised there).  Never fails. */
void pa_coherence_at_release(AllocationObject *a);
PyObject *pa_coherence_check(MemoryObject *m, PyObject *unused);
PyObject *pa_memory_get_coherence(MemoryObject *m, void *closure);
extern const char pa_memory_check_doc[];

/* bench.c */
PyObject *pa_heap_bench(PyObject *module, PyObject *args);
PyObject *pa_random_read_bench(PyObject *module, PyObject *args);

#endif

/*
 * Allocation: owns one block of device memory and its CPU mapping.
 *
 * freebuffer() gives the device memory back early (parked, or the mapping
 * turns into anonymous memory: see pa_memory_retire); dealloc then keeps
 * a parked block for reuse, or unmaps the range.  Each Memory lists its live Allocations in an intrusive doubly
 * linked list (two stores to link), which holds no references.
 */
#include "allocation.h"

#include "coherence.h"
#include "tracing.h"

#include <string.h>

AllocationObject *
pa_allocation_new(MemoryObject *memory, const pa_block *blk)
{
    AllocationObject *a = PyObject_New(AllocationObject, &pa_AllocationType);
    if (a == NULL) {
        return NULL;
    }
    Py_INCREF(memory);
    a->memory = memory;
    a->blk = *blk;
    a->freed = a->retired = a->busy = 0;
    a->root = NULL;
    a->root_dtype = NULL;
    a->root_dims = NULL;
    a->root_nd = 0;
    a->trace = NULL;
    a->views_counted = -1;
    a->prev = NULL;
    a->next = memory->allocations;
    if (a->next != NULL) {
        ((AllocationObject *)a->next)->prev = (PyObject *)a;
    }
    memory->allocations = (PyObject *)a;
    return a;
}

static void
unlink_allocation(AllocationObject *a)
{
    if (a->prev != NULL) {
        ((AllocationObject *)a->prev)->next = a->next;
    }
    else {
        a->memory->allocations = a->next;
    }
    if (a->next != NULL) {
        ((AllocationObject *)a->next)->prev = a->prev;
    }
    a->prev = a->next = NULL;
}

/* Forgets the root's shape and dtype, kept only after the root went
 * while something else held its Allocation; may run the dtype's dealloc. */
static void
forget_root_shape(AllocationObject *a)
{
    PyMem_Free(a->root_dims);
    a->root_dims = NULL;
    Py_CLEAR(a->root_dtype);
}

/*
 * Gives the device memory back; the GIL is held and no sync is running.
 * If the arrays on it cannot be detached (no memory for the fresh mapping
 * that replaces it), the request still stands: `freed` stays set, so no
 * array reaches the memory as device memory any more, and the memory goes
 * back when the last of them is gone.  The user is told.  0, or -1 if the
 * warning was turned into an error.
 */
static int
retire(AllocationObject *a)
{
    if (pa_memory_try_park(a->memory->mem, &a->blk)) {
        a->retired = 1;     /* no system call: the GIL can stay */
        return 0;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pa_memory_retire(a->memory->mem, &a->blk);
    Py_END_ALLOW_THREADS
    if (rc == 0) {
        a->retired = 1;
        return 0;
    }
    char address[32];
    PyOS_snprintf(address, sizeof(address), "0x%llx",
                  (unsigned long long)a->blk.device_address);
    return PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "freebuffer(): the "
                            "%llu bytes at device address %s go back to "
                            "their memory only when the last array on them "
                            "is gone: detaching the arrays failed (%s)",
                            (unsigned long long)a->blk.size, address,
                            strerror(-rc));
}

int
pa_allocation_free(AllocationObject *a)
{
    if (a->freed) {
        return 0;
    }
    a->freed = 1;
    if (a->busy > 0) {
        return 0;   /* the last running sync completes the free */
    }
    return retire(a);
}

void
pa_allocation_enter(AllocationObject *a)
{
    a->busy++;
}

void
pa_allocation_leave(AllocationObject *a)
{
    if (--a->busy == 0 && a->freed && !a->retired && retire(a) != 0) {
        PyErr_WriteUnraisable((PyObject *)a);
    }
}

int
pa_allocation_adopt_root(AllocationObject *a, PyObject *root)
{
    pa_trace *trace = NULL;
    if (pa_tracing() && (trace = pa_trace_capture()) == NULL) {
        return -1;
    }
    a->root = root;
    if (trace != NULL) {
        pa_trace *old = a->trace;
        a->trace = trace;
        pa_trace_free(old);
    }
    if (a->root_dims != NULL) {
        forget_root_shape(a);   /* pointer= wraps the memory again */
    }
    return 0;
}

void
pa_allocation_root_gone(AllocationObject *a, PyObject *buffer)
{
    if (a->root != buffer) {
        return;
    }
    a->root = NULL;
    if (Py_REFCNT(a) > 1 || pa_memory_has_device_writes(a->memory->mem,
                                                        &a->blk)) {
        /* Something else keeps the Allocation (a frame cache's `pointer`),
         * or its release has coherence hazards to describe: keep what the
         * listing reports.  PyMem_Malloc sets no exception and runs no
         * Python code, which matters in a dealloc. */
        PyArrayObject *arr = (PyArrayObject *)buffer;
        int nd = PyArray_NDIM(arr);
        a->root_dims = PyMem_Malloc(sizeof(npy_intp)
                                    * (size_t)(nd > 0 ? nd : 1));
        if (a->root_dims != NULL) {
            memcpy(a->root_dims, PyArray_DIMS(arr),
                   sizeof(npy_intp) * (size_t)nd);
            a->root_nd = nd;
            a->root_dtype = PyArray_DESCR(arr);
            Py_INCREF(a->root_dtype);
        }
    }
}

static void
allocation_dealloc(AllocationObject *a)
{
    /* Unlinked first: what at_release runs could list the Memory's
     * allocations, and must not find this one. */
    unlink_allocation(a);
    pa_coherence_at_release(a);
    if (a->root_dims != NULL || a->trace != NULL) {     /* rarely */
        forget_root_shape(a);
        pa_trace_free(a->trace);
    }
    /* Nothing can reach `a` any more, so the GIL may go around the system
     * and driver calls; keeping a block for reuse needs none. */
    if (a->retired) {
        if (!pa_memory_try_keep_retired(a->memory->mem, &a->blk)) {
            Py_BEGIN_ALLOW_THREADS
            pa_memory_unmap_retired(a->memory->mem, &a->blk);
            Py_END_ALLOW_THREADS
        }
    }
    else if (!pa_memory_try_keep(a->memory->mem, &a->blk)) {
        Py_BEGIN_ALLOW_THREADS
        pa_memory_release(a->memory->mem, &a->blk);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(a->memory);
    PyObject_Free(a);
}

static PyObject *
allocation_repr(AllocationObject *a)
{
    char address[32];
    PyOS_snprintf(address, sizeof(address), "0x%llx",
                  (unsigned long long)a->blk.device_address);
    return PyUnicode_FromFormat(
        "<pynq_alloc.Allocation %s%llu bytes at device address %s, %s>",
        a->freed ? "(freed) " : "", (unsigned long long)a->blk.size,
        address, a->blk.coherent ? "coherent" : "non-coherent");
}

static PyObject *
get_device_address(AllocationObject *a, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(a->blk.device_address);
}

static PyObject *
get_size(AllocationObject *a, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(a->blk.size);
}

static PyObject *
get_freed(AllocationObject *a, void *closure)
{
    (void)closure;
    return PyBool_FromLong(a->freed);
}

static PyObject *
get_memory(AllocationObject *a, void *closure)
{
    (void)closure;
    Py_INCREF(a->memory);
    return (PyObject *)a->memory;
}

static PyGetSetDef allocation_getset[] = {
    {"device_address", (getter)get_device_address, NULL,
     "Device address of the first byte of the block.", NULL},
    {"size", (getter)get_size, NULL,
     "Bytes in the block: the request rounded up to whole pages.", NULL},
    {"freed", (getter)get_freed, NULL,
     "True once freebuffer() released the block.", NULL},
    {"memory", (getter)get_memory, NULL,
     "The Memory the block came from.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(allocation_doc,
"One block of physically contiguous device memory.\n\n"
"Created by allocate(); it is the base object at the root of every Buffer\n"
"on the block and is released when the last of them is gone.");

PyTypeObject pa_AllocationType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pynq_alloc.Allocation",
    .tp_basicsize = sizeof(AllocationObject),
    .tp_dealloc = (destructor)allocation_dealloc,
    .tp_repr = (reprfunc)allocation_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = allocation_doc,
    .tp_getset = allocation_getset,
};

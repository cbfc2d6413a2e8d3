/*
 * What a Memory holds: its live Allocations (allocation.c links them),
 * each with its root Buffer's shape and dtype, its allocation site while
 * tracing, and how many Buffer views of it are alive, counted from the
 * registry of live Buffers (buffer.c): numpy makes the root the base of
 * every view of it, so a view's base names its Allocation in one step.
 */
#include "inventory.h"

#include "buffer.h"
#include "package.h"
#include "tracing.h"

#include <string.h>

static PyTypeObject *record_type;

static PyStructSequence_Field record_fields[] = {
    {"device_address", "device address of the allocation's first byte"},
    {"size", "bytes it holds: the request rounded up to whole pages"},
    {"shape", "shape of the Buffer allocate() returned, or None"},
    {"dtype", "its dtype, or None"},
    {"cacheable", "whether the CPU maps it cached"},
    {"coherent", "whether flush() and invalidate() are not needed"},
    {"views", "Buffer views of it that are alive"},
    {"traceback", "((filename, lineno, function), ...) of its allocate() "
                  "call while tracing, else None"},
    {NULL, NULL},
};

static PyStructSequence_Desc record_desc = {
    "pynq_alloc._core.AllocationRecord",
    "What the core knows of one allocation; pynq_alloc.BufferInfo is made "
    "from it by field name.",
    record_fields, 8,
};

int
pa_inventory_init(PyObject *module)
{
    record_type = PyStructSequence_NewType(&record_desc);
    if (record_type == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "AllocationRecord",
                                 (PyObject *)record_type);
}

PyObject *
pa_record_new(PyTypeObject *type, PyObject **values, int n)
{
    PyObject *record = PyStructSequence_New(type);
    int failed = record == NULL;
    for (int i = 0; i < n; i++) {
        failed |= values[i] == NULL;
        if (record != NULL) {
            PyStructSequence_SetItem(record, i, values[i]);   /* steals */
        }
        else {
            Py_XDECREF(values[i]);
        }
    }
    if (failed) {
        Py_XDECREF(record);
        return NULL;
    }
    return record;
}

/* The record of a, whose root (held by the caller) is root or NULL. */
static PyObject *
make_record(AllocationObject *a, PyObject *root, Py_ssize_t views)
{
    /* Shape and dtype read before any object is made: making one can run
     * finalizers, which may reshape the root or forget what a kept. */
    npy_intp dims[64];
    int nd = -1;
    PyObject *dtype = Py_None;
    if (root != NULL) {
        nd = PyArray_NDIM((PyArrayObject *)root);
        memcpy(dims, PyArray_DIMS((PyArrayObject *)root),
               sizeof(npy_intp) * (size_t)nd);
        dtype = (PyObject *)PyArray_DESCR((PyArrayObject *)root);
    }
    else if (a->root_dims != NULL) {
        nd = a->root_nd;
        memcpy(dims, a->root_dims, sizeof(npy_intp) * (size_t)nd);
        dtype = (PyObject *)a->root_dtype;
    }
    Py_INCREF(dtype);
    PyObject *shape = nd < 0 ? Py_NewRef(Py_None)
                             : PyArray_IntTupleFromIntp(nd, dims);
    PyObject *values[8] = {
        PyLong_FromUnsignedLongLong(a->blk.device_address),
        PyLong_FromUnsignedLongLong(a->blk.size), shape, dtype,
        PyBool_FromLong(a->blk.cacheable), PyBool_FromLong(a->blk.coherent),
        PyLong_FromSsize_t(views),
        a->trace != NULL ? pa_trace_decode(a->trace) : Py_NewRef(Py_None),
    };
    return pa_record_new(record_type, values, 8);
}

PyObject *
pa_inventory_record(AllocationObject *a)
{
    PyObject *root = Py_XNewRef(a->root);
    PyObject *record = make_record(a, root, 0);
    Py_XDECREF(root);
    return record;
}

/* The Allocation of which buffer is a view (not its root), or NULL. */
static AllocationObject *
viewed_allocation(PyArrayObject *buffer)
{
    PyObject *base = PyArray_BASE(buffer);
    if (base != NULL && Py_IS_TYPE(base, &pa_BufferType)) {
        PyObject *root = base;
        base = PyArray_BASE((PyArrayObject *)root);
        if (base == NULL || !Py_IS_TYPE(base, &pa_AllocationType)
                || ((AllocationObject *)base)->root != root) {
            return NULL;
        }
        return (AllocationObject *)base;
    }
    /* A second Buffer straight on the Allocation: pointer= wrapped it
     * again while the first still lives. */
    if (base != NULL && Py_IS_TYPE(base, &pa_AllocationType)
            && ((AllocationObject *)base)->root != (PyObject *)buffer) {
        return (AllocationObject *)base;
    }
    return NULL;
}

static void
count_view(PyArrayObject *buffer, void *ctx)
{
    (void)ctx;
    AllocationObject *a = viewed_allocation(buffer);
    if (a != NULL && a->views_counted >= 0) {
        a->views_counted++;
    }
}

/* One allocation being listed, and its root, both held. */
typedef struct {
    AllocationObject *a;
    PyObject *root;
    Py_ssize_t views;
} listed;

PyObject *
pa_inventory_records(MemoryObject *m)
{
    /* First, with no Python code running (so nothing can change under
     * it): hold every live allocation and its root, and count views. */
    Py_ssize_t n = 0, i = 0;
    for (PyObject *p = m->allocations; p != NULL;
            p = ((AllocationObject *)p)->next) {
        n += !((AllocationObject *)p)->retired;
    }
    listed *entries = PyMem_Calloc((size_t)n + 1, sizeof(listed));
    if (entries == NULL) {
        return PyErr_NoMemory();
    }
    for (PyObject *p = m->allocations; p != NULL;
            p = ((AllocationObject *)p)->next) {
        AllocationObject *a = (AllocationObject *)p;
        if (!a->retired) {
            entries[i].a = (AllocationObject *)Py_NewRef(p);
            entries[i].root = Py_XNewRef(a->root);
            a->views_counted = 0;
            i++;
        }
    }
    pa_buffers_visit(count_view, NULL);
    for (i = 0; i < n; i++) {
        entries[i].views = entries[i].a->views_counted;
        entries[i].a->views_counted = -1;
    }
    /* Then the records, which run Python code: what they read is held. */
    PyObject *list = PyList_New(n);
    for (i = 0; list != NULL && i < n; i++) {
        listed *e = &entries[i];
        PyObject *record = make_record(e->a, e->root, e->views);
        if (record == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, record);
    }
    for (i = 0; i < n; i++) {
        Py_DECREF(entries[i].a);
        Py_XDECREF(entries[i].root);
    }
    PyMem_Free(entries);
    return list;
}

PyObject *
pa_inventory_oom_hint(MemoryObject *m)
{
    PyObject *records = pa_inventory_records(m);
    PyObject *hint = records == NULL ? NULL
        : pa_call_package("pynq_alloc._inventory", "oom_hint",
                          Py_BuildValue("(Ni)", records, pa_tracing()));
    if (hint == NULL || !PyUnicode_Check(hint)) {
        PyErr_Clear();
        Py_CLEAR(hint);
    }
    return hint;
}

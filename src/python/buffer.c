/*
 * Buffer: a numpy.ndarray whose data lies in device memory.
 *
 * The type adds no C fields but a __dict__ for users' attributes, and no
 * __array_finalize__ or __init__, so numpy creates views of it about as
 * fast as views of ndarray.  All it knows comes from find_allocation():
 * the Allocation at the root of the array's base chain, provided the
 * array's data really lies inside it.
 */
#include "glue.h"

#include <errno.h>

/* Sync spans at least this long run without the GIL, as does every sync
 * that calls into a driver. */
#define SYNC_WITHOUT_GIL_BYTES (64 * 1024)

/*
 * The Allocation that holds arr's data, or NULL if the data does not lie
 * inside one (a copy, a plain array viewed as Buffer, ...).  Borrowed.
 */
/*
 * numpy's as_strided (and so sliding_window_view) put an object between a
 * view and its source that carries only __array_interface__ and the source
 * as `base`.  Its source array, borrowed, or NULL.  Rare, so the attribute
 * lookups cost nothing on the common path.
 */
static PyObject *
interface_source(PyObject *obj)
{
    if (!PyObject_HasAttrString(obj, "__array_interface__")) {
        return NULL;
    }
    PyObject *source = PyObject_GetAttrString(obj, "base");
    if (source == NULL) {
        PyErr_Clear();
        return NULL;
    }
    /* Borrowed from obj, which keeps it: a fresh object would die here. */
    int held = PyArray_Check(source) && Py_REFCNT(source) > 1;
    Py_DECREF(source);
    return held ? source : NULL;
}

static AllocationObject *
find_allocation(PyArrayObject *arr)
{
    PyObject *base = PyArray_BASE(arr);
    /* Bounded: objects made by hand could point at each other. */
    for (int hops = 0; base != NULL && hops < 64
            && !Py_IS_TYPE(base, &pa_AllocationType); hops++) {
        base = PyArray_Check(base) ? PyArray_BASE((PyArrayObject *)base)
                                   : interface_source(base);
    }
    if (base == NULL || !Py_IS_TYPE(base, &pa_AllocationType)) {
        return NULL;
    }
    AllocationObject *a = (AllocationObject *)base;
    uintptr_t data = (uintptr_t)PyArray_DATA(arr);
    uintptr_t cpu = (uintptr_t)a->blk.cpu;
    /* A WRITEBACKIFCOPY temporary has its base's type but not its data. */
    if (data < cpu || data - cpu > a->blk.size) {
        return NULL;
    }
    return a;
}

/* The live Allocation of arr, or NULL (no error set). */
static AllocationObject *
live_allocation(PyArrayObject *arr)
{
    AllocationObject *a = find_allocation(arr);
    return a != NULL && !a->freed ? a : NULL;
}

/*
 * The byte span [*lo, *hi) that arr touches, relative to its data
 * pointer: for strided and reversed views this is more than nbytes.
 * Returns 0 for an array with no elements.
 */
static int
memory_span(PyArrayObject *arr, npy_intp *lo, npy_intp *hi)
{
    int nd = PyArray_NDIM(arr);
    npy_intp *shape = PyArray_DIMS(arr), *strides = PyArray_STRIDES(arr);
    npy_intp low = 0, high = 0;
    for (int i = 0; i < nd; i++) {
        if (shape[i] == 0) {
            return 0;
        }
        npy_intp extent = strides[i] * (shape[i] - 1);
        if (extent > 0) {
            high += extent;
        }
        else {
            low += extent;
        }
    }
    *lo = low;
    *hi = high + PyArray_ITEMSIZE(arr);
    return 1;
}

/*
 * Users' attributes (PYNQ's video code sets some).  The __dict__ slot
 * follows ndarray's fields, whose size is known only at run time.  A dict
 * can close a reference cycle, through the buffer or any of its views, so
 * Buffers support the garbage collector.
 */
static Py_ssize_t dict_offset;

static PyObject **
dict_slot(PyObject *self)
{
    return (PyObject **)((char *)self + dict_offset);
}

typedef int (*sync_fn)(pa_memory *, const pa_block *, uint64_t, uint64_t);

/* flush/invalidate: checks, then cache maintenance of arr's span. */
static PyObject *
sync_span(PyArrayObject *arr, sync_fn fn, const char *what)
{
    AllocationObject *a = find_allocation(arr);
    if (a == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: this array's data is not in device memory "
                     "(it is a copy or a plain array, not a Buffer from "
                     "allocate() or a view of one)", what);
        return NULL;
    }
    if (a->freed) {
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: the buffer was freed (freebuffer(), close() "
                     "or the end of its with-block)", what);
        return NULL;
    }
    npy_intp lo, hi;
    if (a->blk.coherent || !memory_span(arr, &lo, &hi)) {
        /* No bytes to sync; a flush still orders the CPU's stores. */
        fn(a->memory->mem, &a->blk, 0, 0);
        Py_RETURN_NONE;
    }
    char *cpu = a->blk.cpu, *data = PyArray_DATA(arr);
    if (data + lo < cpu || data + hi > cpu + a->blk.size) {
        /* Only as_strided-style tricks can get here. */
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: the array spans bytes %zd to %zd of its "
                     "allocation, which has %llu", what,
                     (Py_ssize_t)(data + lo - cpu), (Py_ssize_t)(data + hi - cpu),
                     (unsigned long long)a->blk.size);
        return NULL;
    }
    uint64_t offset = (uint64_t)(data + lo - cpu), len = (uint64_t)(hi - lo);
    int rc;
    if (len >= SYNC_WITHOUT_GIL_BYTES
            || pa_memory_sync_calls_driver(a->memory->mem)) {
        /* `self` keeps its base chain, and so `a`, alive meanwhile. */
        pa_allocation_enter(a);
        Py_BEGIN_ALLOW_THREADS
        rc = fn(a->memory->mem, &a->blk, offset, len);
        Py_END_ALLOW_THREADS
        pa_allocation_leave(a);
    }
    else {
        rc = fn(a->memory->mem, &a->blk, offset, len);
    }
    if (rc != 0) {
        return pa_raise(rc, NULL, "cannot %s %llu bytes at offset %llu of "
                        "the allocation", what, (unsigned long long)len,
                        (unsigned long long)offset);
    }
    if (pa_hazards_pending() && pa_coherence_report(a->memory) != 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(flush_doc,
"flush($self, /)\n--\n\n"
"Make CPU writes to this array visible to the device.\n\n"
"Covers every byte the array touches, from its lowest to its highest\n"
"(more than nbytes for strided views). On coherent memory (and uncached\n"
"buffers, the default) it only makes sure the CPU's stores have left it,\n"
"a store barrier, so call it before starting the device either way.\n"
"No parameters. Raises ValueError if the array is not in device memory\n"
"or was freed, OSError if the driver refuses.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(4, 'u1', cacheable=True)\n"
"    >>> buf[:] = [1, 2, 3, 4]\n"
"    >>> buf.flush()                  # before the device reads it\n"
"    >>> mem.device_read(buf.device_address, 4)\n"
"    b'\\x01\\x02\\x03\\x04'");

static PyObject *
buffer_flush(PyArrayObject *self, PyObject *unused)
{
    (void)unused;
    return sync_span(self, pa_memory_flush, "flush");
}

PyDoc_STRVAR(invalidate_doc,
"invalidate($self, /)\n--\n\n"
"Make device writes to this array visible to the CPU.\n\n"
"Covers the same span as flush(); bytes outside it are not changed.\n"
"A no-op on coherent memory. No parameters. Raises ValueError if the\n"
"array is not in device memory or was freed, OSError if the driver\n"
"refuses.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(4, 'u1', cacheable=True)\n"
"    >>> mem.device_write(buf.device_address, b'\\x05\\x06\\x07\\x08')\n"
"    >>> buf.invalidate()             # after the device wrote it\n"
"    >>> buf.tolist()\n"
"    [5, 6, 7, 8]");

static PyObject *
buffer_invalidate(PyArrayObject *self, PyObject *unused)
{
    (void)unused;
    return sync_span(self, pa_memory_invalidate, "invalidate");
}

PyDoc_STRVAR(freebuffer_doc,
"freebuffer($self, /)\n--\n\n"
"Give the device memory back to its Memory now.\n\n"
"Only the Buffer that allocate() returned does this; on a view (a slice,\n"
"b.view(), ...) it does nothing, as in PYNQ. Views that are still alive\n"
"stay safe to use but no longer refer to device memory (freed is True,\n"
"device_address is None). Calling it again does nothing. A buffer made\n"
"with cache= goes back to that cache instead. Leaving a with-block does\n"
"the same. No parameters. Raises MemoryError if views are alive and no\n"
"memory is left to detach them, and what the cache's return_pointer()\n"
"raises.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(1024)\n"
"    >>> view = buf[10:]\n"
"    >>> buf.freebuffer()\n"
"    >>> mem.stats()['buffers'], view.freed, view.device_address\n"
"    (0, True, None)");

/*
 * PYNQ's frame caches: a buffer allocated with cache= has `pointer` and
 * `return_to` attributes, and freeing it hands the pointer back to the
 * cache, once, instead of releasing the memory (the cache holds it now).
 * 1 if the buffer takes part in that, 0 if not, -1 with an error.
 */
static int
return_to_cache(PyObject *self)
{
    PyObject *dict = *dict_slot(self);
    PyObject *pointer = dict ? PyDict_GetItemString(dict, "pointer") : NULL;
    PyObject *cache = dict ? PyDict_GetItemString(dict, "return_to") : NULL;
    int truth = pointer == NULL || cache == NULL ? 0 : PyObject_IsTrue(cache);
    if (truth <= 0) {
        return truth;
    }
    if ((truth = PyObject_IsTrue(pointer)) <= 0) {
        return truth < 0 ? -1 : 1;      /* returned already */
    }
    Py_INCREF(pointer);     /* the call may change the dict */
    PyObject *r = PyObject_CallMethod(cache, "return_pointer", "O", pointer);
    Py_DECREF(pointer);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    PyObject *zero = PyLong_FromLong(0);
    int rc = zero == NULL ? -1 : PyObject_SetAttrString(self, "pointer", zero);
    Py_XDECREF(zero);
    return rc < 0 ? -1 : 1;
}

static PyObject *
buffer_freebuffer(PyArrayObject *self, PyObject *unused)
{
    (void)unused;
    /* allocate() makes the Allocation the base of the Buffer it returns;
     * numpy makes that Buffer (or a view of it) the base of every view. */
    PyObject *base = PyArray_BASE(self);
    if (base == NULL || !Py_IS_TYPE(base, &pa_AllocationType)) {
        Py_RETURN_NONE;
    }
    int returned = return_to_cache((PyObject *)self);
    if (returned < 0) {
        return NULL;
    }
    if (!returned) {
        AllocationObject *a = (AllocationObject *)base;
        /* Checked first, reported after: the memory goes back anyway. */
        int check = !a->freed && !a->blk.coherent
                    && pa_memory_coherence(a->memory->mem) > 0;
        PyObject *hazards = check ? pa_coherence_uninvalidated(a) : NULL;
        if ((check && hazards == NULL) || pa_allocation_free(a) != 0) {
            Py_XDECREF(hazards);
            return NULL;
        }
        if (check && pa_coherence_report_list(a, hazards) != 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(close_doc,
"close($self, /)\n--\n\n"
"Deprecated, and does nothing else, as in PYNQ 3: use freebuffer().\n\n"
"PYNQ's own drivers call close() on buffers they go on using. No\n"
"parameters. Warns with DeprecationWarning (an error where warnings are\n"
"errors), and raises nothing else.\n\n"
"    >>> import warnings\n"
"    >>> buf = open_memory('sim', size=1 << 20).allocate(16)\n"
"    >>> with warnings.catch_warnings(record=True) as caught:\n"
"    ...     warnings.simplefilter('always')\n"
"    ...     buf.close()\n"
"    >>> caught[0].category.__name__, buf.freed\n"
"    ('DeprecationWarning', False)");

static PyObject *
buffer_close(PyArrayObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (PyErr_WarnEx(PyExc_DeprecationWarning,
                     "Buffer.close() is deprecated and does nothing: use "
                     "freebuffer() or a with-block to release the memory",
                     1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
buffer_enter(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_INCREF(self);
    return self;
}

static PyObject *
buffer_exit(PyArrayObject *self, PyObject *args)
{
    (void)args;
    PyObject *r = buffer_freebuffer(self, NULL);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

/* A plain ndarray holding a copy of self's contents. */
static PyObject *
plain_copy(PyArrayObject *self)
{
    return PyArray_FromArray(self, NULL,
                             NPY_ARRAY_ENSURECOPY | NPY_ARRAY_ENSUREARRAY);
}

static PyObject *
buffer_reduce(PyArrayObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *copy = plain_copy(self);
    if (copy == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallMethod(copy, "__reduce__", NULL);
    Py_DECREF(copy);
    return r;
}

static PyObject *
buffer_reduce_ex(PyArrayObject *self, PyObject *protocol)
{
    PyObject *copy = plain_copy(self);
    if (copy == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallMethod(copy, "__reduce_ex__", "O", protocol);
    Py_DECREF(copy);
    return r;
}

static PyObject *
buffer_deepcopy(PyArrayObject *self, PyObject *memo)
{
    (void)memo;
    return plain_copy(self);
}

/*
 * Results of ufuncs live in new host memory, so they are plain arrays
 * (and scalars where numpy asks for one).  An array that is already in
 * device memory is an out= argument (b += 1) and stays as it is.  numpy 2
 * passes return_scalar; numpy 1 does not, and converts 0-d results itself.
 */
static PyObject *
buffer_array_wrap(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    /* (array, context=None, return_scalar=<absent>), by hand: numpy calls
     * this on every ufunc result, and PyArg_ParseTupleAndKeywords was
     * nine tenths of its time. */
    static const char *const names[] = {"array", "context", "return_scalar"};
    PyObject *given[3] = {NULL, NULL, NULL};
    (void)self;
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "__array_wrap__() takes at most 3 "
                     "arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        given[i] = args[i];
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = 0; i < 3 && found < 0; i++) {
            if (PyUnicode_CompareWithASCIIString(name, names[i]) == 0) {
                found = i;
            }
        }
        if (found < 0 || given[found] != NULL) {
            PyErr_Format(PyExc_TypeError, found < 0
                         ? "__array_wrap__() got an unexpected keyword "
                           "argument '%U'"
                         : "__array_wrap__() got multiple values for "
                           "argument '%U'", name);
            return NULL;
        }
        given[found] = args[nargs + k];
    }
    PyObject *arr = given[0], *return_scalar_arg = given[2];
    if (arr == NULL) {
        PyErr_SetString(PyExc_TypeError, "__array_wrap__() missing required "
                        "argument 'array'");
        return NULL;
    }
    if (!PyArray_Check(arr)) {
        PyErr_Format(PyExc_TypeError, "__array_wrap__() argument 'array' "
                     "must be numpy.ndarray, not %.200s",
                     Py_TYPE(arr)->tp_name);
        return NULL;
    }
    /* numpy 1 does not pass it, and wants scalars for every 0-d result. */
    int return_scalar = return_scalar_arg == NULL
                        ? 1 : PyObject_IsTrue(return_scalar_arg);
    if (return_scalar < 0) {
        return NULL;
    }
    PyArrayObject *result = (PyArrayObject *)arr;
    if (Py_IS_TYPE(arr, &pa_BufferType) && find_allocation(result) != NULL) {
        Py_INCREF(arr);
        return arr;
    }
    if (return_scalar && PyArray_NDIM(result) == 0) {
        return PyArray_Scalar(PyArray_DATA(result), PyArray_DESCR(result),
                              arr);
    }
    if (Py_IS_TYPE(arr, &PyArray_Type)) {
        Py_INCREF(arr);
        return arr;
    }
    return PyArray_View(result, NULL, &PyArray_Type);
}

static int
buffer_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(*dict_slot(self));
    Py_VISIT(PyArray_BASE((PyArrayObject *)self));
    return 0;
}

static int
buffer_clear(PyObject *self)
{
    Py_CLEAR(*dict_slot(self));
    return 0;
}

static void
buffer_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(*dict_slot(self));
    pa_inventory_root_gone(self);
    PyArray_Type.tp_dealloc(self);     /* ends in tp_free */
}

static PyMethodDef buffer_methods[] = {
    {"flush", (PyCFunction)buffer_flush, METH_NOARGS, flush_doc},
    {"invalidate", (PyCFunction)buffer_invalidate, METH_NOARGS,
     invalidate_doc},
    {"sync_to_device", (PyCFunction)buffer_flush, METH_NOARGS,
     "sync_to_device($self, /)\n--\n\nAlias of flush(): no parameters, "
     "raises ValueError or OSError as flush() does.\n\n"
     "    >>> buf = open_memory('sim', size=1 << 20).allocate(4)\n"
     "    >>> buf.sync_to_device()"},
    {"sync_from_device", (PyCFunction)buffer_invalidate, METH_NOARGS,
     "sync_from_device($self, /)\n--\n\nAlias of invalidate(): no "
     "parameters, raises ValueError or OSError as invalidate() does.\n\n"
     "    >>> buf = open_memory('sim', size=1 << 20).allocate(4)\n"
     "    >>> buf.sync_from_device()"},
    {"freebuffer", (PyCFunction)buffer_freebuffer, METH_NOARGS,
     freebuffer_doc},
    {"close", (PyCFunction)buffer_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)buffer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)buffer_exit, METH_VARARGS, NULL},
    {"__array_wrap__", (PyCFunction)(void (*)(void))buffer_array_wrap,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"__reduce__", (PyCFunction)buffer_reduce, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)buffer_reduce_ex, METH_O, NULL},
    {"__deepcopy__", (PyCFunction)buffer_deepcopy, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyObject *
get_device_address(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = live_allocation(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    uint64_t offset = (uint64_t)((char *)PyArray_DATA(self)
                                 - (char *)a->blk.cpu);
    return PyLong_FromUnsignedLongLong(a->blk.device_address + offset);
}

static PyObject *
get_virtual_address(PyArrayObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromVoidPtr(PyArray_DATA(self));
}

static PyObject *
get_offset(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = find_allocation(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    return PyLong_FromSsize_t((char *)PyArray_DATA(self)
                              - (char *)a->blk.cpu);
}

static PyObject *
get_coherent(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = live_allocation(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    return PyBool_FromLong(a->blk.coherent);
}

static PyObject *
get_cacheable(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = live_allocation(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    return PyBool_FromLong(a->blk.cacheable);
}

static PyObject *
get_bo(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = live_allocation(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLongLong(a->blk.handle);
}

static PyObject *
get_memory(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = find_allocation(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(a->memory);
    return (PyObject *)a->memory;
}

static PyObject *
get_freed(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = find_allocation(self);
    return PyBool_FromLong(a != NULL && a->freed);
}

static PyGetSetDef buffer_getset[] = {
    {"device_address", (getter)get_device_address, NULL,
     "Device address of the first element, or None if the data is not in "
     "a live allocation.", NULL},
    {"physical_address", (getter)get_device_address, NULL,
     "Alias of device_address.", NULL},
    {"virtual_address", (getter)get_virtual_address, NULL,
     "CPU address of the first element.", NULL},
    {"offset", (getter)get_offset, NULL,
     "Byte offset of the first element from the start of its allocation.",
     NULL},
    {"coherent", (getter)get_coherent, NULL,
     "True if flush/invalidate are not needed; None outside device memory.",
     NULL},
    {"cacheable", (getter)get_cacheable, NULL,
     "True if the CPU mapping is cached; None outside device memory.", NULL},
    {"bo", (getter)get_bo, NULL,
     "An int that identifies the allocation (PYNQ compatibility).", NULL},
    {"memory", (getter)get_memory, NULL,
     "The Memory the data came from, or None.", NULL},
    {"freed", (getter)get_freed, NULL,
     "True once the allocation was released by freebuffer().", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict,
     "Attributes set on this array (by PYNQ's drivers, say).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *
buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    (void)args;
    (void)kwds;
    PyErr_SetString(PyExc_TypeError,
                    "Buffer cannot be created directly: use "
                    "pynq_alloc.allocate(shape, dtype) to get one in device "
                    "memory");
    return NULL;
}

PyDoc_STRVAR(buffer_doc,
"A numpy.ndarray whose data lies in physically contiguous device memory.\n\n"
"Made by pynq_alloc.allocate(); slices and views of it are Buffers too and\n"
"keep exact device addresses. Results in new memory (ufuncs, copies) are\n"
"not device memory: their device_address is None.");

PyTypeObject pa_BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pynq_alloc.Buffer",
    /* tp_basicsize and tp_dictoffset: set from ndarray's at run time. */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = buffer_doc,
    .tp_dealloc = buffer_dealloc,
    .tp_traverse = buffer_traverse,
    .tp_clear = buffer_clear,
    .tp_methods = buffer_methods,
    .tp_getset = buffer_getset,
    .tp_alloc = PyType_GenericAlloc,
    .tp_new = buffer_new,
    .tp_free = PyObject_GC_Del,
};

int
pa_buffer_type_ready(void)
{
    dict_offset = PyArray_Type.tp_basicsize;
    pa_BufferType.tp_base = &PyArray_Type;
    pa_BufferType.tp_basicsize = dict_offset + (Py_ssize_t)sizeof(PyObject *);
    pa_BufferType.tp_dictoffset = dict_offset;
    return PyType_Ready(&pa_BufferType);
}

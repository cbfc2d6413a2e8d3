/*
 * Buffer: a numpy.ndarray whose data lies in device memory.
 *
 * The type adds no __array_finalize__ or __init__, so numpy creates views
 * of it about as fast as views of ndarray.  Its C fields, after ndarray's
 * (whose size is known only at run time), are a __dict__ for users'
 * attributes and its links in the registry of live Buffers, which
 * Memory.buffers() reads to count views.  All it knows of device memory
 * comes from allocation_of() (or borrowed_allocation(), its quick form for
 * the usual chains): the Allocation at the root of the array's base chain,
 * provided the array's data really lies inside it.  What numpy asks of a
 * subclass on every ufunc (__array_priority__, __array_wrap__, numpy 1's
 * __array_prepare__) is set up to cost as little as numpy allows.
 */
#include "buffer.h"

#include "allocation.h"
#include "coherence.h"
#include "errors.h"

#include <errno.h>

/* Sync spans at least this long run without the GIL, as does every sync
 * that calls into a driver. */
#define SYNC_WITHOUT_GIL_BYTES (64 * 1024)

/*
 * numpy's as_strided (and so sliding_window_view) put an object between a
 * view and its source that carries only __array_interface__ and the source
 * as `base`.  A new reference to its source array, or NULL (no error).
 * Rare, so the attribute lookups cost nothing on the common path; they
 * run Python code, which is why the walk below holds what it walks.
 */
static PyObject *
interface_source(PyObject *obj)
{
    int has = PyObject_HasAttrString(obj, "__array_interface__");
    PyObject *source = has ? PyObject_GetAttrString(obj, "base") : NULL;
    if (source == NULL || !PyArray_Check(source)) {
        PyErr_Clear();
        Py_XDECREF(source);
        return NULL;
    }
    return source;
}

/* A WRITEBACKIFCOPY temporary has its base's type but not its data. */
static int
data_lies_in(AllocationObject *a, PyArrayObject *arr)
{
    uintptr_t data = (uintptr_t)PyArray_DATA(arr);
    uintptr_t cpu = (uintptr_t)a->blk.cpu;
    return data >= cpu && data - cpu <= a->blk.size;
}

/*
 * A new reference to the Allocation that holds arr's data, or NULL (no
 * error) if the data does not lie inside one (a copy, a plain array
 * viewed as Buffer, ...).  Every link of the chain is held while the next
 * is looked up: a getter in the chain may drop what it points to.
 */
static AllocationObject *
allocation_of(PyArrayObject *arr)
{
    PyObject *link = PyArray_BASE(arr);
    Py_XINCREF(link);
    /* Bounded: objects made by hand could point at each other. */
    for (int hops = 0; link != NULL && hops < 64
            && !Py_IS_TYPE(link, &pa_AllocationType); hops++) {
        PyObject *next = PyArray_Check(link)
            ? Py_XNewRef(PyArray_BASE((PyArrayObject *)link))
            : interface_source(link);
        Py_DECREF(link);
        link = next;
    }
    if (link == NULL || !Py_IS_TYPE(link, &pa_AllocationType)
            || !data_lies_in((AllocationObject *)link, arr)) {
        Py_XDECREF(link);
        return NULL;
    }
    return (AllocationObject *)link;
}

/*
 * allocation_of() for the two shapes nearly every Buffer has, with no
 * reference taken: a root Buffer, whose base is its Allocation, and a view,
 * whose base numpy collapses to the root Buffer.  NULL for any other shape
 * (the caller then asks allocation_of()) or if the data is not in the
 * Allocation.  It reads three pointers and runs no Python code; the result
 * stays valid as long as the caller, too, runs none and keeps the GIL (arr
 * holds its base, which holds the Allocation, and only Python code could
 * drop arr's hold on them).
 */
static AllocationObject *
borrowed_allocation(PyArrayObject *arr)
{
    PyObject *base = PyArray_BASE(arr);
    if (base != NULL && Py_IS_TYPE(base, &pa_BufferType)) {
        base = PyArray_BASE((PyArrayObject *)base);
    }
    if (base == NULL || !Py_IS_TYPE(base, &pa_AllocationType)
            || !data_lies_in((AllocationObject *)base, arr)) {
        return NULL;
    }
    return (AllocationObject *)base;
}

/* A new reference to arr's Allocation if it still holds device memory,
 * else NULL (no error). */
static AllocationObject *
live_allocation_of(PyArrayObject *arr)
{
    AllocationObject *a = allocation_of(arr);
    if (a != NULL && a->freed) {
        Py_CLEAR(a);
    }
    return a;
}

/*
 * The byte span [*lo, *hi) that arr touches, relative to its data
 * pointer: for strided and reversed views this is more than nbytes.
 * 1 for a span, 0 for an array with no elements, -1 if the arithmetic
 * overflows (only hand-made strides get there).
 */
static int
memory_span(PyArrayObject *arr, npy_intp *lo, npy_intp *hi)
{
    int nd = PyArray_NDIM(arr);
    npy_intp *shape = PyArray_DIMS(arr), *strides = PyArray_STRIDES(arr);
    npy_intp low = 0, high = 0, extent;
    for (int i = 0; i < nd; i++) {
        if (shape[i] == 0) {
            return 0;
        }
    }
    for (int i = 0; i < nd; i++) {
        if (__builtin_mul_overflow(strides[i], shape[i] - 1, &extent)
                || __builtin_add_overflow(extent > 0 ? high : low, extent,
                                          extent > 0 ? &high : &low)) {
            return -1;
        }
    }
    if (__builtin_add_overflow(high, PyArray_ITEMSIZE(arr), &high)) {
        return -1;
    }
    *lo = low;
    *hi = high;
    return 1;
}

/*
 * Users' attributes (PYNQ's video code sets some), then the registry
 * links.  A dict can close a reference cycle, through the buffer or any
 * of its views, so Buffers support the garbage collector.
 */
static Py_ssize_t dict_offset, links_offset;

static PyObject **
dict_slot(PyObject *self)
{
    return (PyObject **)((char *)self + dict_offset);
}

/* The registry of live Buffers: a doubly linked list through the links
 * after each Buffer's dict, changed only with the GIL held. */
typedef struct {
    PyObject *prev, *next;
} buffer_links;

static PyObject *registry;

static buffer_links *
links(PyObject *self)
{
    return (buffer_links *)((char *)self + links_offset);
}

/* numpy makes every Buffer, views included, through tp_alloc. */
static PyObject *
buffer_alloc(PyTypeObject *type, Py_ssize_t nitems)
{
    PyObject *self = PyType_GenericAlloc(type, nitems);
    if (self != NULL) {
        links(self)->prev = NULL;
        links(self)->next = registry;
        if (registry != NULL) {
            links(registry)->prev = self;
        }
        registry = self;
    }
    return self;
}

static void
unregister(PyObject *self)
{
    buffer_links *l = links(self);
    if (l->prev != NULL) {
        links(l->prev)->next = l->next;
    }
    else {
        registry = l->next;
    }
    if (l->next != NULL) {
        links(l->next)->prev = l->prev;
    }
}

void
pa_buffers_visit(void (*visit)(PyArrayObject *buffer, void *ctx), void *ctx)
{
    for (PyObject *b = registry; b != NULL; b = links(b)->next) {
        visit((PyArrayObject *)b, ctx);
    }
}

typedef int (*sync_fn)(pa_memory *, const pa_block *, uint64_t, uint64_t);

/* The ValueError for a view whose span leaves its allocation: [first,
 * end) of it, or no span at all if its arithmetic overflowed. */
static PyObject *
outside_allocation(PyArrayObject *arr, AllocationObject *a, const char *what,
                   int overflowed, long long first, long long end)
{
    int nd = PyArray_NDIM(arr);
    PyObject *shape = PyArray_IntTupleFromIntp(nd, PyArray_DIMS(arr));
    PyObject *strides = PyArray_IntTupleFromIntp(nd, PyArray_STRIDES(arr));
    char span[96];
    if (overflowed) {
        PyOS_snprintf(span, sizeof(span), "spans more bytes than an address "
                      "can count");
    }
    else {
        PyOS_snprintf(span, sizeof(span), "spans bytes %lld to %lld", first,
                      end);
    }
    if (shape != NULL && strides != NULL) {
        PyErr_Format(PyExc_ValueError, "cannot %s: the array %s of its "
                     "allocation, which has %llu (shape %R, strides %R)",
                     what, span, (unsigned long long)a->blk.size, shape,
                     strides);
    }
    Py_XDECREF(shape);
    Py_XDECREF(strides);
    return NULL;
}

/* flush/invalidate of arr's span in a (held by the caller). */
static PyObject *
sync_allocation(PyArrayObject *arr, AllocationObject *a, sync_fn fn,
                const char *what)
{
    if (a->freed) {
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: the buffer was freed (freebuffer(), close() "
                     "or the end of its with-block)", what);
        return NULL;
    }
    if (a->blk.coherent) {
        /* No bytes to sync, so none can be outside the allocation; a
         * flush still orders the CPU's stores. */
        fn(a->memory->mem, &a->blk, 0, 0);
        Py_RETURN_NONE;
    }
    npy_intp lo = 0, hi = 0;
    int span = memory_span(arr, &lo, &hi);
    /* Offsets from the block's start, checked: the strides of an
     * as_strided view can point anywhere. */
    long long start = (long long)((char *)PyArray_DATA(arr)
                                  - (char *)a->blk.cpu), first = 0, end = 0;
    int overflowed = span < 0 || (span > 0
        && (__builtin_add_overflow(start, lo, &first)
            || __builtin_add_overflow(start, hi, &end)));
    if (overflowed || (span > 0 && (first < 0
                                    || (unsigned long long)end > a->blk.size))) {
        return outside_allocation(arr, a, what, overflowed, first, end);
    }
    if (span == 0) {
        /* No bytes to sync; a flush still orders the CPU's stores. */
        fn(a->memory->mem, &a->blk, 0, 0);
        Py_RETURN_NONE;
    }
    uint64_t offset = (uint64_t)first, len = (uint64_t)(end - first);
    int rc;
    if (len >= SYNC_WITHOUT_GIL_BYTES
            || pa_memory_sync_calls_driver(a->memory->mem)) {
        /* The caller's reference keeps `a` alive meanwhile. */
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

/* flush/invalidate: checks, then cache maintenance of arr's span. */
static PyObject *
sync_span(PyArrayObject *arr, sync_fn fn, const char *what)
{
    /* The usual case, a live coherent buffer (PYNQ's default): a store
     * barrier, which runs no Python code, so the borrowed pointer holds. */
    AllocationObject *a = borrowed_allocation(arr);
    if (a != NULL && a->blk.coherent && !a->freed) {
        fn(a->memory->mem, &a->blk, 0, 0);
        Py_RETURN_NONE;
    }
    a = allocation_of(arr);
    if (a == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: this array's data is not in device memory "
                     "(it is a copy or a plain array, not a Buffer from "
                     "allocate() or a view of one)", what);
        return NULL;
    }
    PyObject *r = sync_allocation(arr, a, fn, what);
    Py_DECREF(a);
    return r;
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
/* A new reference to dict[key], or NULL (with an error if one was
 * raised: a key's __eq__ may raise). */
static PyObject *
dict_item(PyObject *dict, const char *key)
{
    PyObject *name = PyUnicode_FromString(key);
    PyObject *item = name == NULL ? NULL : PyDict_GetItemWithError(dict, name);
    Py_XINCREF(item);
    Py_XDECREF(name);
    return item;
}

static int
return_to_cache(PyObject *self)
{
    /* Everything is held from here on: the truth tests and the call run
     * Python code, which may change the dict or delete what it held. */
    PyObject *dict = Py_XNewRef(*dict_slot(self));
    if (dict == NULL) {
        return 0;
    }
    PyObject *pointer = dict_item(dict, "pointer");
    PyObject *cache = pointer == NULL ? NULL : dict_item(dict, "return_to");
    Py_DECREF(dict);
    int rc = PyErr_Occurred() ? -1 : 0;
    if (rc == 0 && pointer != NULL && cache != NULL) {
        rc = PyObject_IsTrue(cache);
    }
    if (rc > 0 && (rc = PyObject_IsTrue(pointer)) == 0) {
        rc = 1;     /* returned already */
    }
    else if (rc > 0) {
        PyObject *r = PyObject_CallMethod(cache, "return_pointer", "O",
                                          pointer);
        PyObject *zero = r == NULL ? NULL : PyLong_FromLong(0);
        rc = zero == NULL || PyObject_SetAttrString(self, "pointer", zero) < 0
             ? -1 : 1;
        Py_XDECREF(zero);
        Py_XDECREF(r);
    }
    Py_XDECREF(pointer);
    Py_XDECREF(cache);
    return rc;
}

/* Gives a's memory back, reporting the device writes it never invalidated
 * (on a memory that tracks them): checked first, reported after, since
 * the memory goes back anyway.  0 or -1. */
static int
free_allocation(AllocationObject *a)
{
    int check = !a->freed && !a->blk.coherent
                && pa_memory_coherence(a->memory->mem) > 0;
    PyObject *hazards = check ? pa_coherence_uninvalidated(a) : NULL;
    if ((check && hazards == NULL) || pa_allocation_free(a) != 0) {
        Py_XDECREF(hazards);
        return -1;
    }
    return check ? pa_coherence_report_list(a, hazards) : 0;
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
    Py_INCREF(base);
    int rc = return_to_cache((PyObject *)self);
    if (rc == 0) {
        rc = free_allocation((AllocationObject *)base);
    }
    Py_DECREF(base);
    if (rc < 0) {
        return NULL;
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
 *
 * A static method: it needs no self, and numpy looks it up on the Buffer
 * for every ufunc and reduction, where a plain method would make a bound
 * method object each time.
 */
static PyObject *
buffer_array_wrap(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    /* (array, context=None, return_scalar=<absent>), by hand: numpy calls
     * this on every ufunc result, and PyArg_ParseTupleAndKeywords was
     * nine tenths of its time. */
    static const char *const names[] = {"array", "context", "return_scalar"};
    PyObject *given[3] = {NULL, NULL, NULL};
    (void)unused;
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
    if (Py_IS_TYPE(arr, &pa_BufferType)) {
        AllocationObject *a = allocation_of(result);
        if (a != NULL) {
            Py_DECREF(a);
            return Py_NewRef(arr);
        }
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
    /* Out of every list first: clearing the dict runs users' finalizers,
     * which may list buffers, and must not find this one. */
    unregister(self);
    PyObject *base = PyArray_BASE((PyArrayObject *)self);
    if (base != NULL && Py_IS_TYPE(base, &pa_AllocationType)) {
        pa_allocation_root_gone((AllocationObject *)base, self);
    }
    Py_CLEAR(*dict_slot(self));
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
     METH_FASTCALL | METH_KEYWORDS | METH_STATIC, NULL},
    {"__reduce__", (PyCFunction)buffer_reduce, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)buffer_reduce_ex, METH_O, NULL},
    {"__deepcopy__", (PyCFunction)buffer_deepcopy, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

/* The device address of arr's first element in a, which holds it. */
static uint64_t
address_in(AllocationObject *a, PyArrayObject *arr)
{
    return a->blk.device_address
           + (uint64_t)((char *)PyArray_DATA(arr) - (char *)a->blk.cpu);
}

/*
 * The ints of the last device addresses read, by address: making an int
 * was a third of the cost of reading device_address, and drivers read the
 * addresses of the same few buffers at every transfer.  Ints are
 * immutable, so sharing one is invisible.  Replacing an entry frees the
 * int it held, which runs no Python code.  Changed only with the GIL held.
 */
#define ADDRESS_INTS 8

static struct {
    uint64_t address;
    PyObject *value;
} address_ints[ADDRESS_INTS];

/* A new reference to an int of value address. */
static PyObject *
address_int(uint64_t address)
{
    /* Views of one buffer differ in their low bits, buffers in their
     * page numbers. */
    size_t i = (size_t)((address >> 2) ^ (address >> 12)) % ADDRESS_INTS;
    if (address_ints[i].value != NULL && address_ints[i].address == address) {
        return Py_NewRef(address_ints[i].value);
    }
    PyObject *value = PyLong_FromUnsignedLongLong(address);
    if (value != NULL) {
        Py_XSETREF(address_ints[i].value, Py_NewRef(value));
        address_ints[i].address = address;
    }
    return value;
}

static PyObject *
get_device_address(PyArrayObject *self, void *closure)
{
    (void)closure;
    uint64_t address;
    AllocationObject *a = borrowed_allocation(self);
    if (a != NULL) {
        /* Borrowed, and read before anything can run Python code. */
        if (a->freed) {
            Py_RETURN_NONE;
        }
        address = address_in(a, self);
    }
    else {
        a = live_allocation_of(self);
        if (a == NULL) {
            Py_RETURN_NONE;
        }
        address = address_in(a, self);
        Py_DECREF(a);
    }
    return address_int(address);
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
    AllocationObject *a = allocation_of(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    Py_ssize_t offset = (char *)PyArray_DATA(self) - (char *)a->blk.cpu;
    Py_DECREF(a);
    return PyLong_FromSsize_t(offset);
}

/* Which field of the live allocation's block a getter reads. */
enum block_field { COHERENT, CACHEABLE, HANDLE };

static PyObject *
block_field(PyArrayObject *self, enum block_field field)
{
    AllocationObject *a = live_allocation_of(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *r = field == COHERENT ? PyBool_FromLong(a->blk.coherent)
        : field == CACHEABLE ? PyBool_FromLong(a->blk.cacheable)
        : PyLong_FromUnsignedLongLong(a->blk.handle);
    Py_DECREF(a);
    return r;
}

static PyObject *
get_coherent(PyArrayObject *self, void *closure)
{
    (void)closure;
    return block_field(self, COHERENT);
}

static PyObject *
get_cacheable(PyArrayObject *self, void *closure)
{
    (void)closure;
    return block_field(self, CACHEABLE);
}

static PyObject *
get_bo(PyArrayObject *self, void *closure)
{
    (void)closure;
    return block_field(self, HANDLE);
}

static PyObject *
get_memory(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = allocation_of(self);
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *memory = Py_NewRef((PyObject *)a->memory);
    Py_DECREF(a);
    return memory;
}

static PyObject *
get_freed(PyArrayObject *self, void *closure)
{
    (void)closure;
    AllocationObject *a = allocation_of(self);
    int freed = a != NULL && a->freed;
    Py_XDECREF(a);
    return PyBool_FromLong(freed);
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
    .tp_alloc = buffer_alloc,
    .tp_new = buffer_new,
    .tp_free = PyObject_GC_Del,
};

/*
 * The type's own attributes, set before PyType_Ready as its documentation
 * allows.  __array_priority__ is ndarray's (0.0), as a float in the type's
 * dict: numpy reads it up to twice per operation on a Buffer (deciding
 * whether to defer a binary operator, then which input's __array_wrap__
 * wins), and ndarray's getter makes a new float each time.
 *
 * numpy 1 also gives every ufunc output to the inputs' __array_prepare__
 * (numpy 2 has none): ndarray's makes it a Buffer view, which
 * __array_wrap__ then makes a plain view again.  numpy 1 calls no
 * __array_prepare__ that is not callable, so None keeps the output plain.
 */
static int
fill_type_dict(PyTypeObject *type)
{
    PyObject *dict = PyDict_New();
    PyObject *priority = PyFloat_FromDouble(NPY_PRIORITY);
    if (dict == NULL || priority == NULL
            || PyDict_SetItemString(dict, "__array_priority__",
                                    priority) < 0
            || (PyArray_RUNTIME_VERSION < NPY_2_0_API_VERSION
                && PyDict_SetItemString(dict, "__array_prepare__",
                                        Py_None) < 0)) {
        Py_XDECREF(dict);
        Py_XDECREF(priority);
        return -1;
    }
    Py_DECREF(priority);
    type->tp_dict = dict;
    return 0;
}

int
pa_buffer_type_ready(void)
{
    dict_offset = PyArray_Type.tp_basicsize;
    links_offset = dict_offset + (Py_ssize_t)sizeof(PyObject *);
    pa_BufferType.tp_base = &PyArray_Type;
    pa_BufferType.tp_basicsize = links_offset
                                 + (Py_ssize_t)sizeof(buffer_links);
    pa_BufferType.tp_dictoffset = dict_offset;
    if (pa_BufferType.tp_dict == NULL && fill_type_dict(&pa_BufferType) < 0) {
        return -1;
    }
    return PyType_Ready(&pa_BufferType);
}

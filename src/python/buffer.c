/*
 * Buffer: a numpy.ndarray whose data lies in device memory.
 *
 * The type adds no __array_finalize__ or __init__, so numpy creates views
 * of it about as fast as views of ndarray.  Its C fields, after ndarray's
 * (whose size is known only at run time), are a __dict__ for users'
 * attributes, its links in the registry of live Buffers, which
 * Memory.buffers() reads to count views, and on a root over memory that
 * pynq_alloc did not allocate, that memory's Foreign record (foreign.h).
 * All it knows of device memory comes from holder_of() (or
 * borrowed_allocation() and borrowed_foreign(), its quick forms for the
 * usual chains): the Allocation or Foreign record nearest the array on its
 * base chain, provided the array's data really lies inside it.  What numpy
 * asks of a subclass on every ufunc (__array_priority__, __array_wrap__,
 * numpy 1's __array_prepare__) is set up to cost as little as numpy
 * allows.
 */
#include "buffer.h"

#include "allocate.h"
#include "allocation.h"
#include "cache.h"
#include "coherence.h"
#include "errors.h"
#include "foreign.h"

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

/* The Foreign record a Buffer is the root of (borrowed), or NULL; for
 * any other object, NULL. */
static ForeignObject *foreign_slot(PyObject *obj);

/*
 * A new reference to what holds arr's data: the Allocation (memory
 * pynq_alloc allocated) or the Foreign record (memory lent by its owner)
 * at the root of its base chain, the nearest one; NULL (no error) if the
 * data does not lie inside one (a copy, a plain array viewed as Buffer,
 * ...).  Every link of the chain is held while the next is looked up: a
 * getter in the chain may drop what it points to.
 */
static PyObject *
holder_of(PyArrayObject *arr)
{
    PyObject *link = Py_NewRef((PyObject *)arr), *holder = NULL;
    /* Bounded: objects made by hand could point at each other. */
    for (int hops = 0; link != NULL && hops < 65; hops++) {
        ForeignObject *f = foreign_slot(link);
        if (f != NULL || Py_IS_TYPE(link, &pa_AllocationType)) {
            holder = f != NULL ? Py_NewRef((PyObject *)f) : Py_NewRef(link);
            break;
        }
        PyObject *next = PyArray_Check(link)
            ? Py_XNewRef(PyArray_BASE((PyArrayObject *)link))
            : interface_source(link);
        Py_DECREF(link);
        link = next;
    }
    Py_XDECREF(link);
    int holds = holder == NULL ? 0
        : Py_IS_TYPE(holder, &pa_AllocationType)
        ? data_lies_in((AllocationObject *)holder, arr)
        : pa_foreign_holds((ForeignObject *)holder, arr);
    if (!holds) {
        Py_CLEAR(holder);
    }
    return holder;
}

/*
 * holder_of() for the two shapes nearly every Buffer has, with no
 * reference taken: a root Buffer, whose base is its Allocation, and a view,
 * whose base numpy collapses to the root Buffer.  NULL for any other shape
 * (the caller then asks holder_of()) or if the data is not in the
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
 * links, then the Foreign record of a root over lent memory (NULL on
 * every other Buffer).  A dict can close a reference cycle, through the
 * buffer or any of its views, so Buffers support the garbage collector.
 */
static Py_ssize_t dict_offset, links_offset, foreign_offset;

static ForeignObject **
foreign_field(PyObject *self)
{
    return (ForeignObject **)((char *)self + foreign_offset);
}

static ForeignObject *
foreign_slot(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &pa_BufferType) ? *foreign_field(obj)
                                                   : NULL;
}

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

/* The ValueError for a view whose span leaves its memory (its `noun`, of
 * size bytes): [first, end) of it, or no span at all if its arithmetic
 * overflowed. */
static void
outside_memory(PyArrayObject *arr, const char *noun, unsigned long long size,
               const char *what, int overflowed, long long first,
               long long end)
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
                     "%s, which has %llu (shape %R, strides %R)",
                     what, span, noun, size, shape, strides);
    }
    Py_XDECREF(shape);
    Py_XDECREF(strides);
}

/*
 * The bytes [*first, *end) that arr touches, as offsets from the start of
 * its memory (its `noun`, of size bytes), where its data lies `start`
 * bytes in.
 * Checked: the strides of an as_strided view can point anywhere.  1 if
 * arr has bytes, 0 if it has none, -1 with a ValueError.
 */
static int
span_in_memory(PyArrayObject *arr, const char *noun, long long start,
               unsigned long long size, const char *what, long long *first,
               long long *end)
{
    npy_intp lo = 0, hi = 0;
    int span = memory_span(arr, &lo, &hi);
    *first = *end = 0;
    int overflowed = span < 0 || (span > 0
        && (__builtin_add_overflow(start, lo, first)
            || __builtin_add_overflow(start, hi, end)));
    if (overflowed || (span > 0 && (*first < 0
                                    || (unsigned long long)*end > size))) {
        outside_memory(arr, noun, size, what, overflowed, *first, *end);
        return -1;
    }
    return span;
}

/* flush/invalidate of arr's span in a, live (held by the caller). */
static PyObject *
sync_allocation(PyArrayObject *arr, AllocationObject *a, sync_fn fn,
                const char *what)
{
    if (a->blk.coherent) {
        /* No bytes to sync, so none can be outside the allocation; a
         * flush still orders the CPU's stores. */
        fn(a->memory->mem, &a->blk, 0, 0);
        Py_RETURN_NONE;
    }
    long long start = (long long)((char *)PyArray_DATA(arr)
                                  - (char *)a->blk.cpu), first, end;
    int span = span_in_memory(arr, "allocation", start, a->blk.size, what,
                              &first, &end);
    if (span < 0) {
        return NULL;
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

/* flush/invalidate of arr's span in lent memory f, live (held by the
 * caller): its owner's device does it, once, with the exact span; on
 * coherent memory nothing is asked of it. */
static PyObject *
sync_foreign(PyArrayObject *arr, ForeignObject *f, sync_fn fn,
             const char *what)
{
    if (f->coherent) {
        if (fn == pa_memory_flush) {
            pa_cpu_store_barrier();     /* as on coherent memory of ours */
        }
        Py_RETURN_NONE;
    }
    long long first, end;
    int span = span_in_memory(arr, "wrapped memory",
                              pa_foreign_offset(f, PyArray_DATA(arr)) - f->lo,
                              (unsigned long long)(f->hi - f->lo), what,
                              &first, &end);
    if (span <= 0) {
        return span < 0 ? NULL : Py_NewRef(Py_None);
    }
    return pa_foreign_sync(f, what, f->cpu + f->lo + first,
                           (npy_intp)(end - first));
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
    PyObject *holder = holder_of(arr);
    if (holder == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: this array's data is not in device memory "
                     "(it is a copy or a plain array, not a Buffer from "
                     "allocate() or a view of one)", what);
        return NULL;
    }
    int ours = Py_IS_TYPE(holder, &pa_AllocationType);
    PyObject *r = NULL;
    if (ours ? ((AllocationObject *)holder)->freed
             : ((ForeignObject *)holder)->freed) {
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: the buffer was freed (freebuffer() or the "
                     "end of its with-block)", what);
    }
    else {
        r = ours ? sync_allocation(arr, (AllocationObject *)holder, fn, what)
                 : sync_foreign(arr, (ForeignObject *)holder, fn, what);
    }
    Py_DECREF(holder);
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
"Covers the same span as flush(). The CPU invalidates whole cache lines:\n"
"in a line the span covers only in part, CPU writes are kept (the line\n"
"is cleaned first) and other bytes may take the device's values, on a\n"
"board as in the simulated memory. A no-op on coherent memory. No parameters. Raises ValueError if the\n"
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

/*
 * Lent memory cannot be detached from the arrays on it (pynq_alloc did not
 * map it), so freeing marks it freed: no array on it syncs or reports a
 * device address any more.  Its owner's memory goes back when the last
 * array on it is gone, which numpy's base chain decides, and never sooner.
 */
static int
free_foreign(ForeignObject *f)
{
    f->freed = 1;
    return 0;
}

static PyObject *
buffer_freebuffer(PyArrayObject *self, PyObject *unused)
{
    (void)unused;
    /* allocate() makes the Allocation the base of the Buffer it returns;
     * numpy makes that Buffer (or a view of it) the base of every view.
     * A root over lent memory holds its Foreign record itself. */
    PyObject *base = PyArray_BASE(self);
    PyObject *holder = base != NULL && Py_IS_TYPE(base, &pa_AllocationType)
        ? base : (PyObject *)*foreign_field((PyObject *)self);
    if (holder == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(holder);
    int rc = return_to_cache((PyObject *)self);
    if (rc == 0) {
        rc = holder == base ? free_allocation((AllocationObject *)holder)
                            : free_foreign((ForeignObject *)holder);
    }
    Py_DECREF(holder);
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
buffer_exit(PyArrayObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
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
static const char *const wrap_names[] = {"array", "context",
                                         "return_scalar"};
static PyObject *wrap_interned[3];  /* the same, interned: numpy's
                                       keywords are, so identity matches */

static PyObject *
buffer_array_wrap(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    /* (array, context=None, return_scalar=<absent>), by hand: numpy calls
     * this on every ufunc result, and PyArg_ParseTupleAndKeywords was
     * nine tenths of its time. */
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
            if (name == wrap_interned[i]) {
                found = i;
            }
        }
        for (int i = 0; i < 3 && found < 0; i++) {
            if (PyUnicode_CompareWithASCIIString(name, wrap_names[i]) == 0) {
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
        PyObject *holder = holder_of(result);
        if (holder != NULL) {
            Py_DECREF(holder);
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
    Py_VISIT(*foreign_field(self));
    Py_VISIT(PyArray_BASE((PyArrayObject *)self));
    return 0;
}

/*
 * PYNQ's order: a buffer of a frame cache gives its frame back when it is
 * garbage collected, as on freebuffer().  Only a Buffer with attributes
 * can have one, so the others cost a load.  Called once per Buffer, by
 * the garbage collector or from dealloc.
 */
static void
buffer_finalize(PyObject *self)
{
    if (*dict_slot(self) == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *raised = PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
#endif
    if (return_to_cache(self) < 0) {
        PyErr_WriteUnraisable(self);
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(raised);
#else
    PyErr_Restore(type, value, traceback);
#endif
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
    if (*dict_slot(self) != NULL
            && PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;     /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    /* Out of every list first: clearing the dict runs users' finalizers,
     * which may list buffers, and must not find this one. */
    unregister(self);
    PyObject *base = PyArray_BASE((PyArrayObject *)self);
    if (base != NULL && Py_IS_TYPE(base, &pa_AllocationType)) {
        pa_allocation_root_gone((AllocationObject *)base, self);
    }
    Py_CLEAR(*dict_slot(self));
    /* Let go of the lent memory's owner last: dropping its bo may unmap
     * the memory, which ndarray's dealloc may still write to (resolving
     * WRITEBACKIFCOPY). */
    ForeignObject *f = *foreign_field(self);
    *foreign_field(self) = NULL;
    PyArray_Type.tp_dealloc(self);     /* ends in tp_free */
    Py_XDECREF(f);
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
    {"__exit__", (PyCFunction)(void (*)(void))buffer_exit, METH_FASTCALL,
     NULL},
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

/*
 * The quick form of holder_of() for lent memory's two usual chains (its
 * root, a view of its root), borrowed, under the same terms as
 * borrowed_allocation(); NULL for any other shape.
 */
static ForeignObject *
borrowed_foreign(PyArrayObject *arr)
{
    ForeignObject *f = *foreign_field((PyObject *)arr);
    PyObject *base = PyArray_BASE(arr);
    if (f == NULL && base != NULL && Py_IS_TYPE(base, &pa_BufferType)) {
        f = *foreign_field(base);
    }
    return f != NULL && pa_foreign_holds(f, arr) ? f : NULL;
}

/* The device address of arr's first element in lent memory f. */
static uint64_t
address_in_foreign(ForeignObject *f, PyArrayObject *arr)
{
    return f->device_address
           + (uint64_t)pa_foreign_offset(f, PyArray_DATA(arr));
}

static PyObject *
get_device_address(PyArrayObject *self, void *closure)
{
    (void)closure;
    uint64_t address;
    AllocationObject *a = borrowed_allocation(self);
    ForeignObject *f = a == NULL ? borrowed_foreign(self) : NULL;
    if (a != NULL || f != NULL) {
        /* Borrowed, and read before anything can run Python code. */
        if (a != NULL ? a->freed : f->freed) {
            Py_RETURN_NONE;
        }
        address = a != NULL ? address_in(a, self)
                            : address_in_foreign(f, self);
        return address_int(address);
    }
    PyObject *holder = holder_of(self);
    if (holder == NULL) {
        Py_RETURN_NONE;
    }
    int ours = Py_IS_TYPE(holder, &pa_AllocationType);
    a = ours ? (AllocationObject *)holder : NULL;
    f = ours ? NULL : (ForeignObject *)holder;
    int freed = ours ? a->freed : f->freed;
    address = freed ? 0 : ours ? address_in(a, self)
                               : address_in_foreign(f, self);
    Py_DECREF(holder);
    if (freed) {
        Py_RETURN_NONE;
    }
    return address_int(address);
}

/* An int >= 0 that fits a device address, from a value a user set. */
static int
device_address_value(PyObject *value, uint64_t *address)
{
    PyObject *index = PyNumber_Index(value);
    if (index == NULL) {
        PyErr_Format(PyExc_TypeError, "device_address must be an int, not "
                     "%.200s", Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(index);
    Py_DECREF(index);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "device_address must be an address "
                     "from 0 to 0x%llx, not %R", (unsigned long long)-1,
                     value);
        return -1;
    }
    *address = v;
    return 0;
}

/*
 * Setting device_address says where a device sees memory that pynq_alloc
 * did not allocate, as PYNQ's video driver does on a frame it viewed as a
 * buffer: the Buffer becomes the root of that memory (or moves its
 * address, if it is one already).  Memory from allocate() has its address
 * from its Memory, and a view follows its root: both refuse.
 */
static int
set_device_address(PyArrayObject *self, PyObject *value, void *closure)
{
    (void)closure;
    uint64_t address;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "device_address cannot be "
                        "deleted");
        return -1;
    }
    if (device_address_value(value, &address) < 0) {
        return -1;
    }
    ForeignObject *own = *foreign_field((PyObject *)self);
    if (own != NULL) {
        own->device_address = address - (uint64_t)pa_foreign_offset(
            own, PyArray_DATA(self));
        return 0;
    }
    PyObject *holder = holder_of(self);
    if (holder != NULL) {
        int ours = Py_IS_TYPE(holder, &pa_AllocationType);
        Py_DECREF(holder);
        PyErr_SetString(PyExc_AttributeError, ours
            ? "device_address of a Buffer from allocate() (or of a view of "
              "one) is where its Memory put it, and cannot be set"
            : "device_address of a view follows its root's: set it on the "
              "Buffer that wraps the memory");
        return -1;
    }
    npy_intp lo = 0, hi = 0;
    int span = memory_span(self, &lo, &hi);
    if (span < 0) {
        PyErr_SetString(PyExc_ValueError, "cannot give this array a device "
                        "address: its strides span more bytes than an "
                        "address can count");
        return -1;
    }
    ForeignObject *f = pa_foreign_new(self, span, lo, hi, address, 0,
                                      Py_None, Py_None);
    if (f == NULL) {
        return -1;
    }
    *foreign_field((PyObject *)self) = f;
    return 0;
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
    PyObject *holder = holder_of(self);
    if (holder == NULL) {
        Py_RETURN_NONE;
    }
    long long offset = Py_IS_TYPE(holder, &pa_AllocationType)
        ? (long long)((char *)PyArray_DATA(self)
                      - (char *)((AllocationObject *)holder)->blk.cpu)
        : pa_foreign_offset((ForeignObject *)holder, PyArray_DATA(self));
    Py_DECREF(holder);
    return PyLong_FromLongLong(offset);
}

/* Which field of what holds a live buffer's data a getter reads. */
enum holder_field { COHERENT, CACHEABLE, HANDLE, DEVICE };

static PyObject *
holder_field(PyArrayObject *self, enum holder_field field)
{
    PyObject *holder = holder_of(self), *r;
    if (holder == NULL) {
        Py_RETURN_NONE;
    }
    if (Py_IS_TYPE(holder, &pa_AllocationType)) {
        AllocationObject *a = (AllocationObject *)holder;
        r = a->freed || field == DEVICE ? Py_NewRef(Py_None)
            : field == COHERENT ? PyBool_FromLong(a->blk.coherent)
            : field == CACHEABLE ? PyBool_FromLong(a->blk.cacheable)
            : PyLong_FromUnsignedLongLong(a->blk.handle);
    }
    else {
        ForeignObject *f = (ForeignObject *)holder;
        r = f->freed ? Py_NewRef(Py_None)
            : field == COHERENT ? PyBool_FromLong(f->coherent)
            : field == CACHEABLE ? PyBool_FromLong(!f->coherent)
            : field == HANDLE ? Py_NewRef(f->bo)
            : Py_NewRef(f->device);
    }
    Py_DECREF(holder);
    return r;
}

static PyObject *
get_coherent(PyArrayObject *self, void *closure)
{
    (void)closure;
    return holder_field(self, COHERENT);
}

static PyObject *
get_cacheable(PyArrayObject *self, void *closure)
{
    (void)closure;
    return holder_field(self, CACHEABLE);
}

static PyObject *
get_bo(PyArrayObject *self, void *closure)
{
    (void)closure;
    return holder_field(self, HANDLE);
}

static PyObject *
get_pynq_device(PyArrayObject *self, void *closure)
{
    (void)closure;
    return holder_field(self, DEVICE);
}

static PyObject *
get_memory(PyArrayObject *self, void *closure)
{
    (void)closure;
    PyObject *holder = holder_of(self);
    if (holder == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *memory = Py_IS_TYPE(holder, &pa_AllocationType)
        ? (PyObject *)((AllocationObject *)holder)->memory
        : ((ForeignObject *)holder)->memory;
    Py_INCREF(memory);
    Py_DECREF(holder);
    return memory;
}

/* PYNQ's memories record themselves on the buffers they make; lent
 * memory keeps what they record.  A Buffer from allocate() has its Memory
 * already. */
static int
set_memory(PyArrayObject *self, PyObject *value, void *closure)
{
    (void)closure;
    PyObject *holder = holder_of(self);
    if (holder == NULL || Py_IS_TYPE(holder, &pa_AllocationType)) {
        PyErr_SetString(PyExc_AttributeError, holder == NULL
            ? "memory can be set only on a Buffer over memory that "
              "pynq_alloc did not allocate (made with device_address=)"
            : "memory of a Buffer from allocate() is the Memory it came "
              "from, and cannot be set");
        Py_XDECREF(holder);
        return -1;
    }
    ForeignObject *f = (ForeignObject *)holder;
    Py_XSETREF(f->memory, Py_NewRef(value == NULL ? Py_None : value));
    Py_DECREF(holder);
    return 0;
}

static PyObject *
get_freed(PyArrayObject *self, void *closure)
{
    (void)closure;
    PyObject *holder = holder_of(self);
    int freed = holder != NULL && (Py_IS_TYPE(holder, &pa_AllocationType)
                                   ? ((AllocationObject *)holder)->freed
                                   : ((ForeignObject *)holder)->freed);
    Py_XDECREF(holder);
    return PyBool_FromLong(freed);
}

static PyGetSetDef buffer_getset[] = {
    {"device_address", (getter)get_device_address,
     (setter)set_device_address,
     "Device address of the first element, or None if the data is not in "
     "live device memory.  Settable only on a Buffer over memory that "
     "pynq_alloc did not allocate (PYNQ's video frames).", NULL},
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
     "The allocation's handle (an int), or the bo its owner gave for "
     "memory that pynq_alloc did not allocate (PYNQ compatibility).", NULL},
    {"pynq_device", (getter)get_pynq_device, NULL,
     "The device that owns and syncs memory that pynq_alloc did not "
     "allocate (PYNQ's `device`, which numpy 2 keeps for itself); None "
     "otherwise.", NULL},
    {"memory", (getter)get_memory, (setter)set_memory,
     "The Memory the data came from, or what the owner of lent memory "
     "recorded; None outside device memory.", NULL},
    {"freed", (getter)get_freed, NULL,
     "True once the allocation was released by freebuffer().", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict,
     "Attributes set on this array (by PYNQ's drivers, say).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* A new reference to kwds[key], taken out of kwds; NULL if absent (with
 * an error only if the lookup raised). */
static PyObject *
take_keyword(PyObject *kwds, const char *key)
{
    PyObject *name = PyUnicode_FromString(key);
    PyObject *value = name == NULL ? NULL
                                   : PyDict_GetItemWithError(kwds, name);
    Py_XINCREF(value);
    if (value != NULL && PyDict_DelItem(kwds, name) < 0) {
        Py_CLEAR(value);
    }
    Py_XDECREF(name);
    return value;
}

/* The Buffer over arr's memory (which pynq_alloc did not allocate), its
 * first element at device address `address`. */
static PyObject *
wrap_lent_memory(PyTypeObject *type, PyArrayObject *arr, uint64_t address,
                 int coherent, PyObject *device, PyObject *bo)
{
    PyArrayObject *root = (PyArrayObject *)PyArray_View(arr, NULL, type);
    if (root == NULL) {
        return NULL;
    }
    PyObject *holder = holder_of(root);
    if (holder != NULL) {
        PyErr_Format(PyExc_ValueError, "this memory is pynq_alloc's own "
                     "already (a Buffer from allocate() or a view of one): "
                     "use that Buffer, whose device_address is known, "
                     "rather than wrapping it again");
        Py_DECREF(holder);
        Py_DECREF(root);
        return NULL;
    }
    npy_intp lo = 0, hi = 0;
    int span = memory_span(root, &lo, &hi);
    ForeignObject *f = span < 0 ? NULL
        : pa_foreign_new(root, span, lo, hi, address, coherent, device, bo);
    if (f == NULL) {
        if (span < 0) {
            PyErr_SetString(PyExc_ValueError, "cannot wrap this memory: its "
                            "strides span more bytes than an address can "
                            "count");
        }
        Py_DECREF(root);
        return NULL;
    }
    *foreign_field((PyObject *)root) = f;
    return (PyObject *)root;
}

/*
 * PYNQ's PynqBuffer(shape, dtype, buffer=, offset=, strides=, device=,
 * device_address=, bo=, coherent=): a Buffer over memory that its owner
 * (a PYNQ device) allocated.  ndarray's own arguments make the array;
 * device_address is required, so that no Buffer has an address nobody
 * gave it.
 */
static PyObject *
buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *rest = kwds == NULL ? PyDict_New() : PyDict_Copy(kwds);
    if (rest == NULL) {
        return NULL;
    }
    PyObject *address_arg = take_keyword(rest, "device_address");
    PyObject *device = PyErr_Occurred() ? NULL : take_keyword(rest, "device");
    PyObject *bo = PyErr_Occurred() ? NULL : take_keyword(rest, "bo");
    PyObject *coherent_arg = PyErr_Occurred() ? NULL
                                              : take_keyword(rest, "coherent");
    PyObject *r = NULL;
    uint64_t address = 0;
    int coherent = -1;
    if (PyErr_Occurred()) {
        goto done;
    }
    if (address_arg == NULL || address_arg == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "Buffer(shape, dtype, ...) wraps memory that is "
                        "already device memory and needs its "
                        "device_address=; use pynq_alloc.allocate(shape, "
                        "dtype) for new device memory");
        goto done;
    }
    if (device_address_value(address_arg, &address) < 0
            || (coherent = pa_parse_flag(coherent_arg, "coherent", 0)) < 0) {
        goto done;
    }
    if (bo == NULL && (bo = PyLong_FromLong(0)) == NULL) {
        goto done;
    }
    PyObject *arr = PyArray_Type.tp_new(&PyArray_Type, args, rest);
    if (arr != NULL) {
        r = wrap_lent_memory(type, (PyArrayObject *)arr, address, coherent,
                             device == NULL ? Py_None : device, bo);
        Py_DECREF(arr);
    }
done:
    Py_DECREF(rest);
    Py_XDECREF(address_arg);
    Py_XDECREF(device);
    Py_XDECREF(bo);
    Py_XDECREF(coherent_arg);
    return r;
}

PyDoc_STRVAR(buffer_doc,
"Buffer(shape, dtype=None, buffer=None, offset=0, strides=None, order=None,"
" *, device_address, device=None, bo=0, coherent=False)\n--\n\n"
"A numpy.ndarray whose data lies in physically contiguous device memory.\n\n"
"Made by pynq_alloc.allocate(); slices and views of it are Buffers too and\n"
"keep exact device addresses. Results in new memory (ufuncs, copies) are\n"
"not device memory: their device_address is None.\n\n"
"Called directly, as PYNQ's PynqBuffer is, it wraps memory that its owner\n"
"allocated (ndarray's arguments say where; buffer=None makes host memory,\n"
"as PYNQ's test devices do) at device address device_address. flush()\n"
"and invalidate() then ask device.flush(bo, offset, vaddr, nbytes) and\n"
"device.invalidate(...) for the array's exact span, once, unless\n"
"coherent. The memory stays alive while any array on it is alive.\n\n"
"    >>> buf = Buffer((4,), 'u4', buffer=bytearray(16),\n"
"    ...              device_address=0x4000_0000, coherent=True)\n"
"    >>> hex(buf[2:].device_address)\n"
"    '0x40000008'");

PyTypeObject pa_BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pynq_alloc.Buffer",
    /* tp_basicsize and tp_dictoffset: set from ndarray's at run time. */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = buffer_doc,
    .tp_dealloc = buffer_dealloc,
    .tp_finalize = buffer_finalize,
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
    foreign_offset = links_offset + (Py_ssize_t)sizeof(buffer_links);
    pa_BufferType.tp_base = &PyArray_Type;
    pa_BufferType.tp_basicsize = foreign_offset
                                 + (Py_ssize_t)sizeof(ForeignObject *);
    pa_BufferType.tp_dictoffset = dict_offset;
    if (pa_BufferType.tp_dict == NULL && fill_type_dict(&pa_BufferType) < 0) {
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (wrap_interned[i] == NULL
                && (wrap_interned[i] = PyUnicode_InternFromString(
                        wrap_names[i])) == NULL) {
            return -1;
        }
    }
    return PyType_Ready(&pa_ForeignType) < 0 ? -1
                                             : PyType_Ready(&pa_BufferType);
}

/*
 * allocate(shape, dtype='u4', target=None, *, order='C', cacheable=False,
 *          align=None, max_address=None, zero=True)
 *
 * Every argument is checked before any memory is taken, so a failed call
 * leaves the Memory exactly as it was.  This is the hot path: arguments are
 * matched by pointer against interned names (as numpy's own parser does),
 * and a request that a released block can serve makes no system call.
 */
#include "allocate.h"

#include "allocation.h"
#include "buffer.h"
#include "errors.h"
#include "inventory.h"
#include "targets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

enum { ARG_SHAPE, ARG_DTYPE, ARG_TARGET, ARG_ORDER, ARG_CACHEABLE,
       ARG_ALIGN, ARG_MAX_ADDRESS, ARG_ZERO, ARG_POINTER, ARG_CACHE,
       ARG_COUNT };

static const char *const arg_names[ARG_COUNT] = {
    "shape", "dtype", "target", "order", "cacheable", "align", "max_address",
    "zero", "pointer", "cache",
};
static PyObject *arg_interned[ARG_COUNT];
static PyArray_Descr *default_dtype;    /* uint32, as in PYNQ */
/* The last dtype given as a string ('u4') and what it parsed to: a call
 * site passes the same constant object every time, and parsing it is a
 * fifth of a small allocate.  Strings are immutable and name the same
 * dtype whenever they are parsed, so identity is enough.  Only numpy's
 * own shared builtin dtypes are kept: a structured dtype can be changed
 * (its field names), so each buffer gets its own, as np.empty gives. */
static PyObject *last_dtype_text;
static PyArray_Descr *last_dtype;

int
pa_allocate_init(void)
{
    for (int i = 0; i < ARG_COUNT; i++) {
        arg_interned[i] = PyUnicode_InternFromString(arg_names[i]);
        if (arg_interned[i] == NULL) {
            return -1;
        }
    }
    default_dtype = PyArray_DescrFromType(NPY_UINT32);
    return default_dtype == NULL ? -1 : 0;
}

/* Fills out[] (borrowed, NULL when absent) from a vectorcall. */
static int
parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           int accept_target, PyObject *out[ARG_COUNT])
{
    Py_ssize_t max_positional = accept_target ? 3 : 2;
    if (nargs > max_positional) {
        PyErr_Format(PyExc_TypeError, "allocate() takes at most %zd "
                     "positional arguments (%zd given)", max_positional,
                     nargs);
        return -1;
    }
    for (int i = 0; i < ARG_COUNT; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = 0; i < ARG_COUNT && found < 0; i++) {
            if (name == arg_interned[i]) {
                found = i;
            }
        }
        for (int i = 0; i < ARG_COUNT && found < 0; i++) {
            if (PyUnicode_Compare(name, arg_interned[i]) == 0) {
                found = i;
            }
        }
        if (found < 0 || (found == ARG_TARGET && !accept_target)) {
            PyErr_Format(PyExc_TypeError, "allocate() got an unexpected "
                         "keyword argument '%U'", name);
            return -1;
        }
        if (out[found] != NULL) {
            PyErr_Format(PyExc_TypeError, "allocate() got multiple values "
                         "for argument '%s'", arg_names[found]);
            return -1;
        }
        out[found] = args[nargs + k];
    }
    if (out[ARG_SHAPE] == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "allocate() missing required argument 'shape'");
        return -1;
    }
    return 0;
}

static int
max_dims(void)
{
    return PyArray_RUNTIME_VERSION >= NPY_2_0_API_VERSION ? 64 : 32;
}

/* One dimension: an int that fits npy_intp, else ValueError naming the
 * shape (an OverflowError from deep in the C API says nothing useful). */
static int
parse_dim(PyObject *item, PyObject *shape, npy_intp *dim)
{
    *dim = PyArray_PyIntAsIntp(item);
    if (*dim == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "array is too big: shape %R has a "
                     "dimension beyond %zd", shape, (Py_ssize_t)NPY_MAX_INTP);
        return -1;
    }
    return 0;
}

/* An int or a sequence of ints, as numpy.empty takes; 0 or -1. */
static int
parse_shape(PyObject *obj, npy_intp *dims, int *nd)
{
    int sequence = PySequence_Check(obj);
    if (PyUnicode_Check(obj) || PyBytes_Check(obj)
            || (!sequence && !PyIndex_Check(obj))) {
        PyErr_Format(PyExc_TypeError, "shape must be an int or a sequence "
                     "of ints, not %s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyLong_Check(obj) || !sequence) {
        if (parse_dim(obj, obj, &dims[0]) != 0) {
            return -1;
        }
        *nd = 1;
    }
    else {
        /* A tuple is a snapshot: the items' __index__ may change a list
         * (PySequence_Fast would hand back the list itself). */
        PyObject *seq = PySequence_Tuple(obj);
        if (seq == NULL) {
            return -1;
        }
        Py_ssize_t n = PyTuple_GET_SIZE(seq);
        if (n > max_dims()) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "shape has %zd dimensions; this "
                         "numpy supports at most %d", n, max_dims());
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (parse_dim(PyTuple_GET_ITEM(seq, i), seq, &dims[i]) != 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        *nd = (int)n;
    }
    for (int i = 0; i < *nd; i++) {
        if (dims[i] < 0) {
            PyErr_Format(PyExc_ValueError, "negative dimensions are not "
                         "allowed: shape[%d] is %zd", i, (Py_ssize_t)dims[i]);
            return -1;
        }
    }
    return 0;
}

static PyArray_Descr *convert_dtype(PyObject *obj);

/* Whether descr is numpy's one shared instance of its builtin type, which
 * every parse of the same text returns anyway. */
static int
is_shared_builtin(PyArray_Descr *descr)
{
    PyArray_Descr *shared = PyArray_DescrFromType(descr->type_num);
    PyErr_Clear();      /* user-defined types: not shared, not an error */
    Py_XDECREF(shared);
    return shared == descr;
}

/* A new reference to the dtype, or NULL. */
static PyArray_Descr *
parse_dtype(PyObject *obj)
{
    if (obj != NULL && obj == last_dtype_text) {
        Py_INCREF(last_dtype);
        return last_dtype;
    }
    PyArray_Descr *descr = convert_dtype(obj);
    if (descr != NULL && obj != NULL && PyUnicode_CheckExact(obj)
            && is_shared_builtin(descr)) {
        /* Both change before either old one is released. */
        PyObject *old_text = last_dtype_text;
        PyArray_Descr *old = last_dtype;
        last_dtype_text = Py_NewRef(obj);
        Py_INCREF(descr);
        last_dtype = descr;
        Py_XDECREF(old_text);
        Py_XDECREF(old);
    }
    return descr;
}

/* parse_dtype's work, uncached. */
static PyArray_Descr *
convert_dtype(PyObject *obj)
{
    PyArray_Descr *descr = NULL;
    if (obj == NULL) {
        Py_INCREF(default_dtype);
        descr = default_dtype;
    }
    else if (PyArray_DescrCheck(obj)) {
        Py_INCREF(obj);
        descr = (PyArray_Descr *)obj;
    }
    else if (!PyArray_DescrConverter(obj, &descr)) {
        return NULL;
    }
    if (PyDataType_REFCHK(descr)) {
        PyErr_Format(PyExc_TypeError, "dtype %R holds Python objects, which "
                     "cannot be placed in device memory", (PyObject *)descr);
        Py_DECREF(descr);
        return NULL;
    }
    if (PyDataType_ELSIZE(descr) == 0
            && (descr->type_num == NPY_STRING
                || descr->type_num == NPY_UNICODE)) {
        /* numpy.empty(n, 'S') makes 'S1'; size it now, before allocating. */
        PyArray_Descr *sized = NULL;
        PyObject *spec = Py_BuildValue("(Oi)", (PyObject *)descr, 1);
        Py_DECREF(descr);
        if (spec == NULL) {
            return NULL;
        }
        int ok = PyArray_DescrConverter(spec, &sized);
        Py_DECREF(spec);
        return ok ? sized : NULL;
    }
    return descr;
}

/* 'C' or 'F' (None means 'C'); returns 1 for Fortran order, 0, or -1. */
static int
parse_order(PyObject *obj)
{
    if (obj == NULL || obj == Py_None) {
        return 0;
    }
    if (PyUnicode_Check(obj) && PyUnicode_GET_LENGTH(obj) == 1) {
        Py_UCS4 c = PyUnicode_READ_CHAR(obj, 0);
        if (c == 'C' || c == 'c') {
            return 0;
        }
        if (c == 'F' || c == 'f') {
            return 1;
        }
    }
    PyErr_Format(PyExc_ValueError, "order must be 'C' or 'F', not %R", obj);
    return -1;
}

/* See allocate.h.  Not any object's truth: cacheable='False' would be
 * true. */
int
pa_parse_flag(PyObject *obj, const char *name, int dflt)
{
    if (obj == NULL) {
        return dflt;
    }
    if (obj == Py_True || obj == Py_False) {
        return obj == Py_True;
    }
    if (PyArray_IsScalar(obj, Bool)) {
        return PyObject_IsTrue(obj);     /* numpy.bool_, whose truth is C */
    }
    if (PyLong_Check(obj) || PyArray_IsScalar(obj, Integer)) {
        PyObject *index = PyNumber_Index(obj);
        if (index == NULL) {
            return -1;
        }
        int overflow;
        long v = PyLong_AsLongAndOverflow(index, &overflow);
        Py_DECREF(index);
        if (overflow == 0 && (v == 0 || v == 1)) {
            return (int)v;
        }
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be True or False (or 1 or "
                     "0), not %R", name, obj);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "%s must be a bool (True or False, or 1 or "
                 "0), not %.200s", name, Py_TYPE(obj)->tp_name);
    return -1;
}

/* align: None (the page size) or a power of two that a 64-bit device
 * address can be a multiple of, so at most 2**63. */
static int
parse_align(PyObject *obj, uint64_t *align)
{
    *align = 0;
    if (obj == NULL || obj == Py_None) {
        return 0;
    }
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) {
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(index);
    Py_DECREF(index);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        v = 0;
    }
    if (v == 0 || (v & (v - 1)) != 0) {
        PyErr_Format(PyExc_ValueError, "align must be a power of two from 1 "
                     "to 2**63 (%llu), as device addresses have 64 bits; got "
                     "%R", 1ull << 63, obj);
        return -1;
    }
    *align = v;
    return 0;
}

/* max_address: None or a positive int; 0 means no limit. */
static int
parse_max_address(PyObject *obj, uint64_t *limit)
{
    *limit = 0;
    if (obj == NULL || obj == Py_None) {
        return 0;
    }
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) {
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (overflow > 0) {
        /* 2**63 or more; from 2**64 on, every address lies below it. */
        unsigned long long u = PyLong_AsUnsignedLongLong(index);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            u = 0;
        }
        Py_DECREF(index);
        *limit = u;
        return 0;
    }
    Py_DECREF(index);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || v <= 0) {
        PyErr_Format(PyExc_ValueError, "max_address must be positive, not %R",
                     obj);
        return -1;
    }
    *limit = (uint64_t)v;
    return 0;
}

/* The MemoryError for a request that did not fit, with the figures. */
static PyObject *
out_of_memory(MemoryObject *target, uint64_t nbytes, uint64_t align,
              uint64_t limit)
{
    pa_stats s;
    char constraint[96] = "";
    pa_memory_stats(target->mem, &s);
    if (align != 0 && limit != 0) {
        PyOS_snprintf(constraint, sizeof(constraint),
                      " aligned to %llu, below 0x%llx",
                      (unsigned long long)align, (unsigned long long)limit);
    }
    else if (align != 0) {
        PyOS_snprintf(constraint, sizeof(constraint), " aligned to %llu",
                      (unsigned long long)align);
    }
    else if (limit != 0) {
        PyOS_snprintf(constraint, sizeof(constraint), " below 0x%llx",
                      (unsigned long long)limit);
    }
    PyObject *hint = pa_inventory_oom_hint(target);
    pa_raise(ENOMEM, NULL, "cannot allocate %llu bytes%s in %s "
             "memory: %llu bytes free, largest free block %llu bytes%V",
             (unsigned long long)nbytes, constraint,
             pa_memory_kind(target->mem), (unsigned long long)s.free,
             (unsigned long long)s.largest_free, hint, "");
    Py_XDECREF(hint);
    return NULL;
}

/* The MemoryError for a buffer that could not be mapped, with the figures
 * that say why: the device memory is not what ran out. */
static void
out_of_mappings(MemoryObject *target, uint64_t nbytes)
{
    pa_stats s;
    char text[64] = "";
    long mappings = 0, limit = -1;
    FILE *f = fopen("/proc/self/maps", "r");
    for (int c; f != NULL && (c = getc(f)) != EOF;) {
        mappings += c == '\n';
    }
    if (f != NULL) {
        fclose(f);
    }
    f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f != NULL && fgets(text, sizeof(text), f) != NULL) {
        limit = strtol(text, NULL, 10);
    }
    if (f != NULL) {
        fclose(f);
    }
    pa_memory_stats(target->mem, &s);
    pa_raise(ENOMEM, NULL, "cannot map a buffer of %llu bytes: this process "
             "is out of memory mappings or address space (%ld mappings, "
             "vm.max_map_count %ld), while its %s memory has %llu bytes "
             "free; release buffers it no longer needs, or raise the limit",
             (unsigned long long)nbytes, mappings, limit,
             pa_memory_kind(target->mem), (unsigned long long)s.free);
}

/* A new Allocation of nbytes in target, or NULL with the error set. */
static AllocationObject *
allocate_block(MemoryObject *target, npy_intp nbytes, uint64_t align,
               uint64_t limit, unsigned flags)
{
    pa_block blk;
    pa_memory *mem = target->mem;
    if (!pa_memory_try_reuse(mem, (uint64_t)nbytes, align, limit, flags,
                             &blk)) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = pa_memory_alloc(mem, (uint64_t)nbytes, align, limit, flags,
                             &blk);
        Py_END_ALLOW_THREADS
        if (rc == -ENOMEM) {
            out_of_memory(target, (uint64_t)nbytes, align, limit);
            return NULL;
        }
        if (rc == -PA_ENOMAP) {
            out_of_mappings(target, (uint64_t)nbytes);
            return NULL;
        }
        if (rc == -EBUSY) {
            pa_raise(rc, NULL, "this %s memory was opened by process %d, "
                     "the parent of this one (%d); its heap lives in that "
                     "process, so a forked child cannot allocate from it: "
                     "open a memory in this process (open_memory()), or "
                     "start workers with multiprocessing's 'spawn' or "
                     "'forkserver' method", pa_memory_kind(mem),
                     (int)pa_memory_opener(mem), (int)pa_process_id());
            return NULL;
        }
        if (rc == -ENOTSUP && !(flags & PA_ALLOC_CACHEABLE)) {
            pa_raise(rc, NULL, "%s memory cannot map buffers uncached on "
                     "this CPU: use cacheable=True with flush() and "
                     "invalidate()", pa_memory_kind(mem));
            return NULL;
        }
        if (rc != 0) {
            pa_raise(rc, NULL, "cannot allocate %zd bytes in %s memory",
                     (Py_ssize_t)nbytes, pa_memory_kind(mem));
            return NULL;
        }
    }
    AllocationObject *a = pa_allocation_new(target, &blk);
    if (a == NULL) {
        pa_memory_release(mem, &blk);
    }
    return a;
}

/*
 * pointer=: PYNQ's frame caches hand back a buffer's `pointer` to wrap
 * the same memory again.  Ours is the Allocation.  A new reference, or
 * NULL with the error set.
 */
static AllocationObject *
reuse_pointer(PyObject *pointer, npy_intp nbytes)
{
    if (!Py_IS_TYPE(pointer, &pa_AllocationType)) {
        PyErr_Format(PyExc_TypeError, "pointer must be the `pointer` of a "
                     "Buffer allocated with cache= (a pynq_alloc.Allocation),"
                     " not %.200s", Py_TYPE(pointer)->tp_name);
        return NULL;
    }
    AllocationObject *a = (AllocationObject *)pointer;
    if (a->freed) {
        PyErr_SetString(PyExc_ValueError, "pointer names an allocation "
                        "that was freed");
        return NULL;
    }
    if ((uint64_t)nbytes > a->blk.size) {
        PyErr_Format(PyExc_ValueError, "pointer's allocation has %llu "
                     "bytes; the shape and dtype need %zd",
                     (unsigned long long)a->blk.size, (Py_ssize_t)nbytes);
        return NULL;
    }
    Py_INCREF(a);
    return a;
}

/* cache=: as PYNQ does, the buffer records where freebuffer() returns
 * its pointer instead of releasing the memory. */
static int
attach_cache(PyObject *arr, AllocationObject *a, PyObject *cache)
{
    PyObject *method = PyObject_GetAttrString(cache, "return_pointer");
    if (method == NULL || !PyCallable_Check(method)) {
        Py_XDECREF(method);
        PyErr_Format(PyExc_TypeError, "cache must have a return_pointer() "
                     "method, as PYNQ's frame caches do; %.200s has none",
                     Py_TYPE(cache)->tp_name);
        return -1;
    }
    Py_DECREF(method);
    if (PyObject_SetAttrString(arr, "pointer", (PyObject *)a) < 0
            || PyObject_SetAttrString(arr, "return_to", cache) < 0) {
        return -1;
    }
    return 0;
}

PyObject *
pa_allocate_impl(MemoryObject *self, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames, int accept_target)
{
    PyObject *arg[ARG_COUNT];
    npy_intp dims[64];
    int nd, fortran, cacheable, zero;
    uint64_t align, limit;

    /* PYNQ's defaults: uncached, and zeroed as the kernel's buffers are. */
    if (parse_args(args, nargs, kwnames, accept_target, arg) != 0
            || parse_shape(arg[ARG_SHAPE], dims, &nd) != 0
            || (fortran = parse_order(arg[ARG_ORDER])) < 0
            || (cacheable = pa_parse_flag(arg[ARG_CACHEABLE], "cacheable",
                                          0)) < 0
            || (zero = pa_parse_flag(arg[ARG_ZERO], "zero", 1)) < 0
            || parse_align(arg[ARG_ALIGN], &align) != 0
            || parse_max_address(arg[ARG_MAX_ADDRESS], &limit) != 0) {
        return NULL;
    }
    unsigned flags = (cacheable ? PA_ALLOC_CACHEABLE : 0)
                     | (zero ? 0 : PA_ALLOC_UNZEROED);
    PyObject *pointer = arg[ARG_POINTER] == Py_None ? NULL : arg[ARG_POINTER];
    PyObject *cache = arg[ARG_CACHE] == Py_None ? NULL : arg[ARG_CACHE];
    PyArray_Descr *descr = parse_dtype(arg[ARG_DTYPE]);
    if (descr == NULL) {
        return NULL;
    }

    /* nbytes, with the dims a subarray dtype adds, checked for overflow. */
    int total_nd = nd;
    if (PyDataType_HASSUBARRAY(descr)) {
        total_nd += (int)PyTuple_GET_SIZE(PyDataType_SUBARRAY(descr)->shape);
    }
    npy_intp nbytes = PyDataType_ELSIZE(descr);
    for (int i = 0; i < nd; i++) {
        if (__builtin_mul_overflow(nbytes, dims[i], &nbytes)) {
            nbytes = -1;
            break;
        }
    }
    if (nbytes < 0 || total_nd > max_dims()) {
        if (nbytes < 0) {
            PyErr_Format(PyExc_ValueError, "array is too big: shape %R of "
                         "%zd-byte items overflows a byte count",
                         arg[ARG_SHAPE], (Py_ssize_t)PyDataType_ELSIZE(descr));
        }
        else {
            PyErr_Format(PyExc_ValueError, "the shape and the dtype's "
                         "subarray make %d dimensions; this numpy supports at "
                         "most %d", total_nd, max_dims());
        }
        Py_DECREF(descr);
        return NULL;
    }

    AllocationObject *a;
    if (pointer != NULL) {
        a = reuse_pointer(pointer, nbytes);     /* target is not needed */
    }
    else {
        MemoryObject *target = self;
        if (accept_target) {
            target = pa_target_memory(arg[ARG_TARGET]);
        }
        else {
            Py_INCREF(target);
        }
        a = target == NULL ? NULL
                           : allocate_block(target, nbytes, align, limit,
                                            flags);
        Py_XDECREF(target);
    }
    if (a == NULL) {
        Py_DECREF(descr);
        return NULL;
    }
    /* Steals descr; a's dealloc gives the block back if this fails. */
    PyObject *arr = PyArray_NewFromDescr(
        &pa_BufferType, descr, nd, dims, NULL, a->blk.cpu,
        fortran ? NPY_ARRAY_FARRAY : NPY_ARRAY_CARRAY, NULL);
    if (arr == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    if (PyArray_SetBaseObject((PyArrayObject *)arr, (PyObject *)a) < 0) {
        Py_DECREF(arr);     /* SetBaseObject stole a */
        return NULL;
    }
    if (pa_allocation_adopt_root(a, arr) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    if (cache != NULL && attach_cache(arr, a, cache) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

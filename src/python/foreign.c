/*
 * Foreign: the record of memory a Buffer wraps but pynq_alloc did not
 * allocate (see foreign.h).  Buffers reach it from their root, through
 * the slot buffer.c keeps; nothing else holds one.
 */
#include "foreign.h"

ForeignObject *
pa_foreign_new(PyArrayObject *root, int span, npy_intp lo, npy_intp hi,
               uint64_t device_address, int coherent, PyObject *device,
               PyObject *bo)
{
    ForeignObject *f = PyObject_GC_New(ForeignObject, &pa_ForeignType);
    if (f == NULL) {
        return NULL;
    }
    f->cpu = PyArray_DATA(root);
    f->lo = span > 0 ? lo : 0;
    f->hi = span > 0 ? hi : 0;
    f->device_address = device_address;
    f->coherent = coherent;
    f->freed = 0;
    f->device = Py_NewRef(device);
    f->bo = Py_NewRef(bo);
    f->memory = Py_NewRef(Py_None);
    PyObject_GC_Track(f);
    return f;
}

int
pa_foreign_holds(const ForeignObject *f, PyArrayObject *arr)
{
    long long at = pa_foreign_offset(f, PyArray_DATA(arr));
    /* The end is allowed: an empty view just past the last byte. */
    return at >= f->lo && at <= f->hi;
}

long long
pa_foreign_offset(const ForeignObject *f, const char *p)
{
    return (long long)((intptr_t)p - (intptr_t)f->cpu);
}

PyObject *
pa_foreign_sync(ForeignObject *f, const char *what, const char *p,
                npy_intp nbytes)
{
    /* Held: the device's method runs Python code, which could clear f. */
    PyObject *device = Py_NewRef(f->device), *bo = Py_NewRef(f->bo);
    PyObject *r = NULL;
    long long offset = pa_foreign_offset(f, p);
    if (device == Py_None) {
        PyErr_Format(PyExc_ValueError,
                     "cannot %s: this buffer wraps memory that pynq_alloc "
                     "did not allocate (device address 0x%llx), and no "
                     "device was given to sync it: construct it with "
                     "device=, an object with flush() and invalidate()",
                     what, (unsigned long long)f->device_address);
    }
    else {
        /* PYNQ's order: the bo, the offset in it, the CPU address, the
         * length. */
        r = PyObject_CallMethod(device, what, "OLNn", bo, offset,
                                PyLong_FromVoidPtr((void *)p), nbytes);
        if (r != NULL) {
            Py_SETREF(r, Py_NewRef(Py_None));
        }
    }
    Py_DECREF(device);
    Py_DECREF(bo);
    return r;
}

static int
foreign_traverse(ForeignObject *f, visitproc visit, void *arg)
{
    Py_VISIT(f->device);
    Py_VISIT(f->bo);
    Py_VISIT(f->memory);
    return 0;
}

/* None, not NULL, after a clear: Buffers still on f read these. */
static int
foreign_clear(ForeignObject *f)
{
    Py_SETREF(f->device, Py_NewRef(Py_None));
    Py_SETREF(f->bo, Py_NewRef(Py_None));
    Py_SETREF(f->memory, Py_NewRef(Py_None));
    return 0;
}

static void
foreign_dealloc(ForeignObject *f)
{
    PyObject_GC_UnTrack(f);
    Py_CLEAR(f->device);
    Py_CLEAR(f->bo);
    Py_CLEAR(f->memory);
    PyObject_GC_Del(f);
}

PyTypeObject pa_ForeignType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pynq_alloc._core.Foreign",
    .tp_basicsize = sizeof(ForeignObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Memory a Buffer wraps that pynq_alloc did not allocate: its "
              "device address, and the device and bo that own it.",
    .tp_dealloc = (destructor)foreign_dealloc,
    .tp_traverse = (traverseproc)foreign_traverse,
    .tp_clear = (inquiry)foreign_clear,
};

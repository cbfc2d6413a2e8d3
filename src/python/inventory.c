/*
 * What a Memory holds: its live Allocations, and where each was made.
 *
 * Each Memory keeps its Allocations in an intrusive doubly linked list,
 * changed only with the GIL held: linking costs allocate() two stores, and
 * the list holds no references, so it never keeps memory alive.  Each
 * Allocation also knows its root Buffer (borrowed; the Buffer's dealloc
 * clears it), whose shape and dtype the listing reports.
 *
 * Tracing (off by default) records the Python stack at each allocate, as
 * tracemalloc does; when off it costs allocate() one test of an int.
 *
 * What is reported is shaped in Python (pynq_alloc._inventory): this file
 * hands it one raw tuple per live Allocation.
 */
#include "glue.h"

#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>    /* f_lasti */
#endif
#include <string.h>

/* Frames recorded per allocation; 0: tracing is off. */
static int trace_frames;

/* The calling Python frames, most recent first, as code objects and
 * instruction offsets: line numbers cost hundreds of instructions a frame
 * to work out, so only a listing does that (decode_stack). */
typedef struct pa_trace {
    int n;
    struct {
        PyCodeObject *code;
        int offset;
    } frame[];
} pa_trace;

static void
free_trace(pa_trace *t)
{
    for (int i = 0; t != NULL && i < t->n; i++) {
        Py_DECREF(t->frame[i].code);
    }
    PyMem_Free(t);
}

/* NULL with MemoryError if out of memory. */
static pa_trace *
capture_stack(int depth)
{
    pa_trace *t = PyMem_Malloc(sizeof(pa_trace)
                               + (size_t)depth * sizeof(t->frame[0]));
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    t->n = 0;
    PyFrameObject *f = PyEval_GetFrame();
    Py_XINCREF(f);
    while (f != NULL && t->n < depth) {
        t->frame[t->n].code = PyFrame_GetCode(f);
#if PY_VERSION_HEX >= 0x030B0000
        t->frame[t->n].offset = PyFrame_GetLasti(f);
#else
        t->frame[t->n].offset = f->f_lasti * (int)sizeof(_Py_CODEUNIT);
#endif
        t->n++;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    Py_XDECREF(f);
    return t;
}

/* ((filename, lineno, function), ...) from what capture_stack kept. */
static PyObject *
decode_stack(const pa_trace *t)
{
    PyObject *out = PyTuple_New(t->n);
    for (int i = 0; out != NULL && i < t->n; i++) {
        PyCodeObject *code = t->frame[i].code;
        PyObject *item = Py_BuildValue(
            "(OiO)", code->co_filename,
            PyCode_Addr2Line(code, t->frame[i].offset), code->co_name);
        if (item == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

void
pa_inventory_add(AllocationObject *a)
{
    MemoryObject *m = a->memory;
    a->inv = (pa_inventory_entry){0};
    a->inv.next = m->allocations;
    if (m->allocations != NULL) {
        ((AllocationObject *)m->allocations)->inv.prev = (PyObject *)a;
    }
    m->allocations = (PyObject *)a;
}

void
pa_inventory_remove(AllocationObject *a)
{
    pa_inventory_entry *e = &a->inv;
    if (e->prev != NULL) {
        ((AllocationObject *)e->prev)->inv.next = e->next;
    }
    else {
        a->memory->allocations = e->next;
    }
    if (e->next != NULL) {
        ((AllocationObject *)e->next)->inv.prev = e->prev;
    }
    if (e->dtype != NULL || e->dims != NULL || e->trace != NULL) {
        Py_CLEAR(e->dtype);
        PyMem_Free(e->dims);
        e->dims = NULL;
        free_trace(e->trace);
        e->trace = NULL;
    }
}

int
pa_inventory_adopt(AllocationObject *a, PyObject *root)
{
    pa_inventory_entry *e = &a->inv;
    e->root = root;
    if (e->dims != NULL || e->dtype != NULL) {  /* pointer= wraps it again */
        Py_CLEAR(e->dtype);
        PyMem_Free(e->dims);
        e->dims = NULL;
    }
    if (trace_frames > 0) {
        pa_trace *trace = capture_stack(trace_frames);
        if (trace == NULL) {
            return -1;
        }
        free_trace(e->trace);
        e->trace = trace;
    }
    return 0;
}

void
pa_inventory_root_gone(PyObject *buffer)
{
    PyArrayObject *arr = (PyArrayObject *)buffer;
    PyObject *base = PyArray_BASE(arr);
    if (base == NULL || !Py_IS_TYPE(base, &pa_AllocationType)) {
        return;
    }
    pa_inventory_entry *e = &((AllocationObject *)base)->inv;
    if (e->root != buffer) {
        return;
    }
    e->root = NULL;
    AllocationObject *a = (AllocationObject *)base;
    if (Py_REFCNT(base) > 1
            || pa_memory_has_device_writes(a->memory->mem, &a->blk)) {
        /* Something else keeps the Allocation (a frame cache's `pointer`),
         * or its release has coherence hazards to describe: keep what the
         * listing reports.  PyMem_Malloc sets no exception, which
         * matters in a dealloc. */
        int nd = PyArray_NDIM(arr);
        e->dims = PyMem_Malloc(sizeof(npy_intp) * (size_t)(nd > 0 ? nd : 1));
        if (e->dims != NULL) {
            memcpy(e->dims, PyArray_DIMS(arr), sizeof(npy_intp) * (size_t)nd);
            e->nd = nd;
            e->dtype = PyArray_DESCR(arr);
            Py_INCREF(e->dtype);
        }
    }
}

/* (device_address, size, cacheable, coherent, shape, dtype, root, trace)
 * for one Allocation; shape and dtype are None if unknown, root and trace
 * None if gone or not recorded. */
PyObject *
pa_inventory_raw(AllocationObject *a)
{
    pa_inventory_entry *e = &a->inv;
    PyObject *shape = NULL, *dtype = Py_None;
    if (e->root != NULL) {
        PyArrayObject *root = (PyArrayObject *)e->root;
        shape = PyArray_IntTupleFromIntp(PyArray_NDIM(root),
                                         PyArray_DIMS(root));
        dtype = (PyObject *)PyArray_DESCR(root);
    }
    else if (e->dims != NULL) {
        shape = PyArray_IntTupleFromIntp(e->nd, e->dims);
        dtype = (PyObject *)e->dtype;
    }
    else {
        shape = Py_NewRef(Py_None);
    }
    PyObject *trace = e->trace != NULL ? decode_stack(e->trace)
                                       : Py_NewRef(Py_None);
    if (shape == NULL || trace == NULL) {
        Py_XDECREF(shape);
        Py_XDECREF(trace);
        return NULL;
    }
    return Py_BuildValue(
        "(KKNNNOON)", (unsigned long long)a->blk.device_address,
        (unsigned long long)a->blk.size, PyBool_FromLong(a->blk.cacheable),
        PyBool_FromLong(a->blk.coherent), shape, dtype,
        e->root != NULL ? e->root : Py_None, trace);
}

/*
 * The raw entries of m's Allocations that still hold device memory.  The
 * collector stays off meanwhile: making the entries allocates objects,
 * and a collection then could run finalizers that free the Allocations
 * (or roots) being listed.  Nothing else here runs Python code.
 */
static PyObject *
raw_entries(MemoryObject *m)
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    int collecting = PyGC_Disable();
    for (PyObject *p = m->allocations; p != NULL;
            p = ((AllocationObject *)p)->inv.next) {
        AllocationObject *a = (AllocationObject *)p;
        if (a->retired) {
            continue;   /* freebuffer() gave its memory back */
        }
        PyObject *entry = pa_inventory_raw(a);
        if (entry == NULL || PyList_Append(list, entry) < 0) {
            Py_XDECREF(entry);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(entry);
    }
    if (collecting) {
        PyGC_Enable();
    }
    return list;
}

PyObject *
pa_call_package(const char *module, const char *function, PyObject *args)
{
    PyObject *mod = args == NULL ? NULL : PyImport_ImportModule(module);
    PyObject *fn = mod == NULL ? NULL : PyObject_GetAttrString(mod, function);
    PyObject *r = fn == NULL ? NULL : PyObject_Call(fn, args, NULL);
    Py_XDECREF(fn);
    Py_XDECREF(mod);
    Py_XDECREF(args);
    return r;
}

const char pa_memory_buffers_doc[] =
"buffers($self, /)\n--\n\n"
"List the allocations of this memory that hold device memory now.\n\n"
"One BufferInfo per allocation, lowest device address first: its\n"
"device_address, size (bytes held), shape and dtype (of the Buffer that\n"
"allocate() returned), cacheable, coherent, views (Buffer views of it\n"
"that are alive) and traceback: where it was allocated, most recent call\n"
"first, as ((filename, lineno, function), ...), when pynq_alloc.trace()\n"
"was on, else None. The list holds no reference to the buffers, so\n"
"keeping it keeps no memory. Buffers freed with freebuffer() are not\n"
"listed: their memory is back. Never raises.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20, base_address=0x4000_0000)\n"
"    >>> buf = mem.allocate((2, 3), 'f4')\n"
"    >>> [(hex(b.device_address), b.size, b.shape, str(b.dtype))\n"
"    ...  for b in mem.buffers()]\n"
"    [('0x40000000', 4096, (2, 3), 'float32')]";

PyObject *
pa_memory_buffers(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    PyObject *raw = raw_entries(m);
    if (raw == NULL) {
        return NULL;
    }
    return pa_call_package("pynq_alloc._inventory", "buffer_infos",
                        Py_BuildValue("(N)", raw));
}

PyObject *
pa_inventory_oom_hint(MemoryObject *m)
{
    PyObject *raw = raw_entries(m);
    PyObject *hint = raw == NULL ? NULL
        : pa_call_package("pynq_alloc._inventory", "oom_hint",
                       Py_BuildValue("(Ni)", raw, trace_frames > 0));
    if (hint == NULL || !PyUnicode_Check(hint)) {
        /* The MemoryError goes out without it. */
        PyErr_Clear();
        Py_CLEAR(hint);
    }
    return hint;
}

PyObject *
pa_memory_repr_html(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    return pa_call_package("pynq_alloc._memory_map", "html",
                           Py_BuildValue("(O)", (PyObject *)m));
}

/* _trace(frames) -> the previous number; 0 turns tracing off. */
static PyObject *
module_trace(PyObject *module, PyObject *arg)
{
    (void)module;
    long frames = PyLong_AsLong(arg);
    if (frames == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (frames < 0 || frames > 1000) {
        PyErr_Format(PyExc_ValueError, "frames must be from 0 to 1000, not "
                     "%ld", frames);
        return NULL;
    }
    int previous = trace_frames;
    trace_frames = (int)frames;
    return PyLong_FromLong(previous);
}

PyMethodDef pa_inventory_methods[] = {
    {"_trace", module_trace, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

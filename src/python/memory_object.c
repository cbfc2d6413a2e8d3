/* Memory: one source of physically contiguous memory (a pa_memory). */
#include "memory_object.h"

#include "allocate.h"
#include "coherence.h"
#include "errors.h"
#include "inventory.h"
#include "package.h"

#include <errno.h>

/* Copies at least this long run without the GIL. */
#define COPY_WITHOUT_GIL_BYTES (64 * 1024)

PyObject *
pa_memory_wrap(pa_memory *mem)
{
    MemoryObject *m = PyObject_New(MemoryObject, &pa_MemoryType);
    if (m == NULL) {
        pa_memory_close(mem);
        return NULL;
    }
    m->mem = mem;
    m->weakrefs = NULL;
    m->allocations = NULL;
    m->released_hazards = NULL;
    return (PyObject *)m;
}

static void
memory_dealloc(MemoryObject *m)
{
    /* Every Allocation holds a reference, so none is left. */
    if (m->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)m);
    }
    Py_XDECREF(m->released_hazards);
    pa_memory_close(m->mem);
    PyObject_Free(m);
}

static PyObject *
memory_repr(MemoryObject *m)
{
    char base[32], detail[64];
    PyOS_snprintf(base, sizeof(base), "0x%llx",
                  (unsigned long long)pa_memory_base_address(m->mem));
    pa_memory_describe(m->mem, detail, sizeof(detail));
    return PyUnicode_FromFormat("<pynq_alloc.Memory kind=%s%s%s "
                                "base_address=%s size=%llu>",
                                pa_memory_kind(m->mem), detail[0] ? " " : "",
                                detail, base,
                                (unsigned long long)pa_memory_size(m->mem));
}

PyDoc_STRVAR(memory_allocate_doc,
"allocate($self, /, shape, dtype='u4', *, order='C', cacheable=False,\n"
"         align=None, max_address=None, zero=True, pointer=None,\n"
"         cache=None)\n--\n\n"
"Allocate a Buffer in this memory: pynq_alloc.allocate(..., target=self).\n\n"
"shape, dtype, order, cacheable, align, max_address, zero, pointer and\n"
"cache are as for pynq_alloc.allocate(), which says what each does.\n"
"Raises ValueError (bad shape, order, align, max_address), TypeError\n"
"(object dtype, a flag that is not a bool), MemoryError (no block fits:\n"
"the message gives the bytes free, the largest free block and the largest\n"
"live buffers), OSError (the device refuses).\n\n"
"    >>> mem = open_memory('sim', size=1 << 20, base_address=0x4000_0000)\n"
"    >>> buf = mem.allocate((2, 3), 'f4')\n"
"    >>> hex(buf.device_address), buf.shape, buf.memory is mem\n"
"    ('0x40000000', (2, 3), True)");

static PyObject *
memory_allocate(MemoryObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    return pa_allocate_impl(self, args, nargs, kwnames, 0);
}

PyDoc_STRVAR(memory_stats_doc,
"stats($self, /)\n--\n\n"
"Return a dict of ints: total, used, free, largest_free (bytes) and\n"
"buffers (live allocations).\n\n"
"No parameters; never raises. Memory.buffers() says which buffers hold\n"
"the memory, and displaying the Memory in Jupyter draws its map.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(5000, 'u1')\n"
"    >>> mem.stats()\n"
"    {'total': 1048576, 'used': 8192, 'free': 1040384, "
"'largest_free': 1040384, 'buffers': 1}");

static PyObject *
memory_stats(MemoryObject *self, PyObject *unused)
{
    (void)unused;
    pa_stats s;
    Py_BEGIN_ALLOW_THREADS
    pa_memory_stats(self->mem, &s);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("{sKsKsKsKsK}", "total", s.total, "used", s.used,
                         "free", s.free, "largest_free", s.largest_free,
                         "buffers", s.buffers);
}

/* Reads an address or length argument: a non-negative int below 2**64. */
static int
as_u64(PyObject *obj, const char *name, uint64_t *out)
{
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) {
        return -1;
    }
    *out = PyLong_AsUnsignedLongLong(index);
    Py_DECREF(index);
    if (*out == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_ValueError, "%s must be an int from 0 to 2**64-1",
                     name);
        return -1;
    }
    return 0;
}

static PyObject *
bus_error(int rc, uint64_t address, uint64_t n)
{
    char range[64];
    PyOS_snprintf(range, sizeof(range), "[0x%llx, 0x%llx)",
                  (unsigned long long)address,
                  (unsigned long long)(address + n));
    if (rc == -ENOTSUP) {
        return pa_raise(rc, NULL, "this memory gives no device-side access");
    }
    if (rc == -ENOMEM) {        /* device_write's copy of its source */
        return pa_raise(rc, NULL, "no memory for a copy of the %llu-byte "
                        "source of the device write to %s",
                        (unsigned long long)n, range);
    }
    return pa_raise(rc, NULL, "device bus error: %s is not inside one live "
                    "allocation of this memory", range);
}

PyDoc_STRVAR(device_read_doc,
"device_read($self, address, nbytes, /)\n--\n\n"
"Read memory as a DMA master does (not through the CPU cache).\n\n"
"address: a device address; nbytes: how many bytes. Returns bytes.\n"
"Raises ValueError unless the range lies inside one live allocation (a\n"
"simulated bus error), OSError (ENOTSUP) on memories that give no\n"
"device-side access (zocl, u-dma-buf, xlnk).\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(4, 'u1')\n"
"    >>> buf[:] = [1, 2, 3, 4]        # uncached: the device sees it now\n"
"    >>> mem.device_read(buf.device_address + 1, 2)\n"
"    b'\\x02\\x03'");

static PyObject *
memory_device_read(MemoryObject *self, PyObject *const *args,
                   Py_ssize_t nargs)
{
    uint64_t address, n;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "device_read(address, nbytes) takes 2 arguments");
        return NULL;
    }
    if (as_u64(args[0], "address", &address) != 0
            || as_u64(args[1], "nbytes", &n) != 0) {
        return NULL;
    }
    /* Refuse what cannot succeed before making the output: no range
     * larger than the pool lies inside one of its allocations. */
    if (!pa_memory_has_device_access(self->mem)) {
        return bus_error(-ENOTSUP, address, n);
    }
    if (n > pa_memory_size(self->mem) || n > (uint64_t)PY_SSIZE_T_MAX) {
        return bus_error(-EFAULT, address, n);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (out == NULL) {
        return NULL;
    }
    int rc;
    if (n >= COPY_WITHOUT_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        rc = pa_memory_device_read(self->mem, address, PyBytes_AS_STRING(out),
                                   n);
        Py_END_ALLOW_THREADS
    }
    else {
        rc = pa_memory_device_read(self->mem, address, PyBytes_AS_STRING(out),
                                   n);
    }
    if (rc != 0) {
        Py_DECREF(out);
        return bus_error(rc, address, n);
    }
    if (pa_hazards_pending() && pa_coherence_report(self) != 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

PyDoc_STRVAR(device_write_doc,
"device_write($self, address, data, /)\n--\n\n"
"Write a bytes-like object to memory as a DMA master does.\n\n"
"address: a device address; data: bytes, bytearray, an array, ...\n"
"Raises ValueError unless the range lies inside one live allocation (a\n"
"simulated bus error), TypeError if data is not bytes-like, OSError\n"
"(ENOTSUP) on memories that give no device-side access.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(4, 'u1')\n"
"    >>> mem.device_write(buf.device_address, bytes([9, 8, 7, 6]))\n"
"    >>> buf.tolist()                 # uncached: the CPU sees it now\n"
"    [9, 8, 7, 6]");

static PyObject *
memory_device_write(MemoryObject *self, PyObject *const *args,
                    Py_ssize_t nargs)
{
    uint64_t address;
    Py_buffer view;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "device_write(address, data) takes 2 arguments");
        return NULL;
    }
    if (as_u64(args[0], "address", &address) != 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &view, PyBUF_C_CONTIGUOUS) != 0) {
        return NULL;
    }
    uint64_t n = (uint64_t)view.len;
    int rc;
    if (n >= COPY_WITHOUT_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        rc = pa_memory_device_write(self->mem, address, view.buf, n);
        Py_END_ALLOW_THREADS
    }
    else {
        rc = pa_memory_device_write(self->mem, address, view.buf, n);
    }
    PyBuffer_Release(&view);
    if (rc != 0) {
        return bus_error(rc, address, n);
    }
    if (pa_hazards_pending() && pa_coherence_report(self) != 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(memory_buffers_doc,
"buffers($self, /)\n--\n\n"
"List the allocations of this memory that hold device memory now.\n\n"
"One BufferInfo per allocation, lowest device address first: its\n"
"device_address, size (bytes held), shape and dtype (of the Buffer that\n"
"allocate() returned), cacheable, coherent, views (Buffer views of it\n"
"that are alive) and traceback: where it was allocated, most recent call\n"
"first, as ((filename, lineno, function), ...), when pynq_alloc.trace()\n"
"was on, else None. The list holds no reference to the buffers, so\n"
"keeping it keeps no memory. Buffers freed with freebuffer() are not\n"
"listed: their memory is back. Safe from any thread. Raises only\n"
"MemoryError, when no memory is left to make the list.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20, base_address=0x4000_0000)\n"
"    >>> buf = mem.allocate((2, 3), 'f4')\n"
"    >>> view = buf[1:]\n"
"    >>> [(hex(b.device_address), b.size, b.shape, str(b.dtype), b.views)\n"
"    ...  for b in mem.buffers()]\n"
"    [('0x40000000', 4096, (2, 3), 'float32', 1)]");

static PyObject *
memory_buffers(MemoryObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *records = pa_inventory_records(self);
    return records == NULL ? NULL
        : pa_call_package("pynq_alloc._inventory", "buffer_infos",
                          Py_BuildValue("(N)", records));
}

PyDoc_STRVAR(memory_check_doc,
"check($self, /)\n--\n\n"
"List the coherence hazards that stand in this simulated memory.\n\n"
"For each cacheable buffer: bytes the CPU wrote and never flushed, and\n"
"bytes the device wrote that the CPU never invalidated (a CPU read of\n"
"them was stale); and for buffers released since the last check(), the\n"
"device writes they never invalidated (at most 64). Returns a list of\n"
"pynq_alloc.Hazard, empty when all is clean and on memories other than\n"
"the sim, which track nothing. Raises nothing; it does not warn.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(16, 'u1', cacheable=True)\n"
"    >>> buf[:] = 1                   # never flushed\n"
"    >>> [(h.kind, h.start, h.stop) for h in mem.check()]\n"
"    [('unflushed', 0, 64)]");

static PyObject *
memory_check(MemoryObject *self, PyObject *unused)
{
    (void)unused;
    return pa_coherence_check(self);
}

/* Jupyter's rich display: the memory map (pynq_alloc._memory_map). */
static PyObject *
memory_repr_html(MemoryObject *self, PyObject *unused)
{
    (void)unused;
    return pa_call_package("pynq_alloc._memory_map", "html",
                           Py_BuildValue("(O)", (PyObject *)self));
}

static PyMethodDef memory_methods[] = {
    {"allocate", (PyCFunction)(void (*)(void))memory_allocate,
     METH_FASTCALL | METH_KEYWORDS, memory_allocate_doc},
    {"stats", (PyCFunction)memory_stats, METH_NOARGS, memory_stats_doc},
    {"device_read", (PyCFunction)(void (*)(void))memory_device_read,
     METH_FASTCALL, device_read_doc},
    {"device_write", (PyCFunction)(void (*)(void))memory_device_write,
     METH_FASTCALL, device_write_doc},
    {"check", (PyCFunction)memory_check, METH_NOARGS, memory_check_doc},
    {"buffers", (PyCFunction)memory_buffers, METH_NOARGS,
     memory_buffers_doc},
    {"_repr_html_", (PyCFunction)memory_repr_html, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyObject *
get_kind(MemoryObject *m, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(pa_memory_kind(m->mem));
}

static PyObject *
get_base_address(MemoryObject *m, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(pa_memory_base_address(m->mem));
}

static PyObject *
get_size(MemoryObject *m, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(pa_memory_size(m->mem));
}

static PyObject *
get_coherence(MemoryObject *m, void *closure)
{
    (void)closure;
    return pa_coherence_mode(m);
}

static PyGetSetDef memory_getset[] = {
    {"kind", (getter)get_kind, NULL,
     "What backs this memory: 'sim', 'zocl', 'udmabuf', ...", NULL},
    {"base_address", (getter)get_base_address, NULL,
     "Lowest device address of the pool.", NULL},
    {"size", (getter)get_size, NULL, "Bytes in the pool.", NULL},
    {"coherence", (getter)get_coherence, NULL,
     "How the simulated memory reports coherence hazards: 'warn', 'raise' "
     "or 'off'; None on other memories, which do not track them.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *
memory_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    (void)args;
    (void)kwds;
    PyErr_SetString(PyExc_TypeError, "use pynq_alloc.open_memory(spec) to "
                    "open a Memory");
    return NULL;
}

PyDoc_STRVAR(memory_doc,
"One source of physically contiguous memory; see open_memory().");

PyTypeObject pa_MemoryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pynq_alloc.Memory",
    .tp_basicsize = sizeof(MemoryObject),
    .tp_weaklistoffset = offsetof(MemoryObject, weakrefs),
    .tp_dealloc = (destructor)memory_dealloc,
    .tp_repr = (reprfunc)memory_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = memory_doc,
    .tp_methods = memory_methods,
    .tp_getset = memory_getset,
    .tp_new = memory_new,
};

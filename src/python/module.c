/* pynq_alloc._core: module functions and multi-phase initialisation. */
#define PA_GLUE_IMPORTS_NUMPY
#include "glue.h"

#include <errno.h>

/* The process-wide default Memory, made on first use by a resolver that the
 * Python package installs (it reads PYNQ_ALLOC_MEMORY and probes devices). */
static PyObject *default_memory;
static PyObject *default_resolver;
/* Maps other targets (PYNQ's memories and devices) to a Memory. */
static PyObject *target_resolver;

MemoryObject *
pa_default_memory(void)
{
    if (default_memory != NULL
            && !pa_memory_may_allocate(((MemoryObject *)default_memory)->mem)) {
        /* A forked child: the parent's memory is no longer ours to
         * allocate from; the child chooses (and opens) its own. */
        Py_CLEAR(default_memory);
    }
    if (default_memory != NULL) {
        return (MemoryObject *)default_memory;
    }
    if (default_resolver == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no default memory: import "
                        "pynq_alloc rather than pynq_alloc._core");
        return NULL;
    }
    PyObject *m = PyObject_CallNoArgs(default_resolver);
    if (m == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(m, &pa_MemoryType)) {
        PyErr_Format(PyExc_TypeError, "the default memory resolver returned "
                     "%.200s, not a Memory", Py_TYPE(m)->tp_name);
        Py_DECREF(m);
        return NULL;
    }
    if (default_memory == NULL) {   /* the resolver may have set it */
        default_memory = m;
    }
    else {
        Py_DECREF(m);
    }
    return (MemoryObject *)default_memory;
}

MemoryObject *
pa_target_memory(PyObject *target)
{
    if (target_resolver == NULL) {
        PyErr_Format(PyExc_TypeError, "target must be a pynq_alloc.Memory "
                     "(see open_memory()), not %.200s",
                     Py_TYPE(target)->tp_name);
        return NULL;
    }
    PyObject *m = PyObject_CallOneArg(target_resolver, target);
    if (m != NULL && !PyObject_TypeCheck(m, &pa_MemoryType)) {
        PyErr_Format(PyExc_TypeError, "the target resolver returned %.200s, "
                     "not a Memory", Py_TYPE(m)->tp_name);
        Py_CLEAR(m);
    }
    return (MemoryObject *)m;
}

PyDoc_STRVAR(allocate_doc,
"allocate(shape, dtype='u4', target=None, *, order='C', cacheable=False,\n"
"         align=None, max_address=None, zero=True, pointer=None,\n"
"         cache=None)\n--\n\n"
"Return a Buffer (a numpy.ndarray) in physically contiguous memory.\n\n"
"shape, dtype and order are as for numpy.empty. The buffer reads as zeros\n"
"on the CPU side and the device side, as PYNQ's do; zero=False skips\n"
"that where it costs time (sub-allocated pools), leaving earlier data.\n\n"
"target: a Memory (default: default_memory()), or what PYNQ code passes:\n"
"one of an overlay's memories (ol.PSDDR, ol.bank1, ...) or a PYNQ Device.\n"
"cacheable=False (PYNQ's default) maps the buffer uncached: it is coherent\n"
"and needs no cache maintenance, though flush() before starting a device\n"
"is still right. cacheable=True is faster for the CPU and needs flush()\n"
"and invalidate() around device access unless the memory is coherent.\n"
"align (a power of two, default the page size) applies to the device\n"
"address; max_address bounds the whole buffer, e.g. 2**32 for a 32-bit\n"
"DMA engine. pointer and cache are PYNQ's frame-cache protocol: with\n"
"cache=c the buffer gets `pointer` and `return_to` attributes and\n"
"freebuffer() calls c.return_pointer(pointer) instead of releasing;\n"
"pointer=p wraps that memory again, contents kept.\n\n"
"Raises ValueError (bad shape, order, align, max_address), TypeError\n"
"(object dtype, unknown target), MemoryError (no block fits: the message\n"
"gives the bytes free, the largest free block and the largest live\n"
"buffers), OSError (the memory's device cannot be used).\n\n"
"    >>> buf = allocate((1024,), 'u4')\n"
"    >>> buf[:] = range(1024)\n"
"    >>> buf.flush()\n"
"    >>> hex(buf[1:].device_address - buf.device_address)\n"
"    '0x4'");

static PyObject *
module_allocate(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    (void)module;
    return pa_allocate_impl(NULL, args, nargs, kwnames, 1);
}

PyDoc_STRVAR(default_memory_doc,
"default_memory()\n--\n\n"
"Return the Memory that allocate() uses when no target is given.\n\n"
"Chosen on first use from PYNQ_ALLOC_MEMORY, else from the devices found\n"
"(zocl, u-dma-buf, xlnk, else the simulated memory); `python -m\n"
"pynq_alloc` says what it found. No parameters. Raises OSError if the\n"
"chosen memory's device cannot be opened (never a silent fallback), and\n"
"ValueError if PYNQ_ALLOC_MEMORY is not a valid spec.\n\n"
"    >>> default_memory().kind in ('sim', 'zocl', 'udmabuf', 'xlnk',\n"
"    ...                           'hugepage')\n"
"    True");

static PyObject *
module_default_memory(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *m = (PyObject *)pa_default_memory();
    Py_XINCREF(m);
    return m;
}

/* Installs a callable the package provides into *slot. */
static PyObject *
set_resolver(PyObject **slot, PyObject *resolver)
{
    if (!PyCallable_Check(resolver)) {
        PyErr_SetString(PyExc_TypeError, "the resolver must be callable");
        return NULL;
    }
    Py_INCREF(resolver);
    Py_XSETREF(*slot, resolver);
    Py_RETURN_NONE;
}

static PyObject *
module_set_default_resolver(PyObject *module, PyObject *resolver)
{
    (void)module;
    return set_resolver(&default_resolver, resolver);
}

static PyObject *
module_set_target_resolver(PyObject *module, PyObject *resolver)
{
    (void)module;
    return set_resolver(&target_resolver, resolver);
}

/* _set_default_memory(memory or None) -> the previous one (None: not yet
 * chosen).  For the pytest plugin, which installs a memory per test and
 * puts the previous one back; None makes the next use choose again. */
static PyObject *
module_set_default_memory(PyObject *module, PyObject *memory)
{
    (void)module;
    if (memory != Py_None && !PyObject_TypeCheck(memory, &pa_MemoryType)) {
        PyErr_Format(PyExc_TypeError, "the default memory must be a Memory "
                     "or None, not %.200s", Py_TYPE(memory)->tp_name);
        return NULL;
    }
    PyObject *previous = default_memory != NULL ? default_memory : Py_None;
    default_memory = memory == Py_None ? NULL : Py_NewRef(memory);
    return previous == Py_None ? Py_NewRef(Py_None) : previous;
}

static PyMethodDef module_methods[] = {
    {"allocate", (PyCFunction)(void (*)(void))module_allocate,
     METH_FASTCALL | METH_KEYWORDS, allocate_doc},
    {"default_memory", module_default_memory, METH_NOARGS,
     default_memory_doc},
    {"_set_default_resolver", module_set_default_resolver, METH_O, NULL},
    {"_set_target_resolver", module_set_target_resolver, METH_O, NULL},
    {"_set_default_memory", module_set_default_memory, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    if (PyArray_ImportNumPyAPI() < 0 || pa_allocate_init() < 0
            || PyType_Ready(&pa_MemoryType) < 0
            || PyType_Ready(&pa_AllocationType) < 0
            || pa_buffer_type_ready() < 0) {
        return -1;
    }
    if (PyModule_AddFunctions(module, pa_open_methods) < 0
            || PyModule_AddFunctions(module, pa_inventory_methods) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Buffer",
                              (PyObject *)&pa_BufferType) < 0
            || PyModule_AddObjectRef(module, "Memory",
                                     (PyObject *)&pa_MemoryType) < 0
            || PyModule_AddObjectRef(module, "Allocation",
                                     (PyObject *)&pa_AllocationType) < 0
            || PyModule_AddIntConstant(module, "PAGE_SIZE",
                                       (long)pa_page_size()) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* Static types and a process-wide default memory. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pynq_alloc._core",
    .m_doc = "C core of pynq_alloc: Buffer, Memory, Allocation, allocate().",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&module_def);
}

/* pynq_alloc._core: module functions and multi-phase initialisation. */
#define PA_GLUE_IMPORTS_NUMPY
#include "glue.h"

#include <errno.h>

/* The process-wide default Memory, made on first use by a resolver that the
 * Python package installs (it reads PYNQ_ALLOC_MEMORY and probes devices). */
static PyObject *default_memory;
static PyObject *default_resolver;

MemoryObject *
pa_default_memory(void)
{
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

PyDoc_STRVAR(allocate_doc,
"allocate(shape, dtype='u4', target=None, *, order='C', cacheable=True,\n"
"         align=None, max_address=None)\n--\n\n"
"Return a Buffer (a numpy.ndarray) in physically contiguous memory.\n\n"
"shape, dtype and order are as for numpy.empty; the contents are\n"
"unspecified. target is a Memory (default: default_memory()). cacheable\n"
"selects a cached CPU mapping, which needs flush()/invalidate() around\n"
"device access unless the memory is coherent. align (a power of two,\n"
"default the page size) applies to the device address; max_address bounds\n"
"the whole buffer, e.g. 2**32 for a 32-bit DMA engine.");

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
"Chosen on first use from PYNQ_ALLOC_MEMORY, else from the devices found.");

static PyObject *
module_default_memory(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *m = (PyObject *)pa_default_memory();
    Py_XINCREF(m);
    return m;
}

static PyObject *
module_set_default_resolver(PyObject *module, PyObject *resolver)
{
    (void)module;
    if (!PyCallable_Check(resolver)) {
        PyErr_SetString(PyExc_TypeError, "the resolver must be callable");
        return NULL;
    }
    Py_INCREF(resolver);
    Py_XSETREF(default_resolver, resolver);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"allocate", (PyCFunction)(void (*)(void))module_allocate,
     METH_FASTCALL | METH_KEYWORDS, allocate_doc},
    {"default_memory", module_default_memory, METH_NOARGS,
     default_memory_doc},
    {"_set_default_resolver", module_set_default_resolver, METH_O, NULL},
    {"_heap_bench", pa_heap_bench, METH_VARARGS, NULL},
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
    if (PyModule_AddFunctions(module, pa_open_methods) < 0) {
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

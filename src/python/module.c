/* pynq_alloc._core: module functions and multi-phase initialisation. */
#define PA_IMPORTS_NUMPY
#include "numpy_api.h"

#include "allocate.h"
#include "allocation.h"
#include "buffer.h"
#include "coherence.h"
#include "inventory.h"
#include "memory_object.h"
#include "open_backends.h"
#include "targets.h"
#include "tracing.h"

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
"cacheable and zero take a bool, or 1 and 0 as PYNQ passes them.\n"
"align (a power of two up to 2**63, default the page size) applies to the\n"
"device address; max_address bounds the whole buffer, e.g. 2**32 for a\n"
"32-bit DMA engine. pointer and cache are PYNQ's frame-cache protocol: with\n"
"cache=c the buffer gets `pointer` and `return_to` attributes and\n"
"freebuffer() calls c.return_pointer(pointer) instead of releasing;\n"
"pointer=p wraps that memory again, contents kept.\n\n"
"Raises ValueError (bad shape, order, align, max_address), TypeError\n"
"(object dtype, unknown target, a flag that is not a bool), MemoryError\n"
"(no block fits: the message gives the bytes free, the largest free block\n"
"and the largest live buffers), OSError (the memory's device cannot be\n"
"used).\n\n"
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

static PyMethodDef module_methods[] = {
    {"allocate", (PyCFunction)(void (*)(void))module_allocate,
     METH_FASTCALL | METH_KEYWORDS, allocate_doc},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    if (PyArray_ImportNumPyAPI() < 0 || pa_allocate_init() < 0
            || PyType_Ready(&pa_MemoryType) < 0
            || PyType_Ready(&pa_AllocationType) < 0
            || pa_buffer_type_ready() < 0
            || pa_inventory_init(module) < 0
            || pa_coherence_init(module) < 0) {
        return -1;
    }
    if (PyModule_AddFunctions(module, pa_targets_methods) < 0
            || PyModule_AddFunctions(module, pa_open_methods) < 0
            || PyModule_AddFunctions(module, pa_tracing_methods) < 0) {
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

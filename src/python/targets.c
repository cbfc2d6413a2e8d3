/*
 * The process-wide default Memory, and the mapping of other targets.
 *
 * The default is chosen on first use by a resolver that the package
 * installs (it reads PYNQ_ALLOC_MEMORY and probes devices).  The resolver
 * chooses under a lock of its own and installs its choice itself with
 * _set_default_memory, so that threads asking at once all get the one
 * Memory; _peek_default_memory lets it see another thread's choice.
 */
#include "targets.h"

/* The default Memory, or NULL until chosen. */
static PyObject *default_memory;
static PyObject *default_resolver;
/* Maps other targets (PYNQ's memories and devices) to a Memory. */
static PyObject *target_resolver;

/* The installed default if this process may allocate from it, else NULL
 * (a forked child: the parent's memory is no longer its to allocate
 * from; it chooses, and opens, its own). */
static inline PyObject *
installed_default(void)
{
    if (default_memory != NULL
            && !pa_memory_may_allocate(((MemoryObject *)default_memory)->mem)) {
        Py_CLEAR(default_memory);
    }
    return default_memory;
}

/* A new reference to the default Memory, chosen now if need be. */
static inline MemoryObject *
default_memory_ref(void)
{
    PyObject *m = installed_default();
    if (m != NULL) {
        return (MemoryObject *)Py_NewRef(m);
    }
    if (default_resolver == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no default memory: import "
                        "pynq_alloc rather than pynq_alloc._core");
        return NULL;
    }
    PyObject *resolver = Py_NewRef(default_resolver);
    m = PyObject_CallNoArgs(resolver);
    Py_DECREF(resolver);
    if (m != NULL && !PyObject_TypeCheck(m, &pa_MemoryType)) {
        PyErr_Format(PyExc_TypeError, "the default memory resolver returned "
                     "%.200s, not a Memory", Py_TYPE(m)->tp_name);
        Py_CLEAR(m);
    }
    if (m != NULL && installed_default() == NULL) {
        default_memory = Py_NewRef(m);
    }
    return (MemoryObject *)m;
}

MemoryObject *
pa_target_memory(PyObject *target)
{
    if (target == NULL || target == Py_None) {
        return default_memory_ref();    /* the common case: installed */
    }
    if (PyObject_TypeCheck(target, &pa_MemoryType)) {
        return (MemoryObject *)Py_NewRef(target);
    }
    if (target_resolver == NULL) {
        PyErr_Format(PyExc_TypeError, "target must be a pynq_alloc.Memory "
                     "(see open_memory()), not %.200s",
                     Py_TYPE(target)->tp_name);
        return NULL;
    }
    PyObject *resolver = Py_NewRef(target_resolver);
    PyObject *m = PyObject_CallOneArg(resolver, target);
    Py_DECREF(resolver);
    if (m != NULL && !PyObject_TypeCheck(m, &pa_MemoryType)) {
        PyErr_Format(PyExc_TypeError, "the target resolver returned %.200s, "
                     "not a Memory", Py_TYPE(m)->tp_name);
        Py_CLEAR(m);
    }
    return (MemoryObject *)m;
}

PyDoc_STRVAR(default_memory_doc,
"default_memory()\n--\n\n"
"Return the Memory that allocate() uses when no target is given.\n\n"
"Chosen once, on first use, from PYNQ_ALLOC_MEMORY, else from the devices\n"
"found (zocl, u-dma-buf, xlnk, else the simulated memory); `python -m\n"
"pynq_alloc` says what it found. Threads that ask at once get the same\n"
"Memory. No parameters. Raises OSError if the chosen memory's device\n"
"cannot be opened (never a silent fallback), and ValueError if\n"
"PYNQ_ALLOC_MEMORY is not a valid spec.\n\n"
"    >>> default_memory().kind in ('sim', 'zocl', 'udmabuf', 'xlnk',\n"
"    ...                           'hugepage', 'xrt')\n"
"    True");

static PyObject *
module_default_memory(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return (PyObject *)default_memory_ref();
}

/* Installs a callable the package provides into *slot. */
static PyObject *
set_resolver(PyObject **slot, PyObject *resolver)
{
    if (!PyCallable_Check(resolver)) {
        PyErr_SetString(PyExc_TypeError, "the resolver must be callable");
        return NULL;
    }
    Py_XSETREF(*slot, Py_NewRef(resolver));
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
 * chosen).  For the resolver, and for the pytest plugin, which installs a
 * memory per test and puts the previous one back; None makes the next use
 * choose again. */
static PyObject *
module_set_default_memory(PyObject *module, PyObject *memory)
{
    (void)module;
    if (memory != Py_None && !PyObject_TypeCheck(memory, &pa_MemoryType)) {
        PyErr_Format(PyExc_TypeError, "the default memory must be a Memory "
                     "or None, not %.200s", Py_TYPE(memory)->tp_name);
        return NULL;
    }
    PyObject *previous = default_memory;   /* handed to the caller */
    default_memory = memory == Py_None ? NULL : Py_NewRef(memory);
    return previous != NULL ? previous : Py_NewRef(Py_None);
}

/* _peek_default_memory() -> the installed default memory, or None when
 * none is chosen yet (or it is a parent's that this forked child cannot
 * allocate from).  Never chooses one. */
static PyObject *
module_peek_default_memory(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *m = installed_default();
    return Py_NewRef(m != NULL ? m : Py_None);
}

PyMethodDef pa_targets_methods[] = {
    {"default_memory", module_default_memory, METH_NOARGS,
     default_memory_doc},
    {"_set_default_resolver", module_set_default_resolver, METH_O, NULL},
    {"_set_target_resolver", module_set_target_resolver, METH_O, NULL},
    {"_set_default_memory", module_set_default_memory, METH_O, NULL},
    {"_peek_default_memory", module_peek_default_memory, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

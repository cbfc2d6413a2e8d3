/*
 * The few newer CPython and NumPy names the glue uses, defined for the
 * oldest versions it builds with: CPython 3.8 (PYNQ 2.7 images) and the
 * headers of NumPy 1.17 and later.  On versions that have them, nothing
 * here is compiled: every block is guarded by the version that added the
 * name, and each stand-in is the documented equivalent.
 */
#ifndef PA_COMPAT_H
#define PA_COMPAT_H

#if PY_VERSION_HEX < 0x03090000
#include <frameobject.h>    /* PyFrameObject's fields */

/* 3.9 made the init function visible itself; the build hides the rest. */
#undef PyMODINIT_FUNC
#define PyMODINIT_FUNC __attribute__((visibility("default"))) PyObject *

#define Py_IS_TYPE(ob, type) (Py_TYPE(ob) == (type))

static inline PyObject *
PyObject_CallNoArgs(PyObject *callable)
{
    return PyObject_CallObject(callable, NULL);
}

static inline PyObject *
PyObject_CallOneArg(PyObject *callable, PyObject *arg)
{
    return PyObject_CallFunctionObjArgs(callable, arg, NULL);
}

/* Both return a new reference, as the 3.9 functions do. */
static inline PyCodeObject *
PyFrame_GetCode(PyFrameObject *frame)
{
    Py_INCREF(frame->f_code);
    return frame->f_code;
}

static inline PyFrameObject *
PyFrame_GetBack(PyFrameObject *frame)
{
    Py_XINCREF(frame->f_back);
    return frame->f_back;
}
#endif

#if PY_VERSION_HEX < 0x030A0000
/* Macros taking any object pointer, as 3.10's do. */
static inline PyObject *
pa_compat_new_ref(PyObject *ob)
{
    Py_INCREF(ob);
    return ob;
}

static inline PyObject *
pa_compat_xnew_ref(PyObject *ob)
{
    Py_XINCREF(ob);
    return ob;
}

#define Py_NewRef(ob) pa_compat_new_ref((PyObject *)(ob))
#define Py_XNewRef(ob) pa_compat_xnew_ref((PyObject *)(ob))

/* Unlike PyModule_AddObject, never steals `value`. */
static inline int
PyModule_AddObjectRef(PyObject *module, const char *name, PyObject *value)
{
    Py_XINCREF(value);
    if (PyModule_AddObject(module, name, value) < 0) {
        Py_XDECREF(value);
        return -1;
    }
    return 0;
}
#endif

/* NumPy 1.x headers: a build with them only ever runs on NumPy 1.x (the
 * ABI check in the import refuses 2.x), whose dtypes are plain structs. */
#if NPY_ABI_VERSION < 0x02000000
#ifndef NPY_2_0_API_VERSION
#define NPY_2_0_API_VERSION 0x00000012
#endif
#define PyArray_RUNTIME_VERSION PyArray_GetNDArrayCFeatureVersion()
#define PyArray_ImportNumPyAPI() _import_array()
#define PyDataType_ELSIZE(descr) ((npy_intp)(descr)->elsize)
#define PyDataType_SUBARRAY(descr) ((descr)->subarray)
#endif

#endif

/* Calls into the Python package. */
#include "package.h"

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

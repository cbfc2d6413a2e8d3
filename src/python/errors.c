/* The core's error codes, turned into Python exceptions. */
#include "errors.h"

#include "memory.h"

#include <errno.h>
#include <stdarg.h>

static PyObject *
raise_v(int err, int always_os, const char *path, const char *format,
        va_list va)
{
    PyObject *message = PyUnicode_FromFormatV(format, va);
    if (message == NULL) {
        return NULL;
    }
    err = err < 0 ? -err : err;
    if (err == PA_ENOMAP) {
        /* Not an errno: the process ran out of address space or mappings. */
        PyErr_SetObject(PyExc_MemoryError, message);
    }
    else if (err == ENOMEM && !always_os) {
        PyErr_SetObject(PyExc_MemoryError, message);
    }
    else if ((err == EINVAL || err == EFAULT) && !always_os) {
        PyErr_SetObject(PyExc_ValueError, message);
    }
    else {
        /* OSError(errno, message[, path]) picks the right subclass; it is
         * raised as that class, which `except FileNotFoundError` on 3.8
         * and 3.10 needs (they match the raised class, not the value's). */
        PyObject *exc = path != NULL
            ? PyObject_CallFunction(PyExc_OSError, "iOs", err, message, path)
            : PyObject_CallFunction(PyExc_OSError, "iO", err, message);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
    }
    Py_DECREF(message);
    return NULL;
}

PyObject *
pa_raise(int err, const char *path, const char *format, ...)
{
    va_list va;
    va_start(va, format);
    raise_v(err, 0, path, format, va);
    va_end(va);
    return NULL;
}

PyObject *
pa_raise_os(int err, const char *path, const char *format, ...)
{
    va_list va;
    va_start(va, format);
    raise_v(err, 1, path, format, va);
    va_end(va);
    return NULL;
}

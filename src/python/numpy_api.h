/*
 * Python.h and NumPy's C API, included the same way by every glue file,
 * with compat.h for the oldest versions built with.
 * module.c defines PA_IMPORTS_NUMPY and imports the API; the others use
 * the table it fills.
 */
#ifndef PA_NUMPY_API_H
#define PA_NUMPY_API_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL pynq_alloc_ARRAY_API
#ifndef PA_IMPORTS_NUMPY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "compat.h"         /* newer names on older CPython and NumPy */

#endif

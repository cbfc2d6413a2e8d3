/* package.c: calls into the Python package (pynq_alloc._inventory, ...),
 * which words what the glue reports. */
#ifndef PA_PACKAGE_H
#define PA_PACKAGE_H

#include "numpy_api.h"

/* module.function(*args), stealing the tuple args (which may be NULL: an
 * error already set).  A new reference, or NULL with an error. */
PyObject *pa_call_package(const char *module, const char *function,
                          PyObject *args);

#endif

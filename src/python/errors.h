/* errors.c: the one place where the core's error codes become exceptions. */
#ifndef PA_ERRORS_H
#define PA_ERRORS_H

#include "numpy_api.h"

/* -ENOMEM and the core's -PA_ENOMAP are MemoryError, -EINVAL and -EFAULT
 * ValueError, anything else OSError (with `path` as its filename when not
 * NULL).  No code of the core's own reaches the user as an errno.  Always
 * returns NULL. */
PyObject *pa_raise(int err, const char *path, const char *format, ...);
/* Always an OSError (for a backend that cannot be opened), but for the
 * core's own codes, which are MemoryError.  Returns NULL. */
PyObject *pa_raise_os(int err, const char *path, const char *format, ...);

#endif

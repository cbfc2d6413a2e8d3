/* allocate.c: allocate(shape, dtype, ...), for the module and Memory. */
#ifndef PA_ALLOCATE_H
#define PA_ALLOCATE_H

#include "memory_object.h"

/* Interns the argument names; 0 or -1. */
int pa_allocate_init(void);

/* allocate() in `target`, or (target NULL, accept_target set) in the
 * memory its `target` argument names.  A new Buffer, or NULL. */
PyObject *pa_allocate_impl(MemoryObject *target, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames,
                           int accept_target);

#endif

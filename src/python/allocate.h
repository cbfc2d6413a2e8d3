/* allocate.c: allocate(shape, dtype, ...), for the module and Memory. */
#ifndef PA_ALLOCATE_H
#define PA_ALLOCATE_H

#include "memory_object.h"

/* Interns the argument names; 0 or -1. */
int pa_allocate_init(void);

/* A flag argument (cacheable=, zero=, coherent=): True or False, a numpy
 * bool, or the ints 1 and 0 that PYNQ passes; dflt when absent (obj
 * NULL).  1, 0, or -1 with a TypeError naming the type (a ValueError for
 * another int). */
int pa_parse_flag(PyObject *obj, const char *name, int dflt);

/* allocate() in `target`, or (target NULL, accept_target set) in the
 * memory its `target` argument names.  A new Buffer, or NULL. */
PyObject *pa_allocate_impl(MemoryObject *target, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames,
                           int accept_target);

#endif

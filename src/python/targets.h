/*
 * targets.c: which Memory an allocate() goes to.  The one place where
 * the default memory is kept and where other targets (PYNQ's memories and
 * devices) are mapped to a Memory; the Python package installs the
 * resolvers that choose (pynq_alloc._resolvers).
 */
#ifndef PA_TARGETS_H
#define PA_TARGETS_H

#include "memory_object.h"

/* A new reference to the Memory that target names: a Memory, None or
 * NULL (the default memory), or what the target resolver maps it to.
 * NULL with an error (TypeError for what names no memory). */
MemoryObject *pa_target_memory(PyObject *target);

/* default_memory(), _set_default_resolver(), ... for the module. */
extern PyMethodDef pa_targets_methods[];

#endif

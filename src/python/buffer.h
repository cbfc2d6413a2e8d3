/*
 * buffer.c: the Buffer type, a numpy.ndarray whose data lies in device
 * memory, and the registry of live Buffers.
 */
#ifndef PA_BUFFER_H
#define PA_BUFFER_H

#include "numpy_api.h"

extern PyTypeObject pa_BufferType;

int pa_buffer_type_ready(void);

/* Calls visit(buffer, ctx) for every live Buffer, borrowed.  It runs no
 * Python code, and visit must run none either (nor release the GIL): the
 * registry may change as soon as Python code runs. */
void pa_buffers_visit(void (*visit)(PyArrayObject *buffer, void *ctx),
                      void *ctx);

#endif

/*
 * tracing.c: where allocations were made, when pynq_alloc.trace() is on.
 * Off by default; then it costs allocate() one test of an int.
 */
#ifndef PA_TRACING_H
#define PA_TRACING_H

#include "numpy_api.h"

typedef struct pa_trace pa_trace;

/* Frames recorded per allocation; 0: tracing is off.  Read on every
 * allocate, so read in place. */
extern int pa_trace_frames;

static inline int
pa_tracing(void)
{
    return pa_trace_frames > 0;
}
/* The calling Python frames, or NULL with MemoryError.  Only call while
 * pa_tracing(). */
pa_trace *pa_trace_capture(void);
/* ((filename, lineno, function), ...), most recent first, or NULL. */
PyObject *pa_trace_decode(const pa_trace *t);
/* Frees t (NULL is fine); may run no Python code but code objects'
 * deallocs. */
void pa_trace_free(pa_trace *t);

/* _trace(frames) for the module. */
extern PyMethodDef pa_tracing_methods[];

#endif

/*
 * coherence.c: coherence hazards that a memory's model records (the sim's
 * cache-line model), on their way to the user through
 * pynq_alloc._coherence.  Memories that track none cost nothing here:
 * they record no hazards, and pa_hazards_pending() is one thread-local
 * test.
 */
#ifndef PA_COHERENCE_H
#define PA_COHERENCE_H

#include "allocation.h"

#include "hazard.h"

/* Makes the record type, adds it and HAZARD_KINDS to the module; 0/-1. */
int pa_coherence_init(PyObject *module);

/* Warns of or raises the calling thread's hazards, as m's mode says; 0
 * also when nothing is pending.  0, or -1 with an exception. */
int pa_coherence_report(MemoryObject *m);

/* a's device writes never invalidated, as a list for report_list (empty
 * where nothing is tracked), or NULL with an error. */
PyObject *pa_coherence_uninvalidated(AllocationObject *a);
/* Warns of or raises the hazards of such a list (stolen); 0 or -1. */
int pa_coherence_report_list(AllocationObject *a, PyObject *list);

/* From a's dealloc (a is unlinked, its refcount 0): keeps its standing
 * hazards for Memory.check() instead, since nothing may be raised there.
 * Never fails. */
void pa_coherence_at_release(AllocationObject *a);

/* Memory.check(): a list of pynq_alloc.Hazard, or NULL with an error. */
PyObject *pa_coherence_check(MemoryObject *m);

/* Memory.coherence: the mode's name, or None where nothing is tracked. */
PyObject *pa_coherence_mode(MemoryObject *m);

#endif

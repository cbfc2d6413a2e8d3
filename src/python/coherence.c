/*
 * The simulated memory's coherence hazards (sim.h) on their way to the
 * user.  The core records them per thread; after each operation that can
 * find one, this file takes them and hands them, with what the inventory
 * knows of each buffer, to pynq_alloc._coherence, which words them and
 * warns or raises.  Nothing here costs anything on other memories: they
 * record no hazards, and pa_hazards_pending() is one thread-local test.
 */
#include "glue.h"

/* Released buffers' hazards kept for Memory.check(), at most. */
#define RELEASED_KEPT 64

/* The live Allocation of m at device address `block`, or NULL. */
static AllocationObject *
allocation_at(MemoryObject *m, uint64_t block)
{
    for (PyObject *p = m->allocations; p != NULL;
            p = ((AllocationObject *)p)->inv.next) {
        AllocationObject *a = (AllocationObject *)p;
        if (a->blk.device_address == block && !a->retired) {
            return a;
        }
    }
    return NULL;
}

/* (kind, block, start, end, raw inventory entry or None), or NULL. */
static PyObject *
hazard_tuple(const pa_hazard *h, AllocationObject *a)
{
    PyObject *raw = a != NULL ? pa_inventory_raw(a) : Py_NewRef(Py_None);
    if (raw == NULL) {
        return NULL;
    }
    return Py_BuildValue("(iKKKN)", h->kind, (unsigned long long)h->block,
                         (unsigned long long)h->start,
                         (unsigned long long)h->end, raw);
}

/* The calling thread's hazards as a list of hazard tuples, taken from the
 * core; *lost gets how many did not fit.  a, if not NULL, describes them
 * all, else they are looked up in m. */
static PyObject *
take_hazards(MemoryObject *m, AllocationObject *a, uint64_t *lost)
{
    pa_hazard h[PA_HAZARDS_KEPT];
    size_t n = pa_hazards_take(h, PA_HAZARDS_KEPT, lost);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *t = hazard_tuple(&h[i], a != NULL
                                   ? a : allocation_at(m, h[i].block));
        if (t == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

static PyObject *
call_coherence(const char *function, PyObject *args)
{
    return pa_call_package("pynq_alloc._coherence", function, args);
}

/* Warns of or raises the hazards in list (stolen), as m's mode says. */
static int
report_list(MemoryObject *m, PyObject *list, uint64_t lost)
{
    int mode = pa_memory_coherence(m->mem);
    if (list == NULL || mode <= PA_COHERENCE_OFF
            || (PyList_GET_SIZE(list) == 0 && lost == 0)) {
        Py_XDECREF(list);
        return list == NULL ? -1 : 0;
    }
    PyObject *r = call_coherence(
        "report", Py_BuildValue("(NKi)", list, (unsigned long long)lost,
                                mode));
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

int
pa_coherence_report(MemoryObject *m)
{
    if (!pa_hazards_pending()) {
        return 0;
    }
    uint64_t lost = 0;
    int collecting = PyGC_Disable();     /* see standing() */
    PyObject *list = take_hazards(m, NULL, &lost);
    if (collecting) {
        PyGC_Enable();
    }
    return report_list(m, list, lost);
}

/* Appends a's standing hazards of `kind` to list, all of them: those the
 * core holds for this thread now, which it found checking up to byte
 * `from`, then the rest, a record at a time.  0, or -1 with an error.
 * The caller keeps the collector off: see pa_coherence_check. */
static int
standing(AllocationObject *a, int kind, PyObject *list, uint64_t from)
{
    for (;;) {
        PyObject *more = take_hazards(a->memory, a, NULL);
        int rc = more == NULL ? -1 : PyList_SetSlice(
            list, PyList_GET_SIZE(list), PyList_GET_SIZE(list), more);
        Py_XDECREF(more);
        if (rc < 0 || from >= a->blk.size) {
            return rc;
        }
        from = pa_memory_check(a->memory->mem, &a->blk, kind, from);
    }
}

PyObject *
pa_coherence_uninvalidated(AllocationObject *a)
{
    PyObject *list = PyList_New(0);
    if (list == NULL || a->blk.coherent || a->retired
            || pa_memory_coherence(a->memory->mem) <= 0) {
        return list;
    }
    /* Most buffers have none: find that out before making objects. */
    uint64_t from = pa_memory_check(a->memory->mem, &a->blk,
                                 PA_HAZARD_UNINVALIDATED, 0);
    if (from == a->blk.size && !pa_hazards_pending()) {
        return list;
    }
    int collecting = PyGC_Disable();
    int rc = standing(a, PA_HAZARD_UNINVALIDATED, list, from);
    if (collecting) {
        PyGC_Enable();
    }
    if (rc < 0) {
        Py_CLEAR(list);
    }
    return list;
}

int
pa_coherence_report_list(AllocationObject *a, PyObject *list)
{
    return report_list(a->memory, list, 0);
}

void
pa_coherence_at_release(AllocationObject *a)
{
    MemoryObject *m = a->memory;
    if (a->retired || !pa_memory_has_device_writes(m->mem, &a->blk)) {
        return;
    }
    /* Called from a dealloc: whatever is raised in here is dropped. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *list = pa_coherence_uninvalidated(a);
    if (list != NULL && PyList_GET_SIZE(list) > 0
            && m->released_hazards == NULL) {
        m->released_hazards = PyList_New(0);
    }
    Py_ssize_t room = m->released_hazards == NULL ? 0
        : RELEASED_KEPT - PyList_GET_SIZE(m->released_hazards);
    for (Py_ssize_t i = 0; list != NULL && i < PyList_GET_SIZE(list)
            && i < room; i++) {
        if (PyList_Append(m->released_hazards,
                          PyList_GET_ITEM(list, i)) < 0) {
            break;
        }
    }
    Py_XDECREF(list);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

const char pa_memory_check_doc[] =
"check($self, /)\n--\n\n"
"List the coherence hazards that stand in this simulated memory.\n\n"
"For each cacheable buffer: bytes the CPU wrote and never flushed, and\n"
"bytes the device wrote that the CPU never invalidated (a CPU read of\n"
"them was stale); and for buffers released since the last check(), the\n"
"device writes they never invalidated (at most 64). Returns a list of\n"
"pynq_alloc.Hazard, empty when all is clean and on memories other than\n"
"the sim, which track nothing. Raises nothing; it does not warn.\n\n"
"    >>> mem = open_memory('sim', size=1 << 20)\n"
"    >>> buf = mem.allocate(16, 'u1', cacheable=True)\n"
"    >>> buf[:] = 1                   # never flushed\n"
"    >>> [(h.kind, h.start, h.stop) for h in mem.check()]\n"
"    [('unflushed', 0, 64)]";

PyObject *
pa_coherence_check(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    PyObject *all = m->released_hazards != NULL
                    ? m->released_hazards : PyList_New(0);
    m->released_hazards = NULL;
    if (all == NULL || pa_memory_coherence(m->mem) <= 0) {
        return all == NULL ? NULL
                           : call_coherence("hazards", Py_BuildValue("(N)", all));
    }
    /* No collection meanwhile: one could free Allocations of the list. */
    int collecting = PyGC_Disable();
    int rc = 0;
    for (PyObject *p = m->allocations; rc == 0 && p != NULL;
            p = ((AllocationObject *)p)->inv.next) {
        AllocationObject *a = (AllocationObject *)p;
        if (a->retired || a->blk.coherent) {
            continue;
        }
        rc = standing(a, PA_HAZARD_UNFLUSHED, all, 0);
        if (rc == 0) {
            rc = standing(a, PA_HAZARD_UNINVALIDATED, all, 0);
        }
    }
    if (collecting) {
        PyGC_Enable();
    }
    if (rc < 0) {
        Py_DECREF(all);
        return NULL;
    }
    return call_coherence("hazards", Py_BuildValue("(N)", all));
}

PyObject *
pa_memory_get_coherence(MemoryObject *m, void *closure)
{
    static const char *names[] = {"off", "warn", "raise"};
    (void)closure;
    int mode = pa_memory_coherence(m->mem);
    if (mode < 0) {
        Py_RETURN_NONE;
    }
    return PyUnicode_FromString(names[mode]);
}

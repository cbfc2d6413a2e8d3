/*
 * Coherence hazards, from the core to the user.  The core records them
 * per thread; after each operation that can find one, this file takes
 * them, describes each with its allocation's record (inventory.c) as a
 * HazardRecord with named fields, and hands them to pynq_alloc._coherence,
 * which words them and warns or raises.
 */
#include "coherence.h"

#include "inventory.h"
#include "package.h"

/* Released buffers' hazards kept for Memory.check(), at most. */
#define RELEASED_KEPT 64

static PyTypeObject *hazard_type;

static PyStructSequence_Field hazard_fields[] = {
    {"kind", "what went wrong, one of HAZARD_KINDS"},
    {"device_address", "device address of the allocation concerned"},
    {"start", "first byte concerned, as an offset into the allocation"},
    {"stop", "one past the last byte concerned, as an offset into it"},
    {"buffer", "the allocation's AllocationRecord, or None if it is gone"},
    {NULL, NULL},
};

static PyStructSequence_Desc hazard_desc = {
    "pynq_alloc._core.HazardRecord",
    "One coherence hazard as the core found it; pynq_alloc.Hazard is made "
    "from it by field name.",
    hazard_fields, 5,
};

int
pa_coherence_init(PyObject *module)
{
    hazard_type = PyStructSequence_NewType(&hazard_desc);
    PyObject *kinds = PyTuple_New(PA_HAZARD_KINDS);
    for (int k = 1; kinds != NULL && k <= PA_HAZARD_KINDS; k++) {
        PyObject *name = PyUnicode_FromString(pa_hazard_kind_name(k));
        if (name == NULL) {
            Py_CLEAR(kinds);
            break;
        }
        PyTuple_SET_ITEM(kinds, k - 1, name);
    }
    int rc = hazard_type == NULL || kinds == NULL
             || PyModule_AddObjectRef(module, "HazardRecord",
                                      (PyObject *)hazard_type) < 0
             || PyModule_AddObjectRef(module, "HAZARD_KINDS", kinds) < 0
             ? -1 : 0;
    Py_XDECREF(kinds);
    return rc;
}

/* A new reference to the live Allocation of m at device address `block`,
 * or NULL.  Runs no Python code. */
static AllocationObject *
allocation_at(MemoryObject *m, uint64_t block)
{
    for (PyObject *p = m->allocations; p != NULL;
            p = ((AllocationObject *)p)->next) {
        AllocationObject *a = (AllocationObject *)p;
        if (a->blk.device_address == block && !a->retired) {
            return (AllocationObject *)Py_NewRef(p);
        }
    }
    return NULL;
}

/* The HazardRecord of h in a (NULL: gone), or NULL with an error. */
static PyObject *
hazard_record(const pa_hazard *h, AllocationObject *a)
{
    PyObject *values[5] = {
        PyUnicode_FromString(pa_hazard_kind_name(h->kind)),
        PyLong_FromUnsignedLongLong(h->block),
        PyLong_FromUnsignedLongLong(h->start - h->block),
        PyLong_FromUnsignedLongLong(h->end - h->block),
        a != NULL ? pa_inventory_record(a) : Py_NewRef(Py_None),
    };
    return pa_record_new(hazard_type, values, 5);
}

/*
 * The calling thread's hazards as HazardRecords appended to list, taken
 * from the core; *lost (if not NULL) gets how many did not fit.  `owner`,
 * if not NULL, is the allocation they all belong to, kept alive by the
 * caller (it may be in its dealloc: it is never referenced here); else
 * each is looked up in m and held while described.  0 or -1.
 */
static int
take_hazards(MemoryObject *m, AllocationObject *owner, PyObject *list,
             uint64_t *lost)
{
    pa_hazard h[PA_HAZARDS_KEPT];
    size_t n = pa_hazards_take(h, PA_HAZARDS_KEPT, lost);
    for (size_t i = 0; i < n; i++) {
        AllocationObject *a = owner != NULL ? owner
                                            : allocation_at(m, h[i].block);
        PyObject *record = hazard_record(&h[i], a);
        if (owner == NULL) {
            Py_XDECREF(a);
        }
        int rc = record == NULL ? -1 : PyList_Append(list, record);
        Py_XDECREF(record);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
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
    PyObject *r = pa_call_package(
        "pynq_alloc._coherence", "report",
        Py_BuildValue("(NKs)", list, (unsigned long long)lost,
                      pa_coherence_mode_name(mode)));
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
    PyObject *list = PyList_New(0);
    if (list != NULL && take_hazards(m, NULL, list, &lost) < 0) {
        Py_CLEAR(list);
    }
    return report_list(m, list, lost);
}

/* Appends a's standing hazards of `kind` to list, all of them: those the
 * core holds for this thread now, which it found checking up to byte
 * `from`, then the rest, a record at a time.  0, or -1 with an error. */
static int
standing(AllocationObject *a, int kind, PyObject *list, uint64_t from)
{
    for (;;) {
        if (take_hazards(a->memory, a, list, NULL) < 0) {
            return -1;
        }
        if (from >= a->blk.size) {
            return 0;
        }
        from = pa_memory_check(a->memory->mem, &a->blk, kind, from);
    }
}

PyObject *
pa_coherence_uninvalidated(AllocationObject *a)
{
    PyObject *list = PyList_New(0);
    if (list == NULL || a->blk.coherent || a->retired
            || pa_memory_coherence(a->memory->mem) <= PA_COHERENCE_OFF) {
        return list;
    }
    /* Most buffers have none: find that out before making objects. */
    uint64_t from = pa_memory_check(a->memory->mem, &a->blk,
                                    PA_HAZARD_UNINVALIDATED, 0);
    if (from == a->blk.size && !pa_hazards_pending()) {
        return list;
    }
    if (standing(a, PA_HAZARD_UNINVALIDATED, list, from) < 0) {
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

PyObject *
pa_coherence_check(MemoryObject *m)
{
    PyObject *all = m->released_hazards != NULL
                    ? m->released_hazards : PyList_New(0);
    m->released_hazards = NULL;
    if (all != NULL && pa_memory_coherence(m->mem) > PA_COHERENCE_OFF) {
        /* Hold what is checked, taken with no Python code running: the
         * records made along the way may run finalizers. */
        PyObject *held = PyList_New(0);
        for (PyObject *p = m->allocations; held != NULL && p != NULL;
                p = ((AllocationObject *)p)->next) {
            AllocationObject *a = (AllocationObject *)p;
            if (!a->retired && !a->blk.coherent
                    && PyList_Append(held, p) < 0) {
                Py_CLEAR(held);
            }
        }
        int rc = held == NULL ? -1 : 0;
        for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(held); i++) {
            AllocationObject *a = (AllocationObject *)PyList_GET_ITEM(held, i);
            if (!a->retired) {
                rc = standing(a, PA_HAZARD_UNFLUSHED, all, 0);
            }
            if (rc == 0 && !a->retired) {
                rc = standing(a, PA_HAZARD_UNINVALIDATED, all, 0);
            }
        }
        Py_XDECREF(held);
        if (rc < 0) {
            Py_CLEAR(all);
        }
    }
    return all == NULL ? NULL
        : pa_call_package("pynq_alloc._coherence", "hazards",
                          Py_BuildValue("(N)", all));
}

PyObject *
pa_coherence_mode(MemoryObject *m)
{
    int mode = pa_memory_coherence(m->mem);
    if (mode < 0) {
        Py_RETURN_NONE;
    }
    return PyUnicode_FromString(pa_coherence_mode_name(mode));
}

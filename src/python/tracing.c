/*
 * Allocation sites, recorded as tracemalloc records them: the calling
 * Python frames as code objects and instruction offsets.  Line numbers
 * cost hundreds of instructions a frame to work out, so only a listing
 * does that (pa_trace_decode).
 */
#include "tracing.h"

#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>    /* f_lasti */
#endif

int pa_trace_frames;

struct pa_trace {
    int n;
    struct {
        PyCodeObject *code;
        int offset;
    } frame[];
};

void
pa_trace_free(pa_trace *t)
{
    for (int i = 0; t != NULL && i < t->n; i++) {
        Py_DECREF(t->frame[i].code);
    }
    PyMem_Free(t);
}

pa_trace *
pa_trace_capture(void)
{
    int depth = pa_trace_frames;
    pa_trace *t = PyMem_Malloc(sizeof(pa_trace)
                               + (size_t)depth * sizeof(t->frame[0]));
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    t->n = 0;
    PyFrameObject *f = PyEval_GetFrame();
    Py_XINCREF(f);
    while (f != NULL && t->n < depth) {
        t->frame[t->n].code = PyFrame_GetCode(f);
#if PY_VERSION_HEX >= 0x030B0000
        t->frame[t->n].offset = PyFrame_GetLasti(f);
#elif PY_VERSION_HEX >= 0x030A0000
        t->frame[t->n].offset = f->f_lasti * (int)sizeof(_Py_CODEUNIT);
#else
        t->frame[t->n].offset = f->f_lasti;     /* in bytes before 3.10 */
#endif
        t->n++;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    Py_XDECREF(f);
    return t;
}

PyObject *
pa_trace_decode(const pa_trace *t)
{
    /* Read t whole before making any object: making one can run a
     * finalizer, which could wrap the allocation again and free t. */
    int n = t->n;
    struct {
        PyCodeObject *code;
        int line;
    } *frames = PyMem_Malloc(sizeof(*frames) * (size_t)(n > 0 ? n : 1));
    if (frames == NULL) {
        return PyErr_NoMemory();
    }
    for (int i = 0; i < n; i++) {
        frames[i].code = (PyCodeObject *)Py_NewRef(t->frame[i].code);
        frames[i].line = PyCode_Addr2Line(t->frame[i].code,
                                          t->frame[i].offset);
    }
    PyObject *out = PyTuple_New(n);
    for (int i = 0; out != NULL && i < n; i++) {
        PyObject *item = Py_BuildValue("(OiO)", frames[i].code->co_filename,
                                       frames[i].line, frames[i].code->co_name);
        if (item == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, item);
    }
    for (int i = 0; i < n; i++) {
        Py_DECREF(frames[i].code);
    }
    PyMem_Free(frames);
    return out;
}

/* _trace(frames) -> the previous number; 0 turns tracing off, None
 * changes nothing (trace() asks the state with it). */
static PyObject *
module_trace(PyObject *module, PyObject *arg)
{
    (void)module;
    if (arg == Py_None) {
        return PyLong_FromLong(pa_trace_frames);
    }
    long frames = PyLong_AsLong(arg);
    if (frames == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (frames < 0 || frames > 1000) {
        PyErr_Format(PyExc_ValueError, "frames must be from 0 to 1000, not "
                     "%ld", frames);
        return NULL;
    }
    int previous = pa_trace_frames;
    pa_trace_frames = (int)frames;
    return PyLong_FromLong(previous);
}

PyMethodDef pa_tracing_methods[] = {
    {"_trace", module_trace, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

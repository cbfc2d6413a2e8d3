/*
 * _open_<kind>(**options): the C side of open_memory(), one function per
 * backend.  Defaults and text live in pynq_alloc/_open.py and _spec.py;
 * these check every value against the core's rules, with the core's
 * constants, and turn the backend's errors into exceptions.
 */
#include "open_backends.h"

#include "errors.h"
#include "hugepage.h"
#include "memory_object.h"
#include "sim.h"
#include "udmabuf.h"
#include "xlnk.h"
#include "xrt.h"
#include "zocl.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

/* PyArg "O&" converter: an int from 0 to 2**64 - 1 ("K" wraps silently). */
static int
to_u64(PyObject *obj, void *out)
{
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) {
        return 0;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(index);
    Py_DECREF(index);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_ValueError, "%R is not from 0 to 2**64 - 1", obj);
        return 0;
    }
    *(unsigned long long *)out = v;
    return 1;
}

/* A memory bank index (zocl, xrt): an int from 0 to PA_BANK_COUNT - 1, or
 * its text ('1', '0x1'); not a bool.  0, or -1 with a ValueError that
 * names the value as given. */
static int
parse_bank(PyObject *obj, const char *kind, long long *bank)
{
    PyObject *index = NULL;
    if (PyUnicode_Check(obj)) {
        /* As int(text, 0) reads it, surrounding white space included;
         * no method of a str subclass is called. */
        index = PyLong_FromUnicodeObject(obj, 0);
    }
    else if (!PyBool_Check(obj)) {
        index = PyNumber_Index(obj);
    }
    int overflow = 0;
    *bank = index == NULL ? -1 : PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_XDECREF(index);
    if (index == NULL || overflow != 0 || *bank < 0
            || *bank >= (long long)PA_BANK_COUNT) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s bank must be an int from 0 to %u "
                     "(or its text, e.g. '1' or '0x1'); got %R", kind,
                     PA_BANK_COUNT - 1u, obj);
        return -1;
    }
    return 0;
}

/* _bank_index(value, kind) -> the bank index value stands for, checked
 * as the openers check it; for the package, which needs the number
 * before it opens anything. */
static PyObject *
bank_index(PyObject *module, PyObject *args)
{
    PyObject *value;
    const char *kind;
    long long bank;
    (void)module;
    if (!PyArg_ParseTuple(args, "Os:_bank_index", &value, &kind)
            || parse_bank(value, kind, &bank) != 0) {
        return NULL;
    }
    return PyLong_FromLongLong(bank);
}

/* The PA_COHERENCE_* mode that `name` spells, or -1 with a ValueError. */
static int
parse_coherence(PyObject *name)
{
    const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    int mode = text == NULL ? -EINVAL : pa_coherence_mode_parse(text);
    if (mode < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "coherence must be 'warn', 'raise' or "
                     "'off', not %R", name);
        return -1;
    }
    return mode;
}

static PyObject *
open_sim(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"base_address", "size", "line_size",
                             "coherence", "watch_stores", NULL};
    unsigned long long base, size, line = 64;
    PyObject *coherence = NULL;
    int watch = 0;
    pa_sim_options options = {0, PA_COHERENCE_WARN, 0};
    pa_memory *mem;
    int rc;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&|O&Op:_open_sim",
                                     kwlist, to_u64, &base, to_u64, &size,
                                     to_u64, &line, &coherence, &watch)) {
        return NULL;
    }
    options.watch_stores = watch;
    if (coherence != NULL
            && (options.coherence = parse_coherence(coherence)) < 0) {
        return NULL;
    }
    options.line_size = line;
    const char *bad = pa_sim_invalid_option(base, size, &options);
    if (bad != NULL) {
        char b[32];
        PyOS_snprintf(b, sizeof(b), "0x%llx", base);
        unsigned long long page = pa_page_size();
        if (strcmp(bad, "line_size") == 0) {
            return pa_raise(-EINVAL, NULL, "line_size must be a power of two from "
                            "%u to %llu bytes (the page size), not %llu",
                            (unsigned)PA_SIM_LINE_MIN, page, line);
        }
        if (strcmp(bad, "watch_stores") == 0) {
            return pa_raise(-EINVAL, NULL, "watch_stores=True needs "
                            "coherence 'warn' or 'raise': with 'off' "
                            "nothing is reported");
        }
        return pa_raise(-EINVAL, NULL, "the simulated memory needs a size above 0 "
                        "and a base_address that are multiples of the page "
                        "size (%llu) and end below 2**64; got size=%llu, "
                        "base_address=%s", page, size, b);
    }
    Py_BEGIN_ALLOW_THREADS
    rc = pa_sim_open(NULL, base, size, &options, &mem);
    Py_END_ALLOW_THREADS
    if (rc == -PA_ENOMAP) {
        return pa_raise(rc, NULL, "cannot create a simulated memory of %llu "
                        "bytes: this process cannot map that much (it is "
                        "out of address space or memory mappings)", size);
    }
    if (watch && (rc == -EOPNOTSUPP || rc == -ENOSYS || rc == -EPERM)) {
        return pa_raise(rc, NULL, "watch_stores=True cannot be had here: "
                        "it needs userfaultfd's asynchronous write "
                        "protection of shared memory and PAGEMAP_SCAN "
                        "(Linux 6.7 or later, CONFIG_USERFAULTFD)%s; open "
                        "the simulated memory without it, where a line is "
                        "dirty only when its bytes changed",
                        rc == -EPERM ? ", which this process may not use "
                        "(vm.unprivileged_userfaultfd)" : "");
    }
    if (rc != 0) {
        return pa_raise(rc, NULL, "cannot create a simulated memory of %llu "
                        "bytes", size);
    }
    return pa_memory_wrap(mem);
}

/* _open_hugepage(...) -> (Memory, available, taken, put_back): how many
 * huge pages were free, how many more it took from system memory (see
 * pa_hugepage_open), and 0 or the errno that kept it from putting
 * nr_hugepages back; the package says so. */
static PyObject *
open_hugepage(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", "page_size", "reserve", "hugepages_dir",
                             "pagemap", NULL};
    unsigned long long size, page_size;
    int reserve;
    PyObject *dir = NULL, *pagemap = NULL, *result = NULL;
    char err_path[PATH_MAX] = "";
    pa_hugepage_report report;
    pa_memory *mem;
    int rc;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&pO&O&:_open_hugepage",
                                     kwlist, to_u64, &size, to_u64,
                                     &page_size, &reserve,
                                     PyUnicode_FSConverter, &dir,
                                     PyUnicode_FSConverter, &pagemap)) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = pa_hugepage_open(NULL, size, page_size, PyBytes_AS_STRING(dir),
                          PyBytes_AS_STRING(pagemap), reserve, &mem, &report,
                          err_path, sizeof(err_path));
    Py_END_ALLOW_THREADS
    unsigned long long needed = report.needed, available = report.available;
    if (rc == -EINVAL) {
        pa_raise(rc, NULL, "hugepage memory needs page_size 2 MiB (2097152) "
                 "or 1 GiB (1073741824) and a size from 1 byte to 64 TiB; got "
                 "page_size=%llu, size=%llu", page_size, size);
    }
    else if (rc == -EPERM) {
        pa_raise_os(rc, err_path, "hugepage memory needs physical addresses, "
                    "which %s shows only to root (CAP_SYS_ADMIN)", err_path);
    }
    else if (rc == -ENOMEM && report.asked > 0) {
        pa_raise_os(rc, err_path, "cannot get %llu huge pages of %llu bytes "
                    "for %llu bytes: %llu were free, and the kernel found "
                    "%llu of the %llu more asked of it through %s (free "
                    "memory is short, or in blocks smaller than a huge "
                    "page); free memory, or reserve huge pages at boot "
                    "(hugepages= on the kernel command line)", needed,
                    page_size, size, available,
                    (unsigned long long)report.taken,
                    (unsigned long long)report.asked, err_path);
    }
    else if (rc == -ENOMEM) {
        pa_raise_os(rc, err_path, "cannot get %llu huge pages of %llu bytes "
                    "for %llu bytes: %llu were free; reserve more by writing "
                    "to %s (as root)%s", needed, page_size, size, available,
                    err_path, reserve ? "" : ", or pass reserve=True as root");
    }
    else if (rc == -ENOTSUP) {
        pa_raise_os(rc, NULL, "this CPU's caches cannot be maintained from "
                    "user space (armv7): use the zocl, udmabuf or xlnk "
                    "backend");
    }
    else if (rc != 0) {
        pa_raise_os(rc, err_path[0] ? err_path : NULL, "cannot open hugepage "
                    "memory");
    }
    else {
        PyObject *memory = pa_memory_wrap(mem);
        result = memory == NULL ? NULL
                 : Py_BuildValue("(NKKi)", memory, available,
                                 (unsigned long long)report.taken,
                                 -report.put_back);
    }
done:
    Py_XDECREF(dir);
    Py_XDECREF(pagemap);
    return result;
}

static PyObject *
open_xlnk(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"library", "maps", NULL};
    PyObject *library = NULL, *maps = NULL, *result = NULL;
    char err_path[PATH_MAX] = "", err_symbol[128] = "";
    pa_memory *mem;
    int rc;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&:_open_xlnk", kwlist,
                                     PyUnicode_FSConverter, &library,
                                     PyUnicode_FSConverter, &maps)) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = pa_xlnk_open(NULL, PyBytes_AS_STRING(library),
                      PyBytes_AS_STRING(maps), &mem, err_path, err_symbol,
                      sizeof(err_symbol));
    Py_END_ALLOW_THREADS
    if (rc != 0 && err_symbol[0] != '\0') {
        pa_raise_os(rc, err_path, "the xlnk library %s has no %s(): is it "
                    "libcma?", err_path, err_symbol);
    }
    else if (rc != 0) {
        pa_raise_os(rc, err_path, "cannot load the xlnk library %s (PYNQ 2.6 "
                    "and older images have it)", err_path);
    }
    else {
        result = pa_memory_wrap(mem);
    }
done:
    Py_XDECREF(library);
    Py_XDECREF(maps);
    return result;
}

/* The Memory a backend's open returned, or its error as an exception. */
static PyObject *
opened(int rc, pa_memory *mem, const char *err_path, const char *device,
       const char *what)
{
    /* The path that failed is the OSError's filename, which its text
     * shows: the text names the device only when another path failed. */
    const char *path = err_path[0] ? err_path : device;
    int other = strcmp(path, device) != 0;
    if (rc == -ENODEV) {
        return other ? pa_raise_os(rc, path, "%s is not a %s device", device,
                                   what)
                     : pa_raise_os(rc, path, "not a %s device", what);
    }
    if (rc == -EBUSY) {
        return pa_raise_os(rc, err_path, "the %s device %s is in use by "
                           "another process: one process at a time "
                           "sub-allocates its buffer (`fuser -v %s` shows "
                           "which)", what, device, device);
    }
    if (rc != 0) {
        return pa_raise_os(rc, path, "cannot open the %s device%s%s", what,
                           other ? " " : "", other ? device : "");
    }
    return pa_memory_wrap(mem);
}

/* What is at path, in words, for a message about what it is not. */
static const char *
file_kind(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return "not a character device";
    }
    return S_ISREG(st.st_mode) ? "a regular file"
           : S_ISDIR(st.st_mode) ? "a directory"
           : S_ISBLK(st.st_mode) ? "a block device"
           : S_ISFIFO(st.st_mode) ? "a FIFO"
           : S_ISSOCK(st.st_mode) ? "a socket"
           : S_ISCHR(st.st_mode) ? "a character device"
           : "not a character device";
}

/* The u-dma-buf open's error as an exception: what the device is when it
 * is no device node, why it is not a u-dma-buf when its sysfs side is
 * missing, else as every backend's. */
static PyObject *
udmabuf_error(int rc, const char *err_path, const char *device,
              const char *sysfs)
{
    int at_device = strcmp(err_path, device) == 0;
    if ((rc == -ENODEV || rc == -EISDIR) && at_device) {
        return pa_raise_os(rc, device, "%s, not a u-dma-buf device (the "
                           "driver's are character devices)",
                           file_kind(device));
    }
    if (rc == -ENODEV && strcmp(err_path, sysfs) == 0) {
        return pa_raise_os(rc, sysfs, "%s is not a u-dma-buf device: it "
                           "answers no u-dma-buf ioctl, and the sysfs "
                           "directory is not there (pass sysfs= if the "
                           "driver's is elsewhere)", device);
    }
    return opened(rc, NULL, err_path, device, "u-dma-buf");
}

static PyObject *
open_udmabuf(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"device", "sysfs", "file_stand_in", NULL};
    PyObject *device = NULL, *sysfs = NULL, *result = NULL;
    int file_stand_in = 0;
    char err_path[PATH_MAX] = "";
    pa_memory *mem = NULL;
    int rc;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&|$p:_open_udmabuf",
                                     kwlist, PyUnicode_FSConverter, &device,
                                     PyUnicode_FSConverter, &sysfs,
                                     &file_stand_in)) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = pa_udmabuf_open(NULL, PyBytes_AS_STRING(device),
                         PyBytes_AS_STRING(sysfs),
                         file_stand_in ? PA_UDMABUF_FILE_STAND_IN : 0, &mem,
                         err_path, sizeof(err_path));
    Py_END_ALLOW_THREADS
    result = rc == 0 ? pa_memory_wrap(mem)
                     : udmabuf_error(rc, err_path, PyBytes_AS_STRING(device),
                                     PyBytes_AS_STRING(sysfs));
    /* Said once, at the open: why every cacheable=False will be refused. */
    char why[PATH_MAX + 160];
    if (result != NULL && pa_udmabuf_refuses_uncached(mem, why, sizeof(why))
            && PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "u-dma-buf %s: "
                                "uncached buffers (cacheable=False) are "
                                "refused: %s, and the driver's other "
                                "uncached mapping (sync_mode 1) is device "
                                "memory on this CPU, where an unaligned "
                                "access is a bus error; use cacheable=True "
                                "with flush() and invalidate(), or have "
                                "sync_mode set to 2 (write-combine) as root",
                                PyBytes_AS_STRING(device), why) != 0) {
        Py_CLEAR(result);
    }
done:
    Py_XDECREF(device);
    Py_XDECREF(sysfs);
    return result;
}

static PyObject *
open_zocl(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"device", "meminfo", "bank", "cma", NULL};
    PyObject *device = NULL, *meminfo = NULL, *bank_arg, *result = NULL;
    long long bank;
    int cma = 0;
    char err_path[PATH_MAX] = "";
    pa_memory *mem = NULL;
    int rc;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&O|p:_open_zocl",
                                     kwlist, PyUnicode_FSConverter, &device,
                                     PyUnicode_FSConverter, &meminfo,
                                     &bank_arg, &cma)
            || parse_bank(bank_arg, "zocl", &bank) != 0) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = pa_zocl_open(NULL, PyBytes_AS_STRING(device), bank, cma,
                      PyBytes_AS_STRING(meminfo), &mem, err_path,
                      sizeof(err_path));
    Py_END_ALLOW_THREADS
    result = opened(rc, mem, err_path, PyBytes_AS_STRING(device), "zocl");
done:
    Py_XDECREF(device);
    Py_XDECREF(meminfo);
    return result;
}

static PyObject *
open_xrt(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"library", "device", "bank", "userptr",
                             "base_address", "size", NULL};
    PyObject *library = NULL, *bank_arg, *result = NULL;
    unsigned int device;
    long long bank;
    int userptr, step = 0;
    unsigned long long base, size;
    char err_symbol[128] = "";
    pa_memory *mem = NULL;
    int rc;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&IOpO&O&:_open_xrt",
                                     kwlist, PyUnicode_FSConverter, &library,
                                     &device, &bank_arg, &userptr, to_u64,
                                     &base, to_u64, &size)
            || parse_bank(bank_arg, "xrt", &bank) != 0) {
        goto done;
    }
    const char *path = PyBytes_AS_STRING(library);
    pa_xrt_options options = {path, device, bank, userptr, base, size};
    Py_BEGIN_ALLOW_THREADS
    rc = pa_xrt_open(NULL, &options, &mem, &step, err_symbol,
                     sizeof(err_symbol));
    Py_END_ALLOW_THREADS
    if (step == PA_XRT_LOAD) {
        pa_raise_os(rc, path, "cannot load XRT's library %s: is XRT "
                    "installed? (set XILINX_XRT, or pass library=)", path);
    }
    else if (step == PA_XRT_SYMBOL) {
        pa_raise_os(rc, path, "XRT's library %s has no %s(): is it "
                    "libxrt_coreutil?", path, err_symbol);
    }
    else if (step == PA_XRT_DEVICE) {
        pa_raise_os(rc, NULL, "XRT cannot open device %u (xrtDeviceOpen, "
                    "library %s)", device, path);
    }
    else if (rc != 0) {
        pa_raise_os(rc, NULL, "cannot open an xrt memory");
    }
    else {
        result = pa_memory_wrap(mem);
    }
done:
    Py_XDECREF(library);
    return result;
}

/* _drm_driver_name(node) -> the name the DRM driver of a device node
 * gives itself (DRM_IOCTL_VERSION); OSError if the node cannot be opened
 * or is no DRM device (ENOTTY). */
static PyObject *
drm_driver_name(PyObject *module, PyObject *arg)
{
    PyObject *node = NULL;
    char name[64];
    int rc;
    (void)module;
    if (!PyUnicode_FSConverter(arg, &node)) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = pa_drm_driver_name(NULL, PyBytes_AS_STRING(node), name,
                            sizeof(name));
    Py_END_ALLOW_THREADS
    PyObject *r = rc == 0
        ? PyUnicode_DecodeASCII(name, (Py_ssize_t)strlen(name), "replace")
        : pa_raise_os(rc, PyBytes_AS_STRING(node), "cannot ask %s for its "
                      "DRM driver's name", PyBytes_AS_STRING(node));
    Py_DECREF(node);
    return r;
}

PyMethodDef pa_open_methods[] = {
    {"_drm_driver_name", drm_driver_name, METH_O, NULL},
    {"_bank_index", bank_index, METH_VARARGS, NULL},
    {"_open_xlnk", (PyCFunction)(void (*)(void))open_xlnk,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_open_hugepage", (PyCFunction)(void (*)(void))open_hugepage,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_open_zocl", (PyCFunction)(void (*)(void))open_zocl,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_open_sim", (PyCFunction)(void (*)(void))open_sim,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_open_udmabuf", (PyCFunction)(void (*)(void))open_udmabuf,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_open_xrt", (PyCFunction)(void (*)(void))open_xrt,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

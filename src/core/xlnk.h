/*
 * xlnk + libcma: the contiguous allocator of PYNQ 2.6 and older images.
 * The library is loaded at run time (never linked) and only its six cma_*
 * functions are used; _xlnk_reset, which frees every process's buffers, is
 * never called.  Each allocation is its own kernel buffer, given back at
 * release: no released buffer is kept for reuse.
 */
#ifndef PA_XLNK_H
#define PA_XLNK_H

#include "memory.h"
#include "sys.h"

/*
 * dlopen()s `library` (normally /usr/lib/libcma.so).  `maps` is normally
 * /proc/self/maps, where each buffer's mapping is looked up.  -ENOENT when
 * the library or a symbol is missing: err_path names the library, and
 * err_symbol (err_cap bytes) the missing symbol, or "" for the library.
 */
int pa_xlnk_open(const pa_sys *sys, const char *library, const char *maps,
                 pa_memory **out, char *err_path, char *err_symbol,
                 size_t err_cap);

#endif

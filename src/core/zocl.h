/*
 * zocl: XRT's DRM driver for embedded platforms (every PYNQ image since
 * 2.7).  Each allocation is its own buffer object (BO) from the kernel's
 * CMA pool, mapped whole; release gives it back to the kernel at once, so
 * no released BO is kept for reuse.
 */
#ifndef PA_ZOCL_H
#define PA_ZOCL_H

#include "memory.h"
#include "sys.h"

/*
 * Opens the DRM render node `device` (e.g. /dev/dri/renderD128) for
 * buffers in memory bank `bank`: an index into the loaded xclbin's
 * mem_topology, passed in bits 0-15 of CREATE_BO's flags.  The driver
 * gives CMA memory for an index the xclbin does not use (or when no xclbin
 * is loaded), so bank 0 always works.  CMA figures for stats() come from
 * `meminfo` (normally /proc/meminfo).  sys NULL means the real system
 * calls.  -EINVAL for a bank outside 0-65535; -ENODEV if the node is not
 * zocl's (a GPU's render node, say).  On other failures returns -errno and
 * copies the path that failed into err_path.
 */
int pa_zocl_open(const pa_sys *sys, const char *device, int64_t bank,
                 const char *meminfo, pa_memory **out, char *err_path,
                 size_t err_cap);

#endif

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
 * calls.  cma: the bank's BOs are known to come from the kernel's CMA
 * pool (no xclbin is loaded, or it does not use the bank); then a request
 * larger than the page allocator's largest block (which serves smaller
 * BOs when CMA is full) and than all of CMA less this memory's own such
 * BOs is -ENOMEM without a CREATE_BO, since a CREATE_BO that cannot be
 * satisfied corrupts kernel memory in zocl.  Each CREATE_BO's answer
 * updates what is known.
 * -EINVAL for a bank outside 0 to PA_BANK_COUNT - 1; -ENODEV if the node
 * is not zocl's (a GPU's render node, say).  On other failures returns
 * -errno and copies the path that failed into err_path.
 */
int pa_zocl_open(const pa_sys *sys, const char *device, int64_t bank,
                 int cma, const char *meminfo, pa_memory **out,
                 char *err_path, size_t err_cap);

/*
 * The name of the DRM driver behind the device node `node` ("zocl",
 * "lima", ...), as DRM_IOCTL_VERSION tells it, into name: NUL-terminated,
 * truncated to cap - 1 bytes.  Opens the node read-write, asks, closes it.
 * 0, or -errno: -ENOTTY or -EINVAL (as the ioctl says) if the node is no
 * DRM device, the open's error if it cannot be opened, -ERANGE if cap is
 * 0.  name is "" on failure.  sys NULL means the real system calls.
 */
int pa_drm_driver_name(const pa_sys *sys, const char *node, char *name,
                       size_t cap);

#endif

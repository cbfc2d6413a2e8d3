/*
 * u-dma-buf (ikwzm/udmabuf): one fixed contiguous buffer per device node,
 * which this backend sub-allocates with pa_heap.  Every allocation maps its
 * own window of the device: cached (flush/invalidate needed unless the
 * driver reports dma_coherent) or, with O_SYNC, uncached and coherent.
 * Syncs go through the driver's ioctls (4.7+), else its sysfs files.
 *
 * Uncached means write-combined, as on zocl: the open sets the driver's
 * sync_mode to 2 (SET_SYNC, else the sysfs file) and reads it back, and
 * leaves it so.  The driver's default, 1, maps O_SYNC opens as device
 * memory on arm and arm64, where any unaligned access (memcpy, numpy's
 * loops, printing the array) is a bus error.  Where sync_mode cannot be
 * set to 2 (a driver without it, a sysfs file only root may write, no
 * ioctl), uncached blocks are refused (-ENOTSUP) on arm and arm64; on x86,
 * where any memory type takes any access, they are mapped as the driver
 * maps them.  sync_mode is the device's, read by the driver at each mmap:
 * a change by another program while this memory is open is not seen.
 */
#ifndef PA_UDMABUF_H
#define PA_UDMABUF_H

#include "memory.h"
#include "sys.h"

/*
 * Opens `device` (e.g. /dev/udmabuf0) whose sysfs directory is `sysfs_dir`
 * (e.g. /sys/class/u-dma-buf/udmabuf0).  sys NULL means the real system
 * calls.  -EBUSY if another open file (in any process) holds the device:
 * one heap per buffer.  -ENODEV if `device` is not a character device (a
 * regular file would be sub-allocated, and zeroed, as if it were the
 * buffer), or is one that answers no u-dma-buf ioctl and has no
 * `sysfs_dir` (err_path then names sysfs_dir); -EISDIR for a directory.
 * A failure of the moment (not a refusal) to read or set sync_mode fails
 * the open, err_path naming the device (ioctl) or the sync_mode file.
 * PA_UDMABUF_FILE_STAND_IN, for tests only, lets a regular file stand in
 * for the device node.  On failure returns -errno and copies the path that
 * failed into err_path (err_cap bytes).
 */
#define PA_UDMABUF_FILE_STAND_IN 1u

int pa_udmabuf_open(const pa_sys *sys, const char *device,
                    const char *sysfs_dir, unsigned flags, pa_memory **out,
                    char *err_path, size_t err_cap);

/*
 * 1 if the u-dma-buf memory m refuses uncached blocks, with why (what was
 * found of the driver's sync_mode, as one sentence without a full stop)
 * copied into why (cap bytes); else 0.
 */
int pa_udmabuf_refuses_uncached(const pa_memory *m, char *why, size_t cap);

#endif

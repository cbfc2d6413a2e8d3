/*
 * xrt: buffers through XRT's own library, libxrt_coreutil, for PCIe cards
 * (Alveo) and edge boards alike.  Every buffer is mirrored: the memory the
 * CPU sees is a host buffer, the device's is the card's memory (DDR, HBM,
 * PLRAM) at the BO's device address, and flush/invalidate are xrtBOSync
 * over exactly the span, which copies between the two.
 *
 * The library is loaded at run time (never linked, no XRT header needed)
 * and only its C API is used.  The host buffer users see is always this
 * backend's own mapping, because xrtBOFree releases the host buffer that
 * XRT allocated itself (xrtBOMap: "unmapped when freed"), which would pull
 * the memory out from under views that outlive freebuffer():
 *
 * - userptr mode (PCIe cards): XRT pins our mapping as the BO's host
 *   buffer (xrtBOAllocUserPtr), as xrtBOAlloc itself does on PCIe with a
 *   buffer of its own.  Zero copies besides the DMA.
 * - staged mode (edge boards, whose zocl accepts only physically
 *   contiguous user memory, and cards without DMA): xrtBOAlloc gives the
 *   BO and its host buffer; flush copies the span from our mapping into
 *   XRT's before the sync, invalidate copies it back after.  Twice the
 *   host memory and a memcpy per sync.
 *
 * Each allocation is its own BO, freed at release: no released BO is kept
 * for reuse, since it would hold card memory.
 */
#ifndef PA_XRT_H
#define PA_XRT_H

#include "memory.h"
#include "sys.h"

typedef struct pa_xrt_options {
    const char *library;    /* e.g. /opt/xilinx/xrt/lib/libxrt_coreutil.so.2 */
    uint32_t device;        /* xrtDeviceOpen's index */
    int64_t bank;           /* the memory group: a mem_topology index */
    int userptr;            /* userptr mode, else staged (see above) */
    /* The bank's range, for base_address and stats (XRT's C API does not
     * give it); 0 if unknown. */
    uint64_t base_address;
    uint64_t size;
} pa_xrt_options;

/* Which step of pa_xrt_open failed. */
enum pa_xrt_step {
    PA_XRT_LOAD = 1,        /* dlopen of the library */
    PA_XRT_SYMBOL,          /* a function missing: err_symbol names it */
    PA_XRT_DEVICE,          /* xrtDeviceOpen */
};

/*
 * Loads the library and opens the device.  sys NULL means the real system
 * calls.  -EINVAL for a bank outside 0 to PA_BANK_COUNT - 1 (the bank
 * field of XRT's BO flags); -ENOENT if the library or a symbol is missing;
 * otherwise XRT's errno from xrtDeviceOpen.  On failure *step says which step failed and
 * err_symbol (err_cap bytes) the missing symbol.
 */
int pa_xrt_open(const pa_sys *sys, const pa_xrt_options *options,
                pa_memory **out, int *step, char *err_symbol,
                size_t err_cap);

#endif

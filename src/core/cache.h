/*
 * CPU cache maintenance from user space, for memory that no driver syncs.
 *
 * arm64: Linux lets user space clean (`dc cvac`) and clean+invalidate
 * (`dc civac`) data cache lines to the point of coherency.  x86: DMA is
 * coherent with the caches, so only ordering is needed.  armv7 (Zynq-7000):
 * user space cannot reach the outer L2, so only a driver can do it.
 */
#ifndef PA_CACHE_H
#define PA_CACHE_H

#include <stddef.h>

/* Whether DMA on this CPU sees what the caches hold. */
int pa_cpu_dma_coherent(void);

/* Writes CPU writes in [p, p + n) back to memory.  0, or -ENOTSUP where
 * user space cannot (armv7 and unknown CPUs). */
int pa_cpu_flush(void *p, size_t n);

/* Makes memory's contents in [p, p + n) visible to the CPU.  It cleans as
 * it invalidates, so CPU writes in the range are written back, not lost.
 * 0 or -ENOTSUP as pa_cpu_flush. */
int pa_cpu_invalidate(void *p, size_t n);

/*
 * Orders the CPU's earlier stores before its later ones, including stores
 * to uncached or write-combined memory (arm64 `dsb st`, x86 `sfence`):
 * without it, buffered stores to a buffer may still be in flight when a
 * later store to a device register starts the device.
 */
void pa_cpu_store_barrier(void);

#endif

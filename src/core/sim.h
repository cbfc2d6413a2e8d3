/*
 * The simulated memory: a pool of `size` bytes at device address
 * `base_address`, backed by ordinary memory, that behaves like a
 * non-coherent CMA region.  The device and the CPU's cache each have their
 * own copy of the pool; a cacheable block is mapped onto the cache copy, so
 * CPU writes reach the device only through flush and device writes reach
 * the CPU only through invalidate.  Non-cacheable blocks map the device
 * copy directly and are coherent.
 */
#ifndef PA_SIM_H
#define PA_SIM_H

#include "memory.h"

#include "sys.h"

/* -EINVAL unless base_address and size are non-zero page multiples (base
 * may be 0) that do not wrap; otherwise errors from memfd/mmap.  sys NULL
 * means the real system calls. */
int pa_sim_open(const pa_sys *sys, uint64_t base_address, uint64_t size,
                pa_memory **out);

#endif

/*
 * The simulated memory: a pool of `size` bytes at device address
 * `base_address`, backed by ordinary memory, that behaves like a
 * non-coherent CMA region.  The device and the CPU's cache each have their
 * own copy of the pool; a cacheable block is mapped onto the cache copy, so
 * CPU writes reach the device only through flush and device writes reach
 * the CPU only through invalidate.  Non-cacheable blocks map the device
 * copy directly and are coherent.
 *
 * Cacheable blocks follow an exact model of a write-back cache of
 * `line_size`-byte lines: a line is dirty when the CPU's copy differs
 * from what was last synced, flush writes back only the dirty lines its
 * span touches, and invalidate cleans the lines its span covers only in
 * part, then discards the rest and reloads them, as Linux's arm64
 * __dma_inv_area does.  With coherence tracking on (the default), what a
 * program does wrong against that model is recorded as a hazard for the
 * calling thread to take (pa_hazards_take, hazard.h); pa_memory_coherence
 * and the calls after it (memory.h) reach the model.  Off, the model
 * moves the same bytes and nothing is recorded.  The model is
 * sim_lines.c.  A line is dirty when its bytes differ; with watch_stores
 * the CPU's stores are seen too, a page at a time, where the kernel can
 * show them (sim_stores.h).
 */
#ifndef PA_SIM_H
#define PA_SIM_H

#include "hazard.h"
#include "memory.h"

#include "sys.h"

#include <stddef.h>

/* Bytes per line of the model: a power of two from PA_SIM_LINE_MIN to
 * the page size. */
#define PA_SIM_LINE_MIN 16
#define PA_SIM_LINE_DEFAULT 64

typedef struct pa_sim_options {
    uint64_t line_size;     /* from PA_SIM_LINE_MIN to the page size;
                               0: PA_SIM_LINE_DEFAULT */
    int coherence;          /* PA_COHERENCE_* */
    int watch_stores;       /* 1: see the CPU's stores, not only the bytes
                               they change (sim_stores.h); not with
                               PA_COHERENCE_OFF */
} pa_sim_options;

/* -EINVAL unless base_address and size are non-zero page multiples (base
 * may be 0) that do not wrap, and the options are valid; otherwise errors
 * from memfd/mmap, and with watch_stores sim_stores_open's (-EOPNOTSUPP
 * before Linux 6.7).  sys NULL means the real system calls; options NULL
 * means PA_SIM_LINE_DEFAULT and PA_COHERENCE_WARN. */
/* The first option that pa_sim_open would refuse ("line_size",
 * "coherence", "watch_stores", "size", "base_address"), or NULL if all
 * are valid. */
const char *pa_sim_invalid_option(uint64_t base_address, uint64_t size,
                                  const pa_sim_options *options);

int pa_sim_open(const pa_sys *sys, uint64_t base_address, uint64_t size,
                const pa_sim_options *options, pa_memory **out);

#endif

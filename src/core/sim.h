/*
 * The simulated memory: a pool of `size` bytes at device address
 * `base_address`, backed by ordinary memory, that behaves like a
 * non-coherent CMA region.  The device and the CPU's cache each have their
 * own copy of the pool; a cacheable block is mapped onto the cache copy, so
 * CPU writes reach the device only through flush and device writes reach
 * the CPU only through invalidate.  Non-cacheable blocks map the device
 * copy directly and are coherent.
 *
 * With coherence tracking on (the default), cacheable blocks follow an
 * exact model of a write-back cache of `line_size`-byte lines: a line is
 * dirty when the CPU's copy differs from what was last synced, flush
 * writes back only the dirty lines its span touches, and invalidate cleans
 * the lines its span covers only in part, then discards the rest and
 * reloads them, as Linux's arm64 __dma_inv_area does.  What a program does
 * wrong against that model is recorded as a hazard for the calling thread
 * to take (pa_sim_take_hazards).  Off, flush and invalidate copy the whole
 * span, and nothing is recorded.
 */
#ifndef PA_SIM_H
#define PA_SIM_H

#include "memory.h"

#include "sys.h"

#include <stddef.h>

/* How coherence hazards are reported; the core only tells off from on,
 * and keeps the mode for its callers. */
enum {
    PA_COHERENCE_OFF = 0,
    PA_COHERENCE_WARN = 1,
    PA_COHERENCE_RAISE = 2,
};

/* The names of the modes ("off", "warn", "raise"), or NULL; and the mode a
 * name spells, or -EINVAL. */
const char *pa_coherence_mode_name(int mode);
int pa_coherence_mode_parse(const char *name);

/* The smallest line size; the largest is the page size. */
#define PA_SIM_LINE_MIN 16u

typedef struct pa_sim_options {
    uint64_t line_size;     /* a power of two from 16 to the page size;
                               0: 64 */
    int coherence;          /* PA_COHERENCE_* */
} pa_sim_options;

/* -EINVAL unless base_address and size are non-zero page multiples (base
 * may be 0) that do not wrap, and the options are valid; otherwise errors
 * from memfd/mmap.  sys NULL means the real system calls; options NULL
 * means a 64-byte line and PA_COHERENCE_WARN. */
/* The first option that pa_sim_open would refuse ("line_size",
 * "coherence", "size", "base_address"), or NULL if all are valid. */
const char *pa_sim_invalid_option(uint64_t base_address, uint64_t size,
                                  const pa_sim_options *options);

int pa_sim_open(const pa_sys *sys, uint64_t base_address, uint64_t size,
                const pa_sim_options *options, pa_memory **out);

/* The memory's PA_COHERENCE_* mode, or -1 if m is not a simulated memory. */
int pa_sim_coherence(const pa_memory *m);
uint64_t pa_sim_line_size(const pa_memory *m);

/* What went wrong, in the order of the contract's list. */
enum {
    PA_HAZARD_UNFLUSHED_READ = 1,   /* the device read lines the CPU holds
                                       dirty (a flush is missing) */
    PA_HAZARD_WRITE_UNDER_DIRTY,    /* the device wrote lines the CPU holds
                                       dirty: their write-back would undo it */
    PA_HAZARD_WRITEBACK_CLOBBERED,  /* a flush, or invalidate's cleaning of
                                       a line it covers in part, wrote CPU
                                       data back over data the device wrote */
    PA_HAZARD_DISCARDED,            /* invalidate discarded lines the CPU
                                       had written (its writes are lost) */
    PA_HAZARD_UNFLUSHED,            /* check: CPU writes never flushed */
    PA_HAZARD_UNINVALIDATED,        /* check: device writes never
                                       invalidated (a CPU read of them was
                                       stale) */
};

typedef struct pa_hazard {
    int kind;
    uint64_t block;         /* device address of the block */
    uint64_t start, end;    /* device addresses of the bytes concerned */
} pa_hazard;

/* Records of one thread's hazards are kept up to this many (adjacent
 * ranges of one kind merge); beyond it they are only counted. */
#define PA_HAZARDS_KEPT 16

/* Whether the calling thread has hazards to take. */
int pa_sim_hazards_pending(void);

/* Moves the calling thread's hazards (at most cap) into out and returns
 * how many; *lost (if not NULL) gets how many were dropped for lack of
 * room since the last take. */
size_t pa_sim_take_hazards(pa_hazard *out, size_t cap, uint64_t *lost);

/* Whether the device has written lines of blk that the CPU has not
 * invalidated since (0 for coherent blocks or with tracking off): cheap,
 * a look at a bitmap. */
int pa_sim_has_device_writes(pa_memory *m, const pa_block *blk);

/* Records blk's standing hazards of one kind for the calling thread, from
 * byte offset `from` of the block on: PA_HAZARD_UNFLUSHED (lines with CPU
 * writes never flushed) or PA_HAZARD_UNINVALIDATED (lines with device
 * writes never invalidated).  Stops where the thread's record is full and
 * returns the offset to go on from once it has been taken; blk->size when
 * done.  Records nothing for coherent blocks or with tracking off. */
uint64_t pa_sim_check(pa_memory *m, const pa_block *blk, int kind,
                      uint64_t from);

#endif

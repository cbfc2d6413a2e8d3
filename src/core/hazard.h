/*
 * Coherence hazards: what a program did wrong against a backend's model of
 * the CPU's cache (the sim's line model, sim.h), recorded for the calling
 * thread to take after the operation that found them.
 *
 * Also the vocabulary that tracking shares with its callers, the modes and
 * the kinds with their names, so that no other layer keeps a copy.
 */
#ifndef PA_HAZARD_H
#define PA_HAZARD_H

#include <stddef.h>
#include <stdint.h>

/* How a memory reports hazards (pa_memory_coherence).  The core only
 * tells off from on and keeps the mode for its callers. */
enum {
    PA_COHERENCE_OFF = 0,
    PA_COHERENCE_WARN = 1,
    PA_COHERENCE_RAISE = 2,
};

/* "off", "warn" or "raise"; NULL for a number that names no mode. */
const char *pa_coherence_mode_name(int mode);

/* The PA_COHERENCE_* mode of that name (exactly), or -EINVAL. */
int pa_coherence_mode_parse(const char *name);

/* What went wrong, in the order of docs/coherence.md's table. */
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
    PA_HAZARD_EDGE_RELOADED,        /* a notice, not an error: invalidate
                                       reloaded a line its span covers in
                                       part, and bytes outside the span
                                       took what the device wrote */
};

/* Kinds are numbered 1 to PA_HAZARD_KINDS. */
#define PA_HAZARD_KINDS 7

/* "unflushed-read", "write-under-dirty", "writeback-clobbered",
 * "discarded", "unflushed", "uninvalidated" or "edge-reloaded"; NULL for
 * a number that names no kind. */
const char *pa_hazard_kind_name(int kind);

typedef struct pa_hazard {
    int kind;
    uint64_t block;         /* device address of the block */
    uint64_t start, end;    /* device addresses of the bytes concerned */
} pa_hazard;

/* Records of one thread's hazards are kept up to this many (adjacent
 * ranges of one kind merge); beyond it they are only counted. */
#define PA_HAZARDS_KEPT 16

/* Whether the calling thread has hazards to take: one thread-local test,
 * cheap enough to ask after every operation. */
int pa_hazards_pending(void);

/* Moves the calling thread's hazards (at most cap) into out and returns
 * how many; *lost (if not NULL) gets how many were dropped for lack of
 * room since the last take. */
size_t pa_hazards_take(pa_hazard *out, size_t cap, uint64_t *lost);

/* For backends: records a hazard of `kind` over device addresses
 * [start, end) of the block at device address `block`, for the calling
 * thread.  It extends the last record instead where that is of the same
 * kind and block and ends at start; it is only counted as lost when
 * PA_HAZARDS_KEPT records are kept already. */
void pa_hazard_note(int kind, uint64_t block, uint64_t start, uint64_t end);

/* For backends: whether pa_hazard_note(kind, block, start, ...) would be
 * kept (merged or recorded), not lost. */
int pa_hazard_fits(int kind, uint64_t block, uint64_t start);

#endif

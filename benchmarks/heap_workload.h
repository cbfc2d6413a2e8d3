/*
 * The allocator benchmark's workload, for heap_bench.c's report (`make -C
 * benchmarks`) and for the figures bench.py's heap row runs it for, so
 * that both time the same thing: with `live` blocks of 1 to 16 pages
 * allocated, free a random one and allocate a random size in its place;
 * and its unit, one dependent random read over an array of a given size.
 * Neither sets the process's huge-page policy: the callers do.
 */
#ifndef PA_HEAP_WORKLOAD_H
#define PA_HEAP_WORKLOAD_H

#include <stdint.h>

/* A step of splitmix64: the workload's random numbers. */
uint64_t pa_splitmix(uint64_t *state);

/* CLOCK_MONOTONIC in nanoseconds. */
double pa_now_ns(void);

/* Blocks live at most: millions, so that the heap's bookkeeping can be
 * measured well past the last-level cache (block numbers fit 32 bits). */
#define PA_WORKLOAD_MAX_LIVE 8000000u

/* ns per free+alloc over `ops` operations with `live` blocks (1 to
 * PA_WORKLOAD_MAX_LIVE) into *ns, and the heap's bookkeeping bytes then into *meta.
 * With `ahead`, the harness fetches its own table entry for the next
 * victim one operation early, so that its random read of that table no
 * longer counts.  0, -ENOMEM, -EINVAL for bad counts, or -EFAULT if the
 * heap refused a request sized to fit or its invariants broke. */
int pa_heap_workload(uint64_t live, uint64_t ops, uint64_t seed, int ahead,
                     double *ns, uint64_t *meta);

/* ns per dependent read at a random 64-byte line of nbytes (at least 128)
 * into *ns, `reads` of them (one random cycle through every line:
 * Sattolo's shuffle, so the prefetcher cannot guess).  0, -ENOMEM or
 * -EINVAL. */
int pa_random_read(uint64_t nbytes, uint64_t reads, uint64_t seed,
                   double *ns);

#endif

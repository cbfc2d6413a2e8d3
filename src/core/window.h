/*
 * Blocks that are windows of one file: a fixed region, managed by a
 * pa_heap, whose bytes lie in a file (a memfd, a device node) at their
 * offset from the region's base.  Each block maps its own window of the
 * file.  The sim and u-dma-buf backends are this shape.
 */
#ifndef PA_WINDOW_H
#define PA_WINDOW_H

#include "heap.h"
#include "memory.h"
#include "sys.h"

/* Allocates from heap and maps the block's window of fd: fills the
 * address and mapping fields of blk (the caller sets cacheable, coherent).
 * 0 or -errno; on failure nothing is left allocated. */
int pa_window_alloc(const pa_sys *sys, pa_heap *heap, int fd,
                    uint64_t region_base, uint64_t size, uint64_t align,
                    uint64_t limit, pa_block *blk);

/* Unmaps the window (unless keep_va) and gives the block back to heap. */
void pa_window_free(const pa_sys *sys, pa_heap *heap, pa_block *blk,
                    int keep_va);

/* total, used, free and largest_free of a heap. */
void pa_window_stats(const pa_heap *heap, pa_stats *out);

#endif

/*
 * pa_heap: an allocator for a range of device addresses.
 *
 * It manages [base, base + size) without ever touching that memory: its
 * bookkeeping lives in ordinary heap memory, so the range may be device
 * memory, unmapped, or purely numeric.  Blocks are multiples of the heap's
 * granule; freeing coalesces with free neighbours at once.
 *
 * Allocation is two-level segregated fit (TLSF): O(1) whatever the number
 * of blocks, for every request that a size class can serve.  When none can
 * (the heap is nearly full, or an address limit cuts through the range),
 * a scan of the large-enough free blocks takes the lowest-addressed one
 * that fits, so a request is refused only if no free block can hold it.
 * Freeing by the handle that allocation returned is O(1) and touches only
 * the block and its neighbours; nothing is kept per address on that path.
 *
 * Functions return 0 or a negative errno value and fill their out-parameters
 * only on success.  Nothing here prints, aborts or is thread-safe: callers
 * serialise access to one heap.  (Debug builds, PA_DEBUG, check the
 * invariants an operation touches with PA_ASSERT, which aborts.)
 */
#ifndef PA_HEAP_H
#define PA_HEAP_H

#include <stdint.h>

typedef struct pa_heap pa_heap;

typedef struct pa_heap_stats {
    uint64_t total;         /* size of the managed range */
    uint64_t used;          /* bytes in allocated blocks */
    uint64_t free;          /* total - used */
    uint64_t largest_free;  /* largest free block, before alignment */
    uint64_t blocks;        /* allocated blocks */
    uint64_t free_blocks;   /* free blocks (fragments) */
    uint64_t peak_used;     /* highest `used` seen */
    uint64_t failed;        /* allocations refused with -ENOMEM */
    uint64_t meta_bytes;    /* ordinary memory the bookkeeping holds */
} pa_heap_stats;

/*
 * Creates a heap over [base, base + size).  -EINVAL unless granule is a
 * power of two, base and size are non-zero multiples of it (base may be 0)
 * and the range does not wrap; -ENOMEM if bookkeeping cannot be allocated.
 */
int pa_heap_create(uint64_t base, uint64_t size, uint64_t granule,
                   pa_heap **out);
void pa_heap_destroy(pa_heap *heap);

/*
 * Allocates `size` bytes (rounded up to the granule) starting at a multiple
 * of `align` (0 means the granule; smaller values are raised to it), ending
 * at or below `limit` (0 means no limit).  *addr receives the start and
 * *handle the block's name for pa_heap_free_block.  -EINVAL if size is 0 or
 * align is not a power of two; -ENOMEM if no free block can hold it (the
 * heap is unchanged).
 */
int pa_heap_alloc_block(pa_heap *heap, uint64_t size, uint64_t align,
                        uint64_t limit, uint64_t *addr, uint32_t *handle);

/* Frees the block that pa_heap_alloc_block returned as (handle, addr):
 * O(1).  -EINVAL unless that allocated block is live (a double free, a
 * stale or foreign handle).  Never needs memory, so it cannot fail
 * otherwise. */
int pa_heap_free_block(pa_heap *heap, uint32_t handle, uint64_t addr);

/* pa_heap_alloc_block for callers that free by address. */
int pa_heap_alloc(pa_heap *heap, uint64_t size, uint64_t align,
                  uint64_t limit, uint64_t *addr);

/* Frees the block starting at addr; -EINVAL if no allocated block does.
 * It finds the block as pa_heap_find does: prefer pa_heap_free_block. */
int pa_heap_free(pa_heap *heap, uint64_t addr);

/*
 * Finds the allocated block that contains addr: fills *start and *size.
 * -ENOENT if addr is outside every allocated block.  A binary search of an
 * index of the allocated blocks, which the first lookup after an
 * allocation or a free rebuilds in O(allocated blocks): for device-side
 * access, not hot paths.  It updates that index, so it needs the same
 * serialisation as the functions that change the heap.
 */
int pa_heap_find(const pa_heap *heap, uint64_t addr, uint64_t *start,
                 uint64_t *size);

void pa_heap_get_stats(const pa_heap *heap, pa_heap_stats *out);

/*
 * Checks every invariant: the blocks tile the range in address order, no
 * two free blocks touch, every free block is in the list of its size class
 * and the class bitmaps match the lists, every allocated block knows
 * which of its neighbours are free, spare records are marked spare,
 * a current address index holds exactly the allocated blocks in order,
 * and the counters agree.  Returns 0 iff they hold,
 * otherwise a negative code naming the first one broken.  O(n).
 */
int pa_heap_check(const pa_heap *heap);

#endif

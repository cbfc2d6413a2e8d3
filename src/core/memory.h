/*
 * pa_memory: one source of physically contiguous memory, whatever backs it.
 *
 * A backend is a table of functions (pa_backend_ops) plus its own state; a
 * backend's open function builds a pa_memory around them.  This layer adds
 * what every backend needs the same way: a lock, a count of live blocks and
 * a small cache that keeps released blocks mapped for reuse (for backends
 * that sub-allocate, where reuse holds no system memory).
 *
 * Functions return 0 or a negative errno value.  Thread-safe: any function
 * may be called from several threads at once on one memory, except that a
 * block must not be flushed while it is being released or retired (debug
 * builds, PA_DEBUG, catch a sync still running when that starts).
 *
 * Fork-safe: no lock is held in a child, whatever other threads were doing
 * (pthread_atfork).  A child may use the blocks it inherited but never
 * gives them back (no heap free, no GEM_CLOSE, no cma_free): the parent
 * still owns them.  Where the backend keeps its heap in this process
 * (private_heap), a child cannot allocate from the parent's memory: that
 * is -EBUSY, since two private copies of one heap would hand out the same
 * bytes twice.
 */
#ifndef PA_MEMORY_H
#define PA_MEMORY_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* One allocation: device memory and the CPU mapping of all of it. */
typedef struct pa_block {
    uint64_t device_address;
    void *cpu;              /* page-aligned mapping of the whole block */
    uint64_t size;          /* bytes, a multiple of the page size */
    void *map_base;         /* the backend's mapping that holds the block: */
    uint64_t map_length;    /* more than [cpu, cpu + size) for alignment
                               slack or huge pages */
    uint64_t handle;        /* the backend's name for it (a GEM handle, ...) */
    int32_t owner;          /* the process that allocated it */
    uint8_t cacheable;      /* mapped cached */
    uint8_t coherent;       /* flush/invalidate are not needed */
    uint8_t parked;         /* retired, still mapped (pa_memory_retire) */
} pa_block;

typedef struct pa_stats {
    uint64_t total;
    uint64_t used;
    uint64_t free;
    uint64_t largest_free;
    uint64_t buffers;       /* live blocks, not counting cached ones */
} pa_stats;

typedef struct pa_memory pa_memory;

/* What a backend that models the CPU's cache offers its callers (the
 * sim's line model); they reach it through pa_memory_coherence and the
 * functions after it. */
typedef struct pa_coherence_ops {
    int (*mode)(const pa_memory *m);            /* PA_COHERENCE_* */
    uint64_t (*line_size)(const pa_memory *m);
    /* These two only for a non-coherent block while the mode is not
     * PA_COHERENCE_OFF, check only with from < blk->size. */
    int (*has_device_writes)(pa_memory *m, const pa_block *blk);
    uint64_t (*check)(pa_memory *m, const pa_block *blk, int kind,
                      uint64_t from);
} pa_coherence_ops;

typedef struct pa_backend_ops {
    const char *kind;
    /* Keep released blocks mapped for reuse (only where that holds no
     * kernel memory, i.e. the backend sub-allocates a fixed region). */
    int reuse_blocks;
    /* flush/invalidate call into a driver (rather than copying or running
     * cache instructions), so callers should not hold locks of their own. */
    int sync_calls_driver;
    /* What is allocated is known only to this process (a heap over a
     * pool), not to the kernel: a forked child cannot allocate. */
    int private_heap;
    /* Zero every cacheable block, even where the caller asked for none
     * (PA_ALLOC_UNZEROED): the backend's zero op also resets its own
     * record of the block's cache lines. */
    int always_zero_cacheable;
    /* size: a page multiple; align: a power of two >= the page size;
     * limit: the block must end at or below it (UINT64_MAX: none). */
    int (*alloc)(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
                 int cacheable, pa_block *blk);
    /* The blk->cacheable that alloc records for a request of a cacheable
     * (1) or an uncached (0) block, or -ENOTSUP if alloc refuses that
     * request; NULL where it records what was asked.  A block kept for
     * reuse serves exactly the requests whose answer is its own, so a
     * backend that reuses blocks answers exactly (zocl, which reuses
     * none, learns its answer from the driver, BO by BO). */
    int (*cacheable_as)(const pa_memory *m, int cacheable);
    /* Makes a block read as zeros on the CPU side and the device side.
     * NULL where every block alloc returns reads as zeros (the kernel
     * zeroed it) and no block is ever reused.  It may make a system call only for blocks larger
     * than PA_ZERO_INLINE_BYTES, or for non-coherent blocks of a backend
     * whose sync_calls_driver is set. */
    int (*zero)(pa_memory *m, const pa_block *blk);
    /* Gives the device memory back.  keep_va: the caller has already
     * replaced [map_base, map_base + map_length) with anonymous memory,
     * which must stay; otherwise the backend unmaps its mapping. */
    void (*free)(pa_memory *m, pa_block *blk, int keep_va);
    /* Cache maintenance of [offset, offset + len) of a non-coherent block. */
    int (*flush)(pa_memory *m, const pa_block *blk, uint64_t offset,
                 uint64_t len);
    int (*invalidate)(pa_memory *m, const pa_block *blk, uint64_t offset,
                      uint64_t len);
    /* The device's view of memory; NULL where the backend has none.  They
     * return -EFAULT unless the range lies inside one allocated block. */
    int (*device_read)(pa_memory *m, uint64_t addr, void *dst, uint64_t n);
    int (*device_write)(pa_memory *m, uint64_t addr, const void *src,
                        uint64_t n);
    /* total, used, free, largest_free (buffers is filled by the core). */
    void (*stats)(pa_memory *m, pa_stats *out);
    void (*close)(pa_memory *m);
    /* In a forked child, for a block it inherited: the core has unmapped
     * the block's mapping, or put anonymous memory over it, and gives the
     * block back to no one (the parent owns it).  The backend drops any
     * record that this process still maps those addresses for it, which
     * it would otherwise unmap again at close, under whatever the child
     * has mapped there since.  The lock is held; NULL where a backend
     * records no mappings beyond its blocks' own. */
    void (*forget_mapping)(pa_memory *m, const pa_block *blk);
    /* A lock of the backend's own, held across fork() like the memory's
     * (taken after it), so that no child inherits it held; NULL if none. */
    pthread_mutex_t *(*fork_lock)(pa_memory *m);
    /* What sets this memory apart from others of its kind, e.g. "bank=1";
     * NULL where nothing does. */
    void (*describe)(const pa_memory *m, char *buf, size_t cap);
    /* Coherence tracking; NULL where the backend tracks none. */
    const pa_coherence_ops *coherence;
} pa_backend_ops;

/* Memory banks, for the backends that take one (zocl, xrt): an index
 * into the loaded xclbin's mem_topology, carried in bits 0-15 of the BO
 * flags, so from 0 to PA_BANK_COUNT - 1. */
#define PA_BANK_COUNT (1u << 16)

/* For backends: wraps ops and state (owned from then on) into a memory. */
int pa_memory_create(const pa_backend_ops *ops, void *state,
                     uint64_t base_address, uint64_t size, pa_memory **out);
void *pa_memory_state(const pa_memory *m);

/* This process's id, without a system call (kept up to date across fork). */
int32_t pa_process_id(void);

/* Replaces [addr, addr + len) with fresh anonymous memory, atomically. */
int pa_map_anonymous_over(void *addr, uint64_t len);

uint64_t pa_page_size(void);

/* A buffer could not be mapped (mmap's ENOMEM): the process has run out of
 * address space or of mappings (vm.max_map_count), not of device memory. */
#define PA_ENOMAP 4096

static inline int
pa_mmap_error(int err)
{
    return err == ENOMEM ? -PA_ENOMAP : -err;
}

/* Flags of pa_memory_alloc and pa_memory_try_reuse. */
#define PA_ALLOC_CACHEABLE 1u   /* map cached: flush/invalidate needed */
#define PA_ALLOC_UNZEROED 2u    /* contents may be an earlier user's */

/* Blocks up to this size are zeroed in place with whatever locks the
 * caller holds (see pa_memory_try_reuse). */
#define PA_ZERO_INLINE_BYTES (64u * 1024u)

/* A zero op for backends whose CPU mapping reaches the memory: stores
 * zeros through it, then flushes if the block is not coherent. */
int pa_memory_zero_by_cpu(pa_memory *m, const pa_block *blk);

/*
 * Allocates at least nbytes (0 is allowed: one page) of device memory
 * starting at a multiple of align (0: the page size) and ending at or
 * below limit (0: none).  The block reads as zeros on the CPU side and the
 * device side unless flags has PA_ALLOC_UNZEROED.  -EINVAL for a bad
 * align; -ENOMEM when no block fits even after the reuse cache is
 * emptied; other errors from the backend.
 */
int pa_memory_alloc(pa_memory *m, uint64_t nbytes, uint64_t align,
                    uint64_t limit, unsigned flags, pa_block *out);

/*
 * Serves the request from blocks kept for reuse only, zeroed as
 * pa_memory_alloc zeroes: 1 and *out filled on a hit, else 0.  It never
 * makes a system call and zeroes at most PA_ZERO_INLINE_BYTES, so callers
 * may skip releasing locks of their own (such as the GIL) around it.
 */
int pa_memory_try_reuse(pa_memory *m, uint64_t nbytes, uint64_t align,
                        uint64_t limit, unsigned flags, pa_block *out);

/* Releases a block nothing maps any more; it may be kept for reuse.  A
 * block this process inherited is only unmapped. */
void pa_memory_release(pa_memory *m, pa_block *blk);

/*
 * Keeps a released block for reuse if that needs no system call (the
 * backend reuses blocks and the cache has room): 1 if kept, else 0 and
 * the caller releases it with pa_memory_release.
 */
int pa_memory_try_keep(pa_memory *m, pa_block *blk);

/*
 * Gives a block's device memory back now, while CPU users may still hold
 * pointers into it, and keeps them memory-safe: they can never see a later
 * allocation.  Where the backend reuses blocks, the block is parked: it
 * stays mapped and out of the heap, at no system call, counted free in the
 * figures and refused to the device; an allocation that needs its space
 * first puts anonymous memory over its range and gives it back, as
 * pa_memory_stats and pa_memory_close do.  Elsewhere that happens at once.
 * The caller keeps blk where it is until pa_memory_unmap_retired, called
 * once the last CPU user is gone: a parked block is then kept for reuse
 * or released, like a block nothing mapped.  m may be NULL there only
 * after pa_memory_close.
 */
int pa_memory_retire(pa_memory *m, pa_block *blk);
void pa_memory_unmap_retired(pa_memory *m, pa_block *blk);

/* For callers that release locks of their own around system calls: parks
 * blk if it can (1), else 0 and the caller calls pa_memory_retire. */
int pa_memory_try_park(pa_memory *m, pa_block *blk);
/* Keeps a retired block for reuse once its arrays are gone, if it is
 * still parked and that needs no system call: 1, else 0 and the caller
 * calls pa_memory_unmap_retired. */
int pa_memory_try_keep_retired(pa_memory *m, pa_block *blk);

/* Cache maintenance of [offset, offset + len) of blk.  On a coherent
 * block flush only orders the CPU's stores before later ones (a device's
 * doorbell), and invalidate does nothing.  -EINVAL if the range passes
 * the end of the block. */
int pa_memory_flush(pa_memory *m, const pa_block *blk, uint64_t offset,
                    uint64_t len);
int pa_memory_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
                         uint64_t len);

/* As the device sees memory.  -EFAULT unless [addr, addr + n) lies inside
 * one live block; -ENOTSUP if the backend cannot (has_device_access 0). */
int pa_memory_has_device_access(const pa_memory *m);
int pa_memory_device_read(pa_memory *m, uint64_t addr, void *dst, uint64_t n);
int pa_memory_device_write(pa_memory *m, uint64_t addr, const void *src,
                           uint64_t n);

/*
 * Coherence tracking, where the backend models the CPU's cache line by
 * line (the sim, sim.h): the modes, the kinds of hazard and their records
 * are in hazard.h.  Elsewhere nothing is tracked and these say so.
 */
/* The memory's PA_COHERENCE_* mode, or -1 if its backend tracks none. */
int pa_memory_coherence(const pa_memory *m);
/* Bytes per line of the model; 0 if there is none. */
uint64_t pa_memory_line_size(const pa_memory *m);

/* Whether the device has written lines of blk that the CPU has not
 * invalidated since: cheap, a look at a bitmap.  0 for coherent blocks,
 * with tracking off, and where nothing is tracked. */
int pa_memory_has_device_writes(pa_memory *m, const pa_block *blk);

/* Records blk's standing hazards of one kind for the calling thread, from
 * byte offset `from` of the block on: PA_HAZARD_UNFLUSHED (lines with CPU
 * writes never flushed) or PA_HAZARD_UNINVALIDATED (lines with device
 * writes never invalidated).  Stops where the thread's record is full and
 * returns the offset to go on from once it has been taken; blk->size when
 * done, and at once for coherent blocks, with tracking off and where
 * nothing is tracked. */
uint64_t pa_memory_check(pa_memory *m, const pa_block *blk, int kind,
                         uint64_t from);

/* Exact figures: cached blocks are released first, so they count as free. */
void pa_memory_stats(pa_memory *m, pa_stats *out);

const char *pa_memory_kind(const pa_memory *m);
/* Whether this process may allocate from m: not a forked child of its
 * opener where the heap is private. */
int pa_memory_may_allocate(const pa_memory *m);
int32_t pa_memory_opener(const pa_memory *m);
/* The backend's describe() text ("" if it has none) into buf. */
void pa_memory_describe(const pa_memory *m, char *buf, size_t cap);
int pa_memory_sync_calls_driver(const pa_memory *m);
uint64_t pa_memory_base_address(const pa_memory *m);
uint64_t pa_memory_size(const pa_memory *m);

/* Closes a memory whose blocks have all been released or retired. */
void pa_memory_close(pa_memory *m);

#endif

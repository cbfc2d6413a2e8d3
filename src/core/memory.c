/*
 * pa_memory: the backend-independent half of a memory (see memory.h).
 *
 * The reuse cache exists because mapping and unmapping cost microseconds,
 * far more than numpy takes to make an array.  It never changes what a user
 * can observe: cached blocks count as free in the statistics (they are
 * released before figures are taken), an allocation that fails is retried
 * after releasing them, and the device refuses to touch them.
 *
 * Parking does the same for freebuffer(): swapping a retired block's
 * mapping for anonymous memory costs three system calls (the swap, the
 * unmap when its arrays go, a new mapping for the next block), while a
 * with-block usually ends with no array on the block but the root, which
 * goes soon after.  A parked block keeps its mapping and stays out of the
 * heap until its arrays are gone, and is swapped out only when its space
 * is needed: nobody else can reach its bytes meanwhile.
 */
#include "memory.h"
#include "cache.h"
#include "hazard.h"
#include "pa_assert.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CACHE_ENTRIES 64
#define SYNC_SLOTS 64       /* PA_DEBUG: syncs in flight that are checked */
#define CACHE_MAX_BLOCK (16ull << 20)
#define CACHE_MAX_BYTES (64ull << 20)
#define PARKED_ENTRIES 64

struct pa_memory {
    const pa_backend_ops *ops;
    void *state;
    uint64_t base_address;
    uint64_t size;
    int32_t opener;                 /* the process that opened it */
    pthread_mutex_t lock;
    uint64_t live;                  /* blocks handed out and not released */
    pa_block cache[CACHE_ENTRIES];  /* oldest first */
    int cached;
    uint64_t cached_bytes;
    pa_block *parked[PARKED_ENTRIES];   /* retired, still mapped; the
                                           blocks live in their callers */
    int parked_count;
    uint64_t parked_bytes;
    pa_memory *prev, *next;         /* in `open_memories` */
#ifdef PA_DEBUG
    /* Flushes and invalidations in progress, by block (see sync_begin);
     * under `lock`. */
    uint64_t syncing_addr[SYNC_SLOTS];
    uint32_t syncing_count[SYNC_SLOTS];
#endif
};

/*
 * Every open memory, so that fork() can take all their locks first (no
 * lock is then held half-way in the child) and the child can drop what it
 * must not reuse.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pa_memory *open_memories;
static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;
static int32_t this_process;

static void
before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
    for (pa_memory *m = open_memories; m != NULL; m = m->next) {
        pthread_mutex_lock(&m->lock);
        if (m->ops->fork_lock != NULL) {
            pthread_mutex_lock(m->ops->fork_lock(m));
        }
    }
}

static void
unlock_for_fork(pa_memory *m)
{
    if (m->ops->fork_lock != NULL) {
        pthread_mutex_unlock(m->ops->fork_lock(m));
    }
    pthread_mutex_unlock(&m->lock);
}

static void
after_fork_in_parent(void)
{
    for (pa_memory *m = open_memories; m != NULL; m = m->next) {
        unlock_for_fork(m);
    }
    pthread_mutex_unlock(&registry_lock);
}

/* The child's copy of the mapping of a block the parent owns is gone
 * (unmapped, or anonymous memory in its place): the backend must not
 * unmap those addresses again.  The lock is held. */
static void
forget_mapping(pa_memory *m, const pa_block *blk)
{
    if (m->ops->forget_mapping != NULL) {
        m->ops->forget_mapping(m, blk);
    }
}

/* The blocks kept for reuse are the parent's: the child only unmaps its
 * copies of their mappings. */
static void
after_fork_in_child(void)
{
    this_process = (int32_t)getpid();
    for (pa_memory *m = open_memories; m != NULL; m = m->next) {
        for (int i = 0; i < m->cached; i++) {
            munmap(m->cache[i].map_base, m->cache[i].map_length);
            forget_mapping(m, &m->cache[i]);
        }
        m->cached = 0;
        m->cached_bytes = 0;
        unlock_for_fork(m);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void
install_fork_handlers(void)
{
    this_process = (int32_t)getpid();
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

int32_t
pa_process_id(void)
{
    pthread_once(&fork_handlers_once, install_fork_handlers);
    return this_process;
}

/* Whether blk was allocated by this process, not inherited. */
static int
owned(const pa_block *blk)
{
    return blk->owner == pa_process_id();
}

uint64_t
pa_page_size(void)
{
    static uint64_t page;
    if (page == 0) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (uint64_t)p : 4096;
    }
    return page;
}

int
pa_memory_create(const pa_backend_ops *ops, void *state,
                 uint64_t base_address, uint64_t size, pa_memory **out)
{
    PA_ASSERT(ops->kind != NULL && ops->alloc != NULL && ops->free != NULL
              && ops->flush != NULL && ops->invalidate != NULL
              && ops->stats != NULL && ops->close != NULL);
    PA_ASSERT((ops->device_read == NULL) == (ops->device_write == NULL));
    PA_ASSERT(ops->coherence == NULL
              || (ops->coherence->mode != NULL
                  && ops->coherence->line_size != NULL
                  && ops->coherence->has_device_writes != NULL
                  && ops->coherence->check != NULL));
    pa_memory *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&m->lock, NULL);
    if (rc != 0) {
        free(m);
        return -rc;
    }
    m->ops = ops;
    m->state = state;
    m->base_address = base_address;
    m->size = size;
    m->opener = pa_process_id();
    pthread_mutex_lock(&registry_lock);
    m->next = open_memories;
    if (open_memories != NULL) {
        open_memories->prev = m;
    }
    open_memories = m;
    pthread_mutex_unlock(&registry_lock);
    *out = m;
    return 0;
}

void *
pa_memory_state(const pa_memory *m)
{
    return m->state;
}

int
pa_map_anonymous_over(void *addr, uint64_t len)
{
    void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
}

/*
 * Debug builds check memory.h's rule that a block is not flushed or
 * invalidated while it is being released or retired: a sync in progress
 * is listed under the lock by the block's device address, and releasing
 * or retiring a listed block fails an assertion.  (A sync that starts
 * after the release has taken the lock is not seen.)  User builds list
 * nothing.  The slot, or -1 if none was taken.
 */
static int
sync_begin(pa_memory *m, const pa_block *blk)
{
#ifdef PA_DEBUG
    int slot = -1;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < SYNC_SLOTS && slot < 0; i++) {
        if (m->syncing_count[i] != 0
                && m->syncing_addr[i] == blk->device_address) {
            slot = i;
        }
    }
    for (int i = 0; i < SYNC_SLOTS && slot < 0; i++) {
        if (m->syncing_count[i] == 0) {
            slot = i;
            m->syncing_addr[i] = blk->device_address;
        }
    }
    if (slot >= 0) {
        m->syncing_count[slot]++;
    }
    pthread_mutex_unlock(&m->lock);
    return slot;
#else
    (void)m;
    (void)blk;
    return -1;
#endif
}

static void
sync_end(pa_memory *m, int slot)
{
#ifdef PA_DEBUG
    if (slot >= 0) {
        pthread_mutex_lock(&m->lock);
        m->syncing_count[slot]--;
        pthread_mutex_unlock(&m->lock);
    }
#else
    (void)m;
    (void)slot;
#endif
}

/* Whether blk is being flushed or invalidated; the lock is held.  Always
 * 0 in user builds. */
static int
syncing(const pa_memory *m, const pa_block *blk)
{
#ifdef PA_DEBUG
    for (int i = 0; i < SYNC_SLOTS; i++) {
        if (m->syncing_count[i] != 0
                && m->syncing_addr[i] == blk->device_address) {
            return 1;
        }
    }
#else
    (void)m;
    (void)blk;
#endif
    return 0;
}

/* Releases cached blocks for real; the lock is held. */
static void
drain_cache(pa_memory *m)
{
    for (int i = 0; i < m->cached; i++) {
        m->ops->free(m, &m->cache[i], 0);
    }
    m->cached = 0;
    m->cached_bytes = 0;
}

/* Gives a parked block back for good: anonymous memory over its range
 * first, so that its arrays never see a later allocation.  One this
 * process inherited is the parent's to give back.  Without memory for the
 * swap it stays parked, and 0 says so.  The lock is held. */
static int
unpark(pa_memory *m, int i)
{
    pa_block *blk = m->parked[i];
    if (pa_map_anonymous_over(blk->map_base, blk->map_length) != 0) {
        return 0;
    }
    m->parked[i] = m->parked[--m->parked_count];
    m->parked_bytes -= blk->size;
    blk->parked = 0;
    if (owned(blk)) {
        m->ops->free(m, blk, 1);
    }
    else {
        forget_mapping(m, blk);
    }
    return 1;
}

/* 1 if any block was given back.  The lock is held. */
static int
unpark_all(pa_memory *m)
{
    int any = 0;
    for (int i = m->parked_count - 1; i >= 0; i--) {
        any |= unpark(m, i);
    }
    return any;
}

/* Whether zeroing blk needs no system call and little time. */
static int
zero_is_inline(const pa_memory *m, const pa_block *blk)
{
    return blk->size <= PA_ZERO_INLINE_BYTES
           && (blk->coherent || !m->ops->sync_calls_driver);
}

/* Whether a block must be zeroed before it is handed out. */
static int
must_zero(const pa_memory *m, unsigned flags)
{
    return m->ops->zero != NULL
           && (!(flags & PA_ALLOC_UNZEROED)
               || (m->ops->always_zero_cacheable
                   && (flags & PA_ALLOC_CACHEABLE)));
}

/* The blk->cacheable of the blocks that serve a request with these
 * flags, or -ENOTSUP if none does: what alloc would record, so that a
 * kept block serves a request only where alloc would hand out its like
 * (huge pages map every block cached, for instance). */
static int
cacheable_as(const pa_memory *m, unsigned flags)
{
    int cacheable = (flags & PA_ALLOC_CACHEABLE) != 0;
    return m->ops->cacheable_as != NULL ? m->ops->cacheable_as(m, cacheable)
                                        : cacheable;
}

/* Takes a cached block that satisfies the request (and, if inline_only,
 * can be zeroed inline); the lock is held.  cacheable: cacheable_as's. */
static int
take_cached(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
            int cacheable, int inline_only, pa_block *out)
{
    for (int i = m->cached - 1; i >= 0; i--) {
        const pa_block *b = &m->cache[i];
        if (b->size == size && b->cacheable == cacheable
                && b->device_address % align == 0
                && b->device_address + size <= limit
                && (!inline_only || zero_is_inline(m, b))) {
            *out = *b;
            m->cached--;
            m->cached_bytes -= size;
            memmove(&m->cache[i], &m->cache[i + 1],
                    (size_t)(m->cached - i) * sizeof(pa_block));
            return 1;
        }
    }
    return 0;
}

/* Turns a request into what backends take (see pa_backend_ops.alloc). */
static int
normalize(uint64_t *size, uint64_t *align, uint64_t *limit)
{
    uint64_t page = pa_page_size();
    if (*align != 0 && (*align & (*align - 1)) != 0) {
        return -EINVAL;
    }
    if (*align < page) {
        *align = page;
    }
    if (*size > UINT64_MAX - page) {
        return -ENOMEM;
    }
    *size = *size == 0 ? page : (*size + page - 1) & ~(page - 1);
    if (*limit == 0) {
        *limit = UINT64_MAX;
    }
    return 0;
}

int
pa_memory_try_reuse(pa_memory *m, uint64_t nbytes, uint64_t align,
                    uint64_t limit, unsigned flags, pa_block *out)
{
    if (!m->ops->reuse_blocks || !pa_memory_may_allocate(m)
            || normalize(&nbytes, &align, &limit) != 0) {
        return 0;
    }
    int as = cacheable_as(m, flags), zero = must_zero(m, flags);
    if (as < 0) {
        return 0;       /* refused: pa_memory_alloc says why */
    }
    pthread_mutex_lock(&m->lock);
    int hit = take_cached(m, nbytes, align, limit, as, zero, out);
    m->live += (uint64_t)hit;
    pthread_mutex_unlock(&m->lock);
    if (hit && zero && m->ops->zero(m, out) != 0) {
        pa_memory_release(m, out);
        return 0;
    }
    if (hit) {
        out->owner = pa_process_id();
        out->parked = 0;
    }
    return hit;
}

int
pa_memory_alloc(pa_memory *m, uint64_t nbytes, uint64_t align,
                uint64_t limit, unsigned flags, pa_block *out)
{
    uint64_t size = nbytes;
    int rc = normalize(&size, &align, &limit);
    if (rc != 0) {
        return rc;
    }
    int cacheable = (flags & PA_ALLOC_CACHEABLE) != 0;
    int as = cacheable_as(m, flags);
    if (!pa_memory_may_allocate(m)) {
        return -EBUSY;
    }
    if (as < 0) {
        return as;
    }

    pthread_mutex_lock(&m->lock);
    if (!take_cached(m, size, align, limit, as, 0, out)) {
        rc = m->ops->alloc(m, size, align, limit, cacheable, out);
        /* Kept blocks hold memory and mappings: give them back, retry. */
        if ((rc == -ENOMEM || rc == -PA_ENOMAP) && m->cached > 0) {
            drain_cache(m);
            rc = m->ops->alloc(m, size, align, limit, cacheable, out);
        }
        if ((rc == -ENOMEM || rc == -PA_ENOMAP) && unpark_all(m)) {
            rc = m->ops->alloc(m, size, align, limit, cacheable, out);
        }
    }
    if (rc == 0) {
        /* What pa_backend_ops.alloc promises. */
        PA_ASSERT(out->size >= size && out->size % pa_page_size() == 0
                  && out->device_address % align == 0
                  && out->device_address + size <= limit
                  && (out->cacheable == as
                      || (m->ops->cacheable_as == NULL
                          && !m->ops->reuse_blocks)));
        m->live++;
        out->owner = pa_process_id();
        out->parked = 0;
    }
    pthread_mutex_unlock(&m->lock);
    /* Outside the lock: zeroing a large block takes a while. */
    if (rc == 0 && must_zero(m, flags)) {
        rc = m->ops->zero(m, out);
        if (rc != 0) {
            pa_memory_release(m, out);
        }
    }
    return rc;
}

/* Zeros for memory that may be mapped as device memory (uncached on
 * arm64), which faults on the cache-zeroing instruction (`dc zva`) that
 * memset may use: aligned word stores only. */
static void
zero_words(void *p, uint64_t n)
{
    volatile uint64_t *w = p;
    for (uint64_t i = 0; i < n / sizeof(uint64_t); i++) {
        w[i] = 0;
    }
}

int
pa_memory_zero_by_cpu(pa_memory *m, const pa_block *blk)
{
#if defined(__x86_64__) || defined(__i386__)
    const int memset_is_safe = 1;   /* no x86 store faults on any type */
#else
    const int memset_is_safe = blk->cacheable;
#endif
    if (memset_is_safe) {
        memset(blk->cpu, 0, blk->size);
    }
    else {
        zero_words(blk->cpu, blk->size);
    }
    return blk->coherent ? 0 : m->ops->flush(m, blk, 0, blk->size);
}

/* Whether blk can be kept without evicting anything; the lock is held. */
static int
cache_has_room(const pa_memory *m, const pa_block *blk)
{
    return m->cached < CACHE_ENTRIES
           && m->cached_bytes + blk->size <= CACHE_MAX_BYTES;
}

static int
cacheable_block(const pa_memory *m, const pa_block *blk)
{
    return m->ops->reuse_blocks && blk->size <= CACHE_MAX_BLOCK;
}

/* Keeps blk for reuse; the lock is held and there is room. */
static void
cache_append(pa_memory *m, const pa_block *blk)
{
    m->cache[m->cached++] = *blk;
    m->cached_bytes += blk->size;
}

int
pa_memory_try_keep(pa_memory *m, pa_block *blk)
{
    if (!cacheable_block(m, blk) || !owned(blk)) {
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    PA_ASSERT(m->live > 0 && !syncing(m, blk));
    int kept = cache_has_room(m, blk);
    if (kept) {
        m->live--;
        cache_append(m, blk);
    }
    pthread_mutex_unlock(&m->lock);
    if (kept) {
        memset(blk, 0, sizeof(*blk));
    }
    return kept;
}

/* Gives a block nothing maps any more back, or keeps it for reuse; the
 * lock is held and blk is no longer counted live. */
static void
put_back(pa_memory *m, pa_block *blk)
{
    if (!owned(blk)) {
        munmap(blk->map_base, blk->map_length);
        forget_mapping(m, blk);
    }
    else if (cacheable_block(m, blk)) {
        /* Evict the oldest entries until this one fits. */
        int drop = 0;
        uint64_t freed = 0;
        while (drop < m->cached
               && (m->cached - drop == CACHE_ENTRIES
                   || m->cached_bytes - freed + blk->size > CACHE_MAX_BYTES)) {
            freed += m->cache[drop].size;
            m->ops->free(m, &m->cache[drop], 0);
            drop++;
        }
        m->cached -= drop;
        m->cached_bytes -= freed;
        memmove(&m->cache[0], &m->cache[drop],
                (size_t)m->cached * sizeof(pa_block));
        cache_append(m, blk);
    }
    else {
        m->ops->free(m, blk, 0);
    }
}

void
pa_memory_release(pa_memory *m, pa_block *blk)
{
    pthread_mutex_lock(&m->lock);
    PA_ASSERT(m->live > 0 && blk->size != 0 && !syncing(m, blk));
    m->live--;
    put_back(m, blk);
    pthread_mutex_unlock(&m->lock);
    memset(blk, 0, sizeof(*blk));
}

/* Whether blk can be parked without swapping anything; the lock is held. */
static int
parking_has_room(const pa_memory *m, const pa_block *blk)
{
    return m->parked_count < PARKED_ENTRIES
           && m->parked_bytes + blk->size <= CACHE_MAX_BYTES;
}

int
pa_memory_try_park(pa_memory *m, pa_block *blk)
{
    if (!cacheable_block(m, blk) || !owned(blk)) {
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    PA_ASSERT(m->live > 0 && !syncing(m, blk) && !blk->parked);
    int parked = parking_has_room(m, blk);
    if (parked) {
        m->live--;
        blk->parked = 1;
        m->parked[m->parked_count++] = blk;
        m->parked_bytes += blk->size;
    }
    pthread_mutex_unlock(&m->lock);
    return parked;
}

int
pa_memory_retire(pa_memory *m, pa_block *blk)
{
    if (pa_memory_try_park(m, blk)) {
        return 0;
    }
    /* Swap the mapping first: from here on no CPU access reaches the
     * device memory, so giving it back cannot expose it. */
    int rc = pa_map_anonymous_over(blk->map_base, blk->map_length);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    m->live--;
    if (owned(blk)) {
        m->ops->free(m, blk, 1);
    }
    else {
        forget_mapping(m, blk);
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* Takes blk off the parked list if it is still there (1); the lock is
 * held.  It is then a released block that nothing maps. */
static int
unlist_parked(pa_memory *m, pa_block *blk)
{
    for (int i = m->parked_count - 1; i >= 0; i--) {
        if (m->parked[i] == blk) {
            m->parked[i] = m->parked[--m->parked_count];
            m->parked_bytes -= blk->size;
            blk->parked = 0;
            return 1;
        }
    }
    return 0;
}

int
pa_memory_try_keep_retired(pa_memory *m, pa_block *blk)
{
    pthread_mutex_lock(&m->lock);
    int kept = blk->parked && owned(blk) && cache_has_room(m, blk)
               && unlist_parked(m, blk);
    if (kept) {
        cache_append(m, blk);
    }
    pthread_mutex_unlock(&m->lock);
    if (kept) {
        memset(blk, 0, sizeof(*blk));
    }
    return kept;
}

void
pa_memory_unmap_retired(pa_memory *m, pa_block *blk)
{
    if (m != NULL) {
        pthread_mutex_lock(&m->lock);
        if (unlist_parked(m, blk)) {
            put_back(m, blk);   /* as a released block goes */
            pthread_mutex_unlock(&m->lock);
            memset(blk, 0, sizeof(*blk));
            return;
        }
        pthread_mutex_unlock(&m->lock);
    }
    PA_ASSERT(!blk->parked);
    munmap(blk->map_base, blk->map_length);
    memset(blk, 0, sizeof(*blk));
}

static int
span_ok(const pa_block *blk, uint64_t offset, uint64_t len)
{
    return offset <= blk->size && len <= blk->size - offset;
}

int
pa_memory_flush(pa_memory *m, const pa_block *blk, uint64_t offset,
                uint64_t len)
{
    if (!span_ok(blk, offset, len)) {
        return -EINVAL;
    }
    if (blk->coherent || len == 0) {
        pa_cpu_store_barrier();
        return 0;
    }
    int slot = sync_begin(m, blk);
    int rc = m->ops->flush(m, blk, offset, len);
    sync_end(m, slot);
    return rc;
}

int
pa_memory_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
                     uint64_t len)
{
    if (!span_ok(blk, offset, len)) {
        return -EINVAL;
    }
    if (blk->coherent || len == 0) {
        return 0;
    }
    int slot = sync_begin(m, blk);
    int rc = m->ops->invalidate(m, blk, offset, len);
    sync_end(m, slot);
    return rc;
}

static int
overlaps(const pa_block *b, uint64_t addr, uint64_t n)
{
    return addr < b->device_address + b->size
           && b->device_address < addr + n;
}

/* Is any byte of [addr, addr + n) in a released block, kept for reuse or
 * parked? */
static int
touches_released(const pa_memory *m, uint64_t addr, uint64_t n)
{
    for (int i = 0; i < m->cached; i++) {
        if (overlaps(&m->cache[i], addr, n)) {
            return 1;
        }
    }
    for (int i = 0; i < m->parked_count; i++) {
        if (overlaps(m->parked[i], addr, n)) {
            return 1;
        }
    }
    return 0;
}

int
pa_memory_has_device_access(const pa_memory *m)
{
    return m->ops->device_read != NULL;
}

int
pa_memory_device_read(pa_memory *m, uint64_t addr, void *dst, uint64_t n)
{
    if (m->ops->device_read == NULL) {
        return -ENOTSUP;
    }
    if (addr + n < addr) {
        return -EFAULT;
    }
    pthread_mutex_lock(&m->lock);
    int rc = touches_released(m, addr, n)
             ? -EFAULT : m->ops->device_read(m, addr, dst, n);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int
pa_memory_device_write(pa_memory *m, uint64_t addr, const void *src,
                       uint64_t n)
{
    if (m->ops->device_write == NULL) {
        return -ENOTSUP;
    }
    if (addr + n < addr) {
        return -EFAULT;
    }
    pthread_mutex_lock(&m->lock);
    int rc = touches_released(m, addr, n)
             ? -EFAULT : m->ops->device_write(m, addr, src, n);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int
pa_memory_coherence(const pa_memory *m)
{
    return m->ops->coherence != NULL ? m->ops->coherence->mode(m) : -1;
}

uint64_t
pa_memory_line_size(const pa_memory *m)
{
    return m->ops->coherence != NULL ? m->ops->coherence->line_size(m) : 0;
}

/* Whether blk's lines are tracked: a non-coherent block, tracking on. */
static int
tracked(const pa_memory *m, const pa_block *blk)
{
    return !blk->coherent && pa_memory_coherence(m) > PA_COHERENCE_OFF;
}

int
pa_memory_has_device_writes(pa_memory *m, const pa_block *blk)
{
    return tracked(m, blk) ? m->ops->coherence->has_device_writes(m, blk)
                           : 0;
}

uint64_t
pa_memory_check(pa_memory *m, const pa_block *blk, int kind, uint64_t from)
{
    PA_ASSERT(kind == PA_HAZARD_UNFLUSHED || kind == PA_HAZARD_UNINVALIDATED);
    if (!tracked(m, blk) || from >= blk->size) {
        return blk->size;
    }
    return m->ops->coherence->check(m, blk, kind, from);
}

void
pa_memory_stats(pa_memory *m, pa_stats *out)
{
    pthread_mutex_lock(&m->lock);
    drain_cache(m);
    unpark_all(m);
    m->ops->stats(m, out);
    out->buffers = m->live;
    pthread_mutex_unlock(&m->lock);
}

const char *
pa_memory_kind(const pa_memory *m)
{
    return m->ops->kind;
}

int
pa_memory_may_allocate(const pa_memory *m)
{
    return !m->ops->private_heap || m->opener == pa_process_id();
}

int32_t
pa_memory_opener(const pa_memory *m)
{
    return m->opener;
}

void
pa_memory_describe(const pa_memory *m, char *buf, size_t cap)
{
    if (cap == 0) {
        return;
    }
    buf[0] = '\0';
    if (m->ops->describe != NULL) {
        m->ops->describe(m, buf, cap);
    }
}

int
pa_memory_sync_calls_driver(const pa_memory *m)
{
    return m->ops->sync_calls_driver;
}

uint64_t
pa_memory_base_address(const pa_memory *m)
{
    return m->base_address;
}

uint64_t
pa_memory_size(const pa_memory *m)
{
    return m->size;
}

void
pa_memory_close(pa_memory *m)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&registry_lock);
    if (m->prev != NULL) {
        m->prev->next = m->next;
    }
    else {
        open_memories = m->next;
    }
    if (m->next != NULL) {
        m->next->prev = m->prev;
    }
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_lock(&m->lock);
    drain_cache(m);
    unpark_all(m);
    /* Any left had no memory for the swap: they keep their mappings, which
     * pa_memory_unmap_retired(NULL, ...) unmaps. */
    for (int i = 0; i < m->parked_count; i++) {
        m->parked[i]->parked = 0;
    }
    pthread_mutex_unlock(&m->lock);
    m->ops->close(m);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Blocks that are windows of one file (see window.h). */
#include "window.h"

#include <errno.h>
#include <sys/mman.h>

int
pa_window_alloc(const pa_sys *sys, pa_heap *heap, int fd,
                uint64_t region_base, uint64_t size, uint64_t align,
                uint64_t limit, pa_block *blk)
{
    uint64_t addr;
    uint32_t handle;
    int rc = pa_heap_alloc_block(heap, size, align, limit, &addr, &handle);
    if (rc != 0) {
        return rc;
    }
    void *cpu = sys->mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                          (off_t)(addr - region_base));
    if (cpu == MAP_FAILED) {
        rc = pa_mmap_error(errno);
        pa_heap_free_block(heap, handle, addr);
        return rc;
    }
    blk->device_address = addr;
    blk->cpu = cpu;
    blk->size = size;
    blk->map_base = cpu;
    blk->map_length = size;
    blk->handle = handle;           /* frees without an address lookup */
    return 0;
}

void
pa_window_free(const pa_sys *sys, pa_heap *heap, pa_block *blk, int keep_va)
{
    if (!keep_va) {
        sys->munmap(blk->map_base, blk->map_length);
    }
    pa_heap_free_block(heap, (uint32_t)blk->handle, blk->device_address);
}

void
pa_window_stats(const pa_heap *heap, pa_stats *out)
{
    pa_heap_stats hs;
    pa_heap_get_stats(heap, &hs);
    out->total = hs.total;
    out->used = hs.used;
    out->free = hs.free;
    out->largest_free = hs.largest_free;
}

/* The hugepage backend (see hugepage.h). */
#include "hugepage.h"
#include "cache.h"
#include "window.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004u
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000    /* Linux 4.17; older ones ignore it */
#endif
#define HUGE_SHIFT 26               /* MFD_HUGE_SHIFT: log2(size) goes here */
#define PFN_MASK ((1ull << 55) - 1)
#define PAGE_PRESENT (1ull << 63)

/*
 * Physically consecutive huge pages, sub-allocated as one range, and
 * mapped once, at open, in address order ("home"): a block that covers
 * whole huge pages is handed out as a sub-range of that mapping, with no
 * system call.  Blocks that share a huge page with others get a mapping of
 * their own, as freebuffer() must be able to swap a block's mapping for
 * anonymous memory (pa_memory_retire), and hugetlbfs swaps whole pages only.
 * A retired home block leaves its pages "lost" (their home addresses hold
 * the views' anonymous memory); the next whole-page block over them maps
 * them home again where those addresses have become free.
 */
typedef struct run {
    uint64_t pa;                    /* physical address of the first byte */
    uint64_t npages;
    uint64_t first;                 /* its first page in by_address */
    char *home;                     /* the run's mapping, in address order */
    pa_heap *heap;
} run;

typedef struct hp_state {
    const pa_sys *sys;
    int fd;                         /* the hugetlbfs memfd */
    uint64_t page_size;
    uint64_t npages;
    char *all;                      /* the whole memfd, for device access */
    uint32_t *by_address;           /* memfd pages sorted by address */
    uint8_t *at_home;               /* by_address order: mapped at home */
    run *runs;
    uint32_t nruns;
    int coherent;                   /* DMA sees the CPU caches (x86) */
} hp_state;

static hp_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

/* A block's handle: its run and its name in that run's heap. */
static uint64_t
make_handle(uint32_t run_index, uint32_t heap_handle)
{
    return (uint64_t)run_index << 32 | heap_handle;
}

/* The run holding physical address pa, or NULL. */
static run *
run_of(hp_state *s, uint64_t pa)
{
    for (uint32_t i = 0; i < s->nruns; i++) {
        run *r = &s->runs[i];
        if (pa >= r->pa && pa - r->pa < r->npages * s->page_size) {
            return r;
        }
    }
    return NULL;
}

/*
 * Maps pages [first, last] of run r at `at`, in address order, one call
 * per stretch of pages that lie in a row in the memfd.  `flags` adds
 * MAP_FIXED or MAP_FIXED_NOREPLACE.  0 or -errno; on failure the pages
 * mapped so far stay mapped (*done says how many).
 */
static int
map_pages(hp_state *s, const run *r, uint64_t first, uint64_t last, char *at,
          int flags, uint64_t *done)
{
    uint64_t ps = s->page_size;
    const uint32_t *file_page = &s->by_address[r->first];
    *done = 0;
    for (uint64_t k = first; k <= last;) {
        uint64_t n = 1;
        while (k + n <= last && file_page[k + n] == file_page[k] + n) {
            n++;
        }
        char *want = at + (k - first) * ps;
        void *p = s->sys->mmap(want, n * ps, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_POPULATE | flags, s->fd,
                               (off_t)(file_page[k] * ps));
        if (p == MAP_FAILED) {
            return -errno;
        }
        if (p != want) {            /* a kernel that ignores NOREPLACE */
            s->sys->munmap(p, n * ps);
            return -EEXIST;
        }
        k += n;
        *done += n;
    }
    return 0;
}

/* An anonymous reservation of `length` bytes at a huge-page-aligned
 * address, to map pages over; NULL with errno set if there is no room. */
static char *
reserve_aligned(hp_state *s, uint64_t length)
{
    uint64_t ps = s->page_size;
    char *area = s->sys->mmap(NULL, length + ps, PROT_NONE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                              -1, 0);
    if (area == MAP_FAILED) {
        return NULL;
    }
    uintptr_t page_mask = (uintptr_t)ps - 1;
    char *base = (char *)(((uintptr_t)area + page_mask) & ~page_mask);
    if (base > area) {
        s->sys->munmap(area, (size_t)(base - area));
    }
    if (base + length < area + length + ps) {
        s->sys->munmap(base + length, (size_t)(area + length + ps
                                               - (base + length)));
    }
    return base;
}

/*
 * Whole-page blocks: the home mapping, after mapping lost pages home again
 * where their addresses are free (MAP_FIXED_NOREPLACE never replaces
 * anything).  1 if the block can use it, else 0.
 */
static int
use_home(hp_state *s, const run *r, uint64_t first, uint64_t last)
{
    uint64_t ps = s->page_size;
    int all_home = 1;
    for (uint64_t k = first; k <= last; k++) {
        uint8_t *home = &s->at_home[r->first + k];
        uint64_t done;
        if (!*home) {
            *home = map_pages(s, r, k, k, r->home + k * ps,
                              MAP_FIXED_NOREPLACE, &done) == 0;
            all_home &= *home;
        }
    }
    return all_home;
}

/* A mapping of the block's own: pages [first, last] of run r. */
static int
map_private(hp_state *s, const run *r, uint64_t first, uint64_t last,
            char **base)
{
    uint64_t length = (last - first + 1) * s->page_size, done;
    char *at = reserve_aligned(s, length);
    if (at == NULL) {
        return pa_mmap_error(errno);
    }
    int rc = map_pages(s, r, first, last, at, MAP_FIXED, &done);
    if (rc != 0) {
        s->sys->munmap(at, length);
        return rc == -ENOMEM ? -PA_ENOMAP : rc;
    }
    *base = at;
    return 0;
}

/* Takes [*addr, +size) from the first run that has room: 0 or -ENOMEM. */
static int
take(hp_state *s, uint64_t size, uint64_t align, uint64_t limit,
     uint32_t *run_index, uint64_t *addr, uint32_t *handle)
{
    for (uint32_t i = 0; i < s->nruns; i++) {
        if (pa_heap_alloc_block(s->runs[i].heap, size, align, limit, addr,
                                handle) == 0) {
            *run_index = i;
            return 0;
        }
    }
    return -ENOMEM;
}

/* Every block is mapped cached, as user space cannot map huge pages
 * uncached; that serves an uncached request only where DMA is coherent. */
static int
hp_cacheable_as(const pa_memory *m, int cacheable)
{
    const hp_state *s = pa_memory_state(m);
    return cacheable || s->coherent ? 1 : -ENOTSUP;
}

static int
hp_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
         int cacheable, pa_block *blk)
{
    hp_state *s = state_of(m);
    int as = hp_cacheable_as(m, cacheable);
    if (as < 0) {
        return as;
    }
    uint64_t addr = 0, ps = s->page_size;
    uint32_t ri = 0, handle = 0;
    /* A block of whole pages goes on a page boundary where there is room,
     * so that it can use the home mapping. */
    int whole = size % ps == 0
                && take(s, size, align > ps ? align : ps, limit, &ri, &addr,
                        &handle) == 0;
    if (!whole && take(s, size, align, limit, &ri, &addr, &handle) != 0) {
        return -ENOMEM;
    }
    run *r = &s->runs[ri];
    uint64_t first = (addr - r->pa) / ps, last = (addr + size - 1 - r->pa) / ps;
    char *base = r->home + first * ps;
    if (!(whole && use_home(s, r, first, last))) {
        int rc = map_private(s, r, first, last, &base);
        if (rc != 0) {
            pa_heap_free_block(r->heap, handle, addr);
            return rc;
        }
    }
    blk->device_address = addr;
    blk->cpu = base + (addr - r->pa - first * ps);
    blk->size = size;
    blk->map_base = base;
    blk->map_length = (last - first + 1) * ps;
    blk->handle = make_handle(ri, handle);
    blk->cacheable = (uint8_t)as;
    blk->coherent = (uint8_t)s->coherent;
    return 0;
}

/* Whether blk is handed out from run r's home mapping (its first page
 * is `first`). */
static int
is_home_block(const hp_state *s, const run *r, uint64_t first,
              const pa_block *blk)
{
    return (char *)blk->map_base == r->home + first * s->page_size
           && blk->size == blk->map_length
           && blk->cpu == blk->map_base;
}

static void
hp_free(pa_memory *m, pa_block *blk, int keep_va)
{
    hp_state *s = state_of(m);
    run *r = &s->runs[blk->handle >> 32];
    uint64_t ps = s->page_size, first = (blk->device_address - r->pa) / ps;
    if (is_home_block(s, r, first, blk)) {
        /* Retired: the views' anonymous memory holds the home addresses.
         * Otherwise the pages stay mapped there (a block of its own that
         * the kernel happened to place at home leaves them home too). */
        memset(&s->at_home[r->first + first], !keep_va, blk->size / ps);
    }
    else if (!keep_va) {
        s->sys->munmap(blk->map_base, blk->map_length);
    }
    pa_heap_free_block(r->heap, (uint32_t)blk->handle, blk->device_address);
}

/* A forked child's home block is gone from its home addresses: its
 * pages are lost to this process, and closing leaves alone whatever the
 * child has mapped there since. */
static void
hp_forget_mapping(pa_memory *m, const pa_block *blk)
{
    hp_state *s = state_of(m);
    run *r = &s->runs[blk->handle >> 32];
    uint64_t ps = s->page_size, first = (blk->device_address - r->pa) / ps;
    if (is_home_block(s, r, first, blk)) {
        memset(&s->at_home[r->first + first], 0, blk->size / ps);
    }
}

static int
hp_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    (void)m;
    return pa_cpu_flush((char *)blk->cpu + offset, len);
}

static int
hp_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
              uint64_t len)
{
    (void)m;
    return pa_cpu_invalidate((char *)blk->cpu + offset, len);
}

/*
 * Copies between buf and physical [addr, addr + n), which must lie inside
 * one allocated block, through the pool's own mapping, page by page.
 */
static int
hp_device_copy(pa_memory *m, uint64_t addr, void *buf, uint64_t n,
               int to_memory)
{
    hp_state *s = state_of(m);
    run *r = run_of(s, addr);
    uint64_t start, size;
    if (r == NULL || pa_heap_find(r->heap, addr, &start, &size) != 0
            || n > size - (addr - start)) {
        return -EFAULT;
    }
    char *p = buf;
    while (n > 0) {
        uint64_t k = (addr - r->pa) / s->page_size;
        uint64_t within = (addr - r->pa) % s->page_size;
        uint64_t chunk = s->page_size - within < n ? s->page_size - within
                                                   : n;
        char *mem = s->all + s->by_address[r->first + k] * s->page_size
                    + within;
        memcpy(to_memory ? mem : p, to_memory ? p : mem, chunk);
        addr += chunk;
        p += chunk;
        n -= chunk;
    }
    return 0;
}

static int
hp_device_read(pa_memory *m, uint64_t addr, void *dst, uint64_t n)
{
    return hp_device_copy(m, addr, dst, n, 0);
}

/* A source in the pool itself (a view of a buffer) is copied as memmove
 * copies: read whole before anything is written.  Every mapping of a
 * block maps the pool, at addresses the backend does not all keep (a
 * block that shares a huge page maps its own), so every source goes
 * through a copy of its own: the device side is a test aid, where being
 * right matters more than one more memcpy. */
static int
hp_device_write(pa_memory *m, uint64_t addr, const void *src, uint64_t n)
{
    void *bounce = malloc(n > 0 ? n : 1);
    if (bounce == NULL) {
        return -ENOMEM;
    }
    memcpy(bounce, src, n);
    int rc = hp_device_copy(m, addr, bounce, n, 1);
    free(bounce);
    return rc;
}

static void
hp_stats(pa_memory *m, pa_stats *out)
{
    hp_state *s = state_of(m);
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < s->nruns; i++) {
        pa_stats part;
        pa_window_stats(s->runs[i].heap, &part);
        out->total += part.total;
        out->used += part.used;
        out->free += part.free;
        if (part.largest_free > out->largest_free) {
            out->largest_free = part.largest_free;
        }
    }
}

/* Unmaps what is at home of run r: never the addresses of lost pages,
 * which retired blocks' views may still hold. */
static void
unmap_home(hp_state *s, const run *r)
{
    uint64_t ps = s->page_size;
    for (uint64_t k = 0; k < r->npages;) {
        uint64_t n = 0;
        while (k + n < r->npages && s->at_home[r->first + k + n]) {
            n++;
        }
        if (n > 0) {
            s->sys->munmap(r->home + k * ps, n * ps);
        }
        k += n + (n == 0);
    }
}

static void
hp_destroy(hp_state *s)
{
    for (uint32_t i = 0; s->runs != NULL && i < s->nruns; i++) {
        pa_heap_destroy(s->runs[i].heap);
        if (s->runs[i].home != NULL) {
            unmap_home(s, &s->runs[i]);
        }
    }
    if (s->all != NULL && s->all != MAP_FAILED) {
        s->sys->munmap(s->all, s->npages * s->page_size);
    }
    if (s->fd >= 0) {
        s->sys->close(s->fd);
    }
    free(s->runs);
    free(s->by_address);
    free(s->at_home);
    free(s);
}

static void
hp_close(pa_memory *m)
{
    hp_destroy(state_of(m));
}

static const pa_backend_ops hugepage_ops = {
    .kind = "hugepage",
    .reuse_blocks = 1,      /* a fixed pool: reuse holds nothing extra */
    .sync_calls_driver = 0,
    .private_heap = 1,
    .alloc = hp_alloc,
    .cacheable_as = hp_cacheable_as,
    .zero = pa_memory_zero_by_cpu,
    .free = hp_free,
    .forget_mapping = hp_forget_mapping,
    .flush = hp_flush,
    .invalidate = hp_invalidate,
    .device_read = hp_device_read,
    .device_write = hp_device_write,
    .stats = hp_stats,
    .close = hp_close,
};

/* A huge page count from the sysfs file `name` of dir: 0 or -errno. */
static int
read_count(const pa_sys *sys, const char *dir, const char *name,
           uint64_t *count)
{
    char path[PATH_MAX + 32], text[32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int rc = pa_sys_read_text(sys, path, text, sizeof(text));
    if (rc == 0) {
        *count = strtoull(text, NULL, 10);
    }
    return rc;
}

/* Writes nr_hugepages (retried if a signal interrupts it): 0 or -errno. */
static int
write_nr_hugepages(const pa_sys *sys, const char *dir, uint64_t count)
{
    char path[PATH_MAX + 32], text[32];
    snprintf(path, sizeof(path), "%s/nr_hugepages", dir);
    snprintf(text, sizeof(text), "%" PRIu64 "\n", count);   /* as echo */
    int rc;
    do {
        rc = pa_sys_write_text(sys, path, text);
    } while (rc == -EINTR);
    return rc;
}

/*
 * The lock that orders, between processes, what raises nr_hugepages and
 * takes free huge pages: without it, another process could take the pages
 * raised for this one, or put nr_hugepages back over this one's raise.
 * It is a flock on the page size's directory, which every process names
 * the same.  The fd, or -1 if it cannot be had: opening goes on unlocked.
 */
static int
lock_pages(const pa_sys *sys, const char *dir)
{
    int fd = sys->open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return -1;
    }
    while (sys->flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            sys->close(fd);
            return -1;
        }
    }
    return fd;
}

static void
unlock_pages(const pa_sys *sys, int fd)
{
    if (fd >= 0) {
        /* Released now, even if a thread forked a child that holds fd. */
        sys->flock(fd, LOCK_UN);
        sys->close(fd);
    }
}

/* How many huge pages are free and not reserved by others, into r. */
static void
count_available(const pa_sys *sys, const char *dir, pa_hugepage_report *r)
{
    uint64_t free_pages, reserved;
    if (read_count(sys, dir, "free_hugepages", &free_pages) == 0
            && read_count(sys, dir, "resv_hugepages", &reserved) == 0) {
        r->available = free_pages > reserved ? free_pages - reserved : 0;
    }
}

/*
 * Makes r->needed huge pages free, if r->available are too few, by
 * raising nr_hugepages by the shortfall.  nr_hugepages counts surplus
 * pages, and a raise first makes them persistent: the shortfall comes on
 * top of the whole count.  Returns 1 with *persistent set to the count
 * without surplus pages, which put_back() restores once the pool has its
 * pages; 0 if nothing was raised.
 */
static int
raise_pages(const pa_sys *sys, const char *dir, pa_hugepage_report *r,
            uint64_t *persistent)
{
    uint64_t total, surplus, now;
    if (r->available >= r->needed
            || read_count(sys, dir, "nr_hugepages", &total) != 0
            || read_count(sys, dir, "surplus_hugepages", &surplus) != 0
            || write_nr_hugepages(sys, dir,
                                  total + r->needed - r->available) != 0) {
        return 0;
    }
    r->asked = r->needed - r->available;
    if (read_count(sys, dir, "nr_hugepages", &now) == 0 && now > total) {
        r->taken = now - total;
    }
    *persistent = total > surplus ? total - surplus : 0;
    return 1;
}

/*
 * Puts nr_hugepages back to its persistent count.  The kernel frees free
 * pages first, and then makes pages in use surplus ones: those of this
 * pool, which it frees when they are unmapped.  (A process killed between
 * raise and put-back leaves the raise: the window is the pool's mapping.)
 */
static void
put_back(const pa_sys *sys, const char *dir, uint64_t persistent,
         pa_hugepage_report *r)
{
    r->put_back = write_nr_hugepages(sys, dir, persistent);
}

typedef struct page_pa {
    uint64_t pa;
    uint32_t file_page;
} page_pa;

static int
by_pa(const void *a, const void *b)
{
    uint64_t x = ((const page_pa *)a)->pa, y = ((const page_pa *)b)->pa;
    return (x > y) - (x < y);
}

/* Reads each huge page's physical address from pagemap into pages[]. */
static int
read_addresses(hp_state *s, const char *pagemap, page_pa *pages)
{
    int fd = s->sys->open(pagemap, O_RDONLY);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    for (uint64_t i = 0; i < s->npages && rc == 0; i++) {
        char *va = s->all + i * s->page_size;
        uint64_t entry;
        *(volatile char *)va = 0;   /* present before its entry is read */
        off_t at = (off_t)((uintptr_t)va / 4096 * 8);
        ssize_t n = s->sys->pread(fd, &entry, 8, at);
        if (n != 8) {
            rc = n < 0 ? -errno : -EIO;
        }
        else if (!(entry & PAGE_PRESENT) || (entry & PFN_MASK) == 0) {
            rc = -EPERM;            /* pagemap hides PFNs without the cap */
        }
        else {
            pages[i] = (page_pa){(entry & PFN_MASK) * 4096, (uint32_t)i};
            if (pages[i].pa % s->page_size != 0) {
                rc = -EIO;          /* not a huge page after all */
            }
        }
    }
    s->sys->close(fd);
    return rc;
}

/* Groups address-sorted pages into runs of consecutive ones, each with
 * its heap and its home mapping. */
static int
make_runs(hp_state *s, const page_pa *pages)
{
    s->runs = calloc(s->npages, sizeof(run));
    s->by_address = malloc(s->npages * sizeof(uint32_t));
    s->at_home = calloc(s->npages, 1);
    if (s->runs == NULL || s->by_address == NULL || s->at_home == NULL) {
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < s->npages; i++) {
        s->by_address[i] = pages[i].file_page;
        if (i == 0 || pages[i].pa != pages[i - 1].pa + s->page_size) {
            s->runs[s->nruns++] = (run){pages[i].pa, 0, i, NULL, NULL};
        }
        s->runs[s->nruns - 1].npages++;
    }
    for (uint32_t i = 0; i < s->nruns; i++) {
        run *r = &s->runs[i];
        uint64_t length = r->npages * s->page_size, done;
        int rc = pa_heap_create(r->pa, length, pa_page_size(), &r->heap);
        if (rc != 0) {
            return rc;
        }
        if ((r->home = reserve_aligned(s, length)) == NULL) {
            return -errno;
        }
        rc = map_pages(s, r, 0, r->npages - 1, r->home, MAP_FIXED, &done);
        if (rc != 0) {
            s->sys->munmap(r->home, length);
            r->home = NULL;
            return rc;
        }
        memset(&s->at_home[r->first], 1, r->npages);
    }
    return 0;
}

/* Creates the memfd of s->npages huge pages and maps all of them, which
 * takes every page now (MAP_POPULATE), or fails if there are too few. */
static int
take_pages(hp_state *s, const char *dir, char *err_path, size_t err_cap)
{
    const pa_sys *sys = s->sys;
    unsigned log2_size = s->page_size == (1ull << 30) ? 30 : 21;
    uint64_t length = s->npages * s->page_size;
    s->fd = sys->memfd_create("pynq_alloc-hugepage",
                              MFD_HUGETLB | (log2_size << HUGE_SHIFT));
    int rc = 0;
    if (s->fd < 0 || sys->ftruncate(s->fd, (off_t)length)) {
        rc = -errno;
    }
    else if ((s->all = sys->mmap(NULL, length, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_POPULATE, s->fd, 0))
             == MAP_FAILED) {
        rc = errno == ENOMEM || errno == EINVAL ? -ENOMEM : -errno;
    }
    if (rc != 0) {
        snprintf(err_path, err_cap, "%s/nr_hugepages", dir);
    }
    return rc;
}

int
pa_hugepage_open(const pa_sys *sys, uint64_t size, uint64_t page_size,
                 const char *hugepages_dir, const char *pagemap, int reserve,
                 pa_memory **out, pa_hugepage_report *report, char *err_path,
                 size_t err_cap)
{
    pa_hugepage_report unused;
    if (report == NULL) {
        report = &unused;
    }
    memset(report, 0, sizeof(*report));
    if (sys == NULL) {
        sys = &pa_sys_real;
    }
    if ((page_size != (2ull << 20) && page_size != (1ull << 30))
            || size == 0 || size > (1ull << 46)) {
        return -EINVAL;
    }
    if (!pa_cpu_dma_coherent() && pa_cpu_flush(NULL, 0) == -ENOTSUP) {
        return -ENOTSUP;    /* armv7: only a driver reaches the L2 */
    }
    hp_state *s = calloc(1, sizeof(*s));
    page_pa *pages = NULL;
    if (s == NULL) {
        return -ENOMEM;
    }
    s->sys = sys;
    s->page_size = page_size;
    s->npages = (size + page_size - 1) / page_size;
    s->coherent = pa_cpu_dma_coherent();
    s->fd = -1;
    report->needed = s->npages;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/hugepages-%" PRIu64 "kB", hugepages_dir,
             page_size >> 10);
    uint64_t persistent = 0;
    int lock = lock_pages(sys, dir);
    count_available(sys, dir, report);
    int raised = reserve && raise_pages(sys, dir, report, &persistent);
    int rc = take_pages(s, dir, err_path, err_cap);
    if (raised) {
        put_back(sys, dir, persistent, report);
    }
    unlock_pages(sys, lock);
    if (rc != 0) {
        goto fail;
    }
    pages = malloc(s->npages * sizeof(page_pa));
    if (pages == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = read_addresses(s, pagemap, pages)) != 0) {
        snprintf(err_path, err_cap, "%s", pagemap);
        goto fail;
    }
    qsort(pages, s->npages, sizeof(page_pa), by_pa);
    if ((rc = make_runs(s, pages)) != 0
            || (rc = pa_memory_create(&hugepage_ops, s, pages[0].pa,
                                      s->npages * page_size, out)) != 0) {
        goto fail;
    }
    free(pages);
    return 0;
fail:
    free(pages);
    hp_destroy(s);
    return rc;
}

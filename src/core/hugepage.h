/*
 * Hugepages, DPDK style: physically contiguous memory on any Linux machine,
 * run as root.  A hugetlbfs memfd holds the pool; /proc/self/pagemap gives
 * each huge page's physical address; pages that happen to be physically
 * consecutive form runs, and each run is sub-allocated on its own, so no
 * block crosses a break.  One huge page is always contiguous; larger blocks
 * need a run (1 GiB pages give 1 GiB runs).
 */
#ifndef PA_HUGEPAGE_H
#define PA_HUGEPAGE_H

#include "memory.h"
#include "sys.h"

/*
 * What opening did to the system's huge pages.  `needed`: the pool's
 * pages; `available`: how many were free and not reserved by others;
 * `asked`: how many more it asked the kernel for (raising nr_hugepages),
 * `taken`: how many of those the kernel found.  `put_back`: 0, or -errno
 * if nr_hugepages could not be put back (it then stays raised by `taken`).
 */
typedef struct pa_hugepage_report {
    uint64_t needed, available, asked, taken;
    int put_back;
} pa_hugepage_report;

/*
 * Opens a pool of `size` bytes (rounded up to whole pages) of huge pages
 * of `page_size` (2 MiB or 1 GiB), under `hugepages_dir` (normally
 * /sys/kernel/mm/hugepages).  With `reserve`, too few free huge pages are
 * made up from system memory (root only): nr_hugepages is raised by the
 * shortfall while the pool takes its pages, then put back, which leaves
 * the pages in use as surplus pages that the kernel frees when nothing
 * maps them any more (the memory closed, its process ended however, its
 * forked children gone).  So the system's setting is never left changed
 * and nothing outlives the pool.  Other processes opening pools at once
 * wait for each other (a lock on the page size's directory).  `pagemap` is
 * normally /proc/self/pagemap.  -EPERM when pagemap hides physical
 * addresses (no CAP_SYS_ADMIN), -ENOMEM when the huge pages cannot be had,
 * -ENOTSUP on CPUs whose caches user space cannot maintain (armv7).
 * `report` (may be NULL) says what was taken.  On failure the path
 * involved is copied into err_path.
 */
int pa_hugepage_open(const pa_sys *sys, uint64_t size, uint64_t page_size,
                     const char *hugepages_dir, const char *pagemap,
                     int reserve, pa_memory **out, pa_hugepage_report *report,
                     char *err_path, size_t err_cap);

#endif

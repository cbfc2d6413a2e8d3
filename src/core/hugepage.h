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
 * Opens a pool of `size` bytes (rounded up to whole pages) of huge pages
 * of `page_size` (2 MiB or 1 GiB).  With `reserve`, too few free huge pages
 * are made up by raising nr_hugepages under `hugepages_dir` (normally
 * /sys/kernel/mm/hugepages; it needs root).  `pagemap` is normally
 * /proc/self/pagemap.  -EPERM when pagemap hides physical addresses (no
 * CAP_SYS_ADMIN), -ENOMEM when the huge pages cannot be had, -ENOTSUP on
 * CPUs whose caches user space cannot maintain (armv7).  On failure the
 * path involved is copied into err_path.
 */
int pa_hugepage_open(const pa_sys *sys, uint64_t size, uint64_t page_size,
                     const char *hugepages_dir, const char *pagemap,
                     int reserve, pa_memory **out, char *err_path,
                     size_t err_cap);

#endif

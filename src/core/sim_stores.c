/* Seeing the CPU's stores (see sim_stores.h). */
#include "sim_stores.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's interface, spelled out here: the C library's headers of
 * Debian 12 and of the boards' images predate parts of it (Linux 5.7 for
 * write protection, 6.7 for the asynchronous kind and PAGEMAP_SCAN). */
#define PA_UFFD_USER_MODE_ONLY 1
#define PA_UFFD_FEATURE_WP_HUGETLBFS_SHMEM ((uint64_t)1 << 12)
#define PA_UFFD_FEATURE_WP_UNPOPULATED ((uint64_t)1 << 13)
#define PA_UFFD_FEATURE_WP_ASYNC ((uint64_t)1 << 15)
#define PA_UFFDIO_REGISTER_MODE_WP ((uint64_t)1 << 1)
#define PA_UFFDIO_WRITEPROTECT_MODE_WP ((uint64_t)1 << 0)

struct pa_uffdio_writeprotect {
    struct uffdio_range range;
    uint64_t mode;
};
#define PA_UFFDIO_WRITEPROTECT \
    _IOWR(UFFDIO, 0x06, struct pa_uffdio_writeprotect)

struct pa_page_region {
    uint64_t start, end, categories;
};

struct pa_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask;
    uint64_t return_mask;
};
#define PA_PAGEMAP_SCAN _IOWR('f', 16, struct pa_pm_scan_arg)
#define PA_PAGE_IS_WRITTEN ((uint64_t)1 << 1)
#define PA_PM_SCAN_WP_MATCHING ((uint64_t)1 << 0)
#define PA_PM_SCAN_CHECK_WPASYNC ((uint64_t)1 << 1)

static const uint64_t needed = PA_UFFD_FEATURE_WP_ASYNC
                               | PA_UFFD_FEATURE_WP_UNPOPULATED
                               | PA_UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

/* A userfaultfd, or -errno.  User-mode faults only where the kernel has
 * that (5.11): it needs no privilege where vm.unprivileged_userfaultfd is
 * 0, and asynchronous protection is lifted by the kernel for its own
 * writes too. */
static int
new_uffd(void)
{
    long fd = syscall(SYS_userfaultfd,
                      O_CLOEXEC | O_NONBLOCK | PA_UFFD_USER_MODE_ONLY);
    if (fd < 0 && errno == EINVAL) {
        fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    }
    return fd < 0 ? -errno : (int)fd;
}

int
sim_stores_open(sim_stores *w, const pa_sys *sys)
{
    *w = (sim_stores){.sys = sys, .uffd = -1, .pagemap = -1,
                      .owner = getpid()};
    int fd = new_uffd();
    if (fd < 0) {
        return fd == -EACCES ? -EPERM : fd;
    }
    w->uffd = fd;
    struct uffdio_api api = {.api = UFFD_API, .features = needed};
    if (pa_sys_ioctl(sys, w->uffd, UFFDIO_API, &api) != 0) {
        int rc = errno == EINVAL ? -EOPNOTSUPP : -errno;
        sim_stores_close(w);
        return rc;
    }
    w->pagemap = sys->open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (w->pagemap < 0) {
        int rc = -errno;
        sim_stores_close(w);
        return rc;
    }
    return 0;
}

void
sim_stores_close(sim_stores *w)
{
    if (w->uffd >= 0) {
        w->sys->close(w->uffd);
    }
    if (w->pagemap >= 0) {
        w->sys->close(w->pagemap);
    }
    w->uffd = w->pagemap = -1;
}

int
sim_stores_here(const sim_stores *w)
{
    return w->uffd >= 0 && getpid() == w->owner;
}

int
sim_stores_watch(sim_stores *w, void *addr, uint64_t len)
{
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = PA_UFFDIO_REGISTER_MODE_WP};
    if (pa_sys_ioctl(w->sys, w->uffd, UFFDIO_REGISTER, &reg) != 0) {
        return -errno;
    }
    struct pa_uffdio_writeprotect wp = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = PA_UFFDIO_WRITEPROTECT_MODE_WP};
    return pa_sys_ioctl(w->sys, w->uffd, PA_UFFDIO_WRITEPROTECT, &wp) == 0
           ? 0 : -errno;
}

int
sim_stores_take(sim_stores *w, void *addr, uint64_t len,
                void (*found)(void *arg, uint64_t lo, uint64_t hi),
                void *arg)
{
    struct pa_page_region runs[32];
    uint64_t base = (uintptr_t)addr, at = base, end = base + len;
    while (at < end) {
        struct pa_pm_scan_arg scan = {
            .size = sizeof(scan),
            .flags = PA_PM_SCAN_WP_MATCHING | PA_PM_SCAN_CHECK_WPASYNC,
            .start = at, .end = end,
            .vec = (uintptr_t)runs, .vec_len = sizeof(runs) / sizeof(runs[0]),
            .category_mask = PA_PAGE_IS_WRITTEN,
            .return_mask = PA_PAGE_IS_WRITTEN};
        /* Not pa_sys_ioctl: a count above 0 is success here. */
        int n;
        do {
            n = w->sys->ioctl(w->pagemap, PA_PAGEMAP_SCAN, &scan);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            return -errno;
        }
        for (int i = 0; found != NULL && i < n; i++) {
            found(arg, runs[i].start - base, runs[i].end - base);
        }
        /* walk_end is where it stopped: the end, or a full vec. */
        at = scan.walk_end > at ? scan.walk_end : end;
    }
    return 0;
}

/*
 * Seeing the CPU's stores to a mapping, not only the bytes they change:
 * the sim's watch_stores option (see sim.h and sim_lines.c).
 *
 * Each watched mapping is write-protected with userfaultfd's asynchronous
 * write protection (Linux 6.7): the first store to a protected page faults,
 * and the kernel itself lifts the protection and marks the page written,
 * with no thread of ours to wake.  PAGEMAP_SCAN on /proc/self/pagemap then
 * lists the written pages of a range and protects them again, in one call.
 * A store of the value already there is seen like any other, a page at a
 * time; writes through another mapping of the same memory (the sim's own
 * copies) are not stores to the watched one.
 *
 * The protection is this process's: a forked child's stores are not seen
 * (its mappings are not registered), and a child never takes.
 */
#ifndef PA_SIM_STORES_H
#define PA_SIM_STORES_H

#include "sys.h"

#include <stdint.h>
#include <sys/types.h>

typedef struct sim_stores {
    const pa_sys *sys;
    int uffd;               /* the userfaultfd; -1 when not watching */
    int pagemap;            /* /proc/self/pagemap; -1 when not watching */
    pid_t owner;            /* the process whose mappings are watched */
} sim_stores;

/* Opens what watching needs.  0, or -errno: -ENOSYS without userfaultfd,
 * -EPERM where this process may not use it, -EOPNOTSUPP where the kernel
 * lacks asynchronous write protection of shared memory or PAGEMAP_SCAN
 * (before Linux 6.7).  w is then closed; sim_stores_close may be called on
 * it either way. */
int sim_stores_open(sim_stores *w, const pa_sys *sys);
void sim_stores_close(sim_stores *w);

/* Whether the calling process is the one whose stores are seen. */
int sim_stores_here(const sim_stores *w);

/* Watches [addr, addr + len) (whole pages of a shared mapping), every page
 * of it protected: no store seen yet.  0 or -errno. */
int sim_stores_watch(sim_stores *w, void *addr, uint64_t len);

/* Calls found(arg, lo, hi) for each run [lo, hi) of pages of the watched
 * [addr, addr + len) (whole pages) stored to since they were last taken or
 * watched, lo and hi as offsets from addr, and protects them again;
 * found NULL forgets them.  0 or -errno. */
int sim_stores_take(sim_stores *w, void *addr, uint64_t len,
                    void (*found)(void *arg, uint64_t lo, uint64_t hi),
                    void *arg);

#endif

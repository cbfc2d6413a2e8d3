/*
 * The simulated memory's line model (see sim.h), private to the sim: how
 * flush, invalidate and the device's accesses move bytes between the
 * pool's two copies, the CPU's cache copy and the device's, and what they
 * record as hazards (hazard.h).  sim.c owns the pool and its heap; this
 * file owns the model's bitmaps, its shadow copy and its lock.
 *
 * Everything the model keeps about the pool is shared memory, as the pool
 * is, so that a forked child that acts as the device or the CPU changes
 * the parent's model too; the lock is process-shared and robust (a
 * process that dies holding it leaves it to the next taker).
 *
 * Offsets are into the pool.  The model moves the bytes in every mode, so
 * that every mode gives a program the same data; with PA_COHERENCE_OFF it
 * records no hazards.
 */
#ifndef PA_SIM_LINES_H
#define PA_SIM_LINES_H

#include "hazard.h"
#include "memory.h"
#include "sim_stores.h"
#include "sys.h"

#include <pthread.h>
#include <stdint.h>

typedef struct sim_lines {
    const pa_sys *sys;      /* NULL until sim_lines_init */
    uint64_t base;          /* device address of the pool */
    uint64_t size;          /* bytes in the pool */
    uint8_t *device;        /* the pool as the device sees it (sim.c's) */
    uint8_t *cache;         /* the CPU's cached copy of it (sim.c's) */
    int mode;               /* PA_COHERENCE_* */
    uint64_t line;          /* bytes per cache line */
    int shadow_fd;
    uint8_t *shadow;        /* what the CPU last synced of lines that the
                               device has written since (sparse) */
    uint64_t *written;      /* a bit per line: the device wrote it since
                               the CPU last synced it; read only where
                               the line's page bit in written_pages is on */
    uint64_t *written_pages;/* a bit per page: off, none of its lines is
                               device-written, whatever `written` holds */
    uint64_t *cached_pages; /* a bit per page: in a cacheable block */
    uint64_t lines_per_page;
    pthread_mutex_t *lock;  /* the model's bits and copies, and the
                               device's accesses: in shared memory, held
                               across processes; NULL until made */
    /* With watch_stores only, else NULL (sim_stores.h): */
    sim_stores stores;
    uint64_t *stored;       /* a bit per page: the CPU stored somewhere in
                               it and synced none of it since (shared) */
    uintptr_t *windows;     /* per pool page, this process's address of
                               the cacheable block that starts there */
} sim_lines;

/* A sparse file of `size` bytes (a memfd named `name`) mapped shared
 * read-write: a copy of the pool.  0 or -errno; *fd and *map are set as
 * far as they were made, for the caller to undo. */
int sim_pool_map(const pa_sys *sys, const char *name, uint64_t size,
                 int *fd, uint8_t **map);

/* Sets up the model of a pool of `size` bytes at device address base
 * whose two copies are device and cache; line is valid (sim.h); watch:
 * see the CPU's stores to cacheable blocks (sim_stores.h).  0 or -errno
 * (sim_stores_open's where watching cannot be had); sim_lines_destroy
 * then undoes what was made.  A zeroed sim_lines that was never
 * initialised may be destroyed too. */
int sim_lines_init(sim_lines *l, const pa_sys *sys, uint64_t base,
                   uint64_t size, uint8_t *device, uint8_t *cache,
                   uint64_t line, int mode, int watch);
void sim_lines_destroy(sim_lines *l);

/* Take and give back the model's lock (as every function below does).  A
 * holder that died leaves the model as far as it got: a line it was
 * marking may be reported wrongly, never a byte of the pool changed. */
void sim_lines_lock(sim_lines *l);
void sim_lines_unlock(sim_lines *l);

/* Whether hazards are recorded (the mode is not PA_COHERENCE_OFF). */
static inline int
sim_lines_tracking(const sim_lines *l)
{
    return l->mode != PA_COHERENCE_OFF;
}

/* The block at [at, at + size) was allocated, cacheable or not, and
 * this process maps it at cpu.  0, or -errno if its stores cannot be
 * watched. */
int sim_lines_allocated(sim_lines *l, uint64_t at, uint64_t size,
                        int cacheable, void *cpu);

/* Both copies of the cacheable block at [at, at + size) were zeroed: it
 * starts clean. */
void sim_lines_zeroed(sim_lines *l, uint64_t at, uint64_t size);

/* Cache maintenance of [at, at + len) of cacheable block blk. */
void sim_lines_flush(sim_lines *l, const pa_block *blk, uint64_t at,
                     uint64_t len);
void sim_lines_invalidate(sim_lines *l, const pa_block *blk, uint64_t at,
                          uint64_t len);

/* The device reads [at, at + n) of blk (the block that holds it) into
 * out, or writes it from in (out NULL); hazards of a cacheable block's
 * lines are recorded first. */
void sim_lines_device_io(sim_lines *l, const pa_block *blk, uint64_t at,
                         uint64_t n, void *out, const void *in);

/* pa_memory_has_device_writes and pa_memory_check of the model: for
 * cacheable blocks with tracking on (memory.c sees to it). */
int sim_lines_has_device_writes(sim_lines *l, const pa_block *blk);
uint64_t sim_lines_check(sim_lines *l, const pa_block *blk, int kind,
                         uint64_t from);

#endif

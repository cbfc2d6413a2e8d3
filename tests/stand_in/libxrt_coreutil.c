/*
 * A stand-in for XRT's libxrt_coreutil.so, built by the test suite: the C
 * functions pynq_alloc uses, over a simulated PCIe card whose memory is
 * separate from the host's.
 *
 * - The card's memory is the file PA_FAKE_XRT_CARD, cut into PA_FAKE_XRT_
 *   DEVICES (default 1) devices of BANKS equal banks; bank b of a device
 *   lies at device address BANK_BASE(b).  BOs are placed first fit by
 *   pages and not cleared: card memory keeps what it held.
 * - Host buffers are separate memory.  xrtBOAlloc maps one of its own,
 *   filled with 0xE5 (XRT's aligned_alloc does not clear it), which
 *   xrtBOFree unmaps; xrtBOAllocUserPtr uses the caller's and leaves it.
 * - xrtBOSync copies the named span between the two, in the named
 *   direction.
 * - Each call is appended to the file PA_FAKE_XRT_LOG (as it was when the
 *   device was opened, since BOs may be freed after their test ended).
 * - PA_FAKE_XRT_NO_USERPTR: xrtBOAllocUserPtr fails with EINVAL, as it
 *   does on edge boards (memory not physically contiguous) and NoDMA cards.
 * - PA_FAKE_XRT_SYNC_MS: each sync takes that long.
 * Built with -DWITHOUT_SYNC it lacks xrtBOSync.  Errors are reported as
 * XRT's C API reports them: NULL, -1 or UINT64_MAX, and errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log_line.h"

#define PAGE 4096u
#define BANKS 4u
#define MAX_DEVICES 4u
#define BANK_BASE(b) (0x4000000000ull + (uint64_t)(b) * 0x1000000000ull)
#define MAX_BOS 4096
#define SYNC_TO_DEVICE 0
#define SYNC_FROM_DEVICE 1

struct device {
    unsigned index;
    int open;
    char log[PATH_MAX];
};

struct bo {
    struct device *device;
    unsigned bank;
    uint64_t card_offset;   /* in the card file */
    uint64_t size;
    char *host;
    int host_is_ours;       /* xrtBOAlloc's own: unmapped at free */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int card = -1;
static unsigned ndevices;
static uint64_t bank_pages;
static unsigned char *page_used;        /* per page of the card file */
static struct device devices[MAX_DEVICES];
static struct bo bos[MAX_BOS];

static void
log_call(const struct device *d, const char *format, ...)
{
    va_list va;
    va_start(va, format);
    append_line(d->log, format, va);
    va_end(va);
}

/* Opens the card file once; 0 or an errno value. */
static int
open_card(void)
{
    const char *path = getenv("PA_FAKE_XRT_CARD"), *n;
    struct stat st;
    if (card >= 0) {
        return 0;
    }
    if (path == NULL || (card = open(path, O_RDWR)) < 0
            || fstat(card, &st) != 0) {
        return ENODEV;
    }
    n = getenv("PA_FAKE_XRT_DEVICES");
    ndevices = n != NULL ? (unsigned)atoi(n) : 1u;
    ndevices = ndevices < 1 ? 1 : ndevices > MAX_DEVICES ? MAX_DEVICES
                                                         : ndevices;
    bank_pages = (uint64_t)st.st_size / PAGE / (ndevices * BANKS);
    page_used = calloc((size_t)(bank_pages * ndevices * BANKS), 1);
    return page_used != NULL ? 0 : ENOMEM;
}

void *
xrtDeviceOpen(unsigned int index)
{
    pthread_mutex_lock(&lock);
    int err = open_card();
    struct device *d = NULL;
    if (err == 0 && index >= ndevices) {
        err = ENODEV;
    }
    if (err == 0) {
        d = &devices[index];
        d->index = index;
        d->open++;
        const char *log = getenv("PA_FAKE_XRT_LOG");
        snprintf(d->log, sizeof(d->log), "%s", log != NULL ? log : "");
        log_call(d, "open %u", index);
    }
    pthread_mutex_unlock(&lock);
    errno = err;
    return d;
}

int
xrtDeviceClose(void *handle)
{
    struct device *d = handle;
    pthread_mutex_lock(&lock);
    int live = 0;
    for (int i = 0; i < MAX_BOS; i++) {
        live += bos[i].device == d;
    }
    log_call(d, "close %u live=%d", d->index, live);
    d->open--;
    pthread_mutex_unlock(&lock);
    return 0;
}

/* First fit of n pages in a bank of a device; the first page, or -1. */
static int64_t
find_pages(const struct device *d, unsigned bank, uint64_t n)
{
    uint64_t first = (d->index * BANKS + bank) * bank_pages;
    for (uint64_t start = 0, run = 0; start + run < bank_pages;) {
        if (page_used[first + start + run]) {
            start += run + 1;
            run = 0;
        }
        else if (++run == n) {
            return (int64_t)(first + start);
        }
    }
    return -1;
}

/* A new BO, or NULL with errno set; the lock is held. */
static struct bo *
new_bo(struct device *d, size_t size, uint32_t group, void *host)
{
    unsigned bank = group & 0xFFFFu;
    uint64_t pages = (size + PAGE - 1) / PAGE;
    if (d == NULL || d->open == 0 || size == 0 || bank >= BANKS) {
        errno = EINVAL;
        return NULL;
    }
    int slot = 0;
    while (slot < MAX_BOS && bos[slot].device != NULL) {
        slot++;
    }
    int64_t first = find_pages(d, bank, pages);
    if (first < 0 || slot == MAX_BOS) {
        errno = ENOMEM;
        return NULL;
    }
    int ours = host == NULL;
    if (ours) {
        host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (host == MAP_FAILED) {
            errno = ENOMEM;
            return NULL;
        }
        memset(host, 0xE5, size);
    }
    memset(&page_used[first], 1, (size_t)pages);
    struct bo *bo = &bos[slot];
    bo->device = d;
    bo->bank = bank;
    bo->card_offset = (uint64_t)first * PAGE;
    bo->size = size;
    bo->host = host;
    bo->host_is_ours = ours;
    return bo;
}

static uint64_t
address_of(const struct bo *bo)
{
    uint64_t first = (bo->device->index * BANKS + bo->bank) * bank_pages;
    return BANK_BASE(bo->bank) + bo->card_offset - first * PAGE;
}

/* xrtBOAlloc and xrtBOAllocUserPtr (host NULL): a logged new BO. */
static void *
alloc_bo(const char *what, void *device, void *host, size_t size,
         uint64_t flags, uint32_t group)
{
    pthread_mutex_lock(&lock);
    struct bo *bo = new_bo(device, size, group, host);
    if (bo != NULL) {
        log_call(bo->device, "%s %#llx %zu bank=%u flags=%#llx", what,
                 (unsigned long long)address_of(bo), size, bo->bank,
                 (unsigned long long)flags);
    }
    pthread_mutex_unlock(&lock);
    return bo;
}

void *
xrtBOAlloc(void *device, size_t size, uint64_t flags, uint32_t group)
{
    return alloc_bo("alloc", device, NULL, size, flags, group);
}

void *
xrtBOAllocUserPtr(void *device, void *userptr, size_t size, uint64_t flags,
                  uint32_t group)
{
    if (getenv("PA_FAKE_XRT_NO_USERPTR") != NULL || userptr == NULL
            || (uintptr_t)userptr % PAGE != 0) {
        errno = EINVAL;
        return NULL;
    }
    return alloc_bo("userptr", device, userptr, size, flags, group);
}

/* The BO a handle names, or NULL with errno set; the lock is held. */
static struct bo *
find(void *handle)
{
    struct bo *bo = handle;
    if (bo < bos || bo >= bos + MAX_BOS || bo->device == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return bo;
}

int
xrtBOFree(void *handle)
{
    pthread_mutex_lock(&lock);
    struct bo *bo = find(handle);
    if (bo != NULL) {
        log_call(bo->device, "free %#llx", (unsigned long long)address_of(bo));
        if (bo->host_is_ours) {
            munmap(bo->host, bo->size);     /* "unmapped when freed" */
        }
        memset(&page_used[bo->card_offset / PAGE], 0,
               (size_t)((bo->size + PAGE - 1) / PAGE));
        memset(bo, 0, sizeof(*bo));
    }
    pthread_mutex_unlock(&lock);
    return bo != NULL ? 0 : -1;
}

void *
xrtBOMap(void *handle)
{
    pthread_mutex_lock(&lock);
    struct bo *bo = find(handle);
    void *host = bo != NULL ? bo->host : NULL;
    pthread_mutex_unlock(&lock);
    return host;
}

uint64_t
xrtBOAddress(void *handle)
{
    pthread_mutex_lock(&lock);
    struct bo *bo = find(handle);
    uint64_t address = bo != NULL ? address_of(bo) : UINT64_MAX;
    pthread_mutex_unlock(&lock);
    return address;
}

#ifndef WITHOUT_SYNC
int
xrtBOSync(void *handle, int dir, size_t size, size_t offset)
{
    /* A slow DMA, for tests that the caller let go of the GIL. */
    const char *ms = getenv("PA_FAKE_XRT_SYNC_MS");
    if (ms != NULL) {
        usleep((useconds_t)atoi(ms) * 1000);
    }
    pthread_mutex_lock(&lock);
    struct bo *bo = find(handle);
    int rc = -1;
    if (bo != NULL && (offset > bo->size || size > bo->size - offset
                       || (dir != SYNC_TO_DEVICE && dir != SYNC_FROM_DEVICE))) {
        errno = EINVAL;
    }
    else if (bo != NULL) {
        off_t at = (off_t)(bo->card_offset + offset);
        ssize_t n = dir == SYNC_TO_DEVICE
                    ? pwrite(card, bo->host + offset, size, at)
                    : pread(card, bo->host + offset, size, at);
        rc = n == (ssize_t)size ? 0 : -1;
        log_call(bo->device, "sync %s %#llx %zu",
                 dir == SYNC_TO_DEVICE ? "to" : "from",
                 (unsigned long long)(address_of(bo) + offset), size);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}
#endif

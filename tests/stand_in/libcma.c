/*
 * A stand-in for PYNQ's libcma.so, built by the test suite.  Buffers are
 * windows of a file named by PA_FAKE_XLNK_FILE (the whole file is the
 * pool, first fit by pages), mapped as the real library maps /dev/xlnk;
 * their "physical" address is 0x20000000 plus the window's offset; like
 * the kernel's, each new buffer reads as zeros.  Every call is appended
 * to the file named by PA_FAKE_XLNK_LOG.  Built with -DWITHOUT_INVALIDATE
 * it lacks cma_invalidate_cache; PA_FAKE_XLNK_FLUSH_MS and
 * PA_FAKE_XLNK_ALLOC_MS make cma_flush_cache and cma_alloc take that long.
 */
#include <fcntl.h>
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

#define PHYS_BASE 0x20000000u
#define MAX_PAGES 65536u            /* the pool: the file's size, <= 256 MiB */
#define MAX_BUFS 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fd = -1;
static uint32_t npages;
static unsigned char page_used[MAX_PAGES];
static struct { void *va; uint32_t len, phys; } bufs[MAX_BUFS];

static void
log_call(const char *format, ...)
{
    /* Buffers may be released after the test that made them has ended. */
    va_list va;
    va_start(va, format);
    append_line(getenv("PA_FAKE_XLNK_LOG"), format, va);
    va_end(va);
}

/* The pool stays open while the library is loaded, as libcma keeps
 * /dev/xlnk open; unloading closes it. */
__attribute__((destructor)) static void
close_pool(void)
{
    if (fd >= 0) {
        close(fd);
    }
}

static void
open_pool(void)
{
    struct stat st;
    if (fd < 0 && (fd = open(getenv("PA_FAKE_XLNK_FILE"), O_RDWR)) >= 0
            && fstat(fd, &st) == 0) {
        npages = (uint32_t)(st.st_size / 4096);
        npages = npages > MAX_PAGES ? MAX_PAGES : npages;
    }
}

/* First fit over the pool's pages; the first page of a free run, or -1. */
static long
find_pages(uint32_t n)
{
    for (uint32_t start = 0, run = 0; start + run < npages;) {
        if (page_used[start + run]) {
            start += run + 1;
            run = 0;
        }
        else if (++run == n) {
            return start;
        }
    }
    return -1;
}

/* A slow driver call: for tests of what callers hold meanwhile. */
static void
delay(const char *variable)
{
    const char *ms = getenv(variable);
    if (ms != NULL) {
        usleep((useconds_t)atoi(ms) * 1000);
    }
}

void *
cma_alloc(uint32_t len, uint32_t cacheable)
{
    delay("PA_FAKE_XLNK_ALLOC_MS");
    len = (len + 4095u) & ~4095u;
    pthread_mutex_lock(&lock);
    open_pool();
    long first = len == 0 ? -1 : find_pages(len / 4096);
    int slot = 0;
    while (slot < MAX_BUFS && bufs[slot].va != NULL) {
        slot++;
    }
    void *va = NULL;
    if (fd >= 0 && first >= 0 && slot < MAX_BUFS) {
        va = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                  (off_t)first * 4096);
        memset(&page_used[first], 1, len / 4096);
        if (va != MAP_FAILED) {
            memset(va, 0, len);     /* as the kernel's dma_alloc does */
        }
        bufs[slot].va = va;
        bufs[slot].len = len;
        bufs[slot].phys = PHYS_BASE + (uint32_t)first * 4096;
        log_call("alloc %u %u 0x%x", len, cacheable, bufs[slot].phys);
    }
    else {
        log_call("alloc %u %u NULL", len, cacheable);
    }
    pthread_mutex_unlock(&lock);
    return va;
}

static int
find(void *va)
{
    for (int i = 0; i < MAX_BUFS; i++) {
        if (bufs[i].va == va && va != NULL) {
            return i;
        }
    }
    return -1;
}

unsigned long
cma_get_phy_addr(void *buf)
{
    pthread_mutex_lock(&lock);
    int i = find(buf);
    unsigned long phys = i < 0 ? 0 : bufs[i].phys;
    pthread_mutex_unlock(&lock);
    return phys;
}

void
cma_free(void *buf)
{
    pthread_mutex_lock(&lock);
    int i = find(buf);
    log_call("free 0x%x", i < 0 ? 0 : bufs[i].phys);
    if (i >= 0) {
        munmap(bufs[i].va, bufs[i].len);
        memset(&page_used[(bufs[i].phys - PHYS_BASE) / 4096], 0,
               bufs[i].len / 4096);
        bufs[i].va = NULL;
    }
    pthread_mutex_unlock(&lock);
}

uint32_t
cma_pages_available(void)
{
    pthread_mutex_lock(&lock);
    open_pool();
    uint32_t n = 0;
    for (uint32_t i = 0; i < npages; i++) {
        n += !page_used[i];
    }
    pthread_mutex_unlock(&lock);
    return n;
}

/* Logs the call and whether buf really maps phys (by the first byte). */
static void
log_cache(const char *what, void *buf, unsigned int phys, int size)
{
    unsigned char expected = 0;
    pread(fd, &expected, 1, phys - PHYS_BASE);
    log_call("%s 0x%x %d %s", what, phys, size,
         *(unsigned char *)buf == expected ? "same" : "different");
}

void
cma_flush_cache(void *buf, unsigned int phys, int size)
{
    delay("PA_FAKE_XLNK_FLUSH_MS");
    log_cache("flush", buf, phys, size);
}

#ifndef WITHOUT_INVALIDATE
void
cma_invalidate_cache(void *buf, unsigned int phys, int size)
{
    log_cache("invalidate", buf, phys, size);
}
#endif

/* The real library has it; calling it frees every process's buffers. */
void
_xlnk_reset(void)
{
    log_call("_xlnk_reset");
}

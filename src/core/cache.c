/* CPU cache maintenance (see cache.h). */
#include "cache.h"

#include <errno.h>
#include <stdint.h>

void
pa_cpu_store_barrier(void)
{
#if defined(__aarch64__) || defined(__arm__)
    __asm__ volatile("dsb st" : : : "memory");
#elif defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("sfence" : : : "memory");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

#if defined(__aarch64__)

/* Smallest data cache line, from CTR_EL0.DminLine (log2 of words). */
static uintptr_t
line_size(void)
{
    uint64_t ctr;
    __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
    return (uintptr_t)4 << ((ctr >> 16) & 0xf);
}

int
pa_cpu_dma_coherent(void)
{
    return 0;
}

int
pa_cpu_flush(void *p, size_t n)
{
    uintptr_t line = line_size(), a = (uintptr_t)p & ~(line - 1);
    for (uintptr_t end = (uintptr_t)p + n; a < end; a += line) {
        __asm__ volatile("dc cvac, %0" : : "r"(a) : "memory");
    }
    __asm__ volatile("dsb sy" : : : "memory");
    return 0;
}

int
pa_cpu_invalidate(void *p, size_t n)
{
    /* `dc ivac` traps at EL0; clean+invalidate is allowed and loses nothing. */
    uintptr_t line = line_size(), a = (uintptr_t)p & ~(line - 1);
    for (uintptr_t end = (uintptr_t)p + n; a < end; a += line) {
        __asm__ volatile("dc civac, %0" : : "r"(a) : "memory");
    }
    __asm__ volatile("dsb sy" : : : "memory");
    return 0;
}

#elif defined(__x86_64__) || defined(__i386__)

int
pa_cpu_dma_coherent(void)
{
    return 1;
}

int
pa_cpu_flush(void *p, size_t n)
{
    (void)p;
    (void)n;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return 0;
}

int
pa_cpu_invalidate(void *p, size_t n)
{
    (void)p;
    (void)n;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return 0;
}

#else   /* armv7 and others: only a driver can maintain the caches */

int
pa_cpu_dma_coherent(void)
{
    return 0;
}

int
pa_cpu_flush(void *p, size_t n)
{
    (void)p;
    (void)n;
    return -ENOTSUP;
}

int
pa_cpu_invalidate(void *p, size_t n)
{
    (void)p;
    (void)n;
    return -ENOTSUP;
}

#endif

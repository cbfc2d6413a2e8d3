/* Tests of CPU cache maintenance: on x86 and arm64 flush and invalidate
 * succeed and lose nothing (invalidate cleans as it goes); on armv7 user
 * space cannot reach the L2, which must be said, not ignored. */
#include "../../src/core/cache.h"
#include "check.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static unsigned char buf[3 * 4096 + 100];

static void
test_flush_and_invalidate_keep_cpu_writes(void)
{
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)(i * 7);
    }
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
    /* Unaligned start and length: the range is rounded out to lines. */
    CHECK_EQ(pa_cpu_flush(buf + 3, sizeof(buf) - 5), 0);
    CHECK_EQ(pa_cpu_invalidate(buf + 1, sizeof(buf) - 1), 0);
    CHECK_EQ(pa_cpu_flush(buf, 0), 0);
#else
    CHECK_EQ(pa_cpu_flush(buf, sizeof(buf)), -ENOTSUP);
    CHECK_EQ(pa_cpu_invalidate(buf, sizeof(buf)), -ENOTSUP);
#endif
    int intact = 1;
    for (size_t i = 0; i < sizeof(buf); i++) {
        intact &= buf[i] == (unsigned char)(i * 7);
    }
    CHECK(intact);
}

static void
test_coherence_by_architecture(void)
{
#if defined(__x86_64__) || defined(__i386__)
    CHECK_EQ(pa_cpu_dma_coherent(), 1);
#else
    CHECK_EQ(pa_cpu_dma_coherent(), 0);
#endif
}

static void
test_store_barrier_runs_in_user_space(void)
{
    /* `dsb st` and `sfence` are allowed at EL0 / ring 3: no SIGILL. */
    buf[0] = 1;
    pa_cpu_store_barrier();
    CHECK_EQ(buf[0], 1);
}

int
main(void)
{
    RUN(test_flush_and_invalidate_keep_cpu_writes);
    RUN(test_coherence_by_architecture);
    RUN(test_store_barrier_runs_in_user_space);
    return check_report("test_cache");
}

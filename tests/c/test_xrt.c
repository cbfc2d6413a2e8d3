/* Tests of the xrt backend with the stand-in libxrt_coreutil.so
 * (../stand_in), under the sanitizers: loading, both host-buffer modes,
 * syncs of exact spans in each direction, zeroing of the card's memory,
 * alignment and limits, banks, release with a live pointer, and errors. */
#include "../../src/core/xrt.h"
#include "check.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1024ull * 1024ull)
#define BANK_SIZE (4 * MiB)     /* the card file holds 4 banks */
#define BANK0 0x4000000000ull
#define BANK2 0x6000000000ull

static char dir[64], library[128], card[128], log_path[128];

static int
log_has(const char *line)
{
    return file_has(log_path, line);
}

/* A fresh log, and card memory full of an earlier user's bytes. */
static void
reset(void)
{
    close(open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
    static char junk[BANK_SIZE];
    memset(junk, 0xC3, sizeof(junk));
    int fd = open(card, O_RDWR);
    for (int bank = 0; bank < 4; bank++) {
        CHECK(pwrite(fd, junk, sizeof(junk), bank * (off_t)BANK_SIZE)
              == (ssize_t)sizeof(junk));
    }
    close(fd);
}

/* The card's bytes at a device address in bank 0 or 2. */
static void
card_read(uint64_t address, void *dst, size_t n)
{
    off_t at = address >= BANK2 ? (off_t)(address - BANK2 + 2 * BANK_SIZE)
                                : (off_t)(address - BANK0);
    int fd = open(card, O_RDONLY);
    CHECK(pread(fd, dst, n, at) == (ssize_t)n);
    close(fd);
}

static void
card_write(uint64_t address, const void *src, size_t n)
{
    int fd = open(card, O_RDWR);
    CHECK(pwrite(fd, src, n, (off_t)(address - BANK0)) == (ssize_t)n);
    close(fd);
}

static int
all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static pa_memory *
open_xrt(const char *lib, int64_t bank, int userptr)
{
    pa_xrt_options o = {lib, 0, bank, userptr, 0, 0};
    pa_memory *m = NULL;
    int step;
    char sym[64];
    CHECK_EQ(pa_xrt_open(NULL, &o, &m, &step, sym, sizeof(sym)), 0);
    return m;
}

static void
test_userptr_mode(void)
{
    reset();
    pa_memory *m = open_xrt(library, 0, 1);
    pa_block b;
    CHECK_EQ(pa_memory_alloc(m, 5000, 0, 0, 0, &b), 0);
    CHECK_EQ(b.device_address, BANK0);
    CHECK(b.cacheable && !b.coherent);
    CHECK(log_has("userptr 0x4000000000 8192 bank=0 flags=0\n"));
    /* New memory reads as zeros on the card too: zeroed by a sync. */
    CHECK(log_has("sync to 0x4000000000 8192\n"));
    unsigned char seen[8192];
    card_read(BANK0, seen, sizeof(seen));
    CHECK(all_zero(seen, sizeof(seen)) && all_zero(b.cpu, 8192));
    /* flush moves exactly its span to the card. */
    memset(b.cpu, 7, 8192);
    CHECK_EQ(pa_memory_flush(m, &b, 16, 5), 0);
    CHECK(log_has("sync to 0x4000000010 5\n"));
    card_read(BANK0, seen, sizeof(seen));
    CHECK(all_zero(seen, 16) && seen[16] == 7 && seen[20] == 7
          && all_zero(seen + 21, sizeof(seen) - 21));
    /* invalidate brings back exactly its span. */
    card_write(BANK0 + 4096, "card!", 5);
    CHECK_EQ(pa_memory_invalidate(m, &b, 4097, 3), 0);
    CHECK(log_has("sync from 0x4000001001 3\n"));
    CHECK(memcmp((char *)b.cpu + 4096, "\7ard\7", 5) == 0);
    pa_memory_release(m, &b);
    CHECK(log_has("free 0x4000000000\n"));
    pa_memory_close(m);
    CHECK(log_has("close 0 live=0\n"));
}

static void
test_staged_mode_and_retire(void)
{
    reset();
    pa_memory *m = open_xrt(library, 0, 0);
    void *(*bo_map)(void *) = (void *(*)(void *))dlsym(
        dlopen(library, RTLD_NOW | RTLD_NOLOAD), "xrtBOMap");
    pa_block b;
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, PA_ALLOC_CACHEABLE, &b), 0);
    CHECK(log_has("alloc 0x4000000000 4096 bank=0 flags=0x1000000\n"));
    /* Users get our mapping, not XRT's, which XRT unmaps at free. */
    unsigned char *xrt_host = bo_map((void *)(uintptr_t)b.handle);
    CHECK(xrt_host != NULL && xrt_host != (unsigned char *)b.cpu);
    unsigned char seen[4096];
    card_read(BANK0, seen, sizeof(seen));
    CHECK(all_zero(seen, sizeof(seen)) && all_zero(b.cpu, 4096));
    memset(b.cpu, 9, 4096);
    CHECK_EQ(pa_memory_flush(m, &b, 100, 10), 0);
    card_read(BANK0, seen, sizeof(seen));
    CHECK(all_zero(seen, 100) && seen[100] == 9 && seen[109] == 9
          && seen[110] == 0);
    card_write(BANK0 + 200, "abc", 3);
    CHECK_EQ(pa_memory_invalidate(m, &b, 201, 1), 0);
    CHECK(((char *)b.cpu)[200] == 9 && ((char *)b.cpu)[201] == 'b'
          && ((char *)b.cpu)[202] == 9);
    /* Retire with a pointer still held: XRT frees the BO and unmaps its
     * host buffer; ours turns anonymous and stays usable. */
    unsigned char *held = b.cpu;
    CHECK_EQ(pa_memory_retire(m, &b), 0);
    CHECK(log_has("free 0x4000000000\n"));
    held[0] = 1;
    CHECK(held[0] == 1 && held[1] == 0);
    pa_memory_unmap_retired(m, &b);
    pa_memory_close(m);
    CHECK(log_has("close 0 live=0\n"));
}

static void
test_unzeroed_skips_the_sync(void)
{
    reset();
    pa_memory *m = open_xrt(library, 0, 1);
    pa_block b;
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, PA_ALLOC_UNZEROED, &b), 0);
    CHECK(!log_has("sync"));
    pa_memory_release(m, &b);
    pa_memory_close(m);
}

static void
test_alignment_limit_and_banks(void)
{
    reset();
    pa_memory *m = open_xrt(library, 0, 1), *m2 = open_xrt(library, 2, 1);
    pa_block small, b, c;
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, 0, &small), 0);
    CHECK_EQ(pa_memory_alloc(m, 4096, 1 << 16, 0, 0, &b), 0);
    CHECK_EQ(b.device_address % (1 << 16), 0);
    CHECK(log_has("userptr 0x4000001000 65536 bank=0"));
    /* The zeroing sync covers the block, not the slack before it. */
    CHECK(log_has("sync to 0x4000010000 4096\n"));
    /* The card chose where it lies: above the limit is out of memory. */
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, BANK0 + 4096, 0, &c), -ENOMEM);
    CHECK(log_has("free 0x4000011000\n"));
    CHECK_EQ(pa_memory_alloc(m2, 4096, 0, 0, 0, &c), 0);
    CHECK_EQ(c.device_address, BANK2);
    unsigned char seen[4096];
    card_read(BANK2, seen, sizeof(seen));
    CHECK(all_zero(seen, sizeof(seen)));
    pa_stats st;
    pa_memory_stats(m, &st);
    CHECK_EQ(st.used, 4096 + 65536);
    CHECK_EQ(st.buffers, 2);
    pa_memory_release(m, &small);
    pa_memory_release(m, &b);
    pa_memory_release(m2, &c);
    pa_memory_close(m);
    pa_memory_close(m2);
}

static void
test_errors(void)
{
    pa_memory *m = NULL;
    int step;
    char sym[64], other[160];
    snprintf(other, sizeof(other), "%s/absent.so", dir);
    pa_xrt_options o = {other, 0, 0, 1, 0, 0};
    CHECK_EQ(pa_xrt_open(NULL, &o, &m, &step, sym, sizeof(sym)), -ENOENT);
    CHECK(step == PA_XRT_LOAD && sym[0] == '\0');
    snprintf(other, sizeof(other), "%s/libxrt_coreutil-nosync.so", dir);
    CHECK_EQ(pa_xrt_open(NULL, &o, &m, &step, sym, sizeof(sym)), -ENOENT);
    CHECK(step == PA_XRT_SYMBOL && strcmp(sym, "xrtBOSync") == 0);
    o.library = library;
    o.device = 3;
    CHECK_EQ(pa_xrt_open(NULL, &o, &m, &step, sym, sizeof(sym)), -ENODEV);
    CHECK(step == PA_XRT_DEVICE);
    o.device = 0;
    static const int64_t bad[] = {-1, PA_BANK_COUNT, INT64_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.bank = bad[i];
        CHECK_EQ(pa_xrt_open(NULL, &o, &m, &step, sym, sizeof(sym)), -EINVAL);
        CHECK(m == NULL);
    }
    /* A bank the card does not have: XRT's error, nothing kept. */
    o.bank = 9;
    CHECK_EQ(pa_xrt_open(NULL, &o, &m, &step, sym, sizeof(sym)), 0);
    pa_block b;
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, 0, &b), -EINVAL);
    pa_memory_close(m);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_xrt DIR-WITH-STAND-IN-LIBRARIES\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    snprintf(library, sizeof(library), "%s/libxrt_coreutil.so", dir);
    snprintf(card, sizeof(card), "%s/xrt-card", dir);
    snprintf(log_path, sizeof(log_path), "%s/xrt.log", dir);
    int fd = open(card, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)(4 * BANK_SIZE)) == 0);
    close(fd);
    setenv("PA_FAKE_XRT_CARD", card, 1);
    setenv("PA_FAKE_XRT_LOG", log_path, 1);
    RUN(test_userptr_mode);
    RUN(test_staged_mode_and_retire);
    RUN(test_unzeroed_skips_the_sync);
    RUN(test_alignment_limit_and_banks);
    RUN(test_errors);
    return check_report("test_xrt");
}

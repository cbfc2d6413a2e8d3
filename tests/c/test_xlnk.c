/* Tests of the xlnk backend with the stand-in libcma.so (../stand_in),
 * under the sanitizers: loading, the /proc/self/maps lookup, a user
 * mapping of its own, cache calls with the view's addresses, and release. */
#include "../../src/core/xlnk.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1024ull * 1024ull)
#define PHYS 0x20000000ull

static char dir[64], library[128], device[128], log_path[128];

static int
log_has(const char *line)
{
    return file_has(log_path, line);
}

static void
test_allocate_sync_release(void)
{
    pa_memory *m = NULL;
    pa_block b;
    char err[256], sym[64];
    CHECK_EQ(pa_xlnk_open(NULL, library, "/proc/self/maps", &m, err, sym,
                          sizeof(sym)), 0);
    CHECK_EQ(pa_memory_alloc(m, 5000, 0, 0, 1, &b), 0);
    CHECK_EQ(b.device_address, PHYS);
    CHECK(log_has("alloc 8192 1 0x20000000"));
    /* Our mapping is not libcma's, but it is the same memory. */
    CHECK(b.cpu != (void *)(uintptr_t)b.handle);
    memcpy(b.cpu, "shared", 6);
    CHECK(memcmp((void *)(uintptr_t)b.handle, "shared", 6) == 0);
    CHECK_EQ(pa_memory_flush(m, &b, 16, 100), 0);
    CHECK(log_has("flush 0x20000010 100 same"));
    CHECK_EQ(pa_memory_invalidate(m, &b, 4096, 8), 0);
    CHECK(log_has("invalidate 0x20001000 8 same"));
    /* Retire: our mapping turns anonymous, libcma frees its own. */
    CHECK_EQ(pa_memory_retire(m, &b), 0);
    CHECK(log_has("free 0x20000000"));
    CHECK_EQ(((char *)b.cpu)[0], 0);
    pa_memory_unmap_retired(m, &b);
    pa_memory_close(m);
}

static void
test_missing_library_and_symbol(void)
{
    pa_memory *m = NULL;
    char err[256], sym[64], other[160];
    snprintf(other, sizeof(other), "%s/absent.so", dir);
    CHECK_EQ(pa_xlnk_open(NULL, other, "/proc/self/maps", &m, err, sym,
                          sizeof(sym)), -ENOENT);
    CHECK(strcmp(err, other) == 0 && sym[0] == '\0');
    snprintf(other, sizeof(other), "%s/libcma-noinv.so", dir);
    CHECK_EQ(pa_xlnk_open(NULL, other, "/proc/self/maps", &m, err, sym,
                          sizeof(sym)), -ENOENT);
    CHECK(strcmp(sym, "cma_invalidate_cache") == 0);
    CHECK(m == NULL);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_xlnk DIR-WITH-STAND-IN-LIBRARIES\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    snprintf(library, sizeof(library), "%s/libcma.so", dir);
    snprintf(device, sizeof(device), "%s/xlnk-pool", dir);
    snprintf(log_path, sizeof(log_path), "%s/cma.log", dir);
    int fd = open(device, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)(16 * MiB)) == 0);
    close(fd);
    close(open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
    setenv("PA_FAKE_XLNK_FILE", device, 1);
    setenv("PA_FAKE_XLNK_LOG", log_path, 1);
    RUN(test_allocate_sync_release);
    RUN(test_missing_library_and_symbol);
    return check_report("test_xlnk");
}

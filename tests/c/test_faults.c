/* Fault injection (see faults.h) into sim, u-dma-buf, xlnk and huge pages;
 * zocl's is in test_zocl.c, over its stand-in driver. */
#include "../../src/core/memory.h"
#include "../../src/core/hugepage.h"
#include "../../src/core/sim.h"
#include "../../src/core/udmabuf.h"
#include "../../src/core/xlnk.h"
#include "check.h"
#include "faults.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#define MiB (1024ull * 1024ull)

static int
open_sim(const pa_sys *sys, pa_memory **out)
{
    return pa_sim_open(sys, 0x10000000, 4 * MiB, NULL, out);
}

static void
test_sim(void)
{
    inject_everywhere(open_sim, &pa_sys_real, "pynq_alloc-sim");
}

static char udmabuf_dir[64], udmabuf_device[96], udmabuf_sysfs[96];

static int
open_udmabuf(const pa_sys *sys, pa_memory **out)
{
    char err[256];
    return pa_udmabuf_open(sys, udmabuf_device, udmabuf_sysfs,
                           PA_UDMABUF_FILE_STAND_IN, out, err, sizeof(err));
}

static void
write_text(const char *dir, const char *name, const char *text)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* A non-coherent u-dma-buf without ioctls: every sync is a sysfs write. */
static void
test_udmabuf(void)
{
    snprintf(udmabuf_dir, sizeof(udmabuf_dir), "/tmp/pa-faults-XXXXXX");
    CHECK(mkdtemp(udmabuf_dir) != NULL);
    snprintf(udmabuf_device, sizeof(udmabuf_device), "%s/udmabuf0",
             udmabuf_dir);
    snprintf(udmabuf_sysfs, sizeof(udmabuf_sysfs), "%s/sys", udmabuf_dir);
    CHECK_EQ(mkdir(udmabuf_sysfs, 0755), 0);
    int fd = open(udmabuf_device, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 4 * MiB) == 0);
    close(fd);
    write_text(udmabuf_sysfs, "phys_addr", "0x30000000\n");
    write_text(udmabuf_sysfs, "size", "4194304\n");
    write_text(udmabuf_sysfs, "dma_coherent", "0\n");
    write_text(udmabuf_sysfs, "sync_mode", "1\n");    /* as the driver loads */
    write_text(udmabuf_sysfs, "sync_for_device", "");
    write_text(udmabuf_sysfs, "sync_for_cpu", "");
    inject_everywhere(open_udmabuf, &pa_sys_real, udmabuf_device);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", udmabuf_dir);
    CHECK_EQ(system(cmd), 0);
}

static char xlnk_library[512];

static int
open_xlnk(const pa_sys *sys, pa_memory **out)
{
    char err[512], sym[64];
    return pa_xlnk_open(sys, xlnk_library, "/proc/self/maps", out, err, sym,
                        sizeof(sym));
}

static const char *build_dir;

static void
test_xlnk(void)
{
    char pool[] = "/tmp/pa-faults-xlnk-XXXXXX";
    int fd = mkstemp(pool);
    CHECK(fd >= 0 && ftruncate(fd, 16 * MiB) == 0);
    close(fd);
    setenv("PA_FAKE_XLNK_FILE", pool, 1);
    snprintf(xlnk_library, sizeof(xlnk_library), "%s/libcma.so", build_dir);
    inject_everywhere(open_xlnk, &pa_sys_real, pool);
    unlink(pool);
}

static int
open_hugepage(const pa_sys *sys, pa_memory **out)
{
    char err[256];
    return pa_hugepage_open(sys, 4 * MiB, 2 * MiB, "/sys/kernel/mm/hugepages",
                            "/proc/self/pagemap", 1, out, NULL, err,
                            sizeof(err));
}

#define NR_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

static long
read_nr(void)
{
    char text[32] = "";
    int fd = open(NR_2M, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    if (fd >= 0) {
        close(fd);
    }
    return n > 0 ? strtol(text, NULL, 10) : -1;
}

static void
write_nr(long value)
{
    char text[32];
    int fd = open(NR_2M, O_WRONLY);
    int n = snprintf(text, sizeof(text), "%ld", value);
    CHECK(fd >= 0 && write(fd, text, (size_t)n) == n);
    if (fd >= 0) {
        close(fd);
    }
}

static void
test_hugepage(void)
{
    pa_memory *m = NULL;
    long saved = read_nr();
    if (getenv("PA_NO_HUGEPAGES") != NULL || geteuid() != 0 || saved < 0) {
        printf("test_faults: hugepage skipped (needs root and huge pages)\n");
        return;
    }
    /* Free pages for the pool, so that a failed read of the counts (with
     * which it cannot raise nr_hugepages) does not leave it short. */
    write_nr(saved + 2);
    if (open_hugepage(&pa_sys_real, &m) != 0) {
        printf("test_faults: hugepage skipped (no huge pages to be had)\n");
    }
    else {
        pa_memory_close(m);
        inject_everywhere(open_hugepage, &pa_sys_real, "pynq_alloc-hugepage");
    }
    write_nr(saved);
}

int
main(int argc, char **argv)
{
    build_dir = argc > 1 ? argv[1] : "build";
    RUN(test_sim);
    RUN(test_udmabuf);
    RUN(test_xlnk);
    RUN(test_hugepage);
    return check_report("test_faults");
}

/* Tests of the u-dma-buf backend through a stand-in system-call table:
 * the device is a truncated regular file, the sysfs directory a temporary
 * one, and the ioctls are answered and recorded here. */
#include "../../src/core/udmabuf.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024ull)
#define PHYS 0x30000000ull
#define STAND_IN PA_UDMABUF_FILE_STAND_IN

static char dir[64], device[96], sysfs[96];
static int ioctls_work;             /* a 4.7+ driver answers ioctls */
static uint64_t info_flags;
static unsigned long last_request;
static uint64_t last_cmd;
static int sync_calls;
/* The driver's sync_* settings as GET_SYNC and SET_SYNC see them. */
static uint64_t sync_flags, sync_size, sync_offset;
static int sync_ioctls;             /* the driver answers GET/SET_SYNC */
static int set_sync_calls;
static int sync_mode_writes_fail;   /* sysfs sync_mode: EACCES to writes */

static int
fake_ioctl(int fd, unsigned long request, void *arg)
{
    (void)fd;
    if (!ioctls_work) {
        errno = ENOTTY;
        return -1;
    }
    if (request == 0x80185507u) {               /* GET_DEV_INFO */
        uint64_t *info = arg;
        info[0] = info_flags;
        info[1] = 4 * MiB;
        info[2] = PHYS;
        return 0;
    }
    if (request == 0x80185508u && sync_ioctls) {   /* GET_SYNC */
        uint64_t *args = arg;
        args[0] = sync_flags;
        args[1] = sync_size;
        args[2] = sync_offset;
        return 0;
    }
    if (request == 0x40185509u && sync_ioctls) {   /* SET_SYNC, as 5.5.0 */
        const uint64_t *args = arg;
        uint64_t direction = (args[0] >> 2) & 3, mode = (args[0] >> 8) & 0xFF;
        set_sync_calls++;
        if (direction <= 2) {
            sync_flags = (sync_flags & ~(3ull << 2)) | (direction << 2);
        }
        if (mode > 0) {
            sync_flags = (sync_flags & ~(0xFFull << 8)) | (mode << 8);
        }
        sync_offset = args[2];
        if (args[1] > 0) {
            sync_size = args[1];
        }
        return 0;
    }
    if (request == 0x40085505u || request == 0x40085506u) {
        last_request = request;
        last_cmd = *(uint64_t *)arg;
        sync_calls++;
        return 0;
    }
    errno = ENOTTY;
    return -1;
}

static pa_sys stand_in;

/* Opens as the real open does, but a write of sync_mode is refused when
 * sync_mode_writes_fail is set (as sysfs refuses one but root). */
static int
fake_open(const char *path, int flags)
{
    const char *name = strrchr(path, '/');
    if (sync_mode_writes_fail && (flags & O_ACCMODE) != O_RDONLY
            && name != NULL && strcmp(name, "/sync_mode") == 0) {
        errno = EACCES;
        return -1;
    }
    return open(path, flags);
}

static void
write_file(const char *name, const char *text)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", sysfs, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static void
read_file(const char *name, char *buf, size_t cap)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", sysfs, name);
    int fd = open(path, O_RDONLY);
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

static void
set_up(void)
{
    snprintf(dir, sizeof(dir), "/tmp/pa-udmabuf-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(device, sizeof(device), "%s/udmabuf0", dir);
    snprintf(sysfs, sizeof(sysfs), "%s/sysfs", dir);
    mkdir(sysfs, 0755);
    int fd = open(device, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)(4 * MiB)) == 0);
    close(fd);
    stand_in = pa_sys_real;
    stand_in.ioctl = fake_ioctl;
    stand_in.open = fake_open;
}

static void
test_ioctl_driver(void)
{
    pa_memory *m;
    pa_block a, b, c;
    char err[256] = "";
    ioctls_work = 1;
    sync_ioctls = 1;
    info_flags = 0;
    CHECK_EQ(pa_udmabuf_open(&stand_in, device, sysfs, STAND_IN, &m, err, sizeof(err)),
             0);
    CHECK_EQ(pa_memory_base_address(m), PHYS);
    CHECK_EQ(pa_memory_size(m), 4 * MiB);
    CHECK_EQ(pa_memory_alloc(m, 100, 0, 0, 1, &a), 0);
    CHECK_EQ(pa_memory_alloc(m, 100, 0, 0, 1, &b), 0);
    CHECK_EQ(a.device_address, PHYS);
    CHECK_EQ(b.device_address, PHYS + 4096);
    CHECK(!a.coherent && a.cacheable);

    /* Each allocation maps its own window of the device. */
    memcpy(b.cpu, "window", 6);
    int fd = open(device, O_RDONLY);
    char seen[8] = "";
    CHECK_EQ(pread(fd, seen, 6, 4096), 6);
    CHECK(memcmp(seen, "window", 6) == 0);
    close(fd);

    /* Rounded out to 16 bytes: [5, 15) -> [0, 16), to the device. */
    CHECK_EQ(pa_memory_flush(m, &a, 5, 10), 0);
    CHECK_EQ(last_request, 0x40085506u);
    CHECK_EQ(last_cmd, (0ull << 32) | 16 | (1 << 2) | 1);
    /* [4096 + 4090, +6) -> [8176, 8192), from the device. */
    CHECK_EQ(pa_memory_invalidate(m, &b, 4090, 6), 0);
    CHECK_EQ(last_request, 0x40085505u);
    CHECK_EQ(last_cmd, (8176ull << 32) | 16 | (2 << 2) | 1);

    /* Uncached blocks are coherent: no sync reaches the driver. */
    int calls = sync_calls;
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, 0, &c), 0);
    CHECK(c.coherent && !c.cacheable);
    CHECK_EQ(pa_memory_flush(m, &c, 0, 4096), 0);
    CHECK_EQ(sync_calls, calls);
    /* No device-side access on a real driver. */
    CHECK_EQ(pa_memory_device_read(m, PHYS, seen, 1), -ENOTSUP);
    pa_memory_release(m, &a);
    pa_memory_release(m, &b);
    pa_memory_release(m, &c);
    pa_memory_close(m);
}

static void
test_coherent_driver(void)
{
    pa_memory *m;
    pa_block a;
    char err[256];
    ioctls_work = 1;
    info_flags = 1u << 9;
    CHECK_EQ(pa_udmabuf_open(&stand_in, device, sysfs, STAND_IN, &m, err, sizeof(err)),
             0);
    CHECK_EQ(pa_memory_alloc(m, 64, 0, 0, 1, &a), 0);
    CHECK(a.coherent && a.cacheable);
    int calls = sync_calls;
    CHECK_EQ(pa_memory_flush(m, &a, 0, 64), 0);
    CHECK_EQ(sync_calls, calls);
    pa_memory_release(m, &a);
    pa_memory_close(m);
}

static void
test_sysfs_fallback(void)
{
    pa_memory *m;
    pa_block a, end;
    char err[256], text[64];
    ioctls_work = 0;
    write_file("phys_addr", "0x30000000\n");
    write_file("size", "4194304\n");
    write_file("dma_coherent", "0\n");
    write_file("sync_for_device", "");
    write_file("sync_for_cpu", "");
    CHECK_EQ(pa_udmabuf_open(&stand_in, device, sysfs, STAND_IN, &m, err, sizeof(err)),
             0);
    CHECK_EQ(pa_memory_base_address(m), PHYS);
    CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, 1, &a), 0);
    CHECK_EQ(pa_memory_flush(m, &a, 32, 64), 0);
    read_file("sync_for_device", text, sizeof(text));
    CHECK(strcmp(text, "0x2000000045") == 0);    /* (32 << 32) | 64 | 4 | 1 */
    /* The last block: the rounded range is clamped to the buffer. */
    CHECK_EQ(pa_memory_alloc(m, 4 * MiB - 4096, 0, 0, 1, &end), 0);
    write_file("sync_for_cpu", "");
    CHECK_EQ(pa_memory_invalidate(m, &end, end.size - 8, 8), 0);
    read_file("sync_for_cpu", text, sizeof(text));
    char expect[64];
    snprintf(expect, sizeof(expect), "0x%" PRIx64,
             (uint64_t)(((4 * MiB - 16) << 32) | 16 | (2 << 2) | 1));
    CHECK(strcmp(text, expect) == 0);
    pa_memory_release(m, &a);
    pa_memory_release(m, &end);
    pa_memory_close(m);
}


/* The fake driver, with a SET_SYNC that fails. */
static int
refuse_set_sync(int fd, unsigned long request, void *arg)
{
    if (request == 0x40185509u) {
        errno = EPERM;
        return -1;
    }
    return fake_ioctl(fd, request, arg);
}

/* The driver's sync_mode after an open, as the sysfs file holds it. */
static void
read_sync_mode(char *text, size_t cap)
{
    read_file("sync_mode", text, cap);
}

/* Where an uncached block is refused (arm, arm64: the driver's other
 * uncached mapping is device memory), and where it is not (x86). */
#if defined(__aarch64__) || defined(__arm__)
#define REFUSED_HERE 1
#else
#define REFUSED_HERE 0
#endif

/* Opens, and tells whether an uncached block is refused: 1 with the
 * reason in why, or 0 after allocating and releasing one. */
static int
uncached_refused(char *why, size_t cap)
{
    pa_memory *m;
    pa_block b;
    char err[256] = "";
    why[0] = '\0';
    CHECK_EQ(pa_udmabuf_open(&stand_in, device, sysfs, STAND_IN, &m, err,
                             sizeof(err)), 0);
    int refused = pa_udmabuf_refuses_uncached(m, why, cap);
    int rc = pa_memory_alloc(m, 4096, 0, 0, 0, &b);
    CHECK_EQ(rc, refused ? -ENOTSUP : 0);
    if (rc == 0) {
        CHECK(!b.cacheable && b.coherent);
        pa_memory_release(m, &b);
    }
    pa_memory_close(m);
    return refused;
}

/* Uncached means write-combined, as on zocl: the open sets sync_mode 2
 * through SET_SYNC, keeping the driver's other sync settings. */
static void
test_uncached_is_write_combined_by_ioctl(void)
{
    char why[512];
    ioctls_work = 1;
    sync_ioctls = 1;
    info_flags = 0;
    /* As the driver loads: sync_mode 1; say direction 2, a size, an offset. */
    sync_flags = (1ull << 8) | (2ull << 2);
    sync_size = 8192;
    sync_offset = 4096;
    set_sync_calls = 0;
    CHECK(!uncached_refused(why, sizeof(why)));
    CHECK_EQ(set_sync_calls, 1);
    CHECK_EQ(sync_flags, (2ull << 8) | (2ull << 2));
    CHECK_EQ(sync_size, 8192);
    CHECK_EQ(sync_offset, 4096);
    /* Already 2: nothing to set. */
    CHECK(!uncached_refused(why, sizeof(why)));
    CHECK_EQ(set_sync_calls, 1);
    /* SYNC_ALWAYS (4) would map cached opens uncached too: 6 becomes 2. */
    sync_flags = 6ull << 8;
    CHECK(!uncached_refused(why, sizeof(why)));
    CHECK_EQ(sync_flags, 2ull << 8);
}

/* Without the ioctls, the sysfs file: written as root writes it. */
static void
test_uncached_is_write_combined_by_sysfs(void)
{
    char why[512], text[16];
    ioctls_work = 0;
    write_file("phys_addr", "0x30000000\n");
    write_file("size", "4194304\n");
    write_file("sync_mode", "1\n");
    CHECK(!uncached_refused(why, sizeof(why)));
    read_sync_mode(text, sizeof(text));
    CHECK(text[0] == '2');
    write_file("sync_mode", "7\n");
    CHECK(!uncached_refused(why, sizeof(why)));
    read_sync_mode(text, sizeof(text));
    CHECK(text[0] == '2');
    /* A 4.7+ driver without GET_SYNC is asked through sysfs too. */
    ioctls_work = 1;
    sync_ioctls = 0;
    write_file("sync_mode", "1\n");
    CHECK(!uncached_refused(why, sizeof(why)));
    read_sync_mode(text, sizeof(text));
    CHECK(text[0] == '2');
}

/* Where sync_mode cannot be made 2, uncached blocks are refused on arm
 * and arm64, with the reason; x86 maps them as the driver does. */
static void
test_uncached_without_write_combine(void)
{
    char why[512], path[160], expect[256];
    ioctls_work = 0;
    write_file("phys_addr", "0x30000000\n");
    write_file("size", "4194304\n");
    snprintf(path, sizeof(path), "%s/sync_mode", sysfs);
    /* sysfs only root may write, and no ioctl. */
    write_file("sync_mode", "1\n");
    sync_mode_writes_fail = 1;
    CHECK_EQ(uncached_refused(why, sizeof(why)), REFUSED_HERE);
    snprintf(expect, sizeof(expect), "%s cannot be set to 2 (Permission "
             "denied), and the driver answers no ioctl to set it", path);
    CHECK(!REFUSED_HERE || strcmp(why, expect) == 0);
    sync_mode_writes_fail = 0;
    /* A driver without sync_mode. */
    unlink(path);
    CHECK_EQ(uncached_refused(why, sizeof(why)), REFUSED_HERE);
    snprintf(expect, sizeof(expect), "%s is not there (a driver without "
             "sync_mode)", path);
    CHECK(!REFUSED_HERE || strcmp(why, expect) == 0);
    /* A driver whose SET_SYNC does not take. */
    ioctls_work = 1;
    sync_ioctls = 1;
    sync_flags = 1ull << 8;
    stand_in.ioctl = refuse_set_sync;
    CHECK_EQ(uncached_refused(why, sizeof(why)), REFUSED_HERE);
    CHECK(!REFUSED_HERE || strcmp(why, "the driver's SET_SYNC ioctl failed "
                                  "(Operation not permitted)") == 0);
    stand_in.ioctl = fake_ioctl;
    write_file("sync_mode", "1\n");
}

static void
test_open_errors_name_the_path(void)
{
    pa_memory *m = NULL;
    char err[256] = "", missing[128];
    snprintf(missing, sizeof(missing), "%s/nothing", dir);
    CHECK_EQ(pa_udmabuf_open(&stand_in, missing, sysfs, STAND_IN, &m, err,
                             sizeof(err)), -ENOENT);
    CHECK(strcmp(err, missing) == 0);
    ioctls_work = 0;
    /* No ioctl and no sysfs directory: not a u-dma-buf at all. */
    CHECK_EQ(pa_udmabuf_open(&stand_in, device, missing, STAND_IN, &m, err,
                             sizeof(err)), -ENODEV);
    CHECK(strcmp(err, missing) == 0);
    /* A sysfs directory without the attributes. */
    CHECK_EQ(pa_udmabuf_open(&stand_in, device, dir, STAND_IN, &m, err,
                             sizeof(err)), -ENOENT);
    CHECK(strstr(err, "/phys_addr") != NULL);
    CHECK(m == NULL);
}

/* Only a character device is a device node: a regular file would be
 * sub-allocated (and zeroed) as if it were the buffer.  Tests' stand-ins
 * pass PA_UDMABUF_FILE_STAND_IN, which nothing else does. */
static void
test_only_a_character_device_is_opened(void)
{
    pa_memory *m = NULL;
    char err[256] = "";
    ioctls_work = 1;
    CHECK_EQ(pa_udmabuf_open(&stand_in, device, sysfs, 0, &m, err,
                             sizeof(err)), -ENODEV);
    CHECK(strcmp(err, device) == 0);
    CHECK_EQ(pa_udmabuf_open(&stand_in, dir, sysfs, 0, &m, err, sizeof(err)),
             -EISDIR);
    CHECK(strcmp(err, dir) == 0);
    CHECK_EQ(pa_udmabuf_open(&stand_in, dir, sysfs, STAND_IN, &m, err,
                             sizeof(err)), -EISDIR);
    /* A character device of another driver: no u-dma-buf ioctl, and its
     * sysfs directory (a real one, named as the default would be) is not
     * there. */
    CHECK_EQ(pa_udmabuf_open(NULL, "/dev/null", "/sys/class/u-dma-buf/null",
                             0, &m, err, sizeof(err)), -ENODEV);
    CHECK(strcmp(err, "/sys/class/u-dma-buf/null") == 0);
    CHECK(m == NULL);
}

int
main(void)
{
    set_up();
    RUN(test_ioctl_driver);
    RUN(test_coherent_driver);
    RUN(test_sysfs_fallback);
    RUN(test_uncached_is_write_combined_by_ioctl);
    RUN(test_uncached_is_write_combined_by_sysfs);
    RUN(test_uncached_without_write_combine);
    RUN(test_open_errors_name_the_path);
    RUN(test_only_a_character_device_is_opened);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_report("test_udmabuf");
}

/* The real system calls behind pa_sys, sysfs text helpers, and symbols of
 * run-time loaded libraries. */
#include "sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int
real_open(const char *path, int flags)
{
    return open(path, flags | O_CLOEXEC);
}

static int
real_ioctl(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg);
}

static int
real_memfd_create(const char *name, unsigned int flags)
{
    return memfd_create(name, flags | MFD_CLOEXEC);
}

const pa_sys pa_sys_real = {
    .open = real_open,
    .close = close,
    .ioctl = real_ioctl,
    .mmap = mmap,
    .munmap = munmap,
    .pread = pread,
    .pwrite = pwrite,
    .memfd_create = real_memfd_create,
    .ftruncate = ftruncate,
    .flock = flock,
    .fallocate = fallocate,
};

int
pa_sys_ioctl(const pa_sys *sys, int fd, unsigned long request, void *arg)
{
    int rc;
    do {
        rc = sys->ioctl(fd, request, arg);
    } while (rc != 0 && (errno == EINTR || errno == EAGAIN));
    return rc;
}

int
pa_sys_read_text(const pa_sys *sys, const char *path, char *buf, size_t cap)
{
    int fd = sys->open(path, O_RDONLY);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = sys->pread(fd, buf, cap - 1, 0);
    int err = n < 0 ? errno : 0;
    sys->close(fd);
    if (n < 0) {
        return -err;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '
                     || buf[n - 1] == '\0')) {
        n--;
    }
    buf[n] = '\0';
    return 0;
}

int
pa_sys_write_text(const pa_sys *sys, const char *path, const char *text)
{
    int fd = sys->open(path, O_WRONLY);
    if (fd < 0) {
        return -errno;
    }
    size_t len = strlen(text);
    ssize_t n = sys->pwrite(fd, text, len, 0);
    int err = n < 0 ? errno : (size_t)n != len ? EIO : 0;
    sys->close(fd);
    return -err;
}

int
pa_load_symbols(void *library, const pa_symbol *symbols, size_t n,
                char *err_symbol, size_t err_cap)
{
    for (size_t i = 0; i < n; i++) {
        *symbols[i].slot = dlsym(library, symbols[i].name);
        if (*symbols[i].slot == NULL) {
            snprintf(err_symbol, err_cap, "%s", symbols[i].name);
            return -ENOENT;
        }
    }
    return 0;
}

/*
 * pa_sys: every system call a backend makes, behind a table that tests
 * replace, so each backend runs on a plain x86 machine without its driver.
 * The functions have libc's semantics (-1 and errno on failure).
 */
#ifndef PA_SYS_H
#define PA_SYS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pa_sys {
    int (*open)(const char *path, int flags);
    int (*close)(int fd);
    int (*ioctl)(int fd, unsigned long request, void *arg);
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd,
                  off_t offset);
    int (*munmap)(void *addr, size_t len);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t offset);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t offset);
    int (*memfd_create)(const char *name, unsigned int flags);
    int (*ftruncate)(int fd, off_t length);
    int (*flock)(int fd, int operation);
    int (*fallocate)(int fd, int mode, off_t offset, off_t len);
} pa_sys;

/* The real system calls. */
extern const pa_sys pa_sys_real;

/* ioctl, retried while a signal interrupts it (EINTR) or the driver asks
 * to be asked again (EAGAIN), as libdrm's drmIoctl does: an interrupted
 * GEM_CLOSE would otherwise leak the BO.  0, or -1 and errno. */
int pa_sys_ioctl(const pa_sys *sys, int fd, unsigned long request, void *arg);

/* Reads a small text file (a sysfs attribute) into buf, NUL-terminated and
 * without trailing white space.  0 or -errno. */
int pa_sys_read_text(const pa_sys *sys, const char *path, char *buf,
                     size_t cap);

/* Writes text to a file (a sysfs attribute) in one write.  0 or -errno. */
int pa_sys_write_text(const pa_sys *sys, const char *path, const char *text);

/* A function of a run-time loaded library, and where its address goes. */
typedef struct pa_symbol {
    const char *name;
    void **slot;
} pa_symbol;

/* Looks up each symbol in a dlopen()ed library: 0, or -ENOENT with the
 * first missing one's name in err_symbol (err_cap bytes). */
int pa_load_symbols(void *library, const pa_symbol *symbols, size_t n,
                    char *err_symbol, size_t err_cap);

#endif

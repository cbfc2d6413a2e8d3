/*
 * The xlnk backend (see xlnk.h).
 *
 * libcma's cma_free() unmaps the buffer's range itself.  Handing that range
 * to users would break freebuffer() with live views, whose range must stay
 * mapped: cma_free would unmap the anonymous memory put there.  So users
 * get a second mapping of the same buffer, made from the device and offset
 * that /proc/self/maps gives for libcma's; retiring swaps only that one,
 * and cma_free unmaps only libcma's own.
 */
#include "xlnk.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct cma_api {
    void *(*alloc)(uint32_t len, uint32_t cacheable);
    unsigned long (*get_phy_addr)(void *buf);
    void (*free)(void *buf);
    uint32_t (*pages_available)(void);
    void (*flush_cache)(void *buf, unsigned int phys, int size);
    void (*invalidate_cache)(void *buf, unsigned int phys, int size);
} cma_api;

typedef struct xlnk_state {
    const pa_sys *sys;
    void *library;
    cma_api cma;
    char maps[PATH_MAX];
    uint64_t used;
} xlnk_state;

static xlnk_state *
state_of(pa_memory *m)
{
    return pa_memory_state(m);
}

/*
 * Finds the file mapping that holds va in the maps file: the file offset
 * that va maps and the file's path.  (The mapping may have been merged with
 * a neighbour, so it need not start at va.)  0, -ENOENT (no mapping of a
 * file there), or -errno.
 */
static int
find_mapping(const pa_sys *sys, const char *maps, uintptr_t va,
             uint64_t *offset, char *path, size_t cap)
{
    int fd = sys->open(maps, O_RDONLY);
    if (fd < 0) {
        return -errno;
    }
    size_t size = 0, room = 1 << 16;
    char *text = malloc(room + 1);
    ssize_t n = 0;
    while (text != NULL
           && (n = sys->pread(fd, text + size, room - size, (off_t)size)) > 0) {
        size += (size_t)n;
        if (size == room) {
            char *bigger = realloc(text, 2 * room + 1);
            if (bigger == NULL) {
                free(text);
                text = NULL;
            }
            else {
                text = bigger;
                room *= 2;
            }
        }
    }
    int read_error = n < 0 ? errno : 0;
    sys->close(fd);
    if (text == NULL || read_error != 0) {
        free(text);
        return text == NULL ? -ENOMEM : -read_error;
    }
    text[size] = '\0';
    int rc = -ENOENT;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        uintptr_t start, end;
        uint64_t off;
        int path_at = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %" SCNx64
                   " %*s %*s %n", &start, &end, &off, &path_at) == 3
                && start <= va && va < end && path_at > 0
                && line[path_at] == '/') {
            *offset = off + (va - start);
            snprintf(path, cap, "%s", line + path_at);
            rc = 0;
            break;
        }
        line = next;
    }
    free(text);
    return rc;
}

static int
xl_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
         int cacheable, pa_block *blk)
{
    xlnk_state *s = state_of(m);
    uint64_t page = pa_page_size();
    uint64_t len = size + (align > page ? align - page : 0);
    if (len > UINT32_MAX) {
        return -ENOMEM;
    }
    void *buf = s->cma.alloc((uint32_t)len, cacheable ? 1u : 0u);
    if (buf == NULL || buf == (void *)-1) {
        return -ENOMEM;
    }
    uint64_t phys = s->cma.get_phy_addr(buf);
    uint64_t start = (phys + align - 1) & ~(align - 1);
    uint64_t length = (len + page - 1) & ~(page - 1), offset = 0;
    char path[PATH_MAX];
    int rc = 0;
    if (start + size > limit) {
        rc = -ENOMEM;       /* the kernel put it above the limit */
    }
    else {
        rc = find_mapping(s->sys, s->maps, (uintptr_t)buf, &offset, path,
                          sizeof(path));
    }
    char *mine = MAP_FAILED;
    if (rc == 0) {
        int fd = s->sys->open(path, O_RDWR);
        if (fd < 0) {
            rc = -errno;
        }
        else {
            mine = s->sys->mmap(NULL, length, PROT_READ | PROT_WRITE,
                                MAP_SHARED, fd, (off_t)offset);
            rc = mine == MAP_FAILED ? pa_mmap_error(errno) : 0;
            s->sys->close(fd);
        }
    }
    if (rc != 0) {
        s->cma.free(buf);
        return rc;
    }
    s->used += length;
    blk->device_address = start;
    blk->cpu = mine + (start - phys);
    blk->size = size;
    blk->map_base = mine;
    blk->map_length = length;
    blk->handle = (uintptr_t)buf;   /* libcma's name for it */
    blk->cacheable = (uint8_t)cacheable;
    blk->coherent = (uint8_t)!cacheable;
    return 0;
}

static void
xl_free(pa_memory *m, pa_block *blk, int keep_va)
{
    xlnk_state *s = state_of(m);
    if (!keep_va) {
        s->sys->munmap(blk->map_base, blk->map_length);
    }
    s->used -= blk->map_length;
    s->cma.free((void *)(uintptr_t)blk->handle);
}

static int
xl_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    xlnk_state *s = state_of(m);
    if (len > INT32_MAX || blk->device_address + offset > UINT32_MAX) {
        return -EINVAL;
    }
    s->cma.flush_cache((char *)blk->cpu + offset,
                       (unsigned int)(blk->device_address + offset), (int)len);
    return 0;
}

static int
xl_invalidate(pa_memory *m, const pa_block *blk, uint64_t offset,
              uint64_t len)
{
    xlnk_state *s = state_of(m);
    if (len > INT32_MAX || blk->device_address + offset > UINT32_MAX) {
        return -EINVAL;
    }
    s->cma.invalidate_cache((char *)blk->cpu + offset,
                            (unsigned int)(blk->device_address + offset),
                            (int)len);
    return 0;
}

static void
xl_stats(pa_memory *m, pa_stats *out)
{
    xlnk_state *s = state_of(m);
    uint64_t free_bytes = (uint64_t)s->cma.pages_available() * pa_page_size();
    /* The kernel's CMA pool; its fragmentation is not visible. */
    out->total = s->used + free_bytes;
    out->used = s->used;
    out->free = free_bytes;
    out->largest_free = free_bytes;
}

static void
xl_destroy(xlnk_state *s)
{
    if (s->library != NULL) {
        dlclose(s->library);
    }
    free(s);
}

static void
xl_close(pa_memory *m)
{
    xl_destroy(state_of(m));
}

static const pa_backend_ops xlnk_ops = {
    .kind = "xlnk",
    .reuse_blocks = 0,      /* a kept buffer would hold kernel memory */
    .sync_calls_driver = 1,
    .alloc = xl_alloc,
    .zero = NULL,           /* the kernel zeroes every cma_alloc */
    .free = xl_free,
    .flush = xl_flush,
    .invalidate = xl_invalidate,
    .device_read = NULL,
    .device_write = NULL,
    .stats = xl_stats,
    .close = xl_close,
};

int
pa_xlnk_open(const pa_sys *sys, const char *library, const char *maps,
             pa_memory **out, char *err_path, char *err_symbol,
             size_t err_cap)
{
    xlnk_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->sys = sys != NULL ? sys : &pa_sys_real;
    snprintf(s->maps, sizeof(s->maps), "%s", maps);
    snprintf(err_path, err_cap, "%s", library);
    err_symbol[0] = '\0';
    s->library = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (s->library == NULL) {
        xl_destroy(s);
        return -ENOENT;
    }
    const pa_symbol symbols[] = {
        {"cma_alloc", (void **)&s->cma.alloc},
        {"cma_get_phy_addr", (void **)&s->cma.get_phy_addr},
        {"cma_free", (void **)&s->cma.free},
        {"cma_pages_available", (void **)&s->cma.pages_available},
        {"cma_flush_cache", (void **)&s->cma.flush_cache},
        {"cma_invalidate_cache", (void **)&s->cma.invalidate_cache},
    };
    int rc = pa_load_symbols(s->library, symbols,
                             sizeof(symbols) / sizeof(symbols[0]), err_symbol,
                             err_cap);
    if (rc != 0) {
        xl_destroy(s);
        return rc;
    }
    uint64_t total = (uint64_t)s->cma.pages_available() * pa_page_size();
    rc = pa_memory_create(&xlnk_ops, s, 0, total, out);
    if (rc != 0) {
        xl_destroy(s);
    }
    return rc;
}

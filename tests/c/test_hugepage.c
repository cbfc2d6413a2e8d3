/* Tests of the hugepage backend on real huge pages, under the sanitizers.
 * Needs root; skipped (and said so) without it, and under qemu-user, where
 * pagemap describes the emulator's address space rather than the guest's.
 * Physical addresses are checked against pagemap read here, independently
 * of the backend. */
#include "../../src/core/hugepage.h"
#include "check.h"
#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024ull * 1024ull)
#define NR "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

/* Every 4 KiB page of [p, p + n) lies at pa + its offset. */
static int
physically_at(const void *p, uint64_t n, uint64_t pa)
{
    int fd = open("/proc/self/pagemap", O_RDONLY), ok = fd >= 0;
    for (uint64_t off = 0; ok && off < n; off += 4096) {
        const volatile char *va = (const char *)p + off;
        uint64_t entry = 0;
        (void)*va;
        ok = pread(fd, &entry, 8, (off_t)((uintptr_t)va / 4096 * 8)) == 8
             && (entry >> 63) == 1
             && (entry & ((1ull << 55) - 1)) * 4096 == pa + off;
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void
test_real_huge_pages(void)
{
    pa_memory *m = NULL;
    pa_block b[3];
    pa_stats s;
    char err[256];
    uint64_t sizes[3] = {4096, 100 * 1024, 2 * MiB - 8192};
    CHECK_EQ(pa_hugepage_open(NULL, 8 * MiB, 2 * MiB,
                              "/sys/kernel/mm/hugepages", "/proc/self/pagemap",
                              1, &m, NULL, err, sizeof(err)), 0);
    if (m == NULL) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pa_memory_alloc(m, sizes[i], 0, 0, 1, &b[i]), 0);
        CHECK(b[i].coherent);           /* x86; run natively only */
        CHECK(physically_at(b[i].cpu, b[i].size, b[i].device_address));
    }
    uint64_t word = 0x1122334455667788ull, seen = 0;
    CHECK_EQ(pa_memory_device_write(m, b[1].device_address + 64, &word, 8), 0);
    CHECK(memcmp((char *)b[1].cpu + 64, &word, 8) == 0);
    CHECK_EQ(pa_memory_device_read(m, b[1].device_address + 64, &seen, 8), 0);
    CHECK_EQ(seen, word);
    /* Past the last block: free or outside every run (b[1]'s end may be
     * b[2]'s start, when the pages lie physically in a row). */
    CHECK_EQ(pa_memory_device_read(m, b[2].device_address + b[2].size, &seen,
                                   1), -EFAULT);
    CHECK_EQ(pa_memory_retire(m, &b[2]), 0);
    ((char *)b[2].cpu)[0] = 1;          /* still mapped */
    pa_memory_unmap_retired(m, &b[2]);
    pa_memory_release(m, &b[0]);
    pa_memory_release(m, &b[1]);
    pa_memory_stats(m, &s);
    CHECK_EQ(s.total, 8 * MiB);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.buffers, 0);
    pa_memory_close(m);
}

/* Releases a block for real: stats() gives back what the reuse cache
 * holds. */
static void
release_now(pa_memory *m, pa_block *b)
{
    pa_stats s;
    pa_memory_release(m, b);
    pa_memory_stats(m, &s);
}

static void
test_whole_pages_and_retired_ones(void)
{
    /* Blocks of whole huge pages come from the pool's own mapping; one
     * that is retired while views hold it gives its pages back at once,
     * and they are mapped elsewhere until the views' addresses are free,
     * then home again. */
    pa_memory *m = NULL;
    pa_block b[4], again, back;
    pa_stats st;
    char err[256];
    CHECK_EQ(pa_hugepage_open(NULL, 8 * MiB, 2 * MiB,
                              "/sys/kernel/mm/hugepages", "/proc/self/pagemap",
                              1, &m, NULL, err, sizeof(err)), 0);
    if (m == NULL) {
        return;
    }
    for (int i = 0; i < 4; i++) {       /* the whole pool */
        CHECK_EQ(pa_memory_alloc(m, 2 * MiB, 0, 0, PA_ALLOC_CACHEABLE, &b[i]),
                 0);
        CHECK(physically_at(b[i].cpu, b[i].size, b[i].device_address));
        memset(b[i].cpu, 0x10 + i, b[i].size);
    }
    char *views = b[0].cpu;
    uint64_t at = b[0].device_address;
    CHECK_EQ(pa_memory_retire(m, &b[0]), 0);
    CHECK_EQ(views[0], 0x10);           /* parked while nothing needs it */
    CHECK_EQ(pa_memory_alloc(m, 2 * MiB, 0, 0, PA_ALLOC_CACHEABLE, &again),
             0);
    CHECK_EQ(views[0], 0);              /* anonymous memory now */
    views[0] = 1;
    CHECK_EQ(again.device_address, at);
    CHECK((char *)again.cpu != views);  /* the views keep their memory */
    CHECK(physically_at(again.cpu, again.size, again.device_address));
    CHECK_EQ(((char *)again.cpu)[0], 0);
    ((char *)again.cpu)[1] = 7;
    CHECK_EQ(views[0], 1);
    CHECK_EQ(views[1], 0);
    release_now(m, &again);
    pa_memory_unmap_retired(m, &b[0]);  /* the last view is gone */
    CHECK_EQ(pa_memory_alloc(m, 2 * MiB, 0, 0, PA_ALLOC_CACHEABLE, &back), 0);
    CHECK_EQ(back.device_address, at);
    CHECK((char *)back.cpu == views);   /* mapped home again */
    CHECK(physically_at(back.cpu, back.size, back.device_address));
    CHECK_EQ(((char *)back.cpu)[1], 0); /* zeroed */
    release_now(m, &back);
    /* Closing the memory leaves a retired block's views their memory. */
    views = b[1].cpu;
    CHECK_EQ(pa_memory_retire(m, &b[1]), 0);
    release_now(m, &b[2]);
    release_now(m, &b[3]);
    pa_memory_stats(m, &st);
    CHECK_EQ(st.used, 0);
    CHECK_EQ(st.buffers, 0);
    pa_memory_close(m);
    views[0] = 3;
    CHECK_EQ(views[0], 3);
    pa_memory_unmap_retired(NULL, &b[1]);   /* the memory is closed */
}

/* Maps anonymous memory at exactly `at` (which must be free), filled
 * with `fill`: 1 if it could. */
static int
map_mine(void *at, uint64_t n, int fill)
{
    void *p = mmap(at, n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != at) {
        return 0;
    }
    memset(p, fill, n);
    return 1;
}

static int
all_bytes_are(const void *p, uint64_t n, int value)
{
    const unsigned char *c = p;
    for (uint64_t i = 0; i < n; i++) {
        if (c[i] != value) {
            return 0;
        }
    }
    return 1;
}

/* A forked child's part: it gives up the three whole-page blocks it got
 * from its parent (one kept for reuse, one live, one retired), maps
 * memory of its own where they were, and closes the memory: that memory
 * must stay.  The exit status says what went wrong (a crash: a signal). */
static int
child_maps_over_its_parents_blocks(pa_memory *m, pa_block *kept,
                                   pa_block *live, pa_block *retired)
{
    char *at[3] = {kept->cpu, live->cpu, retired->cpu};
    uint64_t n = kept->size;
    pa_memory_release(m, live);
    if (pa_memory_retire(m, retired) != 0) {
        return 2;
    }
    pa_memory_unmap_retired(m, retired);
    for (int i = 0; i < 3; i++) {
        if (!map_mine(at[i], n, 0x5A)) {
            return 3;               /* the fork left a mapping there */
        }
    }
    pa_memory_close(m);
    for (int i = 0; i < 3; i++) {
        if (!all_bytes_are(at[i], n, 0x5A)) {
            return 4;
        }
    }
    return 0;
}

static void
test_a_child_closing_leaves_what_it_mapped_since(void)
{
    pa_memory *m = NULL;
    pa_block b[3];
    char err[256];
    CHECK_EQ(pa_hugepage_open(NULL, 8 * MiB, 2 * MiB,
                              "/sys/kernel/mm/hugepages", "/proc/self/pagemap",
                              1, &m, NULL, err, sizeof(err)), 0);
    if (m == NULL) {
        return;
    }
    for (int i = 0; i < 3; i++) {       /* from the home mapping */
        CHECK_EQ(pa_memory_alloc(m, 2 * MiB, 0, 0, PA_ALLOC_CACHEABLE, &b[i]),
                 0);
        memset(b[i].cpu, 0x10 + i, b[i].size);
    }
    pa_block kept = b[0];
    pa_memory_release(m, &b[0]);        /* kept for reuse */
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        _exit(child_maps_over_its_parents_blocks(m, &kept, &b[1], &b[2]));
    }
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status)) {
        fprintf(stderr, "the child died of signal %d\n", WTERMSIG(status));
    }
    /* The parent's blocks are as they were. */
    CHECK(all_bytes_are(b[1].cpu, b[1].size, 0x11));
    CHECK(all_bytes_are(b[2].cpu, b[2].size, 0x12));
    CHECK(physically_at(b[1].cpu, b[1].size, b[1].device_address));
    pa_memory_release(m, &b[1]);
    pa_memory_release(m, &b[2]);
    pa_memory_close(m);
}

static int
open_counted(const pa_sys *sys, pa_memory **m)
{
    char err[256];
    return pa_hugepage_open(sys, 4 * MiB, 2 * MiB, "/sys/kernel/mm/hugepages",
                            "/proc/self/pagemap", 1, m, NULL, err, sizeof(err));
}

/* Every block is mapped cached, and x86 DMA is coherent: a kept block
 * serves the default (uncached) request as it serves a cacheable one,
 * with no system call, either way round. */
static void
test_default_requests_reuse_blocks(void)
{
    static const unsigned kinds[][2] = {
        {0, 0}, {PA_ALLOC_CACHEABLE, 0}, {0, PA_ALLOC_CACHEABLE}};
    pa_sys sys = faulty_sys(&pa_sys_real, 0, 0);   /* counts, never fails */
    pa_memory *m = NULL;
    pa_block a, b;
    CHECK_EQ(open_counted(&sys, &m), 0);
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, kinds[i][0], &a), 0);
        uint64_t at = a.device_address;
        void *cpu = a.cpu;
        memset(a.cpu, 0xAB, 4096);
        pa_memory_release(m, &a);
        long mmaps = fault_mmaps, munmaps = fault_munmaps;
        CHECK_EQ(pa_memory_alloc(m, 4096, 0, 0, kinds[i][1], &b), 0);
        CHECK_EQ(fault_mmaps, mmaps);
        CHECK_EQ(fault_munmaps, munmaps);
        CHECK_EQ(b.device_address, at);
        CHECK(b.cpu == cpu && b.cacheable && b.coherent);
        CHECK_EQ(((unsigned char *)b.cpu)[4095], 0);
        /* The glue's fast path, without locks of its own released. */
        pa_memory_release(m, &b);
        int hit = pa_memory_try_reuse(m, 4096, 0, 0, kinds[i][1], &b);
        CHECK_EQ(hit, 1);
        if (hit) {
            CHECK_EQ(b.device_address, at);
            CHECK_EQ(fault_mmaps, mmaps);
            release_now(m, &b);
        }
    }
    pa_memory_close(m);
}

static void
test_bad_page_size(void)
{
    pa_memory *m = NULL;
    char err[256];
    CHECK_EQ(pa_hugepage_open(NULL, 8 * MiB, 4096, "/sys/kernel/mm/hugepages",
                              "/proc/self/pagemap", 0, &m, NULL, err,
                              sizeof(err)),
             -EINVAL);
    CHECK(m == NULL);
}

#define DIR2M "/sys/kernel/mm/hugepages/hugepages-2048kB"

static uint64_t
count_of(const char *dir, const char *name)
{
    char path[512], text[32] = "";
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    if (fd >= 0) {
        close(fd);
    }
    CHECK(n > 0);
    return strtoull(text, NULL, 10);
}

static void
set_count(const char *dir, const char *name, uint64_t value)
{
    char path[512], text[32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(text, sizeof(text), "%llu", (unsigned long long)value);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    if (fd >= 0) {
        close(fd);
    }
}

/* With no free huge page, opening raises nr_hugepages for its pages and
 * puts it back at once: the pages are surplus ones, which the kernel frees
 * when the pool closes.  The report says what was taken. */
static void
test_pages_taken_go_back_when_closed(void)
{
    uint64_t in_use = count_of(DIR2M, "nr_hugepages")
                      - count_of(DIR2M, "free_hugepages");
    set_count(DIR2M, "nr_hugepages", in_use);   /* none free */
    uint64_t total = count_of(DIR2M, "nr_hugepages");
    uint64_t surplus = count_of(DIR2M, "surplus_hugepages");
    pa_memory *m = NULL;
    pa_hugepage_report report;
    char err[256];
    CHECK_EQ(pa_hugepage_open(NULL, 4 * MiB, 2 * MiB,
                              "/sys/kernel/mm/hugepages", "/proc/self/pagemap",
                              1, &m, &report, err, sizeof(err)), 0);
    if (m == NULL) {
        return;
    }
    CHECK_EQ(report.needed, 2);
    CHECK_EQ(report.available, 0);
    CHECK_EQ(report.asked, 2);
    CHECK_EQ(report.taken, 2);
    CHECK_EQ(report.put_back, 0);
    /* nr_hugepages counts the surplus pages while they are in use. */
    CHECK_EQ(count_of(DIR2M, "surplus_hugepages"), surplus + 2);
    CHECK_EQ(count_of(DIR2M, "nr_hugepages"), total + 2);
    pa_memory_close(m);
    CHECK_EQ(count_of(DIR2M, "nr_hugepages"), total);
    CHECK_EQ(count_of(DIR2M, "surplus_hugepages"), surplus);
    /* Without reserve nothing is asked, and the error says what was free. */
    CHECK_EQ(pa_hugepage_open(NULL, 4 * MiB, 2 * MiB,
                              "/sys/kernel/mm/hugepages", "/proc/self/pagemap",
                              0, &m, &report, err, sizeof(err)), -ENOMEM);
    CHECK_EQ(report.asked, 0);
    CHECK_EQ(report.available, 0);
    CHECK(strstr(err, "nr_hugepages") != NULL);
    CHECK_EQ(count_of(DIR2M, "nr_hugepages"), total);
}

/* The sums, against a stand-in sysfs directory: the raise comes on top of
 * nr_hugepages (which counts surplus pages, that a raise makes persistent
 * first) and the put-back writes the count without surplus pages.  Others'
 * reserved pages are not free for this pool. */
static void
test_raise_and_put_back_sums(void)
{
    char root[] = "/tmp/pynq-alloc-hugepages-XXXXXX", dir[256];
    CHECK(mkdtemp(root) != NULL);
    snprintf(dir, sizeof(dir), "%s/hugepages-2048kB", root);
    CHECK(mkdir(dir, 0755) == 0);
    set_count(dir, "nr_hugepages", 10);         /* 7 persistent, 3 surplus */
    set_count(dir, "surplus_hugepages", 3);
    set_count(dir, "free_hugepages", 2);
    set_count(dir, "resv_hugepages", 1);        /* 1 free for this pool */
    pa_memory *m = NULL;
    pa_hugepage_report report;
    char err[256];
    int rc = pa_hugepage_open(NULL, 6 * MiB, 2 * MiB, root,
                              "/proc/self/pagemap", 1, &m, &report, err,
                              sizeof(err));
    pa_memory_close(m);     /* the real pages, whether or not there were */
    CHECK(rc == 0 || rc == -ENOMEM);
    CHECK_EQ(report.needed, 3);
    CHECK_EQ(report.available, 1);
    CHECK_EQ(report.asked, 2);
    CHECK_EQ(report.taken, 2);      /* the stand-in file took the raise */
    CHECK_EQ(count_of(dir, "nr_hugepages"), 7);
    /* Enough free: nothing written. */
    set_count(dir, "nr_hugepages", 10);
    set_count(dir, "free_hugepages", 5);
    rc = pa_hugepage_open(NULL, 6 * MiB, 2 * MiB, root, "/proc/self/pagemap",
                          1, &m, &report, err, sizeof(err));
    pa_memory_close(rc == 0 ? m : NULL);
    CHECK_EQ(report.available, 4);
    CHECK_EQ(report.asked, 0);
    CHECK_EQ(count_of(dir, "nr_hugepages"), 10);
    const char *names[] = {"nr_hugepages", "surplus_hugepages",
                           "free_hugepages", "resv_hugepages"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    rmdir(root);
}

int
main(void)
{
    if (geteuid() != 0 || getenv("PA_NO_HUGEPAGES") != NULL) {
        printf("test_hugepage: skipped (needs root, not under qemu)\n");
        return 0;
    }
    char saved[32] = "";
    int fd = open(NR, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, saved, sizeof(saved) - 1) : -1;
    if (fd >= 0) {
        close(fd);
    }
    RUN(test_real_huge_pages);
    RUN(test_whole_pages_and_retired_ones);
    RUN(test_a_child_closing_leaves_what_it_mapped_since);
    RUN(test_default_requests_reuse_blocks);
    RUN(test_bad_page_size);
    RUN(test_pages_taken_go_back_when_closed);
    RUN(test_raise_and_put_back_sums);
    if (n > 0 && (fd = open(NR, O_WRONLY)) >= 0) {   /* put it back */
        if (write(fd, saved, (size_t)n) != n) {
            fprintf(stderr, "could not restore %s\n", NR);
        }
        close(fd);
    }
    return check_report("test_hugepage");
}

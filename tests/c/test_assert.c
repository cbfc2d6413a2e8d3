/* PA_ASSERT: aborts with its message in a debug build (the tests are one:
 * the Makefile defines PA_DEBUG), compiles to nothing in a user build
 * (assert_off.c); and one of the core's checks that needs a debug build's
 * bookkeeping: no release while the block is being flushed. */
#include "../../src/core/memory.h"
#include "../../src/core/pa_assert.h"
#include "check.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PA_DEBUG
#error "the C tests are built with -DPA_DEBUG"
#endif

int assert_off_trips(int *evaluated);

/* Asserts x == 2; returns the assertion's line (on the same line). */
static int
trip(int x)
{
    PA_ASSERT(x == 2); return __LINE__;
}

/* A backend whose flush releases the block it flushes (another thread
 * would, in a program that breaks memory.h's rule). */
static int
racy_alloc(pa_memory *m, uint64_t size, uint64_t align, uint64_t limit,
           int cacheable, pa_block *blk)
{
    (void)m, (void)align, (void)limit;
    memset(blk, 0, sizeof(*blk));
    blk->device_address = 0x10000;
    blk->size = size;
    blk->cacheable = (uint8_t)cacheable;
    return 0;
}

static void
racy_free(pa_memory *m, pa_block *blk, int keep_va)
{
    (void)m, (void)blk, (void)keep_va;
}

static int
racy_flush(pa_memory *m, const pa_block *blk, uint64_t offset, uint64_t len)
{
    (void)offset, (void)len;
    pa_block copy = *blk;
    pa_memory_release(m, &copy);
    return 0;
}

static void
racy_stats(pa_memory *m, pa_stats *out)
{
    (void)m;
    memset(out, 0, sizeof(*out));
}

static void
racy_close(pa_memory *m)
{
    (void)m;
}

static const pa_backend_ops racy_ops = {
    .kind = "racy", .alloc = racy_alloc, .free = racy_free,
    .flush = racy_flush, .invalidate = racy_flush, .stats = racy_stats,
    .close = racy_close};

/* Flushes a block of a racy memory; returns only if nothing noticed. */
static int
release_while_flushing(int unused)
{
    (void)unused;
    pa_memory *m = NULL;
    pa_block b;
    if (pa_memory_create(&racy_ops, NULL, 0, 1 << 20, &m) == 0
            && pa_memory_alloc(m, 4096, 0, 0, PA_ALLOC_CACHEABLE, &b) == 0) {
        pa_memory_flush(m, &b, 0, 64);
    }
    return 0;
}

/* Runs fn(x) in a child: its exit status, and its stderr into err. */
static int
run_child(int (*fn)(int), int x, char *err, size_t cap)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        fn(x);
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    for (ssize_t n; got < cap - 1
                    && (n = read(fds[0], err + got, cap - 1 - got)) > 0;) {
        got += (size_t)n;
    }
    err[got] = '\0';
    close(fds[0]);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

static void
test_a_false_assertion_aborts_with_its_text(void)
{
    char err[1024];
    int status = run_child(trip, 3, err, sizeof(err));
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    char expected[128];
    snprintf(expected, sizeof(expected),
             "test_assert.c:%d: assertion failed: x == 2\n", trip(2));
    CHECK(strstr(err, expected) != NULL);
    if (strstr(err, expected) == NULL) {
        fprintf(stderr, "child said: %s", err);
    }
}

static void
test_a_true_assertion_does_nothing(void)
{
    char err[1024];
    int status = run_child(trip, 2, err, sizeof(err));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(err[0], '\0');
}

static void
test_without_pa_debug_it_compiles_away(void)
{
    int evaluated = 0;
    CHECK_EQ(assert_off_trips(&evaluated), 1);
    CHECK_EQ(evaluated, 0);
}

static void
test_a_release_during_a_flush_aborts(void)
{
    char err[1024];
    int status = run_child(release_while_flushing, 0, err, sizeof(err));
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(err, "memory.c:") != NULL
          && strstr(err, "assertion failed: ") != NULL
          && strstr(err, "!syncing(m, blk)") != NULL);
}

int
main(void)
{
    RUN(test_a_false_assertion_aborts_with_its_text);
    RUN(test_a_true_assertion_does_nothing);
    RUN(test_without_pa_debug_it_compiles_away);
    RUN(test_a_release_during_a_flush_aborts);
    return check_report("test_assert");
}

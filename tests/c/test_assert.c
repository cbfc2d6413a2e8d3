/* PA_ASSERT: aborts with its message in a debug build (the tests are one:
 * the Makefile defines PA_DEBUG), compiles to nothing in a user build
 * (assert_off.c). */
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

/* Runs trip(x) in a child: its exit status, and its stderr into err. */
static int
run_child(int x, char *err, size_t cap)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        trip(x);
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
    int status = run_child(3, err, sizeof(err));
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
    int status = run_child(2, err, sizeof(err));
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

int
main(void)
{
    RUN(test_a_false_assertion_aborts_with_its_text);
    RUN(test_a_true_assertion_does_nothing);
    RUN(test_without_pa_debug_it_compiles_away);
    return check_report("test_assert");
}

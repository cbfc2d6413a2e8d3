/* A tiny test helper: CHECK(cond) records a failure and carries on. */
#ifndef PA_CHECK_H
#define PA_CHECK_H

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int check_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

#define CHECK_EQ(a, b)                                                     \
    do {                                                                   \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);    \
        if (check_a_ != check_b_) {                                        \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n",      \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);       \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

static int cases_passed, cases_failed;

/* Runs one test case; it fails if any CHECK inside it failed. */
#define RUN(test)                                                          \
    do {                                                                   \
        int before_ = check_failures;                                      \
        test();                                                            \
        if (check_failures == before_) {                                   \
            cases_passed++;                                                \
        }                                                                  \
        else {                                                             \
            fprintf(stderr, "FAILED: %s\n", #test);                        \
            cases_failed++;                                                \
        }                                                                  \
    } while (0)

/* Prints the closing line and returns main's exit status. */
static int
check_report(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, cases_passed, cases_failed);
    return cases_failed != 0;
}

/* Whether a (small) text file, such as a stand-in's log, contains text. */
static inline int
file_has(const char *path, const char *text)
{
    char buf[16384] = "";
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0) {
        close(fd);
    }
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, text) != NULL;
}

#endif

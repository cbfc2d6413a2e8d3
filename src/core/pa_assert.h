/*
 * PA_ASSERT(cond): a precondition or invariant that the headers state in
 * prose, checked where checking is cheap.
 *
 * With PA_DEBUG defined (the C tests, the sanitized suite) a false cond
 * prints "file:line: assertion failed: cond" to stderr and aborts.
 * Without it (every user build) it compiles to nothing: cond is not
 * evaluated, only named inside sizeof, so that variables used in checks
 * alone raise no unused-variable warning.  The core never prints or
 * aborts in a user build.
 */
#ifndef PA_ASSERT_H
#define PA_ASSERT_H

#ifdef PA_DEBUG
#include <stdio.h>
#include <stdlib.h>

#define PA_ASSERT(cond)                                                    \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,     \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)
#else
#define PA_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#endif

/* For the stand-in libraries: appends one formatted line to a log file. */
#ifndef PA_STAND_IN_LOG_LINE_H
#define PA_STAND_IN_LOG_LINE_H

#include <stdarg.h>
#include <stdio.h>

static void
append_line(const char *path, const char *format, va_list va)
{
    FILE *f = path != NULL && path[0] != '\0' ? fopen(path, "a") : NULL;
    if (f == NULL) {
        return;
    }
    vfprintf(f, format, va);
    fputc('\n', f);
    fclose(f);
}

#endif

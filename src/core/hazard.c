/* Coherence hazards, kept per thread (see hazard.h). */
#include "hazard.h"
#include "pa_assert.h"

#include <errno.h>
#include <string.h>

static const char *const mode_names[] = {"off", "warn", "raise"};

static const char *const kind_names[PA_HAZARD_KINDS + 1] = {
    [PA_HAZARD_UNFLUSHED_READ] = "unflushed-read",
    [PA_HAZARD_WRITE_UNDER_DIRTY] = "write-under-dirty",
    [PA_HAZARD_WRITEBACK_CLOBBERED] = "writeback-clobbered",
    [PA_HAZARD_DISCARDED] = "discarded",
    [PA_HAZARD_UNFLUSHED] = "unflushed",
    [PA_HAZARD_UNINVALIDATED] = "uninvalidated",
    [PA_HAZARD_EDGE_RELOADED] = "edge-reloaded",
};

_Static_assert(PA_HAZARD_EDGE_RELOADED == PA_HAZARD_KINDS,
               "PA_HAZARD_KINDS counts the kinds");
_Static_assert(PA_COHERENCE_RAISE + 1
               == sizeof(mode_names) / sizeof(mode_names[0]),
               "a name per mode");

const char *
pa_coherence_mode_name(int mode)
{
    return mode >= PA_COHERENCE_OFF && mode <= PA_COHERENCE_RAISE
           ? mode_names[mode] : NULL;
}

int
pa_coherence_mode_parse(const char *name)
{
    for (int mode = PA_COHERENCE_OFF; mode <= PA_COHERENCE_RAISE; mode++) {
        if (strcmp(name, mode_names[mode]) == 0) {
            return mode;
        }
    }
    return -EINVAL;
}

const char *
pa_hazard_kind_name(int kind)
{
    return kind >= 1 && kind <= PA_HAZARD_KINDS ? kind_names[kind] : NULL;
}

static _Thread_local struct {
    pa_hazard kept[PA_HAZARDS_KEPT];
    size_t count;
    uint64_t lost;
} hazards;

/* Whether the last record is one that [start, ...) of kind continues. */
static int
extends_last(int kind, uint64_t block, uint64_t start)
{
    if (hazards.count == 0) {
        return 0;
    }
    const pa_hazard *last = &hazards.kept[hazards.count - 1];
    return last->kind == kind && last->block == block && last->end == start;
}

void
pa_hazard_note(int kind, uint64_t block, uint64_t start, uint64_t end)
{
    PA_ASSERT(pa_hazard_kind_name(kind) != NULL && start < end);
    if (extends_last(kind, block, start)) {
        hazards.kept[hazards.count - 1].end = end;
        return;
    }
    if (hazards.count == PA_HAZARDS_KEPT) {
        hazards.lost++;
        return;
    }
    hazards.kept[hazards.count++] = (pa_hazard){
        .kind = kind, .block = block, .start = start, .end = end};
}

int
pa_hazard_fits(int kind, uint64_t block, uint64_t start)
{
    return hazards.count < PA_HAZARDS_KEPT
           || extends_last(kind, block, start);
}

int
pa_hazards_pending(void)
{
    return hazards.count > 0 || hazards.lost > 0;
}

size_t
pa_hazards_take(pa_hazard *out, size_t cap, uint64_t *lost)
{
    size_t n = hazards.count < cap ? hazards.count : cap;
    if (n > 0) {
        memcpy(out, hazards.kept, n * sizeof(*out));
    }
    if (lost != NULL) {
        *lost = hazards.lost + (hazards.count - n);
    }
    hazards.count = 0;
    hazards.lost = 0;
    return n;
}

/* The hazard records and the names the glue takes from the core. */
#include "../../src/core/hazard.h"
#include "check.h"

#include <errno.h>
#include <string.h>

static int
same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void
test_kind_names(void)
{
    CHECK(same(pa_hazard_kind_name(PA_HAZARD_UNFLUSHED_READ),
               "unflushed-read"));
    CHECK(same(pa_hazard_kind_name(PA_HAZARD_WRITE_UNDER_DIRTY),
               "write-under-dirty"));
    CHECK(same(pa_hazard_kind_name(PA_HAZARD_WRITEBACK_CLOBBERED),
               "writeback-clobbered"));
    CHECK(same(pa_hazard_kind_name(PA_HAZARD_DISCARDED), "discarded"));
    CHECK(same(pa_hazard_kind_name(PA_HAZARD_UNFLUSHED), "unflushed"));
    CHECK(same(pa_hazard_kind_name(PA_HAZARD_UNINVALIDATED),
               "uninvalidated"));
    CHECK_EQ(PA_HAZARD_UNFLUSHED_READ, 1);
    CHECK(same(pa_hazard_kind_name(PA_HAZARD_EDGE_RELOADED),
               "edge-reloaded"));
    CHECK_EQ(PA_HAZARD_EDGE_RELOADED, PA_HAZARD_KINDS);
    CHECK(pa_hazard_kind_name(0) == NULL);
    CHECK(pa_hazard_kind_name(PA_HAZARD_KINDS + 1) == NULL);
    CHECK(pa_hazard_kind_name(-1) == NULL);
}

static void
test_mode_names(void)
{
    static const char *const names[] = {"off", "warn", "raise"};
    for (int mode = PA_COHERENCE_OFF; mode <= PA_COHERENCE_RAISE; mode++) {
        CHECK(same(pa_coherence_mode_name(mode), names[mode]));
        CHECK_EQ(pa_coherence_mode_parse(names[mode]), mode);
    }
    CHECK_EQ(PA_COHERENCE_WARN, 1);
    CHECK(pa_coherence_mode_name(-1) == NULL);
    CHECK(pa_coherence_mode_name(PA_COHERENCE_RAISE + 1) == NULL);
    CHECK_EQ(pa_coherence_mode_parse("Warn"), -EINVAL);
    CHECK_EQ(pa_coherence_mode_parse(""), -EINVAL);
    CHECK_EQ(pa_coherence_mode_parse("warning"), -EINVAL);
}

/* Adjacent ranges of one kind and block merge; past PA_HAZARDS_KEPT
 * records hazards are counted as lost, unless they extend the last. */
static void
test_records_merge_then_count(void)
{
    pa_hazard h[PA_HAZARDS_KEPT + 1];
    uint64_t lost = 99;
    CHECK(!pa_hazards_pending());
    CHECK_EQ(pa_hazards_take(h, PA_HAZARDS_KEPT, &lost), 0);
    CHECK_EQ(lost, 0);
    pa_hazard_note(PA_HAZARD_UNFLUSHED, 0x1000, 0x1000, 0x1040);
    pa_hazard_note(PA_HAZARD_UNFLUSHED, 0x1000, 0x1040, 0x1080);
    CHECK(pa_hazards_pending());
    CHECK_EQ(pa_hazards_take(h, PA_HAZARDS_KEPT, NULL), 1);
    CHECK(h[0].kind == PA_HAZARD_UNFLUSHED && h[0].block == 0x1000
          && h[0].start == 0x1000 && h[0].end == 0x1080);
    for (uint64_t i = 0; i < PA_HAZARDS_KEPT; i++) {
        pa_hazard_note(PA_HAZARD_DISCARDED, 0x1000, 0x1000 + 128 * i,
                       0x1000 + 128 * i + 64);
    }
    uint64_t next = 0x1000 + 128 * PA_HAZARDS_KEPT;
    CHECK(!pa_hazard_fits(PA_HAZARD_DISCARDED, 0x1000, next));
    CHECK(pa_hazard_fits(PA_HAZARD_DISCARDED, 0x1000, next - 64));
    pa_hazard_note(PA_HAZARD_DISCARDED, 0x1000, next - 64, next);
    pa_hazard_note(PA_HAZARD_DISCARDED, 0x1000, next + 64, next + 128);
    CHECK_EQ(pa_hazards_take(h, 2, &lost), 2);
    CHECK_EQ(lost, 1 + PA_HAZARDS_KEPT - 2);
    CHECK(!pa_hazards_pending());
    CHECK_EQ(pa_hazards_take(h, PA_HAZARDS_KEPT, &lost), 0);
    CHECK_EQ(lost, 0);
}

int
main(void)
{
    RUN(test_kind_names);
    RUN(test_mode_names);
    RUN(test_records_merge_then_count);
    return check_report("test_hazard");
}

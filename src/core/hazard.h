/* TEMPORARY bridge to the old names until the core's hazard.h lands. */
#ifndef PA_HAZARD_H
#define PA_HAZARD_H
#include "sim.h"
#define PA_HAZARD_KINDS 6
static inline const char *
pa_hazard_kind_name(int k)
{
    static const char *const names[] = {NULL, "unflushed-read",
        "write-under-dirty", "writeback-clobbered", "discarded", "unflushed",
        "uninvalidated"};
    return k >= 1 && k <= 6 ? names[k] : NULL;
}
#define pa_hazards_pending pa_sim_hazards_pending
#define pa_hazards_take pa_sim_take_hazards
#define pa_memory_coherence pa_sim_coherence
#define pa_memory_check pa_sim_check
#define pa_memory_has_device_writes pa_sim_has_device_writes
#endif

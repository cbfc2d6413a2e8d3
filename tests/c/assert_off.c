/* A translation unit built as user builds are, without PA_DEBUG, for
 * test_assert: there PA_ASSERT must compile to nothing. */
#undef PA_DEBUG
#include "../../src/core/pa_assert.h"

int assert_off_trips(int *evaluated);

/* A false assertion whose condition has a side effect: returns normally,
 * and *evaluated stays 0. */
int
assert_off_trips(int *evaluated)
{
    PA_ASSERT(++*evaluated < 0);
    return 1;
}

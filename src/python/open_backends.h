/* open_backends.c: _open_<kind>(**options) -> Memory, one per backend,
 * and the DRM query the package's device probe uses. */
#ifndef PA_OPEN_BACKENDS_H
#define PA_OPEN_BACKENDS_H

#include "numpy_api.h"

extern PyMethodDef pa_open_methods[];

#endif

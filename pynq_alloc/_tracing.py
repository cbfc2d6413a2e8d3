"""Recording where each buffer is allocated (off by default).

The record is kept by the C core (src/python/inventory.c) and shown by
Memory.buffers(), MemoryError messages and the pytest plugin.
"""
from __future__ import annotations

import os
from typing import Optional

from . import _core
from ._spec import as_bool

ENV_VAR = "PYNQ_ALLOC_TRACE"
DEFAULT_FRAMES = 5


def trace(enabled: Optional[bool] = None,
          frames: Optional[int] = None) -> bool:
    """Record the Python stack at each allocate(), as tracemalloc does.

    trace() with no argument says whether recording is on and changes
    nothing.  trace(True) turns it on, trace(False) off; enabled is a bool
    (or 1 or 0).  frames: how many frames to keep per buffer, most recent
    first (1 to 1000, default 5), with trace(True).  Off by default, when
    it costs allocate() one test of a flag; on, each allocate() keeps the
    code and position of each frame (line numbers are worked out only when
    listed).  Memory.buffers() reports it as `traceback` and `site`, and
    MemoryError messages and the pytest plugin's leak check name the site.
    Buffers allocated while it was off have no record.  PYNQ_ALLOC_TRACE=1
    (or a number of frames) turns it on at import.

    Returns whether it was on before the call (so trace(was_on) puts it
    back).  Raises TypeError if enabled is not a bool, or frames comes
    without trace(True); ValueError if frames is not from 1 to 1000.

        >>> was_on = trace(True)        # on; was_on: whether it was before
        >>> trace()                     # asks, and changes nothing
        True
        >>> mem = open_memory('sim', size=1 << 20)
        >>> buf = mem.allocate(16)
        >>> filename, lineno, function = mem.buffers()[0].traceback[0]
        >>> function
        '<module>'
        >>> _ = trace(was_on)
    """
    if enabled is None:
        if frames is not None:
            raise TypeError("trace(frames=...) needs enabled=True: "
                            f"trace(True, frames={frames!r})")
        return bool(_core._trace(None))
    on = as_bool("enabled", enabled)
    if frames is None:
        frames = DEFAULT_FRAMES
    if not 1 <= frames <= 1000:
        raise ValueError(f"frames must be from 1 to 1000, not {frames}")
    return bool(_core._trace(frames if on else 0))


def trace_from_environment() -> None:
    """PYNQ_ALLOC_TRACE: unset, '' or '0' off; '1' on; N on with N frames."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value in ("", "0"):
        return
    try:
        frames = int(value)
    except ValueError:
        raise ValueError(f"{ENV_VAR} must be 0, 1 or a number of frames, "
                         f"not {value!r}") from None
    trace(True, DEFAULT_FRAMES if frames == 1 else frames)

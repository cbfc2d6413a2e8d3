"""Which buffers hold a Memory's device memory, and where they came from.

The C core hands over one raw tuple per live allocation (see
src/python/inventory.c); this module turns them into `BufferInfo` records
and into the sentences that MemoryError and the pytest plugin print.
"""
from __future__ import annotations

import gc
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

Frame = Tuple[str, int, str]


class BufferInfo(NamedTuple):
    """One allocation that holds device memory, as Memory.buffers() lists it."""

    device_address: int
    """Device address of the allocation's first byte."""
    size: int
    """Bytes it holds: the request rounded up to whole pages."""
    shape: Optional[Tuple[int, ...]]
    """Shape of the Buffer that allocate() returned."""
    dtype: Optional[np.dtype[Any]]
    """Its dtype."""
    cacheable: bool
    """Whether the CPU maps it cached."""
    coherent: bool
    """Whether flush() and invalidate() are not needed."""
    views: int
    """Buffer views of it that are alive (slices, reshapes, ...)."""
    traceback: Optional[Tuple[Frame, ...]]
    """Where it was allocated, most recent call first, as
    ((filename, lineno, function), ...); None unless pynq_alloc.trace()
    was on then."""

    @property
    def site(self) -> Optional[str]:
        """'file:line in function' of the allocate() call, or None."""
        if not self.traceback:
            return None
        filename, lineno, function = self.traceback[0]
        return f"{filename}:{lineno} in {function}"

    def __str__(self) -> str:
        shape = "?" if self.shape is None else str(self.shape)
        text = (f"{shape} {self.dtype if self.dtype is not None else '?'} at "
                f"{self.device_address:#x}, {self.size} bytes")
        if self.views:
            text += f", {self.views} view{'s' if self.views > 1 else ''} alive"
        return text + (f", allocated at {self.site}" if self.site else "")


# Raw entry from the core: (device_address, size, cacheable, coherent,
# shape, dtype, root Buffer or None, traceback or None).
Raw = Tuple[int, int, bool, bool, Any, Any, Any, Any]


def _count_views(roots: Sequence[Any]) -> List[int]:
    """How many arrays have each root as their base.  numpy makes the root
    the base of every view of it, and Buffer views are tracked by the
    garbage collector, so one pass over its objects finds them."""
    index = {id(r): i for i, r in enumerate(roots) if r is not None}
    counts = [0] * len(roots)
    if not index:
        return counts
    for obj in gc.get_referrers(*(r for r in roots if r is not None)):
        if isinstance(obj, np.ndarray):
            i = index.get(id(obj.base))
            if i is not None and obj.base is roots[i]:
                counts[i] += 1
    return counts


def buffer_infos(raw: List[Raw]) -> List[BufferInfo]:
    """Memory.buffers(): records sorted by device address."""
    raw = sorted(raw, key=lambda r: r[0])
    views = _count_views([r[6] for r in raw])
    return [BufferInfo(address, size, shape, dtype, cacheable, coherent, n,
                       trace)
            for (address, size, cacheable, coherent, shape, dtype, _, trace), n
            in zip(raw, views)]


# MemoryError names this many of the largest live buffers.
OOM_LARGEST = 3


def oom_hint(raw: List[Raw], tracing: bool) -> str:
    """The end of a MemoryError's message: what holds the memory."""
    if not raw:
        return "; no buffer of this process holds any of it"
    largest = sorted(raw, key=lambda r: (-r[1], r[0]))[:OOM_LARGEST]
    infos = buffer_infos(largest)
    infos.sort(key=lambda b: (-b.size, b.device_address))
    count = len(raw)
    held = sum(r[1] for r in raw)
    text = (f"; {count} live buffer{'s' if count > 1 else ''} of this "
            f"process hold{'' if count > 1 else 's'} {held} bytes, the "
            f"largest: " + "; ".join(str(b) for b in infos)
            + ". Memory.buffers() lists them")
    if not tracing:
        text += (" (with pynq_alloc.trace(True), or PYNQ_ALLOC_TRACE=1, "
                 "it also says where each was allocated)")
    return text

"""Which buffers hold a Memory's device memory, and where they came from.

The C core hands over one AllocationRecord per live allocation, with named
fields and exact view counts (src/python/inventory.c); this module turns
them into `BufferInfo` records, field by name, and into the sentences that
MemoryError and the pytest plugin print.
"""
from __future__ import annotations

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

    def __repr__(self) -> str:
        return fields_repr(self)

    def __str__(self) -> str:
        shape = "?" if self.shape is None else str(self.shape)
        text = (f"{shape} {self.dtype if self.dtype is not None else '?'} at "
                f"{self.device_address:#x}, {self.size} bytes")
        if self.views:
            text += f", {self.views} view{'s' if self.views > 1 else ''} alive"
        return text + (f", allocated at {self.site}" if self.site else "")


def fields_repr(record: Any, **extra: Any) -> str:
    """A NamedTuple's repr with its device address in hex, as every other
    address the package shows; `extra` adds properties to it."""
    parts = [f"{name}={value:#x}" if name == "device_address"
             else f"{name}={value!r}"
             for name, value in [*zip(record._fields, record), *extra.items()]]
    return f"{type(record).__name__}({', '.join(parts)})"


def buffer_info(record: Any) -> BufferInfo:
    """A BufferInfo from the core's AllocationRecord, field by field."""
    return BufferInfo(*(getattr(record, name) for name in BufferInfo._fields))


def buffer_infos(records: Sequence[Any]) -> List[BufferInfo]:
    """Memory.buffers(): records sorted by device address."""
    return sorted((buffer_info(r) for r in records),
                  key=lambda b: b.device_address)


# MemoryError names this many of the largest live buffers.
OOM_LARGEST = 3


def oom_hint(records: Sequence[Any], tracing: bool) -> str:
    """The end of a MemoryError's message: what holds the memory."""
    if not records:
        return "; no buffer of this process holds any of it"
    infos = sorted((buffer_info(r) for r in records),
                   key=lambda b: (-b.size, b.device_address))
    count = len(infos)
    held = sum(b.size for b in infos)
    infos = infos[:OOM_LARGEST]
    text = (f"; {count} live buffer{'s' if count > 1 else ''} of this "
            f"process hold{'' if count > 1 else 's'} {held} bytes, the "
            f"largest: " + "; ".join(str(b) for b in infos)
            + ". Memory.buffers() lists them")
    if not tracing:
        text += (" (with pynq_alloc.trace(True), or PYNQ_ALLOC_TRACE=1, "
                 "it also says where each was allocated)")
    return text

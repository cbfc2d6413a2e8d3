"""Coherence hazards of the simulated memory, worded for the user.

The sim's cache-line model records what a program did wrong;
src/python/coherence.c takes the records after each operation and calls
report() (warn or raise, as the memory's `coherence` option says) or, for
Memory.check(), hazards().  Each record is a _core.HazardRecord, read by
field name; the core owns the kinds' names (_core.HAZARD_KINDS), this
module only their wording.
"""
from __future__ import annotations

import warnings
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from ._inventory import BufferInfo, buffer_info, fields_repr


class CoherenceWarning(UserWarning):
    """A missing or misplaced flush()/invalidate(), found by the sim.

    `hazards` lists what was found (pynq_alloc.Hazard)."""

    hazards: Tuple["Hazard", ...] = ()
    __module__ = "pynq_alloc"


class CoherenceError(RuntimeError):
    """CoherenceWarning's finding, raised: a simulated memory opened with
    coherence='raise' (the pytest plugin's pynq_memory does).

    `hazards` lists what was found (pynq_alloc.Hazard)."""

    hazards: Tuple["Hazard", ...] = ()
    __module__ = "pynq_alloc"


class EdgeLineWarning(UserWarning):
    """invalidate() of a view changed bytes outside the view, in a cache
    line the view shares with the rest of its buffer: they took what the
    device wrote, as on an arm64 board, which cleans and reloads such a
    line (dc civac).  A notice, not an error: a board may reload a clean
    line at any time.  Warned in every coherence mode but 'off', never
    raised, never in Memory.check().

    `hazards` lists the bytes concerned (pynq_alloc.Hazard, kind
    'edge-reloaded')."""

    hazards: Tuple["Hazard", ...] = ()
    __module__ = "pynq_alloc"


# Kinds that are notices (EdgeLineWarning), not errors.
NOTICES = frozenset({"edge-reloaded"})

# kind, as the core names it -> (what happened, the fix)
KINDS = {
    "unflushed-read":
        ("the device read {span} that the CPU wrote and never flushed: it "
         "read stale data",
         "call flush() on the buffer (or the view written) after the CPU "
         "writes it and before the device reads it"),
    "write-under-dirty":
        ("the device wrote {span} while the CPU held those cache lines "
         "dirty: their write-back (a flush(), or an eviction on a board) "
         "will overwrite what the device wrote",
         "flush() CPU writes before the device writes the same cache lines, "
         "and keep CPU-written and device-written data in separate lines"),
    "writeback-clobbered":
        ("a write-back of CPU-dirty cache lines overwrote what the device "
         "wrote to {span}",
         "invalidate() before the CPU writes lines the device wrote, and do "
         "not let CPU and device write the same cache line"),
    "discarded":
        ("invalidate() discarded CPU writes to {span} that were never "
         "flushed: they are lost (through a kernel driver; with user-space "
         "dc civac, as for huge pages on arm64, they would overwrite the "
         "device's data instead)",
         "flush() CPU writes before invalidate(), or invalidate() before "
         "the CPU writes"),
    "unflushed":
        ("the CPU wrote {span} and never flushed it: the device cannot see "
         "those writes",
         "call flush() after writing, before the device reads"),
    "uninvalidated":
        ("the device wrote {span} and the CPU never invalidated it: any CPU "
         "read of it saw stale data",
         "call invalidate() after the device writes, before the CPU reads"),
    "edge-reloaded":
        ("invalidate() of a view changed {span}, outside the view but in a "
         "cache line it shares with it: they now hold what the device "
         "wrote, as on an arm64 board (dc civac cleans and reloads such a "
         "line)",
         "nothing is wrong; to keep the CPU's copy of bytes next to a view "
         "unchanged, align the view to the cache line size"),
}


class Hazard(NamedTuple):
    """One coherence hazard in a simulated memory's buffer."""

    kind: str
    """'unflushed-read', 'write-under-dirty', 'writeback-clobbered',
    'discarded', 'unflushed', 'uninvalidated', or the notice
    'edge-reloaded' (see EdgeLineWarning)."""
    device_address: int
    """Device address of the allocation concerned."""
    start: int
    """First byte concerned, as an offset into the allocation."""
    stop: int
    """One past the last byte concerned, as an offset into it."""
    buffer: Optional[BufferInfo]
    """The allocation's shape, dtype and allocation site, if still known."""

    @property
    def message(self) -> str:
        """What happened, to which buffer, and the fix."""
        what, fix = KINDS[self.kind]
        span = f"bytes {self.start} to {self.stop}"
        label = "Note" if self.kind in NOTICES else "Fix"
        return (f"{what.format(span=span)}, in {_describe(self)}. "
                f"{label}: {fix}.")

    def __repr__(self) -> str:
        return fields_repr(self, message=self.message)

    def __str__(self) -> str:
        return self.message


def _describe(h: Hazard) -> str:
    if h.buffer is None:
        return f"the buffer at {h.device_address:#x}"
    b = h.buffer
    text = f"the buffer {b.shape} {b.dtype} at {b.device_address:#x}"
    site = b.site
    return text + (f", allocated at {site}" if site
                   else " (pynq_alloc.trace(True) would say where it was "
                        "allocated)")


def _hazard(record: Any) -> Hazard:
    """A Hazard from the core's HazardRecord, field by field."""
    buffer = None if record.buffer is None else buffer_info(record.buffer)
    return Hazard(record.kind, record.device_address, record.start,
                  record.stop, buffer)


def hazards(records: Sequence[Any]) -> List[Hazard]:
    """The core's records as Hazards, by address, adjacent ranges of one
    kind in one buffer merged (the core hands long lists over in parts)."""
    found = sorted((_hazard(r) for r in records),
                   key=lambda h: (h.device_address, h.kind, h.start))
    merged: List[Hazard] = []
    for h in found:
        last = merged[-1] if merged else None
        if (last is not None and last.kind == h.kind
                and last.device_address == h.device_address
                and last.stop == h.start):
            merged[-1] = last._replace(stop=h.stop)
        else:
            merged.append(h)
    return sorted(merged, key=lambda h: (h.device_address, h.start, h.kind))


def report(records: Sequence[Any], lost: int, mode: str) -> None:
    """Warns (mode 'warn') or raises (mode 'raise') of the hazards one
    operation met; notices are warned in either mode (EdgeLineWarning)."""
    __tracebackhide__ = True    # pytest shows the user's line, not this
    everything = hazards(records)
    notices = tuple(h for h in everything if h.kind in NOTICES)
    found = tuple(h for h in everything if h.kind not in NOTICES)
    if notices:
        notice = EdgeLineWarning("\n".join(h.message for h in notices))
        notice.hazards = notices
        # The caller's frame: report() is called from C, which adds none.
        warnings.warn(notice, stacklevel=2)
    if not found and not lost:
        return
    lines = [h.message for h in found]
    if lost:
        lines.append(f"... and {lost} more range{'s' if lost > 1 else ''}")
    text = "\n".join(lines)
    error: Any = (CoherenceError(text) if mode == "raise"
                  else CoherenceWarning(text))
    error.hazards = found
    if mode == "raise":
        raise error
    # The caller's frame: report() is called from C, which adds none.
    warnings.warn(error, stacklevel=2)

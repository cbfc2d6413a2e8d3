"""A picture of a Memory: used blocks, free gaps, the largest free block.

`html()` is Memory._repr_html_ (an SVG bar for Jupyter), `memory_map()`
the same map as text for a terminal (`python -m pynq_alloc --map`).  Both come from `layout()`.

Only pools that this package sub-allocates itself from one address range
(sim, udmabuf) have a layout to draw: zocl and xlnk take each buffer from
the kernel's CMA pool, which no process can see into, and huge pages lie
in runs scattered over physical memory.  Those show their figures and say
why there is no map.
"""
from __future__ import annotations

import html as _html
from typing import Any, Dict, List, NamedTuple, Optional

from ._inventory import BufferInfo

# Kinds whose pool is one range [base_address, base_address + size) that
# this process allocates from, so that its buffers are all of its use.
POOL_VISIBLE = ("sim", "udmabuf")

WHY_NO_LAYOUT = {
    "zocl": "zocl takes each buffer from the kernel's CMA pool (or the "
            "bank's), whose layout no process can see: the figures are the "
            "kernel's (CmaTotal, CmaFree), and used includes other processes",
    "xlnk": "xlnk takes each buffer from the kernel's CMA pool through "
            "libcma, whose layout no process can see: the figures are the "
            "kernel's, and used includes other processes",
    "xrt": "xrt takes each buffer from the card's memory bank through XRT, "
           "which does not show where its buffers lie: used is this "
           "memory's own buffers, measured against the bank's size",
    "hugepage": "huge pages lie in runs scattered over physical memory, not "
                "in one range from base_address",
}

# Past this many blocks and gaps, neighbours too narrow to see are drawn
# as one, so that a map of a busy pool stays small.
MAX_SEGMENTS = 400
# Buffers listed by name under a map; Memory.buffers() has them all.
MAX_LISTED = 50


class Segment(NamedTuple):
    """A drawn piece of the pool: one buffer, one free gap, or (when the
    pool has too many to draw) several neighbours merged."""
    start: int
    end: int
    kind: str                           # "used", "free" or "mixed"
    buffer: Optional[BufferInfo]        # for one used block
    used_bytes: int
    pieces: int                         # blocks and gaps merged into it


class Layout(NamedTuple):
    kind: str
    base_address: int
    size: int
    stats: Dict[str, int]
    buffers: List[BufferInfo]
    segments: Optional[List[Segment]]   # None: the layout is not visible
    largest_free: Optional[Segment]
    why_no_layout: str


def layout(memory: Any, max_segments: int = MAX_SEGMENTS) -> Layout:
    """What both pictures draw, read from memory now."""
    stats = memory.stats()      # released blocks kept for reuse count as free
    buffers = memory.buffers()
    base, size, kind = memory.base_address, memory.size, memory.kind
    if kind not in POOL_VISIBLE:
        return Layout(kind, base, size, stats, buffers, None, None,
                      WHY_NO_LAYOUT.get(kind, f"{kind} memory does not show "
                                        "its layout"))
    segments: List[Segment] = []
    at = base
    for b in buffers:
        if b.device_address > at:
            segments.append(Segment(at, b.device_address, "free", None, 0, 1))
        end = b.device_address + b.size
        segments.append(Segment(b.device_address, end, "used", b, b.size, 1))
        at = end
    if at < base + size:
        segments.append(Segment(at, base + size, "free", None, 0, 1))
    gaps = [s for s in segments if s.kind == "free"]
    largest = max(gaps, key=lambda s: (s.end - s.start, -s.start),
                  default=None)
    if len(segments) > max_segments:
        segments = _merge_narrow(segments, largest, size / max_segments)
    return Layout(kind, base, size, stats, buffers, segments, largest, "")


def _merge_narrow(segments: List[Segment], keep: Optional[Segment],
                  min_bytes: float) -> List[Segment]:
    """Runs of segments narrower than min_bytes become one segment (the
    largest free block always stays itself)."""
    out: List[Segment] = []
    run: List[Segment] = []

    def close_run() -> None:
        if not run:
            return
        if len(run) == 1:
            out.append(run[0])
        else:
            kinds = {s.kind for s in run}
            out.append(Segment(run[0].start, run[-1].end,
                               kinds.pop() if len(kinds) == 1 else "mixed",
                               None, sum(s.used_bytes for s in run),
                               sum(s.pieces for s in run)))
        run.clear()

    for s in segments:
        if s == keep or s.end - s.start >= min_bytes:
            close_run()
            out.append(s)
        else:
            run.append(s)
            if run[-1].end - run[0].start >= min_bytes:
                close_run()
    close_run()
    return out


def human(n: int) -> str:
    """Bytes as '4 KiB', '1.5 MiB', '256 MiB', '100 bytes'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            text = f"{n / (1 << shift):.1f}"
            text = text[:-2] if text.endswith(".0") else text
            return f"{text} {unit}"
    return f"{n} bytes"


def summary(lay: Layout) -> str:
    """One line: the memory and its figures."""
    s = lay.stats
    n = s["buffers"]
    return (f"{lay.kind} memory {lay.base_address:#x}-"
            f"{lay.base_address + lay.size:#x} ({human(lay.size)}): "
            f"{n} buffer{'' if n == 1 else 's'}, {human(s['used'])} used, "
            f"{human(s['free'])} free, largest free block "
            f"{human(s['largest_free'])}")


def describe(seg: Segment) -> str:
    """The hover text of a segment."""
    span = f"{seg.start:#x}-{seg.end:#x}"
    if seg.buffer is not None:
        return f"used {span}: {seg.buffer}"
    if seg.kind == "free":
        return f"free {span}: {seg.end - seg.start} bytes"
    return (f"{span}: {seg.pieces} blocks and gaps too small to draw, "
            f"{seg.used_bytes} bytes used, "
            f"{seg.end - seg.start - seg.used_bytes} free")


# --- SVG, for Jupyter -------------------------------------------------------

WIDTH, BAR_Y, BAR_H = 760, 22, 34
COLOURS = {"used": "#3b6fb6", "free": "#e4e7eb", "mixed": "#9db6dc"}


def _svg(lay: Layout) -> str:
    assert lay.segments is not None
    scale = WIDTH / lay.size
    # Drawn in a box of its own units (viewBox) and shown as wide as the
    # column that holds it, up to its drawn size: a narrow notebook column
    # shrinks the whole map, text included, rather than cutting it off.
    width, height = WIDTH + 20, BAR_Y + BAR_H + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width: {width}px; height: auto" '
             f'font-family="sans-serif" font-size="12">']
    for seg in lay.segments:
        x = (seg.start - lay.base_address) * scale
        w = max((seg.end - seg.start) * scale, 0.5)
        cls = seg.kind + (" largest" if seg == lay.largest_free else "")
        if seg == lay.largest_free:
            stroke = ' stroke="#1e8c45" stroke-width="2" stroke-dasharray="4 2"'
        elif seg.kind == "used" and w >= 3:     # neighbours stay apart
            stroke = ' stroke="#ffffff" stroke-width="1"'
        else:
            stroke = ""
        parts.append(
            f'<rect class="{cls}" x="{10 + x:.2f}" y="{BAR_Y}" '
            f'width="{w:.2f}" height="{BAR_H}" fill="{COLOURS[seg.kind]}"'
            f'{stroke} data-start="{seg.start:#x}" data-end="{seg.end:#x}">'
            f'<title>{_html.escape(describe(seg))}</title></rect>')
    if lay.largest_free is not None:
        big = lay.largest_free
        mid = 10 + ((big.start + big.end) / 2 - lay.base_address) * scale
        anchor = ("start" if mid < 120 else "end" if mid > WIDTH - 120
                  else "middle")
        parts.append(f'<text class="largest-label" x="{mid:.2f}" y="{BAR_Y - 6}"'
                     f' text-anchor="{anchor}" fill="#1e8c45">largest free '
                     f'block: {human(big.end - big.start)} at {big.start:#x}'
                     f'</text>')
    y = BAR_Y + BAR_H + 16
    parts.append(f'<text x="10" y="{y}">{lay.base_address:#x}</text>')
    parts.append(f'<text x="{WIDTH + 10}" y="{y}" text-anchor="end">'
                 f'{lay.base_address + lay.size:#x}</text>')
    legend = [("used", "used"), ("free", "free")]
    if any(seg.kind == "mixed" for seg in lay.segments):
        legend.append(("mixed", "blocks and gaps too small to draw"))
    x = WIDTH / 2 - 60 * len(legend)
    for kind, label in legend:
        parts.append(f'<rect x="{x:.0f}" y="{y - 10}" width="10" height="10" '
                     f'fill="{COLOURS[kind]}"/><text x="{x + 14:.0f}" y="{y}">'
                     f'{label}</text>')
        x += 24 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def html(memory: Any) -> str:
    """Memory._repr_html_: the map as an SVG bar, or the figures."""
    lay = layout(memory)
    head = f"<div><b>{_html.escape(summary(lay))}</b></div>"
    if lay.segments is None:
        return (f'<div class="pynq-alloc-memory">{head}<div><i>No map: '
                f"{_html.escape(lay.why_no_layout)}.</i></div>"
                f"{_buffer_table(lay.buffers)}</div>")
    return f'<div class="pynq-alloc-memory">{head}{_svg(lay)}</div>'


def _listed(buffers: List[BufferInfo]) -> List[str]:
    """A line per buffer, the largest first, at most MAX_LISTED of them."""
    by_size = sorted(buffers, key=lambda b: (-b.size, b.device_address))
    lines = [str(b) for b in by_size[:MAX_LISTED]]
    if len(buffers) > MAX_LISTED:
        lines.append(f"and {len(buffers) - MAX_LISTED} smaller ones "
                     "(Memory.buffers() lists them all)")
    return lines


def _buffer_table(buffers: List[BufferInfo]) -> str:
    if not buffers:
        return ""
    rows = "".join(f"<li>{_html.escape(line)}</li>" for line in _listed(buffers))
    return f"<div>This process's buffers:</div><ul>{rows}</ul>"


# --- text, for a terminal ---------------------------------------------------

def memory_map(memory: Any = None, width: int = 64) -> str:
    """Return a text map of a Memory: its buffers and free gaps.

    memory: a Memory (default: default_memory()).  width: characters in
    the bar, each standing for size/width bytes: '#' used, '.' free, '_'
    the largest free block, '+' partly used.  Then the largest free block
    and one line per buffer (shape, dtype, device address, bytes, views,
    and where it was allocated when trace() is on).  For zocl and xlnk,
    whose pool only the kernel sees, the figures and why there is no map.
    In Jupyter, displaying the Memory draws the same map as an SVG.

    Raises ValueError if width is below 8, and what default_memory()
    raises.  `python -m pynq_alloc --map` prints it for the default memory.

        >>> mem = open_memory('sim', size=1 << 20, base_address=0x4000_0000)
        >>> buf = mem.allocate(64 << 10, 'u1')
        >>> print(memory_map(mem, width=16).splitlines()[1])
        0x40000000 |#_______________| 0x40100000
    """
    if width < 8:
        raise ValueError(f"width must be at least 8, not {width}")
    if memory is None:
        from . import default_memory
        memory = default_memory()
    lay = layout(memory)
    lines = [summary(lay)]
    if lay.segments is None:
        lines.append(f"no map: {lay.why_no_layout}")
    else:
        lines.append(f"{lay.base_address:#x} |{_cells(lay, width)}| "
                     f"{lay.base_address + lay.size:#x}")
        lines.append("  # used   . free   _ largest free block   "
                     "+ used and free")
        if lay.largest_free is not None:
            big = lay.largest_free
            lines.append(f"largest free block: {big.start:#x}-{big.end:#x}, "
                         f"{big.end - big.start} bytes")
    if lay.buffers:
        lines.append("buffers, the largest first:")
        lines += [f"  {line}" for line in _listed(lay.buffers)]
    return "\n".join(lines)


def _cells(lay: Layout, width: int) -> str:
    """One character per cell of size/width bytes."""
    assert lay.segments is not None
    used = [0.0] * width
    largest = [0.0] * width
    cell = lay.size / width
    for seg in lay.segments:
        if seg.kind == "free" and seg != lay.largest_free:
            continue
        first = int((seg.start - lay.base_address) // cell)
        last = min(int((seg.end - 1 - lay.base_address) // cell), width - 1)
        for i in range(first, last + 1):
            lo = max(seg.start, lay.base_address + i * cell)
            hi = min(seg.end, lay.base_address + (i + 1) * cell)
            if seg == lay.largest_free:
                largest[i] += hi - lo
            else:
                used[i] += (hi - lo) * seg.used_bytes / (seg.end - seg.start)
    out = []
    for u, big in zip(used, largest):
        if u >= cell * 0.999:
            out.append("#")
        elif u > 0:
            out.append("+")
        elif big > 0:
            out.append("_")
        else:
            out.append(".")
    return "".join(out)

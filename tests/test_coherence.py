"""The simulated memory as a DMA-coherence sanitizer: its cache-line model
(flush writes back dirty lines only; invalidate cleans the lines it covers
in part, then discards and reloads) and each hazard it reports, checked
against a reference model written plainly below."""
import gc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pynq_alloc
from fake_devices import make_xlnk
from helpers import byte_span
from pynq_alloc import (CoherenceError, CoherenceWarning, Hazard, allocate,
                        open_memory)


@pytest.fixture
def strict():
    return open_memory("sim", size=4 << 20, coherence="raise")


def device(mem, buf, lo=0, hi=None):
    """What the device sees of buf's bytes [lo, hi), hazards ignored."""
    hi = buf.nbytes if hi is None else hi
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoherenceWarning)
        return np.frombuffer(mem.device_read(buf.device_address + lo, hi - lo),
                             np.uint8)


def spans(hazards):
    return [(h.kind, h.start, h.stop) for h in hazards]


def test_the_issue_program_is_exact_and_silent(strict):
    """Input half flushed, output half written by the device, new input
    flushed over the whole buffer before the invalidate."""
    b = allocate(2048, "u1", target=strict, cacheable=True)
    b[:1024] = 1
    b.flush()
    strict.device_write(b.device_address + 1024, bytes([7]) * 1024)
    b[:1024] = 2
    b.flush()                           # clean output lines: left alone
    assert (device(strict, b, 1024) == 7).all()
    assert (device(strict, b, 0, 1024) == 2).all()
    b.invalidate()
    assert (b[1024:] == 7).all() and (b[:1024] == 2).all()
    assert strict.check() == []
    b.freebuffer()
    assert strict.check() == []


def test_forgotten_flush_raises_where_the_device_reads(strict):
    b = allocate(64, "u4", target=strict, cacheable=True)
    b[20:30] = 5                        # bytes 80 to 120: line 64 only
    with pytest.raises(CoherenceError) as caught:
        strict.device_read(b.device_address + 100, 60)
    assert spans(caught.value.hazards) == [("unflushed-read", 100, 128)]
    text = str(caught.value)
    assert "never flushed" in text and "call flush()" in text
    assert f"(64,) uint32 at {b.device_address:#x}" in text
    b.flush()
    assert strict.device_read(b.device_address + 80, 4) == bytes([5, 0, 0, 0])


def test_device_write_under_dirty_lines_raises(strict):
    b = allocate(256, "u1", target=strict, cacheable=True)
    b[130] = 1
    with pytest.raises(CoherenceError) as caught:
        strict.device_write(b.device_address + 120, bytes(20))
    assert spans(caught.value.hazards) == [("write-under-dirty", 128, 140)]
    # The write happened; its later write-back is the next hazard.
    with pytest.raises(CoherenceError) as caught:
        b.flush()
    assert spans(caught.value.hazards) == [("writeback-clobbered", 128, 192)]


def test_invalidate_over_dirty_lines_raises_and_loses_the_writes(strict):
    b = allocate(512, "u1", target=strict, cacheable=True)
    b[64:128] = 3
    b[10] = 4                           # an edge line: cleaned, kept
    with pytest.raises(CoherenceError) as caught:
        b[5:300].invalidate()
    assert spans(caught.value.hazards) == [("discarded", 64, 128)]
    assert not b[64:128].any()          # discarded, as a kernel driver does
    assert b[10] == 4 and device(strict, b, 10, 11)[0] == 4


def test_freebuffer_reports_device_writes_never_invalidated(strict):
    b = allocate(128, "u1", target=strict, cacheable=True)
    strict.device_write(b.device_address + 64, bytes(range(64)))
    with pytest.raises(CoherenceError) as caught:
        b.freebuffer()
    assert spans(caught.value.hazards) == [("uninvalidated", 64, 128)]
    assert b.freed and strict.stats()["buffers"] == 0   # freed all the same


def test_check_lists_standing_hazards_and_released_ones():
    mem = open_memory("sim", size=1 << 20)
    was = pynq_alloc.trace(True)
    try:
        a = allocate(4096, "u1", target=mem, cacheable=True)
        b = allocate(4096, "u1", target=mem, cacheable=True)
    finally:
        pynq_alloc.trace(was)
    a[100] = 1
    mem.device_write(b.device_address, bytes(10))
    found = mem.check()
    assert spans(found) == [("unflushed", 64, 128), ("uninvalidated", 0, 64)]
    assert all(isinstance(h, Hazard) for h in found)
    assert found[0].device_address == a.device_address
    assert found[0].buffer.shape == (4096,)
    assert "test_coherence.py" in found[0].buffer.site
    assert mem.check() == found         # standing: listed again
    assert a.device_address < b.device_address      # listed in this order
    del b
    gc.collect()
    released = mem.check()
    assert spans(released) == [("unflushed", 64, 128), ("uninvalidated", 0, 64)]
    assert released[1].buffer.shape == (4096,)      # known after release
    assert spans(mem.check()) == [("unflushed", 64, 128)]   # reported once
    a.flush()
    assert mem.check() == []


def test_check_and_freebuffer_lose_no_range(strict):
    # 32 separate ranges: more than the core hands over at once (16).
    b = allocate(4096, "u1", target=strict, cacheable=True)
    b[::128] = 1
    assert spans(strict.check()) == [("unflushed", x, x + 64)
                                     for x in range(0, 4096, 128)]
    b.flush()
    for at in range(0, 4096, 128):
        strict.device_write(b.device_address + at, bytes(1))
    with pytest.raises(CoherenceError) as caught:
        b.freebuffer()
    assert spans(caught.value.hazards) == [("uninvalidated", x, x + 64)
                                           for x in range(0, 4096, 128)]


def test_warn_mode_points_at_the_callers_line():
    mem = open_memory("sim", size=1 << 20)
    assert mem.coherence == "warn"
    b = allocate(16, "u4", target=mem, cacheable=True)
    b[:] = 1
    with pytest.warns(CoherenceWarning, match="bytes 0 to 64") as caught:
        mem.device_read(b.device_address, 64)
    assert caught[0].filename == __file__
    assert spans(caught[0].message.hazards) == [("unflushed-read", 0, 64)]
    assert "pynq_alloc.trace(True)" in str(caught[0].message)


def test_off_reports_nothing_and_moves_the_line_models_bytes():
    """coherence='off' drops the reports, not the model: a flush writes
    back whole dirty lines, as on a board, and the data are the line
    model's."""
    mem = open_memory("sim", size=1 << 20, coherence="off")
    assert mem.coherence == "off"
    b = allocate(256, "u1", target=mem, cacheable=True)
    b[:] = 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mem.device_read(b.device_address, 4) == bytes(4)
        b[8:24].flush()
        seen = device(mem, b)
        mem.device_write(b.device_address + 64, bytes([5]) * 64)
        b[70:80].invalidate()           # dirty edge line: cleaned first
    assert (seen[:64] == 9).all() and not seen[64:].any()
    assert (b == 9).all() and (device(mem, b, 64, 128) == 9).all()
    assert mem.check() == []


@pytest.mark.parametrize("mode", ["off", "warn", "raise"])
def test_invalidate_of_a_view_reloads_its_edge_lines_in_every_mode(mode):
    """Bytes outside the view but in a line it covers in part take the
    device's values, as an arm64 CPU's dc civac gives them; lines it does
    not touch keep the CPU's.  Every mode but 'off' says so."""
    mem = open_memory("sim", size=1 << 20, coherence=mode)
    b = allocate(192, "u1", target=mem, cacheable=True)
    mem.device_write(b.device_address, bytes([7]) * 192)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b[8:24].invalidate()            # line 0 only, in part
        b[72:136].invalidate()          # lines 64 and 128, both in part
    assert (b[:24] == 7).all() and (b[24:64] == 7).all()
    assert (b[64:192] == 7).all()
    assert (b[8:24] == 7).all()
    notices = [w.message for w in caught]
    if mode == "off":
        assert notices == []
        return
    assert all(type(n) is pynq_alloc.EdgeLineWarning for n in notices)
    assert [spans(n.hazards) for n in notices] == [
        [("edge-reloaded", 0, 8), ("edge-reloaded", 24, 64)],
        [("edge-reloaded", 64, 72), ("edge-reloaded", 136, 192)]]
    assert "outside the view" in str(notices[0])
    assert all(w.filename == __file__ for w in caught)
    # A notice is no hazard: nothing stands, nothing is raised.
    mem.device_write(b.device_address, bytes([8]) * 192)
    b.invalidate()
    assert mem.check() == []


def test_uncached_buffers_and_other_memories_have_no_hazards(
        strict, tmp_path, libcma, monkeypatch):
    b = allocate(64, "u1", target=strict)   # uncached: one copy
    b[:] = 1
    strict.device_write(b.device_address, bytes(8))
    assert strict.device_read(b.device_address, 16) == bytes(8) + bytes([1]) * 8
    b.flush()
    b.invalidate()
    b.freebuffer()
    assert strict.check() == []
    # A board backend (xlnk over its stand-in libcma) tracks nothing.
    library, _ = make_xlnk(str(tmp_path), libcma[0], monkeypatch)
    board = open_memory("xlnk", library=library)
    assert board.coherence is None
    c = allocate(64, "u1", target=board, cacheable=True)
    c[:] = 2                                # never flushed: not tracked
    assert board.check() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c.invalidate()
        c.freebuffer()


def test_options_are_checked():
    with pytest.raises(ValueError, match="coherence must be"):
        open_memory("sim", size=1 << 20, coherence="loud")
    with pytest.raises(ValueError, match="line_size must be a power of two"):
        open_memory("sim", size=1 << 20, line_size=48)
    with pytest.raises(ValueError, match="line_size must be a power of two"):
        open_memory("sim", size=1 << 20, line_size=8)
    mem = open_memory("sim:coherence=raise,line_size=128", size=1 << 20)
    assert mem.coherence == "raise"
    b = allocate(512, "u1", target=mem, cacheable=True)
    b[130] = 1
    assert spans(mem.check()) == [("unflushed", 128, 256)]


# ---- the reference model ----------------------------------------------

class LineModel:
    """A write-back cache over one buffer, written plainly: per line, the
    CPU's bytes, the device's, what the CPU last synced, and whether the
    device wrote it since."""

    def __init__(self, nbytes, line):
        self.line = line
        self.cpu = bytearray(nbytes)
        self.dev = bytearray(nbytes)
        self.synced = bytearray(nbytes)
        self.written = [False] * (nbytes // line)
        self.found = set()              # (kind, byte) reported so far

    def lines(self, lo, hi):
        return range(lo // self.line, -(-hi // self.line))

    def part(self, i):
        return slice(i * self.line, (i + 1) * self.line)

    def dirty(self, i):
        return self.cpu[self.part(i)] != self.synced[self.part(i)]

    def report(self, kind, lo, hi):
        self.found |= {(kind, x) for x in range(lo, hi)}

    def write_back(self, i):
        if self.dirty(i):
            if self.written[i]:
                self.report("writeback-clobbered", *self.bounds(i))
            self.dev[self.part(i)] = self.cpu[self.part(i)]
            self.synced[self.part(i)] = self.cpu[self.part(i)]
            self.written[i] = False

    def bounds(self, i):
        return i * self.line, (i + 1) * self.line

    def flush(self, lo, hi):
        for i in self.lines(lo, hi):
            self.write_back(i)

    def edge(self, lo, hi):
        """Bytes [lo, hi) outside a span, in a line it covers in part, are
        reloaded: those that change are noted, first to last."""
        changed = [x for x in range(lo, hi) if self.cpu[x] != self.dev[x]]
        if changed:
            self.report("edge-reloaded", changed[0], changed[-1] + 1)

    def invalidate(self, lo, hi):
        first, last = lo // self.line, (hi - 1) // self.line
        if lo % self.line:
            self.write_back(first)
            self.edge(first * self.line, lo)
        if hi % self.line:
            self.write_back(last)
            self.edge(hi, (last + 1) * self.line)
        for i in range(first, last + 1):
            if self.dirty(i):
                self.report("discarded", *self.bounds(i))
            self.cpu[self.part(i)] = self.dev[self.part(i)]
            self.synced[self.part(i)] = self.dev[self.part(i)]
            self.written[i] = False

    def device_read(self, lo, hi):
        for i in self.lines(lo, hi):
            if self.dirty(i):
                a, b = self.bounds(i)
                self.report("unflushed-read", max(a, lo), min(b, hi))

    def device_write(self, lo, hi, value):
        for i in self.lines(lo, hi):
            if self.dirty(i):
                a, b = self.bounds(i)
                self.report("write-under-dirty", max(a, lo), min(b, hi))
            self.written[i] = True
        self.dev[lo:hi] = bytes([value]) * (hi - lo)

    def standing(self):
        out = set()
        for i in range(len(self.written)):
            a, b = self.bounds(i)
            if self.dirty(i):
                out |= {("unflushed", x) for x in range(a, b)}
            if self.written[i]:
                out |= {("uninvalidated", x) for x in range(a, b)}
        return out


def as_bytes(hazards):
    return {(h.kind, x) for h in hazards for x in range(h.start, h.stop)}


NBYTES = 2048      # 128 lines of 16 bytes: bitmaps span words


@st.composite
def steps(draw):
    kind = draw(st.sampled_from(["cpu", "flush", "invalidate", "read", "write"]))
    if kind in ("read", "write"):
        lo = draw(st.integers(0, NBYTES - 1))
        hi = draw(st.integers(lo + 1, NBYTES))
        return kind, slice(lo, hi), draw(st.integers(1, 255))
    start = draw(st.integers(0, NBYTES - 1))
    stop = draw(st.integers(start + 1, NBYTES))
    step = draw(st.sampled_from([1, 1, 2, 3, 40, 700]))
    return kind, slice(start, stop, step), draw(st.integers(1, 255))


@settings(max_examples=150, deadline=None)
@given(line=st.sampled_from([16, 64, 128]), program=st.lists(steps(), max_size=12))
def test_matches_the_reference_model(line, program):
    mem = open_memory("sim", size=1 << 20, line_size=line)
    buf = allocate(NBYTES, "u1", target=mem, cacheable=True)
    # The plain model runs the same program: it must give the same data.
    off = open_memory("sim", size=1 << 20, line_size=line, coherence="off")
    plain = allocate(NBYTES, "u1", target=off, cacheable=True)
    model = LineModel(NBYTES, line)
    seen = set()
    # One operation reports at most PA_HAZARDS_KEPT separate ranges and
    # counts the rest ("... and N more ranges"): then what was seen is a
    # part of what the model found.
    some_lost = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for kind, where, value in program:
            view, twin = buf[where], plain[where]
            lo, hi = byte_span(view)
            lo += where.start
            hi += where.start
            if kind == "cpu":
                view[...] = value
                twin[...] = value
                model.cpu[where] = bytes([value]) * len(model.cpu[where])
            elif kind == "flush":
                view.flush()
                twin.flush()
                model.flush(lo, hi)
            elif kind == "invalidate":
                view.invalidate()
                twin.invalidate()
                model.invalidate(lo, hi)
            elif kind == "read":
                mem.device_read(buf.device_address + lo, hi - lo)
                off.device_read(plain.device_address + lo, hi - lo)
                model.device_read(lo, hi)
            else:
                data = bytes([value]) * (hi - lo)
                mem.device_write(buf.device_address + lo, data)
                off.device_write(plain.device_address + lo, data)
                model.device_write(lo, hi, value)
            for w in caught:
                seen |= as_bytes(w.message.hazards)
                some_lost |= "more range" in str(w.message)
            caught.clear()
            assert bytes(buf) == bytes(model.cpu) == bytes(plain)
            assert (off.device_read(plain.device_address, NBYTES)
                    == bytes(model.dev))
    assert seen <= model.found if some_lost else seen == model.found
    assert as_bytes(mem.check()) == model.standing()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoherenceWarning)
        assert mem.device_read(buf.device_address, NBYTES) == bytes(model.dev)

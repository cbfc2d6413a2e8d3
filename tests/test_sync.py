"""flush/invalidate on the simulated memory, which is really non-coherent
for cacheable buffers: the device sees CPU writes only after flush, the CPU
sees device writes only after invalidate, over exactly the span the view
touches.  Uncached buffers (the default, as in PYNQ) are coherent.

These run on the sim's plain model (coherence='off') with 16-byte lines,
the smallest: it moves what the line model moves, whole lines (a board's
cache does), and reports nothing, so the bytes that move show each view's
span to 16 bytes.  test_lent_memory.py holds the spans handed to a device
to the byte; test_coherence.py covers the line model's reports."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import allocation_size, byte_span, device_bytes, random_view
from pynq_alloc import allocate, open_memory


@pytest.fixture
def mem():
    """The plain model: whole spans, no hazards tracked."""
    return open_memory("sim", size=16 << 20, base_address=0x1000_0000,
                       coherence="off", line_size=LINE)


LINE = 16


def lines(start, stop):
    """The bytes of the lines that [start, stop) touches."""
    return slice(start // LINE * LINE, -(-stop // LINE) * LINE)


def test_device_sees_cpu_writes_only_after_flush(mem):
    b = allocate(16, "u4", target=mem, cacheable=True)
    b[:] = np.arange(16)
    seen = np.frombuffer(mem.device_read(b.device_address, 64), "u4")
    assert not np.array_equal(seen, np.arange(16))     # forgot to flush
    b.flush()
    seen = np.frombuffer(mem.device_read(b.device_address, 64), "u4")
    assert np.array_equal(seen, np.arange(16))


def test_cpu_sees_device_writes_only_after_invalidate(mem):
    b = allocate(16, "u4", target=mem, cacheable=True)
    b[:] = 7
    b.flush()
    mem.device_write(b.device_address, np.arange(16, dtype="u4").tobytes())
    assert (b == 7).all()                                # forgot to invalidate
    b.invalidate()
    assert np.array_equal(b, np.arange(16))


def test_aliases(mem):
    b = allocate(4, "u4", target=mem, cacheable=True)
    b[:] = 9
    b.sync_to_device()
    assert mem.device_read(b.device_address, 4) == np.uint32(9).tobytes()
    mem.device_write(b.device_address, np.uint32(5).tobytes())
    b.sync_from_device()
    assert b[0] == 5


VIEWS = {
    "whole": lambda m: m,
    "row": lambda m: m[3],
    "column": lambda m: m[:, 0],
    "every other": lambda m: m.ravel()[::2],
    "reversed": lambda m: m.ravel()[::-1],
    "reversed rows": lambda m: m[5:1:-2, 3:7],
    "transposed block": lambda m: m[2:5, 4:6].T,
    "single": lambda m: m[4, 4:5],
    "empty": lambda m: m[3:3],
}


@pytest.mark.parametrize("make_view", VIEWS.values(), ids=VIEWS.keys())
def test_flush_covers_the_lines_of_the_span(mem, make_view):
    m = allocate((8, 8), "u4", target=mem, cacheable=True)
    size = allocation_size(m)
    v = make_view(m)
    m.view("u1")[:] = 0xAA                   # CPU copy differs everywhere
    v.flush()
    lo, hi = byte_span(v)
    start = v.offset + lo
    expected = np.zeros(size, np.uint8)
    if hi > lo:
        expected[lines(start, start + hi - lo)] = 0xAA
    assert np.array_equal(device_bytes(m), expected)


@pytest.mark.parametrize("make_view", VIEWS.values(), ids=VIEWS.keys())
def test_invalidate_changes_nothing_outside_the_lines_of_the_span(
        mem, make_view):
    m = allocate((8, 8), "u4", target=mem, cacheable=True)
    size = allocation_size(m)
    v = make_view(m)
    m.view("u1")[:] = 0x11
    m.flush()                        # clean: the device's bytes reload
    mem.device_write(m.device_address, bytes([0x77]) * size)
    v.invalidate()
    lo, hi = byte_span(v)
    start = v.offset + lo
    expected = np.full(m.nbytes, 0x11, np.uint8)
    if hi > lo:
        expected[lines(start, start + hi - lo)] = 0x77
    assert np.array_equal(m.view("u1").ravel(), expected)


def test_span_is_more_than_nbytes_for_strided_views(mem):
    m = allocate((8, 8), "u4", target=mem, cacheable=True)
    lo, hi = byte_span(m[:, 0])
    assert hi - lo == 7 * 32 + 4 > m[:, 0].nbytes


def test_coherent_buffers_need_no_sync(mem):
    b = allocate(8, "u4", target=mem, cacheable=False)
    b[:] = np.arange(8)
    assert mem.device_read(b.device_address + 4, 4) == np.uint32(1).tobytes()
    mem.device_write(b.device_address, np.uint32(42).tobytes())
    assert b[0] == 42
    b.flush()
    b.invalidate()
    assert b[0] == 42


def test_sync_of_arrays_not_in_device_memory_is_a_value_error(mem):
    b = allocate(8, "u4", target=mem, cacheable=True)
    for not_device in (b.copy(), b.astype("f4"), np.arange(3).view(type(b))):
        for method in ("flush", "invalidate", "sync_to_device",
                       "sync_from_device"):
            with pytest.raises(ValueError, match="not in device memory"):
                getattr(not_device, method)()


def test_sync_after_free_is_a_value_error(mem):
    b = allocate(8, "u4", target=mem, cacheable=True)
    v = b[2:]
    b.freebuffer()
    for arr in (b, v):
        for method in ("flush", "invalidate"):
            with pytest.raises(ValueError, match="freed"):
                getattr(arr, method)()


def test_large_flush_runs_and_is_exact(mem):
    b = allocate(4 << 20, "u1", target=mem, cacheable=True)
    b[:] = 3
    b[LINE + 1::2].flush()   # runs without the GIL; all but the first line
    dev = device_bytes(b)
    assert not dev[:LINE].any() and (dev[LINE:4 << 20] == 3).all()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_view_flushes_the_lines_of_its_span(data):
    mem = open_memory("sim", size=1 << 20, coherence="off", line_size=LINE)
    m = allocate((5, 6, 7), "u2", target=mem, cacheable=True)
    v = random_view(data, m)
    m.view("u1")[:] = 0xAA
    v.flush()
    lo, hi = byte_span(v)
    # The CPU wrote m's 420 bytes; the rest of its last line stays zero.
    cpu = np.zeros(allocation_size(m), np.uint8)
    cpu[:m.nbytes] = 0xAA
    expected = np.zeros(allocation_size(m), np.uint8)
    if v.size:
        span = lines(v.offset + lo, v.offset + hi)
        expected[span] = cpu[span]
    assert np.array_equal(device_bytes(m), expected)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_view_invalidates_the_lines_of_its_span(data):
    mem = open_memory("sim", size=1 << 20, coherence="off", line_size=LINE)
    m = allocate((5, 6, 7), "u2", target=mem, cacheable=True)
    v = random_view(data, m)
    m.view("u1")[:] = 0x11
    m.flush()
    mem.device_write(m.device_address, bytes([0x77]) * allocation_size(m))
    v.invalidate()
    lo, hi = byte_span(v)
    expected = np.full(allocation_size(m), 0x11, np.uint8)
    if v.size:
        expected[lines(v.offset + lo, v.offset + hi)] = 0x77
    expected = expected[:m.nbytes]
    assert np.array_equal(m.view("u1").ravel(), expected)

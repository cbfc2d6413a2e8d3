"""Memory.buffers(): which buffers hold a memory, and where they came from;
allocation tracing; what a MemoryError says about them."""
import inspect
import sys

import numpy as np
import pytest

from helpers import BASE, MiB, run_python
from pynq_alloc import BufferInfo, _core, allocate, open_memory, trace


@pytest.fixture
def tracing():
    """Tracing on for one test, then as it was."""
    was_on = trace(True)
    yield
    trace(was_on)


def here():
    """The line number of the caller."""
    return inspect.currentframe().f_back.f_lineno


def test_lists_each_live_allocation_by_address(mem):
    assert mem.buffers() == []
    a = mem.allocate((2, 3), "f4")
    b = mem.allocate(3 * 4096 + 1, "u1", cacheable=True)
    c = mem.allocate(10, np.dtype([("x", "u2"), ("y", "f8")]))
    listed = mem.buffers()
    assert all(isinstance(i, BufferInfo) for i in listed)
    assert [i.device_address for i in listed] == sorted(
        x.device_address for x in (a, b, c))
    by_address = {i.device_address: i for i in listed}
    for buf, size in ((a, 4096), (b, 4 * 4096), (c, 4096)):
        info = by_address[buf.device_address]
        assert (info.size, info.shape, info.dtype) == (size, buf.shape,
                                                       buf.dtype)
        assert (info.cacheable, info.coherent) == (buf.cacheable, buf.coherent)
        assert info.views == 0 and info.traceback is None
    assert len(listed) == mem.stats()["buffers"] == 3


def test_released_and_freed_buffers_are_not_listed(mem):
    a, b, c = (mem.allocate(100) for _ in range(3))
    del a
    b.freebuffer()
    view_of_c = c[1:]
    c.freebuffer()
    assert mem.buffers() == []
    assert view_of_c.freed


def test_views_are_counted_and_keep_the_buffer_listed(mem):
    buf = mem.allocate((4, 4), "u4")
    row, column = buf[1], buf[:, 2]
    nested = row[1:]
    assert mem.buffers()[0].views == 3
    del buf                 # the views still hold the memory
    (info,) = mem.buffers()
    assert info.views == 3 and info.shape == (4, 4)
    assert "3 views alive" in str(info)
    del row, column, nested
    assert mem.buffers() == []


def test_the_list_keeps_no_memory_alive(mem):
    buf = mem.allocate(1000)
    listed = mem.buffers()
    del buf
    assert mem.buffers() == [] and mem.stats()["buffers"] == 0
    assert listed[0].size == 4096       # the record outlives the buffer


class FrameCache:
    """PYNQ's frame-cache protocol: freebuffer() hands back the pointer."""

    def __init__(self):
        self.pointers = []

    def return_pointer(self, pointer):
        self.pointers.append(pointer)


def test_an_allocation_kept_by_a_frame_cache_is_listed_with_its_shape(mem):
    cache = FrameCache()
    buf = mem.allocate((8, 2), "i2", cache=cache)
    address = buf.device_address
    buf.freebuffer()        # back to the cache, which keeps the memory
    del buf
    (info,) = mem.buffers()
    assert (info.device_address, info.shape, info.dtype) == (
        address, (8, 2), np.dtype("i2"))
    again = mem.allocate(4, "u4", pointer=cache.pointers.pop())
    assert mem.buffers()[0].shape == (4,)
    del again
    assert mem.buffers() == []


def test_tracing_is_off_by_default_and_records_the_site_when_on(mem):
    untraced = mem.allocate(1)
    was_on = trace(True)
    try:
        line = here() + 1
        traced = mem.allocate(1)
    finally:
        assert trace(was_on) is True
    assert was_on is False
    infos = {i.device_address: i for i in mem.buffers()}
    assert infos[untraced.device_address].traceback is None
    info = infos[traced.device_address]
    filename, lineno, function = info.traceback[0]
    assert (filename, lineno, function) == (__file__, line, inspect.currentframe().f_code.co_name)
    assert info.site == f"{__file__}:{line} in {function}"
    assert f"allocated at {info.site}" in str(info)
    # The callers follow, most recent first: pytest's own frames.
    assert 1 < len(info.traceback) <= 5


def test_trace_frames_limits_the_depth(mem, tracing):
    def nested(depth):
        return mem.allocate(1) if depth == 0 else nested(depth - 1)
    trace(True, frames=2)
    buf = nested(5)
    (info,) = mem.buffers()
    assert [f[2] for f in info.traceback] == ["nested", "nested"]
    with pytest.raises(ValueError, match="frames"):
        trace(True, frames=0)
    del buf


def test_allocate_and_target_allocate_are_traced_alike(mem, tracing):
    line = here() + 1
    a, b = allocate(1, target=mem), mem.allocate(1)
    assert {i.traceback[0][1] for i in mem.buffers()} == {line}
    del a, b


def test_tracing_from_the_environment():
    code = """
        from pynq_alloc import open_memory
        mem = open_memory('sim', size=1 << 20)
        buf = mem.allocate(1)
        print(len(mem.buffers()[0].traceback or ()))
    """
    assert run_python(code).stdout.split() == ["0"]
    assert run_python(code, env={"PYNQ_ALLOC_TRACE": "1"}).stdout.split() == ["1"]
    r = run_python(code, env={"PYNQ_ALLOC_TRACE": "yes"})
    assert r.returncode != 0 and "PYNQ_ALLOC_TRACE must be" in r.stderr


def test_tracing_depth_from_the_environment():
    code = """
        from pynq_alloc import open_memory
        mem = open_memory('sim', size=1 << 20)
        def f(n):
            return mem.allocate(1) if n == 0 else f(n - 1)
        buf = f(10)
        print(len(mem.buffers()[0].traceback))
    """
    assert run_python(code, env={"PYNQ_ALLOC_TRACE": "7"}).stdout.split() == ["7"]


def test_memory_error_names_what_holds_the_memory():
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    big = mem.allocate(512 << 10, "u1")
    view = big[10:]
    small = [mem.allocate(100 << 10, "u1") for _ in range(3)]
    with pytest.raises(MemoryError) as e:
        mem.allocate(512 << 10, "u1")
    message = str(e.value)
    assert "4 live buffers of this process hold 831488 bytes" in message
    assert (f"the largest: (524288,) uint8 at {BASE:#x}, 524288 bytes, "
            "1 view alive; (102400,) uint8 at ") in message
    assert message.count("(102400,) uint8") == 2      # the three largest
    assert "Memory.buffers() lists them" in message
    assert "pynq_alloc.trace(True)" in message
    del view, small, big


def test_memory_error_names_allocation_sites_when_tracing(tracing):
    mem = open_memory("sim", size=64 << 10, base_address=BASE)
    line = here() + 1
    buf = mem.allocate(40 << 10, "u1")
    with pytest.raises(MemoryError) as e:
        mem.allocate(40 << 10, "u1")
    assert f"allocated at {__file__}:{line} in " in str(e.value)
    assert "pynq_alloc.trace(True)" not in str(e.value)
    del buf


def test_memory_error_of_an_empty_memory_says_so(mem):
    with pytest.raises(MemoryError, match="no buffer of this process holds"):
        mem.allocate(32 * MiB, "u1")


def test_set_default_memory_installs_and_returns_the_previous(mem):
    import pynq_alloc
    original = pynq_alloc.default_memory()
    previous = _core._set_default_memory(mem)
    try:
        assert previous is original
        assert pynq_alloc.default_memory() is mem
        assert allocate(1).memory is mem
    finally:
        assert _core._set_default_memory(previous) is mem
    assert pynq_alloc.default_memory() is original
    with pytest.raises(TypeError, match="Memory or None"):
        _core._set_default_memory(42)


def test_set_default_memory_none_chooses_again():
    code = """
        import pynq_alloc
        from pynq_alloc import _core
        first = pynq_alloc.default_memory()
        assert _core._set_default_memory(None) is first
        assert _core._set_default_memory(None) is None
        print(pynq_alloc.default_memory() is not first,
              pynq_alloc.default_memory().kind)
    """
    r = run_python(code)
    assert r.stdout.split() == ["True", "sim"], r.stderr


def test_inventory_costs_no_reference_cycles(mem):
    """Allocating and dropping leaves nothing for the collector."""
    import gc
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            b = mem.allocate(10)
            b[1:].flush()
            del b
        assert mem.stats()["buffers"] == 0
    finally:
        gc.enable()


@pytest.mark.skipif(not hasattr(sys, "getrefcount"), reason="CPython only")
def test_buffers_leaves_reference_counts_as_they_were(mem):
    buf = mem.allocate(10)
    before = sys.getrefcount(buf), sys.getrefcount(buf.base)
    mem.buffers()
    assert (sys.getrefcount(buf), sys.getrefcount(buf.base)) == before


def test_listing_under_collections_at_every_allocation(mem):
    """Buffers in garbage cycles, freed by collections that run at nearly
    every allocation, never show up half-gone in a listing."""
    import gc
    threshold = gc.get_threshold()
    gc.collect()
    kept = [mem.allocate(10) for _ in range(20)]
    try:
        gc.set_threshold(1, 1, 1)
        for _ in range(5):
            for _ in range(40):
                cyclic = mem.allocate((2, 3), "f4")
                cyclic.me = cyclic          # garbage once the name goes
                del cyclic
            listed = mem.buffers()
            assert len(listed) >= len(kept)
            assert all(i.shape in ((10,), (2, 3)) for i in listed)
    finally:
        gc.set_threshold(*threshold)
    gc.collect()
    assert len(mem.buffers()) == len(kept)


def test_views_are_counted_exactly_without_the_garbage_collector(
        mem, monkeypatch):
    # The count comes from the registry of live Buffers, not from
    # gc.get_referrers (which hands out other threads' half-built tuples).
    import gc

    def refuse(*objects):
        raise AssertionError("gc.get_referrers was called")
    monkeypatch.setattr(gc, "get_referrers", refuse)
    a = mem.allocate((4, 256), "u4")
    b = mem.allocate(64, "u1")
    views = [a[1], a[1:, 3:], a.T, a.reshape(-1)[::2], a[2][5:]]
    plain = a.view(np.ndarray)          # not a Buffer: not counted
    counts = {i.device_address: i.views for i in mem.buffers()}
    assert counts == {a.device_address: 5, b.device_address: 0}
    del views[1:3], plain
    counts = {i.device_address: i.views for i in mem.buffers()}
    assert counts == {a.device_address: 3, b.device_address: 0}
    with pytest.raises(MemoryError, match="3 views alive"):
        mem.allocate(1 << 40)


def test_a_second_buffer_on_a_cached_pointer_counts_the_first_as_a_view(mem):
    class Cache:
        def return_pointer(self, pointer):
            self.pointer = pointer
    cache = Cache()
    first = mem.allocate(16, cache=cache)
    first.freebuffer()
    second = mem.allocate(16, pointer=cache.pointer)
    info, = mem.buffers()
    assert (info.shape, info.views) == ((16,), 1)
    del first
    info, = mem.buffers()
    assert info.views == 0 and second.device_address == info.device_address


def test_listing_from_one_thread_leaves_other_threads_tuples_alone(mem):
    # Other threads make tuples all the time; listing never sees them.
    import threading
    bufs = [mem.allocate(64) for _ in range(20)]
    views = [b[1:] for b in bufs]
    stop = threading.Event()
    errors = []

    def make_tuples():
        while not stop.is_set():
            try:
                for i in range(200):
                    tuple(zip(range(i), range(i)))
            except SystemError as e:       # what get_referrers caused
                errors.append(e)
    worker = threading.Thread(target=make_tuples)
    worker.start()
    try:
        for _ in range(300):
            assert sum(i.views for i in mem.buffers()) == 20
    finally:
        stop.set()
        worker.join()
    assert errors == [] and len(views) == 20


def test_records_come_from_the_core_with_named_fields():
    # One owner for the record: the core names its fields, and BufferInfo
    # is made from them by name.
    assert _core.AllocationRecord.n_fields == len(BufferInfo._fields)
    record_fields = [f for f in dir(_core.AllocationRecord)
                     if not f.startswith("_") and f not in ("count", "index")
                     and not f.startswith("n_")]
    assert sorted(record_fields) == sorted(BufferInfo._fields)

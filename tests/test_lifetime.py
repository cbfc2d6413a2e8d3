"""Lifetime: release on the last reference, views keep allocations alive,
freebuffer() releases at once and leaves every live view memory-safe."""
import gc

import numpy as np
import pytest

from helpers import run_python
from pynq_alloc import Allocation, allocate, open_memory


def test_last_reference_releases_with_gc_disabled(mem):
    gc.disable()
    try:
        for _ in range(3):
            b = allocate((256, 256), "u4", target=mem)
            v = b[3:][::2]
            assert mem.stats()["buffers"] == 1
            del b, v
            stats = mem.stats()
            assert stats["buffers"] == 0 and stats["used"] == 0
    finally:
        gc.enable()


def test_buffers_are_never_in_gc_cycles(mem):
    b = allocate(4, target=mem)
    v = b[1:]
    # pynq_alloc's own objects cannot close a cycle: a Buffer refers only to
    # its base (and to users' attributes), Allocation and Memory to nothing
    # the collector follows.
    assert gc.get_referents(b) == [b.base] and gc.get_referents(v) == [b]
    assert not gc.is_tracked(b.base) and isinstance(b.base, Allocation)
    assert not gc.is_tracked(mem)


def test_a_view_keeps_its_allocation_alive(mem):
    b = allocate(100, "u1", target=mem)
    b[:] = 5
    address = b.device_address
    v = b[10:]
    del b
    assert v.device_address == address + 10 and not v.freed
    assert mem.stats()["buffers"] == 1
    v.flush()
    assert mem.device_read(address + 10, 1) == b"\x05"
    del v
    assert mem.stats()["buffers"] == 0


def test_freebuffer_releases_now_despite_views(mem):
    b = allocate(1 << 20, "u1", target=mem)
    v = b[100:]
    other_name = b
    b.freebuffer()
    stats = mem.stats()
    assert stats["used"] == 0 and stats["buffers"] == 0
    for arr in (b, v, other_name):
        assert arr.freed is True
        assert arr.device_address is None and arr.coherent is None


def test_release_twice_is_a_no_op(mem):
    b = allocate(4, target=mem)
    b.freebuffer()
    b.freebuffer()
    b[1:].freebuffer()
    assert mem.stats()["buffers"] == 0


def test_freebuffer_of_a_view_does_nothing(mem):
    # As in PYNQ: only the Buffer allocate() returned gives memory back.
    b = allocate(64, "u1", target=mem)
    for view in (b[1:], b[:], b.view("u4"), b.reshape(8, 8)[2], b[1:][2:]):
        view.freebuffer()
        assert not view.freed and not b.freed
    assert mem.stats()["buffers"] == 1 and b.device_address is not None
    b[3:].freebuffer()
    b.freebuffer()
    assert b.freed and mem.stats()["buffers"] == 0


def test_with_block_on_a_view_does_nothing(mem):
    b = allocate(64, "u1", target=mem)
    with b[8:16] as view:
        view[:] = 1
    assert not b.freed and not view.freed and mem.stats()["buffers"] == 1
    assert b[8:16].sum() == 8


def test_with_block_releases(mem):
    with allocate(16, target=mem) as b:
        assert mem.stats()["buffers"] == 1 and b.device_address is not None
    assert b.freed and mem.stats()["buffers"] == 0


def test_with_block_releases_on_exceptions(mem):
    with pytest.raises(KeyError):
        with allocate(16, target=mem):
            raise KeyError("boom")
    assert mem.stats()["buffers"] == 0


def test_close_is_deprecated_and_does_nothing_else(mem):
    # PYNQ's SG DMA driver closes its descriptor ring, then uses it again.
    b = allocate(4, target=mem)
    b[:] = 7
    with pytest.warns(DeprecationWarning, match="freebuffer"):
        b.close()
    assert not b.freed and mem.stats()["buffers"] == 1
    assert b.device_address is not None and (b == 7).all()
    with pytest.warns(DeprecationWarning):
        b[1:].close()           # a view too: a warning, nothing else
    assert not b.freed


def test_freebuffer_on_plain_arrays_does_nothing(mem):
    b = allocate(4, target=mem)
    b.copy().freebuffer()
    np.arange(3).view(type(b)).freebuffer()
    assert not b.freed


def test_released_buffers_still_held_never_stand_in_an_allocations_way():
    # freebuffer() without a system call parks the block while its arrays
    # live; an allocation that needs the space gets it all the same, and
    # the released arrays never reach it.  200 buffers: more than are
    # parked, so some are detached at once.
    mem = open_memory("sim", size=1 << 20)
    held = [allocate(4096, "u1", target=mem) for _ in range(200)]
    views = [b[100:] for b in held[::2]]
    for b in held:
        b.freebuffer()
    whole = allocate(1 << 20, "u1", target=mem)
    assert mem.stats()["buffers"] == 1
    whole[:] = 5
    for b in held:
        b[:] = 9
    for v in views:
        v[:] = 8
    assert (whole == 5).all()
    assert mem.device_read(whole.device_address, 1 << 20) == b"\x05" * (1 << 20)


def test_freed_views_are_memory_safe_in_a_subprocess():
    # In a child: a crash here must fail this test, not the test run.
    result = run_python("""
        import numpy as np
        from pynq_alloc import allocate, open_memory
        mem = open_memory("sim", size=1 << 20)
        b = allocate(1024, "u4", target=mem)
        b[:] = 1
        b.flush()
        v, w = b[256:], b[::-1]
        old_address = b.device_address
        b.freebuffer()
        # Reading and writing freed views works and touches no device memory.
        v[:] = 7
        assert (v == 7).all() and (w[:768] == 7).all()
        # The whole memory, which the freed block is part of: it went back.
        nxt = allocate(mem.size // 4, "u4", target=mem, cacheable=False)
        assert nxt.device_address <= old_address < nxt.device_address + nxt.nbytes
        nxt[:] = 3
        v[:] = 9
        w[:] = 9
        assert (nxt == 3).all()
        assert mem.device_read(old_address, 4096) == np.full(1024, 3, "u4").tobytes()
        del b, v, w
        print("SAFE")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SAFE"


def test_memory_outlives_its_buffers():
    result = run_python("""
        import gc
        from pynq_alloc import open_memory
        gc.disable()
        mem = open_memory("sim", size=1 << 20)
        b = mem.allocate(16)
        v = b[4:]
        del mem, b
        v[:] = 1                # the Memory is kept alive by the view
        v.flush()
        print(v.memory.stats()["buffers"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_a_free_deferred_by_a_running_flush_completes_when_it_ends():
    # freebuffer() while another thread flushes without the GIL: the
    # memory goes back as soon as the flush ends, and stats(), buffers()
    # and the next allocate agree.
    import threading
    mem = open_memory("sim", size=96 << 20)
    buf = mem.allocate(64 << 20, "u1", cacheable=True)
    buf[:] = 1
    started = threading.Event()

    def flush():
        started.set()
        buf.flush()
    worker = threading.Thread(target=flush)
    worker.start()
    started.wait()
    buf.freebuffer()
    worker.join()
    assert mem.stats()["used"] == 0 and mem.buffers() == []
    again = mem.allocate(64 << 20, "u1")
    assert again.device_address == mem.base_address

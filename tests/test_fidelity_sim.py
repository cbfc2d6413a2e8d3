"""The simulated memory does what a board does where the model alone
could get it wrong: a forked child acting as the device, a device write
whose source is the same memory, and invalidate() of a view whose edge
lines hold bytes outside it."""
import numpy as np

from helpers import in_child
from pynq_alloc import open_memory


def test_a_forked_childs_device_write_is_seen_by_the_parents_model():
    # The line model's state is shared as the pool is: after the child
    # writes as the device, the parent's flush of its unchanged buffer
    # writes nothing back (a board keeps the device's 7s) and reports no
    # unflushed lines, only the device write it never invalidated.
    mem = open_memory("sim", size=1 << 20, coherence="raise")
    buf = mem.allocate(4096, "u1", cacheable=True)
    buf[:] = 1
    buf.flush()
    in_child(lambda: mem.device_write(buf.device_address, bytes([7]) * 4096))
    buf.flush()
    assert mem.device_read(buf.device_address, 4096) == bytes([7]) * 4096
    assert [h.kind for h in mem.check()] == ["uninvalidated"]
    buf.invalidate()
    assert (buf == 7).all()
    assert mem.check() == []
    buf.freebuffer()


def _overlapping_writes_are_memmoves(mem, cacheable):
    rng = np.random.default_rng(3)
    buf = mem.allocate(1 << 20, "u1", cacheable=cacheable)
    buf[:] = rng.integers(0, 256, buf.size, dtype="u1")
    buf.flush()
    before = bytes(buf)
    # The source is the buffer itself: what the DMA engine reads is what
    # was there before the copy, as memmove gives, in both directions.
    mem.device_write(buf.device_address + 1, buf[:-1])
    after = before[:1] + before[:-1]
    assert mem.device_read(buf.device_address, buf.nbytes) == after
    buf.invalidate()
    mem.device_write(buf.device_address, buf[4097:])
    assert (mem.device_read(buf.device_address, buf.nbytes)
            == after[4097:] + after[-4097:])
    buf.invalidate()
    buf.freebuffer()


def test_a_device_write_from_the_same_sim_memory_is_a_memmove():
    mem = open_memory("sim", size=4 << 20)
    _overlapping_writes_are_memmoves(mem, cacheable=False)
    _overlapping_writes_are_memmoves(mem, cacheable=True)


def test_a_device_write_from_the_same_hugepage_memory_is_a_memmove():
    from test_hugepage import open_or_skip
    _overlapping_writes_are_memmoves(open_or_skip(size=4 << 20),
                                     cacheable=True)

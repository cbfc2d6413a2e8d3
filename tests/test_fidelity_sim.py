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

"""The sim's line model costs a cacheable buffer nothing in proportion to
its size until its lines are used: its record of device-written lines is
reset a bit per page at allocation, and a page's line bits only when the
device first writes there.  Seen here as memory touched: at 16-byte lines
a 4 GiB block has 32 MiB of line bits, and 128 KiB of page bits.  (Only
views are synced here: syncing or checking the whole block would read
every page of the pool's shared memory, which allocates them.)"""
import sys

import pytest

from pynq_alloc import allocate, open_memory

GiB = 1 << 30
MiB = 1 << 20

pytestmark = pytest.mark.skipif(sys.maxsize < 1 << 40,
                                reason="needs a 64-bit address space")


def resident():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("zero", [True, False])
def test_a_large_cacheable_buffer_touches_no_line_bits(zero):
    mem = open_memory("sim", size=8 * GiB, line_size=16)
    for _ in range(2):              # a fresh pool, then pages used before
        before = resident()
        b = allocate(4 * GiB, "u1", mem, cacheable=True, zero=zero)
        grown = resident() - before
        assert grown < 8 * MiB, f"{grown / MiB:.0f} MiB touched"
        del b


def test_its_far_lines_are_tracked_once_used():
    mem = open_memory("sim", size=8 * GiB, line_size=16)
    b = allocate(4 * GiB, "u1", mem, cacheable=True)
    far = 4 * GiB - 4096
    lines = b[far:far + 32]
    mem.device_write(b.device_address + far, b"\x07" * 16)
    lines[16] = 1
    assert lines[0] == 0            # not invalidated yet
    lines[:16].invalidate()
    assert lines[0] == 7 and lines[16] == 1
    lines.flush()
    assert mem.device_read(b.device_address + far, 32) == (
        b"\x07" * 16 + b"\x01" + b"\x00" * 15)

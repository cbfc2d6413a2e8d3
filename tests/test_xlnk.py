"""The xlnk backend through its real interface: dlopen() of a stand-in
libcma.so built by the test suite, which logs every call."""
import errno
import os
import signal

import numpy as np
import pytest

from fake_devices import make_xlnk, read_log
from helpers import longest_stall
from pynq_alloc import allocate, open_memory


@pytest.fixture
def xlnk(tmp_path, libcma, monkeypatch):
    library, log = make_xlnk(str(tmp_path), libcma[0], monkeypatch)
    return open_memory("xlnk", library=library), log, str(tmp_path / "xlnk")


def test_allocation_calls_cma_alloc(xlnk):
    mem, log, device = xlnk
    b = allocate(100, "u1", target=mem, cacheable=True)
    assert read_log(log) == ["alloc 4096 1 0x20000000"]
    assert b.device_address == 0x2000_0000 and b.coherent is False
    b[:5] = np.frombuffer(b"xlnk!", "u1")
    with open(device, "rb") as f:               # the same physical memory
        assert f.read(5) == b"xlnk!"


def test_cache_calls_get_the_views_own_addresses(xlnk):
    mem, log, _ = xlnk
    b = allocate((64, 64), "u4", target=mem, cacheable=True)
    b[:] = 3
    b[2].flush()
    b[1:3, 5].invalidate()
    _, flush, invalidate = read_log(log)
    assert flush == f"flush {b.device_address + 512:#x} 256 same"
    # Rows 1 and 2 of column 5: a 260-byte span from row 1's element.
    assert invalidate == f"invalidate {b.device_address + 256 + 20:#x} 260 same"


def test_uncached_buffers_skip_the_cache_calls(xlnk):
    mem, log, _ = xlnk
    b = allocate(16, target=mem, cacheable=False)
    assert b.coherent is True
    b.flush()
    b.invalidate()
    assert read_log(log) == ["alloc 4096 0 0x20000000"]


def test_release_frees_at_once_with_no_reuse(xlnk):
    mem, log, _ = xlnk
    b = allocate(4096, "u1", target=mem)
    del b
    assert read_log(log) == ["alloc 4096 0 0x20000000", "free 0x20000000"]
    c = allocate(4096, "u1", target=mem)      # from the kernel again
    assert read_log(log)[-1] == "alloc 4096 0 0x20000000"
    assert mem.stats()["buffers"] == 1
    del c


def test_freebuffer_with_live_views(xlnk):
    mem, log, _ = xlnk
    b = allocate(8192, "u1", target=mem)
    v = b[10:]
    b.freebuffer()
    assert read_log(log)[-1] == "free 0x20000000"
    v[:] = 9                                    # still mapped, detached
    assert (v == 9).all() and v.freed and v.device_address is None


def test_alignment_beyond_a_page(xlnk):
    mem, log, _ = xlnk
    allocate(1, target=mem)                     # disturb alignment
    b = allocate(4096, "u1", target=mem, align=1 << 16)
    assert b.device_address % (1 << 16) == 0
    assert read_log(log)[-1].startswith(f"alloc {4096 + (1 << 16) - 4096} 0")


def test_stats_and_exhaustion(xlnk):
    mem, log, _ = xlnk
    held = allocate(60 << 20, "u1", target=mem)
    stats = mem.stats()
    assert stats["used"] == 60 << 20 and stats["free"] == 4 << 20
    with pytest.raises(MemoryError, match="bytes free"):
        allocate(8 << 20, "u1", target=mem)
    del held


def test_never_calls_xlnk_reset(xlnk):
    mem, log, _ = xlnk
    for n in (1, 5000, 70000):
        allocate(n, "u1", target=mem).flush()
    del mem
    assert not any("_xlnk_reset" in line for line in read_log(log))


def test_missing_library_is_an_oserror_naming_it(tmp_path):
    missing = str(tmp_path / "libcma.so")
    with pytest.raises(OSError) as info:
        open_memory("xlnk", library=missing)
    assert info.value.errno == errno.ENOENT and info.value.filename == missing


def test_missing_symbol_is_an_oserror_naming_it(libcma):
    with pytest.raises(OSError, match="cma_invalidate_cache") as info:
        open_memory("xlnk", library=libcma[1])
    assert info.value.filename == libcma[1]


def test_driver_calls_run_without_the_gil(xlnk, monkeypatch):
    mem, _, _ = xlnk
    b = allocate(16, "u1", target=mem, cacheable=True)    # a short span: still a driver call
    monkeypatch.setenv("PA_FAKE_XLNK_FLUSH_MS", "300")
    # Holding the GIL through the call would stall this thread for 300 ms.
    assert longest_stall(b.flush) < 0.15


def test_a_forked_child_killed_without_freeing_keeps_its_buffer(xlnk):
    """A forked child allocates through the libcma its parent loaded (one
    /dev/xlnk open file, shared) and is killed: no cma_free runs for its
    buffer, neither in it (a killed process runs no destructor) nor in the
    parent, whose stats and buffer are untouched.  What the kernel then
    does with the buffer is the xlnk driver's (docs/backends.md, "A
    process that dies"): the stand-in cannot show it."""
    mem, log, device = xlnk
    parent = allocate(4096, "u1", target=mem)
    parent[:] = 6
    stats = mem.stats()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            mine = allocate(8192, "u1", target=mem)
            mine[:] = 7
            os.write(writer, str(mine.device_address).encode())
            signal.pause()
        finally:
            os._exit(1)
    os.close(writer)
    try:
        child_address = int(os.read(reader, 64))
    finally:
        os.close(reader)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert read_log(log) == [f"alloc 4096 0 {parent.device_address:#x}",
                             f"alloc 8192 0 {child_address:#x}"]
    assert child_address != parent.device_address
    with open(device, "rb") as f:               # still there, as it was left
        f.seek(child_address - 0x2000_0000)
        assert f.read(8192) == b"\x07" * 8192
    assert mem.stats()["used"] == stats["used"]
    assert mem.stats()["buffers"] == stats["buffers"] == 1
    assert (parent == 6).all()

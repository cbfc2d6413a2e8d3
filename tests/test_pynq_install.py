"""pynq_alloc.pynq.install(): PYNQ's own code makes pynq_alloc Buffers
(docs/contract.md, "PYNQ on pynq_alloc").  The tests that need PYNQ run
where it is installed (CI installs PYNQ 4.0.0 and 3.1 from the package
index, on numpy 2 and 1.26); the others run everywhere."""
import collections
import gc
import os
import sys
import types
import weakref

import numpy as np
import pytest

from helpers import run_python
import pynq_alloc
import pynq_alloc.pynq as pynq_install
from pynq_alloc import Buffer


def test_importing_pynq_alloc_imports_nothing_of_pynq():
    result = run_python(
        "import sys, pynq_alloc, pynq_alloc.pynq\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pynq'))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_pynq_install_says_what_to_do():
    result = run_python(
        "import sys\n"
        "sys.modules['pynq'] = None          # as if PYNQ were absent\n"
        "import pynq_alloc.pynq\n"
        "try:\n"
        "    pynq_alloc.pynq.install()\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
        "print(pynq_alloc.pynq.installed())\n")
    assert result.returncode == 0, result.stderr
    assert "ImportError: pynq_alloc.pynq.install() puts" in result.stdout
    assert "pip install pynq" in result.stdout
    assert result.stdout.strip().endswith("False")


def test_allocate_asks_any_target_with_only_the_callers_arguments(mem):
    class Target:
        def allocate(self, *args, **kwargs):
            self.asked = (args, kwargs)
            return mem.allocate(4)
    target = Target()
    pynq_install.allocate((2, 2), "u2", target=target)
    assert target.asked == (((2, 2), "u2"), {})
    pynq_install.allocate(8, target=target, cacheable=1)
    assert target.asked == ((8, "u4"), {"cacheable": 1})
    buf = pynq_install.allocate(16, "u1", target=mem, cacheable=True)
    assert type(buf) is Buffer and buf.memory is mem and buf.cacheable
    with pytest.raises(TypeError, match="object with an allocate.*int has "
                       "none"):
        pynq_install.allocate(4, target=7)


# ---- with PYNQ --------------------------------------------------------------

@pytest.fixture
def pynq():
    """PYNQ with pynq_alloc installed in it; uninstalled afterwards, and
    PYNQ's active device put back.  Skipped without PYNQ, unless
    PYNQ_ALLOC_REQUIRE_PYNQ=1 (as in CI's PYNQ venvs) makes that an
    error."""
    if os.environ.get("PYNQ_ALLOC_REQUIRE_PYNQ") == "1":
        import pynq
    else:
        pynq = pytest.importorskip("pynq")
    device_class = pynq.Device
    had = hasattr(device_class, "_active_device")
    previous = getattr(device_class, "_active_device", None) if had else None
    pynq_install.install()
    yield pynq
    pynq_install.uninstall()
    if had:
        device_class._active_device = previous
    elif "_active_device" in vars(device_class):
        del device_class._active_device


class MockDevice:
    """A PYNQ device as PYNQ's own tests mock one (tests/mock_devices.py's
    MockAllocateDevice: its allocate builds pynq.buffer.PynqBuffer itself,
    and it checks every flush and invalidate)."""

    def __init__(self, coherent=False):
        self.coherent = coherent
        self.syncs = collections.deque()
        self.made = []

    def allocate(self, shape, dtype):
        import pynq.buffer
        buf = pynq.buffer.PynqBuffer(shape, dtype, device=self, bo=10,
                                     coherent=self.coherent,
                                     device_address=0x10000)
        self.made.append(weakref.ref(buf))
        return buf

    def flush(self, bo, offset, vaddr, length):
        self.syncs.append(("flush", bo, offset, length))

    def invalidate(self, bo, offset, vaddr, length):
        self.syncs.append(("invalidate", bo, offset, length))


def test_install_rebinds_every_name_pynq_holds_and_uninstall_restores(pynq):
    import pynq.buffer
    import pynq.lib.dma
    pynq_install.uninstall()
    theirs = (pynq.allocate, pynq.buffer.allocate, pynq.buffer.PynqBuffer,
              pynq.lib.dma.allocate)
    assert not pynq_install.installed()
    pynq_install.install()
    pynq_install.install()                          # once is enough
    assert pynq_install.installed()
    assert pynq.allocate is pynq.buffer.allocate is pynq.lib.dma.allocate \
        is pynq_install.allocate
    assert pynq.buffer.PynqBuffer is Buffer
    pynq_install.uninstall()
    assert (pynq.allocate, pynq.buffer.allocate, pynq.buffer.PynqBuffer,
            pynq.lib.dma.allocate) == theirs
    pynq_install.install()


def test_pynqs_own_buffers_made_before_install_keep_working(pynq):
    pynq_install.uninstall()
    if np.__version__ >= "2":
        pytest.skip("PYNQ's own buffers cannot be made on numpy 2")
    import pynq.buffer
    theirs_class = pynq.buffer.PynqBuffer
    device = MockDevice()
    theirs = theirs_class((64,), "u4", device=device, bo=3, coherent=False,
                          device_address=0x2000)
    pynq_install.install()
    view = theirs[4:8]
    assert type(view) is theirs_class and view.device_address == 0x2010
    view.flush()
    assert list(device.syncs) == [("flush", 3, 16, 16)]
    assert type(pynq.allocate(4, target=device)) is Buffer


def test_modules_pynq_imports_later_get_pynq_alloc(pynq):
    sys.modules.pop("pynq.lib.video.dma", None)
    import pynq.lib.video.dma
    assert pynq.lib.video.dma.allocate is pynq_install.allocate


def test_pynq_devices_make_buffers_that_work_on_any_numpy(pynq):
    device = MockDevice()
    buf = pynq.allocate((1024, 1024), "u4", target=device)
    assert type(buf) is Buffer and isinstance(buf, pynq.buffer.PynqBuffer)
    assert buf.device_address == buf.physical_address == 0x10000
    assert buf.bo == 10 and buf.coherent is False and buf.cacheable is True
    assert buf.pynq_device is device
    view = buf[1, 512:]
    assert view.device_address == 0x10000 + 6144
    view.flush()
    view.invalidate()
    assert list(device.syncs) == [("flush", 10, 6144, 2048),
                                  ("invalidate", 10, 6144, 2048)]
    del buf, view
    gc.collect()
    assert all(ref() is None for ref in device.made)


def test_the_default_target_is_pynqs_active_device(pynq):
    device = MockDevice(coherent=True)
    pynq.Device.active_device = device
    buf = pynq.allocate(16, "u1")
    assert buf.pynq_device is device and buf.coherent is True
    buf.flush()
    assert not device.syncs


def test_without_a_pynq_device_pynq_allocates_from_pynq_alloc(pynq):
    pynq.Device.active_device = None        # as PYNQ's own tests leave it
    buf = pynq.allocate(16, "u1")
    assert buf.memory is pynq_alloc.default_memory()
    assert buf.device_address is not None


def test_xrt_devices_sync_exactly_the_bytes_asked(pynq, monkeypatch):
    xrt_device = pytest.importorskip("pynq.pl_server.xrt_device")
    pynq_install.uninstall()
    pynq_install.install()                  # the module is imported now
    directions = types.SimpleNamespace(XCL_BO_SYNC_BO_TO_DEVICE="to",
                                       XCL_BO_SYNC_BO_FROM_DEVICE="from")
    monkeypatch.setattr(xrt_device, "pyxrt", types.SimpleNamespace(
        xclBOSyncDirection=directions), raising=False)

    class Bo:
        synced = []

        def sync(self, *args):
            self.synced.append(args)
    bo = Bo()
    xrt_device.XrtDevice.flush(None, bo, 4096, 0, 2048)
    xrt_device.XrtDevice.invalidate(None, bo, 64, 0, 128)
    assert Bo.synced == [("to", 2048, 4096), ("from", 128, 64)]


@pytest.mark.parametrize("sg", [False, True], ids=["simple", "sg"])
def test_pynqs_dma_driver_runs_on_pynq_alloc_buffers(pynq, mem, sg):
    """PYNQ's own pynq/lib/dma.py against the simulated AXI DMA, on
    cacheable buffers (so that a flush or invalidate it left out would
    fail the transfer): its scatter-gather descriptor ring, which PYNQ
    allocates itself, is a pynq_alloc Buffer now."""
    from pynq_alloc.testing import AxiDma
    ip = AxiDma(mem, sg=sg)
    dma = ip.pynq_driver()
    src = pynq.allocate(1024, "u1", target=mem, cacheable=True)
    dst = pynq.allocate(1024, "u1", target=mem, cacheable=True)
    src[:] = np.arange(1024) % 251
    dma.sendchannel.transfer(src)
    dma.recvchannel.transfer(dst)
    if sg:          # the rings live while their transfers run
        for channel in (dma.sendchannel, dma.recvchannel):
            ring = channel._descr
            assert type(ring) is Buffer and ring.memory is mem
            del ring
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert (dst == src).all()
    assert ip.errors() == {"mm2s": [], "s2mm": []}

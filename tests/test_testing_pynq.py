"""PYNQ's own DMA driver (pynq.lib.dma.DMA, PYNQ 3.1 and 4.0) bound to
the simulated AXI DMA with AxiDma.pynq_driver(): PYNQ's MMIO reaches the
registers through the description's device, PYNQ's allocate() puts the SG
descriptor rings in the DMA's memory, and PYNQ's documented usage moves
the data.  Skipped where PYNQ is not installed, unless
PYNQ_ALLOC_REQUIRE_PYNQ=1 (CI runs it so in the venvs of .ci/pynq-suites,
PYNQ 4.0.0 and 3.1.2)."""
import os

import numpy as np
import pytest

from helpers import MiB
from pynq_alloc import allocate, open_memory
from pynq_alloc.testing import AxiDma

if os.environ.get("PYNQ_ALLOC_REQUIRE_PYNQ") == "1":
    import pynq.lib.dma as pynq_dma
else:
    pynq_dma = pytest.importorskip("pynq.lib.dma")

MODES = pytest.mark.parametrize("sg", [False, True], ids=["simple", "sg"])
CACHEABLE = pytest.mark.parametrize("cacheable", [False, True],
                                    ids=["uncached", "cacheable"])
# PYNQ's SG wait() calls close() on its descriptor ring, which warns since
# PYNQ 3.0, as pynq_alloc's does.
RING_CLOSE = pytest.mark.filterwarnings(
    "ignore:Buffer.close\\(\\) is deprecated:DeprecationWarning")


def noise(mem, n, dtype, cacheable):
    buf = allocate(n, dtype, target=mem, cacheable=cacheable)
    buf.view(np.uint8)[:] = np.random.default_rng(n).integers(
        0, 256, buf.nbytes, dtype=np.uint8)
    return buf


def test_pynq_driver_is_pynqs_dma(mem):
    dma = AxiDma(mem).pynq_driver()
    assert type(dma) is pynq_dma.DMA
    assert dma.buffer_max_size == (1 << 26) - 1
    assert type(dma.sendchannel).__name__ == "_SDMAChannel"


@RING_CLOSE
@MODES
@CACHEABLE
def test_pynqs_documented_loopback(mem, sg, cacheable):
    ip = AxiDma(mem, sg=sg)
    dma = ip.pynq_driver()
    src = noise(mem, 1000, "u4", cacheable)
    dst = allocate(1000, "u4", target=mem, cacheable=cacheable)
    dma.sendchannel.transfer(src)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert dst.tobytes() == src.tobytes()
    assert dma.sendchannel.transferred == dma.recvchannel.transferred == 4000
    assert ip.errors() == {"mm2s": [], "s2mm": []}


@RING_CLOSE
def test_pynqs_sg_rings_are_in_the_dmas_memory_and_chain(mem):
    ip = AxiDma(mem, sg=True, length_width=10)        # 1023-byte blocks at most
    dma = ip.pynq_driver()
    src = noise(mem, 4000, "u1", False)
    dst = allocate(4000, "u1", target=mem)
    dma.sendchannel.transfer(src)
    ring = dma.sendchannel._descr                     # PYNQ's own ring
    assert ring.memory is mem and ring.shape == (4, 16)
    del ring
    dma.recvchannel.transfer(dst)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert dst.tobytes() == src.tobytes()
    assert dma.recvchannel.transferred == 4000
    assert mem.stats()["buffers"] == 2                # wait() dropped the rings


def test_pynq_simple_sees_a_decode_error_as_a_stopped_channel(mem):
    ip = AxiDma(mem)
    dma = ip.pynq_driver()
    src = noise(mem, 256, "u4", False)
    # PYNQ does not check start or nbytes against the array: past the end
    # of the memory, the bus does.
    dma.sendchannel.transfer(src, start=mem.size, nbytes=256)
    assert ip.errors()["mm2s"] == ["DMADecErr"]
    # PYNQ's simple wait() looks at "running" first, which the error cleared.
    with pytest.raises(RuntimeError, match="DMA channel not started"):
        dma.sendchannel.wait()


@RING_CLOSE
def test_pynq_sg_names_a_slave_error_past_the_buffers_end(mem):
    ip = AxiDma(mem, sg=True)
    dma = ip.pynq_driver()
    src = noise(mem, 1024, "u4", False)                 # one page
    # Two 2560-byte blocks: the second crosses the buffer's end.
    dma.sendchannel.transfer(src, nbytes=5120)
    assert ip.errors()["mm2s"] == ["DMASlvErr"]
    assert list(dma.sendchannel._descr[:, 7]) == [1 << 31 | 2560, 1 << 29]
    with pytest.raises(RuntimeError, match=r"DMA Slave Error \(cannot access "
                       r"memory map interface\)"):
        dma.sendchannel.wait()


@RING_CLOSE
def test_pynqs_sg_start_offset_as_each_version_has_it(mem):
    """What the simulated DMA shows of PYNQ's SG driver: 3.1 adds `start`
    to the high word of a descriptor's buffer address and not to the low
    one, so the data comes from the array's first byte; 4.0 fixed it."""
    import pynq
    dma = AxiDma(mem, sg=True).pynq_driver()
    src = noise(mem, 256, "u1", False)
    dst = allocate(64, "u1", target=mem)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src, start=16, nbytes=64)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    sent = src[:64] if pynq.__version__.startswith("3.") else src[16:80]
    assert dst.tobytes() == sent.tobytes()


def test_pynq_polls_a_receive_that_nothing_will_end_and_the_dma_says_so(mem):
    ip = AxiDma(mem, poll_timeout=0.1)
    dma = ip.pynq_driver()
    dma.recvchannel.transfer(allocate(64, "u4", target=mem))
    with pytest.raises(TimeoutError, match="S2MM_DMASR polled for .* "
                       "waiting for stream data"):
        dma.recvchannel.wait()                        # PYNQ would spin for ever


def test_a_64_bit_pynq_dma_reaches_memory_above_4_gib():
    high = open_memory("sim", size=MiB, base_address=0x1_0000_0000)
    dma = AxiDma(high, addr_width=64).pynq_driver()
    src = noise(high, 64, "u4", True)
    dst = allocate(64, "u4", target=high, cacheable=True)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert src.device_address >= 1 << 32
    assert dst.tobytes() == src.tobytes()

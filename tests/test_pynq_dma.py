"""PYNQ's DMA usage end to end, in simple and scatter-gather (SG) mode: a
driver written as PYNQ's (pynq_style_dma) against the public simulated AXI
DMA, pynq_alloc.testing.AxiDma, on the simulated memory. The DMA moves data
only with device_read/device_write, so it sees what a device sees: a
missing flush or invalidate on a cacheable buffer gives stale data, as on a
board, and the sim's coherence model reports it."""
import contextlib

import numpy as np
import pytest

from pynq_alloc import CoherenceWarning, allocate
from pynq_alloc.testing import AxiDma
from pynq_style_dma import Dma

# PG021 bits the tests look at, spelled out here rather than taken from the
# model: DMASR, and the STATUS word of an SG descriptor.
HALTED, IDLE, DMA_SLV_ERR, DMA_DEC_ERR, SG_INT_ERR, ERR_IRQ = (
    1 << 0, 1 << 1, 1 << 5, 1 << 6, 1 << 8, 1 << 14)
CMPLT, STS_SLV_ERR, RXSOF, RXEOF = 1 << 31, 1 << 29, 1 << 27, 1 << 26
MM2S_DMASR, S2MM_DMASR = 0x04, 0x34

MODES = pytest.mark.parametrize("sg", [False, True], ids=["simple", "sg"])
CACHEABLE = pytest.mark.parametrize("cacheable", [False, True],
                                    ids=["uncached", "cacheable"])

POINT = np.dtype([("tag", "u1"), ("x", "<f8"), ("n", "<i2")])   # 11 bytes
DATA = {"u1": ((1000,), "u1"), "i2": ((7, 9), "i2"), "u4": ((2, 3, 5), "u4"),
        "f4": ((64,), "f4"), "c8": ((5, 5), "c8"), "struct": ((33,), POINT)}


def make_dma(mem, *, sg, **options):
    """The IP on mem, and the driver that PYNQ would bind to it."""
    ip = AxiDma(mem, sg=sg, **options)
    return ip, Dma(ip, target=mem)


def filled(mem, shape, dtype, cacheable):
    """A buffer of random bytes, compared as bytes (NaNs included)."""
    buf = allocate(shape, dtype, target=mem, cacheable=cacheable)
    noise = np.random.default_rng(7).integers(0, 256, buf.nbytes, dtype=np.uint8)
    buf.reshape(-1).view(np.uint8)[:] = noise
    return buf


def loopback(dma, src, dst, *, flush=True, invalidate=True):
    """PYNQ's documented DMA usage (docs/source/pynq_libraries/dma.rst);
    flush/invalidate=False drop the driver's cache maintenance."""
    dma.sendchannel.transfer(src, flush=flush)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.wait()
    dma.recvchannel.wait(invalidate=invalidate)


def test_simple_mode_register_writes_are_pynqs(mem):
    ip, dma = make_dma(mem, sg=False)
    assert ip.writes == [(0x00, 1), (0x30, 1)]      # DMACR.RS on both
    src = allocate(64, "u4", target=mem, cacheable=False)
    dst = allocate(64, "u4", target=mem, cacheable=False)
    ip.writes.clear()
    loopback(dma, src, dst)
    # MM2S_SA, its MSB, MM2S_LENGTH; then S2MM_DA, its MSB, S2MM_LENGTH.
    assert ip.writes == [(0x18, src.device_address), (0x1C, 0), (0x28, 256),
                         (0x48, dst.device_address), (0x4C, 0), (0x58, 256)]


def test_sg_mode_register_writes_are_pynqs(mem):
    ip, dma = make_dma(mem, sg=True)
    assert ip.writes == [(0x00, 0), (0x30, 0)]      # both stopped
    src = allocate(64, "u4", target=mem, cacheable=False)
    dst = allocate(64, "u4", target=mem, cacheable=False)
    for channel, buf, base in ((dma.sendchannel, src, 0x00),
                               (dma.recvchannel, dst, 0x30)):
        ip.writes.clear()
        channel.transfer(buf)
        first = channel.ring.device_address
        tail = first + 0x40 * (len(channel.ring) - 1)
        # Stop, CURDESC and its MSB, run, then TAILDESC and its MSB.
        assert ip.writes == [(base, 0), (base + 0x08, first), (base + 0x0C, 0),
                             (base, 1), (base + 0x10, tail), (base + 0x14, 0)]
    for channel, base in ((dma.sendchannel, 0x00), (dma.recvchannel, 0x30)):
        ip.writes.clear()
        channel.wait()
        assert ip.writes == [(base, 0)]             # wait() stops the channel


@MODES
@CACHEABLE
@pytest.mark.parametrize("name", DATA)
def test_loopback(mem, sg, cacheable, name):
    shape, dtype = DATA[name]
    ip, dma = make_dma(mem, sg=sg)
    src = filled(mem, shape, dtype, cacheable)
    dst = allocate(shape, dtype, target=mem, cacheable=cacheable)
    loopback(dma, src, dst)
    assert dst.tobytes() == src.tobytes()
    assert dma.sendchannel.transferred == dma.recvchannel.transferred == src.nbytes


VIEWS = {"slice": ((128,), "u1", lambda b: b[16:80]),
         "row": ((6, 32), "u4", lambda m: m[2]),
         "rows": ((6, 32), "i2", lambda m: m[3:5])}


@MODES
@CACHEABLE
@pytest.mark.parametrize("name", VIEWS)
def test_loopback_of_contiguous_views(mem, sg, cacheable, name):
    shape, dtype, take = VIEWS[name]
    ip, dma = make_dma(mem, sg=sg)
    src = filled(mem, shape, dtype, cacheable)
    dst = allocate(shape, dtype, target=mem, cacheable=cacheable)
    dst.reshape(-1).view(np.uint8)[:] = 0xEE
    dst.flush()
    expected = np.array(dst)                  # worked out by numpy alone
    take(expected)[...] = take(src)
    loopback(dma, take(src), take(dst))
    # The view's bytes arrived, on both sides, and nothing else changed.
    assert dst.tobytes() == expected.tobytes()
    assert mem.device_read(dst.device_address, dst.nbytes) == expected.tobytes()


@CACHEABLE
@pytest.mark.parametrize("addr_width", [32, 64])
def test_sg_transfer_longer_than_a_descriptor_chains_several(mem, cacheable,
                                                             addr_width):
    # 10-bit lengths: at most 1023 bytes, so PYNQ cuts 1020-byte blocks.
    ip, dma = make_dma(mem, sg=True, length_width=10, addr_width=addr_width)
    src = filled(mem, (1000,), "u4", cacheable)             # 4000 bytes
    dst = allocate(1000, "u4", target=mem, cacheable=cacheable)
    dma.sendchannel.transfer(src)
    dma.recvchannel.transfer(dst)
    # The rings are uncached and wait() frees them: read the status first.
    sent, received = (np.array(ch.ring[:, 7])
                      for ch in (dma.sendchannel, dma.recvchannel))
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert dst.tobytes() == src.tobytes()
    lengths = np.array([1020, 1020, 1020, 940], np.uint32)
    assert np.array_equal(sent, CMPLT | lengths)
    assert np.array_equal(received, CMPLT | lengths | [RXSOF, 0, 0, RXEOF])
    assert dma.recvchannel.transferred == 4000


def test_a_descriptor_already_complete_is_an_sg_internal_error(mem):
    """Why PYNQ needs new memory to read as zeros: it never writes a
    descriptor's STATUS word, and PG021 halts on a fetched descriptor that
    is already complete. Shown with a ring built by hand."""
    ip = AxiDma(mem, sg=True)
    src = filled(mem, (64,), "u4", cacheable=False)
    ring = allocate((1, 16), "u4", target=mem, cacheable=False)
    ring[0] = 0
    ring[0, 0] = ring.device_address                    # NXTDESC: itself
    ring[0, 2] = src.device_address                     # BUFFER_ADDRESS
    ring[0, 6] = src.nbytes | 3 << 26                   # CONTROL: SOF, EOF
    ring[0, 7] = CMPLT | src.nbytes                     # a previous run's
    ip.write(0x08, ring.device_address)                 # CURDESC
    ip.write(0x00, 1)                                   # DMACR.RS
    ip.write(0x10, ring.device_address)                 # TAILDESC
    status = ip.read(MM2S_DMASR)
    assert status & SG_INT_ERR and status & HALTED and not status & IDLE
    assert ring[0, 7] == CMPLT | src.nbytes             # left alone


def test_receiving_into_a_buffer_freed_in_flight_is_a_slave_error(mem):
    ip, dma = make_dma(mem, sg=False)
    src = filled(mem, (256,), "u4", cacheable=False)
    dst = allocate(256, "u4", target=mem, cacheable=False)
    dma.recvchannel.transfer(dst)
    dst.freebuffer()                # the DMA still holds its address
    dma.sendchannel.transfer(src)
    dma.sendchannel.wait()
    with pytest.raises(RuntimeError, match="DMASlvErr"):
        dma.recvchannel.wait()
    status = ip.read(S2MM_DMASR)
    assert status & (DMA_SLV_ERR | HALTED | ERR_IRQ) == DMA_SLV_ERR | HALTED | ERR_IRQ
    assert not status & IDLE


@MODES
def test_reading_past_the_end_of_a_buffer_is_a_slave_error(mem, sg):
    ip, dma = make_dma(mem, sg=sg)
    src = filled(mem, (1024,), "u4", cacheable=False)     # one whole page
    # PYNQ does not check nbytes against the array; the bus does.
    dma.sendchannel.transfer(src, nbytes=5120)
    status = ip.read(MM2S_DMASR)
    if sg:      # two 2560-byte blocks: the second crosses the buffer's end
        assert np.array_equal(dma.sendchannel.ring[:, 7],
                              [CMPLT | 2560, STS_SLV_ERR])
    assert status & DMA_SLV_ERR and status & HALTED
    with pytest.raises(RuntimeError, match="DMASlvErr"):
        dma.sendchannel.wait()


@MODES
def test_an_address_outside_the_memory_is_a_decode_error(mem, sg):
    ip, dma = make_dma(mem, sg=sg)
    src = filled(mem, (256,), "u4", cacheable=False)
    dma.sendchannel.transfer(src, start=mem.size, nbytes=256)   # past the pool
    assert ip.read(MM2S_DMASR) & DMA_DEC_ERR
    with pytest.raises(RuntimeError, match="DMADecErr"):
        dma.sendchannel.wait()


OLD = np.arange(64, dtype="u4")
NEW = OLD * 3 + 1000


@MODES
@pytest.mark.parametrize("flush, expected", [(False, OLD), (True, NEW)],
                         ids=["no flush", "flush"])
def test_mm2s_reads_what_was_flushed(mem, sg, flush, expected):
    ip, dma = make_dma(mem, sg=sg)
    src = allocate(64, "u4", target=mem, cacheable=True)
    dst = allocate(64, "u4", target=mem, cacheable=False)
    src[:] = OLD
    src.flush()                   # the device side holds OLD
    src[:] = NEW                  # the CPU's copy holds NEW
    reported = (contextlib.nullcontext() if flush
                else pytest.warns(CoherenceWarning, match="never flushed"))
    with reported:
        loopback(dma, src, dst, flush=flush)
    assert np.array_equal(dst, expected)


@MODES
@pytest.mark.parametrize("invalidate, expected", [(False, OLD), (True, NEW)],
                         ids=["no invalidate", "invalidate"])
def test_s2mm_data_reaches_the_cpu_through_invalidate(mem, sg, invalidate,
                                                       expected):
    ip, dma = make_dma(mem, sg=sg)
    src = allocate(64, "u4", target=mem, cacheable=False)
    dst = allocate(64, "u4", target=mem, cacheable=True)
    src[:] = NEW
    dst[:] = OLD
    dst.flush()                   # clean in the cache: a write-back would
                                  # undo the DMA's data
    loopback(dma, src, dst, invalidate=invalidate)
    assert np.array_equal(dst, expected)
    assert mem.device_read(dst.device_address, dst.nbytes) == NEW.tobytes()
    # Reading without invalidate is caught when the buffer goes.
    reported = (contextlib.nullcontext() if invalidate
                else pytest.warns(CoherenceWarning, match="never invalidated"))
    with reported:
        dst.freebuffer()


@MODES
def test_uncached_buffers_need_neither(mem, sg):
    ip, dma = make_dma(mem, sg=sg)
    src = allocate(64, "u4", target=mem, cacheable=False)
    dst = allocate(64, "u4", target=mem, cacheable=False)
    src[:] = NEW
    loopback(dma, src, dst, flush=False, invalidate=False)
    assert np.array_equal(dst, NEW)


def test_sg_twice_in_the_same_memory(mem):
    """PYNQ never clears a descriptor's STATUS word: it relies on new memory
    reading as zeros. The second run's rings land where the first run's
    were, whose STATUS words say complete; a fetched descriptor that is
    already complete is an SGIntErr (PG021)."""
    ip, dma = make_dma(mem, sg=True)
    src = allocate(256, "u4", target=mem, cacheable=False)
    dst = allocate(256, "u4", target=mem, cacheable=False)
    rings = []
    for run in (1, 2):
        src[:] = np.arange(256) * run
        dma.sendchannel.transfer(src)
        dma.recvchannel.transfer(dst)
        rings.append({dma.sendchannel.ring.device_address,
                      dma.recvchannel.ring.device_address})
        dma.sendchannel.wait()
        dma.recvchannel.wait()
        assert np.array_equal(dst, np.arange(256) * run)
    assert rings[0] & rings[1], "the second run's rings are in new places"

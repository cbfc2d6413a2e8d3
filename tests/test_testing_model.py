"""pynq_alloc.testing.AxiDma, driven by register reads and writes at
offsets as a driver drives the IP: its register semantics, its error bits
on bad addresses and its refusals, checked against PG021's numbers, which
are spelled out here rather than taken from the model."""
import errno

import numpy as np
import pytest

from fake_devices import make_udmabuf
from helpers import BASE, MiB
from pynq_alloc import allocate, default_memory, open_memory
from pynq_alloc.testing import AxiDma, SimulatedMMIO, UndefinedBehaviour

# PG021 register offsets and bits.
MM2S_DMACR, MM2S_DMASR, MM2S_CURDESC, MM2S_CURDESC_MSB = 0x00, 0x04, 0x08, 0x0C
MM2S_TAILDESC, MM2S_TAILDESC_MSB = 0x10, 0x14
MM2S_SA, MM2S_SA_MSB, MM2S_LENGTH = 0x18, 0x1C, 0x28
S2MM_DMACR, S2MM_DMASR, S2MM_CURDESC, S2MM_TAILDESC = 0x30, 0x34, 0x38, 0x40
S2MM_DA, S2MM_DA_MSB, S2MM_LENGTH = 0x48, 0x4C, 0x58
RS, RESET, CYCLIC = 1 << 0, 1 << 2, 1 << 4
HALTED, IDLE, SG_INCLD = 1 << 0, 1 << 1, 1 << 3
DMA_INT_ERR, DMA_SLV_ERR, DMA_DEC_ERR = 1 << 4, 1 << 5, 1 << 6
SG_INT_ERR, SG_SLV_ERR, SG_DEC_ERR = 1 << 8, 1 << 9, 1 << 10
IOC_IRQ, ERR_IRQ = 1 << 12, 1 << 14
CMPLT, STS_DEC_ERR, STS_SLV_ERR, STS_INT_ERR = 1 << 31, 1 << 30, 1 << 29, 1 << 28
TXSOF, TXEOF = 1 << 27, 1 << 26


def filled(mem, n, cacheable=False):
    buf = allocate(n, "u1", target=mem, cacheable=cacheable)
    buf[:] = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    buf.flush()
    return buf


def simple_receive(dma, dst, nbytes=None):
    dma.write(S2MM_DMACR, RS)
    dma.write(S2MM_DA, dst.device_address & 0xFFFFFFFF)
    dma.write(S2MM_DA_MSB, dst.device_address >> 32)
    dma.write(S2MM_LENGTH, dst.nbytes if nbytes is None else nbytes)


def simple_send(dma, src, nbytes=None, address=None):
    address = src.device_address if address is None else address
    dma.write(MM2S_DMACR, RS)
    dma.write(MM2S_SA, address & 0xFFFFFFFF)
    dma.write(MM2S_SA_MSB, address >> 32)
    dma.write(MM2S_LENGTH, src.nbytes if nbytes is None else nbytes)


def ring(mem, descriptors, *, base=0, addr_width=32):
    """An SG ring built by hand: descriptors are (buffer, length, control
    flags); each points at the next, the last at the first."""
    r = allocate((len(descriptors), 16), "u4", target=mem)
    for i, (buffer, length, flags) in enumerate(descriptors):
        nxt = r.device_address + (i + 1) % len(descriptors) * 0x40
        r[i, 0], r[i, 1] = nxt & 0xFFFFFFFF, nxt >> 32
        r[i, 2], r[i, 3] = buffer & 0xFFFFFFFF, buffer >> 32
        r[i, 6] = length | flags
    return r


def sg_start(dma, base, r, tail_index=-1):
    """CURDESC, RS, TAILDESC, in PG021's order."""
    tail = r.device_address + (len(r) + tail_index if tail_index < 0
                               else tail_index) * 0x40
    dma.write(base + 0x08, r.device_address & 0xFFFFFFFF)
    dma.write(base + 0x0C, r.device_address >> 32)
    dma.write(base, RS)
    dma.write(base + 0x10, tail & 0xFFFFFFFF)
    dma.write(base + 0x14, tail >> 32)


# -- reset state and control -------------------------------------------------

@pytest.mark.parametrize("sg, dmasr", [(False, HALTED), (True, HALTED | SG_INCLD)],
                         ids=["simple", "sg"])
def test_reset_state_is_halted(mem, sg, dmasr):
    dma = AxiDma(mem, sg=sg)
    assert [dma.read(o) for o in (MM2S_DMACR, MM2S_DMASR, S2MM_DMACR, S2MM_DMASR)] \
        == [0, dmasr, 0, dmasr]


def test_run_stop_and_idle_in_simple_mode(mem):
    dma = AxiDma(mem)
    dma.write(MM2S_DMACR, RS)
    assert dma.read(MM2S_DMASR) == 0            # running, not idle before a transfer
    src = filled(mem, 64)
    simple_send(dma, src)
    assert dma.read(MM2S_DMASR) == IDLE | IOC_IRQ
    dma.write(MM2S_DMASR, IOC_IRQ)              # write 1 to clear
    assert dma.read(MM2S_DMASR) == IDLE
    dma.write(MM2S_DMACR, 0)
    assert dma.read(MM2S_DMASR) == HALTED       # PG021: Idle reads 0 when halted
    assert dma.read(S2MM_DMASR) == HALTED       # the other channel untouched


def test_a_halted_channel_ignores_length(mem):
    dma = AxiDma(mem)
    src = filled(mem, 64)
    dma.write(MM2S_SA, src.device_address)
    dma.write(MM2S_LENGTH, 64)                  # PG021: no effect while halted
    assert dma.read(MM2S_DMASR) == HALTED
    assert dma.read(MM2S_LENGTH) == 64


def test_length_keeps_length_width_bits(mem):
    dma = AxiDma(mem, length_width=10)
    dma.write(S2MM_LENGTH, 0x12345)
    assert dma.read(S2MM_LENGTH) == 0x345


def test_soft_reset_resets_both_channels_and_clears_errors(mem):
    dma = AxiDma(mem)
    simple_send(dma, filled(mem, 64), address=BASE + 8 * MiB)   # no buffer there
    assert dma.read(MM2S_DMASR) & DMA_SLV_ERR
    dma.write(S2MM_DMACR, RS)
    dma.write(S2MM_DMACR, RESET)                # either channel's Reset: the whole DMA
    assert [dma.read(o) for o in (MM2S_DMACR, MM2S_DMASR, S2MM_DMACR, S2MM_DMASR)] \
        == [0, HALTED, 0, HALTED]
    assert dma.errors() == {"mm2s": [], "s2mm": []}


# -- data movement -----------------------------------------------------------

def test_simple_loopback_through_registers(mem):
    dma = AxiDma(mem)
    src, dst = filled(mem, 1000), allocate(1000, "u1", target=mem)
    simple_receive(dma, dst)
    assert dma.read(S2MM_DMASR) == 0            # busy, waiting for the stream
    simple_send(dma, src)
    assert dma.read(S2MM_DMASR) == IDLE | IOC_IRQ
    assert dma.read(S2MM_LENGTH) == 1000
    assert dst.tobytes() == src.tobytes()


def test_sent_before_received_waits_in_the_stream(mem):
    dma = AxiDma(mem)
    src, dst = filled(mem, 256), allocate(256, "u1", target=mem)
    simple_send(dma, src)
    assert dma.read(MM2S_DMASR) & IDLE
    simple_receive(dma, dst)
    assert dst.tobytes() == src.tobytes()


def test_s2mm_length_says_how_many_bytes_a_short_packet_had(mem):
    dma = AxiDma(mem)
    src, dst = filled(mem, 100), allocate(256, "u1", target=mem)
    simple_receive(dma, dst)
    simple_send(dma, src)
    assert dma.read(S2MM_LENGTH) == 100
    assert dst[:100].tobytes() == src.tobytes() and not dst[100:].any()


def test_a_packet_longer_than_the_s2mm_buffer_is_an_internal_error(mem):
    dma = AxiDma(mem)
    src, dst = filled(mem, 256), allocate(128, "u1", target=mem)
    simple_receive(dma, dst)
    simple_send(dma, src)
    assert dma.read(S2MM_DMASR) == HALTED | DMA_INT_ERR | ERR_IRQ
    assert dma.read(S2MM_DMACR) & RS == 0
    assert dma.errors() == {"mm2s": [], "s2mm": ["DMAIntErr"]}


def test_process_stands_for_the_logic_between_the_channels(mem):
    seen = []

    def double(packet):
        seen.append(len(packet))
        return (np.frombuffer(packet, "<u4") * 2).tobytes()

    dma = AxiDma(mem, sg=True, process=double)
    src = allocate(256, "u4", target=mem)
    src[:] = np.arange(256)
    dst = allocate(256, "u4", target=mem)
    # Three descriptors for one packet: process sees it whole, once.
    sends = ring(mem, [(src.device_address, 400, TXSOF),
                       (src.device_address + 400, 400, 0),
                       (src.device_address + 800, 224, TXEOF)])
    receives = ring(mem, [(dst.device_address, 1024, 0)])
    sg_start(dma, 0x30, receives)
    sg_start(dma, 0x00, sends)
    assert seen == [1024]
    assert np.array_equal(dst, np.arange(256) * 2)


@pytest.mark.parametrize("cacheable", [False, True], ids=["uncached", "cacheable"])
def test_data_moves_on_the_device_side_of_memory(mem, cacheable):
    """The DMA reads what the device sees: an unflushed CPU write of a
    cacheable buffer stays behind (and the memory reports it)."""
    dma = AxiDma(mem)
    src = allocate(64, "u1", target=mem, cacheable=cacheable)
    dst = allocate(64, "u1", target=mem)
    src[:] = 7                                  # no flush()
    simple_receive(dma, dst)
    if cacheable:
        with pytest.warns(UserWarning, match="never flushed"):
            simple_send(dma, src)
        assert not dst.any()
    else:
        simple_send(dma, src)
        assert (dst == 7).all()


@pytest.mark.parametrize("addr_width, reached", [(32, False), (64, True)])
def test_a_32_bit_dma_cannot_reach_memory_above_4_gib(addr_width, reached):
    mem = open_memory("sim", size=MiB, base_address=0x1_0000_0000)
    dma = AxiDma(mem, addr_width=addr_width)
    src, dst = filled(mem, 64), allocate(64, "u1", target=mem)
    simple_receive(dma, dst)
    simple_send(dma, src)
    if reached:
        assert dst.tobytes() == src.tobytes()
    else:       # the MSB registers are reserved: it reads at 0x0
        assert dma.errors()["mm2s"] == ["DMADecErr"]
        assert dma.read(MM2S_SA_MSB) == 0


def test_64_bit_sg_starts_at_the_tail_msb(mem):
    dma = AxiDma(mem, sg=True, addr_width=64)
    src = filled(mem, 128)
    r = ring(mem, [(src.device_address, 128, TXSOF | TXEOF)])
    dma.write(MM2S_CURDESC, r.device_address)
    dma.write(MM2S_DMACR, RS)
    dma.write(MM2S_TAILDESC, r.device_address)
    assert r[0, 7] == 0                         # not yet
    dma.write(MM2S_TAILDESC_MSB, 0)
    assert r[0, 7] == CMPLT | 128
    assert dma.read(MM2S_DMASR) == IDLE | IOC_IRQ | SG_INCLD


def test_sg_receive_spans_descriptors_and_marks_packet_ends(mem):
    dma = AxiDma(mem, sg=True)
    src, dst = filled(mem, 300), allocate(512, "u1", target=mem)
    sends = ring(mem, [(src.device_address, 300, TXSOF | TXEOF)])
    receives = ring(mem, [(dst.device_address, 128, 0),
                          (dst.device_address + 128, 128, 0),
                          (dst.device_address + 256, 256, 0)])
    sg_start(dma, 0x30, receives)
    sg_start(dma, 0x00, sends)
    assert list(receives[:, 7]) == [CMPLT | TXSOF | 128, CMPLT | 128,
                                    CMPLT | TXEOF | 44]
    assert dst[:300].tobytes() == src.tobytes()
    assert dma.read(S2MM_DMASR) == IDLE | IOC_IRQ | SG_INCLD


# -- error bits on bad addresses ---------------------------------------------

def test_mm2s_outside_the_memory_is_a_decode_error(mem):
    dma = AxiDma(mem)
    simple_send(dma, filled(mem, 64), address=BASE + 16 * MiB)   # past the pool
    assert dma.read(MM2S_DMASR) == HALTED | DMA_DEC_ERR | ERR_IRQ
    assert dma.read(MM2S_DMACR) & RS == 0


def test_s2mm_into_memory_without_a_buffer_is_a_slave_error(mem):
    dma = AxiDma(mem)
    src, dst = filled(mem, 64), allocate(64, "u1", target=mem)
    simple_receive(dma, dst)
    dst.freebuffer()                # the DMA still holds its address
    simple_send(dma, src)
    assert dma.read(S2MM_DMASR) == HALTED | DMA_SLV_ERR | ERR_IRQ
    assert dma.errors() == {"mm2s": [], "s2mm": ["DMASlvErr"]}


def test_an_error_halts_until_a_reset(mem):
    dma = AxiDma(mem)
    simple_send(dma, filled(mem, 64), address=BASE + 16 * MiB)
    dma.write(MM2S_DMACR, RS)                   # RS cannot restart it
    assert dma.read(MM2S_DMASR) & HALTED and dma.read(MM2S_DMACR) == 0
    dma.write(MM2S_DMACR, RESET)
    simple_send(dma, filled(mem, 64))
    assert dma.read(MM2S_DMASR) == IDLE | IOC_IRQ


@pytest.mark.parametrize("where, error", [("outside", SG_DEC_ERR), ("freed", SG_SLV_ERR)])
def test_a_descriptor_at_a_bad_address_is_an_sg_error(mem, where, error):
    dma = AxiDma(mem, sg=True)
    if where == "outside":
        address = BASE + 32 * MiB
    else:
        r = ring(mem, [(BASE, 64, TXSOF | TXEOF)])
        address = r.device_address
        r.freebuffer()
    dma.write(MM2S_CURDESC, address)
    dma.write(MM2S_DMACR, RS)
    dma.write(MM2S_TAILDESC, address)
    assert dma.read(MM2S_DMASR) == HALTED | SG_INCLD | error | ERR_IRQ
    assert dma.read(MM2S_CURDESC) == address


def test_a_bad_buffer_in_a_descriptor_sets_its_status(mem):
    dma = AxiDma(mem, sg=True)
    src = filled(mem, 64)
    r = ring(mem, [(src.device_address, 64, TXSOF),
                   (BASE + 32 * MiB, 64, TXEOF)])
    sg_start(dma, 0x00, r)
    assert list(r[:, 7]) == [CMPLT | 64, STS_DEC_ERR]
    assert dma.read(MM2S_DMASR) == HALTED | SG_INCLD | DMA_DEC_ERR | ERR_IRQ
    assert dma.read(MM2S_CURDESC) == r.device_address + 0x40


def test_a_zero_length_descriptor_is_an_internal_error(mem):
    dma = AxiDma(mem, sg=True)
    r = ring(mem, [(BASE, 0, TXSOF | TXEOF)])
    sg_start(dma, 0x00, r)
    assert r[0, 7] == STS_INT_ERR
    assert dma.errors() == {"mm2s": ["DMAIntErr"], "s2mm": []}


def test_a_completed_descriptor_fetched_again_is_an_sg_internal_error(mem):
    dma = AxiDma(mem, sg=True)
    src = filled(mem, 64)
    r = ring(mem, [(src.device_address, 32, TXSOF), (src.device_address + 32, 32, TXEOF)])
    # The tail is not in the ring: the second lap fetches a complete one.
    dma.write(MM2S_CURDESC, r.device_address)
    dma.write(MM2S_DMACR, RS)
    dma.write(MM2S_TAILDESC, BASE + 8 * MiB)
    assert list(r[:, 7]) == [CMPLT | 32, CMPLT | 32]
    assert dma.errors()["mm2s"] == ["SGIntErr"]


# -- what PG021 leaves undefined, refused ------------------------------------

@pytest.mark.parametrize("sg, offset, message", [
    (False, MM2S_CURDESC, "MM2S_CURDESC is reserved in direct register"),
    (False, S2MM_TAILDESC, "S2MM_TAILDESC is reserved in direct register"),
    (True, MM2S_SA, "MM2S_SA is reserved in scatter-gather"),
    (True, S2MM_LENGTH, "S2MM_LENGTH is reserved in scatter-gather"),
    (False, 0x20, "offset 0x20 is reserved"),
    (False, 0x54, "offset 0x54 is reserved"),
    (False, 0x100, "offset 0x100 is reserved"),
])
def test_reserved_registers_refuse_writes(mem, sg, offset, message):
    dma = AxiDma(mem, sg=sg)
    with pytest.raises(UndefinedBehaviour, match=message):
        dma.write(offset, 1)
    assert dma.read(offset) == 0


def test_curdesc_written_while_running_is_refused(mem):
    dma = AxiDma(mem, sg=True)
    dma.write(S2MM_DMACR, RS)
    with pytest.raises(UndefinedBehaviour, match="S2MM_CURDESC written while"):
        dma.write(S2MM_CURDESC, BASE)


def test_s2mm_length_written_during_a_transfer_is_refused(mem):
    dma = AxiDma(mem)
    simple_receive(dma, allocate(64, "u1", target=mem))
    with pytest.raises(UndefinedBehaviour, match="S2MM_LENGTH written during"):
        dma.write(S2MM_LENGTH, 64)


@pytest.mark.parametrize("dre", [False, True])
def test_unaligned_addresses_need_a_dre(mem, dre):
    dma = AxiDma(mem, data_width=64, dre=dre)
    src, dst = filled(mem, 64), allocate(64, "u1", target=mem)
    simple_receive(dma, dst)
    if not dre:
        with pytest.raises(UndefinedBehaviour, match=r"MM2S_SA 0x10000004 is not "
                           r"aligned to the memory-map data width \(8 bytes\)"):
            simple_send(dma, src, 60, src.device_address + 4)
    else:
        simple_send(dma, src, 60, src.device_address + 4)
        assert dst[:60].tobytes() == src[4:].tobytes()


def test_cyclic_mode_is_not_modelled(mem):
    dma = AxiDma(mem, sg=True)
    with pytest.raises(NotImplementedError, match="cyclic BD"):
        dma.write(MM2S_DMACR, RS | CYCLIC)


# -- a poll that could never end ---------------------------------------------

def test_polling_a_channel_that_waits_for_nothing_that_can_come_raises(mem):
    dma = AxiDma(mem, poll_timeout=0)
    simple_receive(dma, allocate(64, "u1", target=mem))
    with pytest.raises(TimeoutError, match=r"S2MM_DMASR polled for \d+\.\d s with "
                       "no register write, while the channel is busy waiting "
                       "for stream data: MM2S has not sent the rest of the "
                       "packet this transfer receives"):
        dma.read(S2MM_DMASR)
    assert dma.read(S2MM_LENGTH) == 64          # only DMASR polls


def test_a_running_channel_never_given_a_transfer_says_so(mem):
    dma = AxiDma(mem, sg=True, poll_timeout=0)
    dma.write(MM2S_DMACR, RS)
    with pytest.raises(TimeoutError, match="MM2S_TAILDESC was not written since it started"):
        dma.read(MM2S_DMASR)


@pytest.fixture
def clock(monkeypatch):
    """The DMA's clock, moved by hand: [seconds]."""
    import types
    from pynq_alloc import _axi_dma
    now = [1000.0]
    monkeypatch.setattr(_axi_dma, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_the_timeout_counts_from_the_last_register_write(mem, clock):
    dma = AxiDma(mem, poll_timeout=2)
    dma.write(MM2S_DMACR, RS)
    clock[0] += 1.5
    dma.write(S2MM_DMACR, RS)                   # any register write
    clock[0] += 1.5
    assert dma.read(MM2S_DMASR) == 0            # 1.5 s since the last write
    clock[0] += 0.5
    with pytest.raises(TimeoutError, match="MM2S_DMASR polled for 2.0 s with no "
                       "register write, while the channel is busy waiting for "
                       "a transfer: MM2S_LENGTH was not written since it started"):
        dma.read(MM2S_DMASR)


def test_another_thread_may_end_the_wait(mem):
    """A driver waiting in one thread while another starts MM2S."""
    import threading
    dma = AxiDma(mem)
    src, dst = filled(mem, 64), allocate(64, "u1", target=mem)
    simple_receive(dma, dst)
    sender = threading.Timer(0.05, simple_send, (dma, src))
    sender.start()
    while not dma.read(S2MM_DMASR) & IDLE:
        pass
    sender.join()
    assert dst.tobytes() == src.tobytes()


def test_polling_an_idle_or_halted_channel_never_raises(mem):
    dma = AxiDma(mem, poll_timeout=0)
    simple_send(dma, filled(mem, 64))
    for _ in range(100):
        assert dma.read(MM2S_DMASR) & IDLE and dma.read(S2MM_DMASR) & HALTED


def test_poll_timeout_none_polls_for_ever(mem, clock):
    dma = AxiDma(mem, poll_timeout=None)
    dma.write(MM2S_DMACR, RS)
    clock[0] += 3600
    assert dma.read(MM2S_DMASR) == 0


# -- the MMIO face, with PYNQ's rules ----------------------------------------

def test_mmio_reads_and_writes_as_pynqs(mem):
    dma = AxiDma(mem, addr_width=64, phys_addr=0x4100_0000, addr_range=0x1000)
    mmio = dma.mmio
    assert isinstance(mmio, SimulatedMMIO)
    assert (mmio.base_addr, mmio.length) == (0x4100_0000, 0x1000)
    mmio.write(MM2S_LENGTH, 0x0102_0304)
    assert mmio.read(MM2S_LENGTH, 1) == 0x04 and mmio.read(MM2S_LENGTH, 2) == 0x0304
    mmio.write(S2MM_DA, (0x1122_3344).to_bytes(4, "little")
               + (0x5566_7788).to_bytes(4, "little"))     # two registers
    assert mmio.read(S2MM_DA, 8) == 0x5566_7788_1122_3344
    assert mmio.read(S2MM_DA, 8, "big") == 0x1122_3344_5566_7788
    assert dma.read(S2MM_DA) == 0x1122_3344
    assert dma.read(0xFFC) == 0                 # reserved, in range
    assert dma.writes == [(MM2S_LENGTH, 0x0102_0304), (S2MM_DA, 0x1122_3344),
                          (S2MM_DA_MSB, 0x5566_7788)]


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.read(0x06), MemoryError, "unaligned read at offset 0x6"),
    (lambda m: m.write(0x02, 1), MemoryError, "unaligned write at offset 0x2"),
    (lambda m: m.write(0x00, b"\x01\x00"), MemoryError, "2 bytes is not a multiple of 4"),
    (lambda m: m.read(-4), ValueError, "offset -4 is negative"),
    (lambda m: m.read(0, 3), ValueError, "length 3"),
    (lambda m: m.read(0, 8, "middle"), ValueError, "word_order 'middle'"),
    (lambda m: m.read(0x10000), IndexError, "read of 4 bytes at offset 0x10000 is "
     "past the end of the IP's 0x10000 bytes of registers at 0x40400000"),
    (lambda m: m.write(0xFFFC, bytes(8)), IndexError, "write of 8 bytes"),
    (lambda m: m.write(0x00, np.uint32(1)), ValueError,
     r"not numpy.uint32 \(pass int\(value\)\)"),
    (lambda m: m.write(0x00, True), ValueError, "not builtins.bool"),
    (lambda m: m.write(0x00, 1 << 32), ValueError, "0x100000000 does not fit a 32-bit"),
    (lambda m: m.write(0x00, -1), ValueError, "does not fit a 32-bit"),
    (lambda m: m.read(0.0), TypeError, "offset must be an int, not float"),
])
def test_mmio_refuses_what_pynqs_refuses(mem, call, error, message):
    dma = AxiDma(mem)
    with pytest.raises(error, match=message):
        call(dma.mmio)
    assert dma.read(MM2S_DMACR) == 0


# -- construction and description --------------------------------------------

def test_the_default_memory_is_allocates_default():
    dma = AxiDma()
    assert dma.memory is default_memory()


def test_options_are_checked(mem):
    with pytest.raises(TypeError, match="memory must be a pynq_alloc.Memory"):
        AxiDma("sim")
    with pytest.raises(TypeError, match="sg must be True or False, not 1"):
        AxiDma(mem, sg=1)
    with pytest.raises(TypeError, match="length_width must be an int, not '14'"):
        AxiDma(mem, length_width="14")      # as the description spells it
    for options, message in [({"length_width": 27}, "c_sg_length_width is 8 to 26"),
                             ({"addr_width": 16}, "c_addr_width is 32 to 64"),
                             ({"data_width": 48}, "one of .32, 64"),
                             ({"addr_range": 0x40}, "the registers need 0x60 bytes"),
                             ({"poll_timeout": -1}, "poll_timeout -1: seconds")]:
        with pytest.raises(ValueError, match=message):
            AxiDma(mem, **options)


def test_a_memory_without_device_side_access_is_refused(tmp_path):
    device, sysfs = make_udmabuf(str(tmp_path))
    memory = open_memory("udmabuf", device=device, sysfs=sysfs)
    with pytest.raises(ValueError, match="this udmabuf memory does not offer: "
                       r"give it a simulated memory \(open_memory\('sim'\)\)"):
        AxiDma(memory)
    with pytest.raises(OSError) as info:        # what the check relies on
        memory.device_read(memory.base_address, 0)
    assert info.value.errno == errno.ENOTSUP


@pytest.mark.parametrize("sg", [False, True])
def test_the_description_is_pynqs_ip_dict_entry(mem, sg):
    dma = AxiDma(mem, sg=sg, length_width=14, addr_width=64, data_width=64,
                 dre=True, phys_addr=0x4040_0000, addr_range=0x1_0000)
    d = dma.description
    assert type(d) is dict              # PYNQ's DMA refuses other mappings
    assert (d["type"], d["phys_addr"], d["addr_range"], d["fullpath"]) == (
        "xilinx.com:ip:axi_dma:7.1", 0x4040_0000, 0x1_0000, "axi_dma_0")
    assert d["interrupts"] == {} and d["gpio"] == {}
    p = d["parameters"]
    assert {k: p[k] for k in ("c_include_sg", "c_sg_length_width", "c_addr_width",
                              "c_micro_dma", "c_include_mm2s", "c_include_s2mm",
                              "c_include_mm2s_dre", "c_include_s2mm_dre",
                              "c_m_axi_mm2s_data_width", "c_m_axi_s2mm_data_width")} \
        == {"c_include_sg": str(int(sg)), "c_sg_length_width": "14",
            "c_addr_width": "64", "c_micro_dma": "0", "c_include_mm2s": "1",
            "c_include_s2mm": "1", "c_include_mm2s_dre": "1",
            "c_include_s2mm_dre": "1", "c_m_axi_mm2s_data_width": "64",
            "c_m_axi_s2mm_data_width": "64"}
    assert p["C_INCLUDE_SG"] == p["c_include_sg"]
    assert (p["C_BASEADDR"], p["C_HIGHADDR"]) == ("0x40400000", "0x4040FFFF")


def test_the_description_device_reaches_registers_and_memory(mem):
    """What PYNQ's MMIO (REGISTER_RW) and allocate(target=device) use."""
    dma = AxiDma(mem)
    device = dma.description["device"]
    assert device.has_capability("REGISTER_RW")
    assert not device.has_capability("MEMORY_MAPPED")
    assert not device.has_capability("REMOTE")
    device.write_registers(0x4040_0000 + MM2S_DMACR, (1).to_bytes(4, "little"))
    assert device.read_registers(0x4040_0000 + MM2S_DMACR, 8) == \
        (1).to_bytes(4, "little") + (0).to_bytes(4, "little")    # DMACR, DMASR
    buf = device.allocate((2, 16), np.uint32)
    assert buf.memory is mem and buf.shape == (2, 16) and not buf.cacheable


def test_pynq_driver_builds_the_driver_it_is_given(mem):
    dma = AxiDma(mem)
    assert dma.pynq_driver(lambda d: d) is dma.description


def test_repr_says_what_it_is(mem):
    assert repr(AxiDma(mem, sg=True)) == (
        "<AxiDma axi_dma_0 at 0x40400000, scatter-gather mode, on the sim "
        "memory at 0x10000000>")

"""A driver for Xilinx's AXI DMA written as PYNQ's pynq/lib/dma.py (v3.1)
is, without importing pynq: PYNQ's register writes in PYNQ's order, PYNQ's
flush()/invalidate() calls, polls that end only when the DMA says so.

It takes what a PYNQ IP offers, `ol.axi_dma_0` on a board or
pynq_alloc.testing.AxiDma in a test: `ip.mmio` for the registers and
`ip.description['parameters']` for how the IP was built.  The tests of
test_pynq_dma.py drive it, and test_testing_user_project.py copies it into
a user's project of its own.  flush=False (transfer) and invalidate=False
(wait) leave out the cache maintenance that PYNQ does: a driver with that
bug, for the tests.
"""
from pynq_alloc import allocate

MM2S, S2MM = 0x00, 0x30             # each channel's block of registers
DMACR, DMASR = 0x00, 0x04
CURDESC, CURDESC_MSB, TAILDESC, TAILDESC_MSB = 0x08, 0x0C, 0x10, 0x14
ADDRESS, ADDRESS_MSB, LENGTH = 0x18, 0x1C, 0x28
RUN = 1 << 0                                        # DMACR
HALTED, IDLE, ERRORS = 1 << 0, 1 << 1, 0x770        # DMASR
ERROR_NAMES = {1 << 4: "DMAIntErr", 1 << 5: "DMASlvErr", 1 << 6: "DMADecErr",
               1 << 8: "SGIntErr", 1 << 9: "SGSlvErr", 1 << 10: "SGDecErr"}
DESCRIPTOR_WORDS = 16                   # 0x40 bytes, their alignment
SOF, EOF = 1 << 27, 1 << 26             # CONTROL
STATUS_ERRORS, TRANSFERRED = 0x70000000, (1 << 26) - 1      # STATUS


def _low(address):
    return address & 0xFFFFFFFF


def _high(address):
    return (address >> 32) & 0xFFFFFFFF


class _Channel:
    """What PYNQ's _SDMAChannel and _SGDMAChannel share: one channel's
    registers, and polling them."""

    def __init__(self, mmio, base, max_size, width, dre, target):
        self._mmio, self._base = mmio, base
        self._to_device = base == MM2S      # MM2S: PYNQ flushes before
        self._max_size, self._align, self._dre = max_size, width, dre
        self._target = target
        self._active = None
        self.transferred = 0

    def _read(self, reg):
        return self._mmio.read(self._base + reg)

    def _write(self, reg, value):
        self._mmio.write(self._base + reg, value)

    @property
    def running(self):
        return not self._read(DMASR) & HALTED

    @property
    def halted(self):
        return bool(self._read(DMASR) & HALTED)

    @property
    def idle(self):
        return bool(self._read(DMASR) & IDLE)

    def _wait_until_done(self):
        """Poll DMASR until the channel is idle or halted, as PYNQ does;
        error bits raise RuntimeError, naming them."""
        while True:
            status = self._read(DMASR)
            if status & ERRORS:
                names = [n for bit, n in ERROR_NAMES.items() if status & bit]
                raise RuntimeError(f"DMA error: {', '.join(names)} "
                                   f"(DMASR={status:#010x})")
            if status & (IDLE | HALTED):
                return status

    def _start_address(self, array, start):
        address = array.device_address + start
        if not self._dre and address % self._align:
            raise RuntimeError(f"DMA without DRE needs {self._align}-byte "
                               f"aligned addresses, not {address:#x}")
        return address


class SimpleChannel(_Channel):
    """A channel in direct register mode, as PYNQ's _SDMAChannel."""

    def __init__(self, *args):
        super().__init__(*args)
        self.start()

    def start(self):
        self._write(DMACR, RUN)
        while not self.running:
            pass
        self._first_transfer = True      # Idle is 0 until a transfer ends

    def stop(self):
        self._write(DMACR, 0)
        while self.running:
            pass

    def transfer(self, array, start=0, nbytes=0, *, flush=True):
        if not self.running:
            raise RuntimeError("DMA channel not started")
        if not self.idle and not self._first_transfer:
            raise RuntimeError("DMA channel not idle")
        nbytes = nbytes or array.nbytes - start
        if nbytes > self._max_size:
            raise ValueError(f"{nbytes} bytes is more than the DMA's "
                             f"{self._max_size} per transfer")
        address = self._start_address(array, start)
        if self._to_device and flush:
            array.flush()
        self.transferred = 0
        self._write(ADDRESS, _low(address))
        self._write(ADDRESS_MSB, _high(address))
        self._write(LENGTH, nbytes)                     # starts the transfer
        self._active = array
        self._first_transfer = False

    def wait(self, *, invalidate=True):
        # PYNQ checks "running" first, which an error has cleared; looking
        # at the error bits first names the error.
        if self._wait_until_done() & HALTED:
            raise RuntimeError("DMA channel not started")
        if not self._to_device and invalidate:
            self._active.invalidate()
        self.transferred = self._read(LENGTH)
        self._active = None


class SGChannel(_Channel):
    """A channel in scatter-gather mode, as PYNQ's _SGDMAChannel: a new
    descriptor ring per transfer, released by wait().

    ring is the descriptor ring of the transfer in flight (else None).
    """

    def __init__(self, *args):
        super().__init__(*args)
        self.ring = None
        self._started = False
        self.stop()

    def start(self):
        self._write(DMACR, RUN)
        while not self.running:
            pass
        self._started = True

    def stop(self):
        self._write(DMACR, 0)
        while self.running:
            pass
        self._started = False

    def transfer(self, array, start=0, nbytes=0, *, flush=True):
        if not self.halted:
            raise RuntimeError("DMA channel not halted")
        nbytes = nbytes or array.nbytes - start
        address = self._start_address(array, start)
        # The largest aligned block; PYNQ always uses at least two.
        block = self._max_size - self._max_size % self._align
        if block > nbytes:
            block = nbytes // 2 - nbytes // 2 % self._align
        if block == 0:                  # PYNQ divides by zero here
            raise ValueError(f"{nbytes} bytes is too short for two descriptors")
        count = -(-nbytes // block)
        # As PYNQ: allocate() with its default, uncached, and no clearing:
        # every word PYNQ does not write (STATUS above all) must read as 0.
        ring = allocate((count, DESCRIPTOR_WORDS), "u4", target=self._target)
        self.stop()
        first = ring.device_address
        for i in range(count):
            nxt = first + (i + 1) % count * DESCRIPTOR_WORDS * 4
            buffer = address + i * block
            length = min(block, nbytes - i * block)
            ring[i, 0], ring[i, 1] = _low(nxt), _high(nxt)
            ring[i, 2], ring[i, 3] = _low(buffer), _high(buffer)
            ring[i, 6] = (length | (SOF if i == 0 else 0)
                          | (EOF if i == count - 1 else 0))
        if self._to_device and flush:
            array.flush()
        ring.flush()
        self._write(CURDESC, _low(first))
        self._write(CURDESC_MSB, _high(first))
        self.ring, self._active = ring, array
        self.transferred = 0
        self.start()
        tail = first + (count - 1) * DESCRIPTOR_WORDS * 4
        self._write(TAILDESC, _low(tail))                # the tail starts it
        self._write(TAILDESC_MSB, _high(tail))

    def wait(self, *, invalidate=True):
        if not self._started:
            raise RuntimeError("DMA transfer not started")
        self._wait_until_done()
        if not self._to_device and invalidate:
            self._active.invalidate()
        # PYNQ flushes the ring here, not invalidates: the status words it
        # then reads are right only because the ring is uncached.
        self.ring.flush()
        status = self.ring[:, 7]
        if (status & STATUS_ERRORS).any():
            raise RuntimeError("DMA error in a descriptor")
        self.transferred = int((status & TRANSFERRED).sum())
        self.stop()
        # PYNQ calls close() (a no-op since PYNQ 3.0) and drops its last
        # reference, which frees the ring; freebuffer() does it plainly.
        self.ring.freebuffer()
        self.ring, self._active = None, None


class Dma:
    """The driver, as PYNQ's DMA: sendchannel (MM2S) and recvchannel
    (S2MM), simple or SG as the IP's parameters say.

    ip: ol.axi_dma_0, or pynq_alloc.testing.AxiDma.  target: where the SG
    descriptor rings go (PYNQ's driver allocates them on the description's
    device); None: allocate()'s default memory.
    """

    def __init__(self, ip, target=None):
        parameters = ip.description["parameters"]
        sg = bool(int(parameters.get("c_include_sg", "0")))
        max_size = (1 << int(parameters.get("c_sg_length_width", "26"))) - 1
        channel = SGChannel if sg else SimpleChannel
        for name, base, direction in (("sendchannel", MM2S, "mm2s"),
                                      ("recvchannel", S2MM, "s2mm")):
            width = int(parameters[f"c_m_axi_{direction}_data_width"]) // 8
            dre = bool(int(parameters.get(f"c_include_{direction}_dre", "0")))
            setattr(self, name, channel(ip.mmio, base, max_size, width, dre,
                                        target))

"""A register model of Xilinx's AXI DMA (PG021) on a simulated Memory, and
a driver for it that does what PYNQ's pynq/lib/dma.py (v3.1) does.

The model is the IP: an MM2S and an S2MM channel in loopback through a
stream FIFO, in direct register ("simple") or scatter-gather (SG) mode. It
reaches memory only through Memory.device_read/device_write, as a bus master
does, so it sees the device side of the simulated memory and never the
CPU's cache. A transfer runs synchronously on the register write that
starts it: LENGTH (simple) or TAILDESC (SG).

The driver is our own code. It makes PYNQ's register writes in PYNQ's order
and PYNQ's flush()/invalidate() calls, so tests that use it show what a PYNQ
user gets from pynq_alloc's buffers.
"""
import collections

from pynq_alloc import allocate

# Register offsets within a channel (PG021 register address maps). The
# S2MM block starts at 0x30: S2MM_DMACR is 0x30, S2MM_DA 0x48, and so on.
MM2S, S2MM = 0x00, 0x30
DMACR, DMASR = 0x00, 0x04
CURDESC, CURDESC_MSB, TAILDESC, TAILDESC_MSB = 0x08, 0x0C, 0x10, 0x14  # SG
ADDR, ADDR_MSB, LENGTH = 0x18, 0x1C, 0x28       # simple: MM2S_SA / S2MM_DA
SG_REGISTERS = (CURDESC, CURDESC_MSB, TAILDESC, TAILDESC_MSB)
SIMPLE_REGISTERS = (ADDR, ADDR_MSB, LENGTH)

# DMACR bits
RS, RESET, KEYHOLE, CYCLIC = 1 << 0, 1 << 2, 1 << 3, 1 << 4

# DMASR bits
HALTED, IDLE, SG_INCLD = 1 << 0, 1 << 1, 1 << 3
DMA_INT_ERR, DMA_SLV_ERR, DMA_DEC_ERR = 1 << 4, 1 << 5, 1 << 6
SG_INT_ERR, SG_SLV_ERR, SG_DEC_ERR = 1 << 8, 1 << 9, 1 << 10
IOC_IRQ, DLY_IRQ, ERR_IRQ = 1 << 12, 1 << 13, 1 << 14
ERRORS = 0x770
ERROR_NAMES = {DMA_INT_ERR: "DMAIntErr", DMA_SLV_ERR: "DMASlvErr",
               DMA_DEC_ERR: "DMADecErr", SG_INT_ERR: "SGIntErr",
               SG_SLV_ERR: "SGSlvErr", SG_DEC_ERR: "SGDecErr"}

# SG descriptor (PG021 "Scatter Gather Descriptor"): byte offsets of its
# words; each descriptor is 16-word (0x40) aligned.
NXTDESC, NXTDESC_MSB, BUFFER_ADDRESS, BUFFER_ADDRESS_MSB = 0x00, 0x04, 0x08, 0x0C
CONTROL, STATUS = 0x18, 0x1C
DESCRIPTOR_SIZE = 0x40
FETCHED = 0x20           # the eight base words; APP0-4 only with a control stream
SOF, EOF = 1 << 27, 1 << 26                  # CONTROL TXSOF/TXEOF, STATUS RXSOF/RXEOF
CMPLT = 1 << 31                              # STATUS
STS_DEC_ERR, STS_SLV_ERR, STS_INT_ERR = 1 << 30, 1 << 29, 1 << 28
STS_ERRORS = STS_DEC_ERR | STS_SLV_ERR | STS_INT_ERR
STS_TRANSFERRED = (1 << 26) - 1              # bits 25:0


class UndefinedBehaviour(Exception):
    """The driver did something whose result PG021 leaves undefined."""


class _Fault(Exception):
    """Ends a channel's work: the DMASR error bits, and the STATUS error bit
    for the descriptor being worked on (0 when the fault is not in one)."""

    def __init__(self, error, status_error=0):
        super().__init__(ERROR_NAMES[error])
        self.error, self.status_error = error, status_error


def _lo(address):
    return address & 0xFFFFFFFF


def _hi(address):
    return address >> 32


class _Stream:
    """The AXI4-Stream loopback, a FIFO of bytes that keeps the packet ends
    (TLAST) that MM2S marked. Deeper than any test needs, so MM2S never waits
    for S2MM."""

    def __init__(self):
        self._chunks = collections.deque()      # [bytes, last]

    def __bool__(self):
        return bool(self._chunks)

    def push(self, data, last):
        self._chunks.append([bytes(data), last])

    def pull(self, limit):
        """Up to limit bytes, never across a packet end; and whether they
        end a packet."""
        chunk = self._chunks[0]
        data, chunk[0] = chunk[0][:limit], chunk[0][limit:]
        if chunk[0]:
            return data, False
        self._chunks.popleft()
        return data, chunk[1]


class _Channel:
    """One direction of the DMA: its registers and the work in flight."""

    def __init__(self, dma, to_stream):
        self.dma, self.to_stream = dma, to_stream
        self.reset()

    def reset(self):
        self.regs = collections.defaultdict(int)
        self.regs[DMASR] = HALTED | (SG_INCLD if self.dma.sg else 0)
        self._receive = None    # S2MM: where stream data goes next
        self._next = None       # SG: the descriptor to fetch next
        self._packet_start = True   # S2MM: the next byte starts a packet

    # -- registers --------------------------------------------------------

    def read(self, reg):
        return self.regs[reg]

    def write(self, reg, value):
        if reg == DMACR:
            return self._write_control(value)
        if reg == DMASR:
            self.regs[DMASR] &= ~(value & (IOC_IRQ | DLY_IRQ | ERR_IRQ))
            return
        sg = self.dma.sg
        if (reg in SG_REGISTERS and not sg) or (reg in SIMPLE_REGISTERS and sg):
            raise UndefinedBehaviour(f"register {reg:#x} is not in this mode")
        if reg in (ADDR_MSB, CURDESC_MSB, TAILDESC_MSB) and self.dma.addr_width == 32:
            return                                      # reserved: ignored
        if reg in (CURDESC, CURDESC_MSB) and not self.halted:
            raise UndefinedBehaviour("CURDESC written while the channel runs")
        if reg == LENGTH:
            value &= self.dma.max_length
            if self._receive is not None:
                raise UndefinedBehaviour("LENGTH written during a transfer")
        self.regs[reg] = value
        # Only a running channel starts work (PG021: "no effect" when halted):
        # a nonzero LENGTH, or the tail, whose MSB comes last with 64-bit
        # addressing.
        trigger = TAILDESC if self.dma.addr_width == 32 else TAILDESC_MSB
        if not self.halted and (reg == trigger or (reg == LENGTH and value)):
            self._start_work()

    def _write_control(self, value):
        if value & RESET:                 # soft reset: the whole DMA
            return self.dma.reset()
        if value & (KEYHOLE | CYCLIC):
            raise NotImplementedError("keyhole and cyclic modes are not modelled")
        self.regs[DMACR] = value
        if value & RS and self.halted and not self.regs[DMASR] & ERRORS:
            # An error halts until a reset. Idle again after the next transfer.
            self.regs[DMASR] &= ~(HALTED | IDLE)
            self._next = None
        elif not value & RS:
            self.regs[DMASR] |= HALTED
            self._receive = None

    @property
    def halted(self):
        return bool(self.regs[DMASR] & HALTED)

    def _address(self, reg):
        return self.regs[reg] | self.regs[reg + 4] << 32

    # -- work -------------------------------------------------------------

    def _start_work(self):
        if self._receive is not None:   # S2MM waits for data: the tail moved
            return
        self.regs[DMASR] &= ~IDLE
        try:
            if not self.dma.sg:
                address, length = self._address(ADDR), self.regs[LENGTH]
                self._check_aligned(address)
                if self.to_stream:
                    self._send(address, length, last=True)
                    self._finish()
                else:
                    self._receive = [address, length, 0]
            else:
                if self._next is None:              # first tail since RS
                    self._next = self._address(CURDESC)
                if self.to_stream:
                    self._send_descriptors()
                else:
                    self._receive = self._fetch_for_receive()
        except _Fault as fault:
            self._halt(fault)
        self.dma.pump()

    def _finish(self):
        # Idle, and the completion interrupt (coalescing is not modelled).
        self.regs[DMASR] |= IDLE | IOC_IRQ

    def _halt(self, fault):
        # PG021: on an error the channel clears RS and halts; the bits stay
        # until a reset. In SG mode the descriptor gets the error too.
        self.regs[DMACR] &= ~RS
        self.regs[DMASR] |= HALTED | fault.error | ERR_IRQ
        self._receive = None
        if fault.status_error and self.dma.sg:
            try:
                self._write_status(self._address(CURDESC), fault.status_error)
            except _Fault as also:
                self.regs[DMASR] |= also.error

    def _check_aligned(self, address):
        if not self.dma.dre and address % self.dma.data_width:
            raise UndefinedBehaviour(
                f"{address:#x} is not aligned to the data width and there is no DRE")

    def _bus(self, access, address, *args, sg=False):
        """One memory access; a bus error becomes the error bits PG021 names:
        a decode error outside the memory's window, else a slave error."""
        try:
            return access(address, *args)
        except ValueError:
            mem = self.dma.memory
            inside = mem.base_address <= address < mem.base_address + mem.size
            if sg:
                raise _Fault(SG_SLV_ERR if inside else SG_DEC_ERR) from None
            raise _Fault(DMA_SLV_ERR if inside else DMA_DEC_ERR,
                         STS_SLV_ERR if inside else STS_DEC_ERR) from None

    def _send(self, address, length, last):
        data = self._bus(self.dma.memory.device_read, address, length)
        self.dma.stream.push(data, last)

    # -- scatter-gather ---------------------------------------------------

    def _fetch(self, address):
        """The descriptor at address, as (next, buffer, control)."""
        if address % DESCRIPTOR_SIZE:
            raise UndefinedBehaviour(f"descriptor {address:#x} is not 16-word aligned")
        self.regs[CURDESC], self.regs[CURDESC_MSB] = _lo(address), _hi(address)
        raw = self._bus(self.dma.memory.device_read, address, FETCHED, sg=True)
        word = lambda offset: int.from_bytes(raw[offset:offset + 4], "little")
        if word(STATUS) & CMPLT:          # a stale descriptor (PG021: SGIntErr)
            raise _Fault(SG_INT_ERR)
        length = word(CONTROL) & self.dma.max_length
        if length == 0:
            raise _Fault(DMA_INT_ERR, STS_INT_ERR)
        self._check_aligned(word(BUFFER_ADDRESS))
        nxt = word(NXTDESC) | word(NXTDESC_MSB) << 32
        buffer = word(BUFFER_ADDRESS) | word(BUFFER_ADDRESS_MSB) << 32
        return nxt, buffer, word(CONTROL)

    def _write_status(self, address, status):
        self._bus(self.dma.memory.device_write, address + STATUS,
                  status.to_bytes(4, "little"), sg=True)

    def _completed(self, address, nxt, status):
        """Write back a finished descriptor; True when it was the tail
        (a later tail write resumes at its next)."""
        self._write_status(address, CMPLT | status)
        self._next = nxt
        if address == self._address(TAILDESC):
            self._finish()
            return True
        return False

    def _send_descriptors(self):
        address = self._next
        while True:
            nxt, buffer, control = self._fetch(address)
            length = control & self.dma.max_length
            self._send(buffer, length, last=bool(control & EOF))
            if self._completed(address, nxt, length):
                return
            address = nxt

    def _fetch_for_receive(self):
        address = self._next
        nxt, buffer, control = self._fetch(address)
        # [descriptor, next, buffer, room, filled, starts a packet]
        return [address, nxt, buffer, control & self.dma.max_length, 0,
                self._packet_start]

    # -- S2MM: take what the stream holds ---------------------------------

    def pump(self):
        try:
            while self._receive is not None and self.dma.stream:
                if self.dma.sg:
                    self._receive_sg()
                else:
                    self._receive_simple()
        except _Fault as fault:
            self._halt(fault)

    def _receive_simple(self):
        address, room, filled = self._receive
        data, last = self.dma.stream.pull(room - filled)
        self._bus(self.dma.memory.device_write, address + filled, data)
        filled += len(data)
        self._receive[2] = filled
        if last:
            self.regs[LENGTH] = filled    # PG021: the bytes actually written
            self._receive = None
            self._finish()
        elif filled == room:
            # A packet longer than the buffer: PG021 calls it undefined; the
            # IP reports DMAIntErr.
            raise _Fault(DMA_INT_ERR)

    def _receive_sg(self):
        address, nxt, buffer, room, filled, first = self._receive
        data, last = self.dma.stream.pull(room - filled)
        self._bus(self.dma.memory.device_write, buffer + filled, data)
        filled += len(data)
        self._receive[4] = filled
        if not last and filled < room:
            return
        self._packet_start = last
        status = filled | (SOF if first else 0) | (EOF if last else 0)
        self._receive = None
        if not self._completed(address, nxt, status):
            self._receive = self._fetch_for_receive()


class AxiDma:
    """The AXI DMA IP (PG021) in loopback: MM2S feeds S2MM.

    memory: the Memory it masters. sg: scatter-gather mode. length_width:
    the width of the length fields (c_sg_length_width, 8 to 26 bits).
    addr_width: 32 or 64 (c_addr_width). data_width: the memory-map data
    width in bytes. dre: whether there is a data realignment engine.
    read(offset)/write(offset, value) are its AXI4-Lite registers;
    writes lists every register write as (offset, value).
    """

    def __init__(self, memory, *, sg=False, length_width=26, addr_width=32,
                 data_width=4, dre=False):
        assert 8 <= length_width <= 26 and addr_width in (32, 64)
        self.memory, self.sg, self.addr_width = memory, sg, addr_width
        self.length_width, self.max_length = length_width, (1 << length_width) - 1
        self.data_width, self.dre = data_width, dre
        self.writes = []
        self.reset()

    def reset(self):
        self.stream = _Stream()
        self.mm2s = _Channel(self, to_stream=True)
        self.s2mm = _Channel(self, to_stream=False)

    def _channel(self, offset):
        return (self.mm2s, offset) if offset < S2MM else (self.s2mm, offset - S2MM)

    def read(self, offset):
        channel, reg = self._channel(offset)
        return channel.read(reg)

    def write(self, offset, value):
        self.writes.append((offset, value))
        channel, reg = self._channel(offset)
        channel.write(reg, value)

    def pump(self):
        """Let S2MM take what MM2S put in the stream."""
        self.s2mm.pump()


def describe(status):
    """The error bits set in a DMASR value, by their PG021 names."""
    return ", ".join(name for bit, name in ERROR_NAMES.items() if status & bit)


# -- the driver -----------------------------------------------------------

_POLLS = 1000       # PYNQ polls forever; a test must fail instead of hanging


class _DriverChannel:
    """What PYNQ's _SDMAChannel and _SGDMAChannel share: one channel's
    registers, and polling them."""

    def __init__(self, mmio, base, max_size, width, dre, memory):
        self._mmio, self._base = mmio, base
        self._to_device = base == MM2S      # MM2S: PYNQ flushes before
        self._max_size, self._align, self._dre = max_size, width, dre
        self._memory = memory
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

    def _until(self, condition, what):
        for _ in range(_POLLS):
            if condition():
                return
        raise TimeoutError(f"DMA channel never became {what}")

    def _until_done(self, done_bits):
        """Poll DMASR until one of done_bits; error bits raise RuntimeError,
        as PYNQ's wait() does."""
        for _ in range(_POLLS):
            status = self._read(DMASR)
            if status & ERRORS:
                raise RuntimeError(f"DMA error: {describe(status)} "
                                   f"(DMASR={status:#010x})")
            if status & done_bits:
                return status
        raise TimeoutError(f"DMA transfer never finished (DMASR={status:#010x})")

    def _start_address(self, array, start):
        address = array.device_address + start
        if not self._dre and address % self._align:
            raise RuntimeError(f"DMA without DRE needs {self._align}-byte "
                               f"aligned addresses, not {address:#x}")
        return address


class SimpleChannel(_DriverChannel):
    """A channel in direct register mode, as PYNQ's _SDMAChannel drives it.

    flush=False (transfer) and invalidate=False (wait) leave out the cache
    maintenance that PYNQ does: a driver with that bug, for the tests.
    """

    def __init__(self, *args):
        super().__init__(*args)
        self.start()

    def start(self):
        self._write(DMACR, RS)
        self._until(lambda: self.running, "running")
        self._first_transfer = True      # Idle is 0 until a transfer ends

    def stop(self):
        self._write(DMACR, 0)
        self._until(lambda: not self.running, "halted")

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
        self._write(ADDR, _lo(address))
        self._write(ADDR_MSB, _hi(address))
        self._write(LENGTH, nbytes)                     # starts the transfer
        self._active = array
        self._first_transfer = False

    def wait(self, *, invalidate=True):
        # PYNQ checks "running" first, which an error has cleared; looking
        # at the error bits first names the error.
        if self._until_done(IDLE | HALTED) & HALTED:
            raise RuntimeError("DMA channel not started")
        if not self._to_device and invalidate:
            self._active.invalidate()
        self.transferred = self._read(LENGTH)
        self._active = None


class SGChannel(_DriverChannel):
    """A channel in scatter-gather mode, as PYNQ's _SGDMAChannel drives it:
    a new descriptor ring per transfer, released by wait().

    ring is the descriptor ring of the transfer in flight (else None).
    flush=False and invalidate=False as for SimpleChannel.
    """

    def __init__(self, *args):
        super().__init__(*args)
        self.ring = None
        self._started = False
        self.stop()

    def start(self):
        self._write(DMACR, RS)
        self._until(lambda: self.running, "running")
        self._started = True

    def stop(self):
        self._write(DMACR, 0)
        self._until(lambda: not self.running, "halted")
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
        ring = allocate((count, DESCRIPTOR_SIZE // 4), "u4", target=self._memory,
                        cacheable=False)
        self.stop()
        first = ring.device_address
        for i in range(count):
            nxt = first + (i + 1) % count * DESCRIPTOR_SIZE
            buffer = address + i * block
            length = min(block, nbytes - i * block)
            words = {NXTDESC: _lo(nxt), NXTDESC_MSB: _hi(nxt),
                     BUFFER_ADDRESS: _lo(buffer), BUFFER_ADDRESS_MSB: _hi(buffer),
                     CONTROL: length | (SOF if i == 0 else 0)
                     | (EOF if i == count - 1 else 0)}
            for offset, value in words.items():
                ring[i, offset // 4] = value
        if self._to_device and flush:
            array.flush()
        ring.flush()
        self._write(CURDESC, _lo(first))
        self._write(CURDESC_MSB, _hi(first))
        self.ring, self._active = ring, array
        self.transferred = 0
        self.start()
        tail = first + (count - 1) * DESCRIPTOR_SIZE
        self._write(TAILDESC, _lo(tail))                # the tail starts it
        self._write(TAILDESC_MSB, _hi(tail))

    def wait(self, *, invalidate=True):
        if not self._started:
            raise RuntimeError("DMA transfer not started")
        self._until_done(IDLE | HALTED)
        if not self._to_device and invalidate:
            self._active.invalidate()
        # PYNQ flushes the ring here, not invalidates: the status words it
        # then reads are right only because the ring is uncached.
        self.ring.flush()
        status = self.ring[:, STATUS // 4]
        if (status & STS_ERRORS).any():
            raise RuntimeError("DMA error in a descriptor")
        self.transferred = int((status & STS_TRANSFERRED).sum())
        self.stop()
        # PYNQ calls close() (a no-op since PYNQ 3.0) and drops its last
        # reference, which frees the ring; freebuffer() does it plainly.
        self.ring.freebuffer()
        self.ring, self._active = None, None


class Dma:
    """The driver, as PYNQ's DMA: sendchannel (MM2S) and recvchannel (S2MM),
    simple or SG as the IP is built."""

    def __init__(self, ip):
        max_size = (1 << ip.length_width) - 1
        channel = SGChannel if ip.sg else SimpleChannel
        self.sendchannel = channel(ip, MM2S, max_size, ip.data_width, ip.dre, ip.memory)
        self.recvchannel = channel(ip, S2MM, max_size, ip.data_width, ip.dre, ip.memory)

"""The AXI DMA IP (Xilinx PG021, v7.1) as a register model on a Memory.

Two channels, MM2S and S2MM, in direct register ("simple") or
scatter-gather (SG) mode, joined by a stream: what MM2S reads from memory
goes, packet by packet, through the logic between them (by default none: a
loopback) to S2MM, which writes it to memory.  The model reaches memory
only through Memory.device_read/device_write, as a bus master does: it sees
the device side of a simulated memory, never the CPU's cache.  Work runs
on the register write that starts it (LENGTH in simple mode, TAILDESC in
SG mode), so a status read right after that write shows the outcome.

pynq_alloc.testing.AxiDma gives it the face of a PYNQ IP (MMIO, the IP's
description); this module is the IP alone.  The functions on the way from
a register access to memory set __tracebackhide__, so that pytest reports
a failure (a CoherenceError, say) at the driver's line that made the
access; --full-trace shows them.
"""
from __future__ import annotations

import collections
import time
from typing import Callable, Deque, Dict, List, Optional, Tuple

from ._core import Memory

# Register offsets within a channel (PG021 register address maps). The
# S2MM block starts at 0x30: S2MM_DMACR is 0x30, S2MM_DA 0x48, and so on.
MM2S, S2MM = 0x00, 0x30
DMACR, DMASR = 0x00, 0x04
CURDESC, CURDESC_MSB, TAILDESC, TAILDESC_MSB = 0x08, 0x0C, 0x10, 0x14  # SG
ADDR, ADDR_MSB, LENGTH = 0x18, 0x1C, 0x28       # simple: MM2S_SA / S2MM_DA
SG_REGISTERS = (CURDESC, CURDESC_MSB, TAILDESC, TAILDESC_MSB)
SIMPLE_REGISTERS = (ADDR, ADDR_MSB, LENGTH)
MSB_REGISTERS = (CURDESC_MSB, TAILDESC_MSB, ADDR_MSB)
REGISTER_NAMES = {DMACR: "DMACR", DMASR: "DMASR", CURDESC: "CURDESC",
                  CURDESC_MSB: "CURDESC_MSB", TAILDESC: "TAILDESC",
                  TAILDESC_MSB: "TAILDESC_MSB", LENGTH: "LENGTH"}
REGISTERS_END = 0x60        # the last register, S2MM_LENGTH, is at 0x58

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
DESCRIPTOR_ALIGN = 0x40
FETCHED = 0x20           # the eight base words; APP0-4 only with a control stream
SOF, EOF = 1 << 27, 1 << 26                  # CONTROL TXSOF/TXEOF, STATUS RXSOF/RXEOF
CMPLT = 1 << 31                              # STATUS
STS_DEC_ERR, STS_SLV_ERR, STS_INT_ERR = 1 << 30, 1 << 29, 1 << 28

WORD = 0xFFFFFFFF


class UndefinedBehaviour(Exception):
    """A driver did something whose result PG021 leaves undefined (or
    calls reserved): the simulated DMA refuses it rather than guess."""

    __module__ = "pynq_alloc.testing"


class _Fault(Exception):
    """Ends a channel's work: the DMASR error bit, and the STATUS error bit
    for the descriptor being worked on (0 when the fault is not in one)."""

    def __init__(self, error: int, status_error: int = 0) -> None:
        super().__init__(ERROR_NAMES[error])
        self.error, self.status_error = error, status_error


def error_names(status: int) -> List[str]:
    """The error bits set in a DMASR value, by their PG021 names."""
    return [name for bit, name in ERROR_NAMES.items() if status & bit]


class _Stream:
    """The AXI4-Stream between the channels: a FIFO of bytes that keeps
    the packet ends (TLAST) that MM2S marked, deeper than any test needs,
    so that MM2S never waits for S2MM.  With `process`, each whole packet
    passes through it on its way (the logic between MM2S and S2MM)."""

    def __init__(self, process: Optional[Callable[[bytes], bytes]]) -> None:
        self._chunks: Deque[Tuple[bytes, bool]] = collections.deque()
        self._process = process
        self._packet = bytearray()      # with process: MM2S's unended packet

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def push(self, data: bytes, last: bool) -> None:
        __tracebackhide__ = True
        if self._process is None:
            self._chunks.append((data, last))
            return
        self._packet += data
        if last:
            packet, self._packet = bytes(self._packet), bytearray()
            out = bytes(self._process(packet))
            if out:             # an AXI4-Stream packet has at least one beat
                self._chunks.append((out, True))

    def pull(self, limit: int) -> Tuple[bytes, bool]:
        """Up to limit bytes, never across a packet end; and whether they
        end a packet."""
        data, last = self._chunks[0]
        if len(data) > limit:
            self._chunks[0] = (data[limit:], last)
            return data[:limit], False
        self._chunks.popleft()
        return data, last


class _Receive:
    """S2MM work in flight: where stream data goes next.  In SG mode, the
    descriptor being filled and the one after it."""

    def __init__(self, address: int, room: int, descriptor: int = 0,
                 following: int = 0, first: bool = True) -> None:
        self.address, self.room, self.filled = address, room, 0
        self.descriptor, self.following, self.first = descriptor, following, first


class _Channel:
    """One direction of the DMA: its registers and the work in flight."""

    def __init__(self, dma: AxiDmaRegisters, to_stream: bool) -> None:
        self.dma, self.to_stream = dma, to_stream
        self.name = "MM2S" if to_stream else "S2MM"
        self.regs: Dict[int, int] = collections.defaultdict(int)
        self.regs[DMASR] = HALTED | (SG_INCLD if dma.sg else 0)
        self.receive: Optional[_Receive] = None   # S2MM: where data goes
        self._next: Optional[int] = None          # SG: descriptor to fetch
        self._packet_start = True       # S2MM: the next byte starts a packet

    def register_name(self, reg: int) -> str:
        if reg == ADDR:
            return f"{self.name}_{'SA' if self.to_stream else 'DA'}"
        if reg == ADDR_MSB:
            return f"{self.name}_{'SA' if self.to_stream else 'DA'}_MSB"
        return f"{self.name}_{REGISTER_NAMES[reg]}"

    # -- registers --------------------------------------------------------

    def write(self, reg: int, value: int) -> None:
        __tracebackhide__ = True
        if reg not in REGISTER_NAMES and reg not in (ADDR, ADDR_MSB):
            raise UndefinedBehaviour(
                f"offset {reg + (0 if self.to_stream else S2MM):#x} is "
                "reserved in the AXI DMA's register map (PG021)")
        if reg == DMACR:
            self._write_control(value)
            return
        if reg == DMASR:        # only the interrupt bits, write 1 to clear
            self.regs[DMASR] &= ~(value & (IOC_IRQ | DLY_IRQ | ERR_IRQ))
            return
        sg = self.dma.sg
        if (reg in SG_REGISTERS and not sg) or (reg in SIMPLE_REGISTERS and sg):
            raise UndefinedBehaviour(
                f"{self.register_name(reg)} is reserved in "
                f"{'scatter-gather' if sg else 'direct register (simple)'} "
                f"mode (c_include_sg={int(sg)})")
        if reg in MSB_REGISTERS and self.dma.addr_width == 32:
            return                      # reserved with 32-bit addresses
        if reg in (CURDESC, CURDESC_MSB) and not self.halted:
            raise UndefinedBehaviour(
                f"{self.register_name(reg)} written while the channel runs "
                "(PG021: only while halted)")
        if reg == LENGTH:
            value &= self.dma.max_length
            if self.receive is not None:
                raise UndefinedBehaviour(
                    f"{self.register_name(reg)} written during a transfer")
        self.regs[reg] = value
        # Only a running channel starts work (PG021: "no effect" when halted):
        # a nonzero LENGTH, or the tail, whose MSB comes last with 64-bit
        # addressing.
        trigger = TAILDESC if self.dma.addr_width == 32 else TAILDESC_MSB
        if not self.halted and (reg == trigger or (reg == LENGTH and value)):
            self._start_work()

    def _write_control(self, value: int) -> None:
        __tracebackhide__ = True
        if value & RESET:                 # soft reset: the whole DMA
            self.dma.reset()
            return
        if value & (KEYHOLE | CYCLIC):
            raise NotImplementedError(
                f"{self.name}_DMACR={value:#x}: the simulated AXI DMA does "
                "not model keyhole (bit 3) or cyclic BD (bit 4) mode")
        if self.regs[DMASR] & ERRORS:
            value &= ~RS                  # an error halts until a reset
        self.regs[DMACR] = value
        if value & RS and self.halted:
            self.regs[DMASR] &= ~HALTED
            self._next = None
        elif not value & RS:
            self._stop()

    def _stop(self) -> None:
        # PG021: Idle reads 0 while halted, and again until a transfer ends.
        self.regs[DMASR] = (self.regs[DMASR] | HALTED) & ~IDLE
        self.receive = None

    @property
    def halted(self) -> bool:
        return bool(self.regs[DMASR] & HALTED)

    def address(self, reg: int) -> int:
        return (self.regs[reg] | self.regs[reg + 4] << 32) & self.dma.address_mask

    def waiting_for(self) -> Optional[str]:
        """What a running, busy channel waits for, when only another
        register write can bring it; None if it is halted or idle."""
        status = self.regs[DMASR]
        if status & (HALTED | IDLE):
            return None
        if self.receive is not None:
            return ("stream data: MM2S has not sent the rest of the packet "
                    "this transfer receives")
        trigger = "TAILDESC" if self.dma.sg else "LENGTH"
        return f"a transfer: {self.name}_{trigger} was not written since it started"

    # -- work -------------------------------------------------------------

    def _start_work(self) -> None:
        __tracebackhide__ = True
        if self.receive is not None:    # S2MM waits for data: the tail moved
            return
        self.regs[DMASR] &= ~IDLE
        try:
            if not self.dma.sg:
                address, length = self.address(ADDR), self.regs[LENGTH]
                self._check_aligned(address, ADDR)
                if self.to_stream:
                    self._send(address, length, last=True)
                    self._finish()
                else:
                    self.receive = _Receive(address, length)
            else:
                if self._next is None:              # first tail since RS
                    self._next = self.address(CURDESC)
                if self.to_stream:
                    self._send_descriptors()
                else:
                    self.receive = self._fetch_for_receive()
        except _Fault as fault:
            self._halt(fault)
        self.dma.pump()

    def _finish(self) -> None:
        # Idle, and the completion interrupt (coalescing is not modelled).
        self.regs[DMASR] |= IDLE | IOC_IRQ

    def _halt(self, fault: _Fault) -> None:
        # PG021: on an error the channel clears RS and halts; the bits stay
        # until a reset. In SG mode the descriptor gets the error too.
        __tracebackhide__ = True
        self.regs[DMACR] &= ~RS
        self._stop()
        self.regs[DMASR] |= fault.error | ERR_IRQ
        if fault.status_error and self.dma.sg:
            try:
                self._write_status(self.address(CURDESC), fault.status_error)
            except _Fault as also:
                self.regs[DMASR] |= also.error

    def _check_aligned(self, address: int, reg: int) -> None:
        __tracebackhide__ = True
        width = self.dma.data_bytes
        if not self.dma.dre and address % width:
            where = ("a descriptor's buffer address" if self.dma.sg
                     else self.register_name(reg))
            raise UndefinedBehaviour(
                f"{where} {address:#x} is not aligned to the memory-map data "
                f"width ({width} bytes) and the channel has no DRE "
                "(c_include_mm2s_dre/c_include_s2mm_dre)")

    def _bus(self, address: int, length: int, data: Optional[bytes] = None,
             sg: bool = False) -> bytes:
        """One memory access (a read unless data is given); a bus error
        becomes the error bits PG021 names: a decode error outside the
        memory's window, else a slave error."""
        __tracebackhide__ = True
        memory = self.dma.memory
        try:
            if data is None:
                return memory.device_read(address, length)
            memory.device_write(address, data)
            return b""
        except ValueError:
            inside = memory.base_address <= address < memory.base_address + memory.size
            if sg:
                raise _Fault(SG_SLV_ERR if inside else SG_DEC_ERR) from None
            raise _Fault(DMA_SLV_ERR if inside else DMA_DEC_ERR,
                         STS_SLV_ERR if inside else STS_DEC_ERR) from None

    def _send(self, address: int, length: int, last: bool) -> None:
        __tracebackhide__ = True
        self.dma.stream.push(self._bus(address, length), last)

    # -- scatter-gather ---------------------------------------------------

    def _fetch(self, address: int) -> Tuple[int, int, int]:
        """The descriptor at address, as (next, buffer, control)."""
        __tracebackhide__ = True
        if address % DESCRIPTOR_ALIGN:
            raise UndefinedBehaviour(
                f"{self.name} descriptor address {address:#x} is not 16-word "
                "(0x40) aligned")
        self.regs[CURDESC], self.regs[CURDESC_MSB] = address & WORD, address >> 32
        raw = self._bus(address, FETCHED, sg=True)

        def word(offset: int) -> int:
            return int.from_bytes(raw[offset:offset + 4], "little")

        if word(STATUS) & CMPLT:          # a stale descriptor (PG021: SGIntErr)
            raise _Fault(SG_INT_ERR)
        length = word(CONTROL) & self.dma.max_length
        if length == 0:
            raise _Fault(DMA_INT_ERR, STS_INT_ERR)
        mask = self.dma.address_mask
        nxt = (word(NXTDESC) | word(NXTDESC_MSB) << 32) & mask
        buffer = (word(BUFFER_ADDRESS) | word(BUFFER_ADDRESS_MSB) << 32) & mask
        self._check_aligned(buffer, BUFFER_ADDRESS)
        return nxt, buffer, word(CONTROL)

    def _write_status(self, address: int, status: int) -> None:
        __tracebackhide__ = True
        self._bus(address + STATUS, 4, status.to_bytes(4, "little"), sg=True)

    def _completed(self, address: int, nxt: int, status: int) -> bool:
        """Write back a finished descriptor; True when it was the tail
        (a later tail write resumes at its next)."""
        __tracebackhide__ = True
        self._write_status(address, CMPLT | status)
        self._next = nxt
        if address == self.address(TAILDESC):
            self._finish()
            return True
        return False

    def _send_descriptors(self) -> None:
        # Ends: each descriptor is marked complete, and a complete one
        # fetched again is an SGIntErr.
        __tracebackhide__ = True
        address = self._next
        assert address is not None
        while True:
            nxt, buffer, control = self._fetch(address)
            length = control & self.dma.max_length
            self._send(buffer, length, last=bool(control & EOF))
            if self._completed(address, nxt, length):
                return
            address = nxt

    def _fetch_for_receive(self) -> _Receive:
        __tracebackhide__ = True
        address = self._next
        assert address is not None
        nxt, buffer, control = self._fetch(address)
        return _Receive(buffer, control & self.dma.max_length, address, nxt,
                        self._packet_start)

    # -- S2MM: take what the stream holds ---------------------------------

    def pump(self) -> None:
        __tracebackhide__ = True
        try:
            while self.receive is not None and self.dma.stream:
                if self.dma.sg:
                    self._receive_sg(self.receive)
                else:
                    self._receive_simple(self.receive)
        except _Fault as fault:
            self._halt(fault)

    def _take(self, work: _Receive) -> bool:
        """Stream data into the buffer; whether it ended a packet."""
        __tracebackhide__ = True
        data, last = self.dma.stream.pull(work.room - work.filled)
        self._bus(work.address + work.filled, len(data), data)
        work.filled += len(data)
        return last

    def _receive_simple(self, work: _Receive) -> None:
        __tracebackhide__ = True
        if self._take(work):
            self.regs[LENGTH] = work.filled  # PG021: the bytes actually written
            self.receive = None
            self._finish()
        elif work.filled == work.room:
            # A packet longer than the buffer: PG021 calls it undefined; the
            # IP reports DMAIntErr.
            raise _Fault(DMA_INT_ERR)

    def _receive_sg(self, work: _Receive) -> None:
        __tracebackhide__ = True
        last = self._take(work)
        if not last and work.filled < work.room:
            return
        self._packet_start = last
        status = work.filled | (SOF if work.first else 0) | (EOF if last else 0)
        self.receive = None
        if not self._completed(work.descriptor, work.following, status):
            self.receive = self._fetch_for_receive()


class AxiDmaRegisters:
    """The AXI DMA IP (PG021) with a stream from MM2S to S2MM.

    memory: the Memory it masters.  sg: scatter-gather mode.  length_width:
    bits of the length fields (c_sg_length_width).  addr_width: bits of a
    memory address (c_addr_width, 32 to 64).  data_bytes: the memory-map
    data width.  dre: a data realignment engine on both channels.
    process: what the logic between the channels does to each packet
    (None: a loopback).  poll_timeout: seconds after the last register
    write from which a read of a busy channel's DMASR raises TimeoutError
    (None: never).  read(offset)/write(offset, value) are the AXI4-Lite
    registers, 32 bits each; writes lists every register write as
    (offset, value).
    """

    def __init__(self, memory: Memory, *, sg: bool, length_width: int,
                 addr_width: int, data_bytes: int, dre: bool,
                 process: Optional[Callable[[bytes], bytes]],
                 poll_timeout: Optional[float]) -> None:
        self.memory, self.sg, self.addr_width = memory, sg, addr_width
        self.address_mask = (1 << addr_width) - 1
        self.max_length = (1 << length_width) - 1
        self.data_bytes, self.dre = data_bytes, dre
        self.poll_timeout = poll_timeout
        self.writes: List[Tuple[int, int]] = []
        self._process = process
        self._last_write = time.monotonic()
        self.reset()

    def reset(self) -> None:
        """Everything back to its reset state; the stream empties."""
        self.stream = _Stream(self._process)
        self.mm2s = _Channel(self, to_stream=True)
        self.s2mm = _Channel(self, to_stream=False)

    def _channel(self, offset: int) -> Tuple[_Channel, int]:
        return (self.mm2s, offset) if offset < S2MM else (self.s2mm, offset - S2MM)

    def read(self, offset: int) -> int:
        __tracebackhide__ = True
        if offset >= REGISTERS_END:
            return 0                                    # reserved
        channel, reg = self._channel(offset)
        # A busy channel polled with no register write in between: in one
        # thread nothing can end that wait; poll_timeout leaves time for a
        # driver whose other thread writes.
        if reg == DMASR and self.poll_timeout is not None:
            waited = time.monotonic() - self._last_write
            waiting = channel.waiting_for() if waited >= self.poll_timeout else None
            if waiting is not None:
                raise TimeoutError(
                    f"{channel.name}_DMASR polled for {waited:.1f} s with no "
                    f"register write, while the channel is busy waiting for "
                    f"{waiting}: on a board this poll never ends")
        return channel.regs[reg]

    def write(self, offset: int, value: int) -> None:
        __tracebackhide__ = True
        if not 0 <= value <= WORD:
            raise ValueError(f"{value:#x} does not fit a 32-bit register "
                             f"(offset {offset:#x})")
        self.writes.append((offset, value))
        self._last_write = time.monotonic()
        if offset >= REGISTERS_END:
            raise UndefinedBehaviour(
                f"offset {offset:#x} is reserved in the AXI DMA's register "
                "map (PG021): its last register, S2MM_LENGTH, is at 0x58")
        channel, reg = self._channel(offset)
        channel.write(reg, value)

    def pump(self) -> None:
        """Let S2MM take what MM2S put in the stream."""
        __tracebackhide__ = True
        self.s2mm.pump()

    def errors(self) -> Dict[str, List[str]]:
        return {"mm2s": error_names(self.mm2s.regs[DMASR]),
                "s2mm": error_names(self.s2mm.regs[DMASR])}

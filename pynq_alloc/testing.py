"""Simulated IP to test FPGA drivers against, off the board.

`AxiDma` is Xilinx's AXI DMA (PG021) on a simulated memory: an object that
plays `ol.axi_dma_0` for a driver written in PYNQ's style.  The driver
reads and writes its registers at offsets (`dma.read(offset)`,
`dma.write(offset, value)`, or the same on `dma.mmio`, as on a PYNQ IP),
in direct register (simple) or scatter-gather mode, and the DMA moves the
data: MM2S reads memory into a stream, S2MM writes the stream to memory
(a loopback, or through a function of yours that stands for the logic
between them).  It reads and writes memory as a bus master does, through
`Memory.device_read`/`device_write`: on a simulated memory it sees what a
device sees, so a cacheable buffer that the driver forgot to flush() goes
out stale, and data received without an invalidate() stays unseen, as on a
board; the memory reports both (see `pynq_alloc.CoherenceWarning`).  A bad
address sets the error bits a board's DMA sets (DMADecErr, DMASlvErr,
SGDecErr, ...) and halts the channel.

Its registers (PG021), MM2S's at 0x00 and S2MM's at 0x30: DMACR +0x00
(RS bit 0, Reset bit 2), DMASR +0x04 (Halted bit 0, Idle bit 1, error bits
4-6 and 8-10, IOC_Irq 12, Err_Irq 14), CURDESC +0x08/+0x0C and TAILDESC
+0x10/+0x14 (scatter-gather), SA (MM2S) or DA (S2MM) +0x18/+0x1C and
LENGTH +0x28 (simple mode); the second of each pair is the address's high
word.

Under pytest, the `pynq_axi_dma` fixture of pynq_alloc's plugin gives a
test an `AxiDma` on the `pynq_memory` fixture's memory (the default
memory for that test, with its coherence and leak checks).

    >>> import numpy as np
    >>> from pynq_alloc import allocate, open_memory
    >>> from pynq_alloc.testing import AxiDma
    >>> dma = AxiDma(open_memory('sim', size=1 << 20))
    >>> src = allocate(4, 'u4', target=dma.memory); src[:] = [1, 2, 3, 4]
    >>> dst = allocate(4, 'u4', target=dma.memory)
    >>> dma.write(0x30, 1); dma.write(0x48, dst.device_address)  # S2MM: run, DA
    >>> dma.write(0x58, dst.nbytes)                              # S2MM_LENGTH
    >>> dma.write(0x00, 1); dma.write(0x18, src.device_address)  # MM2S: run, SA
    >>> dma.write(0x28, src.nbytes)                              # MM2S_LENGTH
    >>> hex(dma.read(0x34))                      # S2MM_DMASR: Idle, IOC_Irq
    '0x1002'
    >>> dst
    Buffer([1, 2, 3, 4], dtype=uint32)
"""
from __future__ import annotations

import errno
import importlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ._axi_dma import AxiDmaRegisters, UndefinedBehaviour
from ._core import Buffer, Memory, default_memory

__all__ = ["AxiDma", "SimulatedMMIO", "UndefinedBehaviour"]

_AXI_DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
_DATA_WIDTHS = (32, 64, 128, 256, 512, 1024)


class SimulatedMMIO:
    """The registers of a simulated IP, as PYNQ's `pynq.MMIO` offers an
    IP's registers: `read(offset)`, `write(offset, data)`, with PYNQ's
    rules (word-aligned offsets, an int or bytes to write).

    `base_addr` and `length` are where the IP's registers lie, as in
    PYNQ.  There is no `array`: the registers act on reads and writes, so
    no plain numpy view can stand for them.  `AxiDma.mmio` is one.

    Raises nothing when made; see `read` and `write`.

        >>> from pynq_alloc import open_memory
        >>> mmio = AxiDma(open_memory('sim', size=1 << 20)).mmio
        >>> mmio.read(0x04)                    # MM2S_DMASR: Halted
        1
    """

    def __init__(self, read_register: Callable[[int], int],
                 write_register: Callable[[int, int], None],
                 base_addr: int, length: int) -> None:
        self._read_register, self._write_register = read_register, write_register
        self.base_addr, self.length = base_addr, length

    def __repr__(self) -> str:
        return (f"<SimulatedMMIO {self.base_addr:#x}, {self.length:#x} "
                "bytes>")

    def _check(self, offset: int, nbytes: int, what: str) -> None:
        __tracebackhide__ = True
        if not isinstance(offset, int):
            raise TypeError(f"offset must be an int, not "
                            f"{type(offset).__name__}")
        if offset < 0:
            raise ValueError(f"offset {offset} is negative")
        if offset % 4:
            raise MemoryError(f"unaligned {what} at offset {offset:#x}: "
                              "register offsets are multiples of 4")
        if offset + nbytes > self.length:
            raise IndexError(
                f"{what} of {nbytes} bytes at offset {offset:#x} is past the "
                f"end of the IP's {self.length:#x} bytes of registers at "
                f"{self.base_addr:#x}")

    def read(self, offset: int = 0, length: int = 4,
             word_order: str = "little") -> int:
        """Read a register: `length` bytes (1, 2, 4 or 8) at `offset`.

        offset: a multiple of 4, from the IP's base address.  length: 1 or
        2 give the low bytes of the register, 8 two registers as one int.
        word_order: for 8 bytes, 'little' (the register at offset + 4 is
        the high word) or 'big'.  Raises ValueError for another length or
        word_order, or a negative offset; MemoryError for an offset that
        is not a multiple of 4 (as PYNQ's MMIO); IndexError past the IP's
        registers.

            >>> from pynq_alloc import open_memory
            >>> dma = AxiDma(open_memory('sim', size=1 << 20), sg=True)
            >>> dma.mmio.read(0x34)            # S2MM_DMASR: Halted, SGIncld
            9
        """
        __tracebackhide__ = True
        if length not in (1, 2, 4, 8):
            raise ValueError(f"length {length}: registers are read 1, 2, 4 "
                             "or 8 bytes at a time")
        if length == 8 and word_order not in ("little", "big"):
            raise ValueError(f"word_order {word_order!r}: 'little' or 'big'")
        self._check(offset, max(length, 4), "read")
        low = self._read_register(offset)
        if length < 8:
            return low & ((1 << 8 * length) - 1)
        high = self._read_register(offset + 4)
        return high << 32 | low if word_order == "little" else low << 32 | high

    def write(self, offset: int, data: Union[int, bytes]) -> None:
        """Write a register at `offset`, or successive ones from bytes.

        offset: a multiple of 4.  data: an int (0 to 2**32 - 1) for one
        register, or bytes, a multiple of 4 long, for as many registers in
        turn.  Raises ValueError for other data (numpy integers included:
        PYNQ's MMIO refuses them too; pass int(value)) or an int that
        does not fit 32 bits; MemoryError for an unaligned offset or
        length; IndexError past the IP's registers; what the IP raises
        (see AxiDma).

            >>> from pynq_alloc import open_memory
            >>> dma = AxiDma(open_memory('sim', size=1 << 20))
            >>> dma.mmio.write(0x00, 1)        # MM2S_DMACR.RS: run
            >>> dma.mmio.read(0x04)            # running, not idle yet
            0
        """
        __tracebackhide__ = True
        if type(data) is int:
            words = [data]
        elif type(data) is bytes:
            if len(data) % 4:
                raise MemoryError(f"unaligned write: {len(data)} bytes is "
                                  "not a multiple of 4")
            words = [int.from_bytes(data[i:i + 4], "little")
                     for i in range(0, len(data), 4)]
        else:
            raise ValueError(
                f"data must be an int or bytes, as PYNQ's MMIO takes, not "
                f"{type(data).__module__}.{type(data).__qualname__}"
                + (" (pass int(value))" if hasattr(data, "__index__") else ""))
        self._check(offset, 4 * max(len(words), 1), "write")
        for i, word in enumerate(words):
            self._write_register(offset + 4 * i, word)


class _PynqDevice:
    """What PYNQ's MMIO and allocate() ask of the device that an IP's
    description names: register access (PYNQ's REGISTER_RW capability, as
    its XRT devices give) and allocate(), here in the DMA's memory."""

    def __init__(self, mmio: SimulatedMMIO, memory: Memory) -> None:
        self.name = "pynq_alloc.testing"
        self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False}
        self._mmio, self._memory = mmio, memory

    def has_capability(self, cap: str) -> bool:
        return self.capabilities.get(cap, False)

    def _offset(self, address: int, length: int) -> int:
        __tracebackhide__ = True
        offset = address - self._mmio.base_addr
        if length % 4:
            raise MemoryError(f"register access of {length} bytes: a "
                              "multiple of 4")
        return offset

    def read_registers(self, address: int, length: int) -> bytes:
        __tracebackhide__ = True
        offset = self._offset(address, length)
        return b"".join(self._mmio.read(offset + i).to_bytes(4, "little")
                        for i in range(0, length, 4))

    def write_registers(self, address: int, data: bytes) -> None:
        __tracebackhide__ = True
        self._mmio.write(self._offset(address, len(data)), bytes(data))

    def allocate(self, shape: Union[int, Sequence[int]], dtype: Any = "u4",
                 **options: Any) -> Buffer:
        return self._memory.allocate(shape, dtype, **options)


class AxiDma:
    """A simulated AXI DMA (Xilinx PG021): what `ol.axi_dma_0` is to a
    driver, on a memory whose device side Python can reach.

    memory: a `Memory` that offers device_read/device_write (a simulated
    one, or 'hugepage'); None: `default_memory()`, where `allocate()`
    puts buffers by default.  sg: scatter-gather mode (c_include_sg), else
    direct register (simple) mode.  length_width: bits of a transfer's
    length (c_sg_length_width, 8 to 26): at most 2**length_width - 1 bytes
    per transfer or descriptor.  addr_width: bits of a memory address
    (c_addr_width, 32 to 64); with 32, the *_MSB registers and descriptor
    words are ignored, as the IP does.  data_width: bits of the memory-map
    data width (c_m_axi_mm2s_data_width, ..._s2mm_...): without a DRE,
    addresses must be aligned to it.  dre: a data realignment engine on
    both channels.  process: a function from bytes to bytes, what the
    logic between MM2S and S2MM does to each packet (None: a loopback, a
    FIFO).  phys_addr, addr_range: where its registers lie, as in the
    IP's description.  poll_timeout: seconds with no register write after
    which reading a busy channel's DMASR raises TimeoutError, rather than
    let a driver spin for ever as it would on a board (the time is for a
    driver whose other thread starts the transfer); None: never.
    name: its name in the overlay (the description's 'fullpath').

    A transfer runs at the register write that starts it (MM2S/S2MM_LENGTH
    in simple mode, TAILDESC in SG mode, or TAILDESC_MSB when addr_width
    is over 32); S2MM receives as soon as the stream holds data.  A status
    read right after shows the outcome, so a driver's polls end at once.

    Errors, as the IP reports them (the channel halts, DMASR keeps the bit
    until a reset, SG descriptors get the STATUS error bits): an address
    outside the memory is a decode error (DMADecErr, or SGDecErr for a
    descriptor); inside the memory but outside any live buffer a slave
    error (DMASlvErr, SGSlvErr); a zero length or a packet longer than a
    simple-mode S2MM buffer an internal error (DMAIntErr); a descriptor
    fetched with its Cmplt bit set an SGIntErr.  A register write whose
    result PG021 leaves undefined (a reserved register, CURDESC while
    running, an unaligned address without DRE, ...) raises
    UndefinedBehaviour instead.

    Attributes: `mmio` (a SimulatedMMIO, as `ip.mmio` on PYNQ),
    `description` (the IP's entry in PYNQ's ip_dict: 'phys_addr',
    'addr_range', 'type', 'parameters' with c_include_sg and the rest as
    strings, 'device', ...), `memory`, `writes` (every register write, as
    (offset, value), for tests of a driver's order of writes).

    Raises TypeError if memory is not a Memory; ValueError for an option
    out of range or a memory with no device-side access.

        >>> from pynq_alloc import allocate, open_memory
        >>> dma = AxiDma(open_memory('sim', size=1 << 20))
        >>> dma.write(0x00, 1)                        # MM2S_DMACR: run
        >>> dma.write(0x18, dma.memory.base_address)  # MM2S_SA: no buffer
        >>> dma.write(0x28, 64)                       # MM2S_LENGTH: go
        >>> dma.errors()
        {'mm2s': ['DMASlvErr'], 's2mm': []}
        >>> dma.description['parameters']['c_include_sg']
        '0'
    """

    def __init__(self, memory: Optional[Memory] = None, *, sg: bool = False,
                 length_width: int = 26, addr_width: int = 32,
                 data_width: int = 32, dre: bool = False,
                 process: Optional[Callable[[bytes], bytes]] = None,
                 phys_addr: int = 0x4040_0000, addr_range: int = 0x1_0000,
                 poll_timeout: Optional[float] = 1.0,
                 name: str = "axi_dma_0") -> None:
        if memory is None:
            memory = default_memory()
        if not isinstance(memory, Memory):
            raise TypeError(f"memory must be a pynq_alloc.Memory (see "
                            f"open_memory()), not {type(memory).__name__}")
        _check_device_access(memory)
        for option, value in (("sg", sg), ("dre", dre)):
            if not isinstance(value, bool):
                raise TypeError(f"{option} must be True or False, not "
                                f"{value!r}")
        for option, number in (("length_width", length_width),
                               ("addr_width", addr_width),
                               ("data_width", data_width),
                               ("phys_addr", phys_addr),
                               ("addr_range", addr_range)):
            if not isinstance(number, int) or isinstance(number, bool):
                raise TypeError(f"{option} must be an int, not {number!r}")
        if not 8 <= length_width <= 26:
            raise ValueError(f"length_width {length_width}: the AXI DMA's "
                             "c_sg_length_width is 8 to 26")
        if not 32 <= addr_width <= 64:
            raise ValueError(f"addr_width {addr_width}: the AXI DMA's "
                             "c_addr_width is 32 to 64")
        if data_width not in _DATA_WIDTHS:
            raise ValueError(f"data_width {data_width}: the AXI DMA's memory-"
                             f"map data width is one of {_DATA_WIDTHS} bits")
        if phys_addr < 0 or addr_range < 0x60 or addr_range % 4:
            raise ValueError(
                f"phys_addr {phys_addr:#x}, addr_range {addr_range:#x}: the "
                "registers need 0x60 bytes, a multiple of 4, at an address "
                ">= 0")
        if poll_timeout is not None and not poll_timeout >= 0:
            raise ValueError(f"poll_timeout {poll_timeout}: seconds, 0 or "
                             "more, or None")
        self.memory = memory
        self.sg, self.dre = sg, dre
        self.length_width, self.addr_width = length_width, addr_width
        self.data_width, self.name = data_width, name
        self._ip = AxiDmaRegisters(
            memory, sg=sg, length_width=length_width, addr_width=addr_width,
            data_bytes=data_width // 8, dre=dre, process=process,
            poll_timeout=poll_timeout)
        self.mmio = SimulatedMMIO(self._ip.read, self._ip.write, phys_addr,
                                  addr_range)
        self.description = self._describe(_PynqDevice(self.mmio, memory))

    def _describe(self, device: _PynqDevice) -> Dict[str, Any]:
        """The IP's entry in PYNQ's ip_dict, as PYNQ makes it from the
        overlay's .hwh file: parameters are strings, under Vivado's names
        and PYNQ's lower-case ones."""
        flag = {True: "1", False: "0"}
        low = self.mmio.base_addr
        parameters = {
            "C_INCLUDE_SG": flag[self.sg],
            "C_SG_LENGTH_WIDTH": str(self.length_width),
            "C_ADDR_WIDTH": str(self.addr_width),
            "C_MICRO_DMA": "0",
            "C_ENABLE_MULTI_CHANNEL": "0",
            "C_INCLUDE_MM2S": "1",
            "C_INCLUDE_S2MM": "1",
            "C_INCLUDE_MM2S_DRE": flag[self.dre],
            "C_INCLUDE_S2MM_DRE": flag[self.dre],
            "C_M_AXI_MM2S_DATA_WIDTH": str(self.data_width),
            "C_M_AXI_S2MM_DATA_WIDTH": str(self.data_width),
            "C_M_AXIS_MM2S_TDATA_WIDTH": "32",
            "C_S_AXIS_S2MM_TDATA_WIDTH": "32",
            "C_MM2S_BURST_SIZE": "16",
            "C_S2MM_BURST_SIZE": "16",
        }
        parameters.update({k.lower(): v for k, v in list(parameters.items())})
        parameters["C_BASEADDR"] = f"0x{low:08X}"
        parameters["C_HIGHADDR"] = f"0x{low + self.mmio.length - 1:08X}"
        return {
            "type": _AXI_DMA_VLNV,
            "fullpath": self.name,
            "mem_id": "S_AXI_LITE",
            "memtype": "REGISTER",
            "phys_addr": low,
            "addr_range": self.mmio.length,
            "parameters": parameters,
            "interrupts": {},
            "gpio": {},
            "device": device,
        }

    def __repr__(self) -> str:
        mode = "scatter-gather" if self.sg else "simple"
        return (f"<AxiDma {self.name} at {self.mmio.base_addr:#x}, {mode} "
                f"mode, on the {self.memory.kind} memory at "
                f"{self.memory.base_address:#x}>")

    @property
    def writes(self) -> List[Tuple[int, int]]:
        """Every register write so far, as (offset, value), oldest first;
        clear() it to start afresh."""
        return self._ip.writes

    def read(self, offset: int = 0) -> int:
        """Read the 32-bit register at `offset`, as PYNQ's `ip.read`.

        offset: from the IP's base address, a multiple of 4; offsets past
        the last register (S2MM_LENGTH, 0x58) read 0, as reserved ones do.
        Raises what `SimulatedMMIO.read` raises, and TimeoutError when a
        driver polls a busy channel's DMASR `poll_timeout` seconds after
        the last register write: nothing it waits for can come.

            >>> from pynq_alloc import open_memory
            >>> AxiDma(open_memory('sim', size=1 << 20)).read(0x04)
            1
        """
        __tracebackhide__ = True
        return self.mmio.read(offset)

    def write(self, offset: int, value: Union[int, bytes]) -> None:
        """Write the register at `offset`, as PYNQ's `ip.write`.

        offset: a multiple of 4.  value: an int that fits 32 bits, or
        bytes for successive registers.  A write that starts a transfer
        runs it before it returns.  Raises what `SimulatedMMIO.write`
        raises; UndefinedBehaviour for a write PG021 leaves undefined (a
        reserved register, one of the other mode's registers, CURDESC
        while the channel runs, LENGTH during an S2MM transfer, an
        unaligned address without DRE or an unaligned descriptor);
        NotImplementedError for keyhole or cyclic BD mode, which are not
        modelled; and pynq_alloc.CoherenceError from a memory opened with
        coherence='raise' when the DMA reads data the CPU never flushed.

            >>> from pynq_alloc import open_memory
            >>> dma = AxiDma(open_memory('sim', size=1 << 20), sg=True)
            >>> dma.write(0x18, 0)
            Traceback (most recent call last):
            ...
            pynq_alloc.testing.UndefinedBehaviour: MM2S_SA is reserved in scatter-gather mode (c_include_sg=1)
        """
        __tracebackhide__ = True
        self.mmio.write(offset, value)

    def errors(self) -> Dict[str, List[str]]:
        """The error bits set in each channel's DMASR, by PG021's names.

        Takes no parameters and raises nothing.  Names: DMAIntErr,
        DMASlvErr, DMADecErr, SGIntErr, SGSlvErr, SGDecErr.

            >>> from pynq_alloc import open_memory
            >>> AxiDma(open_memory('sim', size=1 << 20)).errors()
            {'mm2s': [], 's2mm': []}
        """
        return self._ip.errors()

    def reset(self) -> None:
        """Reset the whole DMA, as a write of DMACR.Reset does: registers
        to their reset state (halted), error bits cleared, the stream
        emptied.  `writes` is kept.

        Takes no parameters and raises nothing.

            >>> from pynq_alloc import open_memory
            >>> dma = AxiDma(open_memory('sim', size=1 << 20))
            >>> dma.write(0x00, 1); dma.reset(); dma.read(0x04)
            1
        """
        self._ip.reset()

    def pynq_driver(self, driver: Optional[Callable[[Dict[str, Any]], Any]]
                    = None) -> Any:
        """PYNQ's own DMA driver (pynq.lib.dma.DMA), or `driver`, bound to
        this simulated IP as an Overlay binds one: driver(description).

        driver: a class that takes an IP's description, such as a
        DefaultIP subclass of yours; None: PYNQ's DMA.  PYNQ's MMIO
        reaches the registers through the description's 'device', and
        PYNQ's allocate() with that device as target allocates in this
        DMA's memory.  Raises ImportError when driver is None and PYNQ is
        not installed; what the driver raises.

            >>> from pynq_alloc import open_memory
            >>> dma = AxiDma(open_memory('sim', size=1 << 20))
            >>> dma.pynq_driver(lambda description: description['type'])
            'xilinx.com:ip:axi_dma:7.1'
        """
        if driver is None:
            try:
                driver = importlib.import_module("pynq.lib.dma").DMA
            except ImportError as e:
                raise ImportError(
                    "pynq_driver() builds PYNQ's own DMA driver, and PYNQ is "
                    f"not importable here ({e}); a driver of your own takes "
                    "the AxiDma itself, as it takes ol.axi_dma_0") from e
        assert driver is not None
        return driver(self.description)


def _check_device_access(memory: Memory) -> None:
    """ValueError unless the DMA can reach memory's device side."""
    try:
        memory.device_read(memory.base_address, 0)
    except OSError as e:
        if e.errno != errno.ENOTSUP:
            raise
        raise ValueError(
            f"the simulated DMA moves data with Memory.device_read/"
            f"device_write, which this {memory.kind} memory does not offer: "
            "give it a simulated memory (open_memory('sim')) or a 'hugepage' "
            "one") from None
    except ValueError:
        pass        # no live buffer at base_address yet: reachable

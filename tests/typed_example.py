"""A small driver written against pynq_alloc's public API with full type
annotations.  CI checks it with `mypy --strict`; test_typing.py runs it."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

import pynq_alloc
from pynq_alloc import Buffer, BufferInfo, Memory, allocate, open_memory


def loopback(memory: Memory, data: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """A DMA loopback, with the device played by device_read/device_write."""
    with memory.allocate(data.shape, np.uint32, cacheable=True) as src, \
            allocate(data.shape, "u4", target=memory, cacheable=True) as dst:
        src[:] = data
        src.flush()
        if src.device_address is None or dst.device_address is None:
            raise ValueError("not device memory")
        moved: bytes = memory.device_read(src.device_address, src.nbytes)
        memory.device_write(dst.device_address, moved)
        dst.invalidate()
        return np.array(dst, dtype=np.uint32)


def report(memory: Memory) -> list[str]:
    """What holds the memory, one line a buffer, then its map."""
    infos: list[BufferInfo] = memory.buffers()
    stats: dict[str, int] = memory.stats()
    lines = [f"{b.device_address:#x} {b.size} {b.shape} {b.dtype} "
             f"views={b.views} at {b.site}" for b in infos]
    lines.append(f"{stats['free']} bytes free in {memory.kind} memory")
    lines.append(pynq_alloc.memory_map(memory, width=32))
    return lines


def main() -> list[str]:
    memory = open_memory("sim", size=1 << 20, base_address=0x4000_0000)
    was_tracing = pynq_alloc.trace(True)
    try:
        data = np.arange(16, dtype=np.uint32)
        assert loopback(memory, data).tolist() == data.tolist()
        kept: Buffer = memory.allocate((4, 4), "f4")
        row = kept[1]
        assert isinstance(row, Buffer) and row.device_address is not None
        return report(memory)
    finally:
        pynq_alloc.trace(was_tracing)


if __name__ == "__main__":
    print("\n".join(main()))

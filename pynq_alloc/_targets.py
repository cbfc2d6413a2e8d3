"""PYNQ's own targets for allocate(), without importing PYNQ.

PYNQ code passes `target=ol.PSDDR`, `ol.HP0`, `ol.bank1` (an XrtMemory:
`idx`, `base_address`, `size`, `device`) or a PYNQ Device (whose
`default_memory` is such a memory).  They are recognised by those
attributes and mapped to a pynq_alloc Memory:

- on a board whose default memory is zocl, bank `idx` of the same zocl
  device (the bank rides in CREATE_BO's flags, as PYNQ passes it);
- on the simulated memory, the default memory serves every bank, so that
  PYNQ code runs off the board;
- on u-dma-buf, xlnk and huge pages, a bank whose address range holds the
  default memory's pool (the PS DDR) is the default memory; any other bank
  (PL DDR, HBM) is out of their reach, which is an error, never a buffer
  in the wrong memory.

PCIe cards' memories (an XrtDevice without MEMORY_MAPPED) are refused:
their memory is not the host's.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Tuple

from . import _core
from ._core import default_memory
from ._open import choose_default, open_memory

# (kind, options, bank) -> Memory: one Memory per bank, opened on first use.
_bank_memories: Dict[Tuple[str, Tuple[Tuple[str, str], ...], int], _core.Memory] = {}
_lock = threading.Lock()


def _describe(memory: Any) -> str:
    desc = getattr(memory, "desc", None)
    tag = desc.get("tag") if isinstance(desc, dict) else None
    return f"PYNQ memory {tag or type(memory).__name__!r} (bank {memory.idx})"


def _is_pynq_memory(obj: Any) -> bool:
    return (isinstance(getattr(obj, "idx", None), int)
            and hasattr(obj, "device") and hasattr(obj, "base_address"))


def _is_host_memory(device: Any) -> bool:
    """Edge devices (zocl) map their memory into the host; PCIe cards
    (PYNQ's XrtDevice) do not.  PYNQ marks the former MEMORY_MAPPED."""
    has_capability = getattr(device, "has_capability", None)
    return bool(has_capability("MEMORY_MAPPED")) if callable(has_capability) else True


def _zocl_bank(options: Dict[str, str], bank: int) -> _core.Memory:
    if int(str(options.get("bank", 0)), 0) == bank:
        return default_memory()
    key = ("zocl", tuple(sorted(options.items())), bank)
    with _lock:
        memory = _bank_memories.get(key)
        if memory is None:
            memory = open_memory("zocl", **{**options, "bank": bank})
            _bank_memories[key] = memory
        return memory


def memory_for(target: Any) -> _core.Memory:
    """The Memory that a PYNQ memory or Device stands for (see above).
    TypeError for anything else; ValueError for a memory out of reach."""
    if isinstance(target, _core.Memory):
        return target
    if not _is_pynq_memory(target) and hasattr(target, "default_memory"):
        target = target.default_memory      # a PYNQ Device
    if not _is_pynq_memory(target):
        raise TypeError(
            "target must be a pynq_alloc.Memory (see open_memory()), one of a "
            "PYNQ overlay's memories (ol.PSDDR, ol.bank1, ...) or a PYNQ "
            f"Device, not {type(target).__name__}")
    if not _is_host_memory(target.device):
        raise ValueError(
            f"{_describe(target)} belongs to a PCIe card "
            f"({type(target.device).__name__}), whose memory is not the "
            "host's; pynq_alloc allocates only host memory here")
    kind, options, _ = choose_default()
    if kind == "zocl":
        return _zocl_bank(options, target.idx)
    default = default_memory()
    if default.kind == "sim":
        return default
    start, size = int(target.base_address), int(getattr(target, "size", 0))
    if start <= default.base_address and (
            default.base_address + default.size <= start + size):
        return default
    raise ValueError(
        f"{_describe(target)} at {start:#x}, {size} bytes, does not hold the "
        f"default {default.kind} memory ({default.base_address:#x}, "
        f"{default.size} bytes): only zocl allocates in other banks")

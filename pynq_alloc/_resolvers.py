"""Which Memory allocate() uses: the two resolvers that _core calls.

`resolve_default()` chooses the default memory, once per process, when
`default_memory()` or `allocate(target=None)` first needs one.

`memory_for()` maps PYNQ's own targets for allocate(), without importing
PYNQ.  PYNQ code passes `target=ol.PSDDR`, `ol.HP0`, `ol.bank1` (an
XrtMemory: `idx`, `base_address`, `size`, `device`) or a PYNQ Device
(whose `default_memory` is such a memory).  They are recognised by those
attributes and mapped, by what the installed default memory was opened
as, to a pynq_alloc Memory:

- where the default memory is zocl, bank `idx` of the same zocl device
  (the bank rides in CREATE_BO's flags, as PYNQ passes it);
- a PCIe card's memory (an XrtDevice without MEMORY_MAPPED: Alveo's
  `ol.bank0`, `ol.HBM0`), and any memory where the default is xrt: bank
  `idx` through XRT, on the card that the device's `_index` names (PYNQ's
  XrtDevice keeps xrtDeviceOpen's index there);
- where the default memory is simulated (off the board, or installed by
  the pytest plugin), the default memory serves every bank, PCIe cards'
  too, so that PYNQ code runs off the board;
- on u-dma-buf, xlnk and huge pages, a bank whose address range holds the
  default memory's pool (the PS DDR) is the default memory; any other bank
  (PL DDR, HBM) is out of their reach, which is an error, never a buffer
  in the wrong memory.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, Optional, Tuple

from . import _core, _probe
from ._open import open_memory, opened_as

# Held from looking for an installed default to installing the one chosen,
# so that threads asking first together get one Memory: a second open of
# a device that admits one process (u-dma-buf) would be EBUSY.  Re-entrant,
# so that a signal handler that allocates while its thread chooses does
# not deadlock.
_choosing = threading.RLock()


def resolve_default() -> _core.Memory:
    """The Memory allocate() uses by default (see _probe.choose_default),
    opened and installed once however many threads ask first.  A device
    that is present but cannot be opened is an error, not a reason to fall
    back to simulated addresses that real DMA would then use."""
    with _choosing:
        memory = _core._peek_default_memory()
        if memory is None:
            memory = _open_default()
            _core._set_default_memory(memory)
        return memory


def _open_default() -> _core.Memory:
    """Opens the memory that choose_default() names.  When PYNQ_ALLOC_MEMORY
    named it, an error says so: the variable is the thing to change."""
    spec = _probe.environment_spec()
    kind, options, _ = _probe.choose_default()
    if spec is None:
        return open_memory(kind, **options)
    try:
        return open_memory(kind, **options)
    except (OSError, MemoryError, ValueError, TypeError) as e:
        raise _probe.blame_environment(e, spec) from None


# (kind, options) -> Memory: one Memory per bank, opened on first use.
_bank_memories: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], _core.Memory] = {}
_opening_bank = threading.Lock()


def _new_locks() -> None:
    # A fork while another thread held a lock would leave it held forever.
    global _choosing, _opening_bank
    _choosing, _opening_bank = threading.RLock(), threading.Lock()


os.register_at_fork(after_in_child=_new_locks)


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


def _index(value: Any) -> int:
    return int(str(value), 0)


def _bank_memory(kind: str, options: Dict[str, Any], target: Any,
                 default: Optional[_core.Memory] = None) -> _core.Memory:
    """The `kind` memory for the target's bank, opened with `options` but
    the target's bank (and card): `default` if it is that one (it was
    opened with options), else one opened on first use and kept."""
    wanted: Dict[str, Any] = {**options, "bank": target.idx}
    card = getattr(target.device, "_index", None)
    if kind == "xrt" and isinstance(card, int):
        wanted["device"] = card
    same = ("bank", "device") if kind == "xrt" else ("bank",)
    if default is not None and all(
            _index(wanted.get(k, 0)) == _index(options.get(k, 0)) for k in same):
        return default
    if kind == "xrt":       # XRT's C API does not say where a bank lies
        wanted.update(base_address=target.base_address, size=target.size)
    key = (kind, tuple(sorted((k, str(v)) for k, v in wanted.items())))
    with _opening_bank:
        memory = _bank_memories.get(key)
        if memory is None:
            memory = open_memory(kind, **wanted)
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
    default = _core.default_memory()
    kind, options = opened_as(default)
    if kind in ("zocl", "xrt"):
        return _bank_memory(kind, options, target, default)
    if kind == "sim":
        return default
    if not _is_host_memory(target.device):
        return _bank_memory("xrt", {}, target)
    start, size = int(target.base_address), int(getattr(target, "size", 0))
    if start <= default.base_address and (
            default.base_address + default.size <= start + size):
        return default
    raise ValueError(
        f"{_describe(target)} at {start:#x}, {size} bytes, does not hold the "
        f"default {default.kind} memory ({default.base_address:#x}, "
        f"{default.size} bytes): only zocl and xrt allocate in other banks")

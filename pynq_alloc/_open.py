"""Opening memories by name: one opener per backend, and `open_memory()`.

An opener takes a backend's options, as values or as a spec's text,
turns text into values (_spec) and finds what was left unsaid, such as
the device node (_probe); the core checks the values and opens the
Memory.  `open_memory()` remembers what each Memory was opened as, so
that another bank of the same device can be opened beside it.
"""
from __future__ import annotations

import operator
import os
import threading
import weakref
from typing import Any, Callable, Dict, Tuple

from . import _core, _probe
from ._spec import flag, number, parse_spec


def _open_sim(size: Any = 256 << 20, base_address: Any = 0x1000_0000,
              coherence: str = "warn", line_size: Any = 64) -> _core.Memory:
    return _core._open_sim(base_address=number("base_address", base_address),
                           size=number("size", size),
                           line_size=number("line_size", line_size),
                           coherence=coherence)


# device -> its open Memory: one heap per u-dma-buf buffer, so a second
# open in this process (default_memory() and open_memory('udmabuf'), say)
# gets the same Memory; other processes are kept out by a lock.
_udmabuf_memories: "weakref.WeakValueDictionary[str, _core.Memory]" = \
    weakref.WeakValueDictionary()
# Held from looking a device up to caching what was opened: two threads
# opening one device at once would otherwise both open it, and the core's
# single-process guard would take the second for another process (EBUSY).
_udmabuf_lock = threading.RLock()


def _new_udmabuf_lock() -> None:
    # A fork while another thread held the lock would leave it held forever.
    global _udmabuf_lock
    _udmabuf_lock = threading.RLock()


os.register_at_fork(after_in_child=_new_udmabuf_lock)


def _open_udmabuf(device: str = "/dev/udmabuf0", sysfs: str | None = None) -> _core.Memory:
    device = os.fspath(device)
    if sysfs is None:
        sysfs = os.path.join("/sys/class/u-dma-buf", os.path.basename(device))
    key = os.path.realpath(device)
    with _udmabuf_lock:
        memory = _udmabuf_memories.get(key)
        if memory is None:
            memory = _core._open_udmabuf(device=device, sysfs=os.fspath(sysfs))
            _udmabuf_memories[key] = memory
        return memory


def _open_zocl(device: str | None = None, meminfo: str = "/proc/meminfo",
               bank: Any = 0) -> _core.Memory:
    bank = _core._bank_index(bank, "zocl")
    device = _probe.zocl_device() if device is None else os.fspath(device)
    # CREATE_BOs that CMA cannot satisfy corrupt kernel memory in zocl: in a
    # bank known to be CMA, the core refuses requests that cannot fit.
    return _core._open_zocl(device=device, meminfo=os.fspath(meminfo), bank=bank,
                            cma=_probe.zocl_bank_in_cma("/", device, bank))


HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"


def _open_hugepage(size: Any = None, page_size: Any = 2 << 20, reserve: Any = True,
                   hugepages_dir: str = HUGEPAGES_DIR,
                   pagemap: str = "/proc/self/pagemap") -> _core.Memory:
    page_size = number("page_size", page_size)
    if size is None:
        size = 64 << 20 if page_size < 1 << 30 else page_size
    return _core._open_hugepage(size=number("size", size), page_size=page_size,
                                reserve=flag(reserve),
                                hugepages_dir=os.fspath(hugepages_dir),
                                pagemap=os.fspath(pagemap))


def _open_xlnk(library: str = _probe.XLNK_LIBRARY,
               maps: str = "/proc/self/maps") -> _core.Memory:
    return _core._open_xlnk(library=os.fspath(library), maps=os.fspath(maps))


def _open_xrt(device: Any = 0, bank: Any = 0, library: str | None = None,
              userptr: Any = None, base_address: Any = None,
              size: Any = None) -> _core.Memory:
    device = int(device, 0) if isinstance(device, str) else operator.index(device)
    if not 0 <= device < 1 << 32:
        raise ValueError(f"xrt device must be an index from 0; got {device}")
    bank = _core._bank_index(bank, "xrt")
    if userptr is None:
        # Edge boards' zocl takes only physically contiguous user memory.
        userptr = not any(f.found for f in _probe.probe() if f.kind == "zocl")
    if size is None or base_address is None:
        cards = _probe.xrt_cards()
        known = (_probe.xrt_bank_range(cards[device], bank)
                 if device < len(cards) else (0, 0))
        base_address = known[0] if base_address is None else base_address
        size = known[1] if size is None else size
    return _core._open_xrt(library=os.fspath(library or _probe.xrt_library()),
                           device=device, bank=bank, userptr=flag(userptr),
                           base_address=number("base_address", base_address),
                           size=number("size", size))


# kind -> function(**options) that opens it.
BACKENDS: Dict[str, Callable[..., _core.Memory]] = {
    "sim": _open_sim,
    "udmabuf": _open_udmabuf,
    "zocl": _open_zocl,
    "hugepage": _open_hugepage,
    "xlnk": _open_xlnk,
    "xrt": _open_xrt,
}

# Memory -> (kind, options) that open_memory() opened it with.
_opened_as: "weakref.WeakKeyDictionary[_core.Memory, Tuple[str, Dict[str, Any]]]" = \
    weakref.WeakKeyDictionary()


def opened_as(memory: _core.Memory) -> Tuple[str, Dict[str, Any]]:
    """(kind, options) that open_memory() opened memory with; for a Memory
    it did not open, its kind and no options."""
    kind, options = _opened_as.get(memory, (memory.kind, {}))
    return kind, dict(options)


def open_memory(spec: str = "sim", **options: Any) -> _core.Memory:
    """Open a Memory: ``open_memory('sim', size=64 << 20)``.

    spec names the backend ('sim', 'zocl', 'udmabuf', 'xlnk', 'hugepage')
    and may carry options after a colon, as PYNQ_ALLOC_MEMORY does
    (``'sim:size=64M'``); keyword options (**options) override those.
    docs/backends.md lists each backend's options, e.g. size and base_address
    for 'sim', bank for 'zocl'.

    Raises TypeError if spec is not a str, ValueError for an unknown
    backend or option or a bad value, OSError (with errno and path) if the
    backend's device cannot be opened.

        >>> mem = open_memory('sim:size=1M', base_address=0x4000_0000)
        >>> mem.kind, hex(mem.base_address), mem.size
        ('sim', '0x40000000', 1048576)
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, not {type(spec).__name__}")
    kind, from_spec = parse_spec(spec)
    merged: Dict[str, Any] = {**from_spec, **options}
    opener = BACKENDS.get(kind)
    if opener is None:
        raise ValueError(f"unknown memory kind {kind!r}; available: "
                         f"{', '.join(sorted(BACKENDS))}")
    try:
        memory = opener(**merged)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise ValueError(f"{kind!r} memory: {e}") from None
        raise
    _opened_as[memory] = (kind, merged)
    return memory

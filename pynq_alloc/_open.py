"""Opening memories by name: one opener per backend, and `open_memory()`.

An opener takes a backend's options, as values or as a spec's text,
turns text into values (_spec) and finds what was left unsaid, such as
the device node (_probe); the core checks the values and opens the
Memory.  `open_memory()` remembers what each Memory was opened as, so
that another bank of the same device can be opened beside it.
"""
from __future__ import annotations

import difflib
import inspect
import operator
import os
import sys
import threading
import warnings
import weakref
from typing import Any, Callable, Dict, Tuple

from . import _core, _probe
from ._memory_map import human
from ._spec import flag, number, parse_spec, path


def _open_sim(size: Any = 256 << 20, base_address: Any = 0x1000_0000,
              coherence: str = "warn", line_size: Any = 64,
              watch_stores: Any = False) -> _core.Memory:
    return _core._open_sim(base_address=number("base_address", base_address),
                           size=number("size", size),
                           line_size=number("line_size", line_size),
                           coherence=coherence,
                           watch_stores=flag("watch_stores", watch_stores))


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


# Testing only: the real paths of regular files that stand in for a
# u-dma-buf device node (tests/fake_devices.py's make_udmabuf adds them).
# The core refuses any other regular file, which it would sub-allocate
# and zero as if it were the driver's buffer.  Neither an option nor the
# environment reaches this set, so no spec can trip over it.
_udmabuf_file_stand_ins: "set[str]" = set()


def _open_udmabuf(device: Any = "/dev/udmabuf0", sysfs: Any = None) -> _core.Memory:
    device = path("device", device)
    if sysfs is None:
        sysfs = os.path.join("/sys/class/u-dma-buf", os.path.basename(device))
    key = os.path.realpath(device)
    with _udmabuf_lock:
        memory = _udmabuf_memories.get(key)
        if memory is None:
            memory = _core._open_udmabuf(
                device=device, sysfs=path("sysfs", sysfs),
                file_stand_in=key in _udmabuf_file_stand_ins)
            _udmabuf_memories[key] = memory
        return memory


def _open_zocl(device: Any = None, meminfo: Any = "/proc/meminfo",
               bank: Any = 0) -> _core.Memory:
    bank = _core._bank_index(bank, "zocl")
    device = _probe.zocl_device() if device is None else path("device", device)
    # CREATE_BOs that CMA cannot satisfy corrupt kernel memory in zocl: in a
    # bank known to be CMA, the core refuses requests that cannot fit.
    return _core._open_zocl(device=device, meminfo=path("meminfo", meminfo), bank=bank,
                            cma=_probe.zocl_bank_in_cma("/", device, bank))


HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel() -> int:
    """warnings.warn's stacklevel, for the function that calls this one,
    that names the first caller outside this package: the user's line,
    whether it opened the memory or allocated from the default."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and os.path.dirname(
            os.path.abspath(frame.f_code.co_filename)) == _PACKAGE:
        level, frame = level + 1, frame.f_back
    return level


def _open_hugepage(size: Any = None, page_size: Any = 2 << 20, reserve: Any = True,
                   hugepages_dir: Any = HUGEPAGES_DIR,
                   pagemap: Any = "/proc/self/pagemap") -> _core.Memory:
    page_size = number("page_size", page_size)
    if size is None:
        size = 64 << 20 if page_size < 1 << 30 else page_size
    hugepages_dir = path("hugepages_dir", hugepages_dir)
    memory, available, taken, put_back = _core._open_hugepage(
        size=number("size", size), page_size=page_size,
        reserve=flag("reserve", reserve), hugepages_dir=hugepages_dir,
        pagemap=path("pagemap", pagemap))
    if taken:
        setting = os.path.join(hugepages_dir, f"hugepages-{page_size >> 10}kB",
                               "nr_hugepages")
        needed = memory.size // page_size
        text = (f"hugepage memory took {taken} huge page"
                f"{'' if taken == 1 else 's'} of {human(page_size)} "
                f"from system memory: it needs {needed} and {available} "
                f"{'was' if available == 1 else 'were'} free. ")
        if put_back:
            text += (f"It raised {setting} by {taken} for them and could not "
                     f"put it back ({os.strerror(put_back)}): it stays raised "
                     f"until lowered by {taken}.")
        else:
            text += (f"It raised {setting} for them while it opened and put it "
                     "back, which leaves them surplus huge pages: the kernel "
                     "returns them to system memory when this Memory and its "
                     "buffers are gone, or the process ends.")
        warnings.warn(text + " reserve=False takes only free huge pages; "
                      "huge pages reserved beforehand (nr_hugepages, or "
                      "hugepages= at boot) need no raise.", UserWarning,
                      stacklevel=_user_stacklevel())
    return memory


def _open_xlnk(library: Any = _probe.XLNK_LIBRARY,
               maps: Any = "/proc/self/maps") -> _core.Memory:
    return _core._open_xlnk(library=path("library", library), maps=path("maps", maps))


def _xrt_device(value: Any) -> int:
    """xrtDeviceOpen's index: an int from 0 to 2**32 - 1, or its text."""
    try:
        device = int(value, 0) if isinstance(value, str) else operator.index(value)
    except (TypeError, ValueError):
        device = -1
    if isinstance(value, bool) or not 0 <= device < 1 << 32:
        raise ValueError("xrt device must be an index from 0 to 2**32 - 1 (an "
                         f"int, or its text, e.g. '1'); got {value!r}")
    return device


def _open_xrt(device: Any = 0, bank: Any = 0, library: Any = None,
              userptr: Any = None, base_address: Any = None,
              size: Any = None) -> _core.Memory:
    device = _xrt_device(device)
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
    return _core._open_xrt(library=path("library", library or _probe.xrt_library()),
                           device=device, bank=bank, userptr=flag("userptr", userptr),
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

# kind -> the names of its options, in the order its opener takes them.
OPTIONS: Dict[str, Tuple[str, ...]] = {
    kind: tuple(inspect.signature(opener).parameters)
    for kind, opener in BACKENDS.items()}


def _check_options(kind: str, options: Dict[str, Any]) -> None:
    """ValueError for an option that `kind` does not have, listing those it
    has and the nearest one to what was written."""
    known = OPTIONS[kind]
    for name in options:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"{kind!r} memory has no option {name!r}{hint}; "
                             f"its options are {', '.join(known)}")

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

    spec names the backend ('sim', 'zocl', 'udmabuf', 'xlnk', 'xrt',
    'hugepage') and may carry options after a colon, as PYNQ_ALLOC_MEMORY
    does (``'sim:size=64M'``); keyword options (**options) override those.
    docs/backends.md lists each backend's options, e.g. size and base_address
    for 'sim', bank for 'zocl'; a wrong name is an error that lists them.
    Sizes and addresses are ints or text ('4096', '0x1000', '64M', '1G');
    on/off options are bools or text ('1', 'true', 'on', '0', 'off', ...).

    'hugepage', run as root with too few free huge pages (reserve=True,
    the default), takes the rest from system memory: it raises the
    system's nr_hugepages while it takes them and puts it back at once,
    which leaves them surplus huge pages that the kernel gives back to
    system memory when the Memory and its buffers are gone or the process
    ends, however it ends.  It warns (UserWarning) when it does, with the
    figures.  reserve=False takes only free huge pages.

    Raises TypeError if spec is not a str or an option has the wrong
    type, ValueError for an unknown backend or option or a bad value,
    OSError (with errno and path) if the backend's device cannot be
    opened, MemoryError if a simulated memory cannot be mapped.

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
        near = difflib.get_close_matches(kind, sorted(BACKENDS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"unknown memory kind {kind!r}{hint}; available: "
                         f"{', '.join(sorted(BACKENDS))}")
    _check_options(kind, merged)
    memory = opener(**merged)
    _opened_as[memory] = (kind, merged)
    return memory

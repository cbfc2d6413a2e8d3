"""Opening memories by name, and choosing the default one.

A spec names a backend and its options, as `open_memory()` takes them or
as the PYNQ_ALLOC_MEMORY variable spells them: ``sim``,
``sim:size=64M,base_address=0x10000000``.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import operator
import os
import struct
import weakref
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from . import _core

ENV_VAR = "PYNQ_ALLOC_MEMORY"

_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """An int from '4096', '0x1000', '64M' or '1G' (powers of 1024)."""
    t = text.strip().replace("_", "")
    scale = 1
    if t[-1:].upper() in _SUFFIXES and not t.lower().startswith("0x"):
        scale = _SUFFIXES[t[-1].upper()]
        t = t[:-1]
    try:
        return int(t, 0) * scale
    except ValueError:
        raise ValueError(f"not a size or address: {text!r}") from None


def number(name: str, value: Any) -> int:
    """A size or address option: an int, or text as parse_size reads it,
    from 0 to 2**64 - 1.  ValueError naming the value otherwise (floats
    and bools included: 4096.7 bytes is a mistake, not 4096)."""
    if isinstance(value, str):
        n = parse_size(value)
    elif isinstance(value, bool):
        raise ValueError(f"{name} must be a number of bytes, not {value!r}")
    else:
        try:
            n = operator.index(value)
        except TypeError:
            raise ValueError(f"{name} must be a whole number of bytes, "
                             f"not {value!r}") from None
    if not 0 <= n < 1 << 64:
        raise ValueError(f"{name} must be from 0 to 2**64 - 1; got {value!r}"
                         + (f" = {n}" if isinstance(value, str) else ""))
    return n


COHERENCE_MODES = ("off", "warn", "raise")


def _open_sim(size: Any = 256 << 20, base_address: Any = 0x1000_0000,
              coherence: str = "warn", line_size: Any = 64) -> _core.Memory:
    size = number("size", size)
    base = number("base_address", base_address)
    if size <= 0 or base < 0:
        raise ValueError(
            f"the simulated memory needs size > 0 and base_address >= 0; "
            f"got size={size}, base_address={base:#x}")
    if coherence not in COHERENCE_MODES:
        raise ValueError(f"coherence must be 'warn', 'raise' or 'off', not "
                         f"{coherence!r}")
    line = number("line_size", line_size)
    page = os.sysconf("SC_PAGE_SIZE")
    if not 16 <= line <= page or line & (line - 1):
        raise ValueError(f"line_size must be a power of two from 16 to "
                         f"{page} bytes (the page size), not {line_size!r}")
    return _core._open_sim(base_address=base, size=size, line_size=line,
                           coherence=coherence)


# device -> its open Memory: one heap per u-dma-buf buffer, so a second
# open in this process (default_memory() and open_memory('udmabuf'), say)
# gets the same Memory; other processes are kept out by a lock.
_udmabuf_memories: "weakref.WeakValueDictionary[str, _core.Memory]" = \
    weakref.WeakValueDictionary()


def _open_udmabuf(device: str = "/dev/udmabuf0", sysfs: str | None = None) -> _core.Memory:
    device = os.fspath(device)
    if sysfs is None:
        sysfs = os.path.join("/sys/class/u-dma-buf", os.path.basename(device))
    key = os.path.realpath(device)
    memory = _udmabuf_memories.get(key)
    if memory is None:
        memory = _core._open_udmabuf(device=device, sysfs=os.fspath(sysfs))
        _udmabuf_memories[key] = memory
    return memory


ZOCL_NODE = "/dev/dri/renderD128"
# XRT prefers this stable name for the zocl render node when it exists.
ZOCL_BY_PATH = "/dev/dri/by-path/platform*zyxclmm_drm-render"


def zocl_device(root: str = "/") -> str:
    """The zocl render node: XRT's by-path name if present, else renderD128."""
    found = sorted(glob.glob(_under(root, ZOCL_BY_PATH)))
    return found[0] if found else _under(root, ZOCL_NODE)


# sysfs names zocl's platform driver, "zocl-drm" (zocl_drv.c); "zocl" is
# the DRM driver's name, which DRM_IOCTL_VERSION gives.
ZOCL_DRIVERS = ("zocl-drm", "zocl")


def drm_driver(root: str, node: str) -> str | None:
    """The kernel driver of a /dev/dri render node, from sysfs."""
    link = _under(root, f"/sys/class/drm/{os.path.basename(node)}/device/driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


# CREATE_BO carries the memory bank in bits 0-15 of its flags.
ZOCL_BANKS = 1 << 16


def bank_index(value: Any, kind: str = "zocl") -> int:
    """A memory bank index from an int or its text ('1', '0x1')."""
    bank = None
    if isinstance(value, str):
        try:
            bank = int(value.strip(), 0)
        except ValueError:
            pass
    elif not isinstance(value, bool):
        try:
            bank = operator.index(value)
        except TypeError:
            pass
    if bank is None or not 0 <= bank < ZOCL_BANKS:
        raise ValueError(f"{kind} bank must be an int from 0 to {ZOCL_BANKS - 1}"
                         f" (or its text, e.g. '1' or '0x1'); got {value!r}")
    return bank


def zocl_bank_in_cma(root: str, node: str, bank: int) -> bool:
    """Whether zocl is known to give `bank` CMA memory: no xclbin is loaded,
    or the loaded one does not use that bank (zocl_create_bo_ioctl).  False
    when sysfs does not say."""
    from ._zocl_banks import read_banks
    try:
        banks = read_banks(root, node)
    except (OSError, ValueError):
        return False
    return bank not in {b.index for b in banks if b.used}


def _open_zocl(device: str | None = None, meminfo: str = "/proc/meminfo",
               bank: Any = 0) -> _core.Memory:
    bank = bank_index(bank)
    device = zocl_device() if device is None else os.fspath(device)
    # CREATE_BOs that CMA cannot satisfy corrupt kernel memory in zocl: in a
    # bank known to be CMA, the core refuses requests that cannot fit.
    return _core._open_zocl(device=device, meminfo=os.fspath(meminfo), bank=bank,
                            cma=zocl_bank_in_cma("/", device, bank))


def _flag(value: Any) -> bool:
    """An option that is on or off: a bool, or text ('0', 'no', 'off', ...)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "no", "false", "off")
    return bool(value)


HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"


def _open_hugepage(size: Any = None, page_size: Any = 2 << 20, reserve: Any = True,
                   hugepages_dir: str = HUGEPAGES_DIR,
                   pagemap: str = "/proc/self/pagemap") -> _core.Memory:
    page_size = number("page_size", page_size)
    if size is None:
        size = 64 << 20 if page_size < 1 << 30 else page_size
    size = number("size", size)
    if size <= 0 or page_size <= 0:
        raise ValueError(f"hugepage memory needs size > 0 and page_size > 0; "
                         f"got size={size}, page_size={page_size}")
    return _core._open_hugepage(size=size, page_size=page_size,
                                reserve=_flag(reserve),
                                hugepages_dir=os.fspath(hugepages_dir),
                                pagemap=os.fspath(pagemap))


XLNK_LIBRARY = "/usr/lib/libcma.so"


def _open_xlnk(library: str = XLNK_LIBRARY, maps: str = "/proc/self/maps") -> _core.Memory:
    return _core._open_xlnk(library=os.fspath(library), maps=os.fspath(maps))


XRT_LIBRARY = "libxrt_coreutil.so.2"
XRT_DIR = "/opt/xilinx/xrt"        # where XRT installs on x86; XILINX_XRT
# XRT's PCIe driver, as sysfs names it.
XOCL_DRIVER = "xocl"


def xrt_library() -> str:
    """XRT's core library: under $XILINX_XRT/lib or XRT_DIR/lib, else the
    bare name, for dlopen's own search (edge images keep it in /usr/lib)."""
    dirs = [os.environ["XILINX_XRT"]] if os.environ.get("XILINX_XRT") else []
    for d in dirs + [XRT_DIR]:
        path = os.path.join(d, "lib", XRT_LIBRARY)
        if os.path.exists(path):
            return path
    return XRT_LIBRARY


def xrt_cards(root: str = "/") -> List[str]:
    """The sysfs directories of the PCIe functions that xocl drives, by PCIe
    address, which is XRT's order of device indices."""
    pattern = _under(root, f"/sys/bus/pci/drivers/{XOCL_DRIVER}/*:*")
    return sorted(glob.glob(pattern), key=os.path.basename)


def xrt_bank_range(card: str, bank: int) -> Tuple[int, int]:
    """(base_address, size) of a card's bank from the loaded xclbin's
    mem_topology, which xocl shows under its icap; (0, 0) if unknown."""
    from ._zocl_banks import parse_mem_topology
    for path in sorted(glob.glob(os.path.join(card, "icap*", "mem_topology"))):
        try:
            with open(path, "rb") as f:
                banks = parse_mem_topology(f.read())
        except (OSError, ValueError):
            continue
        for b in banks:
            if b.index == bank:
                return b.base_address, b.size
    return 0, 0


def _open_xrt(device: Any = 0, bank: Any = 0, library: str | None = None,
              userptr: Any = None, base_address: Any = None,
              size: Any = None) -> _core.Memory:
    device = int(device, 0) if isinstance(device, str) else operator.index(device)
    if not 0 <= device < 1 << 32:
        raise ValueError(f"xrt device must be an index from 0; got {device}")
    bank = bank_index(bank, "xrt")
    if userptr is None:
        # Edge boards' zocl takes only physically contiguous user memory.
        userptr = not any(f.found for f in probe() if f.kind == "zocl")
    if size is None or base_address is None:
        cards = xrt_cards()
        known = xrt_bank_range(cards[device], bank) if device < len(cards) else (0, 0)
        base_address = known[0] if base_address is None else base_address
        size = known[1] if size is None else size
    size = parse_size(size) if isinstance(size, str) else int(size)
    base = parse_size(base_address) if isinstance(base_address, str) else int(base_address)
    return _core._open_xrt(library=os.fspath(library or xrt_library()),
                           device=device, bank=bank, userptr=_flag(userptr),
                           base_address=base, size=size)


# kind -> function(**options) that opens it.
BACKENDS: Dict[str, Callable[..., _core.Memory]] = {
    "sim": _open_sim,
    "udmabuf": _open_udmabuf,
    "zocl": _open_zocl,
    "hugepage": _open_hugepage,
    "xlnk": _open_xlnk,
    "xrt": _open_xrt,
}


def parse_spec(spec: str) -> tuple[str, Dict[str, str]]:
    """'kind:key=value,key=value' -> (kind, {key: value})."""
    kind, _, rest = spec.strip().partition(":")
    options: Dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad option {item!r} in memory spec {spec!r}: "
                             "expected key=value")
        options[key.strip()] = value.strip()
    return kind.strip(), options


def open_memory(spec: str = "sim", **options: Any) -> _core.Memory:
    """Open a Memory: ``open_memory('sim', size=64 << 20)``.

    spec names the backend ('sim', 'zocl', 'udmabuf', 'xlnk', 'hugepage')
    and may carry options after a colon, as PYNQ_ALLOC_MEMORY does
    (``'sim:size=64M'``); keyword options (**options) override those.
    The README lists each backend's options, e.g. size and base_address
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
        return opener(**merged)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise ValueError(f"{kind!r} memory: {e}") from None
        raise


class Finding(NamedTuple):
    """Whether this machine has what a backend needs, and what was seen.
    `problem`: the backend's device is there but cannot be used; the
    default memory is then this error, never another memory."""
    kind: str
    found: bool
    detail: str
    options: Dict[str, str]
    problem: Optional[OSError] = None


# DRM_IOCTL_VERSION's argument in native layout: three ints, then
# (length, pointer) for the name, the date and the description.
_DRM_VERSION = struct.Struct("@iiiNPNPNP")


def drm_version_name(node: str) -> str:
    """The name the DRM driver of `node` gives itself (DRM_IOCTL_VERSION,
    which every DRM driver answers).  OSError if the node cannot be opened
    or is not a DRM device (ENOTTY)."""
    name = ctypes.create_string_buffer(64)
    arg = bytearray(_DRM_VERSION.pack(0, 0, 0, len(name) - 1,
                                      ctypes.addressof(name), 0, 0, 0, 0))
    # _IOWR('d', 0x00, struct drm_version)
    request = (3 << 30) | (_DRM_VERSION.size << 16) | (ord("d") << 8)
    fd = os.open(node, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, request, arg)
    finally:
        os.close(fd)
    name_len = _DRM_VERSION.unpack(arg)[3]
    return name.value[:name_len].decode("ascii", "replace")


def render_nodes(root: str) -> Dict[str, Tuple[Optional[str], Optional[OSError]]]:
    """Each /dev/dri/renderD* node and its DRM driver, from sysfs or else
    asked of the node itself: (driver, None); (None, None) for a node that
    is no DRM device; (None, error) for one that cannot be asked."""
    found: Dict[str, Tuple[Optional[str], Optional[OSError]]] = {}
    for node in sorted(glob.glob(_under(root, "/dev/dri/renderD*"))):
        driver = drm_driver(root, node)
        if driver is None:
            try:
                driver = drm_version_name(node)
            except OSError as e:
                found[node] = (None, None if e.errno in (errno.ENOTTY, errno.EINVAL)
                               else e)
                continue
        found[node] = (driver, None)
    return found


def _probe_zocl(root: str, nodes: Dict[str, Tuple[Optional[str], Optional[OSError]]]
                ) -> Finding:
    # XRT's by-path name is zocl's own.  A renderD node may be a GPU's,
    # whose ioctls must not receive zocl's, so its driver is checked.
    stable = sorted(glob.glob(_under(root, ZOCL_BY_PATH)))
    if stable:
        return Finding("zocl", True, stable[0], {"device": stable[0]})
    if not nodes:
        return Finding("zocl", False, f"no {_under(root, '/dev/dri/renderD*')}", {})
    seen, problem = [], None
    for node, (driver, error) in nodes.items():
        if driver in ZOCL_DRIVERS:
            return Finding("zocl", True, node, {"device": node})
        name = os.path.basename(node)
        if error is not None:
            problem = problem or OSError(
                error.errno, f"{node} may be zocl's, but sysfs does not name its "
                f"driver and the node cannot be asked: {error.strerror}", node)
            seen.append(f"{name} (driver unknown: {error.strerror})")
        else:
            seen.append(f"{name} ({driver or 'driver unknown'})")
    return Finding("zocl", False, f"no render node of zocl's: {', '.join(seen)}",
                   {}, problem)


def _probe_udmabuf(root: str) -> Finding:
    sysfs_class = _under(root, "/sys/class/u-dma-buf")
    names = sorted(os.listdir(sysfs_class)) if os.path.isdir(sysfs_class) else []
    nodes = [n for n in names if os.path.exists(_under(root, f"/dev/{n}"))]
    if nodes:
        device = _under(root, f"/dev/{nodes[0]}")
        return Finding("udmabuf", True, f"{device} (of {len(nodes)})",
                       {"device": device,
                        "sysfs": os.path.join(sysfs_class, nodes[0])})
    detail = f"no device under {sysfs_class}"
    if names:
        device = _under(root, f"/dev/{names[0]}")
        return Finding("udmabuf", False, detail, {}, OSError(
            errno.ENOENT, f"u-dma-buf has a device {names[0]} (in {sysfs_class}) "
            f"but there is no {device}", device))
    # The driver's default names, where sysfs shows nothing (not mounted).
    loose = sorted(glob.glob(_under(root, "/dev/udmabuf[0-9]*")))
    if loose:
        sysfs = os.path.join(sysfs_class, os.path.basename(loose[0]))
        return Finding("udmabuf", False, detail, {}, OSError(
            errno.ENOENT, f"{loose[0]} is there but {sysfs} is not, so its "
            "buffer's address is not known (is sysfs mounted?)", loose[0]))
    return Finding("udmabuf", False, detail, {})


def probe(root: str = "/") -> List[Finding]:
    """Looks for each backend's device, in the order the default prefers."""
    nodes = render_nodes(root)
    findings = [_probe_zocl(root, nodes), _probe_udmabuf(root)]
    xlnk = _under(root, "/dev/xlnk")
    findings.append(Finding("xlnk", os.path.exists(xlnk),
                            xlnk if os.path.exists(xlnk) else f"no {xlnk}",
                            {"library": _under(root, XLNK_LIBRARY)}))
    cards = xrt_cards(root)
    xocl_nodes = [n for n, (driver, _) in nodes.items() if driver == XOCL_DRIVER]
    if cards or xocl_nodes:
        seen = (f"PCIe card {os.path.basename(cards[0])} (of {len(cards)})"
                if cards else xocl_nodes[0])
        findings.append(Finding("xrt", True, f"{seen}, through XRT's "
                                f"{xrt_library()}", {}))
    else:
        findings.append(Finding("xrt", False, "no PCIe card driven by "
                                f"{XOCL_DRIVER} (XRT's driver)", {}))
    findings.append(Finding("hugepage", False, f"only when asked for "
                            f"({ENV_VAR}=hugepage): it reserves huge pages, "
                            "which changes system settings", {}))
    findings.append(Finding("sim", True, "always available", {}))
    return findings


def choose_default(root: str = "/") -> Tuple[str, Dict[str, str], str]:
    """(kind, options, why) of the default memory: PYNQ_ALLOC_MEMORY if set,
    else the first board backend whose device is present, else sim.  A
    board backend's device that is there but cannot be used is an OSError
    that names it, never a reason to take the next memory: simulated
    addresses handed to a real DMA engine would mean nothing."""
    spec = os.environ.get(ENV_VAR, "").strip()
    if spec:
        kind, options = parse_spec(spec)
        return kind, options, f"{ENV_VAR}={spec}"
    for f in probe(root):
        if f.problem is not None:
            raise OSError(f.problem.errno, f"no default memory: {f.problem.strerror}"
                          f"; set {ENV_VAR} to choose one", f.problem.filename)
        if f.found:
            why = ("no board backend found" if f.kind == "sim"
                   else f"found {f.detail}")
            return f.kind, f.options, why
    raise AssertionError("sim is always found")


def resolve_default() -> _core.Memory:
    """The Memory allocate() uses by default (see choose_default).  A device
    that is present but cannot be opened is an error, not a reason to fall
    back to simulated addresses that real DMA would then use."""
    kind, options, _ = choose_default()
    return open_memory(kind, **options)

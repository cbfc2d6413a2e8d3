"""Finding the devices that back memories, and the default among them.

Everything here reads the file system (/dev, sysfs, the environment) and
opens no Memory: `probe()` says what each backend would use,
`choose_default()` which backend PYNQ_ALLOC_MEMORY or the machine picks.
Paths are taken under a `root`, so that tests can lay out a machine.
"""
from __future__ import annotations

import errno
import glob
import os
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from . import _core
from ._spec import ENV_VAR, parse_spec
from ._zocl_banks import parse_mem_topology, read_banks


def under(root: str, path: str) -> str:
    """An absolute path as it lies below root."""
    return os.path.join(root, path.lstrip("/"))


# ---- zocl: the DRM render node of an edge board's XRT driver ----

ZOCL_NODE = "/dev/dri/renderD128"
# XRT prefers this stable name for the zocl render node when it exists.
ZOCL_BY_PATH = "/dev/dri/by-path/platform*zyxclmm_drm-render"
# sysfs names zocl's platform driver, "zocl-drm" (zocl_drv.c); "zocl" is
# the DRM driver's name, which DRM_IOCTL_VERSION gives.
ZOCL_DRIVERS = ("zocl-drm", "zocl")


def zocl_device(root: str = "/") -> str:
    """The zocl render node: XRT's by-path name if present, else renderD128."""
    found = sorted(glob.glob(under(root, ZOCL_BY_PATH)))
    return found[0] if found else under(root, ZOCL_NODE)


def zocl_bank_in_cma(root: str, node: str, bank: Any) -> bool:
    """Whether zocl is known to give `bank` CMA memory: no xclbin is loaded,
    or the loaded one does not use that bank (zocl_create_bo_ioctl).  False
    when sysfs does not say."""
    try:
        banks = read_banks(root, node)
    except (OSError, ValueError):
        return False
    return bank not in {b.index for b in banks if b.used}


def drm_driver(root: str, node: str) -> str | None:
    """The kernel driver of a /dev/dri render node, from sysfs."""
    link = under(root, f"/sys/class/drm/{os.path.basename(node)}/device/driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def drm_driver_name(node: str) -> str:
    """The name the DRM driver of `node` gives itself (DRM_IOCTL_VERSION).
    OSError if the node cannot be opened, ENOTTY or EINVAL if it is no DRM
    device."""
    return _core._drm_driver_name(node)


def render_nodes(root: str) -> Dict[str, Tuple[Optional[str], Optional[OSError]]]:
    """Each /dev/dri/renderD* node and its DRM driver, from sysfs or else
    asked of the node itself: (driver, None); (None, None) for a node that
    is no DRM device; (None, error) for one that cannot be asked."""
    found: Dict[str, Tuple[Optional[str], Optional[OSError]]] = {}
    for node in sorted(glob.glob(under(root, "/dev/dri/renderD*"))):
        driver = drm_driver(root, node)
        if driver is None:
            try:
                driver = drm_driver_name(node)
            except OSError as e:
                found[node] = (None, None if e.errno in (errno.ENOTTY, errno.EINVAL)
                               else e)
                continue
        found[node] = (driver, None)
    return found


# ---- XRT on PCIe cards (and on edge boards, over zocl) ----

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
    pattern = under(root, f"/sys/bus/pci/drivers/{XOCL_DRIVER}/*:*")
    return sorted(glob.glob(pattern), key=os.path.basename)


def xrt_bank_range(card: str, bank: Any) -> Tuple[int, int]:
    """(base_address, size) of a card's bank from the loaded xclbin's
    mem_topology, which xocl shows under its icap; (0, 0) if unknown."""
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


XLNK_LIBRARY = "/usr/lib/libcma.so"


# ---- what is here, and the default ----

class Finding(NamedTuple):
    """Whether this machine has what a backend needs, and what was seen.
    `problem`: the backend's device is there but cannot be used; the
    default memory is then this error, never another memory."""
    kind: str
    found: bool
    detail: str
    options: Dict[str, str]
    problem: Optional[OSError] = None


def _probe_zocl(root: str, nodes: Dict[str, Tuple[Optional[str], Optional[OSError]]]
                ) -> Finding:
    # XRT's by-path name is zocl's own.  A renderD node may be a GPU's,
    # whose ioctls must not receive zocl's, so its driver is checked.
    stable = sorted(glob.glob(under(root, ZOCL_BY_PATH)))
    if stable:
        return Finding("zocl", True, stable[0], {"device": stable[0]})
    if not nodes:
        return Finding("zocl", False, f"no {under(root, '/dev/dri/renderD*')}", {})
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
    sysfs_class = under(root, "/sys/class/u-dma-buf")
    names = sorted(os.listdir(sysfs_class)) if os.path.isdir(sysfs_class) else []
    nodes = [n for n in names if os.path.exists(under(root, f"/dev/{n}"))]
    if nodes:
        device = under(root, f"/dev/{nodes[0]}")
        return Finding("udmabuf", True, f"{device} (of {len(nodes)})",
                       {"device": device,
                        "sysfs": os.path.join(sysfs_class, nodes[0])})
    detail = f"no device under {sysfs_class}"
    if names:
        device = under(root, f"/dev/{names[0]}")
        return Finding("udmabuf", False, detail, {}, OSError(
            errno.ENOENT, f"u-dma-buf has a device {names[0]} (in {sysfs_class}) "
            f"but there is no {device}", device))
    # The driver's default names, where sysfs shows nothing (not mounted).
    loose = sorted(glob.glob(under(root, "/dev/udmabuf[0-9]*")))
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
    xlnk = under(root, "/dev/xlnk")
    findings.append(Finding("xlnk", os.path.exists(xlnk),
                            xlnk if os.path.exists(xlnk) else f"no {xlnk}",
                            {"library": under(root, XLNK_LIBRARY)}))
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
                            f"({ENV_VAR}=hugepage): as root it takes huge "
                            "pages from system memory", {}))
    findings.append(Finding("sim", True, "always available", {}))
    return findings


def environment_spec() -> Optional[str]:
    """The spec PYNQ_ALLOC_MEMORY gives, or None where it is unset or blank."""
    return os.environ.get(ENV_VAR, "").strip() or None


# The error types that opening a memory raises for what the user gave it.
_BLAMED = (OSError, MemoryError, ValueError, TypeError)


def blame_environment(error: BaseException, spec: str) -> BaseException:
    """The error that opening the memory PYNQ_ALLOC_MEMORY names raised, as
    the same type of error that names the variable first: a notebook
    server or a shell profile may have set it long ago.  An OSError keeps
    its errno (and so its subclass) and its filename."""
    where = (f"{ENV_VAR}={spec!r} chose the default memory (unset it to let "
             "pynq_alloc find it, or correct it)")
    if isinstance(error, OSError) and error.errno is not None:
        return OSError(error.errno, f"{where}: {error.strerror}",
                       *(() if error.filename is None else (error.filename,)))
    base = next((t for t in _BLAMED if isinstance(error, t)), None)
    return error if base is None else base(f"{where}: {error}")


def choose_default(root: str = "/") -> Tuple[str, Dict[str, str], str]:
    """(kind, options, why) of the default memory: PYNQ_ALLOC_MEMORY if set,
    else the first board backend whose device is present, else sim.  A
    board backend's device that is there but cannot be used is an OSError
    that names it, never a reason to take the next memory: simulated
    addresses handed to a real DMA engine would mean nothing."""
    spec = environment_spec()
    if spec is not None:
        try:
            kind, options = parse_spec(spec)
        except ValueError as e:
            raise blame_environment(e, spec) from None
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

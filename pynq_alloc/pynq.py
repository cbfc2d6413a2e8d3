"""PYNQ on pynq_alloc's buffers: after one call, PYNQ's own code makes them.

    import pynq_alloc.pynq
    pynq_alloc.pynq.install()

From then on ``pynq.allocate``, ``pynq.buffer.PynqBuffer`` and every name
that PYNQ's modules imported them under are pynq_alloc's, so the buffers
PYNQ makes for itself (its DMA driver's descriptor rings, its video frames,
``ol.bank1.allocate(...)``, any library's ``pynq.allocate``) are
:class:`pynq_alloc.Buffer`:

- they work on numpy 2 (PYNQ's ``PynqBuffer`` sets ``self.device``, which
  numpy 2 keeps for itself; pynq_alloc keeps PYNQ's device as
  ``buf.pynq_device``);
- ``flush()``/``invalidate()`` of a view ask PYNQ's device for that view's
  exact bytes, once, and nothing at all for coherent buffers; on XRT
  devices the sync covers those bytes, not the whole BO;
- ``freebuffer()`` never unmaps memory under a live view: the buffer is
  marked freed (no device address, no syncs) and its memory goes back to
  PYNQ's device when the last array on it is gone.

Where memory comes from does not change: a PYNQ memory or device still
allocates it (so an XRT kernel's ``ip.call(buf)`` gets the real XRT BO it
needs); a :class:`pynq_alloc.Memory` as ``target`` allocates from
pynq_alloc; and where PYNQ has no device at all (a laptop), the default
target is pynq_alloc's default memory, so PYNQ's drivers run on the
simulated memory.

``uninstall()`` puts back everything ``install()`` replaced.  Importing
this module does not import PYNQ; ``install()`` does.
"""
import importlib
import sys
import threading
import types
from typing import Any, Callable, List, Tuple

from ._core import Buffer, default_memory

__all__ = ["PynqBuffer", "allocate", "install", "installed", "uninstall"]

#: PYNQ's name for the type of its buffers: pynq_alloc's Buffer, whose
#: constructor takes PynqBuffer's arguments.
PynqBuffer = Buffer


def _pynq_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            "pynq_alloc.pynq.install() puts pynq_alloc's buffers inside PYNQ, "
            f"but PYNQ cannot be imported ({e}); install PYNQ first "
            "(pip install pynq)") from e


def _active_target() -> Any:
    """PYNQ's active device; pynq_alloc's default memory where PYNQ has
    none (no device found, or the active device set to None)."""
    device_class = _pynq_module("pynq").Device
    try:
        device = device_class.active_device
    except RuntimeError:
        if device_class.devices:        # an error of a device PYNQ found
            raise
        device = None                   # "No Devices Found"
    return default_memory() if device is None else device


def allocate(shape: Any, dtype: Any = "u4", target: Any = None,
             **kwargs: Any) -> Buffer:
    """``pynq.allocate`` once installed: a Buffer of `shape` and `dtype`
    from `target`.

    `target` is PYNQ's: a device or a memory bank (``ol.PSDDR``), or any
    object with ``allocate(shape, dtype, **kwargs)``, which is asked with
    the arguments the caller gave and nothing more; it may also be a
    :class:`pynq_alloc.Memory`.  None means ``pynq.Device.active_device``,
    or pynq_alloc's default memory where PYNQ has no device.  Raises
    TypeError for a target that cannot allocate, and what the target's
    ``allocate`` raises.

        >>> import pynq_alloc
        >>> buf = allocate((4,), 'u4', target=pynq_alloc.open_memory('sim'))
        >>> buf.device_address is not None
        True
    """
    if target is None:
        target = _active_target()
    method = getattr(target, "allocate", None)
    if not callable(method):
        raise TypeError(
            "target must be a PYNQ device or memory bank, a pynq_alloc "
            "Memory, or another object with an allocate(shape, dtype) "
            f"method; {type(target).__name__} has none")
    buffer: Buffer = method(shape, dtype, **kwargs)
    return buffer


# XRT syncs of exactly the bytes asked for.  PYNQ's XrtDevice syncs the
# whole BO whatever offset and size it is given; XRT's bo.sync takes both.
def _xrt_sync(direction: str, failure: str) -> Callable[..., None]:
    def sync(self: Any, bo: Any, offset: int, ptr: int, size: int) -> None:
        xrt = sys.modules["pynq.pl_server.xrt_device"].pyxrt
        try:
            bo.sync(getattr(xrt.xclBOSyncDirection, direction), size, offset)
        except Exception as e:
            raise RuntimeError(f"{failure}: {e}") from e
    sync.__name__ = sync.__qualname__ = ("flush" if "TO_DEVICE" in direction
                                         else "invalidate")
    sync.__doc__ = (f"XRT's bo.sync({direction}) of the `size` bytes at "
                    "`offset` in `bo` (installed by pynq_alloc.pynq).")
    return sync


_xrt_flush = _xrt_sync("XCL_BO_SYNC_BO_TO_DEVICE", "Buffer Flush Failed")
_xrt_invalidate = _xrt_sync("XCL_BO_SYNC_BO_FROM_DEVICE",
                            "Buffer Invalidate Failed")

# (namespace, name, what was there) for each name install() replaced.
_replaced: List[Tuple[Any, str, Any]] = []
_lock = threading.Lock()


def _replace(namespace: Any, name: str, value: Any) -> None:
    _replaced.append((namespace, name, getattr(namespace, name)))
    setattr(namespace, name, value)


def _keep_theirs_working(original: Any) -> None:
    """Buffers PYNQ made before install() are PYNQ's own PynqBuffers, whose
    methods find their class by its name in pynq.buffer, which is
    pynq_alloc's Buffer now: their views would lose their device address.
    Those methods get the original class under that name."""
    for name, value in list(vars(original).items()):
        if (isinstance(value, types.FunctionType)
                and "PynqBuffer" in value.__code__.co_names):
            scope = dict(value.__globals__, PynqBuffer=original)
            method = types.FunctionType(value.__code__, scope, value.__name__,
                                        value.__defaults__, value.__closure__)
            method.__kwdefaults__ = value.__kwdefaults__
            method.__qualname__ = value.__qualname__
            method.__doc__ = value.__doc__
            _replace(original, name, method)


def install() -> None:
    """Make PYNQ's code use pynq_alloc's buffers (see the module's help).

    Rebinds ``pynq.allocate``, ``pynq.buffer.allocate`` and
    ``pynq.buffer.PynqBuffer``, every other name under which an imported
    PYNQ module holds either, and the syncs of PYNQ's XRT devices.
    Modules PYNQ imports later find pynq_alloc's at their source.  Calling
    it again does nothing.  Raises ImportError if PYNQ cannot be imported.

        >>> import pynq_alloc.pynq
        >>> pynq_alloc.pynq.install()         # doctest: +SKIP
    """
    # Importing pynq imports its XRT device module where XRT is installed.
    buffer_module = _pynq_module("pynq.buffer")
    with _lock:
        if _replaced:
            return
        theirs: List[Tuple[Any, Any]] = [
            (buffer_module.PynqBuffer, PynqBuffer),
            (buffer_module.allocate, allocate)]
        for module_name, module in sorted(sys.modules.items()):
            if module is None or not (module_name == "pynq"
                                      or module_name.startswith("pynq.")):
                continue
            for name, value in list(vars(module).items()):
                for original, ours in theirs:
                    if value is original:
                        _replace(module, name, ours)
        _keep_theirs_working(theirs[0][0])
        xrt_module = sys.modules.get("pynq.pl_server.xrt_device")
        device_class = getattr(xrt_module, "XrtDevice", None)
        if device_class is not None:
            _replace(device_class, "flush", _xrt_flush)
            _replace(device_class, "invalidate", _xrt_invalidate)


def uninstall() -> None:
    """Put back everything install() replaced, in reverse order.  Buffers
    made meanwhile stay pynq_alloc Buffers.  Does nothing if not
    installed."""
    with _lock:
        while _replaced:
            namespace, name, original = _replaced.pop()
            setattr(namespace, name, original)


def installed() -> bool:
    """True between install() and uninstall()."""
    return bool(_replaced)

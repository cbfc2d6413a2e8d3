"""pynq_alloc: physically contiguous numpy arrays for FPGA DMA.

    from pynq_alloc import allocate
    buf = allocate(shape=(5,), dtype='u4')
    buf[:] = range(5)
    buf.flush()                 # CPU writes -> visible to the device
    ip.transfer(buf.device_address, buf.nbytes)
    buf.invalidate()            # device writes -> visible to the CPU
"""
import importlib.util as _util


def _missing_core() -> ImportError:
    """What to do when this copy has no compiled core: it is a source
    checkout that the current directory put first on sys.path (python -m,
    python -c and the interactive interpreter do), ahead of any installed
    copy.  An editable install builds the core into the checkout."""
    import os
    import sys
    from importlib.machinery import PathFinder
    here = os.path.dirname(os.path.abspath(__file__))
    parent = os.path.dirname(here)
    others = [p for p in sys.path
              if os.path.abspath(p or os.curdir) != parent]
    installed = PathFinder.find_spec(__name__, others)
    where = (f"; the copy installed at {os.path.dirname(installed.origin)} "
             "is what runs from any other directory"
             if installed is not None and installed.origin else "")
    return ImportError(
        f"pynq_alloc's compiled core is not in {here}: this is the source "
        "checkout, which comes before any installed copy on sys.path (as the "
        "current directory does under python -m, python -c and the "
        f"interactive interpreter){where}.  To run the checkout, install it "
        "in editable mode, which builds the core into it: pip install -e .  "
        "(again after changing a C source).  Or run from another directory, "
        "or use the venv's pytest script rather than "
        "python -m pytest.", name=__name__, path=here)


if _util.find_spec(__name__ + "._core") is None:
    raise _missing_core()
from ._core import Allocation, Buffer, Memory, allocate, default_memory
from ._core import _set_default_resolver, _set_target_resolver
from ._coherence import (CoherenceError, CoherenceWarning, EdgeLineWarning,
                         Hazard)
from ._inventory import BufferInfo
from ._open import open_memory
from ._memory_map import memory_map
from ._resolvers import memory_for as _memory_for, resolve_default as _resolve_default
from ._tracing import trace, trace_from_environment as _trace_env

__version__ = "0.1.0"
__all__ = ["Allocation", "Buffer", "BufferInfo", "CoherenceError",
           "CoherenceWarning", "EdgeLineWarning", "Hazard", "Memory", "allocate",
           "default_memory", "memory_map", "open_memory", "trace"]

_set_default_resolver(_resolve_default)
_set_target_resolver(_memory_for)
_trace_env()

"""pynq_alloc: physically contiguous numpy arrays for FPGA DMA.

    from pynq_alloc import allocate
    buf = allocate(shape=(5,), dtype='u4')
    buf[:] = range(5)
    buf.flush()                 # CPU writes -> visible to the device
    ip.transfer(buf.device_address, buf.nbytes)
    buf.invalidate()            # device writes -> visible to the CPU
"""
import importlib.util as _util

if _util.find_spec(__name__ + "._core") is None:
    import os as _os
    raise ImportError(
        f"pynq_alloc's compiled core is missing from {_os.path.dirname(__file__)}: "
        "this looks like the source checkout. Install the package "
        "(pip install .) and run from another directory, or build in place "
        "with: python setup.py build_ext --inplace")
from ._core import Allocation, Buffer, Memory, allocate, default_memory
from ._core import _set_default_resolver, _set_target_resolver
from ._coherence import CoherenceError, CoherenceWarning, Hazard
from ._inventory import BufferInfo
from ._open import open_memory
from ._memory_map import memory_map
from ._resolvers import memory_for as _memory_for, resolve_default as _resolve_default
from ._tracing import trace, trace_from_environment as _trace_env

__version__ = "0.1.0"
__all__ = ["Allocation", "Buffer", "BufferInfo", "CoherenceError",
           "CoherenceWarning", "Hazard", "Memory", "allocate",
           "default_memory", "memory_map", "open_memory", "trace"]

_set_default_resolver(_resolve_default)
_set_target_resolver(_memory_for)
_trace_env()

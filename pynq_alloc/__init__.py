"""pynq_alloc: physically contiguous numpy arrays for FPGA DMA.

    from pynq_alloc import allocate
    buf = allocate(shape=(5,), dtype='u4')
    buf[:] = range(5)
    buf.flush()                 # CPU writes -> visible to the device
    ip.transfer(buf.device_address, buf.nbytes)
    buf.invalidate()            # device writes -> visible to the CPU
"""
from ._core import Allocation, Buffer, Memory, allocate, default_memory
from ._core import _set_default_resolver
from ._open import open_memory, resolve_default as _resolve_default

__version__ = "0.1.0"
__all__ = ["Allocation", "Buffer", "Memory", "allocate", "default_memory",
           "open_memory"]

_set_default_resolver(_resolve_default)

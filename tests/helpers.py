"""Helpers for the tests, independent of pynq_alloc's own code."""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

MiB = 1 << 20
BASE = 0x1000_0000


def device_bytes(buf):
    """What the device sees of buf's whole allocation."""
    alloc_start = buf.device_address - buf.offset
    data = buf.memory.device_read(alloc_start, allocation_size(buf))
    return np.frombuffer(data, np.uint8)


def allocation_size(buf):
    """Bytes in buf's Allocation (the root of its base chain)."""
    base = buf
    while isinstance(base, np.ndarray):
        base = base.base
    return base.size


def byte_span(view):
    """[lo, hi) byte offsets from the data pointer that a view touches,
    worked out independently of pynq_alloc."""
    if view.size == 0:
        return 0, 0
    lo = hi = 0
    for n, s in zip(view.shape, view.strides):
        if s > 0:
            hi += s * (n - 1)
        else:
            lo += s * (n - 1)
    return lo, hi + view.itemsize


def run_python(code, env=None, timeout=60):
    """Runs code in a fresh interpreter; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.pop("PYNQ_ALLOC_MEMORY", None)
    full_env.update(env or {})
    # Not from the checkout, whose pynq_alloc/ would shadow the installed one.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=tempfile.gettempdir())

"""Helpers for the tests, independent of pynq_alloc's own code."""
import ctypes
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback

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


def physical_addresses(virtual_address, nbytes):
    """Physical address of each 4 KiB page of a CPU range, read from
    /proc/self/pagemap here, independently of pynq_alloc (needs root)."""
    first, last = virtual_address // 4096, (virtual_address + nbytes - 1) // 4096
    for page in range(first, last + 1):     # present before it is looked up
        ctypes.string_at(max(page * 4096, virtual_address), 1)
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        entries = np.frombuffer(f.read((last - first + 1) * 8), "<u8")
    assert (entries >> np.uint64(63)).all(), "a page is not present"
    return (entries & np.uint64((1 << 55) - 1)) * np.uint64(4096)


def assert_physically_contiguous(buf):
    """buf's device address is its physical address, page after page."""
    va = buf.virtual_address
    pa = physical_addresses(va, max(buf.nbytes, 1))
    first_page_va = va - va % 4096
    expected = (np.arange(len(pa), dtype=np.uint64) * np.uint64(4096)
                + np.uint64(buf.device_address - (va - first_page_va)))
    assert np.array_equal(pa, expected)


def random_view(data, arr):
    """A hypothesis-drawn view of arr: any slice of every axis, maybe
    transposed."""
    from hypothesis import strategies as st
    index = []
    for n in arr.shape:
        start = data.draw(st.integers(-n, n))
        stop = data.draw(st.integers(-n, n))
        step = data.draw(st.integers(-3, 3).filter(bool))
        index.append(slice(start, stop, step))
    v = arr[tuple(index)]
    if data.draw(st.booleans()):
        v = v.transpose(data.draw(st.permutations(range(v.ndim))))
    return v


def worker_sum(n):
    """A multiprocessing worker's job: allocate, fill, sum.  Here, so that
    spawned workers can import it."""
    from pynq_alloc import allocate
    b = allocate(n, "u4")
    b[:] = np.arange(n)
    return int(b.sum()), b.memory.kind


def under_asan():
    """Whether AddressSanitizer runs in this process (CI's sanitizer pass
    preloads it): its shadow memory makes address-space limits meaningless."""
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


def in_child(work, timeout=30):
    """Runs work() in a forked child; returns what it returned, or raises
    AssertionError with the child's traceback.  A child that hangs is
    killed and fails the test."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child
        os.close(read_end)
        try:
            result = ("ok", work())
        except BaseException as e:                  # noqa: B902
            result = ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        with os.fdopen(write_end, "wb") as f:
            pickle.dump(result, f)
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child hung for {timeout} s")
        time.sleep(0.01)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    assert data, "the child died without a word"
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError(f"in the child: {value}")
    return value


def longest_stall(call):
    """Runs call() in a thread and returns the longest this thread waited
    for its turn meanwhile: about the call's length if it held the GIL."""
    worker = threading.Thread(target=call)
    longest, last = 0.0, time.monotonic()
    worker.start()
    while worker.is_alive():
        now = time.monotonic()
        longest, last = max(longest, now - last), now
        time.sleep(0.001)
    return longest

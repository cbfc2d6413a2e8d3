"""Python code that the glue runs (a __bool__, a getter, a __del__) can free
or change what the glue holds.  Each test here is a program that crashed
the interpreter when the glue kept a borrowed reference across such code;
each runs in a fresh interpreter, so a crash fails the test, not the run.
"""
import textwrap

from helpers import run_python

PRELUDE = """
import gc, sys, threading, time
import numpy as np
from numpy.lib.stride_tricks import as_strided
from pynq_alloc import open_memory
mem = open_memory("sim", size=64 << 20)
"""


def run(body, timeout=60):
    result = run_python(PRELUDE + textwrap.dedent(body), timeout=timeout)
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout.split()


def test_a_cache_whose_truth_test_deletes_the_pointer():
    # PYNQ's frame-cache protocol: freebuffer() reads `pointer` and
    # `return_to`, tests them, then calls return_pointer(pointer).  This
    # cache's __bool__ deletes both from the buffer's __dict__ first.
    out = run("""
    returned = []
    class Cache:
        def return_pointer(self, pointer):
            returned.append(pointer.device_address)
        def __bool__(self):
            del buf.__dict__["pointer"], buf.__dict__["return_to"]
            gc.collect()
            return True
    buf = mem.allocate(1024, cache=Cache())
    address = buf.device_address
    buf.freebuffer()
    print(returned == [address], buf.freed)
    """)
    # The cache got its pointer (held across the truth test), and the
    # buffer was handed back to it rather than freed.
    assert out == ["True", "False"]


def test_a_pointer_whose_truth_test_replaces_itself():
    out = run("""
    class Pointer:
        def __bool__(self):
            buf.__dict__["pointer"] = None
            return True
    class Cache:
        got = None
        def return_pointer(self, pointer):
            Cache.got = type(pointer).__name__
    buf = mem.allocate(16, cache=Cache())
    buf.__dict__["pointer"] = Pointer()
    buf.freebuffer()
    print(Cache.got, buf.pointer)
    """)
    assert out == ["Pointer", "0"]


def test_a_finalizer_in_the_roots_dict_that_lists_buffers():
    # The root's __dict__ is cleared while it dies; a finalizer there that
    # lists the memory (or makes a MemoryError, whose message lists live
    # buffers) must not find the dying buffer and revive it.  Its memory
    # is still held then (the Allocation goes right after), so it is
    # listed, without a shape.
    out = run("""
    seen = []
    class Spy:
        def __del__(self):
            info, = mem.buffers()
            seen.append(info.shape)
            try:
                mem.allocate(1 << 40)
            except MemoryError as e:
                seen.append("1 live buffer of this process holds 4096" in str(e))
    buf = mem.allocate(1024)
    buf.spy = Spy()
    del buf
    gc.collect()
    print(*seen, mem.stats()["buffers"], mem.buffers())
    """)
    assert out == ["None", "True", "0", "[]"]


def test_a_getter_in_the_base_chain_that_drops_the_chain():
    # numpy's as_strided-style chains go through objects that carry only
    # __array_interface__ and `base`.  Here the last object's getter drops
    # the link that kept the middle of the chain alive.
    out = run("""
    class Link:
        def __init__(self, buf, base, on_get=None):
            self._buf, self._base, self._on_get = buf, base, on_get
        @property
        def __array_interface__(self):
            if self._on_get is not None:
                self._on_get()
            return self._buf.__array_interface__
        @property
        def base(self):
            return self._base
    buf = mem.allocate(1024)
    first = Link(buf, None)
    def drop():
        first._base = None
        gc.collect()
    middle = np.asarray(Link(buf, buf, drop))
    first._base = middle
    view = np.asarray(first).view(type(buf))
    del middle
    for _ in range(3):
        print(view.device_address in (None, buf.device_address))
    """)
    assert out == ["True"] * 3


def test_a_flush_without_the_gil_outlives_the_last_reference():
    # A flush long enough to run without the GIL, of a view whose only
    # path to its memory is a link another thread drops meanwhile.
    out = run("""
    class Link:
        def __init__(self, buf):
            self._buf = buf
        @property
        def __array_interface__(self):
            return self._buf.__array_interface__
        @property
        def base(self):
            return self._buf
    holder = Link(mem.allocate(32 << 20, "u1", cacheable=True))
    holder._buf[:] = 1
    view = np.asarray(holder).view(type(holder._buf))
    errors = []
    def flush():
        for _ in range(20):
            try:
                view.flush()
            except ValueError as e:
                errors.append(str(e))
    worker = threading.Thread(target=flush)
    worker.start()
    time.sleep(0.002)
    holder._buf = None      # the Link is now the view's only way in
    worker.join()
    del view, holder
    gc.collect()
    # Once the link is dropped the view is no longer device memory.
    print(all("not in device memory" in e for e in errors),
          mem.stats()["used"])
    """)
    assert out == ["True", "0"]


def test_a_bank_given_as_a_str_subclass_runs_none_of_its_methods():
    # The bank's text is read as int() reads it; a str subclass's own
    # strip() (which here returns no str at all) is never called.
    out = run("""
    from pynq_alloc import _core
    class Text(str):
        def strip(self, *args):
            return 42
    print(_core._bank_index(Text(" 0x10 "), "zocl"),
          _core._bank_index(" 3\\n", "zocl"))
    try:
        _core._bank_index(Text("0x10000"), "zocl")
    except ValueError as e:
        print("ValueError" if "'0x10000'" in str(e) else e)
    """)
    assert out == ["16", "3", "ValueError"]

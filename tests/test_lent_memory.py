"""Buffers over memory that pynq_alloc did not allocate (docs/contract.md,
"Memory lent by its owner"): what PYNQ's devices make with
PynqBuffer(shape, dtype, buffer=, device=, device_address=, bo=,
coherent=), and what PYNQ's video driver makes with .view() and a
device_address.  PYNQ itself is not needed here: the device below records
calls as PYNQ's devices receive them (flush(bo, offset, vaddr, nbytes))."""
import gc
import weakref

import numpy as np
import pytest

from helpers import run_python
from pynq_alloc import Buffer, allocate

ADDRESS = 0x1_2340_0000


class Device:
    """A PYNQ device as a buffer sees it: it syncs what it lent."""

    def __init__(self):
        self.calls = []

    def flush(self, bo, offset, vaddr, nbytes):
        self.calls.append(("flush", bo, offset, vaddr, nbytes))

    def invalidate(self, bo, offset, vaddr, nbytes):
        self.calls.append(("invalidate", bo, offset, vaddr, nbytes))


class Cache:
    """PYNQ's frame caches: freeing a frame's buffer hands its pointer back."""

    def __init__(self):
        self.returned = []

    def return_pointer(self, pointer):
        self.returned.append(pointer)


def lent(shape=(1024, 1024), dtype="u4", coherent=False, **kwargs):
    device = Device()
    bo = object()           # an XRT bo is an object, a mock's is an int
    buf = Buffer(shape, dtype, device=device, bo=bo, coherent=coherent,
                 device_address=ADDRESS, **kwargs)
    return buf, device, bo


def test_the_callers_device_bo_and_coherence_are_reported_as_given():
    buf, device, bo = lent()
    assert type(buf) is Buffer
    assert buf.device_address == buf.physical_address == ADDRESS
    assert buf.bo is bo and buf.pynq_device is device
    assert buf.coherent is False and buf.cacheable is True
    assert buf.offset == 0 and buf.freed is False
    coherent, _, _ = lent(coherent=True)
    assert coherent.coherent is True and coherent.cacheable is False


@pytest.mark.skipif(np.__version__ < "2", reason="ndarray.device is numpy 2's")
def test_numpy_keeps_its_own_device_attribute():
    buf, _, _ = lent()
    assert buf.device == "cpu"


# shape, dtype, index, offset of the view's first element, its byte span
VIEWS = {
    "whole": ((1024,), "u4", (), 0, 4096),
    "row": ((1024, 1024), "u4", (1,), 4096, 4096),
    "part of a row": ((1024, 1024), "u4", (1, slice(512, None)), 6144, 2048),
    "column": ((8, 16), "u2", (slice(None), 3), 6, 7 * 32 + 2),
    "every other": ((64,), "u8", (slice(1, None, 2),), 8, 63 * 8 - 8 + 8),
}


@pytest.mark.parametrize("name", VIEWS)
def test_views_have_exact_addresses_and_sync_exactly_their_bytes(name):
    shape, dtype, index, offset, span = VIEWS[name]
    buf, device, bo = lent(shape, dtype)
    view = buf[index]
    assert type(view) is Buffer
    assert view.device_address == ADDRESS + offset
    assert view.offset == offset and view.bo is bo
    view.flush()
    view.invalidate()
    vaddr = buf.ctypes.data + offset
    assert device.calls == [("flush", bo, offset, vaddr, span),
                            ("invalidate", bo, offset, vaddr, span)]


def test_a_reversed_view_syncs_from_its_lowest_byte():
    buf, device, bo = lent((100,), "u4")
    view = buf[80:9:-1]                     # elements 80 down to 10
    assert view.device_address == ADDRESS + 80 * 4
    view.flush()
    assert device.calls == [("flush", bo, 40, buf.ctypes.data + 40, 71 * 4)]


def test_coherent_and_empty_buffers_ask_the_device_nothing():
    buf, device, _ = lent(coherent=True)
    for view in (buf, buf[3], buf[1:2, 5:9]):
        view.flush(), view.invalidate(), view.sync_to_device()
        view.sync_from_device()
    empty, device2, _ = lent((16,), "u1")
    empty[4:4].flush()
    empty[4:4].invalidate()
    assert device.calls == device2.calls == []


def test_a_device_error_reaches_the_caller():
    class Refusing(Device):
        def flush(self, *args):
            raise RuntimeError("Buffer Flush Failed: no")
    buf = Buffer((4,), "u4", device=Refusing(), device_address=ADDRESS)
    with pytest.raises(RuntimeError, match="Flush Failed"):
        buf.flush()


def test_memory_without_a_device_cannot_be_synced_and_says_why():
    buf = Buffer((4,), "u4", device_address=ADDRESS)
    with pytest.raises(ValueError, match=r"no device was given to sync it.*"
                       r"device="):
        buf.flush()
    assert buf.bo == 0 and buf.pynq_device is None     # PYNQ's defaults


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="needs its device_address=.*"
                       "allocate"):
        Buffer((4,), "u4")
    with pytest.raises(ValueError, match="device_address must be an address"):
        Buffer((4,), "u4", device_address=-1)
    with pytest.raises(TypeError, match="device_address must be an int, not "
                       "str"):
        Buffer((4,), "u4", device_address="0x1000")
    with pytest.raises(TypeError, match="coherent must be a bool .*not str"):
        Buffer((4,), "u4", device_address=0, coherent="False")
    with pytest.raises(TypeError):                      # ndarray's own
        Buffer((4,), "u4", device_address=0, colour="red")


def test_pynq_alloc_memory_is_not_wrapped_twice(mem):
    own = allocate(16, "u1", target=mem)
    with pytest.raises(ValueError, match="pynq_alloc's own already"):
        Buffer((16,), "u1", buffer=own, device_address=0)


def test_the_owner_lives_as_long_as_any_array_on_its_memory():
    owner = np.arange(64, dtype="u1")
    alive = weakref.ref(owner)
    buf = Buffer((32,), "u1", buffer=owner, offset=16, device_address=ADDRESS)
    view = buf[8:]
    del owner, buf
    gc.collect()
    assert alive() is not None and view[0] == 24
    del view
    gc.collect()
    assert alive() is None


def test_freebuffer_marks_the_memory_freed_but_never_releases_it_under_a_view():
    owner = np.zeros(4096, "u1")
    alive = weakref.ref(owner)
    buf, device, _ = lent((4096,), "u1", buffer=owner)
    del owner
    view = buf[100:200]
    buf.freebuffer()
    assert buf.freed and view.freed
    assert buf.device_address is None and view.device_address is None
    assert buf.coherent is None and buf.bo is None
    for sync in (buf.flush, view.invalidate):
        with pytest.raises(ValueError, match="was freed"):
            sync()
    view[:] = 7                             # still the owner's memory
    gc.collect()
    assert alive() is not None and device.calls == []
    buf.freebuffer()                        # again: nothing
    del buf, view, sync
    gc.collect()
    assert alive() is None


def test_a_view_does_not_free_its_root():
    buf, _, _ = lent((64,), "u1")
    buf[8:].freebuffer()
    assert not buf.freed and buf.device_address == ADDRESS


def test_frames_go_back_to_their_cache_once_by_freebuffer_with_or_collection():
    cache = Cache()
    freed, _, _ = lent((16,), "u1")
    freed.pointer, freed.return_to = "frame 1", cache
    freed.freebuffer()
    freed.freebuffer()
    with lent((16,), "u1")[0] as in_block:
        in_block.pointer, in_block.return_to = "frame 2", cache
    collected, _, _ = lent((16,), "u1")
    collected.pointer, collected.return_to = "frame 3", cache
    del collected
    gc.collect()
    del freed, in_block
    gc.collect()
    assert cache.returned == ["frame 1", "frame 2", "frame 3"]


def test_pynq_alloc_frames_go_back_to_their_cache_when_collected(mem):
    cache = Cache()
    buf = allocate(64, "u1", target=mem, cache=cache)
    pointer = buf.pointer
    del buf
    gc.collect()
    assert cache.returned == [pointer]
    again = allocate(64, "u1", target=mem, pointer=pointer, cache=cache)
    assert again.device_address is not None


def test_a_cache_that_raises_on_collection_is_reported_not_fatal():
    code = """
import gc, numpy as np
from pynq_alloc import Buffer
class Broken:
    def return_pointer(self, pointer):
        raise RuntimeError("cache is full")
buf = Buffer((4,), "u4", device_address=0x1000)
buf.pointer, buf.return_to = 7, Broken()
del buf
gc.collect()
print("survived")
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "survived" in result.stdout
    assert "cache is full" in result.stderr


def test_a_video_frame_viewed_as_a_buffer_takes_the_address_it_is_given():
    frame_memory = np.zeros((4, 64), "u1")
    frame = frame_memory.view(Buffer)
    assert frame.device_address is None
    cache = Cache()
    frame.pointer, frame.return_to = 0xF00, cache    # PYNQ's order
    frame.device_address = 0x3000_0000
    assert frame[1, 8:].device_address == 0x3000_0000 + 72
    with pytest.raises(AttributeError, match="follows its root"):
        frame[1].device_address = 0
    frame.device_address = 0x3100_0000                 # the root may move
    assert frame[2].device_address == 0x3100_0000 + 128
    del frame
    gc.collect()
    assert cache.returned == [0xF00]


def test_pynq_alloc_addresses_cannot_be_set(mem):
    own = allocate(16, "u1", target=mem)
    for target in (own, own[4:], np.asarray(own).view(Buffer)):
        with pytest.raises(AttributeError, match="cannot be set"):
            target.device_address = 0


def test_the_memory_attribute_records_what_the_owner_sets(mem):
    buf, _, _ = lent((16,), "u1")
    buf.memory = "bank 1"                   # PYNQ's XrtMemory does this
    assert buf.memory == buf[2:].memory == "bank 1"
    own = allocate(16, "u1", target=mem)
    assert own.memory is mem
    with pytest.raises(AttributeError, match="cannot be set"):
        own.memory = "bank 1"


def test_results_are_plain_arrays_and_in_place_results_stay_buffers():
    buf, _, _ = lent((8,), "u4")
    buf[:] = 1
    result = buf + 1
    assert type(result) is np.ndarray
    buf += 1
    assert type(buf) is Buffer and buf.device_address == ADDRESS
    assert buf.tolist() == [2] * 8


def test_a_device_that_drops_the_buffer_while_it_syncs_does_not_crash():
    code = """
import gc
from pynq_alloc import Buffer
held = {}
class Dropping:
    def flush(self, bo, offset, vaddr, nbytes):
        held.clear()            # the last references to the buffer and view
        gc.collect()
        print("flushed", offset, nbytes)
buf = Buffer((64,), "u1", device=Dropping(), bo=1, device_address=0x1000)
held["view"] = buf[8:16]
del buf
held["view"].flush()
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "flushed 8 8" in result.stdout


def test_pickles_and_copies_are_plain_arrays():
    import copy
    import pickle
    buf, _, _ = lent((8,), "u4")
    buf[:] = range(8)
    for copied in (pickle.loads(pickle.dumps(buf)), copy.deepcopy(buf)):
        assert type(copied) is np.ndarray and copied.tolist() == list(range(8))

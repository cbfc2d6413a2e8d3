"""Buffer attributes and views: exact addresses for every view numpy can
make, read-only attributes, and no direct construction."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import random_view

import pynq_alloc
from pynq_alloc import Buffer, allocate


def test_contract_view_addresses(mem):
    m = allocate((1024, 1024), "u4", target=mem)
    assert m[1].device_address == m.device_address + 4096
    assert m[1, 512:].device_address == m.device_address + 6144
    assert type(m[1]) is Buffer


def test_attributes_of_a_root_buffer(mem):
    b = allocate(10, "u4", target=mem)
    iface = b.__array_interface__["data"][0]
    assert b.virtual_address == iface
    assert b.physical_address == b.device_address
    assert b.offset == 0
    assert b.memory is mem
    assert b.freed is False
    assert isinstance(b.bo, int)
    assert b.coherent is True and b.cacheable is False     # PYNQ's default
    assert mem.base_address <= b.device_address < mem.base_address + mem.size


def test_views_keep_exact_addresses(mem):
    b = allocate((8, 16), "u2", target=mem)
    views = [b[3], b[:, 5], b[2:6, 1:9:2], b[::-1], b[::-1, ::-3], b.T,
             b.reshape(16, 8)[5:], b.ravel()[17:], b.view("u1")[3:],
             b[..., 7], b[np.newaxis, 4]]
    for v in views:
        assert type(v) is Buffer
        delta = v.__array_interface__["data"][0] - b.virtual_address
        assert v.device_address == b.device_address + delta
        assert v.offset == delta
        assert v.virtual_address == b.virtual_address + delta
        assert v.memory is mem and v.bo == b.bo


def test_views_of_views_and_through_plain_arrays(mem):
    b = allocate(100, "u1", target=mem)
    v = b[10:][5:][1::2]
    assert v.device_address == b.device_address + 16
    # A plain ndarray in the middle of the chain does not lose the address.
    again = np.asarray(b)[40:].view(Buffer)
    assert again.device_address == b.device_address + 40


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_views_report_their_data_pointer(data):
    mem = pynq_alloc.open_memory("sim", size=1 << 20)
    b = allocate((6, 7, 5), "i4", target=mem)
    v = random_view(data, b)
    delta = v.__array_interface__["data"][0] - b.virtual_address
    assert v.device_address == b.device_address + delta


@pytest.mark.parametrize("name", ["device_address", "physical_address",
                                  "virtual_address", "offset", "coherent",
                                  "cacheable", "bo", "memory", "freed"])
def test_attributes_are_read_only(mem, name):
    b = allocate(4, target=mem)
    with pytest.raises(AttributeError):
        setattr(b, name, 0)


def test_buffer_cannot_be_constructed(mem):
    with pytest.raises(TypeError, match="allocate"):
        Buffer((3,))
    with pytest.raises(TypeError):
        np.ndarray.__new__(Buffer, (3,))


def test_uncached_buffers_are_coherent(mem):
    b = allocate(4, target=mem, cacheable=False)
    assert b.coherent is True and b.cacheable is False
    assert b[1:].coherent is True


def test_cacheable_buffers_on_the_sim_are_not_coherent(mem):
    b = allocate(4, target=mem, cacheable=True)
    assert b.coherent is False and b.cacheable is True
    assert b[1:].coherent is False


def test_plain_arrays_viewed_as_buffer_have_no_address():
    x = np.arange(10).view(Buffer)
    assert x.device_address is None and x.physical_address is None
    assert x.coherent is None and x.cacheable is None and x.bo is None
    assert x.memory is None and x.offset is None and x.freed is False
    assert x.virtual_address == x.__array_interface__["data"][0]


def test_repr_is_numpy_like(mem):
    b = allocate(3, "u1", target=mem)
    b[:] = [1, 2, 3]
    assert repr(b) == "Buffer([1, 2, 3], dtype=uint8)"
    assert "sim" in repr(mem)


def test_dtype_strings_in_turn_give_their_own_dtypes(mem):
    # allocate() remembers the last dtype string it parsed; each string
    # still gives its own dtype, and a bad one is still refused.
    for spec in ("u4", "f8", "u4", "S", "<i2", "f8"):
        b = allocate(3, spec, target=mem)
        assert b.dtype == np.empty(3, spec).dtype
    with pytest.raises(TypeError, match="Python objects"):
        allocate(3, "O", target=mem)
    with pytest.raises(TypeError):
        allocate(3, "no such dtype", target=mem)
    assert allocate(3, "f8", target=mem).dtype == np.float64


def test_array_wrap_takes_numpys_arguments(mem):
    b = allocate(4, "u4", target=mem)
    plain = np.arange(4, dtype="u4")
    wrapped = b.__array_wrap__(plain)
    assert type(wrapped) is np.ndarray and wrapped is plain
    assert b.__array_wrap__(plain, None, False) is plain
    zero_d = np.array(5, dtype="u4")
    assert type(b.__array_wrap__(zero_d, None, True)) is np.uint32
    assert type(b.__array_wrap__(array=zero_d, return_scalar=False)) is np.ndarray
    assert b.__array_wrap__(b) is b                 # out= in device memory
    with pytest.raises(TypeError, match="ndarray"):
        b.__array_wrap__([1, 2])
    with pytest.raises(TypeError, match="missing"):
        b.__array_wrap__()
    with pytest.raises(TypeError, match="unexpected keyword"):
        b.__array_wrap__(plain, colour=1)
    with pytest.raises(TypeError, match="multiple values"):
        b.__array_wrap__(plain, array=plain)
    with pytest.raises(TypeError, match="at most 3"):
        b.__array_wrap__(plain, None, True, 4)

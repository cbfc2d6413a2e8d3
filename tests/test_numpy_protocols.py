"""A Buffer in numpy's subclass protocols (__array_priority__,
__array_wrap__) and its device_address, on every path that reaches them:
operands of every kind, out= arguments, and every shape of base chain."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from helpers import BASE, MiB
from pynq_alloc import Buffer, allocate, open_memory


@pytest.fixture
def b(mem):
    buf = allocate(6, "u4", target=mem)
    buf[:] = np.arange(6)
    return buf


class Deferring:
    """A class numpy must give binary operators to: a higher priority and
    no __array_ufunc__, as libraries did before NEP 13."""
    __array_priority__ = 100.0

    def __radd__(self, other):
        return "Deferring.__radd__"


class Refusing:
    """NEP 13's way to take binary operators from numpy."""
    __array_ufunc__ = None

    def __radd__(self, other):
        return "Refusing.__radd__"


@pytest.mark.parametrize("op", [lambda b: b + [1] * 6, lambda b: [1] * 6 + b,
                                lambda b: b + (1,) * 6, lambda b: 1 + b,
                                lambda b: b + 1.5, lambda b: np.float32(2) * b,
                                lambda b: b * np.uint32(2), lambda b: b + b.copy(),
                                lambda b: np.arange(6) - b, lambda b: b[::-1] + b])
def test_every_kind_of_operand_gives_a_plain_array(b, op):
    r = op(b)
    assert type(r) is np.ndarray
    assert np.array_equal(r, op(np.arange(6, dtype="u4")))


def test_classes_that_numpy_defers_to_still_get_the_operator(b):
    assert b + Deferring() == "Deferring.__radd__"
    assert b + Refusing() == "Refusing.__radd__"


def test_priorities_are_ndarrays(b):
    # A masked array (priority 15) wins either way round; an empty subclass
    # (ndarray's priority) loses to the Buffer it follows, as it would to an
    # ndarray subclass of the same priority.
    m = np.ma.masked_array(np.arange(6), mask=[0, 1, 0, 0, 0, 0])
    assert type(b + m) is np.ma.MaskedArray and type(m + b) is np.ma.MaskedArray
    S = type("S", (np.ndarray,), {})
    s = np.arange(6).view(S)
    assert type(b + s) is np.ndarray and type(s + b) is S
    assert b.__array_priority__ == s.__array_priority__ == 0.0


def test_out_arguments_in_device_memory_are_returned_as_they_are(b, mem):
    plain = np.zeros(6, "u4")
    address = b.device_address
    assert np.add(plain, 1, out=b) is b
    assert np.add(b, 1, out=plain) is plain
    view = b[::2]
    assert np.multiply(view, 3, out=view) is view
    assert np.negative(b, out=(b,)) is b
    two_d = allocate((3, 4), "u4", target=mem)
    two_d[:] = 1
    row = allocate(4, "u4", target=mem)
    assert np.add.reduce(two_d, axis=0, out=row) is row
    assert list(row) == [3] * 4
    assert b.device_address == address and type(b) is Buffer


def test_ufuncs_with_two_results_give_plain_arrays(b):
    q, r = np.divmod(b, 4)
    assert type(q) is np.ndarray and type(r) is np.ndarray
    assert list(q) == [0, 0, 0, 0, 1, 1] and list(r) == [0, 1, 2, 3, 0, 1]


def test_the_wrap_is_the_same_from_any_buffer(b):
    plain = np.arange(3)
    copy = b.copy()
    b2 = b[1:]
    for owner in (b, b2, copy, Buffer):
        assert owner.__array_wrap__(plain) is plain
    assert b2.__array_wrap__(b2) is b2
    assert type(copy.__array_wrap__(copy)) is np.ndarray


def expected_address(view, root):
    return (root.device_address + view.__array_interface__["data"][0]
            - root.__array_interface__["data"][0])


def test_device_address_through_every_shape_of_base_chain(mem):
    root = allocate(64, "u4", target=mem)
    views = [root, root[3:], root[3:][2:][::2], root.view("u1")[5:],
             root.view(np.ndarray)[8:].view(Buffer), root.reshape(8, 8)[2, 1:],
             as_strided(root[4:], shape=(3,), strides=(8,), subok=True),
             sliding_window_view(root, 4, subok=True)[6],
             np.asarray(root)[40:].view(Buffer), root[...]]
    for v in views:
        assert type(v) is Buffer
        assert v.device_address == v.physical_address == expected_address(v, root)


def test_addresses_of_many_buffers_read_in_turn():
    # Buffers in two memories, one above 4 GiB, read in turn more often
    # than any table of recent addresses could hold without mixing them up.
    mems = [open_memory("sim", size=4 * MiB, base_address=BASE),
            open_memory("sim", size=4 * MiB, base_address=0x1_2345_0000)]
    roots = [allocate(n, "u2", target=mems[n % 2]) for n in range(1, 40)]
    pairs = [(v, expected_address(v, root)) for root in roots
             for v in (root, root[1:], root[::-1])]
    for _ in range(3):
        for order in (pairs, pairs[::-1], pairs[::7] + pairs[3::5]):
            for v, address in order:
                assert v.device_address == address


def test_a_freed_address_is_none_even_after_it_was_read(mem):
    b = allocate(1024, "u4", target=mem)
    view = b[10:]
    address = view.device_address
    assert b.device_address == BASE and address == BASE + 40
    b.freebuffer()
    assert view.device_address is None and view.physical_address is None
    again = allocate(mem.size // 4, "u4", target=mem)   # the whole memory
    assert again[10:].device_address == address
    assert view.device_address is None


def test_equal_addresses_in_two_memories_are_each_right():
    one = open_memory("sim", size=1 * MiB, base_address=BASE)
    two = open_memory("sim", size=1 * MiB, base_address=BASE)
    a, b = allocate(16, target=one), allocate(16, target=two)
    assert a.device_address == b.device_address == BASE
    assert a[3:].device_address == b[3:].device_address == BASE + 12
    assert a.memory is one and b.memory is two


def test_copies_and_plain_arrays_viewed_as_buffers_have_no_address(b):
    for arr in (b.copy(), b.astype("u2"), b[[1, 2]], np.empty_like(b),
                np.arange(4).view(Buffer), np.arange(4).view(Buffer)[1:]):
        assert arr.device_address is None and arr.physical_address is None

"""Results in new memory never look like device memory."""
import copy
import pickle

import numpy as np
import pytest

from pynq_alloc import Buffer, allocate


@pytest.fixture
def b(mem):
    buf = allocate(6, "u4", target=mem)
    buf[:] = np.arange(6)
    return buf


@pytest.mark.parametrize("op", [lambda b: b + 1, lambda b: b == b,
                                lambda b: np.sqrt(b), lambda b: -b,
                                lambda b: b * b, lambda b: np.add(b, b[::-1]),
                                lambda b: b.sum(axis=0, keepdims=True)])
def test_ufunc_results_are_plain_arrays(b, op):
    r = op(b)
    assert type(r) is np.ndarray


@pytest.mark.parametrize("op", [lambda b: b.sum(), lambda b: b.max(),
                                lambda b: np.add.reduce(b), lambda b: b.mean(),
                                lambda b: b[2] + 1])
def test_reductions_are_numpy_scalars(b, op):
    r = op(b)
    assert isinstance(r, np.generic) and not isinstance(r, np.ndarray)


def test_sum_is_right(b):
    assert b.sum() == 15


@pytest.mark.parametrize("op", [lambda b: b.copy(), lambda b: b.astype("f8"),
                                lambda b: b[[1, 2]], lambda b: np.empty_like(b),
                                lambda b: b[b > 2], lambda b: copy.copy(b)])
def test_new_memory_where_numpy_keeps_the_subclass(b, op):
    r = op(b)
    assert isinstance(r, np.ndarray)
    if isinstance(r, Buffer):
        assert r.device_address is None and r.coherent is None


def test_copy_has_equal_contents_and_no_address(b):
    c = b.copy()
    assert np.array_equal(c, b) and c.device_address is None


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_gives_a_plain_array(b, protocol):
    r = pickle.loads(pickle.dumps(b[::2], protocol=protocol))
    assert type(r) is np.ndarray and np.array_equal(r, [0, 2, 4])


def test_deepcopy_gives_a_plain_array(b):
    r = copy.deepcopy(b)
    assert type(r) is np.ndarray and np.array_equal(r, b)
    r[0] = 99
    assert b[0] == 0


def test_in_place_operations_stay_in_device_memory(b):
    address = b.device_address
    b += 1
    np.multiply(b, 2, out=b)
    assert type(b) is Buffer and b.device_address == address
    assert list(b) == [2, 4, 6, 8, 10, 12]

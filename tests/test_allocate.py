"""allocate(): numpy's shape/dtype/order signature, the options, and every
error in docs/contract.md's table, each raised before anything is allocated."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import MiB
import pynq_alloc
from pynq_alloc import Buffer, allocate, open_memory


def test_shape_dtype_order_follow_numpy(mem):
    b = allocate((3, 4), "i2", target=mem)
    assert type(b) is Buffer and isinstance(b, np.ndarray)
    assert b.shape == (3, 4) and b.dtype == np.int16
    assert b.flags.c_contiguous and b.flags.writeable
    f = allocate((3, 4), np.float32, target=mem, order="F")
    assert f.flags.f_contiguous and not f.flags.c_contiguous
    assert f.strides == np.empty((3, 4), np.float32, order="F").strides
    assert allocate([2, 3, 4], dtype=np.dtype("<c8"), target=mem).shape == (2, 3, 4)
    assert allocate(np.int64(7), target=mem).shape == (7,)
    assert allocate((), "f8", target=mem).shape == ()


def test_defaults_match_pynq(mem):
    b = allocate(5, target=mem)
    assert b.shape == (5,) and b.dtype == np.uint32
    assert b.cacheable is False and b.coherent is True     # uncached, as PYNQ
    assert b.device_address % 4096 == 0


def test_structured_and_subarray_dtypes(mem):
    rec = allocate(4, [("a", "u1"), ("b", "<f8")], target=mem)
    rec["b"] = 1.5
    assert rec.dtype.names == ("a", "b") and rec["b"].sum() == 6.0
    sub = allocate(2, "(3,)u2", target=mem)
    assert sub.shape == (2, 3) and sub.nbytes == 12
    assert allocate(3, "S", target=mem).dtype == np.dtype("S1")


def test_memory_allocate_is_allocate_with_target(mem):
    b = mem.allocate((2, 2), "u1", cacheable=False)
    assert b.memory is mem and b.coherent
    with pytest.raises(TypeError):
        mem.allocate(4, "u1", target=mem)


def test_default_target_is_default_memory():
    b = allocate(4)
    assert b.memory is pynq_alloc.default_memory()


def test_size_zero_has_an_address_and_flushes(mem):
    z = allocate(0, target=mem)
    assert z.size == 0 and z.device_address is not None
    z.flush()
    z.invalidate()
    z2 = allocate((4, 0), "u8", target=mem)
    assert z2.device_address != z.device_address


@pytest.mark.parametrize("align", [1, 4096, 1 << 16, 1 << 21])
def test_align(mem, align):
    allocate(1, "u1", target=mem)       # disturb the first page
    b = allocate(100, "u1", target=mem, align=align)
    assert b.device_address % align == 0


def test_max_address_bounds_the_whole_buffer():
    m = pynq_alloc.open_memory("sim", size=8 * MiB, base_address=0xFFC0_0000)
    # 4 MiB lie below 2**32; the first 1 MiB is taken.
    first = allocate(MiB, "u1", target=m)
    b = allocate(3 * MiB, "u1", target=m, max_address=2**32)
    assert b.device_address + b.nbytes <= 2**32
    with pytest.raises(MemoryError):
        allocate(4096, "u1", target=m, max_address=2**32)
    c = allocate(4096, "u1", target=m, max_address=2**64 + 5)
    assert c.device_address >= 2**32
    first.freebuffer()      # now there is room below the limit again
    assert allocate(4096, "u1", target=m, max_address=2**32).device_address < 2**32


# ---- errors: always before anything is allocated ----

def _unchanged(mem, before):
    assert mem.stats() == before


@pytest.mark.parametrize("shape, exc", [
    ((-1,), ValueError),
    ((3, -2), ValueError),
    ((2**40, 2**40), ValueError),          # nbytes overflows
    ((1,) * 65, ValueError),               # more than 64 dims
    ("abc", TypeError),
    (None, TypeError),
    ((1.5,), TypeError),
])
def test_bad_shapes(mem, shape, exc):
    before = mem.stats()
    with pytest.raises(exc):
        allocate(shape, "u1", target=mem)
    _unchanged(mem, before)


def test_nbytes_overflow_from_itemsize(mem):
    before = mem.stats()
    with pytest.raises(ValueError, match="too big"):
        allocate((2**61,), "u8", target=mem)
    _unchanged(mem, before)


@pytest.mark.parametrize("dtype", [object, [("a", "u4"), ("b", "O")], "(2,)O"])
def test_object_dtypes_are_refused(mem, dtype):
    before = mem.stats()
    with pytest.raises(TypeError, match="Python objects"):
        allocate(4, dtype, target=mem)
    _unchanged(mem, before)


def test_unknown_dtype(mem):
    with pytest.raises(TypeError):
        allocate(4, "not-a-dtype", target=mem)


@pytest.mark.parametrize("kwargs", [
    {"order": "K"}, {"order": "A"}, {"order": 3},
    {"align": 3}, {"align": 0}, {"align": -4096},
    {"max_address": 0}, {"max_address": -1},
])
def test_bad_options(mem, kwargs):
    before = mem.stats()
    with pytest.raises(ValueError):
        allocate(4, target=mem, **kwargs)
    _unchanged(mem, before)


@pytest.mark.parametrize("target", ["sim", 0, np.zeros(3)])
def test_target_must_be_a_memory(target):
    with pytest.raises(TypeError, match="Memory"):
        allocate(4, target=target)


def test_argument_errors():
    with pytest.raises(TypeError, match="shape"):
        allocate()
    with pytest.raises(TypeError, match="unexpected keyword"):
        allocate(4, colour="red")
    with pytest.raises(TypeError, match="multiple values"):
        allocate(4, "u1", dtype="u2")
    with pytest.raises(TypeError, match="positional"):
        allocate(4, "u1", None, "C")


def test_out_of_memory_gives_the_figures(mem):
    hold = allocate(12 * MiB, "u1", target=mem)
    before = mem.stats()
    with pytest.raises(MemoryError) as info:
        allocate(5 * MiB, "u1", target=mem)
    message = str(info.value)
    assert str(5 * MiB) in message                      # bytes asked
    assert str(before["free"]) in message                # bytes free
    assert str(before["largest_free"]) in message        # largest block
    _unchanged(mem, before)
    del hold


def test_fragmentation_is_reported_like_cma(mem):
    blocks = [allocate(MiB, "u1", target=mem) for _ in range(16)]
    for b in blocks[::2]:
        b.freebuffer()
    stats = mem.stats()
    assert stats["free"] == 8 * MiB and stats["largest_free"] == MiB
    with pytest.raises(MemoryError, match=f"largest free block {MiB} bytes"):
        allocate(2 * MiB, "u1", target=mem)
    assert allocate(MiB, "u1", target=mem).device_address is not None


DTYPES = ["u1", "i2", "<u4", ">i8", "f4", "c16", "?", "S3", "U2", "V5",
          [("a", "u1"), ("b", ">f8")], "(2,3)u2", "M8[s]"]


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(0, 6), max_size=4),
       dtype=st.sampled_from(DTYPES), order=st.sampled_from("CF"))
def test_layout_matches_numpy_empty(shape, dtype, order):
    mem = pynq_alloc.open_memory("sim", size=1 << 20)
    b = allocate(tuple(shape), dtype, target=mem, order=order)
    e = np.empty(tuple(shape), dtype, order=order)
    assert (b.shape, b.dtype, b.nbytes) == (e.shape, e.dtype, e.nbytes)
    if e.size:      # numpy 2 gives arrays with no elements zero strides
        assert b.strides == e.strides
    assert b.flags.c_contiguous == e.flags.c_contiguous
    assert b.flags.f_contiguous == e.flags.f_contiguous
    assert b.device_address % 4096 == 0
    assert mem.stats()["used"] == max(4096, -(-b.nbytes // 4096) * 4096)


def test_new_memory_is_zeroed_unless_asked_not_to(mem):
    old = allocate(4096, "u1", target=mem, cacheable=True)
    old[:] = 5
    old.flush()
    del old
    again = allocate(4096, "u1", target=mem, cacheable=True)
    assert not again.any()
    del again
    # zero=False skips the work: the block keeps what was left in it.
    # (Not on a sim that tracks coherence: there a block starts clean.)
    plain = open_memory("sim", size=1 << 20, coherence="off")
    old = allocate(4096, "u1", target=plain, cacheable=True)
    old[:] = 5
    del old
    unzeroed = allocate(4096, "u1", target=plain, cacheable=True, zero=False)
    assert (unzeroed == 5).all()
    del unzeroed
    tracked = allocate(4096, "u1", target=mem, cacheable=True)
    tracked[:] = 5
    del tracked
    assert not allocate(4096, "u1", target=mem, cacheable=True,
                        zero=False).any()


def test_dtype_objects_users_can_change_are_never_shared(mem):
    # numpy's np.empty(3, 'u4,u4') gives each array a dtype of its own;
    # renaming one's fields must not rename the next buffer's.
    a = mem.allocate(3, "u4,u4")
    a.dtype.names = ("x", "y")
    b = mem.allocate(3, "u4,u4")
    assert b.dtype.names == ("f0", "f1") and a.dtype is not b.dtype
    # Builtin dtypes are numpy's shared instances anyway, and stay so.
    assert mem.allocate(3, "u4").dtype is np.empty(3, "u4").dtype


def test_an_alignment_beyond_the_pool_is_served_where_a_block_starts_aligned():
    # 1 MiB at a 2 MiB boundary: empty, so its first byte is 2 MiB aligned.
    small = open_memory("sim", size=MiB, base_address=0x1000_0000)
    buf = small.allocate(16, align=2 * MiB)
    assert buf.device_address == 0x1000_0000
    with pytest.raises(MemoryError, match="aligned to 2097152"):
        small.allocate(16, align=2 * MiB)

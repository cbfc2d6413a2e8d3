"""The sanitizer's watch_stores mode: the CPU's stores are seen, not only
the bytes they change, a page at a time (userfaultfd's asynchronous write
protection, Linux 6.7), and a correct program is never reported in any
mode (docs/coherence.md)."""
import errno
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pynq_alloc import CoherenceError, allocate, open_memory

PAGE = 4096


def _why_not_watching():
    """None where watch_stores can be had, else the kernel's reason."""
    try:
        open_memory("sim", size=1 << 20, watch_stores=True)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM):
            return str(e)
        raise
    return None


WHY_NOT = _why_not_watching()
needs_watching = pytest.mark.skipif(WHY_NOT is not None,
                                    reason=f"this kernel: {WHY_NOT}")


def spans(hazards):
    return [(h.kind, h.start, h.stop) for h in hazards]


@pytest.fixture
def watched():
    return open_memory("sim", size=4 << 20, coherence="raise",
                       watch_stores=True)


@needs_watching
def test_clearing_a_fresh_buffer_is_a_store_the_device_write_meets(watched):
    """The commonest clearing of an output buffer, out[:] = 0 on a fresh
    buffer, changes no byte, and on a board leaves every line dirty over
    the device's result."""
    out = allocate(1024, "u4", target=watched, cacheable=True)
    out[:] = 0
    with pytest.raises(CoherenceError) as caught:
        watched.device_write(out.device_address, bytes([7]) * PAGE)
    assert spans(caught.value.hazards) == [("write-under-dirty", 0, PAGE)]
    with pytest.raises(CoherenceError) as caught:
        out.flush()                 # every line the device wrote
    assert spans(caught.value.hazards) == [("writeback-clobbered", 0, PAGE)]


@needs_watching
def test_each_kind_of_meeting_reports_the_whole_page(watched):
    b = allocate(2 * PAGE, "u1", target=watched, cacheable=True)
    b[PAGE:] = 0                    # second page only
    with pytest.raises(CoherenceError) as caught:
        watched.device_read(b.device_address, 2 * PAGE)
    assert spans(caught.value.hazards) == [("unflushed-read", PAGE, 2 * PAGE)]
    assert spans(watched.check()) == [("unflushed", PAGE, 2 * PAGE)]
    with pytest.raises(CoherenceError) as caught:
        b.invalidate()
    assert spans(caught.value.hazards) == [("discarded", PAGE, 2 * PAGE)]
    assert watched.check() == []


@needs_watching
def test_without_watching_a_store_of_the_same_bytes_is_unseen():
    mem = open_memory("sim", size=1 << 20, coherence="raise")
    out = allocate(1024, "u4", target=mem, cacheable=True)
    out[:] = 0
    mem.device_write(out.device_address, bytes([7]) * PAGE)
    out.invalidate()
    assert (out.view("u1") == 7).all() and mem.check() == []


@needs_watching
def test_where_bytes_differ_the_report_is_line_exact(watched):
    b = allocate(PAGE, "u1", target=watched, cacheable=True)
    b[:] = 0                        # the page is stored
    b[130] = 1                      # and line 128 changed
    with pytest.raises(CoherenceError) as caught:
        watched.device_write(b.device_address, bytes(PAGE))
    assert spans(caught.value.hazards) == [("write-under-dirty", 128, 192)]


@needs_watching
def test_where_it_is_not_sure_which_line_it_waits_for_the_check(watched):
    """A store of unchanged bytes is somewhere in its page: a device write
    to part of the page may miss it, so only check() names it."""
    b = allocate(PAGE, "u1", target=watched, cacheable=True)
    b[:64] = 0
    watched.device_write(b.device_address + 2048, bytes([7]) * 64)
    assert spans(watched.check()) == [("unflushed", 0, PAGE),
                                      ("uninvalidated", 2048, 2112)]
    b.flush()
    b[2048:2112].invalidate()
    assert watched.check() == []


@needs_watching
def test_a_flush_of_part_of_a_page_forgets_its_store(watched):
    """The store may have been in the part flushed: never a false report,
    at the price of missing a store elsewhere in that page."""
    b = allocate(PAGE, "u1", target=watched, cacheable=True)
    b[:] = 0
    b[:64].flush()
    watched.device_write(b.device_address, bytes([7]) * PAGE)
    b.invalidate()
    assert watched.check() == []


@needs_watching
def test_stores_by_the_kernel_are_seen(watched):
    b = allocate(PAGE, "u1", target=watched, cacheable=True)
    r, w = os.pipe()
    try:
        os.write(w, bytes(PAGE))
        assert os.readv(r, [b]) == PAGE     # zeros over zeros
    finally:
        os.close(r)
        os.close(w)
    assert spans(watched.check()) == [("unflushed", 0, PAGE)]
    b.flush()


@needs_watching
def test_a_block_used_again_starts_with_no_store(watched):
    b = allocate(PAGE, "u1", target=watched, cacheable=True)
    address = b.device_address
    b[:] = 0
    b.flush()
    b[:] = 0
    del b
    watched.check()                  # the released buffer's record
    again = allocate(PAGE, "u1", target=watched, cacheable=True)
    assert again.device_address == address
    watched.device_write(again.device_address, bytes([7]) * PAGE)
    again.invalidate()
    assert watched.check() == []


def test_watching_needs_a_mode_that_reports():
    with pytest.raises(ValueError, match="watch_stores=True needs coherence"):
        open_memory("sim", size=1 << 20, coherence="off", watch_stores=True)
    with pytest.raises(ValueError, match="watch_stores must be on or off"):
        open_memory("sim:size=1M,watch_stores=maybe")


# ---- correct programs are never reported ------------------------------

NBYTES = 3 * PAGE


@st.composite
def rounds(draw):
    """One round of a correct program: CPU writes, each flushed over
    exactly its span; the device reads and writes; the device's write
    invalidated over exactly its span before the CPU reads it.  Values
    are 0 and 1, so that most stores leave the bytes as they were."""
    def span():
        lo = draw(st.integers(0, NBYTES - 1))
        return lo, draw(st.integers(lo + 1, min(NBYTES, lo + 2 * PAGE)))
    value = st.sampled_from([0, 1])
    writes = [(span(), draw(value))
              for _ in range(draw(st.integers(0, 3)))]
    return writes, span(), span(), draw(value)


@pytest.mark.parametrize("mode,watch", [
    ("off", False), ("warn", False), ("raise", False),
    pytest.param("warn", True, marks=needs_watching),
    pytest.param("raise", True, marks=needs_watching)])
@settings(max_examples=60, deadline=None)
@given(program=st.lists(rounds(), min_size=1, max_size=6))
def test_a_correct_program_is_never_reported(mode, watch, program):
    mem = open_memory("sim", size=1 << 20, coherence=mode,
                      watch_stores=watch)
    buf = allocate(NBYTES, "u1", target=mem, cacheable=True)
    expected = np.zeros(NBYTES, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for writes, read, (lo, hi), value in program:
            for (a, b), v in writes:
                buf[a:b] = v
                buf[a:b].flush()
                expected[a:b] = v
            seen = mem.device_read(buf.device_address + read[0],
                                   read[1] - read[0])
            assert seen == expected[read[0]:read[1]].tobytes()
            mem.device_write(buf.device_address + lo,
                             bytes([value]) * (hi - lo))
            buf[lo:hi].invalidate()
            expected[lo:hi] = value
            assert np.array_equal(buf, expected)
        assert mem.check() == []
        buf.freebuffer()
        assert mem.check() == []

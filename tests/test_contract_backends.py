"""docs/contract.md's promises that hold on every backend, run against each one
that can run on this machine: the simulated memory, u-dma-buf over a
stand-in device, xlnk over a stand-in libcma.so, xrt over a stand-in
libxrt_coreutil.so (both of its host-buffer modes), and real huge pages
(as root; one 1 GiB page, since 2 MiB pages come back physically
scattered).  zocl is tested here with a stand-in driver in C
(tests/c/test_zocl.c).  The real-kernel tier (tests/vm/run) runs this same
module in its guests against the real u-dma-buf and zocl drivers."""
import errno
import gc
import os
import platform
import threading

import numpy as np
import pytest

import pynq_alloc
from fake_devices import MiB, make_udmabuf, make_xlnk, make_xrt, xrt_bank_base
from helpers import in_child
from pynq_alloc import open_memory


def cached_only(memory):
    """Huge pages can be mapped only cached on arm64 (cacheable=False is
    ENOTSUP there); on x86 they are cached whatever is asked."""
    return memory.kind == "hugepage" and platform.machine() != "x86_64"


def allocate(*args, target, **kwargs):
    """pynq_alloc.allocate, asking for a cached mapping where only that can
    be had, unless the test asks for something else."""
    if cached_only(target):
        kwargs.setdefault("cacheable", True)
    return pynq_alloc.allocate(*args, target=target, **kwargs)


def open_kind(kind, tmp_path, request):
    if kind == "sim":
        return open_memory("sim", size=16 * MiB)
    if kind == "udmabuf":
        device, sysfs = make_udmabuf(str(tmp_path), size=16 * MiB)
        return open_memory("udmabuf", device=device, sysfs=sysfs)
    if kind == "xlnk":
        library, _ = make_xlnk(str(tmp_path), request.getfixturevalue("libcma")[0],
                               request.getfixturevalue("monkeypatch"), pool=16 * MiB)
        return open_memory("xlnk", library=library)
    if kind in ("xrt", "xrt-staged"):
        card = make_xrt(str(tmp_path), request.getfixturevalue("libxrt")[0],
                        request.getfixturevalue("monkeypatch"))
        return open_memory("xrt", library=card.library, size=card.bank_size,
                           base_address=xrt_bank_base(0), userptr=kind == "xrt")
    if kind == "hugepage":
        required = os.environ.get("PYNQ_ALLOC_REQUIRE_HUGEPAGES") == "1"
        try:
            if os.geteuid() != 0:
                raise OSError("not root")
            gc.collect()    # an earlier test's pool, kept by a cycle
            return open_memory("hugepage", size=1 << 30, page_size=1 << 30)
        except OSError as e:
            if required:
                pytest.fail(f"hugepages are required here: {e}")
            pytest.skip(f"no huge pages here: {e}")
    raise AssertionError(kind)


# The real-kernel tier (tests/vm/run) runs this module in its guests
# against real drivers instead: memory specs separated by ";", e.g.
# "udmabuf:device=/dev/udmabuf0;udmabuf:device=/dev/udmabuf1".
REAL = [s.strip() for s in
        os.environ.get("PYNQ_ALLOC_CONTRACT_MEMORIES", "").split(";") if s.strip()]


# Memories whose blocks the kernel places in its CMA pool, shared with
# the rest of the machine.
KERNELS_CMA = ("xlnk", "zocl")


@pytest.fixture(params=REAL or ["sim", "udmabuf", "xlnk", "xrt", "xrt-staged",
                                 "hugepage"])
def memory(request, tmp_path):
    if REAL:
        return open_memory(request.param)
    return open_kind(request.param, tmp_path, request)


def test_views_have_exact_addresses(memory):
    m = allocate((1024, 1024), "u4", target=memory)
    assert m[1].device_address == m.device_address + 4096
    assert m[1, 512:].device_address == m.device_address + 6144
    assert m[::-1, 3].device_address == m.device_address + 1023 * 4096 + 12


def test_addresses_do_not_overlap(memory):
    bufs = [allocate(n, "u1", target=memory) for n in (1, 4096, 5000, 70000)]
    spans = sorted((b.device_address, b.device_address + b.nbytes) for b in bufs)
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        assert e0 <= s1
    if memory.kind not in KERNELS_CMA:  # the kernel's CMA lies who knows where
        assert spans[0][0] >= memory.base_address
        assert spans[-1][1] <= memory.base_address + memory.size


def test_sync_works_on_every_kind_of_view(memory):
    m = allocate((8, 8), "u4", target=memory, cacheable=True)
    for v in (m, m[3], m[:, 0], m[::-1], m[2:2], allocate(0, target=memory)):
        v.flush()
        v.invalidate()
    try:
        c = allocate(8, target=memory, cacheable=False)
    except OSError as e:        # huge pages on arm64 cannot be mapped uncached
        assert memory.kind == "hugepage" and e.errno == errno.ENOTSUP
        assert "cacheable=True" in str(e)
    else:
        # Mirrored memory (a card's) is never coherent with the host's.
        assert c.coherent is (memory.kind != "xrt")
        c.flush()


def device_side(memory, buf):
    """What the device reads of buf, where the memory offers device access."""
    try:
        return np.frombuffer(memory.device_read(buf.device_address, buf.nbytes),
                             np.uint8)
    except OSError as e:
        assert e.errno == errno.ENOTSUP
        return None


@pytest.mark.parametrize("cacheable", [False, True])
@pytest.mark.parametrize("nbytes", [100, 8192, 200 * 1024, 3 * MiB])
def test_new_memory_reads_as_zeros_after_an_earlier_user(memory, cacheable, nbytes):
    # PYNQ's buffers come zeroed from the kernel, and PYNQ code relies on
    # it (its SG DMA driver writes only some descriptor fields).
    refused = None
    try:
        old = allocate(nbytes, "u1", target=memory, cacheable=cacheable)
    except OSError as e:
        refused = e.errno
    if refused is not None:
        # Skipped outside the except block: a skip raised in it keeps this
        # frame, and so the memory (a 1 GiB huge page), alive in a cycle.
        assert refused == errno.ENOTSUP
        kind = memory.kind
        del memory
        pytest.skip(f"{kind} memory cannot map uncached here")
    old[:] = 0xAB
    old.flush()
    address = old.device_address
    del old
    new = allocate(nbytes, "u1", target=memory, cacheable=cacheable)
    # The pools here hand the same bytes out again (the kernel chooses for
    # xlnk and zocl; x86 huge pages are cached whatever was asked, and
    # reuse only blocks mapped as asked).
    if memory.kind not in KERNELS_CMA and new.cacheable == cacheable:
        assert new.device_address == address
    assert not new.any()
    new.invalidate()
    assert not new.any()
    seen = device_side(memory, new)
    assert seen is None or not seen.any()


def own_stats(memory):
    """stats() but, for memories in the kernel's CMA, the free figures: they
    are the kernel's, change with every other user, and lag behind
    releases (freed pages wait on per-CPU lists)."""
    stats = memory.stats()
    if memory.kind in KERNELS_CMA:
        del stats["free"], stats["largest_free"]
    return stats


def test_release_gives_memory_back(memory):
    before = own_stats(memory)
    b = allocate(3 * MiB, "u1", target=memory)
    v = b[5:]
    assert memory.stats()["used"] >= 3 * MiB
    del b, v
    assert own_stats(memory) == before


def test_freebuffer_with_live_views_is_safe(memory):
    b = allocate(8192, "u1", target=memory)
    v = b[100:]
    b.freebuffer()
    assert v.freed and v.device_address is None
    v[:] = 1                       # private memory now: safe, and detached
    nxt = allocate(8192, "u1", target=memory)
    nxt[:] = 2
    v[:] = 3
    assert (nxt == 2).all()
    with pytest.raises(ValueError, match="freed"):
        v.flush()


def test_exhaustion_is_a_memory_error_with_figures(memory):
    if memory.kind == "zocl":
        # All of CMA is more than there is (the kernel's other users hold
        # some): fill it, with blocks larger than the page allocator's
        # largest (4 MiB), which it would serve when CMA is full.
        held = []
        with pytest.raises(MemoryError, match="bytes free, largest free block"):
            for _ in range(memory.size // (8 * MiB) + 1):
                held.append(allocate(8 * MiB, "u1", target=memory))
        assert held
        return
    held = allocate(memory.size - MiB, "u1", target=memory)
    with pytest.raises(MemoryError, match=f"largest free block {MiB} bytes"):
        allocate(2 * MiB, "u1", target=memory)
    del held


def test_bad_requests_change_nothing(memory):
    before = own_stats(memory)
    for kwargs in ({"shape": -1}, {"shape": 4, "align": 3},
                   {"shape": 4, "dtype": object}):
        with pytest.raises((ValueError, TypeError)):
            allocate(target=memory, **kwargs)
    assert own_stats(memory) == before


def test_threads(memory):
    errors = []

    def work(seed):
        try:
            for i in range(200):
                b = allocate(1 + (seed * 7919 + i * 104729) % 200_000, "u1",
                             target=memory,
                             cacheable=bool(seed % 2) or cached_only(memory))
                b[:] = seed
                b[::3].flush()
                assert (b == seed).all()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert memory.stats()["used"] == 0 and memory.stats()["buffers"] == 0


def test_a_forked_child_uses_but_never_frees_what_it_inherited(memory):
    parent = allocate(8192, "u1", target=memory)
    parent[:] = 3
    before = own_stats(memory)

    def child():
        assert (parent == 3).all()
        try:
            mine = allocate(4096, "u1", target=memory)
        except OSError as e:        # a heap of the parent's: refused, said
            assert e.errno == errno.EBUSY and "forked child" in str(e)
        else:                       # the kernel allocates: safe here
            assert mine.device_address != parent.device_address
            del mine
        parent.freebuffer()
        return True

    assert in_child(child)
    assert own_stats(memory) == before and (parent == 3).all()

"""zocl for real: run by tests/vm/run in the arm64 guest, where XRT's zocl
(built from $PYNQ_ALLOC_VENDOR with its test patches) drives a device-tree
node "xlnx,zocl" and no xclbin is loaded, so every BO comes from the
kernel's CMA pool.  The references are the kernel's: /proc/self/pagemap
for addresses, kprobes on the DMA API for syncs, /dev/kmsg for what the
driver logs, and CMA that comes back whole for leaks."""
import os
import signal

import numpy as np
import pytest

from helpers import MiB, byte_span, run_python
from pynq_alloc import allocate, open_memory

NODE = "/dev/dri/renderD128"
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def zocl():
    return open_memory("zocl")


def meminfo(name):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(name)


def test_zocl_drives_the_render_node_and_is_the_default():
    driver = os.readlink("/sys/class/drm/renderD128/device/driver")
    assert os.path.basename(driver) == "zocl-drm"
    r = run_python("import pynq_alloc as p; print(p.default_memory().kind)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["zocl"]
    r = run_python("import runpy; runpy.run_module('pynq_alloc', run_name='__main__')")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"default: zocl (found {NODE})" in r.stdout
    assert "no xclbin is loaded" in r.stdout
    assert r.stdout.rstrip().endswith("OK")


@pytest.mark.parametrize("cacheable", [True, False])
@pytest.mark.parametrize("nbytes, bo_size", [
    (1, 2 * PAGE), (PAGE, 2 * PAGE), (PAGE + 1, 2 * PAGE),
    (3 * MiB + 5, 3 * MiB + PAGE)])
def test_each_bo_is_where_info_bo_says_and_freed_at_once(
        zocl, dma_calls, cacheable, nbytes, bo_size):
    b = allocate(nbytes, "u1", target=zocl, cacheable=cacheable)
    assert (b.cacheable, b.coherent) == (cacheable, not cacheable)
    assert not b.any()                          # CMA BOs come zeroed
    b[:] = 0x5A
    address = b.device_address
    assert zocl.stats()["used"] == bo_size
    dma_calls.take()
    del b
    # zocl gives the DMA API back the address and size it allocated: those
    # INFO_BO reported, and a page or less became two pages.
    assert dma_calls.take("free") == [("free", address, bo_size)]
    assert zocl.stats()["used"] == 0


def test_freebuffer_with_live_views_frees_the_bo(zocl, dma_calls):
    b = allocate(2 * MiB, "u1", target=zocl, cacheable=True)
    v = b[100:]
    address = b.device_address
    dma_calls.take()
    b.freebuffer()
    assert dma_calls.take("free") == [("free", address, 2 * MiB)]
    v[:] = 1                                    # private memory now


def test_each_sync_reaches_the_driver_with_the_views_span(zocl, dma_calls, views):
    m = allocate((64, 64), "u4", target=zocl, cacheable=True)
    dma_calls.take()
    for v in views(m):
        v.flush()
        v.invalidate()
        lo, hi = byte_span(v)
        start = v.device_address + lo
        # SYNC_BO names the view's bytes exactly; zocl passes them on, at
        # the address the DMA API has for the BO.
        assert dma_calls.take() == [("to_device", start, hi - lo),
                                    ("for_cpu", start, hi - lo)], v.shape
    u = allocate((64, 64), "u4", target=zocl, cacheable=False)
    dma_calls.take()
    for v in views(u):
        v.flush()
        v.invalidate()
    assert dma_calls.take() == []               # uncached: nothing to do


def test_bo_sizes_as_the_driver_makes_them(zocl):
    # zocl makes a BO of one page or less two pages (so that it comes from
    # CMA), and CMA aligns a BO to its size's power of two up to 1 MiB, so
    # alignment up to that costs nothing.
    cases = [(1, PAGE, 2 * PAGE), (PAGE, PAGE, 2 * PAGE),
             (PAGE + 1, PAGE, 2 * PAGE), (3 * PAGE, PAGE, 3 * PAGE),
             (64 << 10, 64 << 10, 64 << 10), (MiB, MiB, MiB),
             (5 * PAGE, 8 * PAGE, 5 * PAGE)]
    for nbytes, align, held in cases:
        b = allocate(nbytes, "u1", target=zocl, align=align)
        assert b.device_address % align == 0
        assert zocl.stats()["used"] == held, (nbytes, align)
        del b
        assert zocl.stats()["used"] == 0
    # Beyond what CMA aligns, the BO has room to slide.
    b = allocate(PAGE, "u1", target=zocl, align=4 * MiB)
    assert b.device_address % (4 * MiB) == 0
    b[:] = 1
    b.flush()


@pytest.mark.parametrize("bank", [0, 1, 7])
def test_a_bank_that_no_xclbin_lists_gets_cma(bank, kernel_log):
    mem = open_memory("zocl", bank=bank)
    b = allocate(5000, "u1", target=mem, cacheable=True)
    b[:] = 3
    b.flush()
    assert b.cacheable and not b.coherent
    # The driver names the index it got in CREATE_BO's flags.
    said = [line for line in kernel_log.read() if "memory index" in line]
    assert said and said[-1].endswith(f"index[{bank}]"), said


def test_cma_exhaustion_is_a_memory_error_and_every_bo_comes_back(zocl, kernel_log):
    """Fills CMA with BOs until it is refused, three times over: each round
    gets as much as the first, so no BO of an earlier round leaked.  Each
    time, a second memory (which does not know what the first holds) asks
    the driver itself, which refuses: zocl's failure path runs (with the
    fixture's fix; slub_debug and the kernel log check watch it).  The BOs
    are larger than the page allocator's largest block (4 MiB), which
    serves smaller ones when CMA is full."""
    chunk = 8 * MiB
    rounds = []
    print(f"CmaTotal {meminfo('CmaTotal')}, CmaFree {meminfo('CmaFree')}")
    for _ in range(3):
        held = []
        with pytest.raises(MemoryError, match="bytes free") as info:
            for _ in range(meminfo("CmaTotal") // chunk + 1):
                held.append(allocate(chunk, "u1", target=zocl))
        rounds.append(len(held))
        print(f"round {len(rounds)}: {len(held)} BOs of 8 MiB, then {info.value}")
        kernel_log.read()
        with pytest.raises(MemoryError):
            allocate(chunk, "u1", target=open_memory("zocl"))
        assert [line for line in kernel_log.read()
                if "Failed to allocate buffer" in line]
        del held
        assert zocl.stats()["used"] == 0
        print(f"  all freed: CmaFree {meminfo('CmaFree')}")
    assert rounds[0] > 0 and rounds[1] >= rounds[0] and rounds[2] >= rounds[0]


def test_beyond_cma_small_bos_come_from_the_page_allocator(zocl):
    # Found here: zocl's BOs up to 4 MiB do not need CMA, so filling CMA
    # with them is no reason to refuse more.
    held = [allocate(4 * MiB, "u1", target=zocl)
            for _ in range(meminfo("CmaTotal") // (4 * MiB) + 4)]
    assert zocl.stats()["used"] > meminfo("CmaTotal")
    del held


def test_more_than_all_of_cma_is_refused_before_the_driver_is_asked(zocl, kernel_log):
    total = meminfo("CmaTotal")
    with pytest.raises(MemoryError, match=f"cannot allocate {total + PAGE} bytes"):
        allocate(total + PAGE, "u1", target=zocl)
    # zocl logs every CREATE_BO it gets with no xclbin loaded.
    assert not [line for line in kernel_log.read() if "memory index" in line]


def cma_free_drained(zocl):
    """CmaFree with the per-CPU lists of free pages emptied first: pages a
    driver gives back wait there, uncounted, until drained, and a CMA
    allocation drains them (alloc_contig_range).  So this allocates a BO of
    two pages (from CMA) and reads CmaFree while it lives: every reading is
    low by the same two pages."""
    probe = allocate(1, "u1", target=zocl)
    free = meminfo("CmaFree")
    del probe
    return free


def memstat_bos():
    """What zocl's memstat_raw says: (bytes, BOs) summed over the memories it
    lists (a loaded xclbin's; none without one)."""
    try:
        with open("/sys/class/drm/renderD128/device/memstat_raw") as f:
            rows = [line.split() for line in f if line.strip()]
    except OSError as e:
        return repr(e)
    return sum(int(r[0]) for r in rows), sum(int(r[1]) for r in rows), len(rows)


def test_a_forked_childs_bos_come_back_when_it_dies(zocl, cma_events):
    """A child forked from a process that has zocl open allocates on it and
    is killed without freeing.  Its BOs were created through its own open
    file of the device, so its death closes that file and zocl frees them
    (a BO lives as long as the open file it was created through, and the
    parent's file, which the child shares, lives on).  The parent's own BO
    and its stats are untouched."""
    mine = allocate(3 * MiB, "u1", target=zocl, cacheable=True)
    mine[:] = 0x11
    mine.flush()
    stats = zocl.stats()
    free_before = cma_free_drained(zocl)
    memstat_before = memstat_bos()
    cma_events.take()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            b = allocate(8 * MiB, "u1", target=zocl, cacheable=True)
            b[:] = 0x22
            b.flush()
            os.write(writer, str(b.device_address).encode())
            signal.pause()
        finally:
            os._exit(1)
    os.close(writer)
    try:
        child_address = int(os.read(reader, 64))
        os.close(reader)
        free_child = cma_free_drained(zocl)
        cma_events.take()
        child_bos = {pfn: pages for pfn, pages in cma_events.held.items()
                     if pfn * PAGE == child_address}
        memstat_child = memstat_bos()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    free_after = cma_free_drained(zocl)
    cma_events.take()
    memstat_after = memstat_bos()
    print(f"CmaFree (drained): {free_before} before, {free_child} while the "
          f"child held its BO, {free_after} after it was killed; the child's "
          f"CMA allocation {child_bos}, released after: "
          f"{ {p: n for p, n in cma_events.released.items() if p in child_bos} }; "
          f"memstat_raw (bytes, BOs, memories): {memstat_before}, "
          f"{memstat_child}, {memstat_after}")
    assert child_bos == {child_address // PAGE: 8 * MiB // PAGE}
    # Other users of the kernel's memory may take or give back a few pages
    # of CMA meanwhile: 256 KiB of slack, against the BO's 8 MiB.
    slack = 256 << 10
    assert abs(free_child - (free_before - 8 * MiB)) <= slack
    # The child's death gave its BO back: the kernel's CMA says so.
    assert all(pfn in cma_events.released for pfn in child_bos)
    assert abs(free_after - free_before) <= slack
    assert memstat_after == memstat_before
    # The parent's stats are exact, and its BO works as before.
    assert zocl.stats()["used"] == stats["used"]
    assert zocl.stats()["buffers"] == stats["buffers"]
    assert (mine == 0x11).all()
    mine[:] = 0x33
    mine.flush()
    mine.invalidate()
    assert (mine == 0x33).all()
    del mine
    assert zocl.stats()["used"] == stats["used"] - 3 * MiB

"""The hugepage backend, for real: reserved huge pages, physical addresses
checked against /proc/self/pagemap independently of the backend.  Needs
root; CI sets PYNQ_ALLOC_REQUIRE_HUGEPAGES=1 so that none of it is skipped."""
import ctypes
import errno
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from helpers import MiB, assert_physically_contiguous
from pynq_alloc import allocate, open_memory

GiB = 1 << 30
REQUIRED = os.environ.get("PYNQ_ALLOC_REQUIRE_HUGEPAGES") == "1"
SYSFS = "/sys/kernel/mm/hugepages/hugepages-{}kB/{}"


def _unavailable(reason):
    if REQUIRED:
        pytest.fail(f"hugepage tests are required here but {reason}")
    pytest.skip(reason)


def open_or_skip(**options):
    if os.geteuid() != 0:
        _unavailable("they need root")
    try:
        return open_memory("hugepage", **options)
    except OSError as e:
        _unavailable(f"huge pages cannot be had: {e}")


def read_sysfs(page_kb, name):
    with open(SYSFS.format(page_kb, name)) as f:
        return int(f.read())


# x86 DMA is cache-coherent; on arm64 huge pages can be mapped only cached,
# and flush/invalidate run the cache instructions.
COHERENT = platform.machine() == "x86_64"


@pytest.fixture
def pool():
    """A pool of its own for each test: a failed test's buffers stay alive
    with its traceback, and must not leave the next test short."""
    return open_or_skip(size=64 * MiB)


def test_every_page_has_the_reported_physical_address(pool):
    bufs = [allocate(n, "u1", target=pool, cacheable=True)
            for n in (1, 5000, MiB, 2 * MiB - 4096)]
    for b in bufs:
        b[:] = 7                    # CPU writes land where pagemap says
        assert_physically_contiguous(b)
        assert b.coherent is COHERENT
    v = bufs[2][4097:]
    assert_physically_contiguous(v)


def test_blocks_never_cross_a_physical_break(pool):
    rng = np.random.default_rng(5)
    largest = pool.stats()["largest_free"]
    held = []
    for _ in range(60):
        n = int(rng.integers(1, min(largest, 3 * MiB)))
        try:
            held.append(allocate(n, "u1", target=pool, cacheable=True))
        except MemoryError:
            held.pop(int(rng.integers(len(held))))
            continue
        assert_physically_contiguous(held[-1])
    held.clear()
    assert pool.stats()["used"] == 0


def test_larger_than_any_run_is_a_memory_error(pool):
    stats = pool.stats()
    too_big = stats["largest_free"] + 2 * MiB
    with pytest.raises(MemoryError, match=f"largest free block {stats['largest_free']}"):
        allocate(too_big, "u1", target=pool, cacheable=True)
    assert pool.stats() == stats


def test_device_side_sees_the_same_memory(pool):
    nbytes = 3 * MiB if pool.stats()["largest_free"] >= 4 * MiB else MiB
    b = allocate(nbytes // 4, "u4", target=pool, cacheable=True)
    b[:] = np.arange(b.size, dtype="u4")
    b.flush()
    end = b.device_address + b.nbytes - 16
    assert pool.device_read(end, 16) == b[-4:].tobytes()
    pool.device_write(b.device_address, np.uint32(99).tobytes())
    b.invalidate()
    assert b[0] == 99
    with pytest.raises(ValueError, match="bus error"):
        pool.device_read(b.device_address + b.nbytes, 1)


def test_freebuffer_with_views(pool):
    before = pool.stats()
    b = allocate(5000, "u1", target=pool, cacheable=True)
    v = b[100:]
    b.freebuffer()
    v[:] = 1                        # anonymous memory now
    assert v.freed and v.device_address is None
    assert pool.stats() == before


def test_whole_pages_freed_with_views_come_back_clean(pool):
    # Whole huge pages are handed out from the pool's own mapping; freeing
    # one while a view holds it must still detach the view, and the pages
    # must come back mapped, zeroed and at their physical addresses.
    before = pool.stats()
    for _ in range(3):
        b = allocate(2 * MiB, "u1", target=pool, cacheable=True)
        v = b[10:]
        b.freebuffer()
        v[:] = 1                    # anonymous memory now
        c = allocate(2 * MiB, "u1", target=pool, cacheable=True)
        assert_physically_contiguous(c)
        assert not c.any()
        c[:] = 2
        assert (v == 1).all()
        del b, v, c
    assert pool.stats() == before


def test_gigabyte_pages_give_large_contiguous_blocks():
    pool = open_or_skip(size=GiB, page_size=GiB)
    b = allocate(512 * MiB, "u1", target=pool, cacheable=True)
    b[::4096] = 1
    assert_physically_contiguous(b)
    assert pool.stats()["largest_free"] == GiB - 512 * MiB
    del b, pool


def test_too_few_free_pages_are_reserved():
    open_or_skip(size=2 * MiB)      # root, and huge pages work here
    free = read_sysfs(2048, "free_hugepages")
    total = read_sysfs(2048, "nr_hugepages")
    # Give the free pages back so that the pool must reserve its own.
    with open(SYSFS.format(2048, "nr_hugepages"), "w") as f:
        f.write(str(total - free))
    with pytest.raises(OSError) as info:
        open_memory("hugepage", size=4 * MiB, reserve=False)
    assert info.value.errno == errno.ENOMEM and "nr_hugepages" in str(info.value)
    pool = open_memory("hugepage", size=4 * MiB)
    assert read_sysfs(2048, "nr_hugepages") >= total - free + 2
    assert pool.stats()["total"] == 4 * MiB


def test_without_cap_sys_admin_it_is_eperm():
    open_or_skip(size=2 * MiB)      # leaves a free huge page for the child
    libc = ctypes.CDLL(None, use_errno=True)

    def drop_sys_admin():
        # PR_CAPBSET_DROP, CAP_SYS_ADMIN: the exec'd child never has it.
        if libc.prctl(24, 21, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")

    code = ("import pynq_alloc\n"
            "try:\n"
            "    pynq_alloc.open_memory('hugepage', size=2 << 20, reserve=False)\n"
            "except OSError as e:\n"
            "    print(e.errno, e.filename, 'root' in str(e))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, preexec_fn=drop_sys_admin, cwd="/tmp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(errno.EPERM), "/proc/self/pagemap", "True"]

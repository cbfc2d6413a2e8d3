"""The hugepage backend, for real: reserved huge pages, physical addresses
checked against /proc/self/pagemap independently of the backend.  Needs
root; CI sets PYNQ_ALLOC_REQUIRE_HUGEPAGES=1 so that none of it is skipped."""
import contextlib
import ctypes
import errno
import gc
import mmap
import os
import platform
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

from helpers import MiB, assert_physically_contiguous, in_child
from pynq_alloc import allocate, open_memory

GiB = 1 << 30
REQUIRED = os.environ.get("PYNQ_ALLOC_REQUIRE_HUGEPAGES") == "1"
SYSFS = "/sys/kernel/mm/hugepages/hugepages-{}kB/{}"


def _unavailable(reason):
    if REQUIRED:
        pytest.fail(f"hugepage tests are required here but {reason}")
    pytest.skip(reason)


# What opening says when it takes huge pages from system memory.
TOOK = "hugepage memory took"


def open_or_skip(**options):
    if os.geteuid() != 0:
        _unavailable("they need root")
    try:
        with warnings.catch_warnings():     # tested below, where it matters
            warnings.filterwarnings("ignore", TOOK, UserWarning)
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


def map_anonymous_at(address, nbytes, fill):
    """Maps fresh memory at exactly address, which must be free, and fills
    it: independently of pynq_alloc, as numpy's own arrays might land."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x100000  # NOREPLACE
    got = libc.mmap(address, nbytes, prot, flags, -1, 0)
    assert got == address, f"{address:#x} is not free: {ctypes.get_errno()}"
    ctypes.memset(address, fill, nbytes)


def test_a_forked_child_closing_the_memory_leaves_what_it_mapped_since():
    # A child gives up the whole-page blocks it inherited: one the parent
    # kept for reuse, one it releases, one it frees while a view holds it.
    # Memory of its own then lands where they were; closing the pool must
    # not unmap it (it did, under the child's arrays: a crash).
    held = [open_or_skip(size=6 * MiB)]
    bufs = [allocate(2 * MiB, "u1", target=held[0], cacheable=True)
            for _ in range(3)]
    for i in range(3):
        bufs[i][:] = 0x10 + i
    addresses = [b.ctypes.data for b in bufs]
    bufs.pop(0)                         # kept for reuse, in the parent

    def child():
        view = bufs[1][1:]
        bufs[1].freebuffer()
        bufs.clear()
        del view
        gc.collect()
        for a in addresses:
            map_anonymous_at(a, 2 * MiB, 0x5A)
        held.clear()                    # the last reference: closed
        gc.collect()
        return [ctypes.string_at(a, 2 * MiB) == b"\x5a" * (2 * MiB)
                for a in addresses]

    assert in_child(child) == [True, True, True]
    # The parent's blocks are its own still.
    assert (bufs[0] == 0x11).all() and (bufs[1] == 0x12).all()
    assert_physically_contiguous(bufs[0])
    again = allocate(2 * MiB, "u1", target=held[0], cacheable=True)
    assert again.ctypes.data == addresses[0] and not again.any()


def test_gigabyte_pages_give_large_contiguous_blocks():
    pool = open_or_skip(size=GiB, page_size=GiB)
    b = allocate(512 * MiB, "u1", target=pool, cacheable=True)
    b[::4096] = 1
    assert_physically_contiguous(b)
    assert pool.stats()["largest_free"] == GiB - 512 * MiB
    del b, pool


def write_sysfs(page_kb, name, value):
    with open(SYSFS.format(page_kb, name), "w") as f:
        f.write(str(value))


@contextlib.contextmanager
def no_free_pages(page_kb):
    """No free huge page of page_kb (the free ones given back to the
    system), so that a pool must take its pages from system memory;
    nr_hugepages is put back afterwards, whatever happens."""
    open_or_skip(size=page_kb << 10, page_size=page_kb << 10)   # root, pages
    gc.collect()
    saved = read_sysfs(page_kb, "nr_hugepages") - read_sysfs(page_kb, "surplus_hugepages")
    try:
        write_sysfs(page_kb, "nr_hugepages", read_sysfs(page_kb, "nr_hugepages")
                    - read_sysfs(page_kb, "free_hugepages"))
        yield
    finally:
        gc.collect()
        write_sysfs(page_kb, "nr_hugepages", saved)


@pytest.fixture
def none_free():
    with no_free_pages(2048):
        yield


def counts(page_kb=2048):
    """(nr_hugepages, surplus_hugepages) of page_kb pages."""
    return (read_sysfs(page_kb, "nr_hugepages"),
            read_sysfs(page_kb, "surplus_hugepages"))


def open_taking_a_gigabyte_page():
    """Open a 1 GiB pool that must take its page from system memory, and
    return it with the warning that says so.  The page given back a moment
    ago is one the kernel may not find again: a whole free GiB is rare on a
    busy machine, and not this package's to make.  Compact and retry, then
    skip saying why; only that ENOMEM is forgiven."""
    for attempt in range(3):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pool = open_memory("hugepage", size=GiB, page_size=GiB)
            except OSError as e:
                if e.errno != errno.ENOMEM or "the kernel found 0" not in str(e):
                    raise
                with open("/proc/sys/vm/compact_memory", "w") as f:
                    f.write("1")
                continue
        (took,) = [w for w in caught if issubclass(w.category, UserWarning)]
        return pool, str(took.message)
    pytest.skip("the kernel gave a 1 GiB page back and could not find a "
                "free GiB again, even after compacting memory")


def test_a_gigabyte_page_taken_goes_back_too():
    # 1 GiB pages cannot be surplus pages by overcommit, only by a put-back.
    with no_free_pages(1048576):
        before = counts(1048576)
        pool, said = open_taking_a_gigabyte_page()
        assert "took 1 huge page of 1 GiB from system memory: it needs 1 " in said
        assert counts(1048576) == (before[0] + 1, before[1] + 1)
        del pool
        gc.collect()
        assert counts(1048576) == before


def test_too_few_free_pages_are_taken_and_said(none_free):
    nr, surplus = counts()
    with pytest.raises(OSError) as info:
        open_memory("hugepage", size=4 * MiB, reserve=False)
    assert info.value.errno == errno.ENOMEM
    assert str(info.value).startswith(
        "[Errno 12] cannot get 2 huge pages of 2097152 bytes for 4194304 "
        "bytes: 0 were free; reserve more by writing to /sys/kernel/mm/"
        "hugepages/hugepages-2048kB/nr_hugepages (as root), or pass "
        "reserve=True as root")
    with pytest.warns(UserWarning) as caught:
        pool = open_memory("hugepage", size=4 * MiB)
    (warning,) = caught
    assert warning.filename == __file__     # the line that opened it
    assert str(warning.message).startswith(
        "hugepage memory took 2 huge pages of 2 MiB from system memory: it "
        "needs 2 and 0 were free. It raised /sys/kernel/mm/hugepages/"
        "hugepages-2048kB/nr_hugepages for them while it opened and put it "
        "back, which leaves them surplus huge pages: the kernel returns them "
        "to system memory when this Memory and its buffers are gone, or the "
        "process ends.")
    assert pool.stats()["total"] == 4 * MiB
    # The setting is as it was; the pages in use are counted as surplus.
    assert counts() == (nr + 2, surplus + 2)


def test_pages_taken_go_back_when_the_memory_and_its_buffers_are_gone(none_free):
    before = counts()
    with pytest.warns(UserWarning, match=TOOK):
        pool = open_memory("hugepage", size=6 * MiB)
    buf = allocate(MiB, "u1", target=pool, cacheable=True)
    del pool
    gc.collect()
    assert counts() == (before[0] + 3, before[1] + 3)   # the buffer holds it
    buf[:] = 1
    del buf
    gc.collect()
    assert counts() == before
    # Free pages: nothing taken, nothing said.
    write_sysfs(2048, "nr_hugepages", before[0] + 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = open_memory("hugepage", size=6 * MiB)
    assert counts() == (before[0] + 3, before[1])
    del pool


# Opens a pool with no huge page free, says so, and waits to be killed.
HOLD_POOL = """
import sys, warnings
import pynq_alloc
warnings.simplefilter("ignore")
pool = pynq_alloc.open_memory("hugepage", size=4 << 20)
print("open", flush=True)
sys.stdin.read()
"""


def test_pages_taken_go_back_when_the_process_is_killed(none_free):
    before = counts()
    child = subprocess.Popen([sys.executable, "-c", HOLD_POOL], cwd="/tmp",
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline() == "open\n"
        assert counts() == (before[0] + 2, before[1] + 2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert counts() == before


def test_processes_opening_at_once_each_get_their_pages(none_free):
    # Each raises nr_hugepages for itself and puts it back, one at a time:
    # none takes the pages raised for another, none puts back over another.
    before = counts()
    children = [subprocess.Popen([sys.executable, "-c", HOLD_POOL], cwd="/tmp",
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    try:
        for child in children:
            assert child.stdout.readline() == "open\n", child.stderr.read()
        assert counts() == (before[0] + 8, before[1] + 8)
    finally:
        for child in children:
            child.stdin.close()
        for child in children:
            child.wait(timeout=60)
    assert counts() == before


def test_without_cap_sys_admin_it_is_eperm(none_free):
    # A free huge page for the child, which cannot raise nr_hugepages.
    write_sysfs(2048, "nr_hugepages", read_sysfs(2048, "nr_hugepages") + 1)
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

"""Processes: memory is shared with forked children, multiprocessing workers
and other programs opening the same device, and no two users ever receive
the same bytes.  A child uses what it inherited but never gives it back;
it allocates where that is safe and gets a clear error where it is not."""
import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fake_devices import make_udmabuf, make_xlnk, read_log
from helpers import in_child, worker_sum
from pynq_alloc import allocate, default_memory, open_memory


def test_a_child_cannot_allocate_from_its_parents_pool(mem):
    parent = allocate(1024, "u4", target=mem)
    parent[:] = 7

    def child():
        with pytest.raises(OSError) as info:
            allocate(1024, "u4", target=mem)
        assert info.value.errno == errno.EBUSY
        assert f"opened by process {os.getppid()}" in str(info.value)
        assert "spawn" in str(info.value)
        return mem.stats()["buffers"]

    assert in_child(child) == 1
    assert (parent == 7).all() and mem.stats()["buffers"] == 1
    again = allocate(1024, "u4", target=mem)       # the parent still can
    assert again.device_address != parent.device_address


def test_a_child_uses_inherited_buffers_but_never_frees_them(mem):
    parent = allocate(1024, "u4", target=mem)
    views = [parent[10:]]
    parent[:] = 5
    before = mem.stats()

    def child():
        assert (views[0] == 5).all()
        views[0][:] = 9             # uncached sim memory: one copy
        views.clear()               # the last view dies: no release
        parent.freebuffer()
        return True

    assert in_child(child)
    assert mem.stats() == before
    assert not parent.freed and (parent[10:] == 9).all()
    # The parent's block was not given back: nothing else receives it.
    others = [allocate(1024, "u4", target=mem) for _ in range(4)]
    assert all(o.device_address != parent.device_address for o in others)


def test_a_childs_default_memory_is_its_own():
    parent = allocate(1024, "u4")
    parent[:] = 3
    address = parent.device_address

    def child():
        mine = allocate(1024, "u4")
        mine[:] = 4
        assert mine.memory is not parent.memory and mine.memory.kind == "sim"
        return int(parent.sum()), default_memory() is mine.memory

    assert in_child(child) == (3 * 1024, True)
    assert (parent == 3).all() and parent.device_address == address
    assert default_memory() is parent.memory


def test_fork_while_another_thread_holds_the_lock_never_hangs(tmp_path, libcma, monkeypatch):
    # The stand-in libcma's cma_alloc takes 300 ms, and the memory's lock is
    # held around it: the fork lands while another thread holds it.
    library, _ = make_xlnk(str(tmp_path), libcma[0], monkeypatch)
    mem = open_memory("xlnk", library=library)
    monkeypatch.setenv("PA_FAKE_XLNK_ALLOC_MS", "300")
    holder = threading.Thread(target=allocate, args=(4096,),
                              kwargs={"target": mem})
    holder.start()
    time.sleep(0.1)
    try:
        monkeypatch.setenv("PA_FAKE_XLNK_ALLOC_MS", "0")
        assert in_child(lambda: allocate(4096, "u1", target=mem).nbytes,
                        timeout=10) == 4096
    finally:
        holder.join()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_workers_allocate(method):
    keep = allocate(1 << 16, "u1")          # the parent holds memory too
    keep[:] = 1
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        results = pool.map(worker_sum, [100, 1000, 10000])
    assert results == [(n * (n - 1) // 2, "sim") for n in (100, 1000, 10000)]
    assert (keep == 1).all()


# u-dma-buf: one device, one heap.

def test_udmabuf_opened_twice_in_one_process_is_one_memory(tmp_path):
    device, sysfs = make_udmabuf(str(tmp_path))
    first = open_memory("udmabuf", device=device, sysfs=sysfs)
    second = open_memory(f"udmabuf:device={device},sysfs={sysfs}")
    assert first is second
    a, b = allocate(4096, "u1", target=first), allocate(4096, "u1", target=second)
    assert a.device_address != b.device_address


HOLD = """
import os, sys, time
from pynq_alloc import _open, allocate, open_memory
_open._udmabuf_file_stand_ins.add(os.path.realpath(sys.argv[1]))  # a test's
m = open_memory("udmabuf", device=sys.argv[1], sysfs=sys.argv[2])
b = allocate(4096, "u1", target=m)
print("holding", flush=True)
time.sleep(60)
"""


def test_udmabuf_another_process_is_kept_out_until_the_holder_dies(tmp_path):
    device, sysfs = make_udmabuf(str(tmp_path))
    env = dict(os.environ)
    env.pop("PYNQ_ALLOC_MEMORY", None)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, device, sysfs],
                              stdout=subprocess.PIPE, text=True, env=env,
                              cwd=str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(OSError) as info:
            open_memory("udmabuf", device=device, sysfs=sysfs)
        assert info.value.errno == errno.EBUSY
        assert "in use by another process" in str(info.value)
        assert info.value.filename == device
    finally:
        holder.send_signal(signal.SIGKILL)          # as kill -9
        holder.wait()
    mem = open_memory("udmabuf", device=device, sysfs=sysfs)
    assert mem.stats()["used"] == 0
    assert allocate(mem.size, "u1", target=mem).device_address == mem.base_address


def test_udmabuf_a_child_cannot_allocate_and_frees_nothing(tmp_path):
    device, sysfs = make_udmabuf(str(tmp_path))
    mem = open_memory("udmabuf", device=device, sysfs=sysfs)
    parent = allocate(8192, "u1", target=mem)

    def child():
        again = open_memory("udmabuf", device=device, sysfs=sysfs)
        with pytest.raises(OSError, match="forked child cannot allocate"):
            allocate(4096, "u1", target=again)
        parent.freebuffer()
        return True

    assert in_child(child)
    assert mem.stats()["buffers"] == 1 and not parent.freed


# Kernel allocators: a child allocates for itself and frees only its own.

def test_xlnk_child_allocates_and_never_frees_the_parents(tmp_path, libcma, monkeypatch):
    library, log = make_xlnk(str(tmp_path), libcma[0], monkeypatch)
    mem = open_memory("xlnk", library=library)
    parent = allocate(4096, "u1", target=mem)
    parent[:] = 6

    def child():
        mine = allocate(4096, "u1", target=mem)
        assert mine.device_address != parent.device_address
        address = mine.device_address
        del mine
        parent.freebuffer()
        return address

    child_address = in_child(child)
    frees = [line for line in read_log(log) if line.startswith("free")]
    assert frees == [f"free {child_address:#x}"]
    assert (parent == 6).all() and mem.stats()["buffers"] == 1


def test_fork_while_another_thread_flushes_a_sim_buffer_never_hangs():
    # The sim's coherence model has a lock of its own, held through a
    # whole flush; a fork mid-flush must not leave it held in the child.
    mem = open_memory("sim", size=128 << 20)
    big = allocate(64 << 20, "u1", target=mem, cacheable=True)
    small = allocate(64, "u1", target=mem, cacheable=True)
    stop = threading.Event()

    def flush_forever():
        while not stop.is_set():
            big[::4096] += 1
            big.flush()

    flusher = threading.Thread(target=flush_forever)
    flusher.start()
    try:
        for _ in range(5):
            time.sleep(0.02)

            def child():
                small[:] = 3
                small.flush()
                return mem.device_read(small.device_address, 4)

            assert in_child(child, timeout=10) == bytes([3]) * 4
    finally:
        stop.set()
        flusher.join()

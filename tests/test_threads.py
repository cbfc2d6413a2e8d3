"""allocate, release and flush from several threads at once."""
import threading

import numpy as np

from fake_devices import make_udmabuf
from helpers import MiB, run_python
from pynq_alloc import allocate, open_memory


def _run(workers):
    errors = []

    def wrap(fn):
        def target():
            try:
                fn()
            except BaseException as e:      # reported by the main thread
                errors.append(e)
        return target

    threads = [threading.Thread(target=wrap(fn)) for fn in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_concurrent_allocate_flush_release():
    mem = open_memory("sim", size=64 * MiB)

    def worker(seed):
        def fn():
            rng = np.random.default_rng(seed)
            for _ in range(300):
                n = int(rng.integers(1, 100_000))
                b = allocate(n, "u1", target=mem, cacheable=bool(seed % 2))
                b[:] = seed
                b.flush()
                # Nobody else got this memory.
                seen = np.frombuffer(mem.device_read(b.device_address, n), "u1")
                assert (seen == seed).all()
                del b
        return fn

    _run([worker(s) for s in range(1, 5)])
    s = mem.stats()
    assert s["used"] == 0 and s["buffers"] == 0


def test_freebuffer_while_another_thread_flushes():
    mem = open_memory("sim", size=128 * MiB)
    b = allocate(32 * MiB, "u1", target=mem, cacheable=True)   # real syncs
    view = b[1:]
    outcomes = []

    def flusher():
        for _ in range(50):
            try:
                view.flush()        # 32 MiB without the GIL
            except ValueError:
                outcomes.append("freed")
                return
        outcomes.append("done")

    t = threading.Thread(target=flusher)
    t.start()
    b.freebuffer()
    t.join()
    assert outcomes in (["freed"], ["done"])
    assert view.freed and mem.stats()["used"] == 0


def test_mixed_stress_for_a_bounded_time_leaves_exact_stats():
    """Threads allocate, view, write, sync, read back as the device and
    free in random order for about two seconds; each checks that nobody
    else wrote its memory, and the figures are exact at the end."""
    import time
    mem = open_memory("sim", size=64 * MiB)
    deadline = time.monotonic() + 2.0

    def worker(seed):
        def fn():
            rng = np.random.default_rng(seed)
            held = []
            while time.monotonic() < deadline:
                op = rng.integers(4)
                if op == 0 or not held:
                    b = allocate(int(rng.integers(1, 300_000)), "u1", target=mem,
                                 cacheable=bool(rng.integers(2)))
                    b[:] = seed
                    b.flush()
                    held.append(b)
                elif op == 1:
                    b = held[int(rng.integers(len(held)))]
                    v = b[int(rng.integers(b.size)):]
                    seen = mem.device_read(v.device_address, v.nbytes)
                    assert seen == bytes([seed]) * v.nbytes
                    v.invalidate()
                    assert (v == seed).all()
                elif op == 2:
                    held.pop(int(rng.integers(len(held)))).freebuffer()
                else:
                    del held[int(rng.integers(len(held)))]
            held.clear()
        return fn

    _run([worker(s) for s in range(1, 5)])
    s = mem.stats()
    assert s["used"] == 0 and s["buffers"] == 0 and s["free"] == 64 * MiB


def test_threads_opening_one_udmabuf_at_once_get_one_memory(tmp_path):
    """u-dma-buf's single-process guard never mistakes this process for
    another: threads opening the device together share one Memory."""
    device, sysfs = make_udmabuf(str(tmp_path))
    for _ in range(100):            # each round opens the device afresh
        barrier = threading.Barrier(4)
        opened = []

        def open_it():
            barrier.wait()
            opened.append(open_memory("udmabuf", device=device, sysfs=sysfs))
        _run([open_it] * 4)
        assert len(opened) == 4 and all(m is opened[0] for m in opened)
        del opened              # closes the device for the next round


FIRST_ALLOCATE_RACE = """
import os, threading
from pynq_alloc import _open, _probe, allocate

if "STAND_IN" in os.environ:        # a test's u-dma-buf, a regular file
    _open._udmabuf_file_stand_ins.add(os.path.realpath(os.environ["STAND_IN"]))

choose_default = _probe.choose_default
choices = []
_probe.choose_default = lambda: choices.append(1) or choose_default()


def child():
    barrier = threading.Barrier(8)
    memories, errors = [], []

    def first_allocate():
        barrier.wait()
        try:
            memories.append(allocate(16).memory)
        except OSError as e:
            errors.append(e)
    threads = [threading.Thread(target=first_allocate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors or len(choices) != 1 or len(set(map(id, memories))) != 1:
        os.write(2, f"{errors[:1]}, chose {len(choices)} times\\n".encode())
        os._exit(1)
    os._exit(0)


failed = 0
for _ in range(30):
    pid = os.fork()
    if pid == 0:
        child()
    failed += os.waitpid(pid, 0)[1] != 0    # not exited with 0
print(failed)
"""


def test_threads_allocating_first_together_get_one_default(tmp_path):
    """The default memory is chosen once, however many threads ask first:
    on u-dma-buf, which admits one process, a second open by a thread
    would be EBUSY.  Each of 30 processes, forked before anything chose a
    default, releases 8 threads into their first allocate() at once."""
    device, sysfs = make_udmabuf(str(tmp_path))
    result = run_python(FIRST_ALLOCATE_RACE, env={
        "PYNQ_ALLOC_MEMORY": f"udmabuf:device={device},sysfs={sysfs}",
        "STAND_IN": device})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", result.stderr


def test_threads_allocating_first_together_choose_once():
    """The same for the simulated memory, which any number may open: one
    choice, one Memory for every thread."""
    result = run_python(FIRST_ALLOCATE_RACE, env={"PYNQ_ALLOC_MEMORY": "sim:size=1M"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", result.stderr

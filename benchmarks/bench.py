"""pynq_alloc against numpy, in one process, reported as ratios.

    python benchmarks/bench.py           # about a minute and a half
    python benchmarks/bench.py heap      # one section: ratios, heap,
                                         # hugepage, pynq

The two sides of a comparison are timed in alternating rounds and each
keeps its best round, so that a burst of noise on a shared machine cannot
land on one side only; the best shows the cost of the code rather than the
machine's noise.  A ratio is pynq_alloc's time over numpy's for the same
job in the same run.

The rows with a target are the targets of benchmarks/README.md.  The
hugepage rows need root and a few free huge pages (they reserve them
themselves, and put nr_hugepages back); elsewhere they say why they
were skipped.  The PYNQ row needs PYNQ and numpy below 2 (PYNQ's own
buffers cannot be made on numpy 2).  The heap row is not a ratio: it is
the allocator's extra cost with 100,000 blocks live over its cost with
100, in units of one
dependent random read over memory the size of its bookkeeping (a cache
miss there), which it measures itself.  Its figures come from
benchmarks/heap_bench.c, built with make and run as a child process once
per figure, so that turning off transparent huge pages and malloc's
dynamic mmap threshold for them never touches this process; without make
or a C compiler the row is skipped.  `make -C benchmarks` runs the same
heap workload against malloc.

"""
import argparse
import errno
import mmap
import os
import shutil
import subprocess
import sys
import timeit

import numpy as np

import pynq_alloc
from pynq_alloc import allocate, open_memory


ROUNDS = 25     # more rounds, more chances of a quiet moment on each side


def best_ns(stmt, env, number, rounds=ROUNDS):
    """Best time of one execution of stmt, in nanoseconds."""
    timer = timeit.Timer(stmt, globals=env)
    return min(timer.timeit(number) for _ in range(rounds)) / number * 1e9


def pair_ns(ours, theirs, env, number, rounds=ROUNDS):
    """Best times of two statements, timed in alternating rounds."""
    a, b = timeit.Timer(ours, globals=env), timeit.Timer(theirs, globals=env)
    best_a = best_b = float("inf")
    for _ in range(rounds):
        best_a = min(best_a, a.timeit(number))
        best_b = min(best_b, b.timeit(number))
    return best_a / number * 1e9, best_b / number * 1e9


def traced_pair_ns(stmt, env, number, rounds=ROUNDS):
    """Best times of stmt with tracing on and off, in alternating rounds."""
    timer = timeit.Timer(stmt, globals=env)
    best_on = best_off = float("inf")
    for _ in range(rounds):
        pynq_alloc.trace(False)
        best_off = min(best_off, timer.timeit(number))
        pynq_alloc.trace(True)
        best_on = min(best_on, timer.timeit(number))
    pynq_alloc.trace(False)
    return best_on / number * 1e9, best_off / number * 1e9


ROWS = []


def report(name, ours_ns, numpy_ns, numpy_name, target=None, unit="x"):
    ratio = ours_ns / numpy_ns
    verdict = "" if target is None else ("meets" if ratio <= target else "MISSES")
    goal = "" if target is None else f"<= {target:g}{unit}"
    ROWS.append((name, ours_ns, numpy_name, numpy_ns, ratio, goal, verdict,
                 unit))


def skipped(name, why):
    ROWS.append((name, None, why, None, None, "", "skipped", ""))


HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-{}kB/{}"


def read_setting(page_kb, name):
    with open(HUGEPAGES.format(page_kb, name)) as f:
        return f.read().strip()


def write_setting(page_kb, name, value):
    with open(HUGEPAGES.format(page_kb, name), "w") as f:
        f.write(str(value))


def pool_with_a_run(nbytes, run):
    """A 2 MiB-page pool of nbytes with a physically contiguous run of at
    least `run` bytes, or None.  Free huge pages lie wherever the kernel
    found them; a 1 GiB page split into 2 MiB ones (the kernel's `demote`)
    gives 512 in a row."""
    pool = open_memory("hugepage", size=nbytes)
    if pool.stats()["largest_free"] >= run:
        return pool
    del pool
    try:
        write_setting(1048576, "nr_hugepages",
                      int(read_setting(1048576, "nr_hugepages")) + 1)
        write_setting(1048576, "demote", 1)
    except OSError:
        return None
    pool = open_memory("hugepage", size=nbytes)
    return pool if pool.stats()["largest_free"] >= run else None


def reserve_free(pages):
    """At least `pages` free 2 MiB huge pages, raising nr_hugepages (the
    caller puts it back)."""
    free = int(read_setting(2048, "free_hugepages"))
    if free < pages:
        write_setting(2048, "nr_hugepages",
                      int(read_setting(2048, "nr_hugepages")) + pages - free)


def populate_hugetlb(nbytes):
    """What open_memory('hugepage') must at least do: a hugetlbfs memfd
    whose pages are all taken now (MAP_POPULATE)."""
    fd = os.memfd_create("bench", os.MFD_HUGETLB)
    try:
        os.ftruncate(fd, nbytes)
        # mmap names MAP_POPULATE from Python 3.10; Linux's value on x86 and ARM.
        populate = getattr(mmap, "MAP_POPULATE", 0x8000)
        mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED | populate).close()
    finally:
        os.close(fd)


def hugepage_rows(env):
    """The hugepage backend: large allocations and opening a pool."""
    names = ("hugepage: allocate+free 32 MiB, zero=False",
             "hugepage: open_memory 64 MiB")
    if os.geteuid() != 0:
        for name in names:
            skipped(name, "needs root")
        return
    saved = {}
    try:
        for kb in (2048, 1048576):
            saved[kb] = read_setting(kb, "nr_hugepages")
    except OSError as e:
        if 2048 not in saved:
            for name in names:
                skipped(name, f"no 2 MiB huge pages ({e.strerror})")
            return
    try:
        try:
            # Reserves the pages that both sides then use: a pool gives
            # back, when it closes, the pages it took for itself.
            reserve_free(32)
            pool = pool_with_a_run(64 << 20, 32 << 20)
        except OSError as e:
            for name in names:
                skipped(name, f"huge pages cannot be had: {e}")
            return
        # zero=False: np.empty does not zero either (and the pool's pages
        # came zeroed from the kernel).
        if pool is None:
            skipped(names[0], "no 32 MiB run of 2 MiB pages here")
        else:
            env["pool"] = pool
            ours, theirs = pair_ns(
                "allocate(32 << 20, 'u1', pool, cacheable=True, zero=False)",
                "np.empty(32 << 20, 'u1')", env, 200)
            report(names[0], ours, theirs, "np.empty 32 MiB", 1.5)
            del env["pool"], pool
        env["populate_hugetlb"] = populate_hugetlb
        ours, theirs = pair_ns("open_memory('hugepage', size=64 << 20)",
                               "populate_hugetlb(64 << 20)", env, 5)
        report(names[1], ours, theirs, "memfd+MAP_POPULATE", 1.3)
    finally:
        for kb, value in saved.items():
            try:
                write_setting(kb, "nr_hugepages", value)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise


BENCHMARKS = os.path.dirname(os.path.abspath(__file__))


def heap_program():
    """benchmarks/heap_bench.c built (make keeps it up to date): its path
    and None, or None and why it cannot be had."""
    cc = (os.environ.get("CC") or "cc").split()[0]
    if shutil.which("make") is None:
        return None, "needs make"
    if shutil.which(cc) is None:
        return None, f"needs a C compiler ({cc})"
    made = subprocess.run(["make", "-s", "-C", BENCHMARKS, "BUILD=build",
                           "build/heap_bench"], capture_output=True, text=True)
    if made.returncode != 0:
        first = (made.stderr.strip().splitlines() or ["?"])[0]
        return None, f"make -C benchmarks failed: {first}"
    return os.path.join(BENCHMARKS, "build", "heap_bench"), None


def heap_figure(program, *args):
    """One run of heap_bench: its key=value output as numbers."""
    done = subprocess.run([program, *map(str, args)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"heap_bench {' '.join(map(str, args))}: "
                           f"{done.stderr.strip()}")
    return {k: float(v) for k, v in
            (item.split("=", 1) for item in done.stdout.split())}


def heap_row(env):
    """The allocator alone: free+alloc with 100 versus 100,000 and
    4,000,000 blocks live, the difference in units of a random read over
    its bookkeeping."""
    name = "heap: free+alloc, 100k live over 100"
    program, why = heap_program()
    if program is None:
        skipped(name, why)
        return
    small = large = unit = float("inf")
    # Short rounds, many of them: the best of each side comes from a quiet
    # moment, and the difference of two bests is only as good as both.
    for seed in range(1, 22):       # alternating, as above
        small = min(small, heap_figure(program, "heap", 100, 300_000,
                                       seed)["ns_per_op"])
        got = heap_figure(program, "heap", 100_000, 300_000, seed)
        large = min(large, got["ns_per_op"])
        meta = int(got["meta_bytes"])
        unit = min(unit, heap_figure(program, "read", meta, 1_000_000,
                                     seed)["ns_per_read"])
    report(name, large - small, unit,
           f"random read in {meta / 2**20:.1f} MiB", 1.5, unit=" reads")
    # Millions live: the bookkeeping far past the last-level cache, so the
    # figure is about memory.  Fewer rounds: each fills 4,000,000 blocks.
    many = unit = float("inf")
    for seed in range(1, 6):
        got = heap_figure(program, "heap", 4_000_000, 300_000, seed)
        many = min(many, got["ns_per_op"])
        meta = int(got["meta_bytes"])
        unit = min(unit, heap_figure(program, "read", meta, 1_000_000,
                                     seed)["ns_per_read"])
        small = min(small, heap_figure(program, "heap", 100, 300_000,
                                       seed)["ns_per_op"])
    report("  4,000,000 live over 100", many - small, unit,
           f"random read in {meta / 2**20:.0f} MiB", 1.5, unit=" reads")


def numpy_on_buffer_rows(env):
    """numpy's own operations on a Buffer against the same on an ndarray,
    and device_address against PYNQ's way, an attribute stored on an
    ndarray subclass instance.  Uses env["mem"]; adds nothing to env."""
    buf = allocate(1024, "u4", env["mem"])
    # The ndarray is a plain view of the Buffer's own memory, so both sides
    # read the same bytes at the same place: against np.zeros's memory the
    # copy row moved between 1.25x and 1.7x with where earlier rows had
    # left malloc's free blocks.
    arr = np.asarray(buf)
    pynq = np.zeros(1024, "u4").view(type("P", (np.ndarray,), {}))
    pynq.physical_address = 0x1000_0000
    # numpy's subclass lookups alone: a wrap of None is never called.
    unwrapped = arr.view(type("N", (np.ndarray,), {"__array_wrap__": None}))
    env = dict(env, b=buf, a=arr, view=buf[1:100], pynq=pynq,
               s=arr.view(type("S", (np.ndarray,), {})), n=unwrapped)
    # A ufunc result: numpy asks a Buffer operand for its __array_ufunc__,
    # __array_priority__ and __array_wrap__, then calls the wrap.  The
    # empty subclass is for scale: numpy's subclass path, ndarray's wrap.
    ours, theirs = pair_ns("b + 1", "a + 1", env, 100_000)
    report("b + 1, (1024,) u4", ours, theirs, "ndarray + 1", 1.1)
    ours, theirs = pair_ns("n + 1", "a + 1", env, 100_000)
    report("  floor: __array_wrap__ = None", ours, theirs, "ndarray + 1")
    ours, theirs = pair_ns("s + 1", "a + 1", env, 100_000)
    report("  class S(np.ndarray): pass", ours, theirs, "ndarray + 1")
    # A reduction: the same questions, and a scalar from the wrap.
    ours, theirs = pair_ns("b.sum()", "a.sum()", env, 100_000)
    report("b.sum(), (1024,) u4", ours, theirs, "ndarray.sum()")
    # A copy: numpy keeps the subclass, made as it makes views.
    ours, theirs = pair_ns("b.copy()", "a.copy()", env, 200_000)
    report("b.copy(), (1024,) u4", ours, theirs, "ndarray.copy()", 1.1)
    ours, theirs = pair_ns("s.copy()", "a.copy()", env, 200_000)
    report("  class S(np.ndarray): pass", ours, theirs, "ndarray.copy()")
    # PYNQ's buffers store physical_address on each instance.
    ours, theirs = pair_ns("view.device_address", "pynq.physical_address",
                           env, 500_000)
    report("view.device_address", ours, theirs, "P().physical_address", 1.0)


def ratio_rows(env):
    """pynq_alloc against numpy on the sim."""
    mem = env["mem"] = open_memory("sim", size=512 << 20)

    # Allocate and release a (1024,) u4 buffer, steady state.  New memory
    # reads as zeros, as PYNQ's does; zero=False shows what that costs.
    env["u4"] = np.dtype("u4")
    ours, theirs = pair_ns("allocate((1024,), 'u4', mem)",
                           "np.empty((1024,), 'u4')", env, 100_000)
    report("allocate+release (1024,) u4", ours, theirs, "np.empty", 1.0)
    ours, theirs = pair_ns("allocate((1024,), 'u4', mem, zero=False)",
                           "np.empty((1024,), 'u4')", env, 100_000)
    report("  the same, zero=False", ours, theirs, "np.empty")
    ours, theirs = pair_ns("allocate((1024,), 'u4', mem, cacheable=True)",
                           "np.zeros((1024,), 'u4')", env, 100_000)
    report("  cacheable (both sides zeroed)", ours, theirs, "np.zeros")
    # pynq_alloc.trace(True) records 5 frames of the stack at each allocate.
    on, off = traced_pair_ns("allocate((1024,), 'u4', mem)", env, 100_000)
    report("  traced (trace(True))", on, off, "untraced (the default)")

    # A zeroed 64 MiB buffer: pages the kernel gives back zeroed, as
    # np.zeros gets them from calloc.
    ours, theirs = pair_ns("allocate(64 << 20, 'u1', mem)",
                           "np.zeros(64 << 20, 'u1')", env, 20, rounds=9)
    report("allocate+release 64 MiB, zeroed", ours, theirs, "np.zeros")

    # The same, then filled: every page is touched, as a user would.
    ours, theirs = pair_ns("allocate(64 << 20, 'u1', mem)[:] = 1",
                           "np.empty(64 << 20, 'u1')[:] = 1", env, 3, rounds=7)
    report("sim: allocate 64 MiB then fill", ours, theirs,
           "np.empty then fill", 1.3)
    # Its floor: the sim's memory is shared with forked children, as device
    # memory is, so it is shmem, whose pages are 4 KiB where the kernel's
    # shmem_enabled is 'never' (numpy's are transparent huge pages).
    env["mmap"] = mmap
    ours, theirs = pair_ns("np.frombuffer(mmap.mmap(-1, 64 << 20), 'u1')[:] = 1",
                           "np.empty(64 << 20, 'u1')[:] = 1", env, 3, rounds=7)
    report("  floor: shared memory, map then fill", ours, theirs,
           "np.empty then fill")

    # A mix of 64 sizes, 256 B to 4 MiB, allocated and released in turn.
    env["sizes"] = [int(s) for s in np.geomspace(256, 4 << 20, 64)]
    ours, theirs = pair_ns("for s in sizes: allocate(s, 'u1', mem)",
                           "for s in sizes: np.zeros(s, 'u1')", env, 1_000)
    report("allocate+release, 64 sizes", ours / 64, theirs / 64, "np.zeros", 3.0)
    ours, theirs = pair_ns("for s in sizes: allocate(s, 'u1', mem, zero=False)",
                           "for s in sizes: np.empty(s, 'u1')", env, 1_000)
    report("  the same, zero=False", ours / 64, theirs / 64, "np.empty", 3.0)

    # Slicing.
    env["buf"] = allocate(4096, "u4", mem)
    env["arr"] = np.empty(4096, "u4")
    ours, theirs = pair_ns("buf[1:100]", "arr[1:100]", env, 200_000)
    report("buf[1:100]", ours, theirs, "ndarray[1:100]", 1.2)
    # Its floor: any subclass of ndarray, even an empty one written in
    # Python, takes numpy's subclass path for each view.
    env["sub"] = env["arr"].view(type("Subclass", (np.ndarray,), {}))
    ours, theirs = pair_ns("sub[1:100]", "arr[1:100]", env, 200_000)
    report("  floor: class S(np.ndarray): pass", ours, theirs,
           "ndarray[1:100]")
    numpy_on_buffer_rows(env)

    # device_address of a view, against a trivial computed numpy attribute
    # (numpy's own ways to a data pointer, .ctypes.data and
    # __array_interface__, build objects and take far longer).
    env["view"] = env["buf"][1:100]
    env["aview"] = env["arr"][1:100]
    ours, theirs = pair_ns("view.device_address", "aview.nbytes", env,
                           200_000)
    report("view.device_address", ours, theirs, "ndarray.nbytes", 1.5)

    # flush() on a coherent buffer: a check and a store barrier.
    env["coherent"] = allocate(4096, "u4", mem, cacheable=False)
    ours, theirs = pair_ns("coherent.flush()", "arr.nbytes", env, 200_000)
    report("flush(), coherent buffer", ours, theirs, "ndarray.nbytes")

    # flush() of 64 MiB of non-coherent memory, warm (both sides' pages
    # are in place after the first round), with the sim's plain model and
    # with its cache-line model; then with a line of every page dirty, and
    # invalidate().
    env["src"] = np.ones(64 << 20, "u1")
    env["dst"] = np.empty(64 << 20, "u1")
    plain = open_memory("sim", size=128 << 20, coherence="off")
    for name, memory, target in (("coherence='off'", plain, 1.1),
                                 ("line model", mem, 1.5)):
        env["big"] = allocate(64 << 20, "u1", memory, cacheable=True)
        env["big"][:] = 1
        env["big"].flush()
        ours, theirs = pair_ns("big.flush()", "np.copyto(dst, src)", env, 4,
                               rounds=7)
        report(f"sim: warm flush() 64 MiB, {name}", ours, theirs,
               "np.copyto 64 MiB", target)
    ours, theirs = pair_ns("big[::4096] += 1; big.flush()",
                           "src[::4096] += 1; np.copyto(dst, src)", env, 4,
                           rounds=7)
    report("  a line of each page dirty", ours, theirs, "the same, np.copyto",
           1.5)
    ours, theirs = pair_ns("big.invalidate()", "np.copyto(dst, src)", env, 4,
                           rounds=7)
    report("  invalidate() 64 MiB, line model", ours, theirs,
           "np.copyto 64 MiB", 1.5)
    del env["big"], env["src"], env["dst"]


def hugepage_reuse_rows(env):
    """The hugepage backend's reuse cache serves the default (uncached)
    request as it serves cacheable=True: every block is mapped cached."""
    name = "hugepage: allocate+drop 4 KiB, default"
    if os.geteuid() != 0:
        skipped(name, "needs root")
        return
    try:
        saved = read_setting(2048, "nr_hugepages")
    except OSError as e:
        skipped(name, f"no 2 MiB huge pages ({e.strerror})")
        return
    try:
        reserve_free(2)
        env["hp"] = open_memory("hugepage", size=4 << 20)
    except OSError as e:
        skipped(name, f"huge pages cannot be had: {e}")
        return
    try:
        ours, theirs = pair_ns("allocate(4096, 'u1', hp)",
                               "allocate(4096, 'u1', hp, cacheable=True)",
                               env, 20_000)
        report(name, ours, theirs, "the same, cacheable=True", 1.5)
    finally:
        del env["hp"]
        write_setting(2048, "nr_hugepages", saved)


def release_rows(env):
    """Releasing with freebuffer() or a with-block, PYNQ users' ways,
    against dropping the buffer.  The block is parked, at no system call,
    whether or not views outlive the release; its range is swapped for
    anonymous memory only when an allocation needs its space."""
    mem = env["rel"] = open_memory("sim", size=64 << 20)
    ours, theirs = pair_ns("with allocate((1024,), 'u4', rel) as b: pass",
                           "allocate((1024,), 'u4', rel)", env, 50_000)
    report("with-block (1024,) u4, no view alive", ours, theirs,
           "allocate+drop", 1.3)
    # The floor: CPython's with statement itself (two special-method
    # lookups, each making a bound method, and two calls), timed on a C
    # type whose __exit__ does next to nothing.
    with_mv, plain_mv = pair_ns("with memoryview(b'x') as m: pass",
                                "memoryview(b'x')", env, 50_000)
    report("  its cost over allocate+drop", ours - theirs, with_mv - plain_mv,
           "the with statement alone")
    ours, theirs = pair_ns("allocate((1024,), 'u4', rel).freebuffer()",
                           "allocate((1024,), 'u4', rel)", env, 50_000)
    report("  freebuffer(), no view alive", ours, theirs, "allocate+drop")
    # A view outlives the release: parked all the same.  The statement
    # makes the view too (a slice costs about 100 ns), so its floor is
    # allocate+drop with a slice.
    ours, theirs = pair_ns("b = allocate((1024,), 'u4', rel); v = b[1:]; "
                           "b.freebuffer(); del v, b",
                           "b = allocate((1024,), 'u4', rel); v = b[1:]; "
                           "del v, b", env, 20_000)
    report("  freebuffer(), a view alive", ours, theirs,
           "the same, dropped")
    del env["rel"], mem


def sim_cacheable_rows(env):
    """A cacheable sim buffer against an uncached one of the same size and
    zeroing: what the line model costs at allocation, untouched."""
    env["sim256"] = open_memory("sim", size=512 << 20)
    ours, theirs = pair_ns("allocate(256 << 20, 'u1', sim256, cacheable=True)",
                           "allocate(256 << 20, 'u1', sim256)", env, 50,
                           rounds=15)
    report("sim: allocate+free 256 MiB, cacheable", ours, theirs,
           "the same, uncached", 2.0)
    ours, theirs = pair_ns("allocate(256 << 20, 'u1', sim256, cacheable=True,"
                           " zero=False)",
                           "allocate(256 << 20, 'u1', sim256, zero=False)",
                           env, 50, rounds=15)
    report("  the same, zero=False", ours, theirs, "uncached, zero=False")
    del env["sim256"]


def sim_watch_stores_rows(env):
    """The sim's watch_stores=True against its line model without it: a
    first store to each page since the last sync faults once (the kernel
    marks the page written), and each sync and device access scans its
    pages (PAGEMAP_SCAN)."""
    name = "sim: watch_stores, 4 KiB DMA round"
    try:
        env["watched"] = open_memory("sim", size=192 << 20, watch_stores=True)
    except OSError as e:
        skipped(name, f"this kernel cannot: {e.strerror}")
        return
    env["lines"] = open_memory("sim", size=192 << 20)
    env["blob"] = bytes(4096)
    # A buffer written, flushed, written by the device, invalidated, freed.
    ours, theirs = pair_ns(
        "r = allocate(1024, 'u4', watched, cacheable=True); r[:] = 1; "
        "r.flush(); watched.device_write(r.device_address, blob); "
        "r.invalidate(); del r",
        "r = allocate(1024, 'u4', lines, cacheable=True); r[:] = 1; "
        "r.flush(); lines.device_write(r.device_address, blob); "
        "r.invalidate(); del r", env, 5_000)
    report(name, ours, theirs, "the line model alone")
    # Every page stored again after each flush: a fault per page.
    env["w4"] = allocate(4 << 20, "u1", env["watched"], cacheable=True)
    env["l4"] = allocate(4 << 20, "u1", env["lines"], cacheable=True)
    ours, theirs = pair_ns("w4[:] = 1; w4.flush()", "l4[:] = 1; l4.flush()",
                           env, 20, rounds=15)
    report("  fill 4 MiB then flush()", ours, theirs, "the line model alone")
    # A warm flush of a clean 64 MiB buffer: one scan of its pages.
    env["w64"] = allocate(64 << 20, "u1", env["watched"], cacheable=True)
    env["l64"] = allocate(64 << 20, "u1", env["lines"], cacheable=True)
    for b in (env["w64"], env["l64"]):
        b[:] = 1
        b.flush()
    ours, theirs = pair_ns("w64.flush()", "l64.flush()", env, 4, rounds=7)
    report("  warm flush() 64 MiB", ours, theirs, "the line model alone")
    for key in ("w4", "l4", "w64", "l64", "watched", "lines", "blob"):
        del env[key]


class PynqStyleDevice:
    """A PYNQ device as its XRT devices make buffers (pynq/pl_server/
    xrt_device.py): the buffer type called with PYNQ's arguments over
    memory the device has, and syncs that cost nothing here, so that the
    row measures the buffer type and not a driver."""

    def __init__(self, buffer_type):
        self.buffer_type = buffer_type

    def allocate(self, shape, dtype, **kwargs):
        return self.buffer_type(shape, dtype, device=self, bo=1,
                                coherent=False, device_address=0x1000_0000)

    def flush(self, bo, offset, vaddr, nbytes):
        pass

    def invalidate(self, bo, offset, vaddr, nbytes):
        pass


def pynq_rows(env):
    """PYNQ's own allocate + slice + flush, with pynq_alloc installed into
    PYNQ against PYNQ as it is, in one run (PYNQ's PynqBuffer needs numpy
    below 2 to be made at all)."""
    name = "PYNQ: allocate+slice+flush 4 KiB"
    try:
        import pynq
        import pynq.buffer
    except ImportError as e:
        skipped(name, f"no PYNQ ({e})")
        return
    if np.__version__ >= "2":
        skipped(name, "PYNQ's own buffers need numpy < 2")
        return
    import pynq_alloc.pynq
    pynq_alloc.pynq.uninstall()
    env["theirs_allocate"] = pynq.allocate
    env["theirs_device"] = PynqStyleDevice(pynq.buffer.PynqBuffer)
    pynq_alloc.pynq.install()
    try:
        env["ours_allocate"] = pynq.allocate
        env["ours_device"] = PynqStyleDevice(pynq.buffer.PynqBuffer)
        ours, theirs = pair_ns(
            "ours_allocate(1024, 'u4', target=ours_device)[16:512].flush()",
            "theirs_allocate(1024, 'u4', target=theirs_device)[16:512]"
            ".flush()", env, 20_000)
        report(name, ours, theirs, "PYNQ without pynq_alloc")
    finally:
        pynq_alloc.pynq.uninstall()


# The sections in the order they run, each its rows in order.
SECTIONS = {"ratios": (ratio_rows, release_rows, sim_cacheable_rows,
                       sim_watch_stores_rows),
            "heap": (heap_row,),
            "hugepage": (hugepage_rows, hugepage_reuse_rows),
            "pynq": (pynq_rows,)}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="pynq_alloc against numpy, reported as ratios.")
    parser.add_argument("section", nargs="*",
                        help=f"run only these: {', '.join(SECTIONS)} "
                             "(default: all)")
    chosen = parser.parse_args(argv).section
    for section in chosen:
        if section not in SECTIONS:
            parser.error(f"no section {section!r}: {', '.join(SECTIONS)}")
    env = {"np": np, "allocate": allocate, "open_memory": open_memory}
    for section, functions in SECTIONS.items():
        if not chosen or section in chosen:
            for rows in functions:
                rows(env)

    print(f"pynq_alloc {pynq_alloc.__version__}, numpy {np.__version__}, "
          f"Python {sys.version.split()[0]}")
    print(f"{'operation':42} {'pynq_alloc':>11}  {'baseline':26} "
          f"{'ns':>10} {'ratio':>7} {'target':>10}")
    for name, ours, base_name, base, r, goal, verdict, unit in ROWS:
        if ours is None:
            print(f"{name:42} {'':>11}  {base_name:26} {'':>10} {'':>7} "
                  f"{goal:>10} {verdict}")
            continue
        print(f"{name:42} {ours:9.0f}ns  {base_name:26} {base:8.0f}ns "
              f"{r:6.2f}{unit[:1] if unit == 'x' else ''} {goal:>10} {verdict}")


if __name__ == "__main__":
    main()

"""pynq_alloc against numpy, in one process, reported as ratios.

    python benchmarks/bench.py           # about a minute

The two sides of a comparison are timed in alternating rounds and each
keeps its best round, so that a burst of noise on a shared machine cannot
land on one side only; the best shows the cost of the code rather than the
machine's noise.  A ratio is pynq_alloc's time over numpy's for the same
job in the same run.
"""
import sys
import timeit

import numpy as np

import pynq_alloc
from pynq_alloc import _core, allocate, open_memory


def best_ns(stmt, env, number, rounds=15):
    """Best time of one execution of stmt, in nanoseconds."""
    timer = timeit.Timer(stmt, globals=env)
    return min(timer.timeit(number) for _ in range(rounds)) / number * 1e9


def pair_ns(ours, theirs, env, number, rounds=15):
    """Best times of two statements, timed in alternating rounds."""
    a, b = timeit.Timer(ours, globals=env), timeit.Timer(theirs, globals=env)
    best_a = best_b = float("inf")
    for _ in range(rounds):
        best_a = min(best_a, a.timeit(number))
        best_b = min(best_b, b.timeit(number))
    return best_a / number * 1e9, best_b / number * 1e9


def traced_pair_ns(stmt, env, number, rounds=15):
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


def report(name, ours_ns, numpy_ns, numpy_name, target=None):
    ratio = ours_ns / numpy_ns
    verdict = "" if target is None else ("meets" if ratio <= target else "MISSES")
    goal = "" if target is None else f"<= {target:g}x"
    ROWS.append((name, ours_ns, numpy_name, numpy_ns, ratio, goal, verdict))


def main():
    mem = open_memory("sim", size=512 << 20)
    env = {"np": np, "allocate": allocate, "mem": mem}

    # Allocate and release a (1024,) u4 buffer, steady state.  New memory
    # reads as zeros, as PYNQ's does; zero=False shows what that costs.
    env["u4"] = np.dtype("u4")
    ours, theirs = pair_ns("allocate((1024,), 'u4', mem)",
                           "np.empty((1024,), 'u4')", env, 100_000)
    report("allocate+release (1024,) u4", ours, theirs, "np.empty", 1.5)
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

    # device_address of a view, against a trivial computed numpy attribute
    # (numpy's own ways to a data pointer, .ctypes.data and
    # __array_interface__, build objects and take far longer).
    env["view"] = env["buf"][1:100]
    env["aview"] = env["arr"][1:100]
    ours, theirs = pair_ns("view.device_address", "aview.nbytes", env,
                           200_000)
    report("view.device_address", ours, theirs, "ndarray.nbytes")

    # flush() on a coherent buffer: a check and a store barrier.
    env["coherent"] = allocate(4096, "u4", mem, cacheable=False)
    ours, theirs = pair_ns("coherent.flush()", "arr.nbytes", env, 200_000)
    report("flush(), coherent buffer", ours, theirs, "ndarray.nbytes")

    # flush() of 64 MiB of non-coherent memory: a copy to the device side.
    env["big"] = allocate(64 << 20, "u1", mem, cacheable=True)
    env["big"][:] = 1
    env["src"] = np.ones(64 << 20, "u1")
    env["dst"] = np.empty(64 << 20, "u1")
    ours, theirs = pair_ns("big.flush()", "np.copyto(dst, src)", env, 4,
                           rounds=7)
    report("flush(), 64 MiB non-coherent", ours, theirs, "np.copyto 64 MiB", 1.5)

    # The allocator alone: free+alloc with 100 versus 100,000 blocks live.
    small = large = float("inf")
    for seed in range(1, 6):        # alternating, as above
        small = min(small, _core._heap_bench(100, 500_000, seed))
        large = min(large, _core._heap_bench(100_000, 500_000, seed))
    ratio = large / small
    ROWS.append(("heap free+alloc, 100k vs 100 live", large, "same, 100 live",
                 small, ratio, "<= 1.5x", "meets" if ratio <= 1.5 else "MISSES"))

    print(f"pynq_alloc {pynq_alloc.__version__}, numpy {np.__version__}, "
          f"Python {sys.version.split()[0]}")
    print(f"{'operation':36} {'pynq_alloc':>11}  {'numpy (baseline)':22} "
          f"{'ns':>10} {'ratio':>7} {'target':>8}")
    for name, ours, base_name, base, r, goal, verdict in ROWS:
        print(f"{name:36} {ours:9.0f}ns  {base_name:22} {base:8.0f}ns "
              f"{r:6.2f}x {goal:>8} {verdict}")


if __name__ == "__main__":
    main()

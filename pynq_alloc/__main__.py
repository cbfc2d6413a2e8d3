"""python -m pynq_alloc: show what is here and check that it works.

Prints the package and numpy versions and the default memory, then
allocates on it, writes, flushes, reads back as the device does, writes
as the device does, invalidates and compares.  Exits 0 after printing OK.

python -m pynq_alloc --map prints the default memory's map instead.
"""
import argparse
import errno
import os
import sys
from typing import Any, List, Optional

import numpy as np

import pynq_alloc
from pynq_alloc._probe import choose_default, probe
from pynq_alloc._spec import ENV_VAR
from pynq_alloc._zocl_banks import read_banks


def self_check(memory: Any) -> List[str]:
    """Returns what failed (empty if all is well)."""
    failures: List[str] = []
    n = 1024
    # Cacheable, so that flush and invalidate do real work where they can.
    with memory.allocate(n, "u4", cacheable=True) as buf:
        pattern = np.arange(n, dtype="u4") * np.uint32(2654435761)
        buf[:] = pattern
        buf.flush()
        try:
            seen = np.frombuffer(memory.device_read(buf.device_address,
                                                    buf.nbytes), "u4")
        except OSError as e:
            if e.errno != errno.ENOTSUP:
                raise
            print("  device-side access: not offered by this memory; "
                  "checked the CPU side only")
            return failures if np.array_equal(buf, pattern) else [
                "CPU writes did not read back"]
        if not np.array_equal(seen, pattern):
            failures.append("after flush() the device did not see the CPU's "
                            f"writes ({np.count_nonzero(seen != pattern)} of "
                            f"{n} words differ)")
        memory.device_write(buf.device_address, ~pattern)
        buf.invalidate()
        if not np.array_equal(buf, ~pattern):
            failures.append("after invalidate() the CPU did not see the "
                            f"device's writes ({np.count_nonzero(buf != ~pattern)}"
                            f" of {n} words differ)")
        view = buf[10:20]
        if view.device_address != buf.device_address + 40:
            failures.append(f"a view reported device address "
                            f"{view.device_address:#x}, expected "
                            f"{buf.device_address + 40:#x}")
    if memory.stats()["buffers"] != 0:
        failures.append("the buffer was not released")
    return failures


def _bytes(n: int) -> str:
    return f"{n >> 20} MiB" if n and n % (1 << 20) == 0 else f"{n >> 10} KiB"


def bank_lines(root: str, node: str) -> List[str]:
    """What zocl says in sysfs about the banks it can allocate in."""
    try:
        banks = read_banks(root, node)
    except (OSError, ValueError) as e:
        return [f"memory banks: cannot be read: {e}"]
    if not banks:
        return ["memory banks: none, as no xclbin is loaded (mem_topology is "
                "empty): every bank index gets CMA memory"]
    lines = ["memory banks (open_memory('zocl', bank=N); an unused one "
             "gets CMA memory):"]
    for b in banks:
        usage = ("" if b.usage is None
                 else f", {_bytes(b.usage)} in {b.buffers} BOs")
        lines.append(f"  {b.index:5}  {b.tag:16} {b.type:5} "
                     f"{'in use' if b.used else 'unused':6}  "
                     f"{b.base_address:#014x}  {_bytes(b.size)}{usage}")
    return lines


def backend_lines(root: str = "/") -> List[str]:
    """Each backend, what was found or why it is not used, and zocl's banks."""
    lines = ["memory backends on this machine:"]
    for f in probe(root):
        if f.problem is not None:
            lines.append(f"  {f.kind:9} cannot be used: {f.problem.strerror}")
            continue
        lines.append(f"  {f.kind:9} {'found' if f.found else 'not used'}: "
                     f"{f.detail}")
        if f.kind == "zocl" and f.found:
            lines += [" " * 12 + line
                      for line in bank_lines(root, f.options["device"])]
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pynq_alloc",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--map", action="store_true",
                        help="print a map of the default memory: its "
                        "buffers, free gaps and largest free block")
    args = parser.parse_args(argv)
    if args.map:
        try:
            print(pynq_alloc.memory_map())
        except (OSError, ValueError) as e:
            print(f"cannot open the default memory: {e}")
            return 1
        return 0
    print(f"pynq_alloc {pynq_alloc.__version__}, numpy {np.__version__}, "
          f"Python {sys.version.split()[0]}")
    spec = os.environ.get(ENV_VAR)
    print(f"{ENV_VAR}: {spec if spec else '(unset)'}")
    for line in backend_lines():
        print(line)
    try:
        kind, _, why = choose_default()
    except (OSError, ValueError) as e:      # ValueError: PYNQ_ALLOC_MEMORY's
        print(f"default: none: {e}")
        return 1
    print(f"default: {kind} ({why})")
    try:
        memory = pynq_alloc.default_memory()
    except (OSError, ValueError) as e:
        print(f"cannot open the default memory: {e}")
        return 1
    s = memory.stats()
    print(f"default memory: {memory.kind}, base_address {memory.base_address:#x}, "
          f"size {memory.size} bytes ({memory.size >> 20} MiB)")
    print(f"  used {s['used']}, free {s['free']}, largest free block "
          f"{s['largest_free']}, buffers {s['buffers']}")
    failures = self_check(memory)
    for f in failures:
        print(f"FAILED: {f}")
    if failures:
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

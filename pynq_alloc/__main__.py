"""python -m pynq_alloc: show what is here and check that it works.

Prints the package and numpy versions and the default memory, then
allocates on it, writes, flushes, reads back as the device does, writes
as the device does, invalidates and compares.  Exits 0 after printing OK.
"""
import errno
import os
import sys

import numpy as np

import pynq_alloc
from pynq_alloc._open import ENV_VAR, choose_default, probe


def self_check(memory) -> list:
    """Returns what failed (empty if all is well)."""
    failures = []
    n = 1024
    with memory.allocate(n, "u4") as buf:
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


def main() -> int:
    print(f"pynq_alloc {pynq_alloc.__version__}, numpy {np.__version__}, "
          f"Python {sys.version.split()[0]}")
    spec = os.environ.get(ENV_VAR)
    print(f"{ENV_VAR}: {spec if spec else '(unset)'}")
    print("memory backends on this machine:")
    for f in probe():
        print(f"  {f.kind:9} {'found' if f.found else 'not used'}: {f.detail}")
    kind, _, why = choose_default()
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

"""Memory: open_memory() and its specs, PYNQ_ALLOC_MEMORY, stats, and the
device-side view, which refuses anything outside one live allocation."""
import errno
import json

import numpy as np
import pytest

from helpers import BASE, MiB, run_python
import pynq_alloc
from pynq_alloc import Memory, allocate, open_memory


def test_open_sim_with_options():
    m = open_memory("sim", size=8 * MiB, base_address=0x2000_0000)
    assert isinstance(m, Memory)
    assert (m.kind, m.base_address, m.size) == ("sim", 0x2000_0000, 8 * MiB)
    assert m.stats() == {"total": 8 * MiB, "used": 0, "free": 8 * MiB,
                         "largest_free": 8 * MiB, "buffers": 0}


def test_sim_defaults():
    m = open_memory()
    assert (m.kind, m.base_address, m.size) == ("sim", 0x1000_0000, 256 * MiB)


def test_options_in_the_spec_string():
    m = open_memory("sim:size=4M,base_address=0x30000000")
    assert (m.base_address, m.size) == (0x3000_0000, 4 * MiB)
    # Keyword options override the spec's.
    assert open_memory("sim:size=4M", size=2 * MiB).size == 2 * MiB


@pytest.mark.parametrize("spec, options", [
    ("nonsense", {}), ("xlnk", {"colour": "red"}),
    ("hugepage", {"page_size": 4096}), ("sim:size", {}), ("sim", {"colour": "red"}),
    ("sim", {"size": 0}), ("sim", {"size": 4097}), ("sim:size=lots", {}),
    ("sim", {"base_address": 123}),
])
def test_bad_specs_are_value_errors(spec, options):
    with pytest.raises(ValueError):
        open_memory(spec, **options)


def test_memory_cannot_be_constructed():
    with pytest.raises(TypeError, match="open_memory"):
        Memory()


def test_stats_track_allocations(mem):
    a = allocate(100, "u1", target=mem)
    b = allocate(5000, "u1", target=mem)
    s = mem.stats()
    assert s["used"] == 3 * 4096 and s["buffers"] == 2
    assert s["free"] == s["total"] - s["used"]
    assert all(type(v) is int for v in s.values())
    del a
    assert mem.stats()["used"] == 2 * 4096
    del b
    assert mem.stats()["used"] == 0 and mem.stats()["largest_free"] == 16 * MiB


def test_memory_runs_out_and_recovers(mem):
    held = [allocate(MiB, "u1", target=mem) for _ in range(16)]
    assert mem.stats()["free"] == 0
    with pytest.raises(MemoryError):
        allocate(1, target=mem)
    held.clear()
    assert mem.stats()["free"] == 16 * MiB
    assert allocate(16 * MiB, "u1", target=mem).device_address == BASE


def test_released_blocks_never_cause_a_memory_error(mem):
    # Release many blocks of assorted sizes, then ask for everything.
    for size in range(1, 60):
        allocate(size * 4096, "u1", target=mem)
        allocate(size * 1000, "u1", target=mem, cacheable=False)
    assert allocate(16 * MiB, "u1", target=mem).size == 16 * MiB


def test_device_read_and_write_round_trip(mem):
    b = allocate(64, "u1", target=mem, cacheable=False)
    mem.device_write(b.device_address + 8, b"hello")
    assert mem.device_read(b.device_address + 8, 5) == b"hello"
    assert bytes(b[8:13]) == b"hello"
    mem.device_write(b.device_address, np.arange(4, dtype="u1"))
    assert mem.device_read(b.device_address, 0) == b""


def test_device_access_outside_live_allocations_is_a_bus_error(mem):
    a = allocate(4096, "u1", target=mem)
    b = allocate(4096, "u1", target=mem)
    assert b.device_address == a.device_address + 4096
    bad = [(a.device_address - 1, 1),              # below the pool
           (a.device_address + 4000, 200),         # across two allocations
           (b.device_address + 4096, 1),           # free memory
           (BASE + 16 * MiB, 1),                   # past the pool
           (2**64 - 1, 2)]                         # wraps
    for address, n in bad:
        with pytest.raises(ValueError, match="bus error"):
            mem.device_read(address, n)
        with pytest.raises(ValueError, match="bus error"):
            mem.device_write(address, bytes(n))
    gone = b.device_address
    b.freebuffer()
    with pytest.raises(ValueError, match="bus error"):
        mem.device_read(gone, 1)
    del a
    with pytest.raises(ValueError, match="bus error"):
        mem.device_read(BASE, 1)                   # released, even if cached


def test_device_access_argument_errors(mem):
    with pytest.raises(ValueError):
        mem.device_read(-1, 1)
    with pytest.raises(TypeError):
        mem.device_read(1.5, 1)
    with pytest.raises(TypeError):
        mem.device_write(BASE, "text")
    with pytest.raises(TypeError):
        mem.device_read(BASE)


def test_default_memory_is_one_object():
    assert pynq_alloc.default_memory() is pynq_alloc.default_memory()


CHECK_DEFAULT = """
    import json, pynq_alloc
    m = pynq_alloc.default_memory()
    b = pynq_alloc.allocate(4)
    print(json.dumps([m.kind, m.base_address, m.size, b.memory is m]))
"""


def test_default_without_the_variable_is_sim():
    r = run_python(CHECK_DEFAULT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["sim", 0x1000_0000, 256 * MiB, True]


def test_variable_selects_the_default():
    r = run_python(CHECK_DEFAULT, env={
        "PYNQ_ALLOC_MEMORY": "sim:size=64M,base_address=0x20000000"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["sim", 0x2000_0000, 64 * MiB, True]


@pytest.mark.parametrize("spec, error", [
    ("zocl:device=/nonexistent/renderD128", "FileNotFoundError"),
    ("udmabuf:device=/nonexistent/udmabuf0", "FileNotFoundError"),
    ("bogus", "ValueError"), ("sim:size=-4", "ValueError")])
def test_a_bad_variable_is_an_error_not_a_fallback(spec, error):
    r = run_python(CHECK_DEFAULT, env={"PYNQ_ALLOC_MEMORY": spec})
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].startswith(error), r.stderr


def test_a_missing_device_is_caught_as_file_not_found():
    """The core's OSError is raised as the subclass its errno picks, so that
    `except FileNotFoundError` catches it on every Python: 3.8 and 3.10
    match an except clause against the class raised, not the value's."""
    try:
        open_memory("zocl", device="/nonexistent/renderD128")
    except FileNotFoundError as e:
        assert e.filename == "/nonexistent/renderD128"
    else:
        pytest.fail("a device that does not exist opened")


def test_zocl_refuses_a_node_zocl_does_not_drive(tmp_path):
    # Driver-specific ioctl numbers overlap: zocl's must reach zocl only.
    not_zocl = tmp_path / "renderD128"
    not_zocl.write_bytes(b"")
    with pytest.raises(OSError, match="not a zocl device") as info:
        open_memory("zocl", device=str(not_zocl))
    assert info.value.errno == errno.ENODEV
    assert info.value.filename == str(not_zocl)

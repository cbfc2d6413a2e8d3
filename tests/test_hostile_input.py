"""What a careless user or an attacker can pass: every case is a clear
Python exception with the value that caused it, never a crash, a hang, a
wrong answer or a silent wrap-around.  One test per way in that once failed."""
import errno

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from fake_devices import make_udmabuf
from helpers import run_python, under_asan
from pynq_alloc import Buffer, _core, allocate, open_memory

TiB = 1 << 40


def test_a_shape_list_that_changes_while_being_read():
    # numpy 2.4's np.empty segfaults on this; run it where a crash shows.
    result = run_python("""
        from pynq_alloc import allocate
        shape = []
        class Shrinking:
            def __index__(self):
                shape.clear()
                return 3
        shape.extend([Shrinking(), 4, 5])
        print(allocate(shape, "u1").shape)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 4, 5)"


@pytest.mark.parametrize("options, named", [
    ({"size": 2**64 + 4096}, "18446744073709555712"),
    ({"base_address": 2**64}, "18446744073709551616"),
    ({"size": 4096.7}, "4096.7"),
    ({"size": True}, "True"),
    ({"size": "16777216T"}, "16777216T"),
])
def test_sim_sizes_and_addresses_beyond_64_bits_or_not_whole(options, named):
    with pytest.raises(ValueError, match=named):
        open_memory("sim", **options)


def test_spec_strings_are_checked_as_options_are():
    with pytest.raises(ValueError, match="16777216T"):
        open_memory("sim:size=16777216T")
    with pytest.raises(ValueError, match="base_address"):
        open_memory("sim:base_address=0x10000000000000000")


def test_hugepage_size_beyond_64_bits():
    with pytest.raises(ValueError, match=str(2**64)):
        open_memory("hugepage", size=2**64)


def test_the_core_refuses_what_would_wrap():
    with pytest.raises(ValueError, match=str(2**64)):
        _core._open_sim(base_address=2**64, size=4096)


@pytest.mark.parametrize("shape", [2**63, (2**64, 1), (2**62, 4)])
def test_shapes_too_big_for_the_machine_are_value_errors_naming_them(mem, shape):
    with pytest.raises(ValueError, match="too big") as info:
        allocate(shape, "u1", target=mem)
    assert str(shape if isinstance(shape, int) else shape[0]) in str(info.value)
    assert mem.stats()["buffers"] == 0


def test_device_read_checks_the_range_before_making_its_output(mem):
    b = allocate(16, target=mem)
    with pytest.raises(ValueError, match="bus error"):
        mem.device_read(b.device_address, 2**40)


def test_device_read_without_device_access_says_so_first(tmp_path):
    device, sysfs = make_udmabuf(str(tmp_path))
    udmabuf = open_memory("udmabuf", device=device, sysfs=sysfs)
    with pytest.raises(OSError) as info:
        udmabuf.device_read(udmabuf.base_address, 2**40)
    assert info.value.errno == errno.ENOTSUP


no_asan = pytest.mark.skipif(under_asan(), reason="resource limits cannot be "
                             "applied under AddressSanitizer's shadow memory")


@no_asan
def test_running_out_of_mappings_is_not_running_out_of_device_memory():
    # Address space capped just above what the process uses: the next
    # buffer cannot be mapped although the device memory is nearly all free.
    result = run_python("""
        import resource
        from pynq_alloc import allocate, open_memory
        mem = open_memory("sim", size=256 << 20)
        allocate(4096, "u1", target=mem)            # warm up
        with open("/proc/self/status") as f:
            vm = [l for l in f if l.startswith("VmSize:")][0].split()[1]
        cap = int(vm) * 1024 + (16 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            allocate(64 << 20, "u1", target=mem)
        except MemoryError as e:
            print(e)
    """)
    assert result.returncode == 0, result.stderr
    message = result.stdout
    assert "out of memory mappings or address space" in message, message
    assert "vm.max_map_count" in message and "bytes free" in message


@no_asan
def test_a_free_that_cannot_detach_its_views_is_kept_not_lost():
    # With the data limit below what the process already uses, no private
    # memory can be mapped, so the views cannot be detached: the request
    # must stand (freed, released with the last view) and be reported.
    result = run_python("""
        import resource, warnings
        from pynq_alloc import allocate, open_memory
        mem = open_memory("sim", size=64 << 20)
        b = allocate(32 << 20, "u1", target=mem)    # too large to park
        view = b[100:]
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 20, resource.RLIM_INFINITY))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            b.freebuffer()
        print(caught[0].category.__name__, "|", caught[0].message)
        print(b.freed, view.freed, view.device_address, mem.stats()["buffers"])
        del b, view
        print(mem.stats()["buffers"])
    """)
    assert result.returncode == 0, result.stderr
    warning, state, after = result.stdout.strip().split("\n")
    assert warning.startswith("RuntimeWarning |")
    assert "go back to their memory only when the last array" in warning
    assert "views" not in warning
    assert state == "True True None 1"
    assert after == "0"


def test_as_strided_views_are_device_memory_with_their_exact_span():
    # Both models write back whole lines: 16 bytes here.
    mem = open_memory("sim", size=1 << 20, coherence="off", line_size=16)
    b = allocate(64, "u4", target=mem, cacheable=True)
    b[:] = np.arange(64)
    s = as_strided(b[4:], shape=(5,), strides=(32,), subok=True)
    assert type(s) is Buffer and s.device_address == b.device_address + 16
    w = sliding_window_view(b, 8, subok=True)[3]
    assert w.device_address == b.device_address + 12
    s.flush()                          # bytes 16 to 148: lines 16 to 160
    seen = np.frombuffer(mem.device_read(b.device_address, 256), "u4")
    assert (seen[4:40] == np.arange(4, 40)).all()
    assert not seen[:4].any() and not seen[40:].any()
    # A span past the allocation's 4096 bytes (as_strided reads anywhere).
    beyond = as_strided(b, shape=(1025,), strides=(4,), subok=True)
    with pytest.raises(ValueError, match="spans bytes 0 to 4100"):
        beyond.flush()


def test_device_read_far_from_any_allocation_in_a_huge_pool():
    mem = open_memory("sim", size=4 * TiB, base_address=0)
    small = allocate(4096, "u1", target=mem)
    big = allocate(TiB, "u1", target=mem, zero=False)
    with pytest.raises(ValueError, match="bus error"):
        mem.device_read(4 * TiB - 4096, 16)
    assert mem.device_read(big.device_address + TiB - 16, 16) == bytes(16)
    assert small.device_address == 0


@no_asan
def test_a_pool_too_large_to_map_is_a_memory_error_not_an_internal_code():
    # The core's "cannot map" code (not an errno) once reached the user as
    # OSError(4096, ...).  The address space is capped so that the pool
    # cannot be mapped whatever the machine's virtual address size.
    result = run_python("""
        import resource
        from pynq_alloc import open_memory
        with open("/proc/self/status") as f:
            vm = [l for l in f if l.startswith("VmSize:")][0].split()[1]
        cap = int(vm) * 1024 + (64 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            open_memory("sim", size=1 << 30)
        except Exception as e:
            print(type(e).__name__, isinstance(e, OSError), e)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MemoryError False "), result.stdout
    assert "cannot map that much" in result.stdout


@pytest.mark.parametrize("shape, strides", [
    ((2**31 + 1,), (2**32,)),         # elements 4 GiB apart in 4 KiB
    ((2**33,), (2**31,)),             # an extent past 2**63
    ((3, 2**30), (2**62, 4)),         # the first axis alone passes 2**63
])
def test_views_whose_span_leaves_the_allocation_are_value_errors(
        mem, shape, strides):
    b = mem.allocate(1024, "u4", cacheable=True)
    view = as_strided(b, shape=shape, strides=strides, subok=True)
    for sync in (view.flush, view.invalidate):
        with pytest.raises(ValueError, match="of its allocation, which has "
                                             "4096") as info:
            sync()
        assert str(shape) in str(info.value)

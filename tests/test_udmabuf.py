"""The u-dma-buf backend through its real interface: a device file and a
sysfs directory made by the test (see fake_devices.py)."""
import errno
import os
import platform
import warnings

import numpy as np
import pytest

from fake_devices import MiB, make_udmabuf, read_and_clear
from pynq_alloc import allocate, open_memory


@pytest.fixture
def udmabuf(tmp_path):
    device, sysfs = make_udmabuf(str(tmp_path))
    return open_memory("udmabuf", device=device, sysfs=sysfs), device, sysfs


def test_pool_comes_from_the_driver(udmabuf):
    mem, _, _ = udmabuf
    assert (mem.kind, mem.base_address, mem.size) == ("udmabuf", 0x3000_0000, 16 * MiB)
    b = allocate(10, "u4", target=mem, cacheable=True)
    assert b.device_address == 0x3000_0000 and b.coherent is False
    assert allocate(10, "u4", target=mem).coherent is True     # uncached


def test_each_allocation_maps_its_own_window(udmabuf):
    mem, device, _ = udmabuf
    a = allocate(4096, "u1", target=mem)
    b = allocate(4096, "u1", target=mem)
    b[:5] = np.frombuffer(b"hello", "u1")
    with open(device, "rb") as f:
        f.seek(b.device_address - mem.base_address)
        assert f.read(5) == b"hello"
    assert a.device_address + 4096 == b.device_address


def test_flush_and_invalidate_write_the_sync_command(udmabuf):
    mem, _, sysfs = udmabuf
    allocate(8192, "u1", target=mem)         # so b does not start at 0
    b = allocate(4096, "u1", target=mem, cacheable=True)
    offset = b.device_address - mem.base_address
    # Zeroing a new cacheable block wrote its zeros back to memory.
    cmd = (offset << 32) | 4096 | (1 << 2) | 1
    assert int(read_and_clear(os.path.join(sysfs, "sync_for_device")), 0) == cmd
    b[20:40].flush()
    # [20, 40) rounded out to 16 bytes is [16, 48): 32 bytes, to device.
    cmd = ((offset + 16) << 32) | 32 | (1 << 2) | 1
    assert int(read_and_clear(os.path.join(sysfs, "sync_for_device")), 0) == cmd
    b[::-1].invalidate()
    cmd = (offset << 32) | 4096 | (2 << 2) | 1
    assert int(read_and_clear(os.path.join(sysfs, "sync_for_cpu")), 0) == cmd


def test_uncached_and_coherent_buffers_do_not_sync(tmp_path):
    device, sysfs = make_udmabuf(str(tmp_path), coherent=True)
    mem = open_memory("udmabuf", device=device, sysfs=sysfs)
    b = allocate(64, target=mem, cacheable=True)
    assert b.coherent is True and b.cacheable is True
    b.flush()
    assert read_and_clear(os.path.join(sysfs, "sync_for_device")) == ""


def test_default_sysfs_comes_from_the_device_name(tmp_path):
    with pytest.raises(OSError) as info:
        open_memory("udmabuf", device=str(tmp_path / "nowhere0"))
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(tmp_path / "nowhere0")


def test_missing_sysfs_is_an_oserror_naming_it(tmp_path):
    # The stand-in answers no ioctl: without its sysfs directory nothing
    # says it is a u-dma-buf.
    device, sysfs = make_udmabuf(str(tmp_path))
    absent = str(tmp_path / "absent")
    with pytest.raises(OSError) as info:
        open_memory("udmabuf", device=device, sysfs=absent)
    assert info.value.errno == errno.ENODEV
    assert info.value.filename == absent
    assert f"{device} is not a u-dma-buf device" in str(info.value)
    # A directory without the attributes names the one it lacks.
    os.remove(os.path.join(sysfs, "phys_addr"))
    with pytest.raises(OSError) as info:
        open_memory("udmabuf", device=device, sysfs=sysfs)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == os.path.join(sysfs, "phys_addr")


NOT_A_DEVICE = ", not a u-dma-buf device (the driver's are character devices)"


def test_only_a_character_device_is_opened_and_the_error_says_what_it_is(tmp_path):
    # A regular file was sub-allocated as if it were the driver's buffer,
    # and the first allocate() zeroed it.
    _, sysfs = make_udmabuf(str(tmp_path), name="the_stand_in")
    regular = tmp_path / "udmabuf0"
    regular.write_bytes(b"\x07" * 8192)
    directory = tmp_path / "udmabuf1"
    directory.mkdir()
    fifo = tmp_path / "udmabuf2"
    os.mkfifo(fifo)
    for node, kind, code in [(regular, "a regular file", errno.ENODEV),
                             (directory, "a directory", errno.EISDIR),
                             (fifo, "a FIFO", errno.ENODEV)]:
        with pytest.raises(OSError) as info:
            open_memory("udmabuf", device=str(node), sysfs=sysfs)
        assert info.value.errno == code
        assert info.value.filename == str(node)
        assert str(info.value) == f"[Errno {code}] {kind}{NOT_A_DEVICE}: '{node}'"
    assert regular.read_bytes() == b"\x07" * 8192


def test_a_character_device_of_another_driver_is_refused(tmp_path):
    # /dev/null answers no u-dma-buf ioctl and has no u-dma-buf sysfs
    # directory (the default one, from its name, is not there).
    assert not os.path.exists("/sys/class/u-dma-buf/null")
    with pytest.raises(OSError) as info:
        open_memory("udmabuf", device="/dev/null")
    assert info.value.errno == errno.ENODEV
    assert info.value.filename == "/sys/class/u-dma-buf/null"
    assert str(info.value) == (
        "[Errno 19] /dev/null is not a u-dma-buf device: it answers no "
        "u-dma-buf ioctl, and the sysfs directory is not there (pass sysfs= "
        "if the driver's is elsewhere): '/sys/class/u-dma-buf/null'")


def test_the_file_stand_in_is_no_option(tmp_path):
    # Only tests' own list lets a regular file in: neither an option nor a
    # spec (PYNQ_ALLOC_MEMORY) can.
    device, sysfs = make_udmabuf(str(tmp_path))
    with pytest.raises(ValueError, match="no option 'file_stand_in'"):
        open_memory(f"udmabuf:device={device},sysfs={sysfs},file_stand_in=1")
    with pytest.raises(ValueError, match="no option 'file_stand_in'"):
        open_memory("udmabuf", device=device, sysfs=sysfs, file_stand_in=True)


def test_no_device_side_access(udmabuf):
    mem, _, _ = udmabuf
    b = allocate(4, target=mem)
    with pytest.raises(OSError) as info:
        mem.device_read(b.device_address, 4)
    assert info.value.errno == errno.ENOTSUP


# The driver's uncached mapping: write-combined (sync_mode 2), as zocl maps
# its uncached BOs.  With the default, 1, it is device memory on arm and
# arm64, where an unaligned access is a bus error.
ARM = platform.machine() in ("aarch64", "arm64") or platform.machine().startswith("arm")


def sync_mode(sysfs):
    with open(os.path.join(sysfs, "sync_mode")) as f:
        return f.read().strip()


def test_the_open_makes_uncached_mappings_write_combined(udmabuf):
    mem, _, sysfs = udmabuf
    assert sync_mode(sysfs) == "2"
    b = allocate(4096, "u1", target=mem, cacheable=False)
    assert (b.cacheable, b.coherent) == (False, True)


def test_sync_mode_with_the_always_bit_is_made_plain_write_combine(tmp_path):
    # 4 to 7 apply to opens without O_SYNC too: the cached mapping would
    # not be cached.
    device, sysfs = make_udmabuf(str(tmp_path))
    with open(os.path.join(sysfs, "sync_mode"), "w") as f:
        f.write("5\n")
    open_memory("udmabuf", device=device, sysfs=sysfs)
    assert sync_mode(sysfs) == "2"


def test_without_sync_mode_uncached_is_refused_on_arm_and_says_why(tmp_path):
    # A driver that has no sync_mode maps uncached buffers as device memory
    # on arm and arm64: refused there, with the reason said once, at the
    # open; x86 takes any access on any memory type, so they are mapped.
    device, sysfs = make_udmabuf(str(tmp_path))
    os.remove(os.path.join(sysfs, "sync_mode"))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        mem = open_memory("udmabuf", device=device, sysfs=sysfs)
    b = allocate(64, "u1", target=mem, cacheable=True)
    assert b.cacheable is True
    if not ARM:
        assert said == []
        assert allocate(64, "u1", target=mem, cacheable=False).coherent is True
        return
    path = os.path.join(sysfs, "sync_mode")
    assert [str(w.message) for w in said] == [
        f"u-dma-buf {device}: uncached buffers (cacheable=False) are refused: "
        f"{path} is not there (a driver without sync_mode), and the driver's "
        "other uncached mapping (sync_mode 1) is device memory on this CPU, "
        "where an unaligned access is a bus error; use cacheable=True with "
        "flush() and invalidate(), or have sync_mode set to 2 "
        "(write-combine) as root"]
    assert said[0].category is RuntimeWarning
    with pytest.raises(OSError, match="cannot map buffers uncached") as info:
        allocate(64, "u1", target=mem, cacheable=False)
    assert info.value.errno == errno.ENOTSUP

"""The xrt backend through its real interface: dlopen() of a stand-in
libxrt_coreutil.so built by the test suite, which simulates a PCIe card
(card memory apart from the host's, syncs that copy, banks at their own
addresses) and logs every call.  Not tested against a real card."""
import errno
import gc
import os
import struct

import numpy as np
import pytest

from fake_devices import MiB, make_xrt, xrt_bank_base
from helpers import longest_stall
from pynq_alloc import _probe, allocate, open_memory

BANK0 = xrt_bank_base(0)


@pytest.fixture
def card(tmp_path, libxrt, monkeypatch):
    return make_xrt(str(tmp_path), libxrt[0], monkeypatch)


def open_xrt(card, **options):
    options = {"userptr": True, "size": card.bank_size, "base_address": BANK0,
               **options}
    return open_memory("xrt", library=card.library, **options)


@pytest.fixture
def mem(card):
    return open_xrt(card)


def test_a_buffer_is_a_bo_whose_host_buffer_is_ours(card, mem):
    b = allocate(100, "u1", target=mem)
    assert card.calls() == ["open 0", f"userptr {BANK0:#x} 4096 bank=0 flags=0",
                            f"sync to {BANK0:#x} 4096"]
    assert b.device_address == BANK0
    assert b.coherent is False and b.cacheable is True      # mirrored
    assert mem.kind == "xrt" and "device=0 bank=0" in repr(mem)


def test_new_memory_reads_as_zeros_on_the_card_too(card, mem):
    # The card's memory held 0xC3 from an earlier user.
    b = allocate(3 * MiB, "u1", target=mem)
    assert not b.any()
    assert card.read(b.device_address, b.nbytes) == bytes(b.nbytes)


def test_zero_false_leaves_the_card_as_it_was(card, mem):
    b = allocate(4096, "u1", target=mem, zero=False)
    assert not any(line.startswith("sync") for line in card.calls())
    assert card.read(b.device_address, 4) == b"\xC3" * 4


def test_cacheable_is_passed_to_xrt_as_pynq_passes_it(card, mem):
    allocate(4, target=mem, cacheable=True)
    assert f"userptr {BANK0:#x} 4096 bank=0 flags=0x1000000" in card.calls()


def test_a_views_flush_moves_exactly_its_span_to_the_card(card, mem):
    m = allocate((64, 64), "u4", target=mem)
    m[:] = 3                                    # on the host only
    assert card.read(m.device_address, m.nbytes) == bytes(m.nbytes)
    m[2].flush()
    assert card.calls()[-1] == f"sync to {m.device_address + 512:#x} 256"
    seen = np.frombuffer(card.read(m.device_address, m.nbytes), "u4").reshape(64, 64)
    assert (seen[2] == 3).all() and not seen[:2].any() and not seen[3:].any()
    # A strided view: from its lowest byte to its highest.
    m[1:3, 5].sync_to_device()
    assert card.calls()[-1] == f"sync to {m.device_address + 256 + 20:#x} 260"


def test_an_invalidate_brings_back_exactly_its_span(card, mem):
    m = allocate((64, 64), "u4", target=mem)
    m[:] = 3
    card.write(m.device_address, np.arange(64 * 64, dtype="u4"))
    m[1:3, 5].invalidate()
    assert card.calls()[-1] == f"sync from {m.device_address + 276:#x} 260"
    flat = m.reshape(-1)
    assert (flat[:69] == 3).all() and (flat[134:] == 3).all()
    assert (flat[69:134] == np.arange(69, 134)).all()
    m[5].sync_from_device()
    assert (m[5] == np.arange(320, 384)).all()


def test_banks_give_their_own_address_ranges(card):
    for bank in (1, 3):
        mem = open_xrt(card, bank=bank, base_address=xrt_bank_base(bank))
        b = allocate(4096, "u1", target=mem)
        assert b.device_address == xrt_bank_base(bank) == mem.base_address
        assert f"userptr {b.device_address:#x} 4096 bank={bank} flags=0" in card.calls()
        assert f"bank={bank}" in repr(mem)
        assert card.read(b.device_address, 4096) == bytes(4096)


def test_a_bank_the_card_does_not_have(card):
    mem = open_xrt(card, bank=7)
    with pytest.raises(ValueError, match="cannot allocate"):
        allocate(4, target=mem)
    assert mem.stats()["buffers"] == 0


def balanced(calls):
    """Every BO the card gave is freed, and the device closed with none."""
    made = [c.split()[1] for c in calls if c.split()[0] in ("alloc", "userptr")]
    freed = [c.split()[1] for c in calls if c.startswith("free ")]
    return sorted(made) == sorted(freed) and calls[-1] == "close 0 live=0"


@pytest.mark.parametrize("userptr", [True, False])
def test_nothing_leaks(card, userptr):
    mem = open_xrt(card, userptr=userptr)
    a = allocate(5000, "u1", target=mem)
    b = allocate((8, 8), "u4", target=mem, cacheable=True)
    view, row = a[100:], b[3]
    b.freebuffer()                  # with a live view
    with allocate(70000, "u1", target=mem) as c:
        c[:] = 1
    del a, b, c
    assert mem.stats()["buffers"] == 1         # `view` holds a's BO
    view[:] = 5
    row[:] = 6                                  # detached: safe
    del view, row, mem
    gc.collect()
    assert balanced(card.calls())


def test_staged_mode_copies_through_xrts_host_buffer(card):
    mem = open_xrt(card, userptr=False)
    assert "userptr=0" in repr(mem)
    b = allocate(4096, "u1", target=mem, cacheable=True)
    assert card.calls()[1] == f"alloc {BANK0:#x} 4096 bank=0 flags=0x1000000"
    assert not b.any() and card.read(BANK0, 4096) == bytes(4096)
    b[:] = 7
    b[10:20].flush()
    assert card.read(BANK0, 32) == bytes(10) + b"\7" * 10 + bytes(12)
    card.write(BANK0 + 40, b"card")
    b[41:43].invalidate()
    assert bytes(b[39:45]) == b"\7\7ar\7\7"
    v = b[100:]
    b.freebuffer()          # XRT unmaps its own host buffer; ours stays
    v[:] = 1
    assert (v == 1).all() and v.freed


def test_the_default_host_buffer_mode(card, monkeypatch):
    edge = [_probe.Finding("zocl", True, "/dev/dri/renderD128", {})]
    monkeypatch.setattr(_probe, "probe", lambda root="/": edge)
    assert "userptr=0" in repr(open_memory("xrt", library=card.library))
    monkeypatch.setattr(_probe, "probe", lambda root="/": [])
    assert "userptr" not in repr(open_memory("xrt", library=card.library))


def test_stats_count_this_memorys_bos_in_the_bank(mem):
    assert (mem.base_address, mem.size) == (BANK0, 8 * MiB)
    b = allocate(3 * MiB, "u1", target=mem)
    assert mem.stats() == {"total": 8 * MiB, "used": 3 * MiB,
                           "free": 5 * MiB, "largest_free": 5 * MiB,
                           "buffers": 1}
    with pytest.raises(MemoryError, match=f"{5 * MiB} bytes free"):
        allocate(6 * MiB, "u1", target=mem)
    del b


def test_alignment_beyond_a_page(card, mem):
    first = allocate(1, target=mem)
    b = allocate(4096, "u1", target=mem, align=1 << 16)
    assert b.device_address == first.device_address + (1 << 16)
    assert b.device_address % (1 << 16) == 0
    assert f"userptr {BANK0 + 4096:#x} 65536 bank=0 flags=0" in card.calls()
    b[:] = 1
    b.flush()
    assert card.calls()[-1] == f"sync to {b.device_address:#x} 4096"


def test_device_side_access_is_refused(mem):
    b = allocate(16, "u1", target=mem)
    with pytest.raises(OSError) as info:
        mem.device_read(b.device_address, 16)
    assert info.value.errno == errno.ENOTSUP
    with pytest.raises(OSError):
        mem.device_write(b.device_address, b"x")


def test_devices_by_index(tmp_path, libxrt, monkeypatch):
    card = make_xrt(str(tmp_path), libxrt[0], monkeypatch, bank_size=MiB, devices=2)
    one = open_xrt(card, device=1)
    b = allocate(4096, "u1", target=one)
    b[:] = 9
    b.flush()
    assert card.read(BANK0, 4, device=1) == b"\x09" * 4
    assert card.read(BANK0, 4, device=0) == b"\xC3" * 4
    with pytest.raises(OSError, match="cannot open device 2") as info:
        open_xrt(card, device=2)
    assert info.value.errno == errno.ENODEV


def test_missing_library_is_an_oserror_naming_it(tmp_path):
    missing = str(tmp_path / "libxrt_coreutil.so.2")
    with pytest.raises(OSError, match="XRT's library") as info:
        open_memory("xrt", library=missing)
    assert info.value.errno == errno.ENOENT and info.value.filename == missing


def test_missing_symbol_is_an_oserror_naming_it(libxrt):
    with pytest.raises(OSError, match=r"xrtBOSync\(\)") as info:
        open_memory("xrt", library=libxrt[1])
    assert info.value.filename == libxrt[1]


def test_the_library_is_searched_under_xilinx_xrt(tmp_path, monkeypatch):
    lib = tmp_path / "lib" / "libxrt_coreutil.so.2"
    monkeypatch.setenv("XILINX_XRT", str(tmp_path))
    assert _probe.xrt_library() in (_probe.XRT_LIBRARY,
                                    os.path.join(_probe.XRT_DIR, "lib", _probe.XRT_LIBRARY))
    lib.parent.mkdir()
    lib.touch()
    assert _probe.xrt_library() == str(lib)


@pytest.mark.parametrize("options", [{"bank": 1 << 16}, {"bank": -1},
                                     {"device": -1}, {"bank": "x"}])
def test_bad_options_are_value_errors(card, options):
    with pytest.raises(ValueError, match="xrt"):
        open_memory("xrt", library=card.library, **options)


def mem_topology(banks):
    """A struct mem_topology as xclbin.h lays it out."""
    data = struct.pack("<i4x", len(banks))
    for mem_type, used, size, base, tag in banks:
        data += struct.pack("<BB6xQQ16s", mem_type, used, size >> 10, base, tag)
    return data


def test_a_cards_banks_from_sysfs(tmp_path):
    card = tmp_path / "sys/bus/pci/drivers/xocl/0000:65:00.1"
    (card / "icap.u.4").mkdir(parents=True)
    (card / "icap.u.4" / "mem_topology").write_bytes(mem_topology([
        (1, 1, 16 << 30, 0x40_0000_0000, b"bank0"),
        (3, 1, 0, 0, b"stream0"),
        (1, 1, 16 << 30, 0x50_0000_0000, b"bank2")]))
    (tmp_path / "sys/bus/pci/drivers/xocl/0000:17:00.1").mkdir()
    cards = _probe.xrt_cards(str(tmp_path))
    assert [os.path.basename(c) for c in cards] == ["0000:17:00.1", "0000:65:00.1"]
    assert _probe.xrt_bank_range(cards[1], 2) == (0x50_0000_0000, 16 << 30)
    assert _probe.xrt_bank_range(cards[1], 1) == (0, 0)        # streaming
    assert _probe.xrt_bank_range(cards[0], 0) == (0, 0)        # no xclbin


def test_syncs_run_without_the_gil(mem, monkeypatch):
    b = allocate(16, "u1", target=mem)
    monkeypatch.setenv("PA_FAKE_XRT_SYNC_MS", "300")
    # Holding the GIL through the call would stall this thread for 300 ms.
    assert longest_stall(b.flush) < 0.15

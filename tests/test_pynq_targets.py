"""What PYNQ code passes to allocate(): its memory banks and devices as
`target=`, and its video frame cache's `pointer=`/`cache=` protocol."""
import os

import numpy as np
import pytest

from fake_devices import make_udmabuf, make_xrt, xrt_bank_base
from pynq_lookalikes import (EmbeddedDevice, FrameCache, XrtDevice, XrtMemory,
                             bank, rfsoc_board)
import pynq_alloc
from pynq_alloc import (_core, _open, _probe, _resolvers, allocate,
                        default_memory, open_memory)


@pytest.fixture(autouse=True)
def fresh_bank_memories(monkeypatch):
    monkeypatch.setattr(_resolvers, "_bank_memories", {})


@pytest.fixture
def install_default():
    """install(memory) makes memory the default one, as the pytest plugin
    does; the previous default comes back after the test."""
    previous = []

    def install(memory):
        previous.append(_core._set_default_memory(memory))
        return memory
    yield install
    if previous:
        _core._set_default_memory(previous[0])


@pytest.fixture
def zocl_board(monkeypatch, install_default):
    """A board whose default memory was opened as zocl, here by a stand-in
    opener that gives a small sim memory per call.  Returns install(spec)
    -> the default, and the log of the openers' options."""
    opened = []

    def fake_zocl(**options):
        opened.append(options)
        return open_memory("sim", size=1 << 20, base_address=0x4_0000_0000)
    monkeypatch.setitem(_open.BACKENDS, "zocl", fake_zocl)
    return (lambda spec="zocl": install_default(open_memory(spec))), opened


def test_off_the_board_the_sim_serves_every_bank():
    device, psddr, plddr = rfsoc_board()
    assert default_memory().kind == "sim"
    for target in (psddr, plddr, device):
        b = allocate(16, target=target)
        assert b.memory is default_memory()
    assert pynq_alloc.default_memory().allocate(4).memory is default_memory()


def test_a_device_means_its_default_memory(zocl_board):
    device, psddr, _ = rfsoc_board()
    install, opened = zocl_board
    default = install()
    assert device.default_memory.idx == psddr.idx
    assert allocate(4, target=device).memory is default
    assert opened == [{}]                   # the default's, and no other


def test_pynq_errors_about_the_device_reach_the_user():
    with pytest.raises(RuntimeError, match="Overlay is not downloaded"):
        allocate(4, target=EmbeddedDevice("embedded_xrt0"))


def test_on_zocl_each_bank_is_its_own_zocl_memory(zocl_board):
    _, psddr, plddr = rfsoc_board()
    install, opened = zocl_board
    default = install("zocl:device=/dev/dri/renderD128")
    assert allocate(4, target=psddr).memory is default           # bank 0
    a = allocate(4, target=plddr)
    b = allocate(4, target=plddr)
    assert opened[1:] == [{"device": "/dev/dri/renderD128", "bank": 1}]
    assert a.memory is b.memory is not default


def test_on_zocl_the_default_bank_may_be_another(zocl_board):
    _, psddr, plddr = rfsoc_board()
    install, opened = zocl_board
    default = install("zocl:bank=0x1")
    assert allocate(4, target=plddr).memory is default
    allocate(4, target=psddr)
    assert opened == [{"bank": "0x1"}, {"bank": 0}]


def test_the_plugins_sim_serves_every_bank_on_a_zocl_board(pynq_memory, monkeypatch):
    """Under the pytest plugin, the sim it installs is the default memory,
    whatever PYNQ_ALLOC_MEMORY or the board says: bank 1 too, not zocl."""
    monkeypatch.setenv("PYNQ_ALLOC_MEMORY", "zocl:device=/nonexistent/renderD128")
    _, psddr, plddr = rfsoc_board()
    for target in (psddr, plddr):
        assert allocate(4, target=target).memory is pynq_memory


def test_targets_ask_the_installed_default_not_the_machine(install_default,
                                                           monkeypatch):
    default = install_default(open_memory("sim", size=1 << 20))

    def probing(*args, **kwargs):
        raise AssertionError("looked at the machine again")
    monkeypatch.setattr(_probe, "probe", probing)
    monkeypatch.setattr(_probe, "choose_default", probing)
    device, psddr, plddr = rfsoc_board()
    for target in (psddr, plddr, device, psddr):
        assert allocate(4, target=target).memory is default


def test_udmabuf_serves_the_bank_that_holds_it_and_refuses_others(tmp_path,
                                                                  install_default):
    device, sysfs = make_udmabuf(str(tmp_path), phys=0x3000_0000)
    udmabuf = install_default(open_memory("udmabuf", device=device, sysfs=sysfs))
    _, psddr, plddr = rfsoc_board()
    assert allocate(4, target=psddr).memory is udmabuf
    with pytest.raises(ValueError, match=r"'PLDDR' \(bank 1\) at 0x400000000"
                       r".*does not hold the default udmabuf memory \(0x30000000"):
        allocate(4, target=plddr)
    assert udmabuf.stats()["buffers"] == 0


def alveo(index=0):
    """A PCIe card with two DDR banks, as PYNQ's XrtDevice describes it."""
    card = XrtDevice(f"xrt{index}", {
        "bank0": bank(0, "bank0", xrt_bank_base(0), 8 << 20),
        "bank1": bank(1, "bank1", xrt_bank_base(1), 8 << 20)}, index=index)
    return card, XrtMemory(card, card.mem_dict["bank0"]), \
        XrtMemory(card, card.mem_dict["bank1"])


def test_off_the_board_the_sim_serves_pcie_banks_too():
    card, bank0, bank1 = alveo()
    for target in (bank0, bank1):
        assert allocate(16, target=target).memory is default_memory()


@pytest.fixture
def xrt_default(tmp_path, libxrt, monkeypatch, install_default):
    """A machine with two stand-in cards, where xrt is the default."""
    fake = make_xrt(str(tmp_path), libxrt[0], monkeypatch, devices=2)
    default = install_default(open_memory("xrt", library=fake.library,
                                          userptr="1"))
    return fake, default


def test_pcie_banks_map_to_xrt_banks(xrt_default):
    fake, default = xrt_default
    card, bank0, bank1 = alveo()
    assert allocate(16, target=bank0).memory is default
    b = allocate(16, "u1", target=bank1)
    assert b.memory.kind == "xrt" and "device=0 bank=1" in repr(b.memory)
    assert b.device_address == xrt_bank_base(1) == b.memory.base_address
    assert b.memory.size == 8 << 20                 # as PYNQ knows the bank
    assert allocate(16, target=bank1).memory is b.memory
    b[:] = 1
    b.flush()
    assert fake.read(b.device_address, 16) == b"\1" * 16


def test_the_cards_index_picks_the_device(xrt_default):
    fake, default = xrt_default
    _, bank0, _ = alveo(index=1)
    b = allocate(4096, "u1", target=bank0)
    assert "device=1 bank=0" in repr(b.memory) and b.memory is not default
    b[:] = 2
    b.flush()
    assert fake.read(xrt_bank_base(0), 2, device=1) == b"\2\2"
    assert fake.read(xrt_bank_base(0), 2, device=0) != b"\2\2"


def test_pcie_banks_beside_another_default(tmp_path, libxrt, monkeypatch,
                                          install_default):
    """With u-dma-buf the default, a card's bank still goes to XRT,
    whose library is found under XILINX_XRT."""
    device, sysfs = make_udmabuf(str(tmp_path))
    udmabuf = install_default(open_memory("udmabuf", device=device, sysfs=sysfs))
    fake = make_xrt(str(tmp_path), libxrt[0], monkeypatch)
    (tmp_path / "lib").mkdir()
    os.rename(fake.library, tmp_path / "lib" / "libxrt_coreutil.so.2")
    monkeypatch.setenv("XILINX_XRT", str(tmp_path))
    _, _, bank1 = alveo()
    b = allocate(16, target=bank1)
    assert b.memory.kind == "xrt" and b.device_address == xrt_bank_base(1)
    assert udmabuf.stats()["buffers"] == 0


def test_an_edge_memory_goes_to_xrt_where_xrt_is_the_default(xrt_default):
    _, _, plddr = rfsoc_board()
    b = allocate(16, target=plddr)
    assert "device=0 bank=1" in repr(b.memory)


@pytest.mark.parametrize("target", ["PSDDR", 0, object(), np.zeros(3)])
def test_other_targets_are_a_type_error(target):
    with pytest.raises(TypeError, match="PYNQ overlay's memories"):
        allocate(4, target=target)


# The frame cache protocol of PYNQ's video driver.

def test_freeing_a_frame_returns_its_memory_to_the_cache(mem):
    cache = FrameCache(allocate, (4, 8), mem)
    frame = cache.getframe()
    assert frame.return_to is cache and isinstance(frame.pointer, pynq_alloc.Allocation)
    address = frame.device_address
    frame[:] = 9
    frame.freebuffer()
    assert frame.pointer == 0 and not frame.freed
    assert mem.stats()["buffers"] == 1          # held by the cache
    frame.freebuffer()                          # only once
    assert len(cache._cache) == 1
    again = cache.getframe()
    assert again.device_address == address and (again == 9).all()
    assert again.pointer is frame.base and mem.stats()["buffers"] == 1


def test_a_with_block_returns_the_frame(mem):
    cache = FrameCache(allocate, 64, mem)
    with cache.getframe() as frame:
        frame[:] = 1
    assert len(cache._cache) == 1 and mem.stats()["buffers"] == 1


def test_memory_goes_back_when_the_cache_drops_the_pointer(mem):
    cache = FrameCache(allocate, 64, mem, capacity=1)
    frames = [cache.getframe() for _ in range(3)]
    for f in frames:
        f.freebuffer()
    del frames, f
    assert len(cache._cache) == 1 and mem.stats()["buffers"] == 1
    cache.clear()
    assert mem.stats()["buffers"] == 0


def test_a_view_of_a_frame_returns_nothing(mem):
    cache = FrameCache(allocate, 64, mem)
    frame = cache.getframe()
    frame[8:].freebuffer()
    assert cache._cache == [] and not frame.freed


def test_pointer_must_be_an_allocation_that_fits(mem):
    b = allocate(4096, "u1", target=mem)
    with pytest.raises(TypeError, match="pointer must be"):
        allocate(16, pointer=(1, 2, 3))
    with pytest.raises(ValueError, match="has 4096 bytes; the shape and dtype need 8192"):
        allocate(2048, "u4", pointer=b.base)
    wrapped = allocate((2, 4), "u4", pointer=b.base)
    assert wrapped.device_address == b.device_address
    b.freebuffer()
    with pytest.raises(ValueError, match="freed"):
        allocate(4, pointer=b.base)


def test_cache_without_return_pointer_is_refused_and_leaks_nothing(mem):
    with pytest.raises(TypeError, match="return_pointer"):
        allocate(4, target=mem, cache=[])
    assert mem.stats()["buffers"] == 0

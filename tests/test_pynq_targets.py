"""What PYNQ code passes to allocate(): its memory banks and devices as
`target=`, and its video frame cache's `pointer=`/`cache=` protocol."""
import os

import numpy as np
import pytest

from fake_devices import make_udmabuf, make_xrt, xrt_bank_base
from pynq_lookalikes import (EmbeddedDevice, FrameCache, XrtDevice, XrtMemory,
                             bank, rfsoc_board)
import pynq_alloc
from pynq_alloc import _resolvers, allocate, default_memory, open_memory


@pytest.fixture(autouse=True)
def fresh_bank_memories(monkeypatch):
    monkeypatch.setattr(_resolvers, "_bank_memories", {})


def test_off_the_board_the_sim_serves_every_bank():
    device, psddr, plddr = rfsoc_board()
    assert default_memory().kind == "sim"
    for target in (psddr, plddr, device):
        b = allocate(16, target=target)
        assert b.memory is default_memory()
    assert pynq_alloc.default_memory().allocate(4).memory is default_memory()


def test_a_device_means_its_default_memory(monkeypatch):
    device, psddr, _ = rfsoc_board()
    seen = []
    monkeypatch.setattr(_resolvers, "_bank_memory",
                        lambda kind, options, target: seen.append(target.idx)
                        or default_memory())
    monkeypatch.setattr(_resolvers, "choose_default",
                        lambda: ("zocl", {}, "test"))
    allocate(4, target=device)
    assert seen == [psddr.idx]


def test_pynq_errors_about_the_device_reach_the_user():
    with pytest.raises(RuntimeError, match="Overlay is not downloaded"):
        allocate(4, target=EmbeddedDevice("embedded_xrt0"))


def test_on_zocl_each_bank_is_its_own_zocl_memory(monkeypatch):
    device, psddr, plddr = rfsoc_board()
    opened = []

    def fake_open(kind, **options):
        opened.append((kind, options))
        return open_memory("sim", size=1 << 20, base_address=0x4_0000_0000)

    monkeypatch.setattr(_resolvers, "choose_default",
                        lambda: ("zocl", {"device": "/dev/dri/renderD128"}, "test"))
    monkeypatch.setattr(_resolvers, "open_memory", fake_open)
    assert allocate(4, target=psddr).memory is default_memory()    # bank 0
    a = allocate(4, target=plddr)
    b = allocate(4, target=plddr)
    assert opened == [("zocl", {"device": "/dev/dri/renderD128", "bank": 1})]
    assert a.memory is b.memory and a.memory.base_address == 0x4_0000_0000


def test_on_zocl_the_default_bank_may_be_another(monkeypatch):
    _, psddr, plddr = rfsoc_board()
    opened = []
    monkeypatch.setattr(_resolvers, "choose_default",
                        lambda: ("zocl", {"bank": "0x1"}, "PYNQ_ALLOC_MEMORY"))
    monkeypatch.setattr(_resolvers, "open_memory",
                        lambda kind, **o: opened.append(o) or open_memory("sim"))
    assert allocate(4, target=plddr).memory is default_memory()
    allocate(4, target=psddr)
    assert opened == [{"bank": 0}]


def test_udmabuf_serves_the_bank_that_holds_it_and_refuses_others(tmp_path, monkeypatch):
    device, sysfs = make_udmabuf(str(tmp_path), phys=0x3000_0000)
    udmabuf = open_memory("udmabuf", device=device, sysfs=sysfs)
    monkeypatch.setattr(_resolvers, "choose_default", lambda: ("udmabuf", {}, "test"))
    monkeypatch.setattr(_resolvers, "default_memory", lambda: udmabuf)
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
def xrt_default(tmp_path, libxrt, monkeypatch):
    """A machine with two stand-in cards, where xrt is the default."""
    fake = make_xrt(str(tmp_path), libxrt[0], monkeypatch, devices=2)
    options = {"library": fake.library, "userptr": "1"}
    default = open_memory("xrt", **options)
    monkeypatch.setattr(_resolvers, "choose_default", lambda: ("xrt", options, "test"))
    monkeypatch.setattr(_resolvers, "default_memory", lambda: default)
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


def test_pcie_banks_beside_another_default(tmp_path, libxrt, monkeypatch):
    """With u-dma-buf the default, a card's bank still goes to XRT,
    whose library is found under XILINX_XRT."""
    device, sysfs = make_udmabuf(str(tmp_path))
    udmabuf = open_memory("udmabuf", device=device, sysfs=sysfs)
    monkeypatch.setattr(_resolvers, "choose_default", lambda: ("udmabuf", {}, "test"))
    monkeypatch.setattr(_resolvers, "default_memory", lambda: udmabuf)
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

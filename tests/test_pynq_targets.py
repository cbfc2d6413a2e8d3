"""What PYNQ code passes to allocate(): its memory banks and devices as
`target=`, and its video frame cache's `pointer=`/`cache=` protocol."""
import numpy as np
import pytest

from fake_devices import make_udmabuf
from pynq_lookalikes import (EmbeddedDevice, FrameCache, XrtDevice, XrtMemory,
                             bank, rfsoc_board)
import pynq_alloc
from pynq_alloc import _targets, allocate, default_memory, open_memory


@pytest.fixture(autouse=True)
def fresh_bank_memories(monkeypatch):
    monkeypatch.setattr(_targets, "_bank_memories", {})


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
    monkeypatch.setattr(_targets, "_zocl_bank",
                        lambda options, idx: seen.append(idx) or default_memory())
    monkeypatch.setattr(_targets, "choose_default",
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

    monkeypatch.setattr(_targets, "choose_default",
                        lambda: ("zocl", {"device": "/dev/dri/renderD128"}, "test"))
    monkeypatch.setattr(_targets, "open_memory", fake_open)
    assert allocate(4, target=psddr).memory is default_memory()    # bank 0
    a = allocate(4, target=plddr)
    b = allocate(4, target=plddr)
    assert opened == [("zocl", {"device": "/dev/dri/renderD128", "bank": 1})]
    assert a.memory is b.memory and a.memory.base_address == 0x4_0000_0000


def test_on_zocl_the_default_bank_may_be_another(monkeypatch):
    _, psddr, plddr = rfsoc_board()
    opened = []
    monkeypatch.setattr(_targets, "choose_default",
                        lambda: ("zocl", {"bank": "0x1"}, "PYNQ_ALLOC_MEMORY"))
    monkeypatch.setattr(_targets, "open_memory",
                        lambda kind, **o: opened.append(o) or open_memory("sim"))
    assert allocate(4, target=plddr).memory is default_memory()
    allocate(4, target=psddr)
    assert opened == [{"bank": 0}]


def test_udmabuf_serves_the_bank_that_holds_it_and_refuses_others(tmp_path, monkeypatch):
    device, sysfs = make_udmabuf(str(tmp_path), phys=0x3000_0000)
    udmabuf = open_memory("udmabuf", device=device, sysfs=sysfs)
    monkeypatch.setattr(_targets, "choose_default", lambda: ("udmabuf", {}, "test"))
    monkeypatch.setattr(_targets, "default_memory", lambda: udmabuf)
    _, psddr, plddr = rfsoc_board()
    assert allocate(4, target=psddr).memory is udmabuf
    with pytest.raises(ValueError, match=r"'PLDDR' \(bank 1\) at 0x400000000"
                       r".*does not hold the default udmabuf memory \(0x30000000"):
        allocate(4, target=plddr)
    assert udmabuf.stats()["buffers"] == 0


def test_pcie_memories_are_refused():
    card = XrtDevice("xrt0", {"bank0": bank(0, "bank0", 0x40_0000_0000, 16 << 30)})
    with pytest.raises(ValueError, match="PCIe card"):
        allocate(4, target=XrtMemory(card, card.mem_dict["bank0"]))
    with pytest.raises(ValueError, match="PCIe card"):
        allocate(4, target=card)


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

"""Look-alikes of the PYNQ 3.1 objects that PYNQ code hands to allocate(),
with the attributes and behaviour that pynq_alloc relies on, written from
PYNQ's public source (pynq/pl_server/xrt_device.py, embedded_device.py,
device.py, lib/video/dma.py).  PYNQ itself is not imported."""


class Device:
    """pynq.Device: a tag and a capability table."""
    capabilities = {}

    def __init__(self, tag, memories=None):
        self.tag = tag
        if memories is not None:             # set once an overlay is loaded
            self.mem_dict = memories

    def has_capability(self, cap):
        return cap in self.capabilities and self.capabilities[cap]


class XrtDevice(Device):
    """A PCIe (Alveo) card: its memory is not the host's."""
    capabilities = {"REGISTER_RW": True, "CALLABLE": True}

    def __init__(self, tag, memories=None, index=0):
        super().__init__(tag, memories)
        self._index = index         # xrtDeviceOpen's, as PYNQ 3.1 keeps it

    @property
    def default_memory(self):
        used = [m for m in self.mem_dict.values() if m["used"] and not m["streaming"]]
        if len(used) > 1:
            raise RuntimeError("Multiple memories active in design: specify "
                               "the memory using the `target` parameters")
        return XrtMemory(self, used[0])


class EmbeddedDevice(XrtDevice):
    """An edge board (zocl): memory mapped into the host."""
    capabilities = {"REGISTER_RW": False, "MEMORY_MAPPED": True, "CALLABLE": False}

    @property
    def default_memory(self):
        if not hasattr(self, "mem_dict"):
            raise RuntimeError("Overlay is not downloaded")
        for desc in self.mem_dict.values():
            if desc["base_address"] == 0:
                return XrtMemory(self, desc)
        raise RuntimeError("XRT design does not contain PS memory")


class XrtMemory:
    """ol.PSDDR, ol.HP0, ol.bank1: one memory bank of a device."""

    def __init__(self, device, desc):
        self.idx = desc["idx"]
        self.size = desc["size"]
        self.base_address = desc["base_address"]
        self.desc = desc
        self.device = device


def bank(idx, tag, base_address, size, used=True, streaming=False):
    """A mem_dict entry as PYNQ's xclbin parser makes it."""
    return {"raw_type": 0, "used": used, "base_address": base_address,
            "size": size, "type": "DDR", "streaming": streaming, "idx": idx,
            "tag": tag}


def rfsoc_board():
    """An edge board with PS DDR (bank 0) and PL DDR (bank 1)."""
    device = EmbeddedDevice("embedded_xrt0", {
        "PSDDR": bank(0, "PSDDR", 0, 2 << 30),
        "PLDDR": bank(1, "PLDDR", 0x4_0000_0000, 4 << 30),
    })
    return device, XrtMemory(device, device.mem_dict["PSDDR"]), \
        XrtMemory(device, device.mem_dict["PLDDR"])


class FrameCache:
    """PYNQ's video _FrameCache: recycles frames' memory through the
    allocate(pointer=, cache=) protocol."""

    def __init__(self, allocate, shape, target, capacity=2, cacheable=False):
        self._allocate = allocate
        self._shape = shape
        self._target = target
        self._capacity = capacity
        self._cacheable = cacheable
        self._cache = []

    def getframe(self):
        if self._cache:
            return self._allocate(shape=self._shape, dtype="u1",
                                  cacheable=self._cacheable,
                                  pointer=self._cache.pop(), cache=self,
                                  target=self._target)
        return self._allocate(shape=self._shape, dtype="u1",
                              cacheable=self._cacheable, cache=self,
                              target=self._target)

    def return_pointer(self, pointer):
        if len(self._cache) < self._capacity:
            self._cache.append(pointer)

    def clear(self):
        self._cache.clear()

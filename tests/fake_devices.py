"""Stand-ins for board devices, made in a temporary directory: the real
backends run against them through their real interfaces."""
import os

MiB = 1 << 20


def make_udmabuf(root, name="udmabuf0", size=16 * MiB, phys=0x3000_0000,
                 coherent=False):
    """A u-dma-buf as the driver presents it: a device node (here a
    truncated regular file, which answers no ioctl, so the backend uses
    sysfs) and its sysfs attributes.  Returns (device, sysfs_dir).

    The opener refuses a regular file unless it is listed as a stand-in,
    which only tests do; a test that opens it in another interpreter lists
    it there (see test_processes.py's HOLD)."""
    device = os.path.join(root, name)
    with open(device, "wb") as f:
        f.truncate(size)
    allow_udmabuf_stand_in(device)
    sysfs = os.path.join(root, "sys", name)
    os.makedirs(sysfs)
    for attr, value in [("phys_addr", f"{phys:#x}\n"), ("size", f"{size}\n"),
                        ("dma_coherent", f"{int(coherent)}\n"),
                        ("sync_mode", "1\n"),  # the driver loads with 1
                        ("sync_for_device", ""), ("sync_for_cpu", "")]:
        with open(os.path.join(sysfs, attr), "w") as f:
            f.write(value)
    return device, sysfs


def allow_udmabuf_stand_in(device):
    """Lets this process open the regular file device as a u-dma-buf."""
    from pynq_alloc import _open
    _open._udmabuf_file_stand_ins.add(os.path.realpath(device))


def read_and_clear(path):
    """What the backend last wrote to a sysfs file; empties it after."""
    with open(path, "r+") as f:
        text = f.read()
        f.seek(0)
        f.truncate()
    return text


STAND_IN_DIR = os.path.join(os.path.dirname(__file__), "stand_in")


def build_stand_in(directory, name, out, define=None):
    """Compiles stand_in/<name>.c into the library directory/out."""
    import subprocess
    path = os.path.join(directory, out)
    cmd = [os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O1", "-o", path,
           os.path.join(STAND_IN_DIR, name + ".c"), "-lpthread"]
    if define:
        cmd.insert(1, "-D" + define)
    subprocess.run(cmd, check=True)
    return path


def build_libcma(directory, without_invalidate=False):
    """The stand-in libcma.so (see stand_in/libcma.c)."""
    if without_invalidate:
        return build_stand_in(directory, "libcma", "libcma-noinv.so",
                              "WITHOUT_INVALIDATE")
    return build_stand_in(directory, "libcma", "libcma.so")


def make_xlnk(root, library, monkeypatch, pool=64 * MiB):
    """A fresh copy of the stand-in library (so dlopen gives it fresh
    state), the file it maps as /dev/xlnk, and its call log.
    Returns (library copy, log path)."""
    import shutil
    copy = os.path.join(root, "libcma.so")
    shutil.copy(library, copy)
    device = os.path.join(root, "xlnk")
    with open(device, "wb") as f:
        f.truncate(pool)
    log = os.path.join(root, "cma.log")
    open(log, "w").close()
    monkeypatch.setenv("PA_FAKE_XLNK_FILE", device)
    monkeypatch.setenv("PA_FAKE_XLNK_LOG", log)
    return copy, log


def read_log(path):
    with open(path) as f:
        return f.read().split("\n")[:-1]


def build_libxrt(directory, without_sync=False):
    """The stand-in libxrt_coreutil.so (see stand_in/libxrt_coreutil.c)."""
    if without_sync:
        return build_stand_in(directory, "libxrt_coreutil",
                              "libxrt_coreutil-nosync.so", "WITHOUT_SYNC")
    return build_stand_in(directory, "libxrt_coreutil", "libxrt_coreutil.so")


XRT_BANKS = 4       # the stand-in card's banks, each at its own address


def xrt_bank_base(bank):
    """Where the stand-in card puts bank `bank` in its address space."""
    return 0x40_0000_0000 + bank * 0x10_0000_0000


class FakeCard:
    """The stand-in's card: its memory (a file, bank after bank, device
    after device) and the log of calls into the library."""

    def __init__(self, library, log, path, bank_size):
        self.library, self.log, self.path = library, log, path
        self.bank_size = bank_size

    def _offset(self, address, device):
        bank = (address - xrt_bank_base(0)) // 0x10_0000_0000
        offset = address - xrt_bank_base(bank)
        assert 0 <= bank < XRT_BANKS and 0 <= offset < self.bank_size
        return (device * XRT_BANKS + bank) * self.bank_size + offset

    def read(self, address, n, device=0):
        """What the card's memory holds at a device address."""
        with open(self.path, "rb") as f:
            f.seek(self._offset(address, device))
            return f.read(n)

    def write(self, address, data, device=0):
        """Writes the card's memory, as a kernel on the card would."""
        with open(self.path, "r+b") as f:
            f.seek(self._offset(address, device))
            f.write(bytes(data))

    def calls(self):
        return read_log(self.log)


def make_xrt(root, library, monkeypatch, bank_size=8 * MiB, devices=1,
             userptr=True):
    """A fresh copy of the stand-in library (fresh state), a card whose
    memory holds an earlier user's bytes (0xC3), and the call log."""
    import shutil
    copy = os.path.join(root, "libxrt_coreutil.so.2")
    shutil.copy(library, copy)
    card = os.path.join(root, "xrt-card")
    junk = b"\xC3" * MiB
    with open(card, "wb") as f:
        for _ in range(devices * XRT_BANKS * bank_size // MiB):
            f.write(junk)
    log = os.path.join(root, "xrt.log")
    open(log, "w").close()
    monkeypatch.setenv("PA_FAKE_XRT_CARD", card)
    monkeypatch.setenv("PA_FAKE_XRT_LOG", log)
    monkeypatch.setenv("PA_FAKE_XRT_DEVICES", str(devices))
    if userptr:
        monkeypatch.delenv("PA_FAKE_XRT_NO_USERPTR", raising=False)
    else:
        monkeypatch.setenv("PA_FAKE_XRT_NO_USERPTR", "1")
    return FakeCard(copy, log, card, bank_size)

"""Stand-ins for board devices, made in a temporary directory: the real
backends run against them through their real interfaces."""
import os

MiB = 1 << 20


def make_udmabuf(root, name="udmabuf0", size=16 * MiB, phys=0x3000_0000,
                 coherent=False):
    """A u-dma-buf as the driver presents it: a device node (here a
    truncated regular file, which answers no ioctl, so the backend uses
    sysfs) and its sysfs attributes.  Returns (device, sysfs_dir)."""
    device = os.path.join(root, name)
    with open(device, "wb") as f:
        f.truncate(size)
    sysfs = os.path.join(root, "sys", name)
    os.makedirs(sysfs)
    for attr, value in [("phys_addr", f"{phys:#x}\n"), ("size", f"{size}\n"),
                        ("dma_coherent", f"{int(coherent)}\n"),
                        ("sync_for_device", ""), ("sync_for_cpu", "")]:
        with open(os.path.join(sysfs, attr), "w") as f:
            f.write(value)
    return device, sysfs


def read_and_clear(path):
    """What the backend last wrote to a sysfs file; empties it after."""
    with open(path, "r+") as f:
        text = f.read()
        f.seek(0)
        f.truncate()
    return text


STAND_IN_SOURCE = os.path.join(os.path.dirname(__file__), "stand_in", "libcma.c")


def build_libcma(directory, without_invalidate=False):
    """Compiles the stand-in libcma.so (see stand_in/libcma.c)."""
    import subprocess
    name = "libcma-noinv.so" if without_invalidate else "libcma.so"
    out = os.path.join(directory, name)
    cmd = [os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O1", "-o", out,
           STAND_IN_SOURCE]
    if without_invalidate:
        cmd.insert(1, "-DWITHOUT_INVALIDATE")
    subprocess.run(cmd, check=True)
    return out


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

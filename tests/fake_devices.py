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

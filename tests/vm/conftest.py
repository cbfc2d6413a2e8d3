"""Fixtures of the real-kernel tier (tests/vm/run), which runs the
guest_*.py modules inside a VM with the real drivers loaded.  Outside such
a guest nothing here is used."""
import os
import platform
import re

import pytest

TRACING = "/sys/kernel/tracing"

# DMA API calls that u-dma-buf and zocl make, and the registers that hold
# the address and size they are given: dma_sync_single_for_{device,cpu}
# (dev, addr, size, dir) for each sync, dma_free_attrs(dev, size,
# cpu_addr, dma_addr, attrs) when zocl frees a BO.
PROBES = {
    "to_device": ("dma_sync_single_for_device",
                  {"x86_64": ("%si", "%dx"), "aarch64": ("%x1", "%x2")}),
    "for_cpu": ("dma_sync_single_for_cpu",
                {"x86_64": ("%si", "%dx"), "aarch64": ("%x1", "%x2")}),
    "free": ("dma_free_attrs",
             {"x86_64": ("%cx", "%si"), "aarch64": ("%x3", "%x1")}),
}
LINE = re.compile(r"\s(to_device|for_cpu|free): \(.*\) addr=0x([0-9a-f]+) size=(\d+)$")


class DmaCalls:
    """The kernel's DMA API calls made by this process, seen through
    kprobes: what a driver really asked of the DMA API."""

    def __init__(self):
        machine = platform.machine()
        self._write("kprobe_events", "".join(
            f"p:pynq_alloc/{name} {func} addr={regs[machine][0]}:x64 "
            f"size={regs[machine][1]}:u64\n"
            for name, (func, regs) in PROBES.items()))
        self._write("set_event_pid", str(os.getpid()))
        self._write("events/pynq_alloc/enable", "1")
        self.clear()

    def _write(self, name, text):
        with open(os.path.join(TRACING, name), "w") as f:
            f.write(text)

    def clear(self):
        self._write("trace", "")

    def take(self, *names):
        """[(call, address, size)] since the last take() or clear(), of the
        calls named (all if none is)."""
        with open(os.path.join(TRACING, "trace")) as f:
            text = f.read()
        self.clear()
        calls = []
        for line in text.splitlines():
            m = LINE.search(line)
            if m and (not names or m[1] in names):
                calls.append((m[1], int(m[2], 16), int(m[3])))
        return calls

    def close(self):
        self._write("events/pynq_alloc/enable", "0")
        self._write("set_event_pid", "")
        self._write("kprobe_events", "")


@pytest.fixture
def dma_calls():
    if not os.path.isdir(os.path.join(TRACING, "events")):
        pytest.fail(f"no tracefs at {TRACING}: this runs in the VM tier's guests")
    tracer = DmaCalls()
    yield tracer
    tracer.close()


CMA_EVENT = re.compile(r"\s(cma_alloc_finish|cma_release): name=\S+ pfn=0x([0-9a-f]+) "
                       r"page=\S+ count=(\d+)")


class CmaEvents:
    """The kernel's CMA allocations and releases (the cma trace events),
    system-wide: which pages the drivers hold, whatever process they did
    it for."""

    def __init__(self):
        self._write("events/cma/cma_alloc_finish/enable", "1")
        self._write("events/cma/cma_release/enable", "1")
        self.held = {}                  # pfn: pages, of allocations made since
        self.released = {}              # pfn: pages, of those given back

    def _write(self, name, text):
        with open(os.path.join(TRACING, name), "w") as f:
            f.write(text)

    def take(self):
        """Reads the events since the last take() into held and released."""
        with open(os.path.join(TRACING, "trace")) as f:
            text = f.read()
        self._write("trace", "")
        for line in text.splitlines():
            m = CMA_EVENT.search(line)
            if m is None or int(m[3]) == 0:
                continue
            pfn, pages = int(m[2], 16), int(m[3])
            if m[1] == "cma_alloc_finish":
                self.held[pfn] = pages
            elif pfn in self.held:
                self.released[pfn] = self.held.pop(pfn)

    def close(self):
        self._write("events/cma/cma_alloc_finish/enable", "0")
        self._write("events/cma/cma_release/enable", "0")


@pytest.fixture
def cma_events():
    if not os.path.isdir(os.path.join(TRACING, "events", "cma")):
        pytest.fail(f"no cma trace events at {TRACING}: this runs in the VM tier's guests")
    events = CmaEvents()
    events._write("trace", "")
    yield events
    events.close()


def sample_views(m):
    """Views of a 2-D Buffer, each touching a different span."""
    return [m, m[3], m[:, 0], m[::-1], m[1:7, 2:5], m[::2, ::3], m.T,
            m[5, 7:8]]


@pytest.fixture
def views():
    return sample_views


# What the kernel says when something went wrong in it (slub_debug=FZPU
# on the arm64 guest reports corrupted slab objects).
KERNEL_TROUBLE = re.compile(r"BUG|Oops|Poison overwritten|WARNING:|Call trace|"
                            r"general protection|stall")


class KernelLog:
    """The kernel's messages from now on, read from /dev/kmsg."""

    def __init__(self):
        self.lines = []
        self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._fd, 0, os.SEEK_END)

    def read(self):
        """The messages since the last read(); all of them are in lines."""
        new = []
        while True:
            try:
                record = os.read(self._fd, 8192).decode("utf-8", "replace")
            except BlockingIOError:
                break
            except BrokenPipeError:         # overwritten while we read
                continue
            # "prefix;message\n KEY=value...": the message alone.
            new.append(record.split(";", 1)[-1].split("\n", 1)[0])
        self.lines += new
        return new

    def close(self):
        os.close(self._fd)


@pytest.fixture(autouse=True)
def kernel_log():
    """Every test here fails if the kernel reported trouble during it."""
    log = KernelLog()
    yield log
    log.read()
    log.close()
    trouble = [line for line in log.lines if KERNEL_TROUBLE.search(line)]
    assert not trouble, "the kernel reported:\n" + "\n".join(log.lines)

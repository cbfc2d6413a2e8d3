"""The memory banks zocl lists in sysfs, and XRT's mem_topology format.

zocl puts these files in its device's directory,
/sys/class/drm/renderDNNN/device/ (zocl_sysfs.c):

- ``mem_topology``: binary, the loaded xclbin's ``struct mem_topology``
  copied as it is (xclbin.h).  Empty when no xclbin is loaded.
- ``memstat``: a line per bank the driver set up, which is every bank but
  the streaming ones, in topology order:
  ``[IN-USE] 0x%012llx\\t(%4lluMB):\\t%lluKB\\t%dBOs`` (or ``[UNUSED]``):
  base address, size, KB in BOs, BO count.  The size labelled MB is in
  KB: the driver prints zm_size / 1024 with zm_size in bytes.

The bank's index is what ``open_memory('zocl', bank=N)`` takes.
"""
from __future__ import annotations

import os
import re
import struct
from typing import List, NamedTuple, Optional

# struct mem_topology: int32 m_count, then m_mem_data[] from offset 8 (a
# mem_data holds u64s).  struct mem_data, 40 bytes: u8 m_type, u8 m_used,
# 6 bytes padding, u64 m_size (in KB), u64 m_base_address, char m_tag[16]
# (NUL-terminated).  Every zocl board is little-endian.
_HEADER = struct.Struct("<i4x")
_MEM_DATA = struct.Struct("<BB6xQQ16s")

# enum MEM_TYPE, in order.
MEM_TYPES = ("DDR3", "DDR4", "DRAM", "STREAMING", "PREALLOCATED_GLOB", "ARE",
             "HBM", "BRAM", "URAM", "STREAMING_CONNECTION", "HOST",
             "PS_KERNEL")
# Not memory: zocl sets up no bank for it (zocl_init_mem).
MEM_STREAMING = 3

_MEMSTAT_LINE = re.compile(
    r"\[(IN-USE|UNUSED)\] 0x([0-9a-fA-F]+)\s+\(\s*(\d+)MB\):\s+(\d+)KB\s+(\d+)BOs")


class Bank(NamedTuple):
    """One memory bank of the loaded xclbin."""
    index: int  # type: ignore[assignment]  # a field, though tuple has index()
    tag: str
    type: str
    used: bool          # connected in this design; else CREATE_BO gets CMA
    base_address: int
    size: int           # bytes
    usage: Optional[int] = None     # bytes in BOs charged to it (memstat)
    buffers: Optional[int] = None   # BOs charged to it (memstat)


def parse_mem_topology(data: bytes) -> List[Bank]:
    """The banks in a mem_topology blob, streaming entries left out."""
    if not data:
        return []
    if len(data) < _HEADER.size:
        raise ValueError(f"mem_topology is {len(data)} bytes, too short for "
                         "its header")
    (count,) = _HEADER.unpack_from(data)
    needed = _HEADER.size + count * _MEM_DATA.size
    if count < 0 or len(data) < needed:
        raise ValueError(f"mem_topology says {count} banks but has "
                         f"{len(data)} bytes (needs {needed})")
    banks = []
    for i in range(count):
        mem_type, used, size_kb, base, tag = _MEM_DATA.unpack_from(
            data, _HEADER.size + i * _MEM_DATA.size)
        if mem_type == MEM_STREAMING:
            continue
        name = MEM_TYPES[mem_type] if mem_type < len(MEM_TYPES) else f"type {mem_type}"
        banks.append(Bank(i, tag.split(b"\0")[0].decode("ascii", "replace"),
                          name, bool(used), base, size_kb * 1024))
    return banks


def with_usage(banks: List[Bank], memstat: str) -> List[Bank]:
    """banks with usage from memstat text.  A line goes with the bank in the
    same position; it is used only if it is in the known format and its
    base address and size agree."""
    matches = [_MEMSTAT_LINE.fullmatch(line.strip())
               for line in memstat.splitlines()]
    result = []
    for bank, m in zip(banks, matches + [None] * len(banks)):
        if m is not None and (int(m[2], 16), int(m[3]) * 1024) == (
                bank.base_address, bank.size):
            bank = bank._replace(usage=int(m[4]) * 1024, buffers=int(m[5]))
        result.append(bank)
    return result


def device_dir(root: str, node: str) -> str:
    """zocl's sysfs directory for a render node (or XRT's link to one)."""
    name = os.path.basename(os.path.realpath(node))
    return os.path.join(root, "sys/class/drm", name, "device")


def read_banks(root: str, node: str) -> List[Bank]:
    """The banks of the xclbin loaded on zocl's render node `node`: [] if
    none is loaded.  OSError if mem_topology cannot be read, ValueError if
    it is malformed.  Usage is None where memstat does not give it."""
    directory = device_dir(root, node)
    with open(os.path.join(directory, "mem_topology"), "rb") as f:
        banks = parse_mem_topology(f.read())
    try:
        with open(os.path.join(directory, "memstat")) as f:
            return with_usage(banks, f.read())
    except OSError:
        return banks

"""The banks `python -m pynq_alloc` lists under zocl, read from a sysfs
tree made here: a mem_topology packed field by field at the offsets of
XRT's xclbin.h, and memstat text as zocl_sysfs.c prints it."""
import os
import struct

import pytest

from pynq_alloc.__main__ import backend_lines
from pynq_alloc._zocl_banks import Bank, read_banks
from test_default_choice import render_node

KB = 1024
DDR4, STREAMING, BRAM = 1, 3, 7

# index: (m_type, m_used, m_size in KB, m_base_address, m_tag), like a
# ZCU111 design with PL-DDR in bank 1.
TOPOLOGY = [
    (DDR4, 1, 2 << 20, 0x0, b"HP0"),
    (DDR4, 1, 4 << 20, 0x4_0000_0000, b"MIG0"),
    (STREAMING, 1, 7, 9, b"stream0"),           # route_id, flow_id
    (BRAM, 0, 64, 0xA000_0000, b"PLRAM[0]"),
]

# One line per bank but the streaming one; "(...MB)" is in KB.
MEMSTAT = ("[IN-USE] 0x000000000000\t(2097152MB):\t12KB\t3BOs\n"
           "[IN-USE] 0x000400000000\t(4194304MB):\t4096KB\t1BOs\n"
           "[UNUSED] 0x0000a0000000\t(  64MB):\t0KB\t0BOs\n")

EXPECTED = [
    Bank(0, "HP0", "DDR4", True, 0x0, 2 << 30, 12 * KB, 3),
    Bank(1, "MIG0", "DDR4", True, 0x4_0000_0000, 4 << 30, 4 << 20, 1),
    Bank(3, "PLRAM[0]", "BRAM", False, 0xA000_0000, 64 * KB, 0, 0),
]


def mem_topology(entries):
    """struct mem_topology: int32 m_count; m_mem_data[] from offset 8, each
    40 bytes: m_type @0, m_used @1, m_size @8, m_base_address @16,
    m_tag[16] @24."""
    blob = bytearray(8 + 40 * len(entries))
    struct.pack_into("<i", blob, 0, len(entries))
    for i, (mem_type, used, size_kb, base, tag) in enumerate(entries):
        at = 8 + 40 * i
        blob[at] = mem_type
        blob[at + 1] = used
        struct.pack_into("<Q", blob, at + 8, size_kb)
        struct.pack_into("<Q", blob, at + 16, base)
        blob[at + 24:at + 24 + len(tag)] = tag
    return bytes(blob)


def zocl_board(root, topology=b"", memstat=None, driver="zocl-drm"):
    """renderD128 driven by zocl, with its sysfs bank files."""
    node = render_node(root, "renderD128", driver)
    device = os.path.join(root, "sys/class/drm/renderD128/device")
    if topology is not None:
        with open(os.path.join(device, "mem_topology"), "wb") as f:
            f.write(topology)
    if memstat is not None:
        with open(os.path.join(device, "memstat"), "w") as f:
            f.write(memstat)
    return node


def test_banks_from_topology_and_memstat(tmp_path):
    root = str(tmp_path)
    node = zocl_board(root, mem_topology(TOPOLOGY), MEMSTAT)
    assert read_banks(root, node) == EXPECTED


def test_xrts_link_leads_to_the_render_nodes_sysfs(tmp_path):
    root = str(tmp_path)
    zocl_board(root, mem_topology(TOPOLOGY), MEMSTAT)
    link = os.path.join(root, "dev/dri/by-path/platform-axi:zyxclmm_drm-render")
    os.makedirs(os.path.dirname(link))
    os.symlink("../renderD128", link)
    assert read_banks(root, link) == EXPECTED


def test_without_memstat_usage_is_unknown(tmp_path):
    root = str(tmp_path)
    node = zocl_board(root, mem_topology(TOPOLOGY))
    assert read_banks(root, node) == [
        b._replace(usage=None, buffers=None) for b in EXPECTED]


def test_a_memstat_line_for_another_bank_is_not_used(tmp_path):
    root = str(tmp_path)
    moved = MEMSTAT.replace("0x000400000000", "0x000500000000")
    node = zocl_board(root, mem_topology(TOPOLOGY), moved)
    banks = read_banks(root, node)
    assert banks[1].usage is None and banks[1].buffers is None
    assert banks[0] == EXPECTED[0] and banks[2] == EXPECTED[2]


def test_memstat_in_an_unknown_format_is_not_used(tmp_path):
    root = str(tmp_path)
    node = zocl_board(root, mem_topology(TOPOLOGY), "12 3 0\n4194304 1 0\n")
    assert all(b.usage is None for b in read_banks(root, node))


def test_no_xclbin_loaded_means_no_banks(tmp_path):
    root = str(tmp_path)
    node = zocl_board(root, b"", "")
    assert read_banks(root, node) == []


@pytest.mark.parametrize("blob", [
    b"\x01\x00", mem_topology(TOPOLOGY)[:-1],
    struct.pack("<i4x", -1)])
def test_a_malformed_topology_is_a_value_error(tmp_path, blob):
    root = str(tmp_path)
    node = zocl_board(root, blob)
    with pytest.raises(ValueError, match="mem_topology"):
        read_banks(root, node)


def test_the_listing_shows_banks_under_zocl(tmp_path):
    root = str(tmp_path)
    zocl_board(root, mem_topology(TOPOLOGY), MEMSTAT)
    lines = backend_lines(root)
    at = next(i for i, line in enumerate(lines) if line.startswith("  zocl "))
    assert "found" in lines[at]
    banks = lines[at + 1:at + 5]
    assert "bank=N" in banks[0]
    assert banks[1].split() == ["0", "HP0", "DDR4", "in", "use",
                                "0x000000000000", "2048", "MiB,", "12",
                                "KiB", "in", "3", "BOs"]
    assert banks[2].split()[:7] == ["1", "MIG0", "DDR4", "in", "use",
                                    "0x000400000000", "4096"]
    assert banks[3].split()[:6] == ["3", "PLRAM[0]", "BRAM", "unused",
                                    "0x0000a0000000", "64"]
    assert lines[at + 5].startswith("  udmabuf ")


@pytest.mark.parametrize("topology, said", [
    (b"", "no xclbin is loaded"),
    (None, "cannot be read: [Errno 2]"),
])
def test_the_listing_says_why_there_are_no_banks(tmp_path, topology, said):
    root = str(tmp_path)
    zocl_board(root, topology)
    lines = backend_lines(root)
    at = next(i for i, line in enumerate(lines) if line.startswith("  zocl "))
    assert said in lines[at + 1]
    assert lines[at + 2].startswith("  udmabuf ")

"""The picture of a Memory: the SVG that Jupyter shows, and the text map."""
import re
import xml.etree.ElementTree as ET

import pytest

from helpers import BASE, MiB, run_python
from pynq_alloc import _memory_map, memory_map, open_memory

SVG = "{http://www.w3.org/2000/svg}"


def fragment(mem):
    """Blocks of 64, 128, 64 and 256 KiB with the second freed: a pool of
    used blocks and gaps at known places.  Returns the live buffers."""
    a = mem.allocate(64 << 10, "u1")
    b = mem.allocate(128 << 10, "u1")
    c = mem.allocate((128, 128), "u4", cacheable=True)
    d = mem.allocate(256 << 10, "u1")
    assert [x.device_address - BASE for x in (a, b, c, d)] == [
        0, 64 << 10, 192 << 10, 256 << 10]
    b.freebuffer()
    return a, c, d


def svg_of(mem):
    page = mem._repr_html_()
    svg = re.search(r"<svg.*</svg>", page, re.S).group(0)
    return page, ET.fromstring(svg)


def rects(svg, cls):
    return [r for r in svg.iter(SVG + "rect")
            if cls in r.get("class", "").split()]


def span(rect):
    return int(rect.get("data-start"), 16), int(rect.get("data-end"), 16)


def test_svg_draws_each_buffer_and_gap_where_it_lies():
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    a, c, d = fragment(mem)
    page, svg = svg_of(mem)
    used, free = rects(svg, "used"), rects(svg, "free")
    assert [span(r) for r in used] == [
        (x.device_address, x.device_address + x.size)
        for x in mem.buffers()]
    assert [span(r) for r in free] == [(BASE + (64 << 10), BASE + (192 << 10)),
                                       (BASE + (512 << 10), BASE + MiB)]
    # Positions scale from base_address (x=10) to the end (x=10+760).
    for r in used + free:
        start, end = span(r)
        assert float(r.get("x")) == pytest.approx(10 + (start - BASE) * 760 / MiB, abs=0.01)
        assert float(r.get("width")) == pytest.approx((end - start) * 760 / MiB, abs=0.01)
    stats = mem.stats()
    assert sum(e - s for s, e in map(span, free)) == stats["free"]
    assert sum(e - s for s, e in map(span, used)) == stats["used"]
    # The largest free block is marked, and is what stats() says it is.
    (largest,) = rects(svg, "largest")
    assert span(largest) == (BASE + (512 << 10), BASE + MiB)
    assert span(largest)[1] - span(largest)[0] == stats["largest_free"]
    label = next(t for t in svg.iter(SVG + "text")
                 if t.get("class") == "largest-label")
    assert label.text == f"largest free block: 512 KiB at {BASE + (512 << 10):#x}"
    assert "3 buffers, 384 KiB used, 640 KiB free" in page


def test_svg_hover_text_describes_each_block():
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    a, c, d = fragment(mem)
    _, svg = svg_of(mem)
    titles = [r.find(SVG + "title").text for r in rects(svg, "used")]
    assert titles[1] == (f"used {c.device_address:#x}-"
                         f"{c.device_address + c.nbytes:#x}: (128, 128) uint32 "
                         f"at {c.device_address:#x}, 65536 bytes")
    view = a[:10]
    _, svg = svg_of(mem)
    assert rects(svg, "used")[0].find(SVG + "title").text.endswith(
        "65536 bytes, 1 view alive")
    gap = rects(svg, "free")[0].find(SVG + "title").text
    assert gap == f"free {BASE + (64 << 10):#x}-{BASE + (192 << 10):#x}: 131072 bytes"
    del view


def test_svg_shows_allocation_sites_when_tracing():
    from pynq_alloc import trace
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    was_on = trace(True)
    try:
        buf = mem.allocate(100)
    finally:
        trace(was_on)
    _, svg = svg_of(mem)
    title = rects(svg, "used")[0].find(SVG + "title").text
    assert f"allocated at {__file__}:" in title and "test_svg_shows" in title
    del buf


def test_an_empty_pool_is_one_free_block():
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    _, svg = svg_of(mem)
    assert rects(svg, "used") == []
    (free,) = rects(svg, "free")
    assert "largest" in free.get("class") and span(free) == (BASE, BASE + MiB)


def test_a_busy_pool_merges_blocks_too_small_to_draw():
    mem = open_memory("sim", size=16 * MiB, base_address=BASE)
    bufs = [mem.allocate(1, "u1") for _ in range(2000)]
    for b in bufs[::3]:
        b.freebuffer()
    page, svg = svg_of(mem)
    all_rects = [r for r in svg.iter(SVG + "rect") if r.get("data-start")]
    assert len(all_rects) <= 2 * _memory_map.MAX_SEGMENTS
    assert len(page) < 200_000
    # The drawn pieces still tile the pool, in order, and add up.
    spans = [span(r) for r in all_rects]
    assert spans[0][0] == BASE and spans[-1][1] == BASE + 16 * MiB
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    mixed = rects(svg, "mixed")
    assert mixed and "blocks and gaps too small to draw" in page
    lay = _memory_map.layout(mem)
    assert sum(s.used_bytes for s in lay.segments) == mem.stats()["used"]
    del bufs


def test_plain_repr_stays_one_line():
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    keep = fragment(mem)
    assert "\n" not in repr(mem)
    assert repr(mem) == f"<pynq_alloc.Memory kind=sim base_address={BASE:#x} size={MiB}>"
    del keep


class FiguresOnly:
    """A memory as zocl presents it: figures, no layout."""
    kind = "zocl"
    base_address = 0
    size = 256 * MiB

    def stats(self):
        return {"total": 256 * MiB, "used": 100 * MiB, "free": 156 * MiB,
                "largest_free": 156 * MiB, "buffers": 0}

    def buffers(self):
        return []


def test_zocl_and_xlnk_show_their_figures_and_say_why_there_is_no_map(
        tmp_path, libcma, monkeypatch):
    page = _memory_map.html(FiguresOnly())
    assert "<svg" not in page
    assert "zocl memory 0x0-0x10000000 (256 MiB): 0 buffers, 100 MiB used" in page
    assert "No map: zocl takes each buffer from the kernel&#x27;s CMA pool" in page
    text = memory_map(FiguresOnly())
    assert "no map: zocl takes each buffer" in text and "|" not in text

    from fake_devices import make_xlnk
    library, _ = make_xlnk(str(tmp_path), libcma[0], monkeypatch)
    mem = open_memory("xlnk", library=library)
    buf = mem.allocate((3, 5), "u2")
    page = mem._repr_html_()
    assert "<svg" not in page and "No map: xlnk takes each buffer" in page
    assert f"(3, 5) uint16 at {buf.device_address:#x}, 4096 bytes" in page
    del buf


def test_text_map_of_a_fragmented_pool():
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    keep = fragment(mem)
    lines = memory_map(mem, width=16).splitlines()
    assert lines[0] == (f"sim memory {BASE:#x}-{BASE + MiB:#x} (1 MiB): 3 "
                        "buffers, 384 KiB used, 640 KiB free, largest free "
                        "block 512 KiB")
    # 64 KiB a cell: a, the 128 KiB gap, c, d (4 cells), the largest gap.
    assert lines[1] == f"{BASE:#x} |#..#####________| {BASE + MiB:#x}"
    assert lines[3] == (f"largest free block: {BASE + (512 << 10):#x}-"
                        f"{BASE + MiB:#x}, 524288 bytes")
    assert lines[4] == "buffers, the largest first:" and len(lines) == 8
    assert lines[5] == f"  (262144,) uint8 at {BASE + (256 << 10):#x}, 262144 bytes"
    assert lines[7] == f"  (128, 128) uint32 at {BASE + (192 << 10):#x}, 65536 bytes"
    with pytest.raises(ValueError, match="width"):
        memory_map(mem, width=4)
    del keep


def test_long_listings_name_the_largest_buffers():
    mem = open_memory("sim", size=16 * MiB, base_address=BASE)
    bufs = [mem.allocate(4096 * (1 + i % 7), "u1") for i in range(60)]
    lines = memory_map(mem).splitlines()
    listed = lines[lines.index("buffers, the largest first:") + 1:]
    assert len(listed) == 51
    assert all("28672 bytes" in line for line in listed[:8])
    assert listed[-1] == "  and 10 smaller ones (Memory.buffers() lists them all)"
    del bufs


def test_text_map_marks_partly_used_cells():
    mem = open_memory("sim", size=1 * MiB, base_address=BASE)
    buf = mem.allocate(4096, "u1")
    assert memory_map(mem, width=8).splitlines()[1] == (
        f"{BASE:#x} |+_______| {BASE + MiB:#x}")
    del buf


def test_python_m_pynq_alloc_map():
    r = run_python("import runpy; runpy.run_module('pynq_alloc', run_name='__main__')",
                   env={"PYNQ_ALLOC_MEMORY": "sim:size=1M,base_address=0x40000000"})
    assert r.returncode == 0, r.stderr
    assert "--map" not in r.stdout and r.stdout.splitlines()[-1] == "OK"
    code = ("import sys, runpy; sys.argv = ['pynq_alloc', '--map']; "
            "runpy.run_module('pynq_alloc', run_name='__main__')")
    r = run_python(code, env={"PYNQ_ALLOC_MEMORY": "sim:size=1M,base_address=0x40000000"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == [
        "sim memory 0x40000000-0x40100000 (1 MiB): 0 buffers, 0 bytes used, "
        "1 MiB free, largest free block 1 MiB",
        "0x40000000 |" + "_" * 64 + "| 0x40100000"]
    r = run_python(code, env={"PYNQ_ALLOC_MEMORY": "bogus"})
    assert r.returncode == 1 and "cannot open the default memory" in r.stdout

"""What the package says when something is wrong, and the small traps:
each message names the cause (PYNQ_ALLOC_MEMORY when it chose the memory,
the option and its valid forms, the limit with its numbers) and never a
private function; flags refuse what is not a bool."""
import json

import numpy as np
import pytest

from helpers import BASE, MiB, run_python
import pynq_alloc
from pynq_alloc import allocate, open_memory

# Asks default_memory() under each PYNQ_ALLOC_MEMORY in turn, in one fresh
# interpreter: a default that cannot be opened is not installed, so the
# next value is tried afresh.  Prints [type, errno, filename, message].
ASK_DEFAULT = """
import json, os
import pynq_alloc
out = []
for spec in json.loads(os.environ["SPECS"]):
    os.environ["PYNQ_ALLOC_MEMORY"] = spec
    try:
        pynq_alloc.allocate(4)
        out.append(["ok", None, None, ""])
    except Exception as e:
        out.append([type(e).__name__, getattr(e, "errno", None),
                    getattr(e, "filename", None), str(e)])
print(json.dumps(out))
"""


def errors_of_default(*specs):
    r = run_python(ASK_DEFAULT, env={"SPECS": json.dumps(specs)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_bad_variable_is_named_as_the_cause():
    (kind, _, _, text), (kind2, _, _, text2), (kind3, _, _, text3) = \
        errors_of_default("garbage", "sim:sz=1", "sim:size")
    assert kind == "ValueError"
    assert text.startswith("PYNQ_ALLOC_MEMORY='garbage' chose the default "
                           "memory (unset it")
    assert text.endswith("unknown memory kind 'garbage'; available: hugepage, "
                         "sim, udmabuf, xlnk, xrt, zocl")
    assert kind2 == "ValueError" and "PYNQ_ALLOC_MEMORY='sim:sz=1'" in text2
    assert "no option 'sz' (did you mean 'size'?)" in text2
    assert kind3 == "ValueError" and "PYNQ_ALLOC_MEMORY='sim:size'" in text3


def test_a_device_the_variable_names_is_named_once():
    node = "/nonexistent/renderD128"
    [(kind, err, filename, text)] = errors_of_default(f"zocl:device={node}")
    assert kind == "FileNotFoundError" and err == 2 and filename == node
    assert text.startswith(f"[Errno 2] PYNQ_ALLOC_MEMORY='zocl:device={node}' "
                           "chose the default memory")
    assert text.endswith(f"cannot open the zocl device: '{node}'")
    assert text.count(node) == 2        # the variable's value, the filename


def test_opening_a_device_names_its_path_once():
    node = "/nonexistent/renderD128"
    with pytest.raises(FileNotFoundError) as info:
        open_memory("zocl", device=node)
    assert str(info.value) == f"[Errno 2] cannot open the zocl device: '{node}'"


def test_an_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        open_memory("sim", sz=1)
    assert str(info.value) == (
        "'sim' memory has no option 'sz' (did you mean 'size'?); its options "
        "are size, base_address, coherence, line_size, watch_stores")
    with pytest.raises(ValueError, match=r"no option 'colour'; its options "
                                         r"are size, base_address"):
        open_memory("sim", colour="red")
    with pytest.raises(ValueError, match=r"'hugepage' memory has no option "
                                         r"'sise' \(did you mean 'size'\?\)"):
        open_memory("hugepage:sise=4M")
    with pytest.raises(ValueError, match=r"unknown memory kind 'sym' \(did "
                                         r"you mean 'sim'\?\)"):
        open_memory("sym")


@pytest.mark.parametrize("kind", ["sim", "udmabuf", "zocl", "hugepage",
                                  "xlnk", "xrt"])
def test_no_message_names_a_private_function(kind):
    with pytest.raises(ValueError) as info:
        open_memory(kind, no_such_option=1)
    assert "_open" not in str(info.value)
    assert "unexpected keyword" not in str(info.value)


@pytest.mark.parametrize("text, meant", [("64MB", "64M"), ("64 MiB", "64M"),
                                         ("2gb", "2G"), ("lots", None)])
def test_a_bad_size_shows_the_accepted_forms(text, meant):
    with pytest.raises(ValueError) as info:
        open_memory("sim", size=text)
    message = str(info.value)
    assert message.startswith(f"size {text!r} is not a size or address: ")
    for form in ("4096", "0x1000", "64M", "1G", "KiB, MiB, GiB or TiB"):
        assert form in message
    assert message.endswith(f"did you mean '{meant}'?" if meant else "1G)")


def test_a_size_of_the_wrong_type_shows_the_accepted_forms():
    with pytest.raises(ValueError, match=r"base_address must be a whole number "
                                         r"of bytes \(4096, 0x1000.*; got 1.5"):
        open_memory("sim", base_address=1.5)


@pytest.mark.parametrize("option", ["device", "sysfs"])
def test_a_path_option_of_the_wrong_type_is_named(option):
    with pytest.raises(TypeError) as info:
        open_memory("udmabuf", **{option: 3})
    assert str(info.value) == (f"{option} must be a path (str, bytes or "
                               "os.PathLike), not int")


@pytest.mark.parametrize("device", ["x", -1, 1 << 32, True, 1.0])
def test_a_bad_xrt_device_says_what_it_takes(device):
    with pytest.raises(ValueError) as info:
        open_memory("xrt", device=device)
    assert str(info.value) == ("xrt device must be an index from 0 to 2**32 - 1 "
                               f"(an int, or its text, e.g. '1'); got {device!r}")


def test_align_beyond_64_bits_gives_the_limit():
    for align in (2 ** 70, 2 ** 64, 3, 0, -4):
        with pytest.raises(ValueError) as info:
            allocate(4, align=align)
        assert str(info.value) == (
            "align must be a power of two from 1 to 2**63 (9223372036854775808),"
            f" as device addresses have 64 bits; got {align}")


# ---- flags: a bool, or what PYNQ passes (1 and 0), never any truth value --

@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False),
    (np.True_, True), (np.False_, False), (np.int64(1), True), (np.uint8(0), False)])
def test_cacheable_takes_bools_and_one_and_zero(mem, value, expected):
    b = allocate(16, target=mem, cacheable=value)
    assert b.cacheable is expected
    assert mem.allocate(16, cacheable=value).cacheable is expected


@pytest.mark.parametrize("flag", ["cacheable", "zero"])
@pytest.mark.parametrize("value, type_name", [
    ("False", "str"), ("no", "str"), (None, "NoneType"), (1.0, "float"),
    ([], "list"), (b"0", "bytes"), (np.array(True), "numpy.ndarray")])
def test_flags_refuse_other_types_naming_them(mem, flag, value, type_name):
    before = mem.stats()
    for call in (lambda: allocate(16, target=mem, **{flag: value}),
                 lambda: mem.allocate(16, **{flag: value})):
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value) == (f"{flag} must be a bool (True or False, or "
                                   f"1 or 0), not {type_name}")
    assert mem.stats() == before


@pytest.mark.parametrize("flag", ["cacheable", "zero"])
@pytest.mark.parametrize("value", [2, -1, 1 << 70, np.int32(5)])
def test_flags_refuse_other_ints(mem, flag, value):
    with pytest.raises(ValueError) as info:
        allocate(16, target=mem, **{flag: value})
    assert str(info.value) == (f"{flag} must be True or False (or 1 or 0), "
                               f"not {value!r}")


def test_zero_false_as_one_and_zero():
    # zero=0 skips zeroing as zero=False does: a recycled block keeps data.
    mem = open_memory("sim", size=MiB, base_address=BASE)
    b = allocate(1024, "u1", target=mem)
    b[:] = 7
    del b                   # kept for reuse
    assert (allocate(1024, "u1", target=mem, zero=0) == 7).all()
    assert (allocate(1024, "u1", target=mem, zero=1) == 0).all()


@pytest.mark.parametrize("value", ["maybe", ""])
def test_an_option_flag_refuses_other_text(value):
    with pytest.raises(ValueError, match=r"reserve must be on or off \(1, true, "
                                         r"yes, on; 0, false, no, off\); got"):
        open_memory("hugepage", reserve=value)


@pytest.mark.parametrize("value, type_name", [(None, "NoneType"), (2.0, "float")])
def test_an_option_flag_refuses_other_types(value, type_name):
    with pytest.raises(TypeError, match=f"reserve must be a bool .*not {type_name}"):
        open_memory("hugepage", reserve=value)


# ---- trace(): asking does not change it ------------------------------------

def test_trace_with_no_argument_reports_and_changes_nothing():
    was_on = pynq_alloc.trace(False)
    try:
        assert pynq_alloc.trace() is False
        assert pynq_alloc.trace() is False          # still off
        mem = open_memory("sim", size=MiB)
        a = mem.allocate(16)
        assert mem.buffers()[0].traceback is None   # not recorded
        assert pynq_alloc.trace(True, frames=3) is False
        assert pynq_alloc.trace() is True
        assert pynq_alloc.trace() is True           # still on, 3 frames
        b = mem.allocate(16)
        assert 1 <= len(mem.buffers()[1].traceback) <= 3
        del a, b
    finally:
        pynq_alloc.trace(was_on)


@pytest.mark.parametrize("enabled, error", [
    ("False", TypeError), (None, None), (2, ValueError), (0.0, TypeError)])
def test_trace_takes_a_bool(enabled, error):
    was_on = pynq_alloc.trace(False)
    try:
        if error is None:
            assert pynq_alloc.trace(enabled) is False
        else:
            with pytest.raises(error, match="enabled must be"):
                pynq_alloc.trace(enabled)
        assert pynq_alloc.trace() is False          # 'False' did not turn it on
        with pytest.raises(TypeError, match=r"needs enabled=True: "
                                            r"trace\(True, frames=9\)"):
            pynq_alloc.trace(frames=9)
        assert pynq_alloc.trace() is False
    finally:
        pynq_alloc.trace(was_on)


# ---- reprs: addresses in hex, the hazard's message shown -------------------

def test_buffer_info_repr_shows_the_address_in_hex(mem):
    b = mem.allocate((2, 3), "u2", cacheable=True)
    (info,) = mem.buffers()
    text = repr(info)
    assert text.startswith(f"BufferInfo(device_address={BASE:#x}, size=4096, "
                           "shape=(2, 3), dtype=dtype('uint16'), cacheable=True,")
    assert str(BASE) not in text
    assert eval(text, {"BufferInfo": pynq_alloc.BufferInfo,
                       "dtype": np.dtype}) == info
    del b


def test_hazard_repr_shows_the_address_in_hex_and_the_message():
    mem = open_memory("sim", size=MiB, base_address=BASE, coherence="raise")
    buf = mem.allocate(64, "u1", cacheable=True)
    buf[:] = 1                  # never flushed
    (hazard,) = mem.check()
    text = repr(hazard)
    assert text.startswith(f"Hazard(kind='unflushed', device_address={BASE:#x}, "
                           "start=0, stop=64, buffer=BufferInfo(device_address="
                           f"{BASE:#x}, ")
    assert text.endswith(f", message={hazard.message!r})")
    assert "Fix: call flush()" in text and str(BASE) not in text


# ---- the memory map fits a narrow notebook column ---------------------------

def test_the_svg_map_scales_to_its_column(mem):
    import re
    import xml.etree.ElementTree as ET
    mem.allocate(MiB, "u1")
    svg = ET.fromstring(re.search(r"<svg.*</svg>", mem._repr_html_(), re.S).group(0))
    x, y, width, height = map(float, svg.get("viewBox").split())
    assert (x, y) == (0, 0) and width > 0 and height > 0
    assert svg.get("width") == "100%" and svg.get("height") is None
    style = dict(part.split(":") for part in svg.get("style").split(";"))
    assert {k.strip(): v.strip() for k, v in style.items()} == {
        "max-width": f"{width:g}px", "height": "auto"}
    # Everything drawn lies inside the box the viewBox gives it.
    for rect in svg.iter("{http://www.w3.org/2000/svg}rect"):
        assert 0 <= float(rect.get("x")) <= width
        assert float(rect.get("x")) + float(rect.get("width")) <= width


# ---- the pytest plugin: the marker alone, and a leak report with a fix -----

def run_pytest(pytester, source, *args):
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                         "-p", "no:hypothesispytest", *args)


def test_the_marker_alone_gives_the_test_its_memory(pytester):
    result = run_pytest(pytester, """
        import pytest
        from pynq_alloc import allocate, default_memory

        kept = []

        @pytest.mark.pynq_memory(size="16M", base_address=0x4000_0000)
        def test_sized():
            memory = default_memory()
            assert (memory.kind, memory.base_address, memory.size) == (
                "sim", 0x4000_0000, 16 << 20)
            assert memory.coherence == "raise"
            with allocate(1024) as buf:
                assert buf.device_address == 0x4000_0000

        @pytest.mark.pynq_memory(coherence="warn")
        def test_leaks():
            kept.append(allocate(16))

        @pytest.mark.pynq_memory()
        def test_unflushed():
            buf = allocate(1024, "u1", cacheable=True)
            buf[:] = 1
            default_memory().device_read(buf.device_address, 1024)

        @pytest.mark.pynq_memory
        class TestInAClass:
            def test_marked_by_its_class(self):
                assert default_memory().size == 256 << 20
                assert default_memory().coherence == "raise"

        def test_unmarked_has_the_usual_default():
            assert default_memory().coherence != "raise"
    """)
    result.assert_outcomes(passed=4, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaks*",
        "*1 pynq_alloc buffer is still alive at the end of *::test_leaks:",
        "*  (16,) uint32 at 0x10000000, 4096 bytes, allocated at *:17 in test_leaks",
        "*Fix: release it before the test ends*",
    ])
    result.stdout.fnmatch_lines(["*_ test_unflushed _*", "*E *pynq_alloc."
                                 "CoherenceError: the device read bytes 0 to 1024*"])


def test_the_leak_report_ends_with_the_fix(pytester):
    result = run_pytest(pytester, """
        from pynq_alloc import allocate

        kept = []

        def test_leaks(pynq_memory):
            kept.append(allocate(16))
            kept.append(allocate(32)[1:])
    """)
    result.assert_outcomes(passed=1, errors=1)
    lines = result.stdout.lines
    first = next(i for i, line in enumerate(lines) if "still alive" in line)
    assert lines[first].endswith("2 pynq_alloc buffers are still alive at the "
                                 "end of test_the_leak_report_ends_with_the_fix"
                                 ".py::test_leaks:")
    assert lines[first + 1].startswith("  (16,) uint32 at 0x10000000")
    assert lines[first + 2].startswith("  (32,) uint32 at 0x10001000, 4096 "
                                       "bytes, 1 view alive")
    assert lines[first + 3] == (
        "Fix: release each before the test ends (buf.freebuffer(), or "
        "allocate it in `with allocate(...) as buf:`), or drop what still "
        "refers to it (a global, a list, a cache, an attribute, a view); a "
        "test that keeps buffers on purpose is marked "
        "@pytest.mark.pynq_memory(leak_check=False).")
    assert "turn this check off" not in result.stdout.str()


def test_leak_check_takes_a_bool(pytester):
    result = run_pytest(pytester, """
        import pytest
        from pynq_alloc import allocate

        kept = []

        @pytest.mark.pynq_memory(leak_check="False")
        def test_text(pynq_memory):
            kept.append(allocate(16))
    """)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*TypeError: @pytest.mark.pynq_memory("
                                 "leak_check=...) takes True or False, not str"])


# ---- a source checkout on sys.path ------------------------------------------

def test_the_checkout_says_what_makes_it_run(tmp_path):
    # A checkout's package, without the compiled core, first on sys.path
    # as the current directory is under python -m and python -c.
    import os
    import shutil
    import subprocess
    import sys
    package = os.path.dirname(pynq_alloc.__file__)
    if os.path.basename(os.path.dirname(package)) not in ("site-packages",
                                                          "dist-packages"):
        # An editable install's import hook gives any copy its core.
        pytest.skip("pynq_alloc is not installed in site-packages")
    shutil.copytree(package, tmp_path / "pynq_alloc",
                    ignore=shutil.ignore_patterns("_core*.so", "__pycache__"))
    for command in (["-c", "import pynq_alloc"], ["-m", "pynq_alloc"]):
        r = subprocess.run([sys.executable, *command], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        last = r.stderr.strip().splitlines()[-1]
        assert ("ImportError: pynq_alloc's compiled core is not in "
                f"{tmp_path / 'pynq_alloc'}: this is the source checkout") in last
        assert f"the copy installed at {package} is what runs from any" in last
        assert "pip install -e ." in last and "python -m pytest" in last
        assert "setup.py" not in last and "pip install ." not in last


def test_the_quick_check_names_a_bad_variable():
    r = run_python("import runpy; runpy.run_module('pynq_alloc', run_name='__main__')",
                   env={"PYNQ_ALLOC_MEMORY": "sim:sz"})
    assert r.returncode == 1 and r.stderr == ""
    assert r.stdout.splitlines()[-1] == (
        "default: none: PYNQ_ALLOC_MEMORY='sim:sz' chose the default memory "
        "(unset it to let pynq_alloc find it, or correct it): bad option 'sz' "
        "in memory spec 'sim:sz': expected key=value")

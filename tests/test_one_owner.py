"""Each rule has one owner: the core names hazard kinds and coherence
modes, validates options and asks the DRM driver; the glue is
backend-neutral; the package only turns text into values and words what
the core reports."""
import os
import re

import pytest

from pynq_alloc import _coherence, _core, open_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources(folder, suffix):
    path = os.path.join(ROOT, folder)
    if not os.path.isdir(path):
        pytest.skip(f"no {folder} beside the tests")
    for name in sorted(os.listdir(path)):
        if name.endswith(suffix):
            with open(os.path.join(path, name)) as f:
                yield name, f.read()


def test_hazard_kinds_are_named_by_the_core_and_worded_by_the_package():
    assert len(_core.HAZARD_KINDS) == 7
    assert set(_core.HAZARD_KINDS) == set(_coherence.KINDS)


def test_reported_hazards_carry_the_cores_names():
    mem = open_memory("sim", size=1 << 20)
    buf = mem.allocate(256, "u1", cacheable=True)
    buf[:] = 1
    kinds = {h.kind for h in mem.check()}
    assert kinds == {"unflushed"} and kinds <= set(_core.HAZARD_KINDS)
    buf.flush()


def test_no_glue_file_reaches_the_sim_by_name():
    # Only the sim's opener names the sim; the line model is reached
    # through the backend table (pa_memory_coherence, pa_memory_check, ...).
    for name, text in sources("src/python", ".c"):
        calls = set(re.findall(r"\bpa_sim_\w+", text))
        allowed = ({"pa_sim_open", "pa_sim_options", "pa_sim_invalid_option"}
                   if name == "open_backends.c" else set())
        assert calls <= allowed, f"{name} calls {sorted(calls - allowed)}"
    for name, text in sources("src/core", ".c"):
        assert not re.search(r"strcmp\([^)]*kind", text), \
            f"{name} compares kind strings"


def test_the_package_keeps_no_copy_of_the_cores_rules():
    for name, text in sources("pynq_alloc", ".py"):
        assert "65535" not in text and "1 << 16" not in text, name
        assert "COHERENCE_MODES" not in text, name
        assert "_IOWR" not in text and "drm_version" not in text, name
        assert not re.search(r"line_size.*power of two", text), name


def test_the_core_states_each_limit_in_its_error():
    page = _core.PAGE_SIZE
    with pytest.raises(ValueError, match=f"from 16 to {page} bytes"):
        open_memory("sim", size=1 << 20, line_size=2 * page)
    with pytest.raises(ValueError, match="from 0 to 65535"):
        open_memory("zocl", device="/nonexistent", bank=65536)

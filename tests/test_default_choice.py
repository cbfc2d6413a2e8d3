"""Choosing the default memory: PYNQ_ALLOC_MEMORY, else zocl, u-dma-buf or
xlnk when its device node is present, else sim.  The probe looks under a
root directory, so each board is a tree made here."""
import os

import pytest

from pynq_alloc._open import ENV_VAR, choose_default, probe


def touch(root, path):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    open(full, "w").close()
    return full


@pytest.fixture(autouse=True)
def no_variable(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_nothing_found_means_sim(tmp_path):
    kind, options, why = choose_default(str(tmp_path))
    assert (kind, options) == ("sim", {}) and "no board backend" in why
    assert [f.kind for f in probe(str(tmp_path)) if f.found] == ["sim"]


def test_zocl_first(tmp_path):
    root = str(tmp_path)
    node = touch(root, "/dev/dri/renderD128")
    touch(root, "/dev/xlnk")
    kind, options, _ = choose_default(root)
    assert kind == "zocl" and options == {"device": node}


def test_zocl_prefers_xrts_stable_name(tmp_path):
    root = str(tmp_path)
    touch(root, "/dev/dri/renderD128")
    stable = touch(root, "/dev/dri/by-path/platform-axi:zyxclmm_drm-render")
    assert choose_default(root)[1] == {"device": stable}


def test_udmabuf_before_xlnk(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "sys/class/u-dma-buf/udmabuf4"))
    node = touch(root, "/dev/udmabuf4")
    touch(root, "/dev/xlnk")
    kind, options, why = choose_default(root)
    assert kind == "udmabuf" and options["device"] == node
    assert options["sysfs"].endswith("sys/class/u-dma-buf/udmabuf4")


def test_udmabuf_class_without_its_node_is_not_used(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "sys/class/u-dma-buf/udmabuf0"))
    assert choose_default(root)[0] == "sim"


def test_xlnk(tmp_path):
    root = str(tmp_path)
    touch(root, "/dev/xlnk")
    kind, options, _ = choose_default(root)
    assert kind == "xlnk"
    assert options["library"] == os.path.join(root, "usr/lib/libcma.so")


def test_hugepages_only_when_asked(tmp_path):
    finding = [f for f in probe(str(tmp_path)) if f.kind == "hugepage"][0]
    assert not finding.found and "only when asked" in finding.detail


def test_the_variable_wins(tmp_path, monkeypatch):
    root = str(tmp_path)
    touch(root, "/dev/dri/renderD128")
    monkeypatch.setenv(ENV_VAR, "sim:size=4M")
    assert choose_default(root)[:2] == ("sim", {"size": "4M"})

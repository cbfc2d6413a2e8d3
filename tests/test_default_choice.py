"""Choosing the default memory: PYNQ_ALLOC_MEMORY, else zocl, u-dma-buf or
xlnk when its device node is present, else xrt for a PCIe card, else sim.
A board's device that is there but cannot be used is an error that names
it, never the sim.  The probe looks under a root directory, so each board
is a tree made here."""
import errno
import os

import pytest

from pynq_alloc import _probe
from pynq_alloc._probe import choose_default, probe
from pynq_alloc._spec import ENV_VAR


def touch(root, path):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    open(full, "w").close()
    return full


def render_node(root, name, driver):
    """/dev/dri/<name> and the sysfs link that names its driver."""
    node = touch(root, f"/dev/dri/{name}")
    device = os.path.join(root, f"sys/class/drm/{name}/device")
    os.makedirs(device)
    os.symlink(f"../../../../bus/platform/drivers/{driver}",
               os.path.join(device, "driver"))
    return node


@pytest.fixture(autouse=True)
def no_variable(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_nothing_found_means_sim(tmp_path):
    kind, options, why = choose_default(str(tmp_path))
    assert (kind, options) == ("sim", {}) and "no board backend" in why
    assert [f.kind for f in probe(str(tmp_path)) if f.found] == ["sim"]


def test_zocl_first(tmp_path):
    root = str(tmp_path)
    node = render_node(root, "renderD128", "zocl")
    touch(root, "/dev/xlnk")
    kind, options, _ = choose_default(root)
    assert kind == "zocl" and options == {"device": node}


def test_zocl_by_its_platform_driver_name(tmp_path):
    # sysfs names the platform driver, zocl-drm, not the DRM driver, zocl.
    root = str(tmp_path)
    node = render_node(root, "renderD128", "zocl-drm")
    assert choose_default(root)[:2] == ("zocl", {"device": node})


def test_zocl_on_another_render_node(tmp_path):
    root = str(tmp_path)
    render_node(root, "renderD128", "lima")            # a Mali GPU
    node = render_node(root, "renderD129", "zocl")
    assert choose_default(root)[:2] == ("zocl", {"device": node})


def test_a_gpu_render_node_is_not_zocl(tmp_path):
    root = str(tmp_path)
    render_node(root, "renderD128", "lima")
    touch(root, "/dev/dri/renderD129")                 # driver unknown
    finding = [f for f in probe(root) if f.kind == "zocl"][0]
    assert not finding.found
    assert "renderD128 (lima)" in finding.detail
    assert "renderD129 (driver unknown)" in finding.detail
    assert choose_default(root)[0] == "sim"


def test_zocl_prefers_xrts_stable_name(tmp_path):
    root = str(tmp_path)
    render_node(root, "renderD128", "zocl")
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


def no_default(root):
    """The OSError that choosing the default memory raises."""
    with pytest.raises(OSError) as info:
        choose_default(root)
    assert ENV_VAR in str(info.value)           # says how to choose
    return info.value


def test_udmabuf_class_without_its_node_is_an_error(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "sys/class/u-dma-buf/udmabuf0"))
    e = no_default(root)
    assert e.errno == errno.ENOENT
    assert e.filename == os.path.join(root, "dev/udmabuf0")
    assert "u-dma-buf has a device udmabuf0" in str(e)


def test_a_udmabuf_node_without_sysfs_is_an_error(tmp_path):
    # /sys not mounted (a container, say): the buffer's address is unknown.
    root = str(tmp_path)
    node = touch(root, "/dev/udmabuf1")
    touch(root, "/dev/xlnk")
    e = no_default(root)
    assert e.filename == node and "is sysfs mounted?" in str(e)


def test_a_render_node_that_sysfs_does_not_name_is_asked(tmp_path, monkeypatch):
    root = str(tmp_path)
    node = touch(root, "/dev/dri/renderD128")          # no sysfs entry
    asked = []
    monkeypatch.setattr(_probe, "drm_driver_name",
                        lambda n: asked.append(n) or "zocl")
    assert choose_default(root)[:2] == ("zocl", {"device": node})
    assert asked == [node]
    monkeypatch.setattr(_probe, "drm_driver_name", lambda n: "i915")
    assert choose_default(root)[0] == "sim"


def test_a_render_node_that_cannot_be_asked_is_an_error(tmp_path, monkeypatch):
    root = str(tmp_path)
    node = touch(root, "/dev/dri/renderD128")
    touch(root, "/dev/xlnk")                # would be next: not taken

    def refuse(n):
        raise PermissionError(errno.EACCES, "Permission denied", n)
    monkeypatch.setattr(_probe, "drm_driver_name", refuse)
    e = no_default(root)
    assert (e.errno, e.filename) == (errno.EACCES, node)
    assert "may be zocl's" in str(e) and "Permission denied" in str(e)
    finding = [f for f in probe(root) if f.kind == "zocl"][0]
    assert not finding.found and finding.problem is not None


def test_a_file_that_is_no_drm_device_is_not_zocl(tmp_path):
    # A regular file answers DRM_IOCTL_VERSION with ENOTTY: not a DRM node.
    root = str(tmp_path)
    touch(root, "/dev/dri/renderD128")
    assert choose_default(root)[0] == "sim"


def test_the_listing_names_what_cannot_be_used(tmp_path):
    from pynq_alloc.__main__ import backend_lines
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "sys/class/u-dma-buf/udmabuf0"))
    line = [l for l in backend_lines(root) if l.startswith("  udmabuf ")][0]
    assert "cannot be used" in line and "dev/udmabuf0" in line


def test_xlnk(tmp_path):
    root = str(tmp_path)
    touch(root, "/dev/xlnk")
    kind, options, _ = choose_default(root)
    assert kind == "xlnk"
    assert options["library"] == os.path.join(root, "usr/lib/libcma.so")


def xocl_card(root, bdf="0000:65:00.1"):
    """A PCIe function bound to xocl, XRT's driver, as sysfs lists it."""
    os.makedirs(os.path.join(root, "sys/bus/pci/drivers/xocl", bdf))


def test_xrt_for_a_pcie_card(tmp_path):
    root = str(tmp_path)
    xocl_card(root)
    kind, options, why = choose_default(root)
    assert (kind, options) == ("xrt", {})
    assert "PCIe card 0000:65:00.1 (of 1)" in why and "libxrt_coreutil" in why


def test_xrt_by_its_render_node(tmp_path):
    root = str(tmp_path)
    render_node(root, "renderD128", "xocl")
    assert choose_default(root)[0] == "xrt"


def test_board_backends_come_before_xrt(tmp_path):
    root = str(tmp_path)
    xocl_card(root)
    touch(root, "/dev/xlnk")
    assert choose_default(root)[0] == "xlnk"
    node = render_node(root, "renderD128", "zocl")
    assert choose_default(root)[:2] == ("zocl", {"device": node})


def test_no_card_no_xrt(tmp_path):
    finding = [f for f in probe(str(tmp_path)) if f.kind == "xrt"][0]
    assert not finding.found and "xocl" in finding.detail


def test_hugepages_only_when_asked(tmp_path):
    finding = [f for f in probe(str(tmp_path)) if f.kind == "hugepage"][0]
    assert not finding.found and "only when asked" in finding.detail


def test_the_variable_wins(tmp_path, monkeypatch):
    root = str(tmp_path)
    render_node(root, "renderD128", "zocl")
    monkeypatch.setenv(ENV_VAR, "sim:size=4M")
    assert choose_default(root)[:2] == ("sim", {"size": "4M"})

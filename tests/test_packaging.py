"""What the build and the installed metadata promise: one version, -Werror
only when asked for, the pytest plugin's entry point, the product's
sources by name and no benchmark helpers in it."""
import importlib.metadata
import os
import re
import runpy
import sys

import pytest

import pynq_alloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_version_lives_in_one_place():
    assert importlib.metadata.version("pynq_alloc") == pynq_alloc.__version__
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        pyproject = f.read()
    assert re.search(r'^dynamic = \[.*"version"', pyproject, re.M)
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.M)
    assert "version = {attr = \"pynq_alloc.__version__\"}" in pyproject


def test_the_plugin_is_registered_for_pytest():
    found = importlib.metadata.entry_points()
    # select() since Python 3.10; before, a dict of groups.
    group = (found.select(group="pytest11") if hasattr(found, "select")
             else found.get("pytest11", ()))
    (entry,) = [e for e in group if e.name == "pynq_alloc"]
    assert entry.value == "pytest_pynq_alloc"


def declared_extension(monkeypatch, werror):
    """The extension as setup.py declares it (setup() itself not run)."""
    setuptools = pytest.importorskip("setuptools")
    pytest.importorskip("numpy")
    declared = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: declared.update(kw))
    if werror is None:
        monkeypatch.delenv("PYNQ_ALLOC_WERROR", raising=False)
    else:
        monkeypatch.setenv("PYNQ_ALLOC_WERROR", werror)
    monkeypatch.chdir(ROOT)
    runpy.run_path("setup.py")
    (ext,) = declared["ext_modules"]
    return ext


def compile_args(monkeypatch, werror):
    """The extension's compiler flags as setup.py declares them."""
    ext = declared_extension(monkeypatch, werror)
    return ext.extra_compile_args, ext.depends


def test_warnings_are_errors_only_when_asked_for(monkeypatch):
    assert "-Werror" not in compile_args(monkeypatch, None)[0]
    assert "-Werror" not in compile_args(monkeypatch, "0")[0]
    args, depends = compile_args(monkeypatch, "1")
    assert "-Werror" in args and "-Wall" in args
    assert "src/core/heap.h" in depends and "src/python/numpy_api.h" in depends


def test_an_older_python_is_told_so_and_not_that_numpy_is_missing(monkeypatch):
    """pip runs setup.py for the build's requirements: on PYNQ 2.6's
    Python 3.6 it says which Python is needed, before numpy is wanted."""
    monkeypatch.setattr(sys, "version_info", (3, 6, 15, "final", 0))
    monkeypatch.setitem(sys.modules, "numpy", None)     # import fails
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit, match=r"needs Python 3\.8 or later "
                       r"\(PYNQ 2\.7 images and later\); this is Python 3\.6\."):
        runpy.run_path("setup.py")


def test_the_installed_core_has_no_benchmark_helpers():
    # They live in benchmarks/ and run as a program of their own: the old
    # _heap_bench changed malloc's mmap threshold in the caller for good.
    from pynq_alloc import _core
    assert [name for name in dir(_core) if "bench" in name] == []


def test_setup_py_lists_every_source_in_src_and_only_those(monkeypatch):
    """A .c file in src/core or src/python is in the product only if
    setup.py names it; one that belongs to a test or a benchmark belongs
    in tests/ or benchmarks/."""
    if not os.path.isdir(os.path.join(ROOT, "src")):
        pytest.skip("no source tree beside the tests")
    listed = declared_extension(monkeypatch, None).sources
    present = sorted(
        os.path.relpath(os.path.join(top, name), ROOT)
        for part in ("src/core", "src/python")
        for top, _, names in os.walk(os.path.join(ROOT, part))
        for name in names if name.endswith(".c"))
    assert len(listed) == len(set(listed)), "a source listed twice"
    assert sorted(set(present) - set(listed)) == [], "not in setup.py"
    assert sorted(set(listed) - set(present)) == [], "listed but missing"
    # Core first, then glue, as setup.py groups them.
    assert listed == sorted(listed, key=lambda s: not s.startswith("src/core/"))

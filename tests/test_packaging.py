"""What the build and the installed metadata promise: one version, -Werror
only when asked for, the pytest plugin's entry point."""
import importlib.metadata
import os
import re
import runpy

import pytest

import pynq_alloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_version_lives_in_one_place():
    assert importlib.metadata.version("pynq_alloc") == pynq_alloc.__version__
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        pyproject = f.read()
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.M)
    assert "version = {attr = \"pynq_alloc.__version__\"}" in pyproject


def test_the_plugin_is_registered_for_pytest():
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11")
                if e.name == "pynq_alloc"]
    assert entry.value == "pytest_pynq_alloc"


def compile_args(monkeypatch, werror):
    """The extension's compiler flags as setup.py declares them."""
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
    return ext.extra_compile_args, ext.depends


def test_warnings_are_errors_only_when_asked_for(monkeypatch):
    assert "-Werror" not in compile_args(monkeypatch, None)[0]
    assert "-Werror" not in compile_args(monkeypatch, "0")[0]
    args, depends = compile_args(monkeypatch, "1")
    assert "-Werror" in args and "-Wall" in args
    assert "src/core/heap.h" in depends and "src/python/numpy_api.h" in depends

"""A user's own project tests its DMA driver against pynq_alloc.testing,
with pynq_alloc installed from the sdist: the project, in a directory of
its own, holds a driver written as PYNQ's pynq/lib/dma.py is (simple and
scatter-gather, no pynq import: pynq_style_dma.py, copied) and a test file
of its own on the plugin's pynq_axi_dma fixture.  Its pytest passes; the
same project with the driver's flush() left out fails, the coherence check
naming what went wrong and the fix.

Slow (a venv; with an sdist, a compile), so it runs only when asked, by
PYNQ_ALLOC_USER_PROJECT:
- the path of an sdist (`python -m build --sdist` makes one in dist/): a
  fresh venv in a temporary directory, the sdist and pytest installed
  there;
- the path of a Python where pynq_alloc was installed from the sdist, with
  pytest: CI passes the one it built, .venv-sdist/bin/python.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

WANTED = os.environ.get("PYNQ_ALLOC_USER_PROJECT", "")
pytestmark = pytest.mark.skipif(
    not WANTED, reason="slow: set PYNQ_ALLOC_USER_PROJECT to an sdist or to a "
    "Python where pynq_alloc was installed from one")

DRIVER = pathlib.Path(__file__).with_name("pynq_style_dma.py")

USERS_TESTS = '''
import numpy as np
import pytest

from pynq_alloc import allocate
from my_dma import Dma

MODES = pytest.mark.parametrize("pynq_axi_dma", [{"sg": False}, {"sg": True}],
                                indirect=True, ids=["simple", "sg"])


@MODES
@pytest.mark.parametrize("cacheable", [False, True], ids=["uncached", "cacheable"])
def test_loopback(pynq_axi_dma, cacheable):
    dma = Dma(pynq_axi_dma)
    src = allocate(1000, "u4", cacheable=cacheable)
    dst = allocate(1000, "u4", cacheable=cacheable)
    src[:] = np.arange(1000) * 7
    dma.sendchannel.transfer(src)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert np.array_equal(dst, np.arange(1000) * 7)
    assert dma.recvchannel.transferred == 4000


@MODES
def test_reading_past_the_buffer_is_a_slave_error(pynq_axi_dma):
    dma = Dma(pynq_axi_dma)
    src = allocate(1024, "u4")
    dma.sendchannel.transfer(src, nbytes=5120)
    assert pynq_axi_dma.errors()["mm2s"] == ["DMASlvErr"]
    with pytest.raises(RuntimeError, match="DMASlvErr"):
        dma.sendchannel.wait()
'''

FLUSH = "            array.flush()\n"


def user_python(tmp_path):
    """The Python the user's project runs under: the one given, or a fresh
    venv with the given sdist installed (compiled there) and pytest."""
    if not WANTED.endswith(".tar.gz"):
        return WANTED
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-binary",
                    "pynq_alloc", os.path.abspath(WANTED), "pytest"],
                   check=True, timeout=1200)
    return python


def make_project(root, driver_text):
    root.mkdir()
    (root / "my_dma.py").write_text(driver_text)
    (root / "test_my_dma.py").write_text(textwrap.dedent(USERS_TESTS))
    return root


def run_pytest(python, project):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PYNQ_ALLOC_", "PYTEST_"))}
    return subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider",
                           "-p", "no:hypothesispytest", "-rA"],
                          cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_users_project_tests_its_driver_against_the_simulated_dma(tmp_path):
    python = user_python(tmp_path)
    where = subprocess.run(
        [python, "-c", "import sys, pynq_alloc; print(pynq_alloc.__file__); "
         "print(sys.prefix)"], cwd=tmp_path, capture_output=True, text=True,
        check=True).stdout.split()
    assert where[0].startswith(where[1]), where      # installed, not a checkout
    driver = DRIVER.read_text()
    assert "import pynq\n" not in driver and "from pynq " not in driver

    good = run_pytest(python, make_project(tmp_path / "good", driver))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "6 passed" in good.stdout, good.stdout

    # The same driver with its flush() before MM2S reads left out.
    assert driver.count(FLUSH) == 2                  # simple and SG
    forgetful = driver.replace(FLUSH, "            pass  # flush() forgotten\n")
    bad = run_pytest(python, make_project(tmp_path / "bad", forgetful))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "2 failed, 4 passed" in bad.stdout, bad.stdout
    for mode in ("simple", "sg"):
        assert f"FAILED test_my_dma.py::test_loopback[cacheable-{mode}]" \
            in bad.stdout, bad.stdout
    # Where the DMA reads: all 4000 bytes (simple), the first of the two
    # blocks PYNQ always cuts (SG).
    for span in ("0 to 4000", "0 to 2000"):
        assert (f"CoherenceError: the device read bytes {span} that the CPU "
                "wrote and never flushed: it read stale data, in the buffer "
                "(1000,) uint32 at 0x10000000") in bad.stdout, bad.stdout
    assert "Fix: call flush() on the buffer" in bad.stdout

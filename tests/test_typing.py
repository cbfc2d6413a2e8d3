"""The typed example runs, and mypy --strict accepts it and catches
mistakes in code like it (where mypy is installed: CI's dev extra)."""
import subprocess
import sys

import pytest

import typed_example

EXAMPLE = typed_example.__file__


def test_typed_example_runs():
    lines = typed_example.main()
    address, rest = lines[0].split(" ", 1)
    # Where the loopback's blocks went (reused or not) decides the address.
    assert 0x4000_0000 <= int(address, 16) < 0x4010_0000
    assert int(address, 16) % 4096 == 0
    assert rest.startswith("4096 (4, 4) float32 views=1 at ")
    assert "typed_example.py" in lines[0]
    assert lines[1] == "1044480 bytes free in sim memory"


MISUSE = """
from pynq_alloc import allocate, open_memory
buf = allocate(16)
address: int = buf.device_address
buf.device_adress
open_memory('sim').stats()['free'].upper()
"""


def test_mypy_strict_accepts_the_example_and_catches_misuse(tmp_path):
    """One mypy run (numpy's stubs take it seconds to read) on the example
    and on code with three mistakes."""
    pytest.importorskip("mypy")
    numpy_typing = pytest.importorskip("numpy.typing")
    if not hasattr(numpy_typing, "NDArray"):
        pytest.skip("pynq_alloc's stubs build on numpy's generic ndarray, "
                    "typed from numpy 1.21 on")
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE)
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict",
                        "--no-error-summary", "--cache-dir",
                        str(tmp_path / "cache"), EXAMPLE, str(misuse)],
                       capture_output=True, text=True)
    errors = [line for line in r.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "typed_example" in e], r.stdout + r.stderr
    assert len(errors) == 3, r.stdout + r.stderr
    # The device address may be None (freed buffers, copies) ... (mypy
    # writes that as Optional[int] for Pythons before 3.10)
    optional_int = "int | None" if sys.version_info >= (3, 10) else "Optional[int]"
    assert f'has type "{optional_int}", variable has type "int"' in errors[0]
    # ... a typo is caught (the stub has no catch-all __getattr__) ...
    assert 'has no attribute "device_adress"' in errors[1]
    # ... and stats() is a dict of ints.
    assert '"int" has no attribute "upper"' in errors[2]

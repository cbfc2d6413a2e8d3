"""zocl's options as Python sees them.  No zocl device is here, so a bank
that is accepted shows as the device's error (not a zocl device), while a
bad bank is a ValueError before the device is touched.  What the bank does
to each request is tested in C against a stand-in driver
(tests/c/test_zocl.c)."""
import errno

import pytest

from helpers import run_python
from pynq_alloc import _core, open_memory


@pytest.fixture
def not_zocl(tmp_path):
    """A file that answers no DRM ioctl: opening it as zocl is ENODEV."""
    path = tmp_path / "renderD128"
    path.write_bytes(b"")
    return str(path)


@pytest.mark.parametrize("bank", [0, 1, 65535, "1", "0x1", " 7 ", "0xffff"])
def test_good_banks_reach_the_device(not_zocl, bank):
    with pytest.raises(OSError, match="not a zocl device") as info:
        open_memory("zocl", device=not_zocl, bank=bank)
    assert info.value.errno == errno.ENODEV


@pytest.mark.parametrize("bank", [-1, 65536, 1 << 64, True, False, 1.0, 1.5,
                                  "1.0", "one", "", "-1", "0x10000", None])
def test_bad_banks_are_value_errors_naming_the_value(bank):
    with pytest.raises(ValueError, match="zocl bank") as info:
        open_memory("zocl", device="/nonexistent/renderD128", bank=bank)
    assert repr(bank) in str(info.value)


def test_bank_in_the_spec(not_zocl):
    with pytest.raises(OSError, match="not a zocl device"):
        open_memory(f"zocl:bank=1,device={not_zocl}")
    with pytest.raises(ValueError, match="'two'"):
        open_memory(f"zocl:bank=two,device={not_zocl}")


def test_the_core_refuses_a_bank_outside_16_bits(not_zocl):
    for bank in (-1, 65536):
        with pytest.raises(ValueError, match=f"got {bank}$"):
            _core._open_zocl(device=not_zocl, meminfo="/proc/meminfo",
                             bank=bank)


CHECK_DEFAULT = "import pynq_alloc; pynq_alloc.default_memory()"


def last_error(spec):
    r = run_python(CHECK_DEFAULT, env={"PYNQ_ALLOC_MEMORY": spec})
    assert r.returncode != 0
    return r.stderr.strip().splitlines()[-1]


def test_bank_in_the_variable(not_zocl):
    spec = f"zocl:device={not_zocl},bank=1"
    assert last_error(spec) == (
        f"OSError: [Errno 19] PYNQ_ALLOC_MEMORY={spec!r} chose the default "
        "memory (unset it to let pynq_alloc find it, or correct it): not a "
        f"zocl device: {not_zocl!r}")
    assert last_error(f"zocl:device={not_zocl},bank=70000").endswith(
        ": zocl bank must be an int from 0 to 65535 (or its text, "
        "e.g. '1' or '0x1'); got '70000'")

"""Shared fixtures: a small private simulated memory per test."""
import pytest

from helpers import BASE, MiB
from pynq_alloc import open_memory


@pytest.fixture
def mem():
    """A fresh 16 MiB simulated memory: nothing else allocates from it."""
    return open_memory("sim", size=16 * MiB, base_address=BASE)


@pytest.fixture(scope="session")
def libcma(tmp_path_factory):
    """The stand-in libcma.so, and one without cma_invalidate_cache."""
    from fake_devices import build_libcma
    d = str(tmp_path_factory.mktemp("libcma"))
    return build_libcma(d), build_libcma(d, without_invalidate=True)

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


@pytest.fixture(scope="session")
def libxrt(tmp_path_factory):
    """The stand-in libxrt_coreutil.so, and one without xrtBOSync."""
    from fake_devices import build_libxrt
    d = str(tmp_path_factory.mktemp("libxrt"))
    return build_libxrt(d), build_libxrt(d, without_sync=True)


HUGEPAGE_SETTINGS = ["/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
                     "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"]


@pytest.fixture(scope="session", autouse=True)
def restore_hugepage_settings():
    """The hugepage tests reserve huge pages, a system-wide setting: put it
    back as it was when the session ends."""
    import os
    saved = {}
    for path in HUGEPAGE_SETTINGS:
        if os.geteuid() == 0 and os.path.exists(path):
            with open(path) as f:
                saved[path] = f.read().strip()
    yield
    for path, value in saved.items():
        with open(path, "w") as f:
            f.write(value)

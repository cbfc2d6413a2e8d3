"""Shared fixtures: a small private simulated memory per test."""
import pytest

from helpers import BASE, MiB
from pynq_alloc import open_memory


@pytest.fixture
def mem():
    """A fresh 16 MiB simulated memory: nothing else allocates from it."""
    return open_memory("sim", size=16 * MiB, base_address=BASE)

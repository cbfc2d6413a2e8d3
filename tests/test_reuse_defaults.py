"""The reuse cache serves default requests: on the hugepage backend every
block is mapped cached (x86 DMA is coherent), so a default (uncached)
allocate is served from blocks kept for reuse just as cacheable=True is,
with no system call.  Needs root and huge pages, as tests/test_hugepage.py
does; CI sets PYNQ_ALLOC_REQUIRE_HUGEPAGES=1 so that none of it is
skipped."""
import os

import numpy as np
import pytest

from helpers import MiB
from pynq_alloc import allocate, open_memory

REQUIRED = os.environ.get("PYNQ_ALLOC_REQUIRE_HUGEPAGES") == "1"


@pytest.fixture
def pool():
    def unavailable(reason):
        if REQUIRED:
            pytest.fail(f"hugepage tests are required here but {reason}")
        pytest.skip(reason)
    if os.geteuid() != 0:
        unavailable("they need root")
    try:
        memory = open_memory("hugepage", size=4 * MiB)
    except OSError as e:
        unavailable(f"huge pages cannot be had: {e}")
    if not memory.allocate(1, "u1", cacheable=True).coherent:
        # Not the environment's doing: uncached huge pages exist only where
        # DMA is coherent (x86); elsewhere (arm64) a default request is
        # refused, reused block or not.
        pytest.skip("this machine's DMA is not coherent: no uncached "
                    "huge pages to reuse")
    return memory


def where(buf):
    return buf.device_address, buf.ctypes.data


@pytest.mark.parametrize("first, second", [(False, False), (True, False),
                                           (False, True)])
def test_a_dropped_block_serves_the_next_request_of_either_kind(pool, first,
                                                                second):
    b = allocate(4096, "u1", target=pool, cacheable=first)
    seen = where(b)
    b[:] = 7
    del b
    c = allocate(4096, "u1", target=pool, cacheable=second)
    assert where(c) == seen         # the same block, kept mapped
    assert c.cacheable and c.coherent
    assert not c.any()              # zeroed for its new user
    assert pool.stats()["buffers"] == 1


def test_default_requests_in_turn_stay_on_one_block(pool):
    seen = {where(allocate(100, "u4", target=pool)) for _ in range(50)}
    assert len(seen) == 1
    assert pool.stats()["used"] == 0


def test_reused_default_blocks_read_as_zeros_on_the_device_side(pool):
    b = allocate(4096, "u1", target=pool)
    b[:] = 0xAB
    del b
    c = allocate(4096, "u1", target=pool)
    assert np.frombuffer(pool.device_read(c.device_address, 4096),
                         "u1").sum() == 0

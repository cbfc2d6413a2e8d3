"""pytest plugin of pynq_alloc: a simulated memory per test, with a leak
check and a coherence check.

Registered through the `pytest11` entry point.  A test that asks for the
`pynq_memory` fixture gets a fresh simulated Memory, installed as the
default memory (what `allocate()` uses with no target) for that test; the
previous default comes back afterwards, also when the test fails.  Its
coherence mode is 'raise': a missing or misplaced flush()/invalidate()
raises pynq_alloc.CoherenceError where it happens.  At teardown, buffers of
that memory still alive fail the test, each listed with its shape, dtype,
device address, bytes and allocation site, and so do the hazards that
Memory.check() still finds (device writes that a released buffer never
invalidated, say).

    @pytest.mark.pynq_memory(size="16M", base_address=0x4000_0000)
    def test_driver(pynq_memory):
        buf = allocate(1024)            # in pynq_memory
        ...

Where the kernel allows (Linux 6.7 or later), the memory watches the
CPU's stores (`watch_stores=True`), so that a store of the value already
there, which changes no byte, is seen too; elsewhere it does without,
and says why at the end of the run.  `watch_stores=True` in the
marker requires it (an OSError where it cannot be had), False turns it
off.

Options of the memory come from the `pynq_memory` marker (those of
`open_memory('sim', ...)`, coherence='warn' or 'off' among them), and
`leak_check=False` there, or `--pynq-no-leak-check`, turns the leak check
off.  The marker alone gives a test the memory, as if it asked for the
fixture: driver code that calls `allocate()` needs no argument to name it.

    @pytest.mark.pynq_memory(size="16M")
    def test_filter():
        run_filter(allocate(1024))      # in a 16 MiB simulated memory

`--install-into-pynq` runs the whole session with
`pynq_alloc.pynq.install()` called first, so that PYNQ's own code (and a
PYNQ project's tests) make pynq_alloc Buffers.  This module lives outside
the pynq_alloc package, so that test runs which never use the fixture
never import pynq_alloc or load its extension.
"""
from __future__ import annotations

import errno
import gc
from typing import Any, Dict, Generator, Iterator

import pytest

MARKER = "pynq_memory"
NO_LEAK_CHECK = "--pynq-no-leak-check"
INSTALL_INTO_PYNQ = "--install-into-pynq"
_call_passed = pytest.StashKey[bool]()
FRAMES = 5      # of the stack, recorded at each allocation during the test


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("pynq_alloc").addoption(
        NO_LEAK_CHECK, action="store_true",
        help="do not fail tests that leave pynq_memory buffers alive")
    parser.getgroup("pynq_alloc").addoption(
        INSTALL_INTO_PYNQ, action="store_true",
        help="run with pynq_alloc.pynq.install() called before tests are "
        "collected: PYNQ's own code makes pynq_alloc Buffers")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption(INSTALL_INTO_PYNQ):
        import pynq_alloc.pynq
        pynq_alloc.pynq.install()
    config.addinivalue_line(
        "markers", f"{MARKER}(**options): options of the simulated memory "
        "that the pynq_memory fixture opens (size, base_address, "
        "coherence, line_size, watch_stores, as "
        "pynq_alloc.open_memory('sim', ...) takes them; coherence is "
        "'raise' unless given, watch_stores on where the kernel allows); "
        "leak_check=False skips its leak check.  A marked test gets the "
        "fixture without asking")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    if call.when == "call" and (MARKER in getattr(item, "fixturenames", ())
                                or item.get_closest_marker(MARKER) is not None):
        item.stash[_call_passed] = outcome.get_result().passed


def _options(request: pytest.FixtureRequest) -> Dict[str, Any]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    if marker.args:
        raise TypeError(f"@pytest.mark.{MARKER} takes keyword options only "
                        f"(size=..., base_address=..., leak_check=...), "
                        f"not {marker.args!r}")
    return dict(marker.kwargs)


@pytest.fixture(autouse=True)
def _pynq_memory_marker(request: pytest.FixtureRequest) -> None:
    """The marker alone gives a test the pynq_memory fixture.

    A marker with options that did nothing would be a silent trap (no
    size, no coherence='raise', no leak check), and a test whose driver
    allocates through the default memory has no use for the fixture's
    value; so marking the test is enough, as with pytest's own
    usefixtures.  Unmarked tests are left alone, pynq_alloc unimported."""
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue(MARKER)


@pytest.fixture
def pynq_memory(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh simulated Memory, the default memory for this test.

    Allocation sites are traced while it is installed, so that the leak
    check can say where each leaked buffer came from.
    """
    import pynq_alloc
    from pynq_alloc import _core     # the default memory and tracing

    options = _options(request)
    leak_check = options.pop("leak_check", True)
    if not isinstance(leak_check, bool):     # leak_check="False" is truthy
        raise TypeError(f"@pytest.mark.{MARKER}(leak_check=...) takes True or "
                        f"False, not {type(leak_check).__name__}")
    options.setdefault("coherence", "raise")
    memory = _open(pynq_alloc, options)
    previous = _core._set_default_memory(memory)
    tracing = _core._trace(FRAMES)
    try:
        yield memory
    finally:
        _core._trace(tracing)
        _core._set_default_memory(previous)
    # A test that failed (or xfailed) keeps its buffers in its traceback.
    if not request.node.stash.get(_call_passed, False):
        return
    if leak_check and not request.config.getoption(NO_LEAK_CHECK):
        _check_leaks(memory, request.node.nodeid)
    if memory.coherence == "raise":
        _check_coherence(memory, request.node.nodeid)


@pytest.fixture
def pynq_axi_dma(request: pytest.FixtureRequest, pynq_memory: Any) -> Any:
    """A simulated AXI DMA (pynq_alloc.testing.AxiDma) on pynq_memory: it
    plays ol.axi_dma_0 for a driver under test, and the memory's checks
    (coherence, leaks) apply to what the driver does with it.

    Simple mode by default; other builds of the IP by indirect
    parametrization, with AxiDma's options:

        @pytest.mark.parametrize("pynq_axi_dma", [{"sg": True}], indirect=True)
        def test_sg(pynq_axi_dma):
            dma = MyDriver(pynq_axi_dma)
    """
    from pynq_alloc.testing import AxiDma

    options = getattr(request, "param", {})
    if not isinstance(options, dict):
        raise TypeError(
            "pynq_axi_dma takes AxiDma's options as a dict, e.g. "
            "@pytest.mark.parametrize('pynq_axi_dma', [{'sg': True}], "
            f"indirect=True), not {options!r}")
    return AxiDma(pynq_memory, **options)


# Why this kernel cannot watch stores, once found out: None until then.
_cannot_watch: Any = None


def _open(pynq_alloc: Any, options: Dict[str, Any]) -> Any:
    """The test's memory, watching stores where the kernel allows unless
    the marker says either way (see the module's docstring)."""
    global _cannot_watch
    if "watch_stores" in options or options["coherence"] == "off" \
            or _cannot_watch is not None:
        return pynq_alloc.open_memory("sim", **options)
    try:
        return pynq_alloc.open_memory("sim", watch_stores=True, **options)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM):
            raise
        _cannot_watch = e.strerror or str(e)
    return pynq_alloc.open_memory("sim", **options)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Said at the end, once known: a run that never uses the fixture never
    # imports pynq_alloc to find out.
    if _cannot_watch is not None:
        terminalreporter.write_line(
            f"pynq_alloc: pynq_memory did not watch stores: {_cannot_watch}")


def _check_leaks(memory: Any, nodeid: str) -> None:
    """Fails if buffers of memory are alive (after a collection, so that
    garbage in reference cycles is not taken for a leak)."""
    if not memory.buffers():
        return
    gc.collect()
    leaked = memory.buffers()
    if not leaked:
        return
    one = len(leaked) == 1
    lines = [f"{len(leaked)} pynq_alloc buffer{' is' if one else 's are'} "
             f"still alive at the end of {nodeid}:"]
    lines += [f"  {b}" for b in leaked]
    lines.append(
        f"Fix: release {'it' if one else 'each'} before the test ends "
        "(buf.freebuffer(), or allocate it in `with allocate(...) as buf:`), "
        "or drop what still refers to it (a global, a list, a cache, an "
        "attribute, a view); a test that keeps buffers on purpose is marked "
        f"@pytest.mark.{MARKER}(leak_check=False).")
    pytest.fail("\n".join(lines), pytrace=False)


def _check_coherence(memory: Any, nodeid: str) -> None:
    """Fails on the coherence hazards that stand at the end of the test."""
    gc.collect()        # buffers in cycles are released, and checked
    found = memory.check()
    if not found:
        return
    lines = [f"coherence hazard{'s' if len(found) > 1 else ''} at the end of "
             f"{nodeid} (mark the test @pytest.mark.{MARKER}("
             f"coherence='warn') or 'off' to allow them):"]
    lines += [f"  {h}" for h in found]
    pytest.fail("\n".join(lines), pytrace=False)

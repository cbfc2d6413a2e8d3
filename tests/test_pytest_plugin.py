"""The pytest plugin (pytest_pynq_alloc), run as users run it: pytest in a
subprocess on test files of their own, with the plugin loaded from the
installed package's pytest11 entry point."""


def run(pytester, source, *args):
    pytester.makepyfile(source)
    # Without hypothesis's plugin, which takes a second and more to import.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                         "-p", "no:hypothesispytest", *args)


def test_a_clean_test_passes_and_allocates_in_its_memory(pytester):
    result = run(pytester, """
        import pytest
        from pynq_alloc import allocate, default_memory

        def test_default_is_the_fixture(pynq_memory):
            assert default_memory() is pynq_memory
            assert pynq_memory.kind == "sim"
            buf = allocate(1000)
            assert buf.memory is pynq_memory
            assert buf.device_address == pynq_memory.base_address
            del buf

        @pytest.mark.pynq_memory(size="16M", base_address=0x4000_0000)
        def test_marker_options(pynq_memory):
            assert (pynq_memory.base_address, pynq_memory.size) == (0x4000_0000, 16 << 20)
            with allocate((4, 4), "f4") as buf:
                assert buf.device_address == 0x4000_0000

        def test_each_test_gets_a_fresh_memory(pynq_memory):
            assert pynq_memory.stats()["buffers"] == 0
    """)
    result.assert_outcomes(passed=3)


def test_a_leaking_test_fails_with_each_buffer_listed(pytester):
    result = run(pytester, """
        import numpy as np
        from pynq_alloc import allocate

        kept = []

        def test_leaks(pynq_memory):
            kept.append(allocate((1024,), "u4"))
            kept.append(allocate((3, 5), np.float32, cacheable=True)[1:])
    """)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaks*",
        "*2 pynq_alloc buffers are still alive at the end of "
        "test_a_leaking_test_fails_with_each_buffer_listed.py::test_leaks:",
        "*  (1024,) uint32 at 0x10000000, 4096 bytes, allocated at "
        "*test_a_leaking_test_fails_with_each_buffer_listed.py:7 in test_leaks",
        "*  (3, 5) float32 at 0x10001000, 4096 bytes, 1 view alive, "
        "allocated at *test_a_leaking_test_fails_with_each_buffer_listed.py:8"
        " in test_leaks",
        "*Fix: release each before the test ends*",
    ])


def test_the_leak_check_can_be_turned_off(pytester):
    source = """
        import pytest
        from pynq_alloc import allocate

        kept = []

        @pytest.mark.pynq_memory(leak_check=False)
        def test_marked(pynq_memory):
            kept.append(allocate(10))

        def test_unmarked(pynq_memory):
            kept.append(allocate(10))
    """
    result = run(pytester, source)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_unmarked*"])
    run(pytester, source, "--pynq-no-leak-check").assert_outcomes(passed=2)


def test_garbage_in_reference_cycles_is_not_a_leak(pytester):
    result = run(pytester, """
        from pynq_alloc import allocate

        def test_cycle(pynq_memory):
            buf = allocate(10)
            buf.me = buf            # a cycle through the buffer's __dict__
    """)
    result.assert_outcomes(passed=1)


def test_a_failing_test_restores_the_default_and_tracing(pytester):
    pytester.makeconftest("""
        import pynq_alloc
        ORIGINAL = pynq_alloc.default_memory()
    """)
    result = run(pytester, """
        import pytest
        import pynq_alloc
        from conftest import ORIGINAL

        def test_1_fails(pynq_memory):
            buf = pynq_alloc.allocate(10)   # held by the traceback
            assert pynq_alloc.default_memory() is not ORIGINAL
            assert False, "the test's own failure"

        def test_2_default_is_back():
            assert pynq_alloc.default_memory() is ORIGINAL
            assert pynq_alloc.allocate(1).memory is ORIGINAL
            assert pynq_alloc.trace(False) is False     # tracing is off again

        def test_3_trace_9_frames():
            pynq_alloc.trace(True, frames=9)

        def test_4_fixture_traces_5(pynq_memory):
            buf = pynq_alloc.allocate(1)
            assert len(pynq_memory.buffers()[0].traceback) == 5
            del buf

        def test_5_tracing_is_as_it_was():
            from pynq_alloc import _core
            assert _core._trace(0) == 9

        @pytest.mark.xfail(strict=True)
        def test_6_xfails(pynq_memory):
            buf = pynq_alloc.allocate(10)   # held by the traceback
            assert False
    """)
    result.assert_outcomes(passed=4, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*the test's own failure*"])
    result.stdout.no_fnmatch_line("*still alive*")


def test_a_failing_setup_of_the_memory_changes_nothing(pytester):
    pytester.makeconftest("""
        import pynq_alloc
        ORIGINAL = pynq_alloc.default_memory()
    """)
    result = run(pytester, """
        import pytest
        import pynq_alloc
        from conftest import ORIGINAL

        @pytest.mark.pynq_memory(size="lots")
        def test_bad_option(pynq_memory):
            pass

        @pytest.mark.pynq_memory(16 << 20)
        def test_positional(pynq_memory):
            pass

        def test_default_untouched():
            assert pynq_alloc.default_memory() is ORIGINAL
    """)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*size 'lots' is not a size or address*",
                                 "*takes keyword options only*"])


def test_runs_that_do_not_use_it_never_import_pynq_alloc(pytester):
    result = run(pytester, """
        import sys

        def test_untouched(request):
            assert request.config.pluginmanager.has_plugin("pynq_alloc")
            assert not [m for m in sys.modules if m.startswith("pynq_alloc")]

        def test_marker_is_registered(pytestconfig):
            assert any(line.startswith("pynq_memory(")
                       for line in pytestconfig.getini("markers"))
    """, "--strict-markers")
    result.assert_outcomes(passed=2)


def test_coherence_hazards_raise_where_they_happen(pytester):
    result = run(pytester, """
        def test_forgets_flush(pynq_memory):
            buf = pynq_memory.allocate(16, "u4", cacheable=True)
            buf[:] = 7
            pynq_memory.device_read(buf.device_address, 64)   # no flush()
    """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*CoherenceError: the device read bytes 0 to 64 that the CPU wrote "
        "and never flushed*(16,) uint32 at 0x10000000, allocated at "
        "*test_coherence_hazards_raise_where_they_happen.py:2 in "
        "test_forgets_flush. Fix: call flush()*"])


def test_hazards_left_at_the_end_fail_the_test(pytester):
    result = run(pytester, """
        import pytest

        def test_never_invalidates(pynq_memory):
            buf = pynq_memory.allocate(16, "u4", cacheable=True)
            pynq_memory.device_write(buf.device_address, bytes(64))
            total = int(buf.sum())      # stale: no invalidate()

        @pytest.mark.pynq_memory(coherence="warn")
        def test_allowed_to_warn(pynq_memory):
            buf = pynq_memory.allocate(16, "u4", cacheable=True)
            pynq_memory.device_write(buf.device_address, bytes(64))
            with pytest.warns(UserWarning, match="never invalidated"):
                buf.freebuffer()
    """)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_never_invalidates*",
        "*coherence hazard at the end of "
        "test_hazards_left_at_the_end_fail_the_test.py::test_never_invalidates "
        "(mark the test @pytest.mark.pynq_memory(coherence='warn') or 'off' "
        "to allow them):",
        "*the device wrote bytes 0 to 64 and the CPU never invalidated it*"])


def test_stores_are_watched_where_the_kernel_allows(pytester):
    """out[:] = 0 changes no byte: only a memory that watches stores sees
    that the device's write lands under dirty lines."""
    from test_coherence_stores import WHY_NOT
    result = run(pytester, """
        import pytest

        def clear_then_device_write(memory):
            out = memory.allocate(1024, "u4", cacheable=True)
            out[:] = 0
            memory.device_write(out.device_address, bytes(4096))
            out.invalidate()

        def test_default(pynq_memory):
            clear_then_device_write(pynq_memory)

        @pytest.mark.pynq_memory(watch_stores=False)
        def test_turned_off(pynq_memory):
            clear_then_device_write(pynq_memory)
    """)
    if WHY_NOT is None:
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines([
            "*CoherenceError: the device wrote bytes 0 to 4096 while the CPU "
            "held those cache lines dirty*"])
    else:
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(
            ["pynq_alloc: pynq_memory did not watch stores: *"])

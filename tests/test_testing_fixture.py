"""The plugin's pynq_axi_dma fixture, run as users run it: pytest in a
subprocess on test files of their own, with the plugin loaded from the
installed package's pytest11 entry point."""


def run(pytester, source, *args):
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                         "-p", "no:hypothesispytest", *args)


def test_a_simple_dma_on_the_tests_memory(pytester):
    result = run(pytester, """
        from pynq_alloc import allocate, default_memory
        from pynq_alloc.testing import AxiDma

        def test_fixture(pynq_axi_dma, pynq_memory):
            assert isinstance(pynq_axi_dma, AxiDma)
            assert pynq_axi_dma.memory is pynq_memory is default_memory()
            assert pynq_axi_dma.description["parameters"]["c_include_sg"] == "0"
            src, dst = allocate(16), allocate(16)      # the default memory
            src[:] = range(16)
            for offset, value in [(0x30, 1), (0x48, dst.device_address),
                                  (0x58, 64), (0x00, 1),
                                  (0x18, src.device_address), (0x28, 64)]:
                pynq_axi_dma.write(offset, value)
            assert list(dst) == list(range(16))
            del src, dst

        def test_each_test_gets_a_fresh_one(pynq_axi_dma):
            assert pynq_axi_dma.writes == []
            assert pynq_axi_dma.read(0x04) == 1        # halted
    """)
    result.assert_outcomes(passed=2)


def test_options_by_indirect_parametrization(pytester):
    result = run(pytester, """
        import pytest

        @pytest.mark.parametrize("pynq_axi_dma", [{"sg": False}, {"sg": True}],
                                 indirect=True, ids=["simple", "sg"])
        def test_modes(pynq_axi_dma, request):
            sg = request.node.callspec.id == "sg"
            assert pynq_axi_dma.sg is sg
            assert pynq_axi_dma.read(0x04) == (9 if sg else 1)

        @pytest.mark.pynq_memory(base_address=0x2000_0000)
        @pytest.mark.parametrize("pynq_axi_dma", [{"length_width": 14}], indirect=True)
        def test_with_the_memorys_marker(pynq_axi_dma):
            assert pynq_axi_dma.memory.base_address == 0x2000_0000
            assert pynq_axi_dma.description["parameters"]["c_sg_length_width"] == "14"

        @pytest.mark.parametrize("pynq_axi_dma", [True], indirect=True)
        def test_not_a_dict(pynq_axi_dma):
            pass

        @pytest.mark.parametrize("pynq_axi_dma", [{"length_width": 40}], indirect=True)
        def test_out_of_range(pynq_axi_dma):
            pass
    """)
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines([
        "*TypeError: pynq_axi_dma takes AxiDma's options as a dict, e.g. "
        "@pytest.mark.parametrize('pynq_axi_dma', *, indirect=True), not True",
        "*ValueError: length_width 40: the AXI DMA's c_sg_length_width is 8 to 26*"])


def test_a_driver_that_forgets_to_flush_fails_where_the_dma_reads(pytester):
    result = run(pytester, """
        from pynq_alloc import allocate

        def test_forgets_flush(pynq_axi_dma):
            src = allocate(16, cacheable=True)
            src[:] = 7                          # no flush()
            pynq_axi_dma.write(0x00, 1)
            pynq_axi_dma.write(0x18, src.device_address)
            pynq_axi_dma.write(0x28, 64)
    """)
    result.assert_outcomes(failed=1)
    # The report ends at the test's own line: the DMA's frames are hidden.
    result.stdout.fnmatch_lines([
        ">*pynq_axi_dma.write(0x28, 64)",
        "E*CoherenceError: the device read bytes 0 to 64 that the CPU wrote "
        "and never flushed*Fix: call flush()*",
        "*test_a_driver_that_forgets_to_flush_fails_where_the_dma_reads.py:8: "
        "CoherenceError"])
    result.stdout.no_fnmatch_line("*pynq_alloc/*.py*")


def test_data_the_dma_wrote_and_the_cpu_never_invalidated_fails(pytester):
    result = run(pytester, """
        from pynq_alloc import allocate

        def test_never_invalidates(pynq_axi_dma):
            src, dst = allocate(16), allocate(16, cacheable=True)
            src[:] = 7
            for offset, value in [(0x30, 1), (0x48, dst.device_address),
                                  (0x58, 64), (0x00, 1),
                                  (0x18, src.device_address), (0x28, 64)]:
                pynq_axi_dma.write(offset, value)
            assert not dst.any()                # stale: no invalidate()
            del src, dst
    """)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_never_invalidates*",
        "*the device wrote bytes 0 to 64 and the CPU never invalidated it*"])


def test_a_descriptor_ring_left_alive_is_a_leak(pytester):
    result = run(pytester, """
        from pynq_alloc import allocate

        kept = []

        def test_leaves_a_ring(pynq_axi_dma):
            kept.append(allocate((2, 16), "u4"))
    """)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_a_ring*",
                                 "*1 pynq_alloc buffer is still alive*"])

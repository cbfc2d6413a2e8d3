"""python -m pynq_alloc: the quick way to see the package work."""
from helpers import run_python
from pynq_alloc import open_memory
from pynq_alloc.__main__ import self_check


def test_module_prints_ok():
    r = run_python("import runpy; runpy.run_module('pynq_alloc', run_name='__main__')")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("pynq_alloc ") and "numpy" in lines[0]
    assert any(line.startswith("default memory: sim") for line in lines)
    assert lines[-1] == "OK"


def test_module_reports_a_memory_it_cannot_open():
    r = run_python("import runpy; runpy.run_module('pynq_alloc', run_name='__main__')",
                   env={"PYNQ_ALLOC_MEMORY": "bogus"})
    assert r.returncode == 1 and "cannot open the default memory" in r.stdout


class LosesDeviceWrites:
    """A memory whose device writes vanish: the self-check must notice."""

    def __init__(self, memory):
        self.memory = memory

    def allocate(self, *args, **kwargs):
        return self.memory.allocate(*args, **kwargs)

    def device_read(self, address, n):
        return self.memory.device_read(address, n)

    def device_write(self, address, data):
        pass

    def stats(self):
        return self.memory.stats()


def test_self_check_passes_and_can_fail():
    mem = open_memory("sim", size=1 << 20)
    assert self_check(mem) == []
    failures = self_check(LosesDeviceWrites(mem))
    assert len(failures) == 1 and "invalidate" in failures[0]

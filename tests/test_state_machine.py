"""Random sequences of everything a user does to a memory, checked against
a model of the bytes the CPU and the device see.

Each allocation is modelled by two byte arrays: what the CPU reads and what
the device reads.  An uncached buffer has one copy; a cacheable one on the
simulated memory is non-coherent, and its flush and invalidate move whole
cache lines of the span of the view they are called on, as a board's
cache does (docs/coherence.md): the model keeps, per line, what the CPU
last synced, to tell the lines the CPU dirtied.  After every step: the figures are
exact, no two live allocations overlap, and every live buffer reads as the
model says on both sides.  Forks check what a child may and may not do.

CI runs a bounded number of examples; PYNQ_ALLOC_STATEFUL_EXAMPLES=N runs
more."""
import errno
import gc
import os

import numpy as np
from hypothesis import settings, strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes,
                                 initialize, invariant, precondition, rule)

from helpers import byte_span
from pynq_alloc import allocate, open_memory

EXAMPLES = int(os.environ.get("PYNQ_ALLOC_STATEFUL_EXAMPLES", "25"))


LINE = 64      # the sim's default line_size


class Model:
    """One allocation: the root Buffer and both sides' bytes, and for a
    cacheable one what the CPU last synced of each line."""

    def __init__(self, buf):
        self.buf = buf
        self.cacheable = bool(buf.cacheable)
        self.cpu = np.zeros(buf.nbytes, np.uint8)     # new memory is zeroed
        self.device = self.cpu if not self.cacheable else self.cpu.copy()
        self.synced = self.cpu.copy()

    def span(self, view):
        lo, hi = byte_span(view)
        start = view.device_address - self.buf.device_address + lo
        return start, start + (hi - lo)

    def lines(self, lo, hi):
        """The lines that bytes [lo, hi) touch, as slices of the buffer."""
        return [slice(at, at + LINE)
                for at in range(lo // LINE * LINE, hi, LINE)]

    def write_back(self, line):
        if (self.cpu[line] != self.synced[line]).any():     # dirty
            self.device[line] = self.cpu[line]
            self.synced[line] = self.cpu[line]

    def flush(self, lo, hi):
        for line in self.lines(lo, hi):
            self.write_back(line)

    def invalidate(self, lo, hi):
        """Edge lines cleaned first (dc civac), then every line reloaded."""
        lines = self.lines(lo, hi)
        if lo % LINE:
            self.write_back(lines[0])
        if hi % LINE:
            self.write_back(lines[-1])
        for line in lines:
            self.cpu[line] = self.device[line]
            self.synced[line] = self.device[line]


class MemoryMachine(RuleBasedStateMachine):
    allocations = Bundle("allocations")

    @initialize()
    def open(self):
        # The plain model (coherence tracking off) moves the line model's
        # bytes and reports nothing: the bytes are what is checked here.
        # test_coherence.py checks the reports against a reference.
        self.mem = open_memory("sim", size=4 << 20, coherence="off")
        self.live = []

    @rule(target=allocations, nbytes=st.integers(0, 300_000),
          cacheable=st.booleans())
    def allocate(self, nbytes, cacheable):
        try:
            buf = allocate(nbytes, "u1", target=self.mem, cacheable=cacheable)
        except MemoryError as e:
            assert "bytes free" in str(e)
            return None
        model = Model(buf)
        self.live.append(model)
        return model

    def _view(self, model, data):
        n = model.buf.size
        start = data.draw(st.integers(0, n))
        stop = data.draw(st.integers(start, n))
        step = data.draw(st.sampled_from([1, 1, 2, 3, -1]))
        return model.buf[start:stop:step] if step > 0 else model.buf[stop:start:-1]

    @rule(model=allocations, data=st.data(), value=st.integers(0, 255))
    def cpu_write(self, model, data, value):
        if model is None or model not in self.live:
            return
        view = self._view(model, data)
        view[...] = value
        if view.size:
            offsets = view.device_address - model.buf.device_address + \
                np.arange(view.size) * view.strides[0]
            model.cpu[offsets] = value

    @rule(model=allocations, data=st.data(), to_device=st.booleans())
    def sync(self, model, data, to_device):
        """flush (to the device) or invalidate (from it) a random view."""
        if model is None or model not in self.live:
            return
        view = self._view(model, data)
        if to_device:
            view.flush()
        else:
            view.invalidate()
        if view.size and model.cacheable:
            lo, hi = model.span(view)
            if to_device:
                model.flush(lo, hi)
            else:
                model.invalidate(lo, hi)

    @rule(model=allocations, data=st.data(), value=st.integers(0, 255))
    def device_write(self, model, data, value):
        if model is None or model not in self.live or not model.buf.size:
            return
        n = model.buf.nbytes
        start = data.draw(st.integers(0, n - 1))
        stop = data.draw(st.integers(start + 1, n))
        self.mem.device_write(model.buf.device_address + start,
                              bytes([value]) * (stop - start))
        model.device[start:stop] = value

    @rule(model=consumes(allocations), views=st.integers(0, 2))
    def freebuffer(self, model, views):
        if model is None or model not in self.live:
            return
        kept = [model.buf[i:] for i in range(views)]
        model.buf.freebuffer()
        self.live.remove(model)
        for v in kept:
            assert v.freed and v.device_address is None
            v[...] = 1                              # detached, still safe

    @rule(model=consumes(allocations))
    def drop(self, model):
        if model is None or model not in self.live:
            return
        self.live.remove(model)
        del model.buf
        gc.collect()

    @precondition(lambda self: self.live)
    @rule()
    def fork(self):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for m in self.live:
                    assert (m.buf.view(np.uint8).ravel() == m.cpu).all()
                try:
                    allocate(1, target=self.mem)
                except OSError as e:
                    code = 0 if e.errno == errno.EBUSY else 2
                for m in self.live:
                    m.buf.freebuffer()              # never the parent's
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status

    @invariant()
    def figures_are_exact(self):
        if not hasattr(self, "mem"):
            return
        s = self.mem.stats()
        assert s["buffers"] == len(self.live)
        used = sum(max(4096, -(-m.buf.nbytes // 4096) * 4096) for m in self.live)
        assert s["used"] == used and s["free"] == s["total"] - used

    @invariant()
    def no_two_live_allocations_overlap(self):
        if not hasattr(self, "mem"):
            return
        spans = sorted((m.buf.device_address,
                        m.buf.device_address + max(m.buf.nbytes, 1))
                       for m in self.live)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))

    @invariant()
    def both_sides_read_as_the_model_says(self):
        for m in getattr(self, "live", []):
            assert (m.buf.view(np.uint8).ravel() == m.cpu).all()
            seen = self.mem.device_read(m.buf.device_address, m.buf.nbytes)
            assert seen == m.device.tobytes()


MemoryMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=30, deadline=None)
TestMemoryMachine = MemoryMachine.TestCase

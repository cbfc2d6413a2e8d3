"""Every public function and method documents itself in help(): its
parameters, what it raises, and an example, which runs as written."""
import doctest
import inspect
import pydoc

import numpy as np
import pytest

import pynq_alloc


def public_callables():
    """(name, object) of each function in __all__ and each public method
    of each class in it."""
    for name in pynq_alloc.__all__:
        obj = getattr(pynq_alloc, name)
        if not inspect.isclass(obj):
            yield name, obj
            continue
        for attr, member in vars(obj).items():
            if not attr.startswith("_") and callable(member):
                yield f"{name}.{attr}", getattr(obj, attr)


PUBLIC = dict(public_callables())


def test_the_public_api_is_found():
    assert {"allocate", "default_memory", "open_memory", "trace",
            "memory_map", "Memory.allocate", "Memory.stats",
            "Memory.buffers", "Memory.device_read", "Memory.device_write",
            "Buffer.flush", "Buffer.invalidate", "Buffer.sync_to_device",
            "Buffer.sync_from_device", "Buffer.freebuffer",
            "Buffer.close"} <= set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_help_shows_parameters_exceptions_and_an_example(name):
    obj = PUBLIC[name]
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring"
    shown = pydoc.render_doc(obj, renderer=pydoc.plaintext)
    assert doc.splitlines()[0] in shown and ">>>" in shown
    parameters = [p for p in inspect.signature(obj).parameters
                  if p != "self"]
    missing = [p for p in parameters if p not in doc]
    assert not missing, f"{name}'s docstring does not say what {missing} are"
    assert "aises" in doc, f"{name}'s docstring does not say what it raises"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_examples_run(name):
    globs = {"np": np, **{n: getattr(pynq_alloc, n) for n in pynq_alloc.__all__}}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    for test in doctest.DocTestFinder(recurse=False).find(
            PUBLIC[name], name, globs=globs):
        runner.run(test, out=report.append)
    assert runner.tries > 0, f"{name} has no example"
    assert runner.failures == 0, "".join(report)

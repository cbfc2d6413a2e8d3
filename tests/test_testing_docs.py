"""pynq_alloc.testing documents itself in help() as the package does: each
public class and method says what its parameters are and what it raises,
and shows an example, which runs as written; so does the module."""
import doctest
import inspect
import pydoc

import pytest

import pynq_alloc.testing as testing


def public_callables():
    for name in testing.__all__:
        obj = getattr(testing, name)
        yield name, obj
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member):
                    yield f"{name}.{attr}", getattr(obj, attr)


PUBLIC = dict(public_callables())


def test_the_public_api_is_found():
    assert {"AxiDma", "AxiDma.read", "AxiDma.write", "AxiDma.errors",
            "AxiDma.reset", "AxiDma.pynq_driver", "SimulatedMMIO",
            "SimulatedMMIO.read", "SimulatedMMIO.write",
            "UndefinedBehaviour"} <= set(PUBLIC)


@pytest.mark.parametrize("name", sorted(n for n, o in PUBLIC.items()
                                        if not inspect.isclass(o)
                                        or not issubclass(o, BaseException)))
def test_help_shows_parameters_exceptions_and_an_example(name):
    obj = PUBLIC[name]
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring"
    shown = pydoc.render_doc(obj, renderer=pydoc.plaintext)
    assert doc.splitlines()[0] in shown and ">>>" in shown
    if inspect.isclass(obj):
        if obj is testing.SimulatedMMIO:    # made by AxiDma, not by users
            parameters = []
        else:
            parameters = list(inspect.signature(obj).parameters)
    else:
        parameters = [p for p in inspect.signature(obj).parameters if p != "self"]
    missing = [p for p in parameters if p not in doc]
    assert not missing, f"{name}'s docstring does not say what {missing} are"
    assert "aises" in doc, f"{name}'s docstring does not say what it raises"


@pytest.mark.parametrize("name", ["module"] + sorted(PUBLIC))
def test_examples_run(name):
    obj = testing if name == "module" else PUBLIC[name]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    for test in doctest.DocTestFinder(recurse=False).find(
            obj, name, globs={"AxiDma": testing.AxiDma}):
        runner.run(test, out=report.append)
    if not inspect.isclass(obj) or not issubclass(obj, BaseException):
        assert runner.tries > 0, f"{name} has no example"
    assert runner.failures == 0, "".join(report)


def test_the_undefined_behaviour_error_says_what_it_is():
    assert issubclass(testing.UndefinedBehaviour, Exception)
    assert "PG021" in testing.UndefinedBehaviour.__doc__
    assert testing.UndefinedBehaviour.__module__ == "pynq_alloc.testing"

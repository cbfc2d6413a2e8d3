"""Every public function and method documents itself in help(): its
parameters, what it raises, and an example, which runs as written.  And
the README and the documents under docs/ hold to the code: the API table,
the backends, the memory specs they show, their links, and no citation of
anything that is not in the repository."""
import doctest
import errno
import inspect
import pathlib
import pydoc
import re

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


# ---- The README and docs/ hold to the code ----------------------------------

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md",
                    ROOT / "benchmarks" / "README.md",
                    *(ROOT / "docs").glob("*.md")])


def section(markdown, heading):
    """The text under a '## heading', up to the next '## '."""
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end > 0 else None]


def first_column(table_text):
    return [row.split("|")[1] for row in table_text.splitlines()
            if row.startswith("| ") and not row.startswith("| name")]


def test_the_readme_api_table_has_a_row_for_every_public_name():
    rows = first_column(section(README, "API"))
    names = {m for row in rows for m in re.findall(r"`(?:\w+\.)?(\w+)", row)}
    assert set(pynq_alloc.__all__) - {"Memory", "Buffer"} <= names | {
        n for row in rows for n in re.findall(r"`(\w+)", row)}
    for cls in (pynq_alloc.Buffer, pynq_alloc.Memory):
        public = {a for a in vars(cls) if not a.startswith("_")}
        missing = sorted(a for a in public if f"{a}" not in README)
        assert not missing, f"the README never names {cls.__name__}.{missing}"


def test_the_backend_tables_list_exactly_the_backends():
    from pynq_alloc._open import BACKENDS
    readme_kinds = {re.match(r" `(\w+)`", c).group(1)
                    for c in first_column(section(README, "Backends"))
                    if c.strip() != "kind"}
    assert readme_kinds == set(BACKENDS)
    deep = (ROOT / "docs" / "backends.md").read_text()
    deep_kinds = {re.match(r" `(\w+)`", c).group(1)
                  for c in first_column(section(deep, "The kinds"))
                  if c.strip() != "kind"}
    assert deep_kinds == set(BACKENDS)


def test_the_memory_specs_shown_are_accepted():
    """Each PYNQ_ALLOC_MEMORY=... the documents show names a backend and
    only its options; the simulated ones open."""
    from pynq_alloc._open import BACKENDS
    from pynq_alloc._spec import parse_spec
    shown = {m for doc in DOCUMENTS
             for m in re.findall(r"PYNQ_ALLOC_MEMORY=([\w:=,./]+)", doc.read_text())}
    assert len(shown) >= 5
    for spec in shown:
        kind, options = parse_spec(spec)
        assert kind in BACKENDS, spec
        accepted = inspect.signature(BACKENDS[kind]).parameters
        assert set(options) <= set(accepted), spec
        if kind == "sim":
            try:
                memory = pynq_alloc.open_memory(spec)
            except OSError as e:
                # watch_stores needs Linux 6.7 (the arm64 guest runs 6.1);
                # elsewhere the spec is refused, and the refusal says so.
                assert "watch_stores" in options, spec
                assert e.errno == errno.ENOTSUP, spec
                assert "watch_stores=True cannot be had here" in str(e)
                continue
            assert memory.kind == "sim"


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_link_only_to_files_in_the_repository(doc):
    text = doc.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link.split("#")[0] for link in links
             if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    missing = [link for link in local if not (doc.parent / link).exists()]
    assert not missing, f"{doc.name} links to files that do not exist: {missing}"


# What a file of the repository must not cite: documents that are not in it.
NOT_IN_THE_REPOSITORY = re.compile(
    r"design notes|shared/design|\bthe (audit|brief|issue)\b|\bissues? \d+\b",
    re.IGNORECASE)


def test_nothing_cites_what_is_not_in_the_repository():
    here = pathlib.Path(__file__).resolve()
    files = [p for p in ROOT.rglob("*")
             if p.is_file() and p != here
             and p.suffix in (".md", ".py", ".c", ".h", ".pyi", ".toml", ".in", ".ipynb")
             and not any(part.startswith((".venv", ".git", "build", ".mypy", ".pytest",
                                          ".hypothesis", "__pycache__"))
                         for part in p.relative_to(ROOT).parts)]
    assert len(files) > 50
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in files
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
             if NOT_IN_THE_REPOSITORY.search(line)]
    assert not found, "\n".join(found)

"""Every Python block of README.md runs as pasted, in a fresh interpreter,
and prints what the README shows after it.

A block's kind is marked where a reader sees it, on its first line:
- "# On a board ..." needs a board (and PYNQ): here it is only compiled;
- "# With PYNQ installed ..." runs as a program where PYNQ is installed,
  and is skipped elsewhere (an error with PYNQ_ALLOC_REQUIRE_PYNQ=1, as
  in CI's PYNQ venvs, which run it);
- "# test_<name>.py ..." is a pytest file: saved under that name and run
  by pytest, which must pass, unless an output block follows: then pytest
  must print that block's lines, in order;
- anything else is a program, run by a fresh `python` in a scratch
  directory: it must exit 0 and print what the output block after it
  shows, if one does.

An output block is a ```text block that follows a Python block with only
blank lines between them.  In it, `...` stands for any text (doctest's
ELLIPSIS), and runs of spaces match any whitespace.
"""
import doctest
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ON_A_BOARD = "# On a board"
WITH_PYNQ = "# With PYNQ installed"
PYTEST_FILE = re.compile(r"# (test_\w+\.py)\b")
CHECKER = doctest.OutputChecker()
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


class Block(NamedTuple):
    line: int               # of the opening fence, from 1
    info: str               # the fence's info string: "python", "text", ...
    text: str
    section: str            # the heading it is under
    output: Optional[str]   # the output block after it, if any


def blocks(markdown: str) -> List[Block]:
    """The fenced blocks of a Markdown text, each with its output block."""
    found: List[Block] = []
    lines = markdown.splitlines()
    section, i, last_end = "top", 0, -1
    while i < len(lines):
        line = lines[i]
        if re.match(r"#{1,6} ", line):
            section = line.lstrip("#").strip()
        if line.startswith("```"):
            start, info = i, line[3:].strip()
            i += 1
            body = []
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append(Block(start + 1, info, "\n".join(body) + "\n",
                               section, None))
            # Only blank lines since the block before: this is its output.
            if (info == "text" and len(found) > 1
                    and found[-2].info == "python"
                    and all(not s.strip() for s in lines[last_end + 1:start])):
                found[-2] = found[-2]._replace(output=found[-1].text)
            last_end = i
        i += 1
    return found


PYTHON = [b for b in blocks(README.read_text()) if b.info == "python"]


def slug(block: Block) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", block.section.lower()).strip("-")
    return f"{words}-line-{block.line}"


def environment():
    """A laptop's: the default memory is the simulated one (as it is where
    no board's device is found), nothing traced, output unbuffered so that
    printed lines and warnings come in the order they were made."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYNQ_ALLOC_", "PYTEST_"))}
    env.update(PYNQ_ALLOC_MEMORY="sim", PYTHONUNBUFFERED="1")
    return env


def pynq_installed() -> bool:
    if os.environ.get("PYNQ_ALLOC_REQUIRE_PYNQ") == "1":
        return True
    try:
        import pynq  # noqa: F401
    except ImportError:
        return False
    return True


def matches(want: str, got: str) -> bool:
    return CHECKER.check_output(want, got, FLAGS)


def lines_in_order(want: str, got: str) -> bool:
    """Each line of want matches a line of got, in order."""
    rest = got.splitlines()
    for w in want.splitlines():
        for k, g in enumerate(rest):
            if matches(w + "\n", g + "\n"):
                rest = rest[k + 1:]
                break
        else:
            return False
    return True


def test_the_readme_has_runnable_python_blocks():
    kinds = [b.text.startswith(ON_A_BOARD) for b in PYTHON]
    assert kinds.count(False) >= 4 and kinds.count(True) >= 1, (
        "the README's Python blocks are no longer found as this test expects")


@pytest.mark.parametrize("block", PYTHON, ids=slug)
def test_readme_block_runs_as_pasted(block, tmp_path):
    where = f"README.md line {block.line} ({block.section})"
    compile(block.text, where, "exec")          # every block is Python
    if block.text.startswith(ON_A_BOARD):
        assert block.output is None, f"{where}: output shown for a block not run"
        return
    if block.text.startswith(WITH_PYNQ) and not pynq_installed():
        pytest.skip(f"{where} needs PYNQ")
    name = PYTEST_FILE.match(block.text)
    if name:
        (tmp_path / name.group(1)).write_text(block.text)
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                name.group(1)]
    else:
        (tmp_path / "example.py").write_text(block.text)
        argv = [sys.executable, "example.py"]
    run = subprocess.run(argv, cwd=tmp_path, env=environment(), timeout=300,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    shown = f"{where} printed:\n{run.stdout}"
    if block.output is None:
        assert run.returncode == 0, shown
    elif name:
        assert lines_in_order(block.output, run.stdout), (
            f"{shown}\nwhich lacks, in order, the README's lines:\n{block.output}")
    else:
        assert run.returncode == 0, shown
        assert matches(block.output, run.stdout), (
            f"{shown}\nnot what the README shows:\n{block.output}")


def test_blocks_are_found_with_their_outputs():
    text = ("# T\n## A\n```python\nprint(1)\n```\n\n```text\n1\n```\n"
            "## B\n```python\nx = 1\n```\nsaid between\n```text\nnot its output\n```\n")
    a, out, b, other = blocks(text)
    assert (a.section, a.line, a.output) == ("A", 3, "1\n")
    assert (b.section, b.output, other.info) == ("B", None, "text")


def test_output_lines_are_matched_in_order_with_wildcards():
    got = "collected 1 item\nE   CoherenceError: the device read bytes 0 to 64\n1 failed\n"
    assert lines_in_order("E   CoherenceError: the device read ...\n1 failed", got)
    assert not lines_in_order("1 failed\nE   CoherenceError: ...", got)
    assert not lines_in_order("2 failed", got)


# The README's pytest examples, and the flush each shows left out.
FORGOTTEN_FLUSHES = {"test_scale.py": "    buf.flush()",
                     "test_my_dma.py": "        src.flush()"}


@pytest.mark.parametrize("name", FORGOTTEN_FLUSHES)
def test_a_forgotten_flush_fails_the_readme_test_as_the_readme_shows(
        tmp_path, name):
    """The README's pytest example, without its flush(), fails as the text
    block shown after it (with prose between) says."""
    found = blocks(README.read_text())
    (k,) = [k for k, b in enumerate(found) if b.text.startswith(f"# {name}")]
    example, shown = found[k], found[k + 1]
    assert shown.info == "text" and example.output is None
    flush = FORGOTTEN_FLUSHES[name]
    assert example.text.count(flush + " ") + example.text.count(
        flush + "\n") == 1
    (tmp_path / name).write_text(example.text.replace(
        flush, flush.replace(flush.strip(), "# " + flush.strip())))
    run = subprocess.run([sys.executable, "-m", "pytest", "-p",
                          "no:cacheprovider", name],
                         cwd=tmp_path, env=environment(), timeout=300,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    assert run.returncode == 1, run.stdout
    assert lines_in_order(shown.text, run.stdout), (
        f"pytest printed:\n{run.stdout}\nwhich lacks, in order, the README's "
        f"lines (line {shown.line}):\n{shown.text}")

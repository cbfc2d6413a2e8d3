"""Runs quickstart.ipynb top to bottom in a real Jupyter kernel and checks
what each cell shows.

    python examples/check_quickstart.py --python .venv/bin/python \\
        [--executed OUT.ipynb] [--update]

Run it with a Python that has nbclient (CI makes a venv of its own for
it); --python is the interpreter of the kernel, one with pynq_alloc and
ipykernel installed.  The kernel starts in a scratch directory, so that
it imports the installed pynq_alloc and not the checkout's.

It fails if a cell raises, if a cell's outputs differ from those stored in
the notebook (the outputs a reader sees on the page), or if what the
notebook is there to show is not shown: a loopback that returns what was
sent, a forgotten flush reported as a CoherenceWarning while the device
reads stale bytes, and a memory map drawn as SVG.  --update stores the
new outputs in the notebook instead of comparing them; --executed writes
the executed notebook (for docs/memory_map_screenshot.py).
"""
import argparse
import copy
import json
import os
import re
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "quickstart.ipynb")
KERNEL = "pynq-alloc-quickstart"

# ipykernel names each cell's code /tmp/ipykernel_<pid>/<hash>.py: the pid
# changes from run to run, the rest does not.
KERNEL_PID = re.compile(r"ipykernel_\d+")


def kernel_spec_dir(python, root):
    """A kernel spec under root/kernels that runs ipykernel in `python`."""
    spec = os.path.join(root, "kernels", KERNEL)
    os.makedirs(spec)
    with open(os.path.join(spec, "kernel.json"), "w") as f:
        json.dump({"argv": [os.path.abspath(python), "-m", "ipykernel_launcher",
                            "-f", "{connection_file}"],
                   "display_name": "pynq_alloc", "language": "python"}, f)
    return root


def execute(python):
    """The notebook, executed in a fresh kernel of `python`."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = kernel_spec_dir(python, os.path.join(tmp, "jupyter"))
        work = os.path.join(tmp, "work")
        os.mkdir(work)
        client = NotebookClient(copy.deepcopy(nb), kernel_name=KERNEL,
                                timeout=120, allow_errors=False,
                                resources={"metadata": {"path": work}})
        return client.execute()


def shown(outputs):
    """What a reader sees of a cell's outputs, comparable across runs:
    each stream's text in one piece, each result by MIME type."""
    seen = []
    for o in outputs:
        if o["output_type"] == "stream":
            if seen and seen[-1][0] == o["name"]:
                seen[-1] = (o["name"], seen[-1][1] + o["text"])
            else:
                seen.append((o["name"], o["text"]))
        else:
            seen.append((o["output_type"], dict(o.get("data", {}))))
    return [(kind, KERNEL_PID.sub("ipykernel_N", json.dumps(value, sort_keys=True)))
            for kind, value in seen]


def cells(nb):
    return {c["id"]: c for c in nb.cells if c["cell_type"] == "code"}


def text(cell, stream="stdout"):
    """What the cell printed on one stream."""
    return "".join(o["text"] for o in cell["outputs"]
                   if o["output_type"] == "stream" and o["name"] == stream)


def result(cell, mime="text/plain"):
    """The cell's result (its last expression's value), as `mime`."""
    found = [o["data"][mime] for o in cell["outputs"]
             if o["output_type"] == "execute_result" and mime in o["data"]]
    return found[0] if len(found) == 1 else None


def check_meaning(nb):
    """What the notebook is there to show, whatever its stored outputs."""
    c = cells(nb)
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    expect(result(c["setup"]) == "('sim', '0x10000000', 16777216)",
           f"setup: {result(c['setup'])!r}")
    expect(text(c["allocate"]).split() == [
        "0x10000000", "16384", "False", "True", "0x10001000", "0x10001800"],
        f"allocate: views' addresses: {text(c['allocate'])!r}")
    expect(result(c["loopback"]) == "True", "loopback: dst differs from src")
    warning = text(c["forgotten-flush"], "stderr")
    expect("CoherenceWarning: the device read bytes 0 to 4096 that the CPU "
           "wrote and never flushed" in warning and "Fix: call flush()" in warning
           and "allocated at " in warning,
           f"forgotten flush: no CoherenceWarning naming the bytes, the "
           f"site and the fix: {warning!r}")
    stale = result(c["forgotten-flush"]) or ""
    values = re.findall(r"\d+", stale.partition("dtype")[0])
    expect(stale.startswith("Buffer([") and len(values) == 8
           and values != ["7"] * 8,
           f"forgotten flush: the device did not read stale bytes: {stale!r}")
    expect(text(c["check"]).splitlines() == [
        "['unflushed']", "[7 7 7 7 7 7 7 7] []"],
        f"check: {text(c['check'])!r}")
    html = result(c["memory-map"], "text/html") or ""
    expect("<svg" in html and html.count('class="used') == 11
           and "largest free block" in html,
           "memory map: no SVG with the 11 live buffers and the largest "
           "free block")
    expect(len(text(c["buffers"]).splitlines()) == 4
           and "allocated at " in text(c["buffers"]),
           f"buffers: {text(c['buffers'])!r}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True,
                        help="the kernel's interpreter (with pynq_alloc and ipykernel)")
    parser.add_argument("--executed", help="write the executed notebook here")
    parser.add_argument("--update", action="store_true",
                        help="store the new outputs in the notebook")
    args = parser.parse_args()
    stored = nbformat.read(NOTEBOOK, as_version=4)
    ran = execute(args.python)
    failures = check_meaning(ran)
    if args.update:
        old = cells(stored)
        for cell in ran.cells:
            cell.get("metadata", {}).pop("execution", None)
            # Outputs that differ only in the kernel's pid stay as stored,
            # so that an update changes only what changed.
            before = old.get(cell.get("id"))
            if (before is not None and cell["cell_type"] == "code"
                    and shown(before["outputs"]) == shown(cell["outputs"])):
                cell["outputs"] = before["outputs"]
        nbformat.write(ran, NOTEBOOK)
    else:
        old, new = cells(stored), cells(ran)
        for cid in new:
            a, b = shown(old[cid]["outputs"]), shown(new[cid]["outputs"])
            if a != b:
                failures.append(f"cell {cid!r}: its outputs differ from those "
                                f"stored in the notebook (rerun with --update "
                                f"if the change is meant):\n  stored: {a}\n"
                                f"  now:    {b}")
    if args.executed:
        nbformat.write(ran, args.executed)
    for f in failures:
        print(f"quickstart.ipynb: {f}", file=sys.stderr)
    print(f"quickstart.ipynb: {len(ran.cells)} cells run in a {args.python} "
          f"kernel, {len(failures)} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

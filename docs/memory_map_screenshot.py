"""Makes docs/memory-map.png, the README's picture of a memory map, from
the executed example notebook, and checks the picture.

    python examples/check_quickstart.py --python .venv/bin/python \\
        --executed /tmp/quickstart.ipynb
    python docs/memory_map_screenshot.py /tmp/quickstart.ipynb \\
        [--output docs/memory-map.png] [--compare docs/memory-map.png]

Run it with a Python that has nbconvert and Pillow (CI's notebook venv).
The output of the notebook's "memory-map" cell, the HTML and SVG that
Jupyter displays, becomes a page through nbconvert's JupyterLab template
(Jupyter's own styles), which headless Chromium (Debian's `chromium`)
renders; the picture is cropped to what the page shows.

The picture is then checked: its size; that it is not blank; that the
bar's pixels say what the SVG says (the share of the bar drawn as used
matches the bytes used, the largest free block's green outline is there);
and, with --compare, that an earlier picture (the committed one) draws the
same bar, so that the README shows what the notebook shows.
"""
import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile

import nbformat
from nbconvert import HTMLExporter
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CELL = "memory-map"
WIDTH = 900                 # a notebook's output column, in CSS pixels
MAX_HEIGHT = 400            # rendered, then cropped to what is drawn
MARGIN = 8                  # white kept around what is drawn, in pixels
USED = (0x3B, 0x6F, 0xB6)   # the SVG's colours (pynq_alloc/_memory_map.py)
FREE = (0xE4, 0xE7, 0xEB)
LARGEST = (0x1E, 0x8C, 0x45)


def page(executed):
    """The memory-map cell's output as a page of Jupyter's own styles."""
    nb = nbformat.read(executed, as_version=4)
    (cell,) = [c for c in nb.cells if c.get("id") == CELL]
    if not any("text/html" in o.get("data", {}) for o in cell.outputs):
        raise SystemExit(f"{executed}: cell {CELL!r} shows no HTML: was the "
                         "notebook executed?")
    one = copy.deepcopy(nb)
    one.cells = [cell]
    exporter = HTMLExporter(template_name="lab", exclude_input=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(one)
    return body, "".join(o["data"]["text/html"] for o in cell.outputs
                         if "text/html" in o.get("data", {}))


def render(html, png):
    """Headless Chromium's picture of the page, cropped to what it draws."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "map.html")
        with open(path, "w") as f:
            f.write(html)
        shot = os.path.join(tmp, "shot.png")
        subprocess.run(["chromium", "--headless", "--no-sandbox",
                        "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={WIDTH},{MAX_HEIGHT}",
                        f"--screenshot={shot}", f"file://{path}"],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        image = Image.open(shot).convert("RGB")
    box = drawn(image)
    if box is None:
        raise SystemExit("the rendered page is blank")
    top, bottom = max(box[1] - MARGIN, 0), min(box[3] + MARGIN, image.height)
    image.crop((0, top, image.width, bottom)).save(png, optimize=True)


def drawn(image):
    """The box around everything that is not the page's white, or None."""
    background = Image.new("RGB", image.size, (255, 255, 255))
    from PIL import ImageChops
    return ImageChops.difference(image, background).getbbox()


def near(pixel, colour, tolerance=24):
    return all(abs(p - c) <= tolerance for p, c in zip(pixel, colour))


def bar_row(image):
    """The classes of the pixels along the bar's middle row: 'u' used,
    'f' free, 'o' anything else (outlines, borders).  The bar is the row
    with the most used and free pixels."""
    best, best_count = None, -1
    for y in range(image.height):
        row = [image.getpixel((x, y)) for x in range(image.width)]
        classes = "".join("u" if near(p, USED) else "f" if near(p, FREE)
                          else "o" for p in row)
        count = classes.count("u") + classes.count("f")
        if count > best_count:
            best, best_count = classes, count
    return best


def used_share(html):
    """The share of the pool that the SVG draws as used, from its blocks'
    data-start/data-end."""
    spans = re.findall(r'<rect class="(used|free)[^"]*"[^>]*data-start="(0x[0-9a-f]+)" '
                       r'data-end="(0x[0-9a-f]+)"', html)
    total = sum(int(e, 16) - int(s, 16) for _, s, e in spans)
    used = sum(int(e, 16) - int(s, 16) for k, s, e in spans if k == "used")
    return used / total


def check(png, html, compare=None):
    """What is wrong with the picture (empty if nothing)."""
    image = Image.open(png).convert("RGB")
    problems = []
    if image.width != WIDTH or not 60 <= image.height <= MAX_HEIGHT - 2 * MARGIN:
        problems.append(f"{png} is {image.width}x{image.height}: expected "
                        f"{WIDTH} wide and 60 to {MAX_HEIGHT - 2 * MARGIN} high")
    colours = image.getcolors(maxcolors=1 << 16) or []
    if len(colours) < 8:
        problems.append(f"{png} is nearly blank: {len(colours)} colours")
    row = bar_row(image)
    bar = row.strip("o")
    drawn_used = bar.count("u") / max(bar.count("u") + bar.count("f"), 1)
    want = used_share(html)
    if len(bar) < WIDTH // 2 or abs(drawn_used - want) > 0.03:
        problems.append(f"{png}: the bar is {len(bar)} pixels wide and draws "
                        f"{drawn_used:.1%} of it as used; the SVG says "
                        f"{want:.1%} of the pool is used")
    green = sum(n for n, c in colours if near(c, LARGEST, 40))
    if green < 100:
        problems.append(f"{png}: the largest free block's green outline and "
                        f"label are missing ({green} green pixels)")
    if compare is not None:
        other = Image.open(compare).convert("RGB")
        theirs = bar_row(other)
        differ = sum(a != b for a, b in zip(row, theirs)) + abs(len(row) - len(theirs))
        if other.size != image.size or differ > WIDTH // 100:
            problems.append(
                f"{compare} ({other.width}x{other.height}) does not draw the "
                f"bar that the notebook's map draws now ({image.width}x"
                f"{image.height}, {differ} pixels of the bar differ): "
                f"regenerate it with this script's --output")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("executed", help="the executed quickstart notebook")
    parser.add_argument("--output", default=os.path.join(HERE, "memory-map.png"))
    parser.add_argument("--compare", help="a picture that must draw the same bar")
    args = parser.parse_args()
    html, svg_html = page(args.executed)
    render(html, args.output)
    problems = check(args.output, svg_html, args.compare)
    for p in problems:
        print(p, file=sys.stderr)
    size = Image.open(args.output).size
    print(f"{args.output}: {size[0]}x{size[1]} rendered by headless Chromium "
          f"from cell {CELL!r} of {args.executed}; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

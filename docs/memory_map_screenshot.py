"""Makes docs/memory-map.png: Memory._repr_html_ of a fragmented simulated
pool, as Jupyter shows it, rendered by headless Chromium (Debian's
`chromium` package).

    python docs/memory_map_screenshot.py      (with pynq_alloc installed)
"""
import os
import subprocess
import tempfile

import numpy as np

from pynq_alloc import open_memory

HERE = os.path.dirname(os.path.abspath(__file__))


def fragmented_pool():
    """24 buffers of 256 KiB to 4 MiB in 64 MiB, a third of them freed."""
    mem = open_memory("sim", size=64 << 20, base_address=0x1000_0000)
    rng = np.random.default_rng(7)
    bufs = [mem.allocate(int(n), "u1")
            for n in rng.integers(256 << 10, 4 << 20, 24)]
    for b in bufs[1::3] + bufs[2::5]:
        b.freebuffer()
    return mem, bufs


def main():
    mem, _ = fragmented_pool()
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "map.html")
        with open(page, "w") as f:
            f.write('<!doctype html><body style="margin:12px;font-family:'
                    f'sans-serif;font-size:14px">{mem._repr_html_()}</body>')
        subprocess.run(["chromium", "--headless", "--no-sandbox",
                        "--disable-gpu", "--hide-scrollbars",
                        "--window-size=800,118",
                        f"--screenshot={os.path.join(HERE, 'memory-map.png')}",
                        f"file://{page}"], check=True,
                       stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()

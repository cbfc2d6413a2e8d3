"""Declares the C extension; everything else is in pyproject.toml.

PYNQ_ALLOC_WERROR=1 makes warnings errors, as CI and development builds
want; a user's `pip install` leaves it off, so that a newer compiler's new
warning cannot break an install on a board.
"""
import glob
import os
import sys

if sys.version_info < (3, 8):
    # Before numpy is imported: pip would otherwise report a missing numpy.
    sys.exit("pynq_alloc needs Python 3.8 or later (PYNQ 2.7 images and "
             "later); this is Python %d.%d." % sys.version_info[:2])

import numpy
import setuptools
from setuptools import Extension, setup

# The product's sources by name, so that a benchmark or test file put in
# src/ is never compiled into it by accident (tests/test_packaging.py
# holds this list and src/ to each other).
core = [
    "src/core/cache.c",
    "src/core/hazard.c",
    "src/core/heap.c",
    "src/core/hugepage.c",
    "src/core/memory.c",
    "src/core/sim.c",
    "src/core/sim_lines.c",
    "src/core/sim_stores.c",
    "src/core/sys.c",
    "src/core/udmabuf.c",
    "src/core/window.c",
    "src/core/xlnk.c",
    "src/core/xrt.c",
    "src/core/zocl.c",
]
glue = [
    "src/python/allocate.c",
    "src/python/allocation.c",
    "src/python/buffer.c",
    "src/python/coherence.c",
    "src/python/errors.c",
    "src/python/foreign.c",
    "src/python/inventory.c",
    "src/python/memory_object.c",
    "src/python/module.c",
    "src/python/open_backends.c",
    "src/python/package.c",
    "src/python/targets.c",
    "src/python/tracing.c",
]
headers = sorted(glob.glob("src/core/*.h") + glob.glob("src/python/*.h"))
werror = os.environ.get("PYNQ_ALLOC_WERROR", "") not in ("", "0")
# The SPDX license as PEP 639's License-Expression needs setuptools 77,
# which needs Python 3.9; a Python 3.8 board builds with an older one,
# which takes the same text as License.
if int(setuptools.__version__.split(".")[0]) >= 77:
    license_metadata = {"license_expression": "BSD-3-Clause"}
else:
    license_metadata = {"license": "BSD-3-Clause"}

setup(
    **license_metadata,
    ext_modules=[
        Extension(
            "pynq_alloc._core",
            sources=core + glue,
            depends=headers,        # rebuild when a header changes
            include_dirs=["src/core", numpy.get_include()],
            define_macros=[
                # Built against numpy 2, one build runs on numpy 1.20 and
                # later (numpy 2.4 targets 1.23 unless told).  Built against
                # numpy 1.x (Python 3.8, or a board's numpy with
                # --no-build-isolation), it runs on numpy 1.x only, from
                # that version on (from 1.20 with 1.25's headers and later,
                # the first to read NPY_TARGET_VERSION).
                ("NPY_TARGET_VERSION", "NPY_1_20_API_VERSION"),
                # No deprecated API, in numpy's words for it: later
                # versions' names are not defined in older headers.
                ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                ("_GNU_SOURCE", None),
                # 64-bit off_t on 32-bit ARM: DRM mmap offsets pass 2 GiB.
                ("_FILE_OFFSET_BITS", "64"),
            ],
            libraries=["dl"],       # dlopen, for the xlnk backend
            extra_compile_args=[
                "-std=c11", "-O2", "-Wall", "-Wextra",
                "-Wno-unused-parameter", "-Wno-missing-field-initializers",
                "-fvisibility=hidden",
            ] + (["-Werror"] if werror else []),
        )
    ],
)

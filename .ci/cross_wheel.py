"""One wheel of pynq_alloc for a board's CPU, cross-compiled on x86-64
(.ci/build-wheels runs this once per Python version and CPU).

    cross_wheel.py SOURCE HOST_WHEEL PYTHON ARCH NUMPY_INCLUDE OUT

SOURCE is the unpacked sdist; HOST_WHEEL the wheel that PYTHON (an
x86-64 interpreter of the wheel's Python version) built from it; ARCH
aarch64, armv7l or x86_64 (the route checked on this machine);
NUMPY_INCLUDE numpy's headers for that Python (from numpy's aarch64 wheel
of the version the build asks for).  The wheel
written to OUT is HOST_WHEEL with its extension compiled again for ARCH:
everything else in it (Python files, metadata, entry points) is the same
for every CPU, and comes from the project's own build as is.

The extension is compiled as setup.py declares it (its Extension is read
from it, not restated here), by zig's clang against the oldest glibc the
C code can use, so that auditwheel can give the wheel a low manylinux tag.
Python's headers are PYTHON's own; of them only pyconfig.h depends on the
CPU, and of that only what configure measured about the compiler's types
(sizes, alignments, a few properties): those are measured again here for
ARCH, by the target compiler, and written into a copy.  numpy's
_numpyconfig.h is redone the same way.  A probe compiled for ARCH then
checks every size that either header states against the compiler.  (Made
so from Debian 12's amd64 headers, the pyconfig.h of Python 3.11 and the
_numpyconfig.h of numpy 1.24 and 2.2 came out byte for byte as Debian's
own arm64 and armhf builds have them.)
"""
import base64
import concurrent.futures
import hashlib
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import zipfile

from elftools.elf.elffile import ELFFile

# memfd_create (src/core/sys.c) first came in glibc 2.27: no older glibc
# links this code.  Every PYNQ image has 2.31 or later.
GLIBC = "2.27"

# ARCH -> (zig's target triple, Debian's multiarch name used in extension
# file names, wheel platform tag, CPU flags, CPython's support tier as its
# configure gives it in pyconfig.h from 3.11 on: no header reads it, but
# the copy then says what Python itself says there).  armv7l: Debian
# armhf's baseline (ARMv7-A, Thumb-2, VFPv3-D16, no NEON), which
# Zynq-7000's Cortex-A9 and every later armv7l CPU runs; aarch64: plain
# ARMv8-A.
TARGETS = {
    "aarch64": ("aarch64-linux-gnu", "aarch64-linux-gnu", "linux_aarch64", [], 2),
    # The route itself, checked on this machine's Pythons.
    "x86_64": ("x86_64-linux-gnu", "x86_64-linux-gnu", "linux_x86_64", [], 1),
    "armv7l": ("arm-linux-gnueabihf", "arm-linux-gnueabihf", "linux_armv7l",
               ["-mcpu=generic+v7a+vfp3d16-neon-d32"], 0),
}

# What CPython's configure measures about types, as pyconfig.h names it,
# and numpy's build likewise for _numpyconfig.h: NAME -> C expression.
PYCONFIG_SIZES = {
    "SIZEOF_DOUBLE": "sizeof(double)", "SIZEOF_FLOAT": "sizeof(float)",
    "SIZEOF_FPOS_T": "sizeof(fpos_t)", "SIZEOF_INT": "sizeof(int)",
    "SIZEOF_LONG": "sizeof(long)", "SIZEOF_LONG_DOUBLE": "sizeof(long double)",
    "SIZEOF_LONG_LONG": "sizeof(long long)", "SIZEOF_OFF_T": "sizeof(off_t)",
    "SIZEOF_PID_T": "sizeof(pid_t)", "SIZEOF_PTHREAD_KEY_T": "sizeof(pthread_key_t)",
    "SIZEOF_PTHREAD_T": "sizeof(pthread_t)", "SIZEOF_SHORT": "sizeof(short)",
    "SIZEOF_SIZE_T": "sizeof(size_t)", "SIZEOF_TIME_T": "sizeof(time_t)",
    "SIZEOF_UINTPTR_T": "sizeof(uintptr_t)", "SIZEOF_VOID_P": "sizeof(void *)",
    "SIZEOF_WCHAR_T": "sizeof(wchar_t)", "SIZEOF__BOOL": "sizeof(_Bool)",
    "ALIGNOF_LONG": "_Alignof(long)", "ALIGNOF_SIZE_T": "_Alignof(size_t)",
    "ALIGNOF_MAX_ALIGN_T": "_Alignof(max_align_t)",
}
# Defined or not: configure's own tests, as the compiler answers them (a
# condition of the preprocessor where it starts with "#if").
PYCONFIG_FLAGS = {
    "HAVE_GCC_UINT128_T": "#if defined(__SIZEOF_INT128__)",
    # off_t wider than long, as configure's test says it.
    "HAVE_LARGEFILE_SUPPORT": "sizeof(off_t) > sizeof(long) && sizeof(long long) >= sizeof(off_t)",
    # wchar_t usable as Py_UNICODE: at least 2 bytes and unsigned.
    "HAVE_USABLE_WCHAR_T": "sizeof(wchar_t) >= 2 && (wchar_t)-1 > 0",
    # Python 3.8's Python.h includes <crypt.h> where this is defined: a
    # header of libcrypt, which zig's glibc does not ship (nothing of it
    # is used here).
    "HAVE_CRYPT_H": "#if __has_include(<crypt.h>)",
    # x87 and x86-64 inline assembly: x86 only.
    "HAVE_GCC_ASM_FOR_X64": "#if defined(__x86_64__)",
    "HAVE_GCC_ASM_FOR_X87": "#if defined(__i386__) || defined(__x86_64__)",
}
NUMPY_SIZES = {
    "NPY_SIZEOF_SHORT": "sizeof(short)", "NPY_SIZEOF_INT": "sizeof(int)",
    "NPY_SIZEOF_LONG": "sizeof(long)", "NPY_SIZEOF_FLOAT": "sizeof(float)",
    "NPY_SIZEOF_COMPLEX_FLOAT": "2 * sizeof(float)",
    "NPY_SIZEOF_DOUBLE": "sizeof(double)",
    "NPY_SIZEOF_COMPLEX_DOUBLE": "2 * sizeof(double)",
    "NPY_SIZEOF_LONGDOUBLE": "sizeof(long double)",
    "NPY_SIZEOF_COMPLEX_LONGDOUBLE": "2 * sizeof(long double)",
    "NPY_SIZEOF_PY_INTPTR_T": "sizeof(intptr_t)",
    "NPY_SIZEOF_INTP": "sizeof(intptr_t)", "NPY_SIZEOF_UINTP": "sizeof(uintptr_t)",
    "NPY_SIZEOF_WCHAR_T": "sizeof(wchar_t)", "NPY_SIZEOF_OFF_T": "sizeof(off_t)",
    "NPY_SIZEOF_PY_LONG_LONG": "sizeof(long long)",
    "NPY_SIZEOF_LONGLONG": "sizeof(long long)",
}
PROBE_HEADERS = ("stddef.h", "stdint.h", "stdio.h", "time.h", "pthread.h",
                 "wchar.h", "sys/types.h")


def zig_cc(arch):
    triple, _, _, cpu, _ = TARGETS[arch]
    return [sys.executable, "-m", "ziglang", "cc", "-target", f"{triple}.{GLIBC}"] + cpu


def run(cmd, **kwargs):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def measure(arch, config_dir, expressions, work):
    """{NAME: value} of each C expression, computed by the target
    compiler: each is the size of an array in an object file compiled for
    ARCH after config_dir's pyconfig.h (whose _FILE_OFFSET_BITS and like
    decide off_t and fpos_t, as for Python itself), read from its symbol
    table; nothing runs on the target."""
    source = os.path.join(work, "measure.c")
    with open(source, "w") as f:
        f.write('#include "pyconfig.h"\n')
        f.writelines(f"#include <{h}>\n" for h in PROBE_HEADERS)
        for name, expression in expressions.items():
            # 1 + the value, so that a value of 0 (a false test) is an
            # array of size 1.
            if expression.startswith("#if "):
                f.write(f"{expression}\nchar pa_measure_{name}[2];\n"
                        f"#else\nchar pa_measure_{name}[1];\n#endif\n")
            else:
                f.write(f"char pa_measure_{name}[1 + ({expression})];\n")
    obj = source[:-2] + ".o"
    run(zig_cc(arch) + ["-std=c11", "-fno-common", "-I", config_dir, "-c", source, "-o", obj])
    with open(obj, "rb") as f:
        symbols = ELFFile(f).get_section_by_name(".symtab")
        found = {s.name[len("pa_measure_"):]: s["st_size"] - 1
                 for s in symbols.iter_symbols() if s.name.startswith("pa_measure_")}
    assert set(found) == set(expressions), (sorted(found), sorted(expressions))
    return found


def set_defines(text, values, flags=()):
    """text with each #define NAME <number> of values given that value,
    and each NAME of flags defined as 1 or left undefined as values say.
    A name the header does not have is left out (a version without it),
    and so is one defined as another macro (numpy 1's NPY_SIZEOF_INT is
    pyconfig.h's SIZEOF_INT, itself measured)."""
    for name, value in values.items():
        text, n = re.subn(rf"^#define {name} \d+$", f"#define {name} {value}", text, flags=re.M)
        assert n <= 1, name
    for name in flags:
        line = f"#define {name} 1" if values[name] else f"/* #undef {name} */"
        text = re.sub(rf"^(#define {name} .*|/\* #undef {name} \*/)$", line, text, flags=re.M)
    return text


def python_headers(python, arch, work):
    """A copy of PYTHON's include directory with pyconfig.h made ARCH's."""
    include = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    staged = os.path.join(work, "python-include")
    shutil.copytree(include, staged)
    pyconfig = os.path.join(staged, "pyconfig.h")
    with open(pyconfig) as f:
        text = f.read()
    measured = measure(arch, include, {**PYCONFIG_SIZES, **PYCONFIG_FLAGS}, work)
    sizes = {k: v for k, v in measured.items() if k in PYCONFIG_SIZES}
    flags = {k: v for k, v in measured.items() if k in PYCONFIG_FLAGS}
    text = set_defines(text, {**sizes, **flags, "PY_SUPPORT_TIER": TARGETS[arch][4]},
                       flags=flags)
    with open(pyconfig, "w") as f:
        f.write(text)
    return staged


def numpy_headers(numpy_include, python_include, arch, work):
    """A copy of numpy's headers with _numpyconfig.h made ARCH's."""
    staged = os.path.join(work, "numpy-include")
    shutil.copytree(numpy_include, staged)
    config = os.path.join(staged, "numpy", "_numpyconfig.h")
    with open(config) as f:
        text = f.read()
    text = set_defines(text, measure(arch, python_include, NUMPY_SIZES, work))
    with open(config, "w") as f:
        f.write(text)
    return staged


def check_sizes(arch, python_include, numpy_include, work):
    """Compiles, for ARCH, a static assertion of every size and alignment
    that the two headers state: a value this script did not measure, or
    measured wrong, fails the build here rather than on a board."""
    names = []
    for header in (os.path.join(python_include, "pyconfig.h"),
                   os.path.join(numpy_include, "numpy", "_numpyconfig.h")):
        with open(header) as f:
            names += re.findall(r"^#define ((?:NPY_)?(?:SIZEOF|ALIGNOF)_\w+) \d+$", f.read(), re.M)
    exprs = {**PYCONFIG_SIZES, **NUMPY_SIZES}
    unknown = [n for n in names if n not in exprs]
    assert not unknown, f"sizes this script does not know how to measure: {unknown}"
    source = os.path.join(work, "check.c")
    with open(source, "w") as f:
        f.write('#include "Python.h"\n#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION\n'
                '#include "numpy/arrayobject.h"\n')
        f.writelines(f"#include <{h}>\n" for h in PROBE_HEADERS)
        f.writelines(f'_Static_assert({n} == {exprs[n]}, "{n}");\n' for n in names)
    run(zig_cc(arch) + ["-std=c11", "-I", python_include, "-I", numpy_include,
                        "-c", source, "-o", source[:-2] + ".o"])
    print(f"checked {len(names)} sizes and alignments for {arch}")


def declared_extension(source):
    """setup.py's one Extension, as setup.py makes it (run with setup()
    replaced), and the numpy include directory it named."""
    import numpy
    import setuptools
    declared = {}
    setuptools.setup = lambda **kwargs: declared.update(kwargs)
    cwd = os.getcwd()
    os.chdir(source)
    try:
        runpy.run_path("setup.py", run_name="__main__")
    finally:
        os.chdir(cwd)
    (extension,) = declared["ext_modules"]
    return extension, numpy.get_include()


def build_extension(source, python, arch, numpy_include, work):
    """The extension compiled and linked for ARCH: (its path, its path in
    the wheel)."""
    extension, host_numpy = declared_extension(source)
    py_include = python_headers(python, arch, work)
    np_include = numpy_headers(numpy_include, py_include, arch, work)
    check_sizes(arch, py_include, np_include, work)
    includes = [np_include if d == host_numpy else os.path.join(source, d)
                for d in extension.include_dirs] + [py_include]
    assert np_include in includes, extension.include_dirs
    macros = [f"-D{n}" if v is None else f"-D{n}={v}" for n, v in extension.define_macros]
    # What setuptools adds from Python's own build flags that matters here
    # (asserts off, wrapping signed overflow), position-independent code,
    # no debug information and none of zig's sanitizers.  clang, unlike
    # gcc, warns of a static function used only in assert(): such
    # functions are meant, so that one warning is off.
    flags = ["-fPIC", "-DNDEBUG", "-fwrapv", "-g0", "-fno-sanitize=all"]
    quiet = ["-Wno-unneeded-internal-declaration"]    # after -Wall
    objects = [os.path.join(work, f"{i:02d}-{os.path.basename(c)[:-2]}.o")
               for i, c in enumerate(extension.sources)]
    commands = [zig_cc(arch) + flags + macros + [f"-I{d}" for d in includes]
                + extension.extra_compile_args + quiet
                + ["-c", os.path.join(source, c), "-o", obj]
                for c, obj in zip(extension.sources, objects)]
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(run, commands))       # list(): a failure raises here
    version = subprocess.run(
        [python, "-c", "import sys; print('%d%d' % sys.version_info[:2])"],
        check=True, capture_output=True, text=True).stdout.strip()
    multiarch = TARGETS[arch][1]
    inner = extension.name.replace(".", "/") + f".cpython-{version}-{multiarch}.so"
    built = os.path.join(work, os.path.basename(inner))
    run(zig_cc(arch) + ["-shared", "-s", "-o", built] + objects
        + [f"-l{lib}" for lib in extension.libraries])
    return built, inner, version, extension.name


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"{name},sha256={digest.decode()},{len(data)}\n"


def cross_wheel(host_wheel, built, inner, version, module, arch, out):
    """HOST_WHEEL with its extension replaced by BUILT (at INNER) and its
    tags those of ARCH, written into OUT; its path."""
    tag = f"cp{version}-cp{version}-{TARGETS[arch][2]}"
    name, ver = os.path.basename(host_wheel).split("-")[:2]
    target = os.path.join(out, f"{name}-{ver}-{tag}.whl")
    host_ext = re.compile(re.escape(module.replace(".", "/")) + r"\..*\.so$")
    replaced = 0
    records = []
    with zipfile.ZipFile(host_wheel) as src, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            name = item.filename
            if name.endswith(".dist-info/RECORD"):
                record = name
                continue
            data = src.read(item)
            if host_ext.match(name):
                replaced += 1
                name = inner
                with open(built, "rb") as f:
                    data = f.read()
            elif name.endswith(".dist-info/WHEEL"):
                text = data.decode()
                assert "Root-Is-Purelib: false" in text, text
                # Header lines, then a blank line: the tag goes among them.
                text = re.sub(r"^Tag: .*\n", "", text, flags=re.M).rstrip("\n")
                text += f"\nTag: {tag}\n\n"
                data = text.encode()
            info = zipfile.ZipInfo(name, item.date_time)
            info.external_attr = item.external_attr
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
            records.append(record_line(name, data))
        dst.writestr(record, "".join(records) + f"{record},,\n")
    assert replaced == 1, f"{host_wheel}: {replaced} extensions named {module}"
    return target


def main():
    source, host_wheel, python, arch, numpy_include, out = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix=f"cross-{arch}-") as work:
        built, inner, version, module = build_extension(
            os.path.abspath(source), python, arch, numpy_include, work)
        print(cross_wheel(host_wheel, built, inner, version, module, arch, out))


if __name__ == "__main__":
    main()

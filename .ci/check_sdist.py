"""CI: the sdist holds every tracked file that the build, the tests and the
docs need, and nothing git does not track (no build outputs).

    python3 .ci/check_sdist.py dist/pynq_alloc-X.tar.gz   (from the checkout)
"""
import subprocess
import sys
import tarfile

# Tracked files the sdist must carry: the sources, the build files and
# what goes with the sources (tests, benchmark, docs).
NEEDED_DIRS = ("src/", "pynq_alloc/", "tests/", "benchmarks/", "docs/")
NEEDED_FILES = {"setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE",
                "pytest_pynq_alloc.py"}
# What setuptools writes into every sdist.
GENERATED = ("PKG-INFO", "setup.cfg", "pynq_alloc.egg-info/")


def main(sdist: str) -> int:
    with tarfile.open(sdist) as t:
        files = {m.name.split("/", 1)[1] for m in t.getmembers() if m.isfile()}
    tracked = set(subprocess.check_output(["git", "ls-files"], text=True).split())
    needed = {f for f in tracked
              if f.startswith(NEEDED_DIRS) or f in NEEDED_FILES}
    missing = sorted(needed - files)
    extra = sorted(f for f in files - tracked if not f.startswith(GENERATED))
    for f in missing:
        print(f"missing from the sdist: {f}")
    for f in extra:
        print(f"in the sdist but not tracked by git: {f}")
    print(f"{sdist}: {len(files)} files, {len(missing)} missing, "
          f"{len(extra)} untracked")
    return 1 if missing or extra else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""The memory spec, and option text turned into values.

A spec names a backend and its options, as `open_memory()` takes them or
as the PYNQ_ALLOC_MEMORY variable spells them: ``sim``,
``sim:size=64M,base_address=0x10000000``.  Options from a spec are text;
the functions here turn text into the ints and bools the openers pass on.
Whether a value is allowed (a size the page size divides, a bank that
exists) is the core's rule, checked in C, not here.
"""
from __future__ import annotations

import operator
import os
import re
from typing import Any, Dict, Optional, Tuple

import numpy as np

ENV_VAR = "PYNQ_ALLOC_MEMORY"

_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """'kind:key=value,key=value' -> (kind, {key: value})."""
    kind, _, rest = spec.strip().partition(":")
    options: Dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad option {item!r} in memory spec {spec!r}: "
                             "expected key=value")
        options[key.strip()] = value.strip()
    return kind.strip(), options


# How sizes and addresses may be written, for the messages that refuse one.
SIZE_FORMS = ("a whole number of bytes (4096, 0x1000, 1_048_576), or one "
              "with a suffix K, M, G or T for KiB, MiB, GiB or TiB (64K, 64M, 1G)")
# '64MB', '64 MiB': the suffix that was meant, followed by B or iB.
_UNIT_TYPO = re.compile(r"\s*(\d+)\s*([KMGT])I?B\s*", re.IGNORECASE)


def parse_size(text: str, name: Optional[str] = None) -> int:
    """An int from '4096', '0x1000', '64M' or '1G' (powers of 1024).
    ValueError naming the option (name), the text and the accepted forms."""
    t = text.strip().replace("_", "")
    scale = 1
    if t[-1:].upper() in _SUFFIXES and not t.lower().startswith("0x"):
        scale = _SUFFIXES[t[-1].upper()]
        t = t[:-1]
    try:
        return int(t, 0) * scale
    except ValueError:
        pass
    typo = _UNIT_TYPO.fullmatch(text)
    hint = (f"; did you mean '{typo.group(1)}{typo.group(2).upper()}'?"
            if typo else "")
    what = f"{name} " if name else ""
    raise ValueError(f"{what}{text!r} is not a size or address: write "
                     f"{SIZE_FORMS}{hint}") from None


def number(name: str, value: Any) -> int:
    """A size or address option: an int, or text as parse_size reads it,
    from 0 to 2**64 - 1.  ValueError naming the value otherwise (floats
    and bools included: 4096.7 bytes is a mistake, not 4096)."""
    if isinstance(value, str):
        n = parse_size(value, name)
    elif isinstance(value, bool):
        raise ValueError(f"{name} must be a number of bytes, not {value!r}")
    else:
        try:
            n = operator.index(value)
        except TypeError:
            raise ValueError(f"{name} must be {SIZE_FORMS}; got {value!r}") from None
    # Python ints have no width: the 64 bits are where text becomes a value.
    if not 0 <= n < 1 << 64:
        raise ValueError(f"{name} must be from 0 to 2**64 - 1; got {value!r}"
                         + (f" = {n}" if isinstance(value, str) else ""))
    return n


# An option that is on or off, as text (a spec's, or PYNQ_ALLOC_MEMORY's).
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def as_bool(name: str, value: Any) -> bool:
    """A flag given as a value: a bool, a numpy bool, or the ints 0 and 1
    (as PYNQ passes them).  Anything else would be taken by its truth, so
    that cacheable='False' meant True: a TypeError naming its type (a
    ValueError for another int)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        if value in (0, 1):
            return bool(value)
        raise ValueError(f"{name} must be True or False (or 1 or 0), "
                         f"not {value!r}")
    raise TypeError(f"{name} must be a bool (True or False, or 1 or 0), "
                    f"not {type(value).__name__}")


def flag(name: str, value: Any) -> bool:
    """An option that is on or off: as as_bool() takes it, or text
    ('1', 'true', 'yes', 'on' and '0', 'false', 'no', 'off', in any case),
    since options in a spec are text.  ValueError for other text."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _ON or text in _OFF:
            return text in _ON
        raise ValueError(f"{name} must be on or off ({', '.join(_ON)}; "
                         f"{', '.join(_OFF)}); got {value!r}")
    return as_bool(name, value)


def path(name: str, value: Any) -> str:
    """A path option (a device node, a sysfs file, a library), given as
    str, bytes or os.PathLike, as a str (bytes decoded as os.fsdecode()
    does, so that they encode back to the same bytes); TypeError naming
    the option for anything else."""
    try:
        return os.fsdecode(value)
    except TypeError:
        raise TypeError(f"{name} must be a path (str, bytes or os.PathLike), "
                        f"not {type(value).__name__}") from None

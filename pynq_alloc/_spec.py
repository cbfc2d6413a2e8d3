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
from typing import Any, Dict, Tuple

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


def parse_size(text: str) -> int:
    """An int from '4096', '0x1000', '64M' or '1G' (powers of 1024)."""
    t = text.strip().replace("_", "")
    scale = 1
    if t[-1:].upper() in _SUFFIXES and not t.lower().startswith("0x"):
        scale = _SUFFIXES[t[-1].upper()]
        t = t[:-1]
    try:
        return int(t, 0) * scale
    except ValueError:
        raise ValueError(f"not a size or address: {text!r}") from None


def number(name: str, value: Any) -> int:
    """A size or address option: an int, or text as parse_size reads it,
    from 0 to 2**64 - 1.  ValueError naming the value otherwise (floats
    and bools included: 4096.7 bytes is a mistake, not 4096)."""
    if isinstance(value, str):
        n = parse_size(value)
    elif isinstance(value, bool):
        raise ValueError(f"{name} must be a number of bytes, not {value!r}")
    else:
        try:
            n = operator.index(value)
        except TypeError:
            raise ValueError(f"{name} must be a whole number of bytes, "
                             f"not {value!r}") from None
    # Python ints have no width: the 64 bits are where text becomes a value.
    if not 0 <= n < 1 << 64:
        raise ValueError(f"{name} must be from 0 to 2**64 - 1; got {value!r}"
                         + (f" = {n}" if isinstance(value, str) else ""))
    return n


def flag(value: Any) -> bool:
    """An option that is on or off: a bool, or text ('0', 'no', 'off', ...)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "no", "false", "off")
    return bool(value)

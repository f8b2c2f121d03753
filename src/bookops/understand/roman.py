"""Roman numerals as used for front-matter folios and ToC page references."""

from __future__ import annotations

import re

_VALUES = (
    (1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
    (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"),
)
# strict form only: "iiii" or "vx" are OCR noise, not numerals
_ROMAN_RE = re.compile(r"^m{0,3}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")


def to_roman(n: int, upper: bool = False) -> str:
    if n <= 0:
        raise ValueError("roman numerals start at 1")
    out = []
    for value, sym in _VALUES:
        while n >= value:
            out.append(sym)
            n -= value
    s = "".join(out)
    return s.upper() if upper else s


def roman_value(s: str) -> int | None:
    """Value of a well-formed roman numeral (either case, not mixed), else None."""
    if not s or not (s.islower() or s.isupper()):
        return None
    low = s.lower()
    if not _ROMAN_RE.match(low):
        return None
    total, i = 0, 0
    for value, sym in _VALUES:
        while low.startswith(sym, i):
            total += value
            i += len(sym)
    return total if total > 0 and to_roman(total) == low else None


def is_roman(s: str) -> bool:
    return roman_value(s) is not None

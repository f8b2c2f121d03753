"""ISBN-10/13 and LCCN recognition with checksum validation."""

from __future__ import annotations

import re

# digits with optional hyphens/spaces between them; the checksum decides, not the shape
_ISBN_CANDIDATE = re.compile(r"(?<![0-9Xx])((?:97[89][- ]?)?(?:[0-9][- ]?){9}[0-9Xx])(?![0-9])")
_LCCN = re.compile(
    r"(?:Library of Congress (?:Catalog(?:ue)?(?:ing)? )?(?:Card |Control )?(?:Number|No\.?)|LCCN)"
    r"[:\s]*([0-9]{2,4}[- ]?[0-9]{1,6})",
    re.IGNORECASE,
)


def isbn10_valid(isbn: str) -> bool:
    s = isbn.upper()
    if not re.fullmatch(r"[0-9]{9}[0-9X]", s):
        return False
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(s))
    return total % 11 == 0


def isbn13_valid(isbn: str) -> bool:
    if not re.fullmatch(r"97[89][0-9]{10}", isbn):
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(isbn))
    return total % 10 == 0


def normalize_isbn(raw: str) -> str | None:
    """Digits (and a final X) of a checksum-valid ISBN, else None."""
    s = re.sub(r"[^0-9Xx]", "", raw).upper()
    if len(s) == 13 and isbn13_valid(s):
        return s
    if len(s) == 10 and isbn10_valid(s):
        return s
    return None


def find_isbns(text: str) -> list[str]:
    """Every checksum-valid ISBN labelled "ISBN" on its line, in printed order, without duplicates."""
    out: list[str] = []
    for m in _ISBN_CANDIDATE.finditer(text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        # a phone or catalogue number can pass the checksum by chance: the label must be there
        if "isbn" not in text[line_start:m.start()].lower():
            continue
        isbn = normalize_isbn(m.group(1))
        if isbn and isbn not in out:
            out.append(isbn)
    return out


def find_lccn(text: str) -> str | None:
    m = _LCCN.search(text)
    if not m:
        return None
    return re.sub(r"\s", "", m.group(1))

"""Parsing printed ToC pages into entries, from the word boxes of each line."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from bookops.schema import PageLabel, TocEntry

from .folio import content_lines, folio_candidates, parse_folio
from .pagetext import Line, PageText
from .roman import roman_value
from .toc_find import _LEADER, entry_page, toc_heading

_NUMBER = re.compile(
    r"^(?:(?P<dec>[0-9]{1,3}(?:\.[0-9]{1,3})*)\.?"
    r"|(?P<app>[A-Z](?:\.[0-9]{1,3})+)\.?"
    r"|(?P<rom>[IVXLC]{1,6})\.)(?=\s|$)"
)
_PART = re.compile(r"^(part|book|volume)\s+([0-9]+|[IVXLC]+|[a-z]+)\b", re.IGNORECASE)
_TRAILING_JUNK = re.compile(r"[\s.·…_:;,'‘’\-–—]+$")


@dataclass
class _Raw:
    text: str
    page: str
    x: int


def _strip_leaders(words: list[str]) -> str:
    kept = [w for w in words if not _LEADER.match(w)]
    text = " ".join(kept)
    # leftovers of a leader glued to the last title word ("Answers.....")
    text = re.sub(r"(\s?\.){3,}.*$", "", text)
    return _TRAILING_JUNK.sub("", text).strip() or text.strip()


def split_number(title: str) -> tuple[str | None, int]:
    """The section number at the start of a title and its depth ("4.1.3" -> 3); (None, 0) if none."""
    m = _NUMBER.match(title)
    if not m:
        return None, 0
    if m.group("dec"):
        return m.group("dec"), m.group("dec").count(".") + 1
    if m.group("app"):
        return m.group("app"), m.group("app").count(".") + 1
    return m.group("rom"), 1


def _skip_lines(page: PageText, lines: list[Line]) -> set[int]:
    """Running head, foot folio and the "Contents" heading: lines that are not entries."""
    skip: set[int] = set()
    for c in folio_candidates(page):
        if c.value is None:
            continue
        idx = 0 if c.where == "head" else len(lines) - 1
        if lines and lines[idx].top == c.line.top and (c.pos != "right" or c.where == "head"):
            if c.where == "foot" and c.pos != "alone":
                continue
            skip.add(idx)
    h = toc_heading(lines)
    if h is not None and entry_page(lines[h]) is None:
        skip.add(h)
        skip.update(range(h))
    return skip


def _raw_entries(pages: list[PageText]) -> list[_Raw]:
    out: list[_Raw] = []
    for page in pages:
        lines = content_lines(page)
        skip = _skip_lines(page, lines)
        pending: list[Line] = []
        for i, line in enumerate(lines):
            if i in skip:
                continue
            page_ref = entry_page(line)
            if page_ref is None:
                if _LEADER.match(line.text):
                    continue
                pending.append(line)
                continue
            words = [w.text for ln in pending for w in ln.words] + [w.text for w in line.words[:-1]]
            x = (pending[0] if pending else line).left
            pending = []
            title = _strip_leaders(words)
            if title:
                out.append(_Raw(title, page_ref, x))
    return out


def _levels(raws: list[_Raw], depths: list[int]) -> list[int]:
    """Level per entry: numbering depth where there is one, else the indentation of numbered peers."""
    by_depth: dict[int, list[int]] = {}
    for r, d in zip(raws, depths, strict=False):
        if d:
            by_depth.setdefault(d, []).append(r.x)
    anchors = {d: sorted(xs)[len(xs) // 2] for d, xs in by_depth.items()}
    xs_all = sorted({r.x for r in raws})
    unit = 12
    if len(xs_all) > 1:
        diffs = [b - a for a, b in zip(xs_all, xs_all[1:], strict=False) if b - a > 4]
        unit = max(8, min(diffs) if diffs else 12)
    out: list[int] = []
    for r, d in zip(raws, depths, strict=False):
        if d:
            out.append(d)
        elif anchors:
            out.append(min(anchors, key=lambda k: (abs(anchors[k] - r.x), k)))
        else:
            base = xs_all[0]
            out.append(1 + round((r.x - base) / (unit * 2)))
    parts = [bool(_PART.match(r.text)) for r in raws]
    if any(parts):
        # parts sit above the numbered chapters
        out = [1 if p else lvl + 1 for p, lvl in zip(parts, out, strict=False)]
    top = min(out) if out else 1
    return [max(1, min(6, lvl - top + 1)) for lvl in out]


def parse_toc(pages: list[PageText]) -> list[TocEntry]:
    """Every entry of the printed ToC on these pages, top to bottom."""
    raws = _raw_entries(pages)
    numbers: list[str | None] = []
    depths: list[int] = []
    for r in raws:
        num, depth = split_number(r.text)
        numbers.append(num)
        depths.append(depth)
    levels = _levels(raws, depths)
    return [
        TocEntry(title=r.text, level=lvl, number=num, printed_page=r.page)
        for r, lvl, num in zip(raws, levels, numbers, strict=False)
    ]


def _label_value(label: str) -> tuple[str, int] | None:
    parsed = parse_folio(label)
    if parsed is None:
        return None
    return (parsed[1], int(parsed[0]) if parsed[1] == "arabic" else roman_value(parsed[0]) or 0)


def resolve_scan_pages(entries: list[TocEntry], labels: list[PageLabel]) -> list[TocEntry]:
    """Set each entry's scan page: the page printing that number, else the number's place in the
    sequence of its neighbours (a chapter opening often prints no folio)."""
    printed: dict[tuple[str, int], int] = {}
    offsets: dict[str, Counter[int]] = {"arabic": Counter(), "roman": Counter()}
    for idx, lab in enumerate(labels, 1):
        v = _label_value(lab.printed_page) if lab.printed_page else None
        if v is None:
            continue
        printed.setdefault(v, idx)
        offsets[v[0]][idx - v[1]] += 1
    out = []
    for e in entries:
        scan = None
        v = _label_value(e.printed_page) if e.printed_page else None
        if v is not None:
            scan = printed.get(v)
            if scan is None and offsets[v[0]]:
                guess = v[1] + offsets[v[0]].most_common(1)[0][0]
                scan = guess if 1 <= guess <= len(labels) else None
        out.append(e.model_copy(update={"scan_page": scan}))
    return out

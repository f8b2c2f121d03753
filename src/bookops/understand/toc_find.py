"""Finding the printed table of contents among the first pages of a book."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .folio import clean_token, content_lines, parse_folio
from .pagetext import Line, PageText

_TOC_HEADING = re.compile(
    r"^(table\s+of\s+contents|contents|content|contents\s+of\s+(the\s+)?volume|index\s+of\s+chapters|"
    r"inhalt(sverzeichnis)?|table\s+des\s+mati[eè]res|sommaire|indice|[íi]ndice\s+general|summary)$",
    re.IGNORECASE,
)
# lists that look like a ToC but are not part of it
_OTHER_LIST = re.compile(
    r"^(list\s+of\s+(figures|tables|illustrations|plates|maps|abbreviations|examples|listings)|"
    r"figures|tables|illustrations|plates|index|general\s+index)$",
    re.IGNORECASE,
)
_LEADER = re.compile(r"^[.·…_\-\s]{2,}$")
_LIST_ITEM = re.compile(r"^(fig(ure)?|table|plate|map|listing|example)\.?$", re.IGNORECASE)


def _heading_text(line: Line) -> str:
    """A heading line without a folio at either end ("iv Contents", "Contents 5")."""
    words = [w.text for w in line.words]
    if len(words) > 1 and parse_folio(words[0]):
        words = words[1:]
    if len(words) > 1 and parse_folio(words[-1]):
        words = words[:-1]
    return clean_token(" ".join(words)).strip()


def toc_heading(lines: list[Line]) -> int | None:
    """Index of a "Contents" heading among the first lines of a page, else None."""
    for i, line in enumerate(lines[:3]):
        if _TOC_HEADING.match(_heading_text(line)):
            return i
    return None


def other_list_heading(lines: list[Line]) -> bool:
    return any(_OTHER_LIST.match(_heading_text(ln)) for ln in lines[:3])


def entry_page(line: Line) -> str | None:
    """The page reference that ends a ToC entry line, or None when the line is not such a line."""
    ws = [w for w in line.words if not _LEADER.match(w.text)]
    if len(ws) < 2:
        return None
    last = ws[-1]
    parsed = parse_folio(last.text)
    if parsed is None or last.text.strip() != clean_token(last.text):
        return None
    prev = ws[-2]
    if prev.text.rstrip().endswith(","):
        return None  # "term, 12": an index line
    if not any(c.isalpha() for w in ws[:-1] for c in w.text):
        return None
    gap = last.left - (prev.left + prev.width)
    dots = any(_LEADER.match(w.text) for w in line.words) or prev.text.endswith("..")
    if gap < 1.2 * max(line.height, 1) and not dots:
        return None
    return parsed[0]


@dataclass(frozen=True)
class TocPageStats:
    lines: int
    entries: int
    increasing: float
    list_items: int


def toc_page_stats(page: PageText) -> TocPageStats:
    lines = content_lines(page)
    body = lines[1:] if len(lines) > 3 else lines  # the running head
    pages = [entry_page(ln) for ln in body]
    nums = [int(p) for p in pages if p is not None and p.isdigit()]
    steps = list(zip(nums, nums[1:], strict=False))
    inc = sum(1 for a, b in steps if b >= a) / len(steps) if steps else 0.0
    items = sum(1 for ln, p in zip(body, pages, strict=True)
                if p is not None and _LIST_ITEM.match(ln.words[0].text))
    return TocPageStats(len(body), sum(p is not None for p in pages), inc, items)


def toc_page_score(page: PageText) -> float:
    """How much this page looks like a ToC page by its lines alone (0..1)."""
    st = toc_page_stats(page)
    if st.entries < 3 or st.lines == 0:
        return 0.0
    share = st.entries / st.lines
    if st.increasing < 0.8:
        share *= st.increasing
    return min(1.0, share)


def find_toc(pages: list[PageText]) -> tuple[list[int], float]:
    """Scan pages holding the printed ToC, and a confidence; ``([], c)`` when there is none."""
    scored = []
    for p in pages:
        lines = content_lines(p)
        heading = toc_heading(lines) is not None
        scored.append((p, lines, toc_page_score(p), heading, other_list_heading(lines)))
    start, conf = None, 0.0
    for k, (_, _, score, heading, _) in enumerate(scored):
        # OCR can lose the page-number column of one page: the next page then vouches for it
        nxt = scored[k + 1][2] if k + 1 < len(scored) else 0.0
        if heading and (score >= 0.3 or nxt >= 0.6):
            start, conf = k, 0.95 if score >= 0.3 else 0.8
            break
    if start is None:
        # no heading read: a run of entry-dense pages still is a ToC, with less confidence
        for k, (p, _, score, _, other) in enumerate(scored):
            if score >= 0.75 and not other and toc_page_stats(p).entries >= 8:
                start, conf = k, 0.6
                break
    if start is None:
        return [], 0.9
    found = [scored[start][0].page_num]
    last_nums = _last_number(scored[start][0])
    for p, _, score, heading, other in scored[start + 1:]:
        if other or score < 0.5 or toc_page_stats(p).list_items > 0.5 * max(1, toc_page_stats(p).entries):
            break
        first = _first_number(p)
        # entries go on rising from the previous page; a new list restarts low
        if last_nums is not None and first is not None and first + 2 < last_nums and not heading:
            break
        found.append(p.page_num)
        last_nums = _last_number(p) or last_nums
    return found, conf


def _numbers(page: PageText) -> list[int]:
    out = []
    for ln in content_lines(page)[1:]:
        p = entry_page(ln)
        if p is not None and p.isdigit():
            out.append(int(p))
    return out


def _first_number(page: PageText) -> int | None:
    nums = _numbers(page)
    return nums[0] if nums else None


def _last_number(page: PageText) -> int | None:
    nums = _numbers(page)
    return nums[-1] if nums else None


# A page of running prose: its lines are mostly this many words or longer. Measured on the plain
# OCR of the dev corpus: 0-24 % of the lines of ToC pages, 75-86 % of the prose pages after them.
PROSE_WORDS = 7
PROSE_SHARE = 0.6


def looks_like_prose(page: PageText) -> bool:
    """Running text, not a ToC page even with its page numbers lost: most lines are long and
    hardly any ends in a number. The careful re-read (the slowest OCR bookops does) is spared."""
    lines = content_lines(page)
    if len(lines) < 8:
        return False
    long = sum(1 for ln in lines if len(ln.words) >= PROSE_WORDS)
    numbered = sum(1 for ln in lines if parse_folio(ln.words[-1].text))
    return long >= PROSE_SHARE * len(lines) and numbered <= 0.1 * len(lines)


# Pages worth a careful (slow) re-read when looking for the ToC: at most this many at first.
MAX_CANDIDATES = 6


def toc_candidates(pages: list[PageText]) -> list[int]:
    """Scan pages that may belong to the ToC, judged on their ordinary OCR, likeliest first.

    Full-page OCR often loses the page-number column of a ToC page (leaders, a lone number at the
    right edge), so a page is a candidate on weak evidence: a "Contents" heading, a few entry-like
    lines, or following a page with a heading. The caller reads them carefully and runs
    :func:`find_toc` on the result, then extends past the last page found.
    """
    scored: list[tuple[float, int]] = []
    for k, p in enumerate(pages):
        lines = content_lines(p)
        if toc_heading(lines) is not None and not other_list_heading(lines):
            scored.append((2.0, p.page_num))
            if k + 1 < len(pages):
                scored.append((1.5, pages[k + 1].page_num))
            continue
        score = toc_page_score(p)
        if score >= 0.2:
            scored.append((score, p.page_num))
    best: dict[int, float] = {}
    for s, n in scored:
        best[n] = max(s, best.get(n, 0.0))
    ranked = sorted(best, key=lambda n: (-best[n], n))
    return sorted(ranked[:MAX_CANDIDATES])

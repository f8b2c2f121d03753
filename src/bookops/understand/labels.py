"""Page labels: printed page number, running header, kind of content, chapter openings."""

from __future__ import annotations

import re

from bookops.schema import ContentType, FolioToken, PageLabel

from .folio import (
    Folio,
    best_folio,
    content_lines,
    folio_candidates,
    folio_tokens,
    lookalike_digits,
    median_word_height,
)
from .pagetext import Line, PageText
from .roman import roman_value, to_roman
from .toc_find import toc_heading, toc_page_score

METHOD = "offline"

_COPYRIGHT = re.compile(r"copyright|©|\(c\)\s*\d{4}|all rights reserved|\bisbn\b|library of congress|"
                        r"printed in|public domain|permission is granted|licen[sc]e",
                        re.IGNORECASE)
_FRONT = re.compile(r"^(preface|foreword|introduction|acknowledge?ments?|dedication|prologue|about this)",
                    re.IGNORECASE)
_BACK = re.compile(r"^(appendix|appendices|bibliography|references|glossary|notes|afterword|epilogue|"
                   r"colophon|further reading)\b", re.IGNORECASE)
_INDEX = re.compile(r"^(general |subject |name )?index\b", re.IGNORECASE)
_INDEX_LINE = re.compile(r"[A-Za-z].*,\s*[0-9ivxlc]+(\s*[,–-]\s*[0-9ivxlc]+)*\s*$")
_CHAPTER = re.compile(r"^(chapter|part|book|section|appendix)\s+([0-9]+|[ivxlcIVXLC]+|[A-Z]|[a-z]+)\b",
                      re.IGNORECASE)
_NUMBERED_HEADING = re.compile(r"^[0-9]{1,2}\.?\s+[A-Z\\]")


def _alnum_words(page: PageText) -> int:
    return sum(1 for w in page.words if w.conf >= 50 and sum(c.isalnum() for c in w.text) >= 2)


def _heading_lines(lines: list[Line], body_h: float, height: int) -> list[Line]:
    """Lines set in display type in the upper part of the page."""
    return [ln for ln in lines if ln.height >= 1.35 * body_h and ln.top < 0.5 * height]


def _content_type(
    page: PageText, lines: list[Line], folio: Folio | None, headings: list[Line]
) -> ContentType:
    if _alnum_words(page) < 3:
        return ContentType.blank
    text = page.text
    top = " ".join(ln.text for ln in lines[:3])
    if toc_heading(lines) is not None or toc_page_score(page) >= 0.6:
        return ContentType.toc
    first_texts = [ln.text.strip() for ln in lines[:3]]
    if any(_INDEX.match(t) for t in first_texts):
        body = [ln.text for ln in lines[1:]]
        if body and sum(bool(_INDEX_LINE.search(t)) for t in body) >= 0.3 * len(body):
            return ContentType.index
    if len(_COPYRIGHT.findall(text)) >= 2 and len(lines) < 40:
        return ContentType.copyright
    if folio is None and headings and len(lines) <= 20 and not _NUMBERED_HEADING.match(top):
        return ContentType.title_page
    heads = [ln.text.strip() for ln in headings] + first_texts
    if any(_BACK.match(t) for t in heads):
        return ContentType.back_matter
    if (folio is not None and folio.kind == "roman") or any(_FRONT.match(t) for t in heads):
        return ContentType.front_matter
    return ContentType.body


# A folio read below this confidence (0..100) is worth a second, closer look (a margin re-read).
SURE_FOLIO_CONF = 90.0


def page_folio(page: PageText) -> Folio | None:
    """The folio this page prints, judged from this page alone, or None."""
    cands = folio_candidates(page)
    if toc_page_score(page) >= 0.5:
        # on a ToC page the number closing the last line is an entry's page, not the folio
        cands = [c for c in cands if c.where == "head" or c.pos in ("alone", "n_of_m")]
    return best_folio(cands)


def wants_margin_pass(page: PageText) -> bool:
    """No folio was read, or only an unsure one: the head and foot lines deserve a closer read.

    Full-page OCR drops a lone corner or foot number as noise and garbles "7 / 57" into "7157".
    """
    folio = page_folio(page)
    return folio is None or folio.conf < SURE_FOLIO_CONF


def read_page_label(page: PageText) -> PageLabel:
    """What this page prints about itself, judged from this page alone."""
    lines = content_lines(page)
    folio = page_folio(page)
    body_h = median_word_height(page.words)
    height = page.height or (max(ln.bottom for ln in lines) if lines else 0)
    headings = _heading_lines(lines, body_h, height)

    running: str | None = None
    if folio is not None and folio.where == "head":
        rest = [w.text for w in folio.line.words if w.text not in folio.raw.split()]
        if folio.pos == "n_of_m":
            rest = [w.text for w in folio.line.words if not re.match(r"^[0-9/]+$", w.text)]
        running = " ".join(rest).strip() or None
    ctype = _content_type(page, lines, folio, headings)

    is_start, chapter_title = False, None
    # a chapter opening has display type near the top and no running head above it
    if ctype in (ContentType.body, ContentType.back_matter, ContentType.front_matter) and headings:
        first = headings[0]
        if running is None and first.top < 0.4 * height and lines and lines.index(first) <= 2:
            is_start = True
            chapter_title = " ".join(ln.text for ln in headings[:2] if ln.top - first.top < 4 * first.height)
    elif ctype == ContentType.body and lines and _CHAPTER.match(lines[0].text) and running is None:
        is_start, chapter_title = True, lines[0].text
    return PageLabel(
        printed_page=folio.value if folio else None,
        running_header=running,
        content_type=ctype,
        is_chapter_start=is_start,
        chapter_title=chapter_title,
        method=METHOD,
    )


def _num(label: str | None) -> tuple[str, int] | None:
    if label is None:
        return None
    if label.isdigit():
        return "arabic", int(label)
    v = roman_value(label)
    return ("roman", v) if v is not None else None


def _similar(raw: str, expected: str) -> bool:
    """Could OCR have turned ``expected`` into ``raw``? One wrong or extra character at most."""
    a, b = raw.lower(), expected.lower()
    digits = lookalike_digits(raw)
    if digits is not None and digits == expected:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] <= 1


def _expected(
    nums: list[tuple[str, int] | None], i: int, direction: int, reach: int = 3
) -> tuple[str, int, int] | None:
    """What the nearest labelled pages on one side predict for page i, and how many agree."""
    found: list[tuple[str, int]] = []
    j = i + direction
    while 0 <= j < len(nums) and abs(j - i) <= reach and len(found) < 2:
        n = nums[j]
        if n is not None:
            found.append((n[0], n[1] + (i - j)))
        j += direction
    if not found:
        return None
    kind, value = found[0]
    agree = sum(1 for k, v in found if k == kind and v == value)
    if len(found) == 2 and agree < 2:
        return None
    return kind, value, agree


def _render(kind: str, value: int, like: str | None) -> str:
    if kind == "arabic":
        return str(value)
    return to_roman(value, upper=bool(like and like.isupper()))


def fix_label_sequence(labels: list[PageLabel], pages: list[PageText], *,
                       candidates: dict[int, list[FolioToken]] | None = None) -> list[PageLabel]:
    """Make printed numbers consistent across the book.

    Arabic folios keep a constant offset to the scan index and roman ones rise by one, at least
    between plates and gaps. A number that both sides of the book disagree with is repaired when
    OCR plausibly misread the expected one, and dropped otherwise (a chapter or line number). A page
    where nothing folio-like was read stays unnumbered. ``candidates`` (scan page -> its
    ``folio_tokens``) may stand in for ``pages``, so a long book need not be held whole.
    """
    out = [lab.model_copy() for lab in labels]
    nums = [_num(lab.printed_page) for lab in out]
    cands = candidates if candidates is not None else {p.page_num: folio_tokens(p) for p in pages}
    for i, lab in enumerate(out):
        before, after = _expected(nums, i, -1), _expected(nums, i, +1)
        sides = [s for s in (before, after) if s is not None]
        if not sides:
            continue
        if len(sides) == 2 and (sides[0][0], sides[0][1]) != (sides[1][0], sides[1][1]):
            continue  # a gap in the numbering (missing plates) lies here: nothing to infer
        kind, value = sides[0][0], sides[0][1]
        support = sum(s[2] for s in sides)
        if support < 2 or value < 1:
            continue
        near = range(max(0, i - 2), min(len(out), i + 3))
        like = next((out[j].printed_page for j in near if j != i and (nums[j] or ("", 0))[0] == kind), None)
        expected = _render(kind, value, like)
        cur = nums[i]
        if cur == (kind, value):
            continue
        page_cands = cands.get(i + 1, [])
        raws = [c.raw for c in page_cands]
        if any(c.value is not None and _num(c.value) == (kind, value) for c in page_cands):
            # another folio-like token on the page (the foot, not the head corner) fits the sequence
            lab.printed_page, lab.sequence_fixed = expected, True
            nums[i] = (kind, value)
            continue
        if cur is not None:
            printed = lab.printed_page or ""
            if _similar(printed, expected) or any(_similar(r, expected) for r in raws):
                lab.printed_page, lab.sequence_fixed = expected, True
            elif support >= 3 or len(sides) == 2:
                lab.printed_page, lab.sequence_fixed = None, True
            nums[i] = _num(lab.printed_page)
        elif any(_similar(r, expected) for r in raws) and len(sides) == 2:
            lab.printed_page, lab.sequence_fixed = expected, True
            nums[i] = (kind, value)
    return out


def label_pages(pages: list[PageText]) -> list[PageLabel]:
    """Per-page labels followed by the book-wide consistency pass."""
    return fix_label_sequence([read_page_label(p) for p in pages], pages)

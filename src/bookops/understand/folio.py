"""Reading the printed page number (folio) off a page's first and last visual lines."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bookops.schema import FolioToken, Word

from .pagetext import Line, PageText, visual_lines
from .roman import roman_value

Kind = Literal["arabic", "roman"]

# decoration printed around folios: "- 12 -", "[12]", "(xii)", "12."
_STRIP = "-–—.,:;()[]{}|'\"‘’“”·•"
_ARABIC = re.compile(r"^[0-9]{1,4}$")
_N_OF_M = re.compile(r"^([0-9]{1,4})/([0-9]{1,4})$")
# what tesseract reads for digits in isolated folios
_DIGIT_LOOKALIKE = str.maketrans({"l": "1", "I": "1", "|": "1", "!": "1", "i": "1", "O": "0", "o": "0",
                                  "S": "5", "s": "5", "B": "8", "Z": "2", "z": "2", "g": "9", "q": "9"})


@dataclass(frozen=True)
class Folio:
    """A folio-like token at the head or foot of a page."""

    raw: str
    value: str | None  # the folio as printed, None when the token is garbled
    kind: Kind | None
    where: Literal["head", "foot"]
    pos: Literal["alone", "left", "right", "n_of_m"]
    conf: float
    line: Line

    @property
    def number(self) -> int | None:
        if self.value is None:
            return None
        return int(self.value) if self.kind == "arabic" else roman_value(self.value)


def clean_token(text: str) -> str:
    return text.strip(_STRIP)


def parse_folio(token: str) -> tuple[str, Kind] | None:
    t = clean_token(token)
    if _ARABIC.match(t) and not t.startswith("0"):
        return t, "arabic"
    if t and len(t) <= 8 and roman_value(t) is not None:
        return t, "roman"
    return None


def lookalike_digits(token: str) -> str | None:
    """The digits a garbled folio probably stands for ("l7" -> "17"), else None."""
    t = clean_token(token).translate(_DIGIT_LOOKALIKE)
    return t if _ARABIC.match(t) else None


def _is_junk(w: Word) -> bool:
    # specks, show-through and scanner dirt: no letters or digits, or a low-confidence crumb
    if w.text == "/":
        return False  # the slash of an "N / M" folio
    if not any(c.isalnum() for c in w.text):
        return True
    return w.conf < 30 and len(clean_token(w.text)) <= 2


def content_lines(page: PageText) -> list[Line]:
    """The page's visual lines without junk words; made once per page (callers only read them)."""
    cached = page._lines
    if cached is not None and cached[0] is page.words:
        return list(cached[1])
    lines = []
    for line in visual_lines(page.words):
        ws = [w for w in line.words if not _is_junk(w)]
        if ws:
            lines.append(Line(words=ws))
    page._lines = (page.words, lines)
    return list(lines)


def median_word_height(words: list[Word]) -> float:
    hs = sorted(w.height for w in words if len(w.text) > 1 and w.conf > 50)
    return float(hs[len(hs) // 2]) if hs else 1e9


def _pitch(lines: list[Line]) -> float:
    gaps = sorted(b.top - a.top for a, b in zip(lines, lines[1:], strict=False) if b.top > a.top)
    return float(gaps[len(gaps) // 2]) if gaps else 0.0


def _line_candidates(line: Line, where: Literal["head", "foot"], isolated: bool) -> list[Folio]:
    ws = line.words
    h = max(line.height, 1)
    out: list[Folio] = []
    texts = [w.text for w in ws]
    joined = "".join(clean_token(t) if i in (0, len(texts) - 1) else t for i, t in enumerate(texts))

    def add(w: Word | None, raw: str, pos: Literal["alone", "left", "right", "n_of_m"]) -> None:
        parsed = parse_folio(raw)
        conf = w.conf if w else min(x.conf for x in ws)
        if parsed:
            out.append(Folio(raw, parsed[0], parsed[1], where, pos, conf, line))
        else:
            out.append(Folio(raw, None, None, where, pos, conf, line))

    # "N / M" (current page of total), at either end of the line
    for seq in (texts[-3:], texts[:3], texts[-2:], texts[:2], texts[-1:], texts[:1]):
        m = _N_OF_M.match(clean_token("".join(seq)))
        if m and int(m.group(1)) <= int(m.group(2)):
            out.append(Folio("".join(seq), m.group(1), "arabic", where, "n_of_m", ws[0].conf, line))
            return out
    if len(ws) == 1 or (len(ws) <= 3 and parse_folio(joined)):
        add(ws[0] if len(ws) == 1 else None, ws[0].text if len(ws) == 1 else joined, "alone")
        return out
    if not isolated:
        return out
    # a corner folio sits apart from the running-head text; a heading "2 Empty argument" does not
    first, second = ws[0], ws[1]
    if second.left - (first.left + first.width) > 2.5 * h and len(clean_token(first.text)) <= 6:
        add(first, first.text, "left")
    last, before = ws[-1], ws[-2]
    if last.left - (before.left + before.width) > 2.5 * h and len(clean_token(last.text)) <= 6:
        add(last, last.text, "right")
    return out


def folio_candidates(page: PageText) -> list[Folio]:
    """Folio-like tokens on the first and last visual lines (head first, then foot)."""
    lines = content_lines(page)
    if not lines:
        return []
    height = page.height or max(ln.bottom for ln in lines)
    body_h = median_word_height(page.words)
    # sparse pages (tables, title pages) have wide median gaps: cap the pitch by the type size
    pitch = min(_pitch(lines), 2.5 * body_h)
    out: list[Folio] = []
    head = lines[0]
    # display type (a chapter number set large) is not a folio
    if head.top < 0.25 * height and head.height <= 1.6 * body_h:
        # a running head is set off from the text below it by extra space
        isolated = len(lines) < 2 or pitch == 0 or lines[1].top - head.top > 1.25 * pitch
        out.extend(_line_candidates(head, "head", isolated))
    foot = lines[-1]
    if len(lines) > 1 and foot.bottom > 0.75 * height and foot.height <= 1.6 * body_h:
        isolated = pitch == 0 or foot.top - lines[-2].top > 1.25 * pitch
        out.extend(_line_candidates(foot, "foot", isolated))
    return out


def folio_tokens(page: PageText) -> list[FolioToken]:
    """The page's ``folio_candidates`` as stored with its label: what the book-wide pass needs."""
    return [FolioToken(raw=c.raw, value=c.value) for c in folio_candidates(page)]


def best_folio(cands: list[Folio]) -> Folio | None:
    """The likeliest readable folio of one page, judged without the rest of the book."""
    readable = [c for c in cands if c.value is not None and c.conf >= 40]
    if not readable:
        return None
    rank = {"n_of_m": 0, "alone": 1, "left": 2, "right": 2}
    return min(readable, key=lambda c: (rank[c.pos], c.kind != "arabic", -c.conf))


def with_margin_lines(page: PageText, words: list[Word], bands: list[tuple[int, int]]) -> PageText:
    """The page with what a margin re-read found (see ``ocr_margin_lines``) in place of the words the
    page OCR had in those rows; the text is left as it is."""
    def inside(w: Word) -> bool:
        mid = w.top + w.height / 2
        return any(top <= mid <= bottom for top, bottom in bands)

    kept = [w for w in page.words if not inside(w)]
    return page.model_copy(update={"words": kept + [w for w in words if inside(w)]})

"""The input of the offline heuristics: one scan page's text and its word boxes."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from bookops.schema import Word


class PageText(BaseModel):
    """A scan page as the heuristics see it: best text plus the OCR word boxes (image pixels)."""

    page_num: int = Field(ge=1, description="1-based scan index")
    text: str = ""
    words: list[Word] = Field(default_factory=list)
    width: int = 0
    height: int = 0
    # (the words list they were made from, the content lines): every heuristic starts from the
    # page's visual lines, and one label or ToC decision asks for them several times
    _lines: tuple[list[Word], Any] | None = PrivateAttr(default=None)


@dataclass
class Line:
    """One visual line of words, left to right, with its bounding box."""

    words: list[Word] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def left(self) -> int:
        return min(w.left for w in self.words)

    @property
    def right(self) -> int:
        return max(w.left + w.width for w in self.words)

    @property
    def top(self) -> int:
        return min(w.top for w in self.words)

    @property
    def bottom(self) -> int:
        return max(w.top + w.height for w in self.words)

    @property
    def height(self) -> int:
        # median word height is robust to a stray tall glyph or a merged box
        hs = sorted(w.height for w in self.words)
        return hs[len(hs) // 2]


def words_from_tesseract(data: Mapping[str, Sequence[object]], scale: float = 1.0) -> list[Word]:
    """Words of a ``pytesseract.image_to_data(..., output_type=DICT)`` answer, boxes divided by ``scale``."""
    out: list[Word] = []
    for i, raw in enumerate(data["text"]):
        text = str(raw).strip()
        if not text:
            continue

        def num(key: str, i: int = i) -> int:
            return int(float(str(data[key][i])))

        out.append(
            Word(
                text=text,
                conf=max(0.0, float(str(data["conf"][i]))),
                left=round(num("left") / scale),
                top=round(num("top") / scale),
                width=max(1, round(num("width") / scale)),
                height=max(1, round(num("height") / scale)),
                block=num("block_num"),
                par=num("par_num"),
                line=num("line_num"),
            )
        )
    return out


def tesseract_lines(words: Sequence[Word]) -> list[Line]:
    """Group words by tesseract's own (block, par, line) ids, in reading order."""
    groups: dict[tuple[int, int, int], Line] = {}
    for w in words:
        groups.setdefault((w.block, w.par, w.line), Line()).words.append(w)
    return list(groups.values())


def text_from_words(words: Sequence[Word]) -> str:
    return "\n".join(line.text for line in tesseract_lines(words))


def page_skew(words: Sequence[Word]) -> float:
    """Slope dy/dx of the text rows, from tesseract's own long lines (it follows skewed rows).

    Scans are rotated by up to a degree or two: over a page width that moves a right-column page
    number by more than a line height, so rows are rebuilt on de-skewed coordinates.
    """
    slopes: list[float] = []
    for line in tesseract_lines(words):
        ws = sorted(line.words, key=lambda w: w.left)
        if len(ws) < 3:
            continue
        a, b = ws[0], ws[-1]
        dx = (b.left + b.width / 2) - (a.left + a.width / 2)
        if dx < 200:
            continue
        slopes.append(((b.top + b.height) - (a.top + a.height)) / dx)
    if not slopes:
        return 0.0
    slopes.sort()
    s = slopes[len(slopes) // 2]
    return s if abs(s) < 0.05 else 0.0


def visual_lines(words: Sequence[Word], tolerance: float = 0.6) -> list[Line]:
    """Words grouped into visual rows top to bottom, across tesseract blocks.

    Tesseract often puts a right-column page number or a corner folio into its own block, so the
    rows are rebuilt from geometry: a word joins a row when its de-skewed baseline lies within
    ``tolerance`` of the row's word height from the row's baseline.
    """
    slope = page_skew(words)

    def base(w: Word) -> float:
        return (w.top + w.height) - slope * (w.left + w.width / 2)

    ws = sorted((w for w in words if w.text.strip()), key=lambda w: (base(w), w.left))
    # each row keeps its baseline, its words and their heights in order (its median height is
    # asked for every word that might join it: sorting it anew each time made a dense page slow)
    rows: list[tuple[float, Line, list[int]]] = []
    for w in ws:
        y = base(w)
        for idx in range(len(rows) - 1, max(-1, len(rows) - 4), -1):
            ry, row, heights = rows[idx]
            row_h = max(heights[len(heights) // 2], 1)
            if abs(y - ry) <= tolerance * row_h and w.height < 3 * row_h:
                row.words.append(w)
                bisect.insort(heights, w.height)
                n = len(row.words)
                rows[idx] = ((ry * (n - 1) + y) / n, row, heights)
                break
        else:
            rows.append((y, Line(words=[w]), [w.height]))
    lines = [row for _, row, _ in rows]
    for line in lines:
        line.words.sort(key=lambda w: w.left)
    lines.sort(key=lambda ln: ln.bottom - slope * (ln.left + ln.right) / 2)
    return lines

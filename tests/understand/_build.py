"""Synthetic PageText built in code: rows of words at given positions."""

from __future__ import annotations

from bookops.schema import Word
from bookops.understand import PageText

CHAR_W = 10
H = 16


def row(y: int, *items: tuple[int, str], h: int = H) -> list[Word]:
    """Words of one printed line; each item is (x, text) and may hold several space-separated words."""
    out: list[Word] = []
    for x, text in items:
        for word in text.split():
            out.append(Word(text=word, conf=95, left=x, top=y, width=CHAR_W * len(word), height=h))
            x += CHAR_W * (len(word) + 1)
    return out


def page(num: int, *rows: list[Word], width: int = 1275, height: int = 1650) -> PageText:
    words: list[Word] = []
    for line_no, r in enumerate(rows, 1):
        words.extend(w.model_copy(update={"block": 1, "par": 1, "line": line_no}) for w in r)
    text = "\n".join(" ".join(w.text for w in r) for r in rows)
    return PageText(page_num=num, text=text, words=words, width=width, height=height)


def body(y0: int, n: int, text: str = "some running text of the chapter goes here") -> list[list[Word]]:
    return [row(y0 + 26 * i, (190, text)) for i in range(n)]

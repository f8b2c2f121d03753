"""The LLM path of Metadata: the front pages in, the bibliographic data they print out.

Each page is trimmed, and the lines that usually carry ISBN, copyright and publisher survive
the trim, so the prompt stays modest on a 20-page front matter. ISBNs are checked locally: a
number that fails its checksum is dropped, not re-asked (the model cannot read it better).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from ..pools.units import Done, WorkUnit
from ..schema import BookMetadata
from ..understand.isbn import normalize_isbn
from ..understand.pagetext import PageText
from ._llm import ask, hint, text_lines
from .base import OpContext

__all__ = ["MAX_PAGE_CHARS", "MAX_PROMPT_CHARS", "MetadataAnswer", "llm_metadata", "metadata_prompt"]

# Title, verso and half-title pages are short; a long page is a preface whose head is enough.
MAX_PAGE_CHARS = 1200
MAX_PROMPT_CHARS = 12_000
# lines worth keeping from a long page: they carry the data the head may not
_KEY_LINE = re.compile(r"isbn|copyright|©|\(c\)|publish|press|library of congress|lccn|printed in|"
                       r"edition|[0-9]{3}[- ]?[0-9]", re.IGNORECASE)
_YEAR = re.compile(r"^[0-9]{4}$")
_LANG = re.compile(r"^[a-z]{2,3}$")


class MetadataAnswer(BaseModel):
    """What the model answers: the book's own front matter, as printed."""

    title: str | None = Field(description="the title as printed on the title page, without the subtitle")
    subtitle: str | None = Field(description="the subtitle, if one is printed")
    authors: list[str] = Field(description="authors' names as printed, one per item")
    editors: list[str] = Field(description="editors', compilers' or translators' names, one per item")
    publisher: str | None = Field(description="the publisher's name")
    year: str | None = Field(description="year of publication (4 digits), as printed")
    isbn: str | None = Field(description="the ISBN as printed (prefer the ISBN-13), or null")
    lccn: str | None = Field(description="the Library of Congress control number, or null")
    language: str | None = Field(description="ISO 639-1 code of the book's language, e.g. 'en'")
    source_pages: list[int] = Field(description="scan page numbers the data was read from")


SYSTEM = ("You are a cataloguer. From the OCR text of a book's first pages you record the "
          "bibliographic data the book prints about itself, and nothing you know from elsewhere.")

_INSTRUCTIONS = """\
Here is the OCR text of the first scan pages of a book (long pages are shortened).

Record the book's title, subtitle, authors, editors, publisher, year of publication, ISBN, LCCN
and language, as printed on the title page, its back (copyright page) or the cover.
- Use null, or an empty list, for anything that is not printed here. Do not guess.
- Write names as a reader would (not all in capitals); keep their spelling.
- year: the year this edition was published (from the imprint or the copyright line).
- source_pages: the scan page numbers you took the data from.

A rule-based reader suggested: {offline}
Use it where the text bears it out.

{pages}"""


def trim_page(text: str, max_chars: int = MAX_PAGE_CHARS) -> str:
    """A page cut to about ``max_chars``, its ISBN, copyright and imprint lines kept past the cut."""
    lines = text_lines(text)
    if sum(len(ln) + 1 for ln in lines) <= max_chars:
        return "\n".join(lines)
    keys: list[int] = []
    used = 0
    for i, ln in enumerate(lines):
        if _KEY_LINE.search(ln) and used + len(ln) + 1 <= max_chars // 2:
            keys.append(i)
            used += len(ln) + 1
    head: list[int] = []
    for i, ln in enumerate(lines):
        if used + len(ln) + 1 > max_chars:
            break
        head.append(i)
        used += len(ln) + 1
    tail = [i for i in keys if not head or i > head[-1]]
    # key lines already in the head were budgeted twice; that only makes the page a bit shorter
    return "\n".join([lines[i] for i in head] + ["[...]"] + [lines[i] for i in tail])


def metadata_prompt(pages: list[PageText], offline: BookMetadata) -> tuple[str, list[int]]:
    """The prompt, and the scan pages it shows."""
    parts: list[str] = []
    shown: list[int] = []
    size = 0
    for page in pages:
        body = trim_page(page.text)
        if not body.strip():
            continue  # blank pages and endpapers say nothing
        block = f"=== scan page {page.page_num} ===\n{body}\n"
        if size + len(block) > MAX_PROMPT_CHARS:
            break
        parts.append(block)
        shown.append(page.page_num)
        size += len(block)
    reading = hint(offline, exclude={"method"})
    return _INSTRUCTIONS.format(offline=reading, pages="\n".join(parts) or "(no text)"), shown


async def llm_metadata(ctx: OpContext, unit: WorkUnit, pages: list[PageText], offline: BookMetadata) -> Done:
    """``Done(BookMetadata, Usage)`` with method "llm"."""
    prompt, shown = metadata_prompt(pages, offline)
    done = await ask(ctx, unit, SYSTEM, prompt, MetadataAnswer)
    return Done(to_metadata(done.value, shown), done.usage)


def to_metadata(answer: MetadataAnswer, shown: list[int]) -> BookMetadata:
    """The answer checked field by field: a bad field becomes null, the rest is kept."""
    year = _clean(answer.year)
    lang = (_clean(answer.language) or "").lower()
    return BookMetadata(
        title=_clean(answer.title),
        subtitle=_clean(answer.subtitle),
        authors=_names(answer.authors),
        editors=_names(answer.editors),
        publisher=_clean(answer.publisher),
        year=year if year and _YEAR.match(year) else None,
        isbn=normalize_isbn(answer.isbn) if answer.isbn else None,
        lccn=_clean(answer.lccn),
        language=lang if _LANG.match(lang) else None,
        source_pages=sorted({p for p in answer.source_pages if p in shown}),
        method="llm",
    )


def _clean(value: str | None) -> str | None:
    value = " ".join(value.split()) if value else None
    return value or None


def _names(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        name = _clean(v)
        if name and name not in out:
            out.append(name)
    return out

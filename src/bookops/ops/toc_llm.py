"""The LLM paths of TocFind and TocExtract.

TocFind shows the model short excerpts of the likeliest pages (the heuristics' pick first, then
pages that look like lists of entries, then their neighbours) and asks for one contiguous range.
TocExtract sends the ToC pages whole and asks for every entry; scan pages are resolved offline
afterwards, through the page labels, never by the model.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from ..errors import InvalidOutput
from ..pools.units import Done, WorkUnit
from ..schema import TocEntry
from ..understand.folio import parse_folio
from ..understand.pagetext import PageText
from ..understand.toc_find import toc_page_score
from ._llm import as_printed, ask, text_lines, trim
from .base import OpContext
from .toc_find import TocLocation

__all__ = ["EntryAnswer", "TocEntriesAnswer", "TocFindAnswer", "find_candidates", "llm_toc_extract",
           "llm_toc_find", "toc_extract_prompt", "toc_find_prompt"]

MAX_CANDIDATES = 10
EXCERPT_CHARS = 700
MAX_TOC_PAGE_CHARS = 8000
HINT_ENTRIES = 12

_HEADING = re.compile(r"^(table of )?contents\b|^inhalt|^table des mati|^sommaire|^[íi]ndice", re.IGNORECASE)
# a line that ends in a page reference after some text: "2.1 Setup ..... 14"
_ENTRY_LINE = re.compile(r"[A-Za-z].*?[\s.·…_]([0-9]{1,4}|[ivxlcdmIVXLCDM]{1,7})$")


# ---------------------------------------------------------------------- TocFind
class TocFindAnswer(BaseModel):
    """Where the printed table of contents is."""

    pages: list[int] = Field(description="scan page numbers of the table of contents, in order; "
                                         "empty when none of the pages shown is a table of contents")
    confidence: float = Field(description="how sure you are, from 0 to 1")


FIND_SYSTEM = ("You locate the printed table of contents of a scanned book from short OCR excerpts "
               "of its front pages.")

_FIND_INSTRUCTIONS = """\
Below are excerpts (the first lines) of some of the first {n} scan pages of a book, each marked
with its scan page number.

Which scan pages hold the book's table of contents (often headed "Contents")? It may run over
several consecutive pages; give all of them, in order. Lists of figures, tables or plates, an
index and a chapter's own outline are not the table of contents. If none of these pages is a
table of contents, answer an empty list.

A rule-based reader suggested pages {offline} (confidence {conf:.2f}).

{pages}"""


def _text_score(page: PageText) -> float:
    """How much a page looks like a ToC by its text alone: works without word boxes too."""
    lines = text_lines(page.text)
    if not lines:
        return 0.0
    entries = sum(1 for ln in lines if (m := _ENTRY_LINE.search(ln)) and parse_folio(m.group(1)))
    share = entries / len(lines) if entries >= 3 else 0.0
    heading = any(_HEADING.match(ln) for ln in lines[:3])
    return min(1.0, share + (0.5 if heading else 0.0))


def find_candidates(pages: list[PageText], offline: TocLocation) -> list[int]:
    """Scan pages worth showing, in order of interest, at most ``MAX_CANDIDATES``."""
    by_num = {p.page_num: p for p in pages if p.text.strip()}
    chosen: list[int] = []

    def add(num: int) -> None:
        if num in by_num and num not in chosen and len(chosen) < MAX_CANDIDATES:
            chosen.append(num)

    for num in offline.pages:
        add(num)
    scores = {n: max(toc_page_score(p), _text_score(p)) for n, p in by_num.items()}
    likely = sorted((n for n, s in scores.items() if s > 0), key=lambda n: (-scores[n], n))[:4]
    for num in likely:
        add(num)
    # a ToC's first or last page may look like anything: show what surrounds the picks
    for num in list(chosen):
        for near in (num - 1, num + 1, num + 2):
            add(near)
    if not chosen:  # nothing looks like a ToC: let the model see the front pages themselves
        for num in sorted(by_num):
            add(num)
    return chosen


def toc_find_prompt(pages: list[PageText], offline: TocLocation) -> str:
    by_num = {p.page_num: p for p in pages}
    shown = sorted(find_candidates(pages, offline))
    blocks = [f"=== scan page {n} ===\n{trim(by_num[n].text, EXCERPT_CHARS)}\n" for n in shown]
    return _FIND_INSTRUCTIONS.format(n=len(pages), offline=offline.pages or "none",
                                     conf=offline.confidence,
                                     pages="\n".join(blocks) or "(every page is blank)")


async def llm_toc_find(ctx: OpContext, unit: WorkUnit, pages: list[PageText], offline: TocLocation) -> Done:
    """``Done(TocLocation, Usage)``: a contiguous range of pages that exist in the book, or none."""
    count = ctx.book.page_count

    def check(answer: TocFindAnswer) -> None:
        found = sorted(set(answer.pages))
        missing = [p for p in found if not 1 <= p <= count]
        if missing:
            raise InvalidOutput(f"pages {missing} do not exist: the book has scan pages 1 to {count}")
        if found and found[-1] - found[0] + 1 != len(found):
            raise InvalidOutput(f"pages {found} are not one contiguous range; give the consecutive "
                                "pages of a single table of contents")

    done = await ask(ctx, unit, FIND_SYSTEM, toc_find_prompt(pages, offline), TocFindAnswer, check=check)
    answer: TocFindAnswer = done.value
    loc = TocLocation(pages=sorted(set(answer.pages)), confidence=min(1.0, max(0.0, answer.confidence)),
                      method="llm")
    return Done(loc, done.usage)


# ---------------------------------------------------------------------- TocExtract
class EntryAnswer(BaseModel):
    title: str = Field(description="the entry as printed, its number or label kept, wrapped lines "
                                   "joined, without leader dots and without the page number")
    level: int = Field(description="1 for the top level of this table of contents, 2 below it, ...")
    number: str | None = Field(description="the section number or label at the start of the title "
                                           "('3', '2.1', 'A.2', 'IV'), or null")
    printed_page: str | None = Field(description="the page reference as printed ('17', 'xi'), or null")


class TocEntriesAnswer(BaseModel):
    entries: list[EntryAnswer] = Field(description="every entry, top to bottom, in printed order")


EXTRACT_SYSTEM = ("You transcribe printed tables of contents from OCR text into structured entries, "
                  "faithfully and completely.")

_EXTRACT_INSTRUCTIONS = """\
Below is the OCR text of the table of contents of a book, scan page by scan page.

List every entry, top to bottom, in printed order, across all the pages:
- title: the entry's text as printed, with its number or label ("2.1 Setup", "Chapter 3 Rain",
  "Appendix A Tools"); join a title that wraps onto the next line; drop leader dots and the page
  number. Keep OCR spelling unless a letter is plainly misread.
- number: the number or label at the start of the title, or null.
- level: 1 for the top level of this table of contents (parts, or chapters when there are no
  parts), 2 for the entries below them, and so on; judge from the numbering and the layout.
- printed_page: the page reference printed for the entry, exactly as printed; null if none.
Skip the "Contents" heading, running heads and the folio of the ToC page itself.

A rule-based parser read {count} entries; its first ones (level | title | page):
{offline}

{pages}"""


def toc_extract_prompt(pages: list[PageText], offline_entries: list[TocEntry]) -> str:
    blocks = [f"=== scan page {p.page_num} ===\n{trim(p.text, MAX_TOC_PAGE_CHARS)}\n" for p in pages]
    sample = "\n".join(f"{e.level} | {e.title} | {e.printed_page or '-'}"
                       for e in offline_entries[:HINT_ENTRIES]) or "(none)"
    return _EXTRACT_INSTRUCTIONS.format(count=len(offline_entries), offline=sample, pages="\n".join(blocks))


async def llm_toc_extract(ctx: OpContext, unit: WorkUnit, pages: list[PageText],
                          offline_entries: list[TocEntry]) -> Done:
    """``Done(list[TocEntry], Usage)``, entries without scan pages (resolved by the caller)."""
    done = await ask(ctx, unit, EXTRACT_SYSTEM, toc_extract_prompt(pages, offline_entries), TocEntriesAnswer)
    answer: TocEntriesAnswer = done.value
    text = "\n".join(p.text for p in pages)
    entries = []
    for e in answer.entries:
        title = " ".join(e.title.split())
        if not title:
            continue
        number = " ".join(e.number.split()) if e.number else None
        entries.append(TocEntry(title=title, level=max(1, min(6, e.level)), number=number or None,
                                # a reference the pages do not print was made up: drop it
                                printed_page=as_printed(e.printed_page, text)))
    return Done(entries, done.usage)

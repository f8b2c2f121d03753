"""The LLM path of Label: one page's head and foot lines in, what the page prints about itself out.

Only the first and last lines are sent: folios and running heads live there, and leaving out
the body keeps "see page 42" in the text from passing for a page number (and the call cheap).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..pools.units import Done, WorkUnit
from ..schema import ContentType, PageLabel
from ..understand.pagetext import PageText
from ._llm import as_printed, ask, head_tail, hint
from .base import OpContext

__all__ = ["HEAD_LINES", "TAIL_LINES", "LabelAnswer", "label_prompt", "llm_label"]

HEAD_LINES = 5
TAIL_LINES = 3


class LabelAnswer(BaseModel):
    """What the model answers for one page."""

    printed_page: str | None = Field(
        description="the page number printed on this page, exactly as printed ('34', 'xiv'); "
                    "null when the page prints none")
    running_header: str | None = Field(
        description="the running head at the top of the page without its page number; null if none")
    content_type: ContentType = Field(description="what kind of page this is")
    is_chapter_start: bool = Field(description="a chapter, part or major section opens on this page")
    chapter_title: str | None = Field(description="the heading that opens here, as printed; null if none")


SYSTEM = ("You read the page furniture of scanned book pages: the printed page number, the running "
          "head and the kind of page. You report only what is printed on the page in front of you.")

_INSTRUCTIONS = """\
Below are the first {head} and last {tail} lines of the OCR text of scan page {page} of a book.

Rules:
- printed_page: the page number (folio) printed in the head or foot line, as printed: arabic
  ("34") or roman ("xiv", same case as printed). A number inside a sentence ("see page 42"), a
  chapter or section number, a year or a line count is not a page number. Many pages print no
  number (title pages, blank pages, chapter openings): then answer null. Never work out a number
  from the page's position in the book.
- running_header: the repeated head text (book, chapter or section title) without the number.
- content_type: one of {types}.
- is_chapter_start and chapter_title: true with the heading as printed when a chapter, part or
  other major division begins on this page, else false and null. A running head is not a heading.

A rule-based reader suggested: {offline}
It is often right about the page number and often wrong about the rest; check it against the text.

Page text:
<<<
{text}
>>>"""


def label_prompt(text: PageText, offline: PageLabel) -> str:
    types = ", ".join(t.value for t in ContentType)
    reading = hint(offline, exclude={"method", "read_as", "sequence_fixed", "folio_tokens"})
    shown = head_tail(text.text, HEAD_LINES, TAIL_LINES) or "(empty)"
    return _INSTRUCTIONS.format(head=HEAD_LINES, tail=TAIL_LINES, page=text.page_num, types=types,
                                offline=reading, text=shown)


async def llm_label(ctx: OpContext, unit: WorkUnit, text: PageText, offline: PageLabel) -> Done:
    """``Done(PageLabel, Usage)``; the printed number is kept only when the page really prints it."""
    done = await ask(ctx, unit, SYSTEM, label_prompt(text, offline), LabelAnswer)
    answer: LabelAnswer = done.value
    shown = head_tail(text.text, HEAD_LINES, TAIL_LINES)
    printed = as_printed(answer.printed_page, shown)
    label = PageLabel(
        printed_page=printed,
        running_header=_blank_to_none(answer.running_header),
        content_type=answer.content_type,
        is_chapter_start=answer.is_chapter_start,
        chapter_title=_blank_to_none(answer.chapter_title) if answer.is_chapter_start else None,
        method="llm",
        read_as=printed,
    )
    return Done(label, done.usage)


def _blank_to_none(value: str | None) -> str | None:
    value = " ".join(value.split()) if value else None
    return value or None

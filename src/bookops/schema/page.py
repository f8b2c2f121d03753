"""A page of a book, and the OCR results of its providers."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field

from ._base import StoredModel, utcnow


def page_id(book: str, page_num: int) -> str:
    return f"{book}:{page_num:04d}"


def ocr_result_id(book: str, page_num: int, provider: str) -> str:
    return f"{book}:{page_num:04d}:{provider}"


class ImageInfo(BaseModel):
    """The page image on disk, relative to ``BOOKOPS_HOME``."""

    path: str
    sha256: str
    width: int
    height: int
    dpi: int | None = None
    method: Literal["embedded", "rendered", "image"] = "rendered"


class PageSource(BaseModel):
    """Where the page comes from: index into ``Book.sources`` and the page within that file."""

    file: int = Field(ge=0)
    index: int = Field(ge=0, description="0-based page index inside the file")


class ContentType(str, Enum):
    front_matter = "front_matter"
    toc = "toc"
    body = "body"
    back_matter = "back_matter"
    blank = "blank"
    title_page = "title_page"
    copyright = "copyright"
    index = "index"  # type: ignore[assignment]  # the member shadows str.index, by design
    other = "other"


class FolioToken(BaseModel):
    """A folio-like token read at the head or foot of a page: as read, and as a number if it is one."""

    raw: str
    value: str | None = None


class PageLabel(BaseModel):
    """What is printed on the page about the page: folio, running header, kind of content."""

    printed_page: str | None = Field(None, description="as printed, e.g. 'xiv' or '34'; null if none")
    running_header: str | None = None
    content_type: ContentType = ContentType.body
    is_chapter_start: bool = False
    chapter_title: str | None = None
    method: str | None = None
    read_as: str | None = Field(None, description="the number as read on the page, before the book-wide pass")
    sequence_fixed: bool = Field(False, description="the book-wide pass changed the printed number")
    folio_tokens: list[FolioToken] | None = Field(
        None, description="folio-like tokens at the head and foot (margin re-read included), kept for "
                          "the book-wide pass; null on labels stored before they were kept")


class OcrState(BaseModel):
    """Per-provider OCR flag on the page; the text itself is in ``ocr_results``."""

    done: bool = False
    confidence: float | None = None
    chars: int = 0
    at: datetime | None = None


class Blend(BaseModel):
    text: str
    sources: list[str]
    method: Literal["single", "llm", "vote"]
    dropped: list[str] = Field(default_factory=list, description="sources read but left out as outliers")
    agreement: float | None = None
    at: datetime = Field(default_factory=utcnow)


class OpError(BaseModel):
    """A unit that failed for good on this page."""

    kind: str
    message: str
    attempts: int = 1
    at: datetime = Field(default_factory=utcnow)


class OpMetrics(BaseModel):
    """What one operation did on this page: time, wait, provider, cost, quality indicators."""

    provider: str | None = None
    model: str | None = None
    seconds: float | None = None
    queue_s: float | None = None
    attempts: int = 1
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    quality: dict[str, float | int | str | bool | None] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)


class Page(StoredModel):
    """One scan page. Flags say which operations are done; results live beside them."""

    book: str
    page_num: int = Field(ge=1, description="1-based scan index")
    source: PageSource
    image: ImageInfo | None = None
    extracted: bool = False
    ocr: dict[str, OcrState] = Field(default_factory=dict)
    blend: Blend | None = None
    blended: bool = False
    label: PageLabel | None = None
    labeled: bool = False
    errors: dict[str, OpError] = Field(default_factory=dict)
    metrics: dict[str, OpMetrics] = Field(default_factory=dict)

    @classmethod
    def new(cls, book: str, page_num: int, source: PageSource) -> Page:
        return cls(id=page_id(book, page_num), book=book, page_num=page_num, source=source)

    @property
    def text(self) -> str:
        return self.blend.text if self.blend else ""


class Word(BaseModel):
    """A recognised word and its box in image pixels."""

    text: str
    conf: float
    left: int
    top: int
    width: int
    height: int
    block: int = 0
    par: int = 0
    line: int = 0


class OcrResult(StoredModel):
    """The output of one OCR provider on one page."""

    book: str
    page_num: int = Field(ge=1)
    provider: str
    text: str
    confidence: float | None = Field(None, description="mean word confidence, 0..1")
    words: list[Word] = Field(default_factory=list)
    image_width: int | None = None
    image_height: int | None = None
    engine_version: str | None = None
    model: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

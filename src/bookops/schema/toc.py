"""The table of contents of a book: where it is printed and its entries."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ._base import StoredModel, utcnow


class TocEntry(BaseModel):
    title: str = Field(description="as printed, section number kept, leaders and page removed")
    level: int = Field(1, ge=1, le=6)
    number: str | None = Field(None, description="section number parsed off the title")
    printed_page: str | None = Field(None, description="page reference as printed")
    scan_page: int | None = Field(None, description="scan page carrying that printed number")


class Toc(StoredModel):
    """One document per book (``id`` = book id), replaced whole."""

    book: str
    found: bool = False
    pages: list[int] = Field(default_factory=list, description="scan pages of the printed ToC")
    confidence: float | None = None
    entries: list[TocEntry] = Field(default_factory=list)
    found_by: str | None = None
    extracted_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

"""Book and its bibliographic metadata."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field

from ._base import StoredModel, utcnow
from .page import OpMetrics


class SourceFile(BaseModel):
    """One input file of a book (a PDF), or one image of an image folder."""

    path: str
    sha256: str
    kind: Literal["pdf", "image"]
    page_count: int = Field(ge=1)
    size: int = 0


class OpState(str, Enum):
    not_started = "not_started"
    running = "running"
    done = "done"
    failed = "failed"
    stale = "stale"


class OpFlag(BaseModel):
    """Progress of a book-level operation (metadata, toc_find, toc_extract)."""

    state: OpState = OpState.not_started
    attempts: int = 0
    error: str | None = None
    provider: str | None = None
    updated_at: datetime | None = None


class BookMetadata(BaseModel):
    """Bibliographic data as printed in the book's front matter; null where not printed."""

    title: str | None = None
    subtitle: str | None = None
    authors: list[str] = Field(default_factory=list)
    editors: list[str] = Field(default_factory=list)
    publisher: str | None = None
    year: str | None = None
    isbn: str | None = None
    lccn: str | None = None
    language: str | None = None
    source_pages: list[int] = Field(default_factory=list, description="scan pages the data came from")
    method: str | None = None


BOOK_OPS = ("metadata", "toc_find", "toc_extract")


class Book(StoredModel):
    """A scanned book: its sources, page count and book-level state."""

    name: str = Field(description="readable name, from the first source file")
    sources: list[SourceFile]
    page_count: int = Field(ge=0)
    metadata: BookMetadata | None = None
    flags: dict[str, OpFlag] = Field(default_factory=dict)
    ocr_providers: list[str] = Field(default_factory=list)
    stale: list[str] = Field(default_factory=list, description="ops whose results predate new inputs")
    metrics: dict[str, OpMetrics] = Field(default_factory=dict, description="book-level ops' last run")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def flag(self, op: str) -> OpFlag:
        return self.flags.get(op) or OpFlag()

"""Pydantic models of everything bookops stores."""

from ._base import StoredModel, utcnow
from .book import BOOK_OPS, Book, BookMetadata, OpFlag, OpState, SourceFile
from .job import CallRecord, HistoryEvent, JobRecord, JobStatus, Lease, OpProgress
from .page import (
    Blend,
    ContentType,
    FolioToken,
    ImageInfo,
    OcrResult,
    OcrState,
    OpError,
    OpMetrics,
    Page,
    PageLabel,
    PageSource,
    Word,
    ocr_result_id,
    page_id,
)
from .toc import Toc, TocEntry

__all__ = [
    "BOOK_OPS", "Blend", "Book", "BookMetadata", "CallRecord", "ContentType", "FolioToken", "HistoryEvent",
    "ImageInfo", "JobRecord", "JobStatus", "Lease", "OcrResult", "OcrState", "OpError", "OpFlag",
    "OpMetrics", "OpProgress", "OpState", "Page", "PageLabel", "PageSource", "SourceFile",
    "StoredModel", "Toc", "TocEntry", "Word", "ocr_result_id", "page_id", "utcnow",
]

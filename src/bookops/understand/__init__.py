"""Offline (no-LLM) book understanding: pure heuristics over per-page OCR text and word boxes."""

from .isbn import find_isbns, find_lccn, isbn10_valid, isbn13_valid, normalize_isbn
from .labels import fix_label_sequence, label_pages, read_page_label
from .metadata import extract_metadata
from .pagetext import PageText
from .toc_find import find_toc
from .toc_parse import parse_toc, resolve_scan_pages

__all__ = [
    "PageText", "extract_metadata", "find_isbns", "find_lccn", "find_toc", "fix_label_sequence",
    "isbn10_valid", "isbn13_valid", "label_pages", "normalize_isbn", "parse_toc", "read_page_label",
    "resolve_scan_pages",
]

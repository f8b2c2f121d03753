"""rerun-toc replaces the ToC, records the reset and the new result, and changes nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bookops
from bookops.schema import JobStatus

from ..conftest import SAMPLE_PDF, sample_pdf

pytestmark = [pytest.mark.timeout(180), pytest.mark.skipif(not SAMPLE_PDF.exists(), reason="no sample book")]

_TOC_KEYS = ("toc_find", "toc_extract")


def _without_toc_state(book: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in book.items() if k != "updated_at"}
    for key in ("flags", "metrics"):
        out[key] = {k: v for k, v in (book.get(key) or {}).items() if k not in _TOC_KEYS}
    return out


async def _snapshot(lib: bookops.Library, book_id: str) -> dict[str, Any]:
    async with lib.session() as store:
        return {
            "pages": await store.pages.find({"book": book_id}, sort=[("_id", 1)]),
            "ocr": await store.ocr_results.find({"book": book_id}, sort=[("_id", 1)]),
            "book": _without_toc_state(await store.books.get(book_id) or {}),
            "toc": await store.tocs.get(book_id),
        }


async def test_rerun_toc_replaces_only_the_toc(tmp_path: Path) -> None:
    lib = bookops.open(tmp_path / "home")
    book = await lib.aadd(sample_pdf(tmp_path / "front.pdf", range(1, 7)))
    first = await lib.arun("process-pages", book.id)
    assert first.status == JobStatus.succeeded, first.error
    before = await _snapshot(lib, book.id)
    assert before["toc"] is not None and before["toc"]["found"] and before["toc"]["entries"]

    rerun = await lib.arun("rerun-toc", book.id)
    assert rerun.status == JobStatus.succeeded, rerun.error
    after = await _snapshot(lib, book.id)
    # nothing but the ToC changed: pages, OCR and the rest of the book document are as they were
    assert after["pages"] == before["pages"]
    assert after["ocr"] == before["ocr"]
    assert after["book"] == before["book"]
    # the ToC was made anew (same inputs, same answer), not left in place
    assert after["toc"]["created_at"] > before["toc"]["created_at"]
    assert after["toc"]["entries"] == before["toc"]["entries"]

    events = [e for e in await lib.ahistory(book.id, job=rerun.id) if e.op != "job"]
    names = [e.event for e in events]
    assert names[0] == "toc.reset"
    assert events[0].detail["old"]["entries"] == len(before["toc"]["entries"])
    assert "toc_find.done" in names and "toc_extract.done" in names
    assert names.index("toc_find.done") < names.index("toc_extract.done")

    forced = await lib.arun("rerun-toc", book.id, toc_pages=[4])
    assert forced.status == JobStatus.succeeded, forced.error
    toc = await lib.atoc(book.id)
    assert toc is not None and toc.pages == [4] and toc.found_by == "forced"
    assert len(await lib.ahistory(book.id, event="toc.reset")) == 2

"""Shared fixtures: a clean environment per test, settings and an embedded store under tmp_path."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from bookops.settings import Settings
from bookops.store import Store, open_store

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
SAMPLE_PDF = Path(__file__).resolve().parents[1] / "samples" / "sample-book.pdf"


def sample_pdf(out: Path, pages: Iterable[int], *, blank_after: bool = False) -> Path:
    """A PDF of some pages (1-based) of the sample book, their scans copied as they are; with
    ``blank_after`` a blank US-letter leaf follows them."""
    src, dst = pdfium.PdfDocument(str(SAMPLE_PDF)), pdfium.PdfDocument.new()
    try:
        dst.import_pages(src, [p - 1 for p in pages])
        if blank_after:
            dst.new_page(612, 792)
        dst.save(str(out))
    finally:
        dst.close()
        src.close()
    return out


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BOOKOPS_* or OPENAI_* variable leaks in from the developer's shell; home is tmp."""
    for key in list(os.environ):
        if key.startswith(("BOOKOPS_", "OPENAI_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BOOKOPS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    st = await open_store(settings)
    try:
        yield st
    finally:
        await st.close()

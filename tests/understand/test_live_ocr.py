"""Two real corpus pages through tesseract, to keep the heuristics honest on real OCR output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bookops.understand import PageText, read_page_label
from bookops.understand.pagetext import text_from_words, words_from_tesseract

BOOK = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "dev" / "around-the-bend" / "book.pdf"

pytestmark = pytest.mark.skipif(not BOOK.exists(), reason="benchmark corpus not present")


def _ocr(index: int) -> PageText:
    import pypdfium2 as pdfium
    import pytesseract
    from PIL import Image

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    pdf = pdfium.PdfDocument(str(BOOK))
    try:
        img = next(o for o in pdf[index - 1].get_objects() if isinstance(o, pdfium.PdfImage))
        pil = img.get_bitmap().to_pil().convert("L")
    finally:
        pdf.close()
    big = pil.resize((pil.width * 2, pil.height * 2), Image.Resampling.LANCZOS)
    data = pytesseract.image_to_data(big, lang="eng", config="--psm 4 --dpi 300",
                                     output_type=pytesseract.Output.DICT)
    words = words_from_tesseract(data, scale=2.0)
    return PageText(page_num=index, text=text_from_words(words), words=words,
                    width=pil.width, height=pil.height)


@pytest.mark.parametrize(("index", "folio"), [(26, "18"), (29, "21")])
def test_folio_on_scanned_page(index: int, folio: str) -> None:
    assert read_page_label(_ocr(index)).printed_page == folio

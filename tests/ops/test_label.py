"""The Label op: per-page labels keep their folio tokens, and the book-wide pass repairs from them."""

from __future__ import annotations

from bookops.jobs.runner import run_operations
from bookops.ops.label import Label
from bookops.schema import Blend, Book, OcrResult, Page, PageSource, SourceFile, ocr_result_id
from bookops.settings import Settings
from bookops.store import Store
from tests.understand._build import body, page, row

# scan pages 1..6 print folios 10..15 at the foot; OCR read page 4's "13" as "l3"
FOLIOS = ["10", "11", "12", "l3", "14", "15"]


async def _book(store: Store) -> Book:
    n = len(FOLIOS)
    book = Book(id="folios", name="folios", page_count=n, ocr_providers=["tesseract"],
                sources=[SourceFile(path="x.pdf", sha256="0" * 64, kind="pdf", page_count=n)])
    pages, results = [], []
    for num, folio in enumerate(FOLIOS, 1):
        text = page(num, *body(300, 30), row(1440, (630, folio)))
        doc = Page.new(book.id, num, PageSource(file=0, index=num - 1))
        doc.extracted = doc.blended = True
        doc.blend = Blend(text=text.text, sources=["tesseract"], method="single")
        pages.append(doc)
        results.append(OcrResult(id=ocr_result_id(book.id, num, "tesseract"), book=book.id, page_num=num,
                                 provider="tesseract", text=text.text, words=text.words, confidence=0.95,
                                 image_width=text.width, image_height=text.height))
    await store.add_book(book, pages)
    for r in results:
        await store.put_ocr_result(r)
    return book


async def _printed(store: Store, book: Book) -> list[str | None]:
    return [p.label.printed_page if p.label else None for p in await store.list_pages(book.id)]


async def _rerun_sequence(store: Store, settings: Settings, book: Book) -> None:
    """The book-wide pass made due again, as a label rerun of some page would make it."""
    await store.patch_pages(book.id, {}, {"$set": {"label.printed_page": None}})
    await store.patch_book(book.id, {"$set": {"flags.label.state": "running"}})
    await run_operations([Label()], store, book.id, settings=settings)


async def test_labels_keep_folio_tokens_and_the_pass_repairs_from_them(store: Store,
                                                                        settings: Settings) -> None:
    book = await _book(store)
    await run_operations([Label()], store, book.id, settings=settings)
    pages = await store.list_pages(book.id)
    assert all(p.label and p.label.folio_tokens for p in pages)
    assert [(t.raw, t.value) for t in pages[3].label.folio_tokens] == [("l3", None)]  # type: ignore[union-attr]
    assert await _printed(store, book) == ["10", "11", "12", "13", "14", "15"]
    assert pages[3].label and pages[3].label.read_as is None and pages[3].label.sequence_fixed

    # the pass reads the tokens kept with the labels, not the word boxes: with the words gone it
    # still finds the garbled "l3" to repair
    for num in range(1, len(FOLIOS) + 1):
        await store.put_ocr_result(OcrResult(id=ocr_result_id(book.id, num, "tesseract"), book=book.id,
                                             page_num=num, provider="tesseract", text="", confidence=0.95))
    await _rerun_sequence(store, settings, book)
    assert await _printed(store, book) == ["10", "11", "12", "13", "14", "15"]


async def test_labels_stored_without_tokens_have_their_pages_read_again(store: Store,
                                                                        settings: Settings) -> None:
    book = await _book(store)
    await run_operations([Label()], store, book.id, settings=settings)
    await store.patch_pages(book.id, {}, {"$set": {"label.folio_tokens": None}})
    await _rerun_sequence(store, settings, book)
    assert await _printed(store, book) == ["10", "11", "12", "13", "14", "15"]
    page4 = await store.get_page(book.id, 4)
    assert page4 is not None and page4.label is not None and page4.label.sequence_fixed

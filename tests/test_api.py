"""The notebook facade: ``bookops.open``, sync and async calls, standalone operations, displays."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from rich.console import Console

import bookops
from bookops.display import BookView, CostView, HistoryView, JobView, PageView, TocView
from bookops.ops import Blend, Extract, Label, Metadata, Ocr, TocExtract, TocFind
from bookops.schema import Blend as BlendResult
from bookops.schema import Book, BookMetadata, ImageInfo, JobStatus, OcrResult, PageLabel, Toc, TocEntry

from .conftest import sample_pdf


@pytest.fixture(scope="module")
def short_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_pdf(tmp_path_factory.mktemp("pdf") / "short-sample.pdf", range(1, 4))


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory, short_pdf: Path) -> tuple[bookops.Library, str]:
    """A library on its own home with the 3-page book run through process-pages (sync API)."""
    lib = bookops.open(tmp_path_factory.mktemp("processed-home"), ocr_providers=["tesseract"])
    book = lib.add(short_pdf)
    job = lib.run("process-pages", book.id)
    assert job.status == JobStatus.succeeded, job.error
    return lib, book.id


def _rich_text(obj: object) -> str:
    console = Console(width=120, record=True, color_system=None, file=io.StringIO())
    console.print(obj)
    return console.export_text()


# ---------------------------------------------------------------------------------- open


def test_open_uses_bookops_home_or_the_given_home(tmp_path: Path) -> None:
    lib = bookops.open()
    assert lib.settings.home == tmp_path / "home"  # BOOKOPS_HOME from the clean_environ fixture
    other = bookops.open(tmp_path / "elsewhere", ocr_lang="deu")
    assert other.settings.home == tmp_path / "elsewhere"
    assert other.settings.ocr_lang == "deu"
    assert str(tmp_path / "elsewhere") in repr(other)


def test_open_with_a_mongo_uri_does_not_connect_until_used() -> None:
    lib = bookops.open(mongo_uri="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50")
    assert lib.settings.mongo_uri is not None
    assert "mongodb" in repr(lib) and "127.0.0.1" not in repr(lib)  # no URI (credentials) in the repr


# ---------------------------------------------------------------------------------- books


def test_add_book_books_pages_sync(short_pdf: Path) -> None:
    lib = bookops.open()
    book = lib.add(short_pdf)
    assert isinstance(book, Book) and book.page_count == 3
    assert lib.add(short_pdf).id == book.id  # same content, same book
    assert [b.id for b in lib.books()] == [book.id]
    assert lib.book(book.id).name == "short-sample"
    assert [p.page_num for p in lib.pages(book.id)] == [1, 2, 3]
    assert lib.page(book.id, 2).extracted is False
    with pytest.raises(bookops.UserError, match="no book"):
        lib.book("nope")
    with pytest.raises(bookops.UserError, match="no page 9"):
        lib.page(book.id, 9)
    with pytest.raises(bookops.UserError, match="no book"):
        lib.page("nope", 1)


async def test_sync_calls_work_inside_a_running_event_loop(short_pdf: Path) -> None:
    """Jupyter runs cells in a loop: the blocking API must work there, without nest_asyncio."""
    asyncio.get_running_loop()  # we are inside one
    lib = bookops.open()
    book = lib.add(short_pdf)
    assert [b.id for b in lib.books()] == [book.id]
    assert [b.id for b in await lib.abooks()] == [book.id]  # the async API in the same loop
    assert (await lib.abook(book.id)).page_count == 3
    assert len(await lib.apages(book.id)) == 3


async def test_two_libraries_on_different_homes_never_share_books(tmp_path: Path, short_pdf: Path) -> None:
    a = bookops.open(tmp_path / "a")
    b = bookops.open(tmp_path / "b")
    book = await a.aadd(short_pdf)
    assert [x.id for x in await a.abooks()] == [book.id]
    assert await b.abooks() == []
    assert b.books() == []  # the sync path too
    with pytest.raises(bookops.UserError):
        await b.abook(book.id)
    # Interleaved calls on one loop, each library with its own store kept open for the loop.
    sa, sb = await a.astore(), await b.astore()
    assert sa is not sb
    assert [x.id for x in await a.abooks()] == [book.id] and await b.abooks() == []
    await a.aclose()
    await b.aclose()
    other = await b.aadd(sample_pdf(tmp_path / "two.pdf", range(1, 3)))
    assert {x.id for x in a.books()} == {book.id}
    assert {x.id for x in b.books()} == {other.id}


# ---------------------------------------------------------------------------------- jobs


def test_process_pages_then_rerun_toc(processed: tuple[bookops.Library, str]) -> None:
    lib, book_id = processed
    pages = lib.pages(book_id)
    assert all(p.extracted and p.blended and p.labeled for p in pages)
    before = lib.toc(book_id)
    assert before is not None
    job = lib.run("rerun-toc", book_id)
    assert job.status == JobStatus.succeeded
    assert [e.event for e in lib.history(book_id, event="toc.reset")] == ["toc.reset"]
    assert {j.kind for j in lib.jobs(book_id)} == {"process-pages", "rerun-toc"}


async def test_arun_in_a_running_loop(processed: tuple[bookops.Library, str]) -> None:
    lib, book_id = processed
    job = await lib.arun("rerun-toc", book_id)
    assert job.status == JobStatus.succeeded
    assert (await lib.atoc(book_id)) is not None


# ---------------------------------------------------------------------------------- standalone ops


async def test_every_op_alone_in_order_returns_pydantic_models(tmp_path: Path) -> None:
    lib = bookops.open()
    book = await lib.aadd(sample_pdf(tmp_path / "two-pages.pdf", range(1, 3)))  # title and copyright page

    images = await Extract().run(lib, book.id)
    assert len(images) == 2 and all(isinstance(i, ImageInfo) for i in images)

    texts = await Ocr(provider="tesseract").run(lib, book, pages=range(1, 2))
    assert [r.page_num for r in texts] == [1] and all(isinstance(r, OcrResult) for r in texts)
    # the sync form, inside this running loop; done pages are not read again
    texts = Ocr(provider="tesseract").run_sync(lib, book.id, pages=range(1, 3))
    assert [r.page_num for r in texts] == [1, 2]

    blends = await Blend().run(lib, book.id)
    assert all(isinstance(b, BlendResult) for b in blends) and len(blends) == 2
    labels = await Label().run(lib, book.id)
    assert all(isinstance(x, PageLabel) for x in labels) and len(labels) == 2
    metadata = await Metadata().run(lib, book.id)
    assert isinstance(metadata, BookMetadata)
    found = await TocFind().run(lib, book.id)
    assert isinstance(found, Toc)
    toc = await TocExtract().run(lib, book.id)
    assert isinstance(toc, Toc)
    assert all(isinstance(e, TocEntry) for e in toc.entries)
    for result in (images, texts, blends, labels, [metadata, found, toc]):
        assert all(isinstance(x, BaseModel) for x in result)


def test_an_op_run_alone_without_its_input_says_which_op_to_run_first(short_pdf: Path) -> None:
    lib = bookops.open()
    book = lib.add(short_pdf)
    with pytest.raises(bookops.UserError, match=r"Ocr needs extracted pages .*run Extract before it"):
        Ocr(provider="tesseract").run_sync(lib, book.id, pages=range(1, 3))
    with pytest.raises(bookops.UserError, match=r"Ocr needs extracted pages .*run Extract before it"):
        lib.run_ops(Ocr(provider="tesseract"), book.id, pages=range(1, 3))
    with pytest.raises(bookops.UserError, match=r"TocExtract needs TocFind done"):
        lib.run_ops([TocExtract()], book.id)
    with pytest.raises(bookops.UserError, match=r"Blend needs OCR by tesseract"):
        lib.run_ops([Extract(), Blend()], book.id, pages=[1])
    # In order, the inputs of each op are made by the one before it.
    results = lib.run_ops([Extract(), Ocr(provider="tesseract")], book.id, pages=[1, 2])
    assert [r.page_num for r in results] == [1, 2]
    assert lib.run_ops(Ocr(provider="tesseract"), book.id, pages=[1])[0].page_num == 1  # now there


# ---------------------------------------------------------------------------------- displays


def test_show_book(processed: tuple[bookops.Library, str]) -> None:
    lib, book_id = processed
    view = lib.show_book(book_id)
    assert isinstance(view, BookView)
    assert view.pages_done == {"extracted": 3, "ocr tesseract": 3, "blended": 3, "labeled": 3, "failed": 0}
    html = view._repr_html_()
    assert book_id in html and "metadata" in html and "3/3" in html and "toc_find" in html
    title = lib.book(book_id).metadata
    assert title is not None and title.title and title.title in html
    text = _rich_text(view)
    assert book_id in text and "ocr tesseract" in text and "toc_extract" in text and "done" in text
    assert str(view).strip() and repr(view) == f"<BookView {book_id}>"


def test_show_page_has_an_inline_image_beside_text_and_label(processed: tuple[bookops.Library, str]) -> None:
    lib, book_id = processed
    view = lib.show_page(book_id, 3, thumb_width=200)
    assert isinstance(view, PageView)
    html = view._repr_html_()
    assert re.search(r'<img src="data:image/(png|jpeg);base64,[A-Za-z0-9+/=]{200,}"', html)
    assert "max-width:200px" in html and "printed page" in html and "blended text" in html
    first_words = view.page.text.split()[:3]
    assert first_words and all(w.replace("&", "&amp;").replace("<", "&lt;") in html for w in first_words)
    text = _rich_text(view)
    assert "page 3" in text and "content" in text


def test_show_toc_indents_by_level(processed: tuple[bookops.Library, str]) -> None:
    lib, book_id = processed
    view = lib.show_toc(book_id)
    assert isinstance(view, TocView) and view.toc is not None
    html = view._repr_html_()
    assert "printed page" in html and "scan page" in html
    for e in view.toc.entries:
        assert f"padding-left:{1.5 * (e.level - 1):.1f}em" in html
    assert "table of contents" in _rich_text(view) or "entries" in _rich_text(view)


def test_show_history_job_and_cost(processed: tuple[bookops.Library, str]) -> None:
    lib, book_id = processed
    hist = lib.show_history(book_id)
    assert isinstance(hist, HistoryView) and hist.counts["extract.done"] == 3
    assert "extract.done" in hist._repr_html_() and "extract.done" in _rich_text(hist)
    job = lib.jobs(book_id)[0]
    jv = lib.show_job(job.id)
    assert isinstance(jv, JobView) and "ocr:tesseract" in jv._repr_html_() and job.id in _rich_text(jv)
    cost = lib.cost(book_id)
    assert isinstance(cost, CostView) and cost.total_usd == 0.0 and cost.by_op == {}
    assert "$0.0000" in cost._repr_html_() and "$0.0000" in _rich_text(cost)
    with pytest.raises(bookops.UserError):
        lib.show_job("no-such-job")


def test_views_escape_html_and_handle_missing_data() -> None:
    from bookops.schema import Page, PageSource

    page = Page.new("b-1", 1, PageSource(file=0, index=0))
    page.blend = BlendResult(text="<script>alert(1)</script> & co", sources=["tesseract"], method="single")
    html = PageView(page=page, image_path=Path("/no/such/file.png"))._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "image missing" in html
    assert "no image yet" in PageView(page=Page.new("b-1", 2, PageSource(file=0, index=1)))._repr_html_()
    toc = Toc(id="b-1", book="b-1", found=True, pages=[3],
              entries=[TocEntry(title="<b>One</b>", level=1, printed_page="1", scan_page=5),
                       TocEntry(title="One.1", level=2, printed_page="2")])
    html = TocView(book_id="b-1", toc=toc)._repr_html_()
    assert "&lt;b&gt;One&lt;/b&gt;" in html and "padding-left:1.5em" in html
    assert "  One.1" in _rich_text(TocView(book_id="b-1", toc=toc))
    assert "no table of contents yet" in TocView(book_id="b-1")._repr_html_()


# ---------------------------------------------------------------------------------- sync layer


async def test_run_sync_in_a_loop_returns_raises_and_cancels_on_interrupt() -> None:
    import signal
    import threading

    from bookops._sync import run_sync

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise bookops.UserError("bad input")

    assert run_sync(answer()) == 42
    with pytest.raises(bookops.UserError, match="bad input"):
        run_sync(fail())

    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    # A kernel interrupt is SIGINT to the main thread while the cell waits; ipykernel leaves Python's
    # default handler (KeyboardInterrupt) in place, the test loop's runner does not: put it back.
    main_id = threading.main_thread().ident
    assert main_id is not None and threading.get_ident() == main_id
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        timer = threading.Timer(0.3, signal.pthread_kill, (main_id, signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            run_sync(slow())
        timer.join()
    finally:
        signal.signal(signal.SIGINT, old)
    assert cancelled.wait(5)

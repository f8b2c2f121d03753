"""Adding books: ordering, ids, idempotence, and nothing written when an input is bad."""

from __future__ import annotations

import hashlib
import random
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bookops.errors import UserError
from bookops.ingest import add_book, check_book_id, natural_key, slugify
from bookops.schema import Page
from bookops.settings import Settings
from bookops.store import Store
from tests.conftest import SAMPLE_PDF, sample_pdf


def make_image_folder(folder: Path, names: list[str]) -> Path:
    """Images whose pixels encode their name, so each has its own hash; written in shuffled order."""
    folder.mkdir(parents=True)
    shuffled = list(names)
    random.Random(7).shuffle(shuffled)
    for name in shuffled:
        shade = int(hashlib.sha256(name.encode()).hexdigest()[:2], 16)
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(
            Path(name).suffix.lower(), "PNG")
        Image.new("L", (40, 60), shade).save(folder / name, format=fmt)
    return folder


async def snapshot(store: Store) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    return await store.books.find({}, sort=[("_id", 1)]), await store.pages.find({}, sort=[("_id", 1)])


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["page10.png", "page2.png", "Page1.png", "page1a.png", "page02b.png", "cover.png"]
    assert sorted(names, key=natural_key) == [
        "cover.png", "Page1.png", "page1a.png", "page2.png", "page02b.png", "page10.png"]


def test_slugify_keeps_a_readable_ascii_name() -> None:
    assert slugify("Über Bücher (1923) – Band 2") == "uber-bucher-1923-band-2"
    assert slugify("日本語") == "book"
    assert len(slugify("x" * 200)) <= 40


@pytest.mark.parametrize("bad", ["", "Upper", "has space", "a:b", "../x", "-lead", "x" * 65, "ü"])
def test_check_book_id_rejects_non_slug_ids(bad: str) -> None:
    with pytest.raises(UserError, match="not valid"):
        check_book_id(bad)


async def test_pdf_gets_slug_plus_hash_id_and_one_page_doc_per_page(
        store: Store, settings: Settings) -> None:
    book, created = await add_book(store, settings, [SAMPLE_PDF])
    assert created
    assert re.fullmatch(r"sample-book-[0-9a-f]{8}", book.id)
    assert book.page_count == 12
    [src] = book.sources
    assert src.kind == "pdf" and src.page_count == 12
    assert src.sha256 == hashlib.sha256(SAMPLE_PDF.read_bytes()).hexdigest()
    assert src.size == SAMPLE_PDF.stat().st_size
    assert src.path == str(SAMPLE_PDF.resolve())

    pages = await store.list_pages(book.id)
    assert [p.page_num for p in pages] == list(range(1, 13))
    assert [(p.source.file, p.source.index) for p in pages] == [(0, j) for j in range(12)]
    assert pages[0].id == f"{book.id}:0001"
    assert (await store.get_book(book.id)) == book


async def test_same_content_again_returns_same_id_and_writes_nothing(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    first, created = await add_book(store, settings, [SAMPLE_PDF])
    before = await snapshot(store)

    again, created_again = await add_book(store, settings, [SAMPLE_PDF])
    # A renamed copy is the same scans, so the same book.
    renamed = shutil.copy(SAMPLE_PDF, tmp_path / "Another Name.pdf")
    copy, created_copy = await add_book(store, settings, [Path(renamed)])

    assert created and not created_again and not created_copy
    assert again.id == copy.id == first.id
    assert await snapshot(store) == before


async def test_several_pdfs_keep_the_order_given(store: Store, settings: Settings, tmp_path: Path) -> None:
    vol1 = sample_pdf(tmp_path / "vol 1.pdf", [1, 2, 3])
    vol2 = sample_pdf(tmp_path / "vol 2.pdf", [6, 7])

    book, _ = await add_book(store, settings, [vol1, vol2])
    assert book.name == "vol 1" and book.id.startswith("vol-1-")
    assert [s.path for s in book.sources] == [str(vol1.resolve()), str(vol2.resolve())]
    assert [s.page_count for s in book.sources] == [3, 2]
    pages = await store.list_pages(book.id)
    assert [(p.page_num, p.source.file, p.source.index) for p in pages] == [
        (1, 0, 0), (2, 0, 1), (3, 0, 2), (4, 1, 0), (5, 1, 1)]

    # The other order is other content: a different book.
    swapped, created = await add_book(store, settings, [vol2, vol1])
    assert created and swapped.id != book.id
    assert [s.path for s in swapped.sources] == [str(vol2.resolve()), str(vol1.resolve())]


async def test_image_folder_in_natural_order_hidden_files_ignored(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    names = [f"page{n}.png" for n in (1, 2, 10)] + ["page3.JPG", "page11.tif", "page4.TIFF", "page5.jpeg"]
    folder = make_image_folder(tmp_path / "Scans – Band 1", names)
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / ".thumbs").mkdir()

    book, created = await add_book(store, settings, [folder])
    assert created and book.name == "Scans – Band 1" and book.id.startswith("scans-band-1-")
    assert [Path(s.path).name for s in book.sources] == [
        "page1.png", "page2.png", "page3.JPG", "page4.TIFF", "page5.jpeg", "page10.png", "page11.tif"]
    assert all(s.kind == "image" and s.page_count == 1 for s in book.sources)
    assert all(Path(s.path).is_absolute() for s in book.sources)
    pages = await store.list_pages(book.id)
    assert [(p.page_num, p.source.file, p.source.index) for p in pages] == [
        (n, n - 1, 0) for n in range(1, 8)]


async def test_given_id_is_used_and_reuse_for_other_content_is_refused(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    book, created = await add_book(store, settings, [SAMPLE_PDF], book_id="my-book")
    assert created and book.id == "my-book"
    again, created = await add_book(store, settings, [SAMPLE_PDF], book_id="my-book")
    assert again.id == "my-book" and not created

    other = sample_pdf(tmp_path / "other.pdf", [1])
    with pytest.raises(UserError, match="already used"):
        await add_book(store, settings, [other], book_id="my-book")
    with pytest.raises(UserError, match="not valid"):
        await add_book(store, settings, [other], book_id="My Book")
    assert [b.id for b in await store.list_books()] == ["my-book"]


async def test_one_bad_image_means_nothing_is_written(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    await add_book(store, settings, [SAMPLE_PDF])
    before = await snapshot(store)
    folder = make_image_folder(tmp_path / "scans", ["p1.png", "p2.png", "p3.png"])
    data = (folder / "p3.png").read_bytes()
    (folder / "p3.png").write_bytes(data[: len(data) // 2])

    with pytest.raises(UserError) as err:
        await add_book(store, settings, [folder])
    assert "p3.png" in err.value.message and "\n" not in err.value.message
    assert await snapshot(store) == before


async def test_page_documents_are_plain_new_pages(store: Store, settings: Settings) -> None:
    book, _ = await add_book(store, settings, [SAMPLE_PDF])
    page = await store.get_page(book.id, 5)
    assert page is not None
    expected = Page.new(book.id, 5, page.source)
    assert page.model_dump(exclude={"source"}) == expected.model_dump(exclude={"source"})

"""The Extract operation driven by hand on the embedded store, with CPU work run inline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from PIL import Image

from bookops.ops.base import OpContext, Operation
from bookops.ops.extract import Extract
from bookops.pools import Dispatcher
from bookops.pools.units import WorkResult, WorkUnit
from bookops.schema import Book, Page, PageSource, SourceFile
from bookops.settings import Settings
from bookops.store import Store
from bookops.store.history import HistoryBuffer
from tests.conftest import SAMPLE_PDF

T = TypeVar("T")


class InlineCpu:
    """The CPU pool's interface, running each function in this process."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)


class InlineDispatcher:
    def __init__(self) -> None:
        self.cpu = InlineCpu()


async def add_book(store: Store, sources: list[SourceFile], pages: list[PageSource],
                   book_id: str = "b1") -> Book:
    book = Book(id=book_id, name=book_id, sources=sources, page_count=len(pages))
    await store.add_book(book, [Page.new(book_id, i, src) for i, src in enumerate(pages, start=1)])
    return book


def sample_book_sources(n: int = 3) -> tuple[list[SourceFile], list[PageSource]]:
    return ([SourceFile(path=str(SAMPLE_PDF), sha256="0" * 64, kind="pdf", page_count=12)],
            [PageSource(file=0, index=i) for i in range(n)])


@pytest.fixture
async def ctx_for(store: Store, settings: Settings) -> AsyncIterator[Callable[..., OpContext]]:
    made: list[OpContext] = []

    def make(book: Book, *, pages: set[int] | None = None, **params: Any) -> OpContext:
        ctx = OpContext(store=store, settings=settings, dispatcher=cast(Dispatcher, InlineDispatcher()),
                        book=book, history=HistoryBuffer(store), job_id="job1",
                        pages=frozenset(pages) if pages is not None else None, params=dict(params))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.history.aclose()


async def drive(op: Operation, ctx: OpContext, units: list[WorkUnit]) -> None:
    """What the runner does with each unit: execute, then hand the result back."""
    for unit in units:
        value = await op.execute(ctx, unit)
        await op.handle_result(ctx, WorkResult(unit=unit, ok=True, value=value, run_s=0.5, queued_s=0.1))


async def test_units_cover_wanted_pages_not_yet_extracted(store: Store, ctx_for: Callable[..., OpContext],
                                                          settings: Settings) -> None:
    book = await add_book(store, *sample_book_sources(4))
    await store.patch_page("b1", 2, {"$set": {"extracted": True}})
    ctx = ctx_for(book, pages={1, 2, 3}, dpi=200, renderer="poppler")

    units = await Extract().create_units(ctx)

    assert [u.id for u in units] == ["extract:b1:0001", "extract:b1:0003"]
    u = units[1]
    assert (u.op, u.provider, u.book, u.page) == ("extract", "cpu", "b1", 3)
    assert u.payload == {"source": str(SAMPLE_PDF), "index": 2, "kind": "pdf",
                         "out_stem": str(settings.books_dir / "b1" / "pages" / "0003"),
                         "dpi": 200, "renderer": "poppler"}


async def test_extract_writes_image_and_flag_together(store: Store, ctx_for: Callable[..., OpContext],
                                                      settings: Settings) -> None:
    book = await add_book(store, *sample_book_sources(3))
    ctx = ctx_for(book)
    op = Extract()
    assert not await op.is_complete(ctx)

    await drive(op, ctx, await op.create_units(ctx))

    page = await store.get_page("b1", 2)
    assert page is not None and page.extracted and page.image is not None
    assert page.image.path == "books/b1/pages/0002.jpg"  # relative to BOOKOPS_HOME
    assert page.image.method == "embedded" and page.image.dpi == 150
    with Image.open(settings.home / page.image.path) as img:
        assert img.size == (page.image.width, page.image.height) == (1275, 1650)
    assert page.metrics["extract"].seconds == 0.5 and page.metrics["extract"].quality["method"] == "embedded"
    assert await op.is_complete(ctx) and await op.done_count(ctx) == 3
    assert await op.create_units(ctx) == []
    await ctx.history.flush()
    events = await store.list_history("b1", event="extract.done")
    assert sorted(e.page for e in events if e.page is not None) == [1, 2, 3]
    assert [i.path if i else None for i in await op.results(ctx)] == [
        f"books/b1/pages/{n:04d}.jpg" for n in (1, 2, 3)]


async def test_a_success_clears_an_earlier_failure(store: Store, ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(1))
    await store.patch_page("b1", 1, {"$set": {"errors.extract": {"kind": "transient", "message": "x"}}})
    ctx = ctx_for(book)
    units = await Extract().create_units(ctx)
    assert len(units) == 1  # tried again in a new run

    await drive(Extract(), ctx, units)

    page = await store.get_page("b1", 1)
    assert page is not None and page.extracted and "extract" not in page.errors


async def test_image_folder_pages_are_normalised(store: Store, ctx_for: Callable[..., OpContext],
                                                 tmp_path: Path, settings: Settings) -> None:
    cmyk, plain = tmp_path / "a.tif", tmp_path / "b.png"
    Image.new("CMYK", (50, 70), (0, 255, 255, 0)).save(cmyk)
    Image.new("L", (50, 70), 128).save(plain)
    sources = [SourceFile(path=str(p), sha256="0" * 64, kind="image", page_count=1) for p in (cmyk, plain)]
    book = await add_book(store, sources, [PageSource(file=0, index=0), PageSource(file=1, index=0)])
    ctx = ctx_for(book)

    await drive(Extract(), ctx, await Extract().create_units(ctx))

    pages = await store.list_pages("b1")
    assert [p.image.path if p.image else None for p in pages] == ["books/b1/pages/0001.png",
                                                                 "books/b1/pages/0002.png"]
    assert all(p.extracted and p.image and p.image.method == "image" for p in pages)
    with Image.open(settings.home / "books/b1/pages/0001.png") as img:
        assert img.mode == "RGB"


async def test_reset_forgets_images_and_flags(store: Store, ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(2))
    ctx = ctx_for(book)
    op = Extract()
    await drive(op, ctx, await op.create_units(ctx))

    await op.reset(store, "b1")

    pages = await store.list_pages("b1")
    assert all(not p.extracted and p.image is None and "extract" not in p.metrics for p in pages)
    assert len(await op.create_units(ctx)) == 2

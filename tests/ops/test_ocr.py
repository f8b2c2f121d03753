"""The Ocr operation: units, result then flag, registry, reset; and a real run with Extract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bookops.errors import ConfigError, ErrorKind
from bookops.jobs.runner import run_operations
from bookops.ops.base import OpContext
from bookops.ops.extract import Extract
from bookops.ops.ocr import Ocr
from bookops.pools.units import UnitError, Usage, WorkResult, WorkUnit
from bookops.providers.ocr_engines import get_ocr_engine, register_ocr_engine
from bookops.schema import ImageInfo, OcrResult
from bookops.settings import Settings
from bookops.store import Store
from tests.ops.test_extract import add_book, ctx_for, drive, sample_book_sources

__all__ = ["ctx_for"]  # the fixture, shared with test_extract

WORDS = [{"text": "Hello", "conf": 96.0, "left": 10, "top": 10, "width": 50, "height": 12,
          "block": 1, "par": 1, "line": 1},
         {"text": "wor1d", "conf": 31.0, "left": 70, "top": 10, "width": 50, "height": 12,
          "block": 1, "par": 1, "line": 1}]


async def scripted_engine(ctx: OpContext, unit: WorkUnit) -> dict[str, Any]:
    return {"text": f"Hello wor1d {unit.page}", "confidence": 0.635, "words": WORDS,
            "image_width": 100, "image_height": 50, "engine_version": "scripted 1", "dpi": 300}


register_ocr_engine("scripted", scripted_engine, pool="offline")


async def extracted(store: Store, n: int, done: set[int]) -> None:
    for p in range(1, n + 1):
        if p in done:
            image = ImageInfo(path=f"books/b1/pages/{p:04d}.jpg", sha256="0" * 64, width=100, height=50,
                              dpi=150, method="embedded")
            await store.patch_page("b1", p, {"$set": {"extracted": True,
                                                      "image": image.model_dump(mode="json")}})


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="tesseract") as err:
        Ocr("no-such-engine")
    assert "openai" in err.value.message
    assert get_ocr_engine("tesseract").pool == "tesseract"
    assert get_ocr_engine("openai").pool == "openai"
    with pytest.raises(ConfigError):
        register_ocr_engine("bad.name", scripted_engine)


async def test_units_only_for_extracted_pages_not_yet_read(store: Store,
                                                           ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(4))
    await extracted(store, 4, {1, 2, 4})
    await store.patch_page("b1", 4, {"$set": {"ocr.scripted.done": True}})
    await store.patch_page("b1", 1, {"$set": {"ocr.tesseract.done": True}})  # another provider
    ctx = ctx_for(book, ocr_lang="deu")
    op = Ocr("scripted")

    units = await op.create_units(ctx)

    assert [u.id for u in units] == ["ocr:scripted:b1:0001", "ocr:scripted:b1:0002"]
    assert units[0].provider == "offline" and units[0].op == "ocr"
    assert units[0].payload == {"ocr_provider": "scripted", "image": "books/b1/pages/0001.jpg",
                                "dpi": 150, "lang": "deu", "upscale": False}
    pages = {p.page_num: p for p in await store.list_pages("b1")}
    assert [u.id for u in await op.units_for_page(ctx, pages[2])] == ["ocr:scripted:b1:0002"]
    assert await op.units_for_page(ctx, pages[3]) == []  # not extracted
    assert await op.units_for_page(ctx, pages[4]) == []  # done


async def test_result_is_stored_then_flagged(store: Store, ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(2))
    await extracted(store, 2, {1, 2})
    ctx = ctx_for(book)
    op = Ocr("scripted")

    await drive(op, ctx, await op.create_units(ctx))

    [res] = await store.get_ocr_results("b1", 2)
    assert (res.id, res.provider, res.text, res.confidence) == ("b1:0002:scripted", "scripted",
                                                                "Hello wor1d 2", 0.635)
    assert [w.text for w in res.words] == ["Hello", "wor1d"] and res.engine_version == "scripted 1"
    page = await store.get_page("b1", 2)
    assert page is not None
    state = page.ocr["scripted"]
    assert state.done and state.confidence == 0.635 and state.chars == 13 and state.at is not None
    m = page.metrics["ocr_scripted"]
    assert (m.seconds, m.queue_s) == (0.5, 0.1)
    assert m.quality["confidence"] == 0.635 and m.quality["low_conf_share"] == 0.5
    assert (await store.get_book("b1")).ocr_providers == ["scripted"]  # type: ignore[union-attr]
    assert await op.is_complete(ctx) and await op.done_count(ctx) == 2
    assert [r.page_num for r in await op.results(ctx)] == [1, 2]
    await ctx.history.flush()
    events = await store.list_history("b1", event="ocr.done")
    assert sorted(e.page or 0 for e in events) == [1, 2]
    assert all(e.detail["provider"] == "scripted" for e in events)


async def test_a_crash_before_the_flag_leaves_the_page_to_redo(store: Store,
                                                              ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(1))
    await extracted(store, 1, {1})
    ctx = ctx_for(book)
    op = Ocr("scripted")
    [unit] = await op.create_units(ctx)
    value = await op.execute(ctx, unit)

    async def dies(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("process killed")

    real_patch = store.patch_page
    store.patch_page = dies  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await op.handle_result(ctx, WorkResult(unit=unit, ok=True, value=value))
    store.patch_page = real_patch  # type: ignore[method-assign]

    assert len(await store.get_ocr_results("b1", 1)) == 1  # the data is there ...
    assert [u.id for u in await op.create_units(ctx)] == [unit.id]  # ... and the page is redone


async def test_failure_is_kept_per_provider(store: Store, ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(1))
    await extracted(store, 1, {1})
    ctx = ctx_for(book)
    op = Ocr("scripted")
    [unit] = await op.create_units(ctx)

    await op.record_failure(ctx, WorkResult(unit=unit, ok=False, attempts=2,
                                            error=UnitError(kind=ErrorKind.permanent, message="bad image")))

    page = await store.get_page("b1", 1)
    assert page is not None and page.errors["ocr_scripted"].message == "bad image"
    assert page.errors["ocr_scripted"].attempts == 2
    await drive(op, ctx, [unit])
    page = await store.get_page("b1", 1)
    assert page is not None and "ocr_scripted" not in page.errors and page.ocr["scripted"].done


async def test_usage_of_a_model_engine_goes_to_metrics(store: Store,
                                                       ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(1))
    await extracted(store, 1, {1})
    ctx = ctx_for(book)
    op = Ocr("scripted")
    [unit] = await op.create_units(ctx)
    value: dict[str, Any] = {"text": "A page.", "confidence": None, "words": [], "model": "vision-1"}

    await op.handle_result(ctx, WorkResult(unit=unit, ok=True, value=value, usage=Usage(
        prompt_tokens=900, completion_tokens=40, cost_usd=0.002, model="vision-1")))

    page = await store.get_page("b1", 1)
    assert page is not None
    m = page.metrics["ocr_scripted"]
    assert (m.model, m.prompt_tokens, m.cost_usd) == ("vision-1", 900, 0.002)
    assert m.quality["low_conf_share"] is None


async def test_reset_removes_only_this_provider(store: Store, ctx_for: Callable[..., OpContext]) -> None:
    book = await add_book(store, *sample_book_sources(2))
    await extracted(store, 2, {1, 2})
    ctx = ctx_for(book)
    await drive(Ocr("scripted"), ctx, await Ocr("scripted").create_units(ctx))
    other = OcrResult(id="b1:0001:tesseract", book="b1", page_num=1, provider="tesseract", text="t")
    await store.put_ocr_result(other)
    await store.patch_page("b1", 1, {"$set": {"ocr.tesseract.done": True}})

    await Ocr("scripted").reset(store, "b1")

    assert [r.provider for r in await store.list_ocr_results("b1")] == ["tesseract"]
    page = await store.get_page("b1", 1)
    assert page is not None and set(page.ocr) == {"tesseract"} and "ocr_scripted" not in page.metrics
    assert (await store.get_book("b1")).ocr_providers == []  # type: ignore[union-attr]
    assert len(await Ocr("scripted").create_units(ctx)) == 2


async def test_extract_and_tesseract_through_the_runner(store: Store, settings: Settings) -> None:
    await add_book(store, *sample_book_sources(12))
    fast = settings.model_copy(update={"workers": 2})

    results = await run_operations([Extract(), Ocr("tesseract")], store, "b1", pages=[2], settings=fast)

    [res] = results
    assert res.page_num == 2 and res.provider == "tesseract"
    assert "public domain" in res.text  # page 2 of the sample is the copyright page
    assert 0 < (res.confidence or 0) <= 1 and res.words and res.engine_version
    page = await store.get_page("b1", 2)
    assert page is not None and page.extracted and page.ocr["tesseract"].done
    assert page.image is not None and (Path(settings.home) / page.image.path).is_file()
    assert (await store.get_page("b1", 1)).extracted is False  # type: ignore[union-attr]

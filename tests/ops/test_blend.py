"""The Blend operation: single, vote and LLM paths, outliers, re-blend on a new source, reset."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
from pydantic import SecretStr

from bookops.errors import InvalidOutput
from bookops.ops.base import OpContext
from bookops.ops.blend import Blend
from bookops.pools import Dispatcher
from bookops.pools.units import WorkUnit
from bookops.providers.blend_vote import Reading, drop_outliers, vote
from bookops.schema import Book, OcrResult, Page, PageSource, SourceFile, Word, ocr_result_id
from bookops.settings import RateLimit, Settings
from bookops.store import Store
from bookops.store.history import HistoryBuffer
from tests.llm_server import LlmServer, Reply

TRUTH = ("CHAPTER ONE\n"
         "It was the best of times, it was the worst\n"
         "of times, it was the age of wisdom, it was\n"
         "the age of foolishness, it was the epoch of\n"
         "belief, it was the epoch of incredulity.")
# tesseract garbles three faint words, and says so through low confidences
TESS = TRUTH.replace("best", "bcst").replace("wisdom", "wisd0m").replace("epoch of\n", "ep0ch of\n")
TESS_LOW = {"bcst", "wisd0m,", "ep0ch"}
# the vision model reads those words, but modernises one and drops a comma elsewhere
VISION = TRUTH.replace("worst\n", "worse\n").replace("incredulity.", "incredulity").replace("\n", " ")


def tess_result(book: str, page: int, text: str) -> OcrResult:
    words = []
    for li, line in enumerate(text.split("\n")):
        for k, w in enumerate(line.split()):
            words.append(Word(text=w, conf=30.0 if w in TESS_LOW else 93.0, left=k * 50, top=li * 40,
                              width=45, height=30, line=li))
    conf = sum(w.conf for w in words) / len(words) / 100
    return OcrResult(id=ocr_result_id(book, page, "tesseract"), book=book, page_num=page,
                     provider="tesseract", text=text, confidence=conf, words=words)


def vision_result(book: str, page: int, text: str) -> OcrResult:
    return OcrResult(id=ocr_result_id(book, page, "openai"), book=book, page_num=page, provider="openai",
                     text=text, model="test-vision")


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def words_cer(text: str) -> float:
    # compare word sequences: the vote keeps the base's line breaks, the vision text has none
    return edit_distance(" ".join(text.split()), " ".join(TRUTH.split())) / len(TRUTH)


async def add_book(store: Store, n: int = 3, book_id: str = "b1") -> Book:
    book = Book(id=book_id, name=book_id, page_count=n,
                sources=[SourceFile(path="x.pdf", sha256="0" * 64, kind="pdf", page_count=n)])
    pages = [Page.new(book_id, i, PageSource(file=0, index=i - 1)) for i in range(1, n + 1)]
    await store.add_book(book, pages)
    return book


async def ocr_done(store: Store, result: OcrResult) -> None:
    await store.put_ocr_result(result)
    await store.patch_page(result.book, result.page_num, {"$set": {
        f"ocr.{result.provider}.done": True, f"ocr.{result.provider}.chars": len(result.text)}})


MakeCtx = Callable[..., Awaitable[OpContext]]


@pytest.fixture
async def make_ctx(store: Store) -> AsyncIterator[MakeCtx]:
    made: list[OpContext] = []

    async def make(settings: Settings, book: Book, **params: object) -> OpContext:
        ctx = OpContext(store=store, settings=settings, dispatcher=Dispatcher(settings), book=book,
                        history=HistoryBuffer(store), job_id="job1", params=dict(params))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.history.aclose()
        await ctx.dispatcher.aclose()


async def drive(op: Blend, ctx: OpContext) -> list[WorkUnit]:
    """What the runner does, by hand: create units, run them through the pools, store results."""
    units = await op.create_units(ctx)
    for unit in units:
        result = await ctx.dispatcher.submit(unit, partial(op.execute, ctx))
        assert result.ok, result.error
        await op.handle_result(ctx, result)
    return units


def llm_settings(home: Path, server: LlmServer) -> Settings:
    # one attempt per unit: these tests look at single calls, not at the pool's retries
    return Settings(home=home, llm_base_url=server.base_url, llm_api_key=SecretStr("sk-blend-test"),
                    llm_model="m1", limits={"openai": RateLimit(rpm=None, max_attempts=1, timeout_s=5)})


# ---------------------------------------------------------------------- offline vote


def test_vote_is_no_worse_than_the_better_reading() -> None:
    tess, vis = tess_result("b", 1, TESS), vision_result("b", 1, VISION)
    from bookops.ops.blend import reading_of

    voted = vote([reading_of(tess), reading_of(vis)])
    best = min(words_cer(TESS), words_cer(VISION))
    assert words_cer(voted.text) <= best
    assert words_cer(voted.text) < words_cer(TESS) and words_cer(voted.text) < words_cer(VISION)
    assert voted.base == "tesseract"
    assert voted.text.split("\n")[0] == "CHAPTER ONE"  # the base reading's lines are kept
    assert len(voted.text.split("\n")) == len(TRUTH.split("\n"))
    assert 0 < voted.agreement < 1


def test_vote_keeps_a_span_two_readings_cut_into_words_differently() -> None:
    # both readings hold every character of the path; they split it at different places
    base = Reading("a", "see debian/patches/install. patch here", confs=[95, 70, 95, 95])
    other = Reading("b", "see debian/ patches/install.patch here", confs=[95, 90, 60, 95])
    voted = vote([base, other])
    assert "".join(voted.text.split()[1:-1]) == "debian/patches/install.patch"
    # a real word-for-word misreading is still voted word by word
    a = Reading("a", "the quick brown fox", confs=[95, 40, 95, 95])
    b = Reading("b", "the qu1ck brown fox", confs=[90, 30, 90, 90])
    c = Reading("c", "the quick brcwn fox", confs=[90, 90, 20, 90])
    assert vote([b, c]).text == "the quick brown fox"
    assert vote([a, b]).text == "the quick brown fox"


def test_outlier_check_drops_a_far_longer_source() -> None:
    a = Reading("tesseract", "Contents\n1. Loomings 1\n2. The Carpet-Bag 7")
    b = Reading("openai", a.text.replace(" 1", " " + "." * 80 + " 1").replace(" 7", " " + "." * 80 + " 7"))
    kept, dropped = drop_outliers([a, b])
    assert [r.source for r in kept] == ["tesseract"] and [r.source for r in dropped] == ["openai"]
    assert drop_outliers([a, Reading("openai", a.text + " x")])[1] == []
    assert drop_outliers([Reading("t", ""), Reading("o", "12")])[1] == []  # a folio is not an outlier
    # a confident engine's long reading is kept: the shorter source skipped text instead
    long_sure = Reading("tesseract", "\n".join([TRUTH] * 3), confidence=0.93)
    assert drop_outliers([long_sure, Reading("openai", TRUTH)])[1] == []
    unsure = Reading("tesseract", long_sure.text, confidence=0.41)
    assert [r.source for r in drop_outliers([unsure, Reading("openai", TRUTH)])[1]] == ["tesseract"]


# ---------------------------------------------------------------------- the operation


async def test_single_source_is_copied_without_llm(store: Store, settings: Settings,
                                                   make_ctx: MakeCtx) -> None:
    book = await add_book(store)
    await ocr_done(store, tess_result("b1", 1, TESS))
    await ocr_done(store, tess_result("b1", 2, TRUTH))
    ctx = await make_ctx(settings, book)
    op = Blend()
    assert await op.done_count(ctx) == 0 and not await op.is_complete(ctx)
    units = await drive(op, ctx)
    assert [(u.page, u.provider) for u in units] == [(1, "offline"), (2, "offline")]
    page = await store.get_page("b1", 1)
    assert page is not None and page.blended and page.blend is not None
    assert (page.blend.text, page.blend.sources, page.blend.method) == (TESS, ["tesseract"], "single")
    assert page.metrics["blend"].provider == "offline" and page.metrics["blend"].cost_usd is None
    assert await op.create_units(ctx) == []  # nothing left; page 3 has no OCR yet
    assert await op.done_count(ctx) == 2 and not await op.is_complete(ctx)
    await ctx.history.flush()
    events = await store.list_history("b1", event="blend.done")
    assert [e.page for e in events] == [1, 2] and events[0].detail["method"] == "single"
    assert await store.list_calls("b1") == []


async def test_page_waits_for_every_provider_then_votes(store: Store, settings: Settings,
                                                        make_ctx: MakeCtx) -> None:
    book = await add_book(store)
    ctx = await make_ctx(settings, book, ocr_providers=["tesseract", "openai"])
    op = Blend()
    await ocr_done(store, tess_result("b1", 1, TESS))
    page = await store.get_page("b1", 1)
    assert page is not None
    assert await op.units_for_page(ctx, page) == [] and await op.create_units(ctx) == []
    await ocr_done(store, vision_result("b1", 1, VISION))
    page = await store.get_page("b1", 1)
    assert page is not None
    (unit,) = await op.units_for_page(ctx, page)
    assert unit.provider == "offline" and unit.payload["sources"] == ["tesseract", "openai"]
    await drive(op, ctx)
    page = await store.get_page("b1", 1)
    assert page is not None and page.blend is not None and page.blended
    assert page.blend.method == "vote" and page.blend.sources == ["tesseract", "openai"]
    assert words_cer(page.blend.text) < min(words_cer(TESS), words_cer(VISION))
    assert page.metrics["blend"].quality["method"] == "vote"


async def test_llm_blend(store: Store, tmp_path: Path, make_ctx: MakeCtx) -> None:
    book = await add_book(store)
    await ocr_done(store, tess_result("b1", 1, TESS))
    await ocr_done(store, vision_result("b1", 1, VISION))
    with LlmServer() as srv:
        srv.push(Reply.json({"text": TRUTH}, prompt_tokens=900, completion_tokens=120, cost=0.004))
        s = llm_settings(tmp_path / "home", srv)
        ctx = await make_ctx(s, book, ocr_providers=["tesseract", "openai"])
        op = Blend()
        (unit,) = await drive(op, ctx)
        assert unit.provider == "openai"
        (req,) = srv.chat_requests()
    prompt = req.messages[-1]["content"]
    assert TESS in prompt and VISION in prompt
    assert "Tesseract OCR" in prompt and "vision language model" in prompt
    assert req.body["response_format"]["json_schema"]["name"] == "BlendedText"
    page = await store.get_page("b1", 1)
    assert page is not None and page.blend is not None
    assert (page.blend.text, page.blend.method) == (TRUTH, "llm")
    m = page.metrics["blend"]
    assert (m.provider, m.model, m.prompt_tokens, m.cost_usd) == ("openai", "m1", 900, pytest.approx(0.004))
    (call,) = await store.list_calls("b1")
    assert (call.op, call.page, call.job, call.outcome) == ("blend", 1, "job1", "ok")


async def test_llm_blend_that_invents_text_is_invalid(store: Store, tmp_path: Path,
                                                      make_ctx: MakeCtx) -> None:
    book = await add_book(store)
    await ocr_done(store, tess_result("b1", 1, TESS))
    await ocr_done(store, vision_result("b1", 1, VISION))
    padded = Reply.json({"text": TRUTH + "\n" + TRUTH})
    with LlmServer() as srv:
        srv.push(padded, padded, padded)
        s = llm_settings(tmp_path / "home", srv)
        ctx = await make_ctx(s, book, ocr_providers=["tesseract", "openai"])
        (unit,) = await Blend().create_units(ctx)
        with pytest.raises(InvalidOutput, match="longest reading"):
            await Blend().execute(ctx, unit)
        assert srv.hits["/v1/chat/completions"] == 3
    page = await store.get_page("b1", 1)
    assert page is not None and not page.blended


async def test_outlier_dropped_and_not_reblended(store: Store, tmp_path: Path,
                                                 make_ctx: MakeCtx) -> None:
    book = await add_book(store)
    toc = "Contents\n1. Loomings 1\n2. The Carpet-Bag 7\n3. The Spouter-Inn 12"
    await ocr_done(store, tess_result("b1", 1, toc))
    await ocr_done(store, vision_result("b1", 1, toc.replace(" 1", " " + ". " * 60 + "1")))
    with LlmServer() as srv:  # an LLM is configured, but one source left means no call
        s = llm_settings(tmp_path / "home", srv)
        ctx = await make_ctx(s, book, ocr_providers=["tesseract", "openai"])
        op = Blend()
        await drive(op, ctx)
        assert srv.hits["/v1/chat/completions"] == 0
    page = await store.get_page("b1", 1)
    assert page is not None and page.blend is not None
    assert page.blend.method == "single"
    assert (page.blend.sources, page.blend.dropped) == (["tesseract"], ["openai"])
    assert page.blend.text == toc
    assert await op.units_for_page(ctx, page) == []  # a dropped source still counts as considered


async def test_new_source_triggers_reblend(store: Store, settings: Settings,
                                           make_ctx: MakeCtx) -> None:
    book = await add_book(store, n=2)
    await ocr_done(store, tess_result("b1", 1, TESS))
    first = await make_ctx(settings, book)
    await drive(Blend(), first)
    # add-ocr-source: the vision model reads the page, the job widens the provider list
    await ocr_done(store, vision_result("b1", 1, VISION))
    ctx = await make_ctx(settings, book, ocr_providers=["tesseract", "openai"])
    op = Blend()
    page = await store.get_page("b1", 1)
    assert page is not None and page.blended
    (unit,) = await op.units_for_page(ctx, page)
    assert unit.id.endswith(":openai+tesseract")
    assert not await op.is_complete(ctx)
    await drive(op, ctx)
    page = await store.get_page("b1", 1)
    assert page is not None and page.blend is not None
    assert (page.blend.sources, page.blend.method) == (["tesseract", "openai"], "vote")


async def test_reset_forgets_blends(store: Store, settings: Settings,
                                    make_ctx: MakeCtx) -> None:
    book = await add_book(store, n=1)
    await ocr_done(store, tess_result("b1", 1, TESS))
    ctx = await make_ctx(settings, book)
    op = Blend()
    await drive(op, ctx)
    assert await op.is_complete(ctx)
    await op.reset(store, "b1")
    page = await store.get_page("b1", 1)
    assert page is not None and page.blend is None and not page.blended and "blend" not in page.metrics
    assert len(await op.create_units(ctx)) == 1


async def test_standalone_run(store: Store, settings: Settings) -> None:
    await add_book(store, n=2)
    for p in (1, 2):
        await ocr_done(store, tess_result("b1", p, TESS))
    results = await Blend().run(store, "b1", settings=settings)
    assert [r.method for r in results] == ["single", "single"]
    stored = json.dumps(await store.pages.find({"book": "b1"}), default=str)
    assert '"blended": true' in stored

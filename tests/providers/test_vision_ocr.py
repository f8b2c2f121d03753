"""The vision OCR engine and its guards, against the loopback server."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from bookops.errors import InvalidOutput, PermanentError
from bookops.ops.base import OpContext
from bookops.pools import Dispatcher
from bookops.pools.units import WorkUnit
from bookops.providers.openai_compat import LlmClient, TextAnswer
from bookops.providers.vision_ocr import (
    MAX_SIDE,
    check_transcription,
    load_page_image,
    openai_ocr,
    repetition_reason,
    transcribe,
)
from bookops.schema import Book, ImageInfo, Page, PageSource, SourceFile
from bookops.settings import Settings
from bookops.store import Store
from bookops.store.history import HistoryBuffer
from tests.llm_server import LlmServer, Reply

PROSE = [
    "It was the best of times, it was the worst of times, it was the age of",
    "wisdom, it was the age of foolishness, it was the epoch of belief, it was",
    "the epoch of incredulity, it was the season of Light, it was the season",
    "of Darkness, it was the spring of hope, it was the winter of despair, we",
    "had everything before us, we had nothing before us, we were all going",
    "direct to Heaven, we were all going direct the other way -- in short, the",
    "period was so far like the present period, that some of its noisiest",
    "authorities insisted on its being received, for good or for evil, in the",
    "superlative degree of comparison only. There were a king with a large jaw",
    "and a queen with a plain face, on the throne of England; there were a",
]
HALLUCINATION = "\n".join(PROSE)


def text_page(path: Path, lines: list[str], size: tuple[int, int] = (2400, 3300)) -> Path:
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=44)
    y = 300
    for _ in range(4):
        for line in lines:
            draw.text((220, y), line, fill=0, font=font)
            y += 62
    img.save(path)
    return path


def blank_page(path: Path) -> Path:
    img = Image.new("L", (2400, 3300), 238)  # off-white paper
    rng = random.Random(7)
    draw = ImageDraw.Draw(img)
    for _ in range(40):  # dust specks
        x, y = rng.randrange(300, 2100), rng.randrange(300, 3000)
        draw.ellipse((x, y, x + 3, y + 3), fill=40)
    draw.rectangle((0, 0, 60, 3300), fill=20)  # scanner shadow at the edge
    img.save(path)
    return path


def test_image_is_downscaled_and_ink_measured(tmp_path: Path) -> None:
    page = load_page_image(text_page(tmp_path / "p.png", PROSE))
    blank = load_page_image(blank_page(tmp_path / "b.png"))
    assert (page.width, page.height) == (2400, 3300)
    raw = base64.b64decode(page.data_url.split(",", 1)[1])
    with Image.open(io.BytesIO(raw)) as sent:
        assert max(sent.size) == MAX_SIDE
    assert page.ink > 0.01
    assert blank.ink < 0.001


def test_guards_in_isolation() -> None:
    check_transcription(TextAnswer(HALLUCINATION, "stop"), ink=0.03)
    check_transcription(TextAnswer("xiv", "stop"), ink=0.0)  # a lone folio on an empty page
    check_transcription(TextAnswer("", "stop"), ink=0.0)
    with pytest.raises(InvalidOutput, match="invented"):
        check_transcription(TextAnswer(HALLUCINATION, "stop"), ink=0.0001)
    with pytest.raises(InvalidOutput, match="token limit"):
        check_transcription(TextAnswer("fine text", "length"), ink=0.03)


def test_repetition_detector() -> None:
    assert repetition_reason(HALLUCINATION) is None
    titles = ["Loomings", "The Carpet-Bag", "The Spouter-Inn", "The Counterpane", "Breakfast",
              "The Street", "The Chapel", "The Pulpit", "The Sermon", "A Bosom Friend", "Nightgown",
              "Biographical", "Wheelbarrow", "Nantucket", "Chowder", "The Ship", "The Ramadan"]
    toc = "\n".join(f"{i}. {t} {'.' * 40} {i * 7 + 1}" for i, t in enumerate(titles, 1))
    assert repetition_reason(toc) is None  # leader dots are print, not a loop
    assert repetition_reason("\n".join(PROSE[:3] + [PROSE[3]] * 6)) is not None
    assert "compresses" in (repetition_reason("and the sea and the sky " * 60) or "")


async def test_blank_page_with_invented_text_rejected(tmp_path: Path, llm_server: LlmServer,
                                                      llm_settings: Settings, store: Store) -> None:
    img = blank_page(tmp_path / "blank.png")
    llm_server.push(Reply(content=HALLUCINATION), Reply(content=""))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(InvalidOutput, match="invented text"):
            await transcribe(llm, img, model="test-vision", book="b1", page=5, store=store)
        # the rejected answer was not cached: the retry asks again and an empty page is accepted
        done = await transcribe(llm, img, model="test-vision", book="b1", page=5, store=store)
    assert done.value["text"] == ""
    assert llm_server.hits["/v1/chat/completions"] == 2
    calls = await store.list_calls("b1")
    assert [c.outcome for c in calls] == ["invalid_output", "ok"]
    assert calls[0].response is None and calls[0].model == "test-vision"


async def test_repetition_loop_rejected(tmp_path: Path, llm_server: LlmServer,
                                        llm_settings: Settings) -> None:
    img = text_page(tmp_path / "p.png", PROSE)
    llm_server.push(Reply(content="\n".join(PROSE[:4] + [PROSE[4]] * 30)))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(InvalidOutput, match="repetition loop"):
            await transcribe(llm, img, model="test-vision")


async def test_finish_reason_length_rejected(tmp_path: Path, llm_server: LlmServer,
                                             llm_settings: Settings) -> None:
    img = text_page(tmp_path / "p.png", PROSE)
    llm_server.push(Reply(content=HALLUCINATION, finish_reason="length"))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(InvalidOutput, match="token limit"):
            await transcribe(llm, img, model="test-vision")


async def test_good_transcription_fields_and_request(tmp_path: Path, llm_server: LlmServer,
                                                     llm_settings: Settings) -> None:
    img = text_page(tmp_path / "p.png", PROSE)
    llm_server.push(Reply(content="```text\n" + HALLUCINATION + "\n```", prompt_tokens=1400,
                          completion_tokens=300, cost=0.002))
    async with LlmClient(llm_settings) as llm:
        done = await transcribe(llm, img, model="test-vision")
    fields = done.value
    assert fields["text"] == HALLUCINATION  # the Markdown fence is removed
    assert (fields["image_width"], fields["image_height"]) == (2400, 3300)
    assert fields["model"] == "test-vision" and fields["confidence"] is None
    assert done.usage.cost_usd == pytest.approx(0.002)
    (req,) = llm_server.chat_requests()
    content = req.messages[0]["content"]
    assert content[0]["type"] == "text" and "exactly as printed" in content[0]["text"]
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert req.body["model"] == "test-vision" and req.body["max_tokens"] > 1000


async def test_engine_entry_point_reads_the_page_image(tmp_path: Path, llm_server: LlmServer,
                                                       llm_settings: Settings, store: Store) -> None:
    home = llm_settings.home
    rel = Path("books/b1/pages/0001.png")
    (home / rel).parent.mkdir(parents=True)
    text_page(home / rel, PROSE)
    book = Book(id="b1", name="b1", page_count=1,
                sources=[SourceFile(path="x.pdf", sha256="0" * 64, kind="pdf", page_count=1)])
    page = Page.new("b1", 1, PageSource(file=0, index=0))
    page.image = ImageInfo(path=str(rel), sha256="0" * 64, width=2400, height=3300)
    await store.add_book(book, [page])
    history = HistoryBuffer(store)
    ctx = OpContext(store=store, settings=llm_settings, dispatcher=Dispatcher(llm_settings), book=book,
                    history=history, job_id="j1")
    llm_server.push(Reply(content=HALLUCINATION))
    unit = WorkUnit(id="ocr:b1:1:openai", op="ocr", provider="openai", book="b1", page=1)
    try:
        done = await openai_ocr(ctx, unit)
        assert done.value["text"] == HALLUCINATION
        (call,) = await store.list_calls("b1")
        assert (call.op, call.page, call.job, call.model) == ("ocr", 1, "j1", "test-vision")
        with pytest.raises(PermanentError, match="not found"):
            missing = {"image_path": str(tmp_path / "no.png")}
            await openai_ocr(ctx, unit.model_copy(update={"payload": missing}))
    finally:
        await history.aclose()
        await ctx.dispatcher.aclose()


def test_openai_resolves_to_the_vision_engine() -> None:
    from bookops.providers.ocr_engines import get_ocr_engine

    engine = get_ocr_engine("openai")
    assert engine.fn is openai_ocr and engine.pool == "openai"

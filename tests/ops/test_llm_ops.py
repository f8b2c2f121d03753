"""The LLM paths of Label, Metadata, TocFind and TocExtract, through the real openai client.

Each op runs standalone (``await Op().run(store, book, settings=...)``) on a book whose pages,
OCR results and blends are written straight into the store; the loopback server answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, SecretStr

from bookops.ops.base import Operation
from bookops.ops.label import Label
from bookops.ops.label_llm import LabelAnswer
from bookops.ops.metadata import Metadata
from bookops.ops.metadata_llm import MetadataAnswer, trim_page
from bookops.ops.toc_extract import TocExtract
from bookops.ops.toc_find import TocFind
from bookops.ops.toc_llm import TocEntriesAnswer, TocFindAnswer
from bookops.pools import Dispatcher
from bookops.schema import (
    Blend,
    Book,
    OcrResult,
    OcrState,
    Page,
    PageLabel,
    PageSource,
    SourceFile,
    Toc,
    ocr_result_id,
    utcnow,
)
from bookops.settings import RateLimit, Settings
from bookops.store import Store
from tests.llm_server import LlmServer, RecordedRequest, Reply

CHAT = "/v1/chat/completions"
ISBN = "978-0-306-40615-7"  # checksum-valid
TEXTS = {
    1: "THE RIVER BOOK\nA Study of Moving Water\nJane Doe\nRiver Press\nLondon",
    2: f"Copyright © 2019 Jane Doe\nAll rights reserved.\nISBN {ISBN}\nPrinted in England",
    3: ("Contents\n1 Springs .......... 1\n2 Streams .......... 3\n"
        "2.1 Brooks and their\nbanks .......... 4\n3 Deltas .......... 5"),
    4: "1 Springs\nWater rises from the ground where the rock allows it.\nSee page 42 for a map.\n1",
    5: "SPRINGS\nA spring may run dry in summer and come back in autumn.\n2",
    6: "2 Streams\nStreams gather the water of many springs.\n3",
    7: "STREAMS\nBrooks are small streams; their banks are soft.\n4",
    8: "3 Deltas\nA delta is where a river meets the sea.\n5",
}
N = len(TEXTS)
FOLIOS = {4: "1", 5: "2", 6: "3", 7: "4", 8: "5"}


@pytest.fixture
def srv() -> Iterator[LlmServer]:
    with LlmServer() as server:
        yield server


@pytest.fixture
def s(tmp_path: Path, srv: LlmServer) -> Settings:
    # one attempt per unit and no pacing: these tests count HTTP calls exactly
    return Settings(home=tmp_path / "home", llm_base_url=srv.base_url, llm_api_key=SecretStr("sk-ops-test"),
                    llm_model="m1", limits={"openai": RateLimit(rpm=None, max_attempts=1, timeout_s=10)})


@pytest.fixture
async def book(store: Store) -> AsyncIterator[Book]:
    """A blended 8-page book: title, copyright, contents, then five body pages numbered 1-5."""
    b = Book(id="b1", name="b1", page_count=N,
             sources=[SourceFile(path="x.pdf", sha256="0" * 64, kind="pdf", page_count=N)])
    pages = []
    for num, text in TEXTS.items():
        page = Page.new("b1", num, PageSource(file=0, index=num - 1))
        page.ocr = {"tesseract": OcrState(done=True, chars=len(text), at=utcnow())}
        page.blend = Blend(text=text, sources=["tesseract"], method="single")
        page.blended = True
        pages.append(page)
    await store.add_book(b, pages)
    for num, text in TEXTS.items():
        await store.put_ocr_result(OcrResult(id=ocr_result_id("b1", num, "tesseract"), book="b1",
                                             page_num=num, provider="tesseract", text=text, confidence=0.9))
    yield b


async def toc_ready(store: Store) -> None:
    """What TocFind and the label pass leave behind, so TocExtract can run alone."""
    await store.put_toc(Toc(id="b1", book="b1", found=True, pages=[3], confidence=0.9, found_by="offline"))
    for num in range(1, N + 1):
        lab = PageLabel(printed_page=FOLIOS.get(num), read_as=FOLIOS.get(num), method="offline")
        await store.patch_page("b1", num, {"$set": {"label": lab.model_dump(mode="json"), "labeled": True}})
    now = utcnow().isoformat()
    await store.patch_book("b1", {"$set": {"flags.toc_find.state": "done", "flags.toc_find.updated_at": now,
                                           "flags.label.state": "done", "flags.label.updated_at": now}})


def prompt_of(req: RecordedRequest) -> str:
    return str(req.messages[-1]["content"])


def book_metrics(doc: dict[str, Any] | None, op: str) -> dict[str, Any]:
    assert doc is not None
    return dict(doc["metrics"][op])


# ---------------------------------------------------------------------- one scenario per op


@dataclass
class Scenario:
    make: Callable[[], Operation]
    schema: type[BaseModel]
    invalid: str  # JSON that breaks the schema
    answer: dict[str, Any]
    setup: Callable[[Store], Awaitable[None]] | None
    run_kw: dict[str, Any]
    check: Callable[[Store], Awaitable[None]]
    metrics: Callable[[Store], Awaitable[dict[str, Any]]]


async def _no_setup(store: Store) -> None:
    return None


async def _label_check(store: Store) -> None:
    page = await store.get_page("b1", 4)
    assert page is not None and page.labeled and page.label is not None
    lab = page.label
    assert (lab.printed_page, lab.read_as, lab.method) == ("1", "1", "llm")
    assert (lab.content_type.value, lab.is_chapter_start, lab.chapter_title) == ("body", True, "1 Springs")
    assert lab.running_header is None


async def _label_metrics(store: Store) -> dict[str, Any]:
    page = await store.get_page("b1", 4)
    assert page is not None
    return page.metrics["label"].model_dump()


async def _meta_check(store: Store) -> None:
    got = await store.get_book("b1")
    assert got is not None and got.metadata is not None
    m = got.metadata
    assert (m.title, m.subtitle, m.authors, m.publisher, m.year) == (
        "The River Book", "A Study of Moving Water", ["Jane Doe"], "River Press", "2019")
    assert (m.isbn, m.language, m.method, m.source_pages) == ("9780306406157", "en", "llm", [1, 2])


async def _book_metrics(op: str, store: Store) -> dict[str, Any]:
    return book_metrics(await store.books.get("b1"), op)


async def _find_check(store: Store) -> None:
    toc = await store.get_toc("b1")
    assert toc is not None
    assert (toc.found, toc.pages, toc.confidence, toc.found_by) == (True, [3], 0.9, "llm")


async def _extract_check(store: Store) -> None:
    toc = await store.get_toc("b1")
    assert toc is not None and toc.extracted_by == "llm"
    got = [(e.title, e.level, e.number, e.printed_page, e.scan_page) for e in toc.entries]
    assert got == [("1 Springs", 1, "1", "1", 4), ("2 Streams", 1, "2", "3", 6),
                   ("2.1 Brooks and their banks", 2, "2.1", "4", 7), ("3 Deltas", 1, "3", "5", 8)]


META = {"title": "The River Book", "subtitle": "A Study of Moving Water", "authors": ["Jane Doe"],
        "editors": [], "publisher": "River Press", "year": "2019", "isbn": ISBN, "lccn": None,
        "language": "en", "source_pages": [1, 2]}
ENTRIES = [{"title": "1 Springs", "level": 1, "number": "1", "printed_page": "1"},
           {"title": "2 Streams", "level": 1, "number": "2", "printed_page": "3"},
           {"title": "2.1 Brooks and their banks", "level": 2, "number": "2.1", "printed_page": "4"},
           {"title": "3 Deltas", "level": 1, "number": "3", "printed_page": "5"}]

SCENARIOS = {
    "label": Scenario(
        Label, LabelAnswer, json.dumps({"printed_page": 1, "content_type": "chapter"}),
        {"printed_page": "1", "running_header": None, "content_type": "body", "is_chapter_start": True,
         "chapter_title": "1 Springs"},
        None, {"pages": [4]}, _label_check, _label_metrics),
    "metadata": Scenario(
        Metadata, MetadataAnswer, json.dumps({"title": "The River Book", "authors": "Jane Doe"}),
        META, None, {}, _meta_check, lambda st: _book_metrics("metadata", st)),
    "toc_find": Scenario(
        TocFind, TocFindAnswer, json.dumps({"pages": "3"}), {"pages": [3], "confidence": 0.9},
        None, {}, _find_check, lambda st: _book_metrics("toc_find", st)),
    "toc_extract": Scenario(
        TocExtract, TocEntriesAnswer, json.dumps({"entries": [{"title": "1 Springs"}]}),
        {"entries": ENTRIES}, toc_ready, {}, _extract_check, lambda st: _book_metrics("toc_extract", st)),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_llm_path_schema_repair_cost_and_cache(name: str, store: Store, book: Book, s: Settings,
                                                     srv: LlmServer) -> None:
    sc = SCENARIOS[name]
    if sc.setup is not None:
        await sc.setup(store)
    srv.push(Reply(content=sc.invalid, prompt_tokens=500, completion_tokens=20, cost=0.001),
             Reply.json(sc.answer, prompt_tokens=600, completion_tokens=80, cost=0.002))
    await sc.make().run(store, "b1", settings=s, **sc.run_kw)

    # the op's own output model, as a strict json_schema
    first, repair = srv.chat_requests()
    fmt = first.body["response_format"]
    assert fmt == {"type": "json_schema", "json_schema": {
        "name": sc.schema.__name__, "schema": to_strict_json_schema(sc.schema), "strict": True}}
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False and set(schema["required"]) == set(schema["properties"])
    assert first.body["model"] == "m1"
    # the repair re-asks the same conversation with the broken answer and what was wrong with it
    assert repair.messages[:2] == first.messages
    assert repair.messages[2] == {"role": "assistant", "content": sc.invalid}
    assert "could not be used" in repair.messages[3]["content"]

    await sc.check(store)
    calls = await store.list_calls("b1")
    assert [(c.op, c.outcome, c.attempts) for c in calls] == [(name, "invalid_output", 1), (name, "ok", 2)]
    assert [c.cost_usd for c in calls] == [pytest.approx(0.001), pytest.approx(0.002)]
    assert calls[1].response is not None and calls[0].response is None
    m = await sc.metrics(store)
    assert (m["provider"], m["model"]) == ("openai", "m1")
    assert (m["prompt_tokens"], m["completion_tokens"]) == (1100, 100)
    assert m["cost_usd"] == pytest.approx(0.003)

    # a rerun of the same inputs is answered from the cache: no HTTP call, no cost
    await sc.make().reset(store, "b1")
    if sc.setup is not None:
        await sc.setup(store)
    await sc.make().run(store, "b1", settings=s, **sc.run_kw)
    assert srv.hits[CHAT] == 2
    await sc.check(store)
    m = await sc.metrics(store)
    assert m["cost_usd"] == 0.0 and m["prompt_tokens"] == 0
    assert len(await store.list_calls("b1")) == 2


# ---------------------------------------------------------------------- op-specific checks


def answer_by_page(answers: dict[int, dict[str, Any]]) -> Callable[[RecordedRequest], Reply]:
    """A responder that answers a label request by the scan page its prompt names."""

    def respond(req: RecordedRequest) -> Reply:
        for num, answer in answers.items():
            if f"scan page {num} of a book" in prompt_of(req):
                return Reply.json(answer)
        return Reply.error(400, "unexpected page")

    return respond


async def test_label_prompt_and_no_extrapolated_number(store: Store, book: Book, s: Settings,
                                                       srv: LlmServer) -> None:
    blank = {"running_header": None, "is_chapter_start": False, "chapter_title": None}
    srv.responder = answer_by_page({
        # the title page prints no number; the model counts one on from its position anyway
        1: {**blank, "printed_page": "i", "content_type": "title_page"},
        5: {**blank, "printed_page": "2", "running_header": "SPRINGS", "content_type": "body"},
    })
    labels = await Label().run(store, "b1", settings=s, pages=[1, 5])
    assert [(lab.printed_page, lab.read_as, lab.content_type.value) for lab in labels] == [
        (None, None, "title_page"), ("2", "2", "body")]
    assert labels[1].running_header == "SPRINGS" and labels[1].method == "llm"
    prompts = {int(p.split("scan page ")[1].split()[0]): p for p in map(prompt_of, srv.chat_requests())}
    assert set(prompts) == {1, 5}
    # head and foot lines go out, with the offline reading as a hint and the content types listed
    assert "SPRINGS" in prompts[5] and prompts[5].rstrip().endswith("2\n>>>")
    assert '"printed_page":' in prompts[5] and "title_page" in prompts[5]
    got = await store.get_book("b1")
    assert got is not None and got.flag("label").state.value == "done"  # the sequence pass ran too


async def test_label_sends_only_head_and_foot_lines(store: Store, s: Settings, srv: LlmServer) -> None:
    body = [f"body line {i} mentions page {100 + i}" for i in range(40)]
    # the foot folio misread as "l7": the model reading it as 17 is a correction, not an invention
    text = "\n".join(["RUNNING HEAD", "Section title"] + body + ["l7"])
    b = Book(id="b2", name="b2", page_count=1,
             sources=[SourceFile(path="y.pdf", sha256="1" * 64, kind="pdf", page_count=1)])
    page = Page.new("b2", 1, PageSource(file=0, index=0))
    page.blend, page.blended = Blend(text=text, sources=["tesseract"], method="single"), True
    await store.add_book(b, [page])
    srv.push(Reply.json({"printed_page": "17", "running_header": "RUNNING HEAD", "content_type": "body",
                         "is_chapter_start": False, "chapter_title": None}))
    (label,) = await Label().run(store, "b2", settings=s)
    assert label.printed_page == "17"
    prompt = prompt_of(srv.chat_requests()[0])
    assert "body line 0 " in prompt and "body line 39 " in prompt and "body line 20 " not in prompt
    assert "lines left out" in prompt


async def test_metadata_invalid_isbn_is_dropped_without_repair(store: Store, book: Book, s: Settings,
                                                              srv: LlmServer) -> None:
    srv.push(Reply.json({**META, "isbn": "978-0-306-40615-8", "year": "MMXIX", "language": "English"}))
    meta = await Metadata().run(store, "b1", settings=s)
    assert srv.hits[CHAT] == 1
    assert (meta.isbn, meta.year, meta.language, meta.title) == (None, None, None, "The River Book")
    prompt = prompt_of(srv.chat_requests()[0])
    assert "=== scan page 1 ===" in prompt and ISBN in prompt and "Contents" in prompt
    assert '"isbn": "9780306406157"' in prompt  # the offline reading, as a hint


def test_metadata_trims_long_pages_but_keeps_the_imprint() -> None:
    filler = [f"Preface sentence number {i} goes on about rivers and lakes." for i in range(80)]
    text = "\n".join(filler[:40] + [f"ISBN {ISBN}", "Copyright 2001 Someone"] + filler[40:])
    out = trim_page(text, 1200)
    assert len(out) <= 1300
    assert out.startswith("Preface sentence number 0 ") and ISBN in out and "Copyright 2001" in out


async def test_toc_find_repairs_pages_outside_the_book(store: Store, book: Book, s: Settings,
                                                       srv: LlmServer) -> None:
    srv.push(Reply.json({"pages": [3, 40], "confidence": 0.8}),
             Reply.json({"pages": [2, 4], "confidence": 0.8}),
             Reply.json({"pages": [3], "confidence": 1.7}))
    toc = await TocFind().run(store, "b1", settings=s)
    assert (toc.pages, toc.confidence, toc.found_by) == ([3], 1.0, "llm")
    reqs = srv.chat_requests()
    assert "do not exist" in reqs[1].messages[-1]["content"]
    assert "contiguous" in reqs[2].messages[-1]["content"]
    prompt = prompt_of(reqs[0])
    # the heuristics' pick and its neighbours, each marked with its scan page number
    assert "=== scan page 3 ===\nContents" in prompt and "=== scan page 2 ===" in prompt
    assert "=== scan page 4 ===" in prompt and "=== scan page 8 ===" not in prompt


async def test_toc_find_none(store: Store, book: Book, s: Settings, srv: LlmServer) -> None:
    srv.push(Reply.json({"pages": [], "confidence": 0.7}))
    toc = await TocFind().run(store, "b1", settings=s)
    assert (toc.found, toc.pages, toc.found_by) == (False, [], "llm")


async def test_toc_extract_drops_page_references_not_printed(store: Store, book: Book, s: Settings,
                                                            srv: LlmServer) -> None:
    await toc_ready(store)
    invented = [*ENTRIES, {"title": "Index", "level": 1, "number": None, "printed_page": "77"}]
    srv.push(Reply.json({"entries": invented}))
    toc = await TocExtract().run(store, "b1", settings=s)
    assert [(e.title, e.printed_page, e.scan_page) for e in toc.entries][-2:] == [
        ("3 Deltas", "5", 8), ("Index", None, None)]
    prompt = prompt_of(srv.chat_requests()[0])
    # the whole ToC page goes out, leader rows shortened
    assert "=== scan page 3 ===\nContents\n1 Springs ... 1\n2 Streams ... 3\n2.1 Brooks and their\n" in prompt


# ---------------------------------------------------------------------- the shared client


async def test_dispatcher_shares_one_llm_client(s: Settings) -> None:
    disp = Dispatcher(s)
    client = disp.llm()
    assert disp.llm() is client
    await disp.aclose()
    assert client._client.is_closed()
    await disp.aclose()  # closing twice is harmless


async def test_units_of_one_run_share_the_client(store: Store, book: Book, s: Settings, srv: LlmServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    real = Dispatcher.llm

    def counting(self: Dispatcher) -> Any:
        client = real(self)
        if client not in made:
            made.append(client)
        return client

    monkeypatch.setattr(Dispatcher, "llm", counting)
    answer = {"printed_page": None, "running_header": None, "content_type": "body",
              "is_chapter_start": False, "chapter_title": None}
    srv.responder = lambda _req: Reply.json(answer)
    await Label().run(store, "b1", settings=s, pages=[4, 5, 6])
    assert srv.hits[CHAT] == 3 and len(made) == 1

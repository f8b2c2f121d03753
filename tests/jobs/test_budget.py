"""Budgets: a job stops dispatching paid units before its budget is passed, and a rerun resumes.

The loopback LLM server plays a priced endpoint: every answer carries ``usage.cost`` computed from
the request's size (4 characters a token) and a price per million tokens, like OpenRouter.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bookops.jobs import run_job
from bookops.jobs.budget import Admit, Budget
from bookops.pools.units import Usage, WorkResult, WorkUnit
from bookops.schema import (
    Blend,
    Book,
    JobStatus,
    OcrResult,
    OcrState,
    Page,
    PageSource,
    SourceFile,
    ocr_result_id,
    utcnow,
)
from bookops.settings import ModelPrice, RateLimit, Settings
from bookops.store import Store
from tests.llm_server import LlmServer, RecordedRequest, Reply

CHAT = "/v1/chat/completions"
PRICE_IN, PRICE_OUT = 3.0, 15.0  # USD per million tokens
_ENTRY = re.compile(r"^(?P<title>\S.*?)\s*(?:\.\.\.|\s)\s*(?P<page>\d{1,4})$")


def tokens_of(text: str) -> int:
    return max(1, len(text) // 4)


def answer_for(req: RecordedRequest) -> dict[str, Any]:
    """A valid answer for each op's output schema, shaped like a real model's."""
    name = req.body["response_format"]["json_schema"]["name"]
    prompt = str(req.messages[-1]["content"])
    if name == "LabelAnswer":
        lines = [ln for ln in prompt.split("<<<")[-1].split(">>>")[0].splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else ""
        return {"printed_page": last if last.isdigit() else None, "running_header": None,
                "content_type": "body", "is_chapter_start": False, "chapter_title": None}
    if name == "MetadataAnswer":
        return {"title": "The River Book", "subtitle": None, "authors": ["Jane Doe"], "editors": [],
                "publisher": "River Press", "year": "2019", "isbn": None, "lccn": None, "language": "en",
                "source_pages": [1]}
    if name == "TocFindAnswer":
        return {"pages": [3], "confidence": 0.9}
    if name == "TocEntriesAnswer":
        entries = []
        for line in prompt.splitlines():
            m = _ENTRY.match(line.strip())
            if m and "scan page" not in line:
                entries.append({"title": m.group("title").strip(" ."), "level": 1, "number": None,
                                "printed_page": m.group("page")})
        return {"entries": entries}
    if name == "BlendedText":
        return {"text": prompt.split("<<<\n", 1)[1].split("\n>>>", 1)[0]}
    raise AssertionError(f"unexpected schema {name}")


def priced(price_in: float = PRICE_IN, price_out: float = PRICE_OUT) -> Callable[[RecordedRequest], Reply]:
    """A responder billing each answer by its size, in ``usage.cost``."""

    def respond(req: RecordedRequest) -> Reply:
        content = json.dumps(answer_for(req))
        pt, ct = tokens_of(json.dumps(req.body)), tokens_of(content)
        return Reply(content=content, prompt_tokens=pt, completion_tokens=ct,
                     cost=(pt * price_in + ct * price_out) / 1e6)

    return respond


BODY = ("The river runs through the valley and the water rises in spring when the snow melts on the "
        "hills above the town, carrying silt and stones down to the plain where the farmers wait. ")


def page_texts(n: int) -> dict[int, str]:
    """A book of ``n`` pages: title, copyright, contents, then body pages with folios 1.."""
    toc = "\n".join(f"{i} Chapter {i} .......... {2 * i - 1}" for i in range(1, 12))
    texts = {1: "THE RIVER BOOK\nA Study of Moving Water\nJane Doe\nRiver Press\nLondon",
             2: "Copyright 2019 Jane Doe\nAll rights reserved.\nPrinted in England",
             3: f"Contents\n{toc}"}
    for num in range(4, n + 1):
        texts[num] = f"CHAPTER {num}\n" + (BODY * 8).strip() + f"\n{num - 3}"
    return texts


async def blended_book(store: Store, n: int = 12, book_id: str = "river") -> Book:
    """A book whose pages are extracted, OCRed and blended: what is left is labels, metadata, ToC."""
    texts = page_texts(n)
    b = Book(id=book_id, name=book_id, page_count=n, ocr_providers=["tesseract"],
             sources=[SourceFile(path="x.pdf", sha256="0" * 64, kind="pdf", page_count=n)])
    pages = []
    for num, text in texts.items():
        page = Page.new(book_id, num, PageSource(file=0, index=num - 1))
        page.extracted = True
        page.ocr = {"tesseract": OcrState(done=True, chars=len(text), confidence=0.9, at=utcnow())}
        page.blend, page.blended = Blend(text=text, sources=["tesseract"], method="single"), True
        pages.append(page)
    await store.add_book(b, pages)
    for num, text in texts.items():
        await store.put_ocr_result(OcrResult(id=ocr_result_id(book_id, num, "tesseract"), book=book_id,
                                             page_num=num, provider="tesseract", text=text, confidence=0.9))
    return b


@pytest.fixture
def srv() -> Iterator[LlmServer]:
    with LlmServer(priced()) as server:
        yield server


def llm_settings(tmp_path: Path, srv: LlmServer, **kw: Any) -> Settings:
    return Settings(home=tmp_path / "home", llm_base_url=srv.base_url, llm_api_key=SecretStr("sk-budget"),
                    llm_model="m1", limits={"openai": RateLimit(rpm=None, max_attempts=1, timeout_s=10,
                                                                concurrency=2)}, **kw)


@pytest.fixture
async def river(store: Store) -> AsyncIterator[Book]:
    yield await blended_book(store)


async def _spent(store: Store, book: str) -> float:
    return sum(c.cost_usd or 0.0 for c in await store.list_calls(book))


async def test_budget_stops_before_passing_and_a_larger_budget_resumes_without_repaying(
        tmp_path: Path, store: Store, river: Book, srv: LlmServer) -> None:
    s = llm_settings(tmp_path, srv)  # no price table: costs come from the server's usage.cost
    budget = 0.02
    job, summary = await run_job("process-pages", store, s, "river", params={"ocr_providers": ["tesseract"]},
                                 budget_usd=budget)
    spent = await _spent(store, "river")
    assert job.status == JobStatus.stopped_budget
    assert 0 < spent <= budget and job.cost_usd == pytest.approx(spent)
    assert summary.held and all(u.provider == "openai" for u in summary.held)
    assert "not run" in (job.error or "") and "label" in (job.error or "")
    stored = await store.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.stopped_budget
    labeled_first = await store.count_pages("river", {"labeled": True})
    assert 0 < labeled_first < 12
    events = await store.list_history("river", event="job.budget_stopped")
    assert len(events) == 1 and events[0].detail["units"]
    first_requests = srv.hits[CHAT]

    job2, _ = await run_job("process-pages", store, s, "river", params={"ocr_providers": ["tesseract"]},
                            budget_usd=1.0)
    assert job2.status == JobStatus.succeeded
    assert await store.count_pages("river", {"labeled": True}) == 12
    calls = await store.list_calls("river")
    # every request was paid once: the first run's pages were not asked again
    assert len({c.request_hash for c in calls}) == len(calls)
    assert sum(1 for c in calls if c.op == "label") == 12
    assert srv.hits[CHAT] - first_requests == len([c for c in calls if c.job == job2.id])
    assert job2.cost_usd == pytest.approx(sum(c.cost_usd or 0.0 for c in calls if c.job == job2.id))
    got = await store.get_book("river")
    assert got is not None and got.flag("toc_extract").state.value == "done"


async def test_cached_calls_cost_nothing_against_the_budget(tmp_path: Path, store: Store, river: Book,
                                                            srv: LlmServer) -> None:
    s = llm_settings(tmp_path, srv)
    from bookops.ops.label import Label

    job, _ = await run_job("process-pages", store, s, "river", params={"ocr_providers": ["tesseract"]})
    paid = srv.hits[CHAT]
    await Label().reset(store, "river")  # the labels go; their answers stay in the call cache
    job2, _ = await run_job("process-pages", store, s, "river", params={"ocr_providers": ["tesseract"]},
                            budget_usd=0.001)  # less than one paid label
    assert job2.status == JobStatus.succeeded and job2.cost_usd == 0.0
    assert srv.hits[CHAT] == paid
    assert await store.count_pages("river", {"labeled": True}) == 12


def _unit(op: str, n: int) -> WorkUnit:
    return WorkUnit(id=f"{op}:b:{n}", op=op, provider="openai", book="b", page=n)


def _done(unit: WorkUnit, cost: float) -> WorkResult:
    return WorkResult(unit=unit, ok=True, usage=Usage(cost_usd=cost))


async def test_budget_admission_rules(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "h", llm_model="m1")
    b = Budget(0.10, s)
    free = WorkUnit(id="x", op="extract", provider="cpu", book="b", page=1)
    assert b.admit(free) is Admit.go
    # nothing known about the endpoint's prices: one unit goes alone, the next waits for its cost
    u1, u2 = _unit("label", 1), _unit("label", 2)
    assert b.admit(u1) is Admit.go
    b.started(u1)
    assert b.admit(u2) is Admit.wait and b.admit(_unit("metadata", 0)) is Admit.wait
    await b.finished(_done(u1, 0.03))
    assert b.spent_usd == pytest.approx(0.03)
    # learnt: 0.03 + 25 % a unit; 0.03 spent + 0.0375 in flight + 0.0375 > 0.10 stops
    assert b.admit(u2) is Admit.go
    b.started(u2)
    assert b.admit(_unit("label", 3)) is Admit.stop
    assert b.stopped and b.admit(_unit("label", 4)) is Admit.stop
    assert b.admit(free) is Admit.go  # unpaid work goes on

    priced_settings = Settings(home=tmp_path / "h", llm_model="m1",
                               prices={"m1": ModelPrice(input_per_mtok=1000.0, output_per_mtok=1000.0)})
    assert Budget(0.5, priced_settings).admit(_unit("metadata", 0)) is Admit.stop  # 3.62 USD estimated
    assert Budget(0.0, s).admit(_unit("label", 1)) is Admit.stop


async def test_library_runs_share_one_dispatcher(tmp_path: Path, store: Store, srv: LlmServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from bookops.jobs import run_many, select_books
    from bookops.pools import Dispatcher

    s = llm_settings(tmp_path, srv)
    for name in ("b-one", "b-two", "b-three"):
        await blended_book(store, n=6, book_id=name)
    made: list[Dispatcher] = []
    real_init = Dispatcher.__init__

    def counting(self: Dispatcher, *a: Any, **kw: Any) -> None:
        made.append(self)
        real_init(self, *a, **kw)

    monkeypatch.setattr(Dispatcher, "__init__", counting)
    todo = await select_books(store, "process-pages")
    assert sorted(b.id for b in todo) == ["b-one", "b-three", "b-two"]
    done: list[str] = []
    results = await run_many("process-pages", store, s, todo, params={"ocr_providers": ["tesseract"]},
                             parallel=2, on_book=lambda b, job, summ, exc: done.append(b.id))
    assert len(made) == 1  # every job used the one dispatcher, so the openai pool was shared
    assert sorted(done) == ["b-one", "b-three", "b-two"]
    assert all(job is not None and job.status == JobStatus.succeeded for _b, job, _e in results)
    assert await select_books(store, "process-pages") == []

    # rerun-toc --all --stale: only the book whose ToC is stale (or failed)
    await store.patch_book("b-two", {"$set": {"stale": ["toc_find", "toc_extract"]}})
    assert [b.id for b in await select_books(store, "rerun-toc", stale_only=True)] == ["b-two"]
    assert len(await select_books(store, "rerun-toc")) == 3

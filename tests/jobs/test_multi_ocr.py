"""Two OCR sources end to end: tesseract and a vision model, blended by an LLM, through real HTTP.

The "model" is tests/llm_server.py with a responder that behaves like a capable one: it
transcribes the page image it is sent (it recognises which page by a thumbnail of the stored page
images), invents text on a blank page (as vision models do), and answers the structured calls of
Blend, Label, Metadata, TocFind and TocExtract with valid JSON read from their prompts.

The book is a 3-page PDF made of sample-book pages 2, 3 and 5 (copyright page, table of contents,
the first chapter): short enough to OCR in a second or two, and whole, so the book-level ops that
wait for consecutive front pages run too (a few pages of the 12-page sample would never let them).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from bookops.ingest import add_book
from bookops.jobs import run_job
from bookops.ops.base import OpContext
from bookops.ops.blend import Blend
from bookops.pools import Dispatcher
from bookops.schema import Book, HistoryEvent, OcrResult, OpError, Page, PageSource, SourceFile, ocr_result_id
from bookops.settings import RateLimit, Settings
from bookops.store import Store, open_store
from bookops.store.history import HistoryBuffer
from tests.llm_server import LlmServer, RecordedRequest, Reply

from ..conftest import SAMPLE_PDF, sample_pdf

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not SAMPLE_PDF.exists(), reason="no sample book")]

BOOKOPS = [sys.executable, "-c", "from bookops.cli import main; main()"]
API_KEY = "sk-multi-ocr-test-5d1e"
SAMPLE_PAGES = (2, 3, 5)  # copyright page, table of contents, chapter 1

# What a good vision model reads on each scan page of the mini book. It differs from tesseract
# where such models do: it joins a hyphenated line end, writes leaders as three dots, and keeps the
# folios tesseract drops, so every page has two different readings to reconcile.
COPYRIGHT = (
    "This manual is part of the SBCL software system. See the README file for more\n"
    "information.\n\n"
    "This manual is in the public domain and is provided with absolutely no warranty.\n"
    "See the COPYING and CREDITS files for more information.")
TOC_LINES = [
    ("1", "Build", "1"), ("1.1", "Cold init", "1"),
    ("2", "Calling Convention", "2"), ("2.1", "Assembly Routines", "2"), ("2.2", "Local Calls", "2"),
    ("2.3", "Full Calls", "3"), ("2.4", "Unknown-Values Returns", "4"), ("2.5", "IR2 Conversion", "4"),
    ("2.6", "Additional Notes", "4"),
    ("3", "Discriminating Functions", "6"), ("3.1", "The Initial Discriminating Function", "6"),
    ("3.2", "Method-Based Discriminating Functions", "7"),
    ("3.3", "Accessor Discriminating Functions", "7"), ("3.4", "Cacheing and Dispatch Functions", "8"),
    ("3.5", "The Cacheing Mechanism", "8"),
    ("4", "Foreign Linkage", "10"), ("4.1", "Linkage-table", "10"), ("4.1.1", "Differences to CMUCL", "10"),
    ("4.1.2", "Nitty Gritty Details", "10"), ("4.1.3", "Porting", "10"),
    ("4.1.3.1", "Porting to new operating systems", "10"), ("4.1.3.2", "Porting to new architectures", "11"),
    ("4.2", "Lazy Alien Resolution", "12"), ("4.3", "Callbacks", "13"),
    ("5", "Funcallable Instances", "14"), ("5.1", "Overview of Funcallable Instances", "14"),
    ("5.2", "Implementation of Funcallable Instances", "14"),
    ("6", "Objects In Memory", "15"), ("6.1", "Type tags", "15"), ("6.1.1", "Lowtags", "15"),
    ("6.1.1.1", "Fixnums", "15"), ("6.1.1.2", "Other-immediates", "15"), ("6.1.1.3", "Pointers", "16"),
    ("6.1.2", "Widetags", "16"), ("6.2", "Heap Object Layout", "16"), ("6.2.1", "Header Values", "17"),
]
TOC = "i\n\nTable of Contents\n\n" + "\n".join(f"{n} {t} ... {p}" for n, t, p in TOC_LINES)
BUILD = (
    "1\n\n1 Build\n\n1.1 Cold init\n\n"
    "At the start of cold init, the only thing the system can do is call functions, because\n"
    "COLD-FSET has arranged for that (and nothing else) to happen.\n"
    "The tricky bit of cold init is getting the system to the point that it can run top level\n"
    "forms. To do that, we need to set up basic structures like the things you look symbols up\n"
    "in the structures which make the type system work.\n"
    "So cold-init is the real bootstrap moment. Genesis dumps symbol<->package relation-\n"
    "ships but not the packages themselves, for instance. So we need to be able to make packages\n"
    "to fixup the system, but to do that we need to be able to make hash-tables, and to do that\n"
    "we need RANDOM to work, so we need to initialize the random-state and so on.\n"
    "We could do much of this at genesis time, but it would just end up being fragile in\n"
    "a different way (needing to know about memory layouts of non-fundamental objects like\n"
    "packages, etc).")
VISION = {1: COPYRIGHT, 2: TOC, 3: BUILD}
# What a vision model writes on a blank page: the guard (ink against characters) must reject it.
INVENTED = ("Chapter 4\n\nThe Reader\n\nThe reader turns characters into objects, one form at a time, "
            "and the printer turns them back into characters.\n") * 3
LABELS: dict[int, dict[str, Any]] = {
    1: {"printed_page": None, "running_header": None, "content_type": "copyright",
        "is_chapter_start": False, "chapter_title": None},
    2: {"printed_page": "i", "running_header": None, "content_type": "toc",
        "is_chapter_start": False, "chapter_title": None},
    3: {"printed_page": "1", "running_header": None, "content_type": "body",
        "is_chapter_start": True, "chapter_title": "1 Build"},
}
BLANK_LABEL = {"printed_page": None, "running_header": None, "content_type": "blank",
               "is_chapter_start": False, "chapter_title": None}
METADATA = {"title": None, "subtitle": None, "authors": [], "editors": [], "publisher": None,
            "year": None, "isbn": None, "lccn": None, "language": "en", "source_pages": [1]}


# ---------------------------------------------------------------------- the book and the model


def _thumb(img: Image.Image) -> list[int]:
    return list(img.convert("L").resize((16, 16), Image.Resampling.BILINEAR).tobytes())


class Model:
    """The responder: a plausible vision model and a plausible structured-output model."""

    def __init__(self, home: Path, vision: dict[int, str], *, echo_key_on_blank: bool = False) -> None:
        self.home = home
        self.vision = vision
        self.echo_key_on_blank = echo_key_on_blank
        self.thumbs: dict[Path, list[int]] = {}

    def __call__(self, req: RecordedRequest) -> Reply:
        fmt = req.body.get("response_format") if isinstance(req.body, dict) else None
        if fmt is None:
            return self._transcribe(req)
        prompt = str(req.messages[-1]["content"])
        return Reply.json(self._structured(fmt["json_schema"]["name"], prompt),
                          prompt_tokens=400, completion_tokens=60, cost=0.0005)

    # -- vision
    def _page_of(self, data_url: str) -> int:
        """Which scan page the image is: the stored page image with the nearest thumbnail."""
        sent = _thumb(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))
        best: tuple[float, int] | None = None
        for path in sorted(self.home.glob("books/*/pages/*")):
            if path not in self.thumbs:
                with Image.open(path) as img:
                    self.thumbs[path] = _thumb(img)
            dist = sum(abs(a - b) for a, b in zip(sent, self.thumbs[path], strict=True))
            if best is None or dist < best[0]:
                best = (dist, int(path.stem))
        assert best is not None, "no page images stored yet"
        return best[1]

    def _transcribe(self, req: RecordedRequest) -> Reply:
        parts = req.messages[-1]["content"]
        url = next(p["image_url"]["url"] for p in parts if p.get("type") == "image_url")
        page = self._page_of(url)
        if page in self.vision:
            return Reply(content=self.vision[page], prompt_tokens=1500, completion_tokens=400, cost=0.002)
        if self.echo_key_on_blank:
            # some endpoints echo the credentials they were given in their error text
            return Reply.error(400, f"bad request for key {req.headers.get('authorization', '')}")
        return Reply(content=INVENTED, prompt_tokens=1500, completion_tokens=120, cost=0.002)

    # -- structured calls
    def _structured(self, schema: str, prompt: str) -> dict[str, Any]:
        if schema == "BlendedText":
            readings = dict(re.findall(r"### Reading \d+: (\w+)\n.*?\n<<<\n(.*?)\n>>>", prompt, flags=re.S))
            # trusts the vision reading's words, as the prompt's note on strengths suggests
            return {"text": readings.get("openai") or next(iter(readings.values()))}
        if schema == "LabelAnswer":
            if "<<<\n(empty)\n>>>" in prompt:
                return BLANK_LABEL
            m = re.search(r"scan page (\d+) of a book", prompt)
            assert m is not None
            return LABELS[int(m.group(1))]
        if schema == "MetadataAnswer":
            return METADATA
        if schema == "TocFindAnswer":
            return {"pages": [2], "confidence": 0.95} if "Table of Contents" in prompt else \
                {"pages": [], "confidence": 0.9}
        if schema == "TocEntriesAnswer":
            return {"entries": [{"title": f"{n} {t}", "level": n.count(".") + 1, "number": n,
                                 "printed_page": p} for n, t, p in TOC_LINES]}
        raise AssertionError(f"unexpected structured call {schema}")


def llm_settings(home: Path, srv: LlmServer) -> Settings:
    # no pacing and a short backoff: the pool's retries are exercised, not waited for
    return Settings(home=home, llm_base_url=srv.base_url, llm_api_key=SecretStr(API_KEY),
                    llm_model="test-model", vision_model="test-vision",
                    limits={"openai": RateLimit(rpm=None, concurrency=4, max_attempts=2, backoff_s=0.01,
                                                backoff_max_s=0.05, timeout_s=20)})


def cli_env(home: Path, srv: LlmServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    env.update({"BOOKOPS_HOME": str(home), "BOOKOPS_LLM_BASE_URL": srv.base_url,
                "BOOKOPS_LLM_API_KEY": API_KEY, "BOOKOPS_LLM_MODEL": "test-model",
                "BOOKOPS_VISION_MODEL": "test-vision", "BOOKOPS_LIMITS__OPENAI__RPM": "60000",
                "BOOKOPS_LIMITS__OPENAI__BURST": "100", "BOOKOPS_LIMITS__OPENAI__BACKOFF_S": "0.01"})
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BOOKOPS, *args], env=env, capture_output=True, text=True, timeout=100)


async def new_book(store: Store, settings: Settings, pdf: Path) -> Book:
    book, created = await add_book(store, settings, [pdf])
    assert created
    return book


def by_job(events: list[HistoryEvent], job: str, name: str) -> list[HistoryEvent]:
    return [e for e in events if e.job == job and e.event == name]


# ------------------------------------------------------------- 1. process-pages --ocr tesseract,openai


async def test_process_pages_with_tesseract_and_openai(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pdf = sample_pdf(tmp_path / "mini.pdf", SAMPLE_PAGES)
    with LlmServer() as srv:
        srv.responder = Model(home, VISION)
        settings = llm_settings(home, srv)
        store = await open_store(settings)
        try:
            book = await new_book(store, settings, pdf)
            job, summary = await run_job("process-pages", store, settings, book, params={
                "ocr_providers": ["tesseract", "openai"], "ocr_upscale": False})
            assert job.status.value == "succeeded" and summary.failed == 0, job.error
            pages = await store.list_pages(book.id)
            results = await store.list_ocr_results(book.id)
            calls = await store.list_calls(book.id)
            history = await store.list_history(book.id)
            after = await store.get_book(book.id)
            toc = await store.get_toc(book.id)
        finally:
            await store.close()

    # two OCR results per page, one from each engine
    assert sorted((r.page_num, r.provider) for r in results) == [
        (p, prov) for p in (1, 2, 3) for prov in ("openai", "tesseract")]
    vision = {r.page_num: r for r in results if r.provider == "openai"}
    assert all(vision[p].text == VISION[p] and vision[p].model == "test-vision" for p in (1, 2, 3))
    # blended by the LLM from both sources
    for page in pages:
        assert page.blended and page.blend is not None
        assert (page.blend.method, page.blend.sources, page.blend.dropped) == (
            "llm", ["tesseract", "openai"], [])
        assert page.blend.text == VISION[page.page_num]
        assert page.labeled and page.label is not None and page.label.method == "llm"
    assert [p.label.printed_page for p in pages if p.label] == [None, "i", "1"]
    assert after is not None and sorted(after.ocr_providers) == ["openai", "tesseract"]
    assert after.metadata is not None and after.metadata.method == "llm"
    assert {op: after.flag(op).state.value for op in ("label", "metadata", "toc_find", "toc_extract")} == {
        "label": "done", "metadata": "done", "toc_find": "done", "toc_extract": "done"}
    assert toc is not None and toc.pages == [2] and toc.extracted_by == "llm"
    assert len(toc.entries) == len(TOC_LINES)
    assert (toc.entries[0].title, toc.entries[0].scan_page) == ("1 Build", 3)  # resolved via labels
    # every LLM call recorded once, none failed
    per_op: dict[str, int] = {}
    for c in calls:
        assert c.outcome == "ok" and c.job == job.id
        per_op[c.op] = per_op.get(c.op, 0) + 1
    assert per_op == {"ocr": 3, "blend": 3, "label": 3, "metadata": 1, "toc_find": 1, "toc_extract": 1}
    assert job.cost_usd == pytest.approx(3 * 0.002 + 9 * 0.0005)
    done = {(e.page, e.detail["provider"]) for e in by_job(history, job.id, "ocr.done")}
    assert done == {(p, prov) for p in (1, 2, 3) for prov in ("tesseract", "openai")}
    assert {e.detail["method"] for e in by_job(history, job.id, "blend.done")} == {"llm"}


# ---------------------------------------------------------------------- 2. add-ocr-source


async def test_add_ocr_source_reblends_then_reruns_downstream(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pdf = sample_pdf(tmp_path / "mini.pdf", SAMPLE_PAGES)
    offline = Settings(home=home)
    store = await open_store(offline)
    try:
        book = await new_book(store, offline, pdf)
        first, _ = await run_job("process-pages", store, offline, book, pages=[1, 2, 3],
                                 params={"ocr_providers": ["tesseract"], "ocr_upscale": False})
        assert first.status.value == "succeeded"
        before = {p.page_num: p for p in await store.list_pages(book.id)}
    finally:
        await store.close()
    assert all(p.blend is not None and p.blend.sources == ["tesseract"] for p in before.values())
    old_labels = {n: p.label for n, p in before.items()}

    with LlmServer() as srv:
        srv.responder = Model(home, VISION)
        env = cli_env(home, srv)
        out = cli(env, "job", "add-ocr-source", book.id, "--provider", "openai", "--json")
        assert out.returncode == 0, out.stderr
        added = json.loads(out.stdout)["job"]
        assert added["status"] == "succeeded" and added["kind"] == "add-ocr-source"
        # only vision transcriptions and blends were asked for: nothing downstream ran
        assert srv.hits["/v1/chat/completions"] == 6

        store = await open_store(offline)
        try:
            pages = await store.list_pages(book.id)
            stale_book = await store.get_book(book.id)
            history = await store.list_history(book.id)
        finally:
            await store.close()
        for page in pages:  # every page re-blended with both sources
            assert page.blend is not None and page.blend.sources == ["tesseract", "openai"]
            assert page.blend.method == "llm" and page.blended
            assert page.label == old_labels[page.page_num]  # not relabelled: stale instead
        assert {e.page for e in by_job(history, added["id"], "ocr.done")
                if e.detail["provider"] == "openai"} == {1, 2, 3}
        reblends = by_job(history, added["id"], "blend.done")
        assert sorted(e.page for e in reblends) == [1, 2, 3]
        assert all(e.detail["sources"] == ["tesseract", "openai"] for e in reblends)
        (stale_event,) = by_job(history, added["id"], "downstream.stale")
        assert stale_event.detail["provider"] == "openai"
        assert stale_book is not None
        assert stale_book.stale == ["label", "metadata", "toc_find", "toc_extract"]
        assert stale_book.ocr_providers == ["tesseract", "openai"]
        shown = cli(env, "book", "show", book.id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["stale"] == ["label", "metadata", "toc_find", "toc_extract"]

        hits = srv.hits["/v1/chat/completions"]
        out = cli(env, "job", "add-ocr-source", book.id, "--provider", "openai", "--rerun-downstream",
                  "--json")
        assert out.returncode == 0, out.stderr
        rerun = json.loads(out.stdout)["job"]
        assert rerun["status"] == "succeeded"
        # no page is read again and the re-blends come from the call cache; label x3, metadata,
        # toc_find and toc_extract are the new calls
        assert srv.hits["/v1/chat/completions"] - hits == 6

    store = await open_store(offline)
    try:
        final = await store.get_book(book.id)
        pages = await store.list_pages(book.id)
        history = await store.list_history(book.id)
        toc = await store.get_toc(book.id)
    finally:
        await store.close()
    assert final is not None and final.stale == []
    for op in ("label", "metadata", "toc_find", "toc_extract"):
        flag = final.flag(op)
        assert flag.state.value == "done", op
        # label's book flag is set by its offline sequence pass; its pages were read by the LLM
        assert flag.provider == ("offline" if op == "label" else "openai")
    assert all(p.label is not None and p.label.method == "llm" for p in pages)
    assert toc is not None and toc.extracted_by == "llm" and toc.pages == [2]
    assert by_job(history, rerun["id"], "downstream.reset")
    # each page was labelled only after its blend with the new source was current again
    blended_at = {e.page: e.at for e in by_job(history, rerun["id"], "blend.done")}
    labelled_at = {e.page: e.at for e in by_job(history, rerun["id"], "label.done")}
    assert sorted(blended_at) == sorted(labelled_at) == [1, 2, 3]
    assert all(blended_at[p] <= labelled_at[p] for p in (1, 2, 3))


# ---------------------------------------------------------------------- 3. a provider that failed for good


async def _book(store: Store, n: int) -> Book:
    book = Book(id="b1", name="b1", page_count=n,
                sources=[SourceFile(path="x.pdf", sha256="0" * 64, kind="pdf", page_count=n)])
    await store.add_book(book, [Page.new("b1", i, PageSource(file=0, index=i - 1)) for i in range(1, n + 1)])
    return book


async def _ocr_done(store: Store, page: int, provider: str, text: str) -> None:
    await store.put_ocr_result(OcrResult(id=ocr_result_id("b1", page, provider), book="b1", page_num=page,
                                         provider=provider, text=text, confidence=0.9))
    await store.patch_page("b1", page, {"$set": {f"ocr.{provider}.done": True},
                                        "$unset": {f"errors.ocr_{provider}": ""}})


async def test_blend_does_not_wait_for_a_provider_that_failed_on_the_page(store: Store,
                                                                          settings: Settings) -> None:
    book = await _book(store, 3)
    ctx = OpContext(store=store, settings=settings, dispatcher=Dispatcher(settings), book=book,
                    history=HistoryBuffer(store), params={"ocr_providers": ["tesseract", "openai"]})
    op = Blend()
    try:
        for p in (1, 2, 3):
            await _ocr_done(store, p, "tesseract", f"page {p} text")
        await _ocr_done(store, 1, "openai", "page 1 text.")
        err = OpError(kind="invalid_output", message="vision OCR wrote 600 characters on a blank page",
                      attempts=4)
        await store.patch_page("b1", 2, {"$set": {"errors.ocr_openai": err.model_dump(mode="json")}})
        # page 1 has both readings; page 2's vision read failed for good; page 3's is still to come
        units = {u.page: u for u in await op.create_units(ctx)}
        assert sorted(units) == [1, 2]
        assert units[1].payload["sources"] == ["tesseract", "openai"]
        assert units[2].payload["sources"] == ["tesseract"]
        for unit in units.values():
            result = await ctx.dispatcher.submit(unit, lambda u: op.execute(ctx, u))
            assert result.ok, result.error
            await op.handle_result(ctx, result)
        page2 = await store.get_page("b1", 2)
        assert page2 is not None and page2.blended and page2.blend is not None
        assert (page2.blend.sources, page2.blend.method) == (["tesseract"], "single")
        assert await op.done_count(ctx) == 2 and not await op.is_complete(ctx)  # page 3 still waits
        # a later run reads page 2 after all: the error goes, the flag comes, it is blended again
        await _ocr_done(store, 2, "openai", "page 2 text.")
        page2 = await store.get_page("b1", 2)
        assert page2 is not None
        (again,) = await op.units_for_page(ctx, page2)
        assert again.payload["sources"] == ["tesseract", "openai"]
        # nothing at all to blend yet is still no unit: a page with every provider failed waits
        await store.patch_page("b1", 3, {"$unset": {"ocr.tesseract": ""},
                                         "$set": {"errors.ocr_tesseract": err.model_dump(mode="json"),
                                                  "errors.ocr_openai": err.model_dump(mode="json")}})
        page3 = await store.get_page("b1", 3)
        assert page3 is not None and await op.units_for_page(ctx, page3) == []
    finally:
        await ctx.history.aclose()
        await ctx.dispatcher.aclose()


async def test_blank_page_rejected_by_the_vision_guard_is_blended_from_tesseract(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pdf = sample_pdf(tmp_path / "blank.pdf", (2,), blank_after=True)  # copyright page, then a blank leaf
    with LlmServer() as srv:
        srv.responder = Model(home, {1: COPYRIGHT})
        settings = llm_settings(home, srv).model_copy(update={"dpi": 100})  # the blank leaf is rendered
        store = await open_store(settings)
        try:
            book = await new_book(store, settings, pdf)
            job, summary = await run_job("process-pages", store, settings, book, params={
                "ocr_providers": ["tesseract", "openai"], "ocr_upscale": False})
            pages = await store.list_pages(book.id)
            calls = await store.list_calls(book.id)
            after = await store.get_book(book.id)
            history = await store.list_history(book.id)
        finally:
            await store.close()
    # the job went on past the failed page and finished everything else
    assert job.status.value == "succeeded", job.error
    assert summary.failed == 1 and summary.progress["ocr:openai"].failed == 1
    blank = pages[1]
    assert "ocr_openai" in blank.errors and blank.errors["ocr_openai"].kind == "invalid_output"
    assert "invented text" in blank.errors["ocr_openai"].message
    assert blank.blended and blank.blend is not None
    assert (blank.blend.sources, blank.blend.method) == (["tesseract"], "single")
    assert pages[0].blend is not None and pages[0].blend.method == "llm"
    # the guard's rejections are recorded calls, one per attempt, and none was cached
    rejected = [c for c in calls if c.op == "ocr" and c.page == 2]
    assert [c.outcome for c in rejected] == ["invalid_output", "invalid_output"]
    assert all(c.response is None for c in rejected)
    # the book-level ops, which need pages 1..2 blended, ran
    assert after is not None
    assert after.flag("metadata").state.value == "done" and after.flag("toc_find").state.value == "done"
    assert pages[1].label is not None and pages[1].label.content_type.value == "blank"
    assert by_job(history, job.id, "ocr.failed")[0].page == 2

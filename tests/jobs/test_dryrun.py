"""``--dry-run``: the units a job would create and their estimated cost, with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bookops.jobs import run_job
from bookops.jobs.dryrun import dry_run
from bookops.schema import Book
from bookops.settings import ModelPrice, Settings
from bookops.store import Store
from tests.conftest import SAMPLE_PDF
from tests.jobs.test_budget import PRICE_IN, PRICE_OUT, blended_book, llm_settings, srv  # noqa: F401
from tests.llm_server import LlmServer

COLLECTIONS = ("books", "pages", "ocr_results", "tocs", "jobs", "leases", "history", "calls")


async def snapshot(store: Store) -> dict[str, Any]:
    out = {}
    for name in COLLECTIONS:
        docs = await getattr(store, name).find({})
        out[name] = sorted(json.dumps(d, sort_keys=True, default=str) for d in docs)
    return out


def by_op(plan: Any) -> dict[str, tuple[str, int]]:
    return {o.op: (o.provider, o.units) for o in plan.ops}


async def test_dry_run_writes_nothing_and_estimates_within_2x(tmp_path: Path, store: Store,
                                                               srv: LlmServer) -> None:  # noqa: F811
    await blended_book(store, n=20)
    s = llm_settings(tmp_path, srv, prices={"m1": ModelPrice(input_per_mtok=PRICE_IN,
                                                              output_per_mtok=PRICE_OUT)})
    before = await snapshot(store)
    book = await store.get_book("river")
    assert book is not None
    plan = await dry_run("process-pages", store, s, book, params={"ocr_providers": ["tesseract"]})
    assert await snapshot(store) == before
    assert srv.hits["/v1/chat/completions"] == 0
    ops = by_op(plan)
    assert ops["extract"] == ("cpu", 0) and ops["ocr:tesseract"] == ("tesseract", 0)
    assert ops["blend"] == ("offline", 0)
    assert ops["label"] == ("openai", 20) and ops["label:sequence"] == ("offline", 1)
    assert ops["metadata"] == ops["toc_find"] == ops["toc_extract"] == ("openai", 1)
    assert plan.cost_usd is not None and plan.cost_usd > 0

    job, _ = await run_job("process-pages", store, s, "river", params={"ocr_providers": ["tesseract"]})
    actual = sum(c.cost_usd or 0.0 for c in await store.list_calls("river"))
    assert job.cost_usd == pytest.approx(actual)
    print(f"estimated ${plan.cost_usd:.4f}, actual ${actual:.4f}")
    assert plan.cost_usd / 2 <= actual <= plan.cost_usd * 2, (plan.cost_usd, actual)

    # a finished book: nothing left to do, nothing to pay
    again = await dry_run("process-pages", store, s, book, params={"ocr_providers": ["tesseract"]})
    assert again.units == 0 and again.cost_usd == 0
    # rerun-toc counts its two ops as reset
    toc = await dry_run("rerun-toc", store, s, book)
    assert by_op(toc) == {"toc_find": ("openai", 1), "toc_extract": ("openai", 1)}


async def test_dry_run_of_a_new_book_and_an_extra_ocr_source(tmp_path: Path, store: Store) -> None:
    s = Settings(home=tmp_path / "home")
    book = await blended_book(store, n=5)
    plan = await dry_run("add-ocr-source", store, s, book, params={"provider": "openai"})
    ops = by_op(plan)
    assert ops["ocr:openai"] == ("openai", 5)
    assert ops["blend"] == ("offline", 5)  # no LLM configured: the offline vote
    assert plan.cost_usd is None  # no price for a vision model: unknown, not zero
    fresh = Book(id="new", name="new", page_count=3, sources=book.sources)
    new_plan = await dry_run("process-pages", store, s, fresh)
    assert by_op(new_plan)["extract"] == ("cpu", 3) and by_op(new_plan)["metadata"] == ("offline", 1)
    assert any("not in the store" in n for n in new_plan.notes)


def test_cli_dry_run_on_a_path_adds_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "BOOKOPS_HOME": str(tmp_path / "home")}
    bookops = [str(Path(sys.executable).parent / "bookops")]
    out = subprocess.run([*bookops, "job", "process-pages", str(SAMPLE_PDF), "--dry-run", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["pages"] == 12 and data["units"] > 0 and data["cost_usd"] == 0
    listed = subprocess.run([*bookops, "book", "list", "--json"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert json.loads(listed.stdout) == []

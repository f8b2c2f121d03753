"""Per-page metrics of every operation, and the reports built on them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bookops.cli import app
from bookops.ingest import add_book
from bookops.jobs import run_job
from bookops.report import book_summary, filter_rows, page_rows, sort_rows
from bookops.settings import Settings
from bookops.store import Store
from tests.conftest import sample_pdf
from tests.jobs.test_budget import blended_book

METRIC_FIELDS = ("provider", "seconds", "queue_s", "attempts", "cost_usd", "quality")


async def test_every_operation_writes_metrics(tmp_path: Path, store: Store, settings: Settings) -> None:
    pdf = sample_pdf(tmp_path / "front.pdf", range(1, 5))  # title, copyright, the two ToC pages
    book, _ = await add_book(store, settings, [pdf])
    job, _ = await run_job("process-pages", store, settings, book,
                           params={"ocr_providers": ["tesseract"], "ocr_upscale": False})
    assert job.status.value == "succeeded"
    pages = await store.list_pages(book.id)
    for page in pages:
        assert set(page.metrics) >= {"extract", "ocr_tesseract", "blend", "label"}
        for m in page.metrics.values():
            assert m.provider and m.seconds is not None and m.queue_s is not None and m.attempts >= 1
        q = page.metrics["ocr_tesseract"].quality
        assert 0 <= q["confidence"] <= 1 and q["low_conf_share"] is not None
        assert "agreement" in page.metrics["blend"].quality
        lq = page.metrics["label"].quality
        assert "printed_page" in lq and "sequence_fixed" in lq
    got = await store.get_book(book.id)
    assert got is not None
    assert set(got.metrics) >= {"label", "metadata", "toc_find", "toc_extract"}
    assert got.metrics["toc_find"].quality["found"] is True
    tq = got.metrics["toc_extract"].quality
    assert tq["entries"] > 0 and {"without_page", "unresolved"} <= set(tq)
    assert "fields_found" in got.metrics["metadata"].quality

    summary = await book_summary(store, book.id)
    ops = {o.op: o for o in summary.ops}
    assert ops["ocr:tesseract"].done == 4 and ops["toc_extract"].done == 1
    weakest = summary.weakest["lowest ocr:tesseract confidence"]
    confs = [r["confidence"] for r in weakest]
    assert confs == sorted(confs)


@pytest.fixture
async def river(store: Store, settings: Settings) -> str:
    await blended_book(store, n=8)
    for num, conf in {1: 0.95, 2: 0.41, 3: 0.58, 4: 0.9, 5: 0.72, 6: 0.3, 7: 0.88, 8: 0.99}.items():
        await store.patch_page("river", num, {"$set": {"ocr.tesseract.confidence": conf}})
    job, _ = await run_job("process-pages", store, settings, "river", params={"ocr_providers": ["tesseract"]})
    assert job.status.value == "succeeded"
    # the folios as the label pass would leave them (the synthetic pages have no word boxes)
    for num in range(1, 9):
        printed = str(num - 3) if num > 3 else None
        await store.patch_page("river", num, {"$set": {"label.printed_page": printed,
                                                       "label.read_as": printed}})
    return "river"


async def test_filters_and_sort(store: Store, river: str) -> None:
    ocr = await page_rows(store, river, "ocr")
    low = sort_rows(filter_rows(ocr, ["confidence<0.6"]), "confidence")
    assert [r["page"] for r in low] == [6, 2, 3]
    assert [r["page"] for r in sort_rows(filter_rows(ocr, ["confidence>=0.9"]), "-confidence")] == [8, 1, 4]
    labels = await page_rows(store, river, "label")
    none = filter_rows(labels, ["printed_page="])
    assert [r["page"] for r in none] == [1, 2, 3]  # title, copyright and contents print no folio
    assert all(r["printed_page"] for r in filter_rows(labels, ["printed_page!="]))
    assert [r["page"] for r in filter_rows(labels, ["printed_page=2"])] == [5]
    assert filter_rows(labels, ["sequence_fixed=false", "status=done"]) == labels
    (meta,) = await page_rows(store, river, "metadata")  # a book-level op: one row
    assert meta["page"] is None and meta["status"] == "done" and meta["fields_found"] >= 1
    assert filter_rows([meta], ["fields_found>=1", "isbn_found=false"]) == [meta]


def test_cli_report_table_csv_json(store: Store, river: str, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "low.csv"
    res = runner.invoke(app, ["report", river, "--op", "ocr", "--filter", "confidence<0.6",
                              "--sort", "confidence", "--csv", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["page"] for r in rows] == ["6", "2", "3"]
    assert {"confidence", "status", "seconds", "cost_usd", "provider"} <= set(rows[0])
    assert "0.3" in res.output and "confidence" in res.output

    res = runner.invoke(app, ["report", river, "--op", "label", "--filter", "printed_page=", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["page"] for r in json.loads(res.output)] == [1, 2, 3]

    res = runner.invoke(app, ["report", river])
    assert res.exit_code == 0, res.output
    assert "weakest: lowest ocr:tesseract confidence" in res.output
    first_weak = res.output.split("weakest: lowest ocr:tesseract confidence")[1]
    assert first_weak.index("0.3") < first_weak.index("0.41")

    res = runner.invoke(app, ["report", river, "--op", "nonsense"])
    assert res.exit_code != 0

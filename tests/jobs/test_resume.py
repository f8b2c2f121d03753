"""A process-pages killed with SIGKILL part way resumes from the store: nothing redone, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bookops.settings import Settings
from bookops.store import open_store

from ..conftest import SAMPLE_PDF

pytestmark = [pytest.mark.timeout(240), pytest.mark.skipif(not SAMPLE_PDF.exists(), reason="no sample book")]

BOOKOPS = [sys.executable, "-c", "from bookops.cli import main; main()"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    env["BOOKOPS_HOME"] = str(home)
    return env


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BOOKOPS, *args], env=_env(home), capture_output=True, text=True, timeout=200)


def _add(home: Path) -> str:
    out = _cli(home, "book", "add", str(SAMPLE_PDF))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _export(home: Path, book: str) -> dict:
    out = _cli(home, "export", book, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def _ocr_done(home: Path, book: str) -> dict[int, str]:
    """Scan page -> created_at of its stored tesseract result, for pages flagged done."""
    store = await open_store(Settings(home=home))
    try:
        pages = await store.list_pages(book, where={"ocr.tesseract.done": True})
        results = {r.page_num: r.created_at.isoformat()
                   for r in await store.list_ocr_results(book, provider="tesseract")}
        return {p.page_num: results[p.page_num] for p in pages}
    finally:
        await store.close()


async def test_killed_run_resumes_without_redoing_pages(tmp_path: Path) -> None:
    clean_home, killed_home = tmp_path / "clean", tmp_path / "killed"
    book = _add(clean_home)
    assert _add(killed_home) == book

    run = _cli(clean_home, "job", "process-pages", book, "--quiet")
    assert run.returncode == 0, run.stderr
    expected = _export(clean_home, book)

    proc = subprocess.Popen([*BOOKOPS, "job", "process-pages", book, "--quiet"], env=_env(killed_home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    before: dict[int, str] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        before = await _ocr_done(killed_home, book)
        if len(before) >= 4:
            break
        await asyncio.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = await _ocr_done(killed_home, book)
    assert 4 <= len(before) < expected["page_count"]

    rerun = _cli(killed_home, "job", "process-pages", book, "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    after = await _ocr_done(killed_home, book)
    assert len(after) == expected["page_count"]
    # pages OCR'd before the kill kept their stored result: not redone
    assert {p: after[p] for p in before} == before

    store = await open_store(Settings(home=killed_home))
    try:
        events = await store.list_history(book, event="ocr.done")
        per_page = [e.page for e in events if e.detail.get("provider") == "tesseract"]
        assert sorted(per_page) == list(range(1, expected["page_count"] + 1))  # each page once
        jobs = await store.list_jobs(book)
        assert [j.status.value for j in jobs] == ["failed", "succeeded"]  # the killed one taken over
    finally:
        await store.close()

    assert _export(killed_home, book) == expected

"""Ctrl-C (SIGINT to the whole process group) stops a job cleanly; a rerun resumes it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bookops.settings import Settings
from bookops.store import open_store

from ..conftest import SAMPLE_PDF
from .test_resume import BOOKOPS, _add, _cli, _env, _ocr_done

pytestmark = [pytest.mark.timeout(240), pytest.mark.skipif(not SAMPLE_PDF.exists(), reason="no sample book")]


async def test_ctrl_c_cancels_keeps_results_and_rerun_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    book = _add(home)
    proc = subprocess.Popen([*BOOKOPS, "job", "process-pages", book, "--quiet"], env=_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,  # its own group, as a terminal's foreground job
                            # a shell's background jobs inherit SIGINT ignored; a terminal's do not
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(await _ocr_done(home, book)) >= 2:
            break
        await asyncio.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err

    store = await open_store(Settings(home=home))
    try:
        jobs = await store.list_jobs(book)
        assert [j.status.value for j in jobs] == ["cancelled"]
        assert await store.get_lease(book) is None
        done_before = await _ocr_done(home, book)
        # what was in flight when Ctrl-C came was finished and kept, not thrown away as failed
        failed = await store.list_pages(book, where={"errors.ocr_tesseract": {"$exists": True}})
        assert failed == []
    finally:
        await store.close()

    rerun = _cli(home, "job", "process-pages", book, "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    after = await _ocr_done(home, book)
    assert {p: after[p] for p in done_before} == done_before  # not redone
    store = await open_store(Settings(home=home))
    try:
        events = await store.list_history(book, event="ocr.done")
        assert sorted(e.page for e in events) == sorted(after)
    finally:
        await store.close()

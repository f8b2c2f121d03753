"""The crash harness in small (``reliability/crash.py``; ``make reliability`` runs the long one).

A 6-page cut of the sample book, LLM path on (vision OCR beside tesseract, LLM blend, labels,
metadata and ToC, all answered by the scripted loopback server): one uninterrupted run for the
reference, then the job is SIGKILLed twice (during OCR, during labels) and rerun. The final run
succeeds, its export equals the reference, and no answered request is paid for again unless it
was in flight when the job died.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability.crash import check, crash_mode

from tests.conftest import SAMPLE_PDF, sample_pdf

pytestmark = [pytest.mark.timeout(300), pytest.mark.skipif(not SAMPLE_PDF.exists(), reason="no sample book")]


async def test_two_kills_with_the_llm_on_resume_to_the_same_export(tmp_path: Path) -> None:
    book = sample_pdf(tmp_path / "six pages.pdf", range(1, 7))
    res = await crash_mode(tmp_path, book, llm_on=True, kills=2, phases=("ocr", "label"),
                           log=lambda *_: None)
    assert res["kills_landed"] == 2, res["runs"]
    assert check(res) == []
    assert res["export_equal"] and res["final_rc"] == 0
    calls = res["calls"]
    assert calls["ok_recorded_twice"] == 0  # no stored answer was paid for again
    # every call the server answered has its record, those in flight at a kill included
    assert calls["hits_without_record"] == 0
    assert calls["calls_in_flight_at_kill"] >= 1
    # every other paid call was in flight when the job died (4 LLM calls run at a time)
    assert calls["server_hits"] == calls["calls_ok"] + calls["lost_in_flight"]
    assert calls["lost_in_flight"] <= 2 * 4
    assert res["jobs"] == {"failed": 2, "succeeded": 1}  # the killed jobs were taken over
    assert res["children_left_after_kill"] == 0

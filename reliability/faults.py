"""Provider faults end to end: ``process-pages`` with the LLM on, against a loopback server that
answers with a 429 storm (Retry-After), 20 % HTTP 500, 10 % invalid output and 5 % timeouts.

Checks that the job completes, that every unit that failed for good is recorded (on its page, or
on the book's flag for book-level ops) with its error kind, that each unit's attempts stay within
the pool's bound (counted both from the server's own log and from the ``calls`` collection),
and that the two counts of HTTP calls agree.

    python -m reliability.faults                     # sample book, figures to results/faults.json
    python -m reliability.faults --book path.pdf --seed 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.llm_server import RecordedRequest, Reply

from bookops.providers.llm_calls import request_hash
from bookops.providers.openai_compat import MAX_REPAIRS

from .common import (
    SAMPLE_PDF,
    ScriptedLlm,
    add_book,
    cli,
    env_for,
    op_of,
    open_home,
    scripted_answer,
    write_result,
)

MAX_ATTEMPTS = 4  # the openai pool's default, set explicitly below
# The provider timeout; a "timeout" reply waits longer than this (the server caps a delay at 30 s).
# Not shorter: Label and TocFind units run tesseract re-reads inside their LLM attempt, which on
# a loaded machine took over 2 s (Label) and over 10 s (TocFind's careful pass of the candidates).
TIMEOUT_S = 25.0
STORM = range(1, 16)  # the first 15 requests: 429 with Retry-After
SECOND_STORM = range(60, 70)


class FaultyAnswers:
    """Faults drawn from a seeded generator in arrival order, then the scripted answer."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.lock = threading.Lock()
        self.kinds: Counter[str] = Counter()
        self.calm = False  # True: no more faults

    def __call__(self, req: RecordedRequest) -> Reply:
        with self.lock:
            self.n += 1
            n = self.n
            roll = self.rng.random()
        kind, reply = self._pick(n, roll, req)
        with self.lock:
            self.kinds[kind] += 1
        return reply

    def _pick(self, n: int, roll: float, req: RecordedRequest) -> tuple[str, Reply]:
        if self.calm:
            return "ok", scripted_answer(req)
        if n in STORM or n in SECOND_STORM:
            return "429", Reply.rate_limited(1)
        if roll < 0.20:
            return "500", Reply.error(500, "injected server error")
        if roll < 0.30:
            if op_of(req) == "ocr":  # a text answer cannot be bad JSON: invent text on the page instead
                return "invalid", Reply(content="invented words " * 300)
            return "invalid", Reply(content='{"te')
        if roll < 0.35:
            return "timeout", Reply.slow(30.0)
        return "ok", scripted_answer(req)


def unit_key(req: RecordedRequest) -> tuple[str, str]:
    """The unit a request belongs to: its op and the hash of the original request (repair turns
    are appended to the conversation, so the first messages identify the logical request)."""
    body = req.body if isinstance(req.body, dict) else {}
    rf = body.get("response_format") or {}
    schema = (rf.get("json_schema") or {}).get("schema")
    msgs = body.get("messages") or []
    first = msgs[:2] if schema is not None else msgs[:1]
    return op_of(req), request_hash(str(body.get("model")), first, schema)


async def figures(home: Path, book: str, llm: ScriptedLlm, job: dict[str, Any]) -> dict[str, Any]:
    store = await open_home(home)
    try:
        calls = await store.list_calls(book)
        pages = await store.list_pages(book)
        the_book = await store.get_book(book)
    finally:
        await store.close()
    # HTTP calls per unit, from the server's own log and from the calls collection
    server_per_unit: Counter[tuple[str, str]] = Counter(
        unit_key(r) for r in llm.server.chat_requests())
    store_per_unit: Counter[tuple[str, str]] = Counter((c.op, c.request_hash) for c in calls)
    # pool attempts: each starts a new conversation (repair turn 1)
    pool_attempts: Counter[tuple[str, str]] = Counter(
        (c.op, c.request_hash) for c in calls if c.attempts == 1)
    outcomes = Counter(c.outcome for c in calls)
    ok_units = {(c.op, c.request_hash) for c in calls if c.outcome == "ok"}

    failed_pages: dict[str, Counter[str]] = defaultdict(Counter)
    unrecorded_kind = 0
    for p in pages:
        for op, err in p.errors.items():
            failed_pages[op][err.kind] += 1
            unrecorded_kind += int(not err.kind)
    failed_book = {op: the_book.flag(op).error for op in ("metadata", "toc_find", "toc_extract")
                   if the_book is not None and the_book.flag(op).state.value == "failed"}
    progress = job.get("job", {}).get("progress", {})
    # progress says "ocr:openai" where the page's error says "ocr_openai"
    failed_in_job = {k.replace(":", "_"): v.get("failed", 0) for k, v in progress.items() if v.get("failed")}
    recorded = {op: sum(c.values()) for op, c in failed_pages.items()}
    for op in failed_book:
        recorded[op] = recorded.get(op, 0) + 1
    bound_http = MAX_ATTEMPTS * (1 + MAX_REPAIRS)
    return {
        "server_http_calls": sum(server_per_unit.values()),
        "calls_records": len(calls),
        "calls_by_outcome": dict(outcomes),
        "units": len(server_per_unit),
        "units_answered_ok": len(ok_units),
        "http_calls_per_unit_max_server": max(server_per_unit.values(), default=0),
        "http_calls_per_unit_max_store": max(store_per_unit.values(), default=0),
        "http_calls_per_unit_bound": bound_http,
        "pool_attempts_per_unit_max": max(pool_attempts.values(), default=0),
        "pool_attempts_bound": MAX_ATTEMPTS,
        "pool_attempts_histogram": dict(sorted(Counter(pool_attempts.values()).items())),
        "units_over_bound": sum(1 for n in server_per_unit.values() if n > bound_http),
        "failed_pages_by_op_and_kind": {op: dict(c) for op, c in failed_pages.items()},
        "failed_book_ops": failed_book,
        "failed_in_job_progress": failed_in_job,
        "failed_recorded": recorded,
        "failures_without_kind": unrecorded_kind,
    }


def check(res: dict[str, Any]) -> list[str]:
    f = res["figures"]
    bad = []
    if res["status"] not in ("succeeded", "failed"):
        bad.append(f"the job ended {res['status']} (rc {res['rc']}): {res.get('stderr')}")
    if f["units_over_bound"] or f["pool_attempts_per_unit_max"] > f["pool_attempts_bound"]:
        bad.append(f"{f['units_over_bound']} units over {f['http_calls_per_unit_bound']} HTTP calls; "
                   f"max pool attempts {f['pool_attempts_per_unit_max']}")
    if f["server_http_calls"] != f["calls_records"]:
        bad.append(f"server saw {f['server_http_calls']} calls, calls collection has {f['calls_records']}")
    if f["failed_in_job_progress"] != f["failed_recorded"]:
        bad.append(f"failed per job progress {f['failed_in_job_progress']} "
                   f"!= recorded {f['failed_recorded']}")
    if f["failures_without_kind"]:
        bad.append(f"{f['failures_without_kind']} failures recorded without an error kind")
    rerun = res.get("rerun", {})
    if rerun.get("status") != "succeeded" or rerun.get("asked_again_after_ok"):
        bad.append(f"the rerun after the storm: {rerun}")
    if res["status"] == "failed" and not f["failed_book_ops"]:
        bad.append("the job failed without a failed book-level op recorded")
    return bad


async def run(pdf: Path, seed: int, work: Path) -> dict[str, Any]:
    answers = FaultyAnswers(seed)
    with ScriptedLlm(answers) as llm:
        env = env_for(work / "home", llm.server,
                      BOOKOPS_LIMITS__OPENAI__MAX_ATTEMPTS=str(MAX_ATTEMPTS),
                      BOOKOPS_LIMITS__OPENAI__TIMEOUT_S=str(TIMEOUT_S),
                      BOOKOPS_LIMITS__OPENAI__BACKOFF_S="0.5", BOOKOPS_LIMITS__OPENAI__BACKOFF_MAX_S="5")
        book = add_book(env, pdf)
        t0 = time.monotonic()
        out = cli(env, "job", "process-pages", book, "--json", timeout=1800)
        seconds = time.monotonic() - t0
        try:
            job = json.loads(out.stdout)
        except ValueError:
            job = {}
        res: dict[str, Any] = {"book": pdf.name, "seed": seed, "rc": out.returncode,
                               "seconds": round(seconds, 1),
                               "status": job.get("job", {}).get("status"),
                               "injected": dict(answers.kinds)}
        if out.returncode not in (0, 1):
            res["stderr"] = out.stderr[-800:]
        res["figures"] = await figures(work / "home", book, llm, job)
        # the storm is over: a rerun tries the failed units again, and pays for nothing answered
        answered = {h for h, n in llm.hits.items() if n}
        store = await open_home(work / "home")
        try:
            ok_before = {c.request_hash for c in await store.list_calls(book) if c.outcome == "ok"}
        finally:
            await store.close()
        answers.calm = True
        hits_before = sum(llm.hits.values())
        again = cli(env, "job", "process-pages", book, "--json", timeout=1800)
        try:
            job2 = json.loads(again.stdout).get("job", {})
        except ValueError:
            job2 = {}
        with llm.lock:
            new_log = llm.log[hits_before:]
        res["rerun"] = {
            "rc": again.returncode, "status": job2.get("status"),
            "failed": {k: v.get("failed") for k, v in job2.get("progress", {}).items() if v.get("failed")},
            "http_calls": len(new_log),
            "asked_again_after_ok": sum(1 for e in new_log if e["hash"] in ok_before),
            "requests_seen_before": sum(1 for e in new_log if e["hash"] in answered),
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--book", type=Path, default=SAMPLE_PDF)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the home (for a look at the store)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bookops-faults-"))
    try:
        res = asyncio.run(run(args.book, args.seed, work))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    res["problems"] = check(res)
    print(json.dumps(res, indent=2))
    path = write_result("faults", {"at": time.strftime("%Y-%m-%d %H:%M:%S"), **res})
    print(f"figures written to {path}")
    if res["problems"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

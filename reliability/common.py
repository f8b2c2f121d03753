"""What the reliability scripts share: a bookops CLI in a subprocess, store probes, and a scripted
LLM server that answers every call deterministically and counts what it was paid for.

Run from the repository root (``python -m reliability.crash``); the loopback server comes from
``tests/llm_server.py``. Every network call goes to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.llm_server import LlmServer, RecordedRequest, Reply

from bookops.providers.llm_calls import request_hash
from bookops.settings import Settings
from bookops.store import Store, open_store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PDF = ROOT / "samples" / "sample-book.pdf"
DEV_BOOK = ROOT.parent / "shared" / "corpus" / "dev" / "sbcl-internals" / "book.pdf"
RESULTS = ROOT / "reliability" / "results"
BOOKOPS = [sys.executable, "-c", "from bookops.cli import main; main()"]
API_KEY = "sk-reliability-not-a-secret"


# ---------------------------------------------------------------------------------- the CLI
def env_for(home: Path, llm: LlmServer | None = None, **extra: str) -> dict[str, str]:
    """A clean environment: no BOOKOPS_/OPENAI_ variable from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    env["BOOKOPS_HOME"] = str(home)
    if llm is not None:
        env.update({
            "BOOKOPS_LLM_BASE_URL": llm.base_url, "BOOKOPS_LLM_API_KEY": API_KEY,
            "BOOKOPS_LLM_MODEL": "rel-model", "BOOKOPS_VISION_MODEL": "rel-vision",
            "BOOKOPS_OCR_PROVIDERS": "tesseract,openai",
            # the server answers at once; pacing at 60/min would only make the runs long
            "BOOKOPS_LIMITS__OPENAI__RPM": "100000",
        })
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BOOKOPS, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def add_book(env: dict[str, str], path: Path) -> str:
    out = cli(env, "book", "add", str(path))
    if out.returncode != 0:
        raise RuntimeError(f"book add failed: {out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def export(env: dict[str, str], book: str) -> dict[str, Any]:
    out = cli(env, "export", book, "--format", "json")
    if out.returncode != 0:
        raise RuntimeError(f"export failed: {out.stderr}")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def start_job(env: dict[str, str], book: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    """The job in the background; its stderr goes to a file (a pipe would stay open as long as
    any child that inherited it lives, and reading it would wait for them)."""
    err = Path(env["BOOKOPS_HOME"]) / f"job-{time.monotonic_ns()}.err"
    err.parent.mkdir(parents=True, exist_ok=True)
    with err.open("wb") as fh:
        proc = subprocess.Popen([*BOOKOPS, "job", "process-pages", book, "--quiet", *extra], env=env,
                                stdout=subprocess.DEVNULL, stderr=fh)
    return proc, err


def kill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the job (its CPU workers are orphaned and exit when their pipe closes)."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return True


# ---------------------------------------------------------------------------------- store probes
async def open_home(home: Path) -> Store:
    return await open_store(Settings(home=home))


async def counts(store: Store, book: str) -> dict[str, Any]:
    """Progress read from the durable flags, the way a rerun judges it."""
    b = await store.get_book(book)
    flags = {op: b.flag(op).state.value for op in ("metadata", "toc_find", "toc_extract")} if b else {}
    return {
        "extracted": await store.count_pages(book, {"extracted": True}),
        "ocr": await store.count_pages(book, {"ocr.tesseract.done": True}),
        "ocr_llm": await store.count_pages(book, {"ocr.openai.done": True}),
        "blended": await store.count_pages(book, {"blended": True}),
        "labeled": await store.count_pages(book, {"labeled": True}),
        **flags,
    }


def short_mode(c: dict[str, Any]) -> str:
    flags = " ".join(f"{k}:{c.get(k, '-')[:4]}" for k in ("metadata", "toc_find", "toc_extract"))
    return f"x{c.get('extracted')} o{c.get('ocr')} b{c.get('blended')} l{c.get('labeled')} {flags}"


# ---------------------------------------------------------------------------------- the LLM script
_HINT = re.compile(r"A rule-based reader suggested: (\{.*\})\s*$", re.M)
_FIND_HINT = re.compile(r"A rule-based reader suggested pages (\[[0-9, ]*\]|none)")
_SAMPLE_LINE = re.compile(r"^(\d+) \| (.+) \| (\S+)$", re.M)
_READING = re.compile(r"### Reading 1: .*?\n<<<\n(.*?)\n>>>", re.S)


def _user_text(req: RecordedRequest) -> str:
    for m in req.messages:
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def scripted_answer(req: RecordedRequest) -> Reply:
    """A valid answer for every bookops request, a pure function of the request.

    The answers echo the offline readings the prompts carry (so labels, metadata and the ToC stay
    plausible), and the same request always gets the same answer: an interrupted run and an
    uninterrupted one must end with the same export.
    """
    body = req.body if isinstance(req.body, dict) else {}
    rf = body.get("response_format") or {}
    name = (rf.get("json_schema") or {}).get("name")
    text = _user_text(req)
    if name is None:  # vision OCR: a short transcription (the ink check allows 40 characters)
        digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()
        return Reply(content=f"Vision reading {digest[:8]}")
    if name == "BlendedText":
        m = _READING.search(text)
        return Reply.json({"text": m.group(1) if m else "blended"})
    if name == "LabelAnswer":
        hint = json.loads(m.group(1)) if (m := _HINT.search(text)) else {}
        return Reply.json({k: hint.get(k, d) for k, d in (
            ("printed_page", None), ("running_header", None), ("content_type", "body"),
            ("is_chapter_start", False), ("chapter_title", None))})
    if name == "MetadataAnswer":
        hint = json.loads(m.group(1)) if (m := _HINT.search(text)) else {}
        fields: dict[str, Any] = {"title": None, "subtitle": None, "authors": [], "editors": [],
                                  "publisher": None, "year": None, "isbn": None, "lccn": None,
                                  "language": None, "source_pages": []}
        return Reply.json({k: hint.get(k, d) if hint.get(k) is not None else d for k, d in fields.items()})
    if name == "TocFindAnswer":
        m = _FIND_HINT.search(text)
        pages = json.loads(m.group(1)) if m and m.group(1) != "none" else []
        return Reply.json({"pages": pages, "confidence": 0.9 if pages else 0.5})
    if name == "TocEntriesAnswer":
        entries = [{"title": t, "level": int(lv), "number": None, "printed_page": None if p == "-" else p}
                   for lv, t, p in _SAMPLE_LINE.findall(text)]
        return Reply.json({"entries": entries})
    return Reply.error(400, f"reliability script: unknown request {name}")


def op_of(req: RecordedRequest) -> str:
    body = req.body if isinstance(req.body, dict) else {}
    name = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    return {None: "ocr", "BlendedText": "blend", "LabelAnswer": "label", "MetadataAnswer": "metadata",
            "TocFindAnswer": "toc_find", "TocEntriesAnswer": "toc_extract"}.get(name, str(name))


def hash_of(req: RecordedRequest) -> str:
    """The request hash bookops stores in ``calls`` (first attempts: no repair turns)."""
    body = req.body if isinstance(req.body, dict) else {}
    rf = body.get("response_format") or {}
    schema = (rf.get("json_schema") or {}).get("schema")
    return request_hash(str(body.get("model")), body.get("messages"), schema)


class ScriptedLlm:
    """The loopback server, answering through ``answer`` and counting hits per request hash.

    ``kill_on(op, n, pid_fn)`` makes the n-th request of ``op`` from now SIGKILL the job process
    as it arrives: the call is paid (counted here) but its answer never reaches the job.
    """

    def __init__(self, answer: Callable[[RecordedRequest], Reply] = scripted_answer) -> None:
        self._answer = answer
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()  # request hash -> times asked
        self.by_op: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self._kill: tuple[str, int, Callable[[], int | None]] | None = None
        self.killed_on: list[str] = []
        self.lost: dict[str, int] = {}  # request hash -> asks whose answer a kill lost (kept by crash.py)
        self.incomplete = 0  # requests cut short by a kill while they were being sent
        self.server = LlmServer(self._respond)

    def __enter__(self) -> ScriptedLlm:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def kill_on(self, op: str, n: int, pid: Callable[[], int | None]) -> None:
        with self.lock:
            self._kill = (op, n, pid)

    def cancel_kill(self) -> None:
        with self.lock:
            self._kill = None

    def _respond(self, req: RecordedRequest) -> Reply:
        if not isinstance(req.body, dict):
            # A job killed while it was still sending a request leaves a short body: an endpoint
            # refuses what it cannot parse and bills nothing, so it is not a paid hit.
            with self.lock:
                self.incomplete += 1
            return Reply.error(400, "the request body is not a complete JSON object")
        op = op_of(req)
        h = hash_of(req)
        reply = self._answer(req)
        with self.lock:
            self.hits[h] += 1
            self.by_op[op] += 1
            self.log.append({"op": op, "hash": h, "status": reply.status, "at": time.time()})
            if self._kill is not None and self._kill[0] == op:
                k_op, n, pid_fn = self._kill
                if n <= 1:
                    self._kill = None
                    pid = pid_fn()
                    if pid is not None:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            self.killed_on.append(op)
                        except ProcessLookupError:
                            pass
                else:
                    self._kill = (k_op, n - 1, pid_fn)
        return reply


async def call_figures(home: Path, book: str, llm: ScriptedLlm) -> dict[str, Any]:
    """The ``calls`` collection of the store at ``home`` against the server's own count."""
    store = await open_home(home)
    try:
        calls = await store.list_calls(book)
    finally:
        await store.close()
    ok = Counter(c.request_hash for c in calls if c.outcome == "ok")
    recorded = Counter(c.request_hash for c in calls)  # any outcome, in_flight ones left by kills too
    with llm.lock:
        hits = Counter(llm.hits)
    repeated = {h: n for h, n in hits.items() if n > 1}
    return {
        "server_hits": sum(hits.values()),
        "distinct_requests": len(hits),
        "calls_records": len(calls),
        "calls_ok": sum(ok.values()),
        "calls_in_flight_at_kill": sum(1 for c in calls if c.outcome == "in_flight"),
        # requests the server answered more often than `calls` has records of them: unaccounted pay
        "hits_without_record": sum(max(0, n - recorded[h]) for h, n in hits.items()),
        "ok_recorded_twice": sum(1 for n in ok.values() if n > 1),
        "asked_again": sum(n - 1 for n in repeated.values()),
        "never_recorded_ok": sorted(set(hits) - set(ok))[:5],
        "recorded_not_asked": len(set(ok) - set(hits)),
        "incomplete_requests": llm.incomplete,
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def descendants(pid: int) -> set[int]:
    """Every descendant pid of ``pid`` (Linux /proc)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for t in tasks:
            try:
                kids = [int(x) for x in (t / "children").read_text().split()]
            except OSError:
                continue
            for k in kids:
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out

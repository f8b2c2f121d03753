"""Crash harness: SIGKILL ``bookops job process-pages`` at chosen moments, rerun, compare.

For each mode (LLM off: tesseract and the offline ops; LLM on: tesseract + vision OCR and every
LLM op answered by the scripted loopback server) it runs the book once without interruption for
the reference export, then on a second home runs the same job again and again, killing each run
during a different phase (extract, OCR, blend, labels, ToC) at a random point, and finally lets a
run finish. It checks:

- every run after a kill starts (takes the dead job's lease over) and the last one succeeds;
- the final ``bookops export BOOK --format json`` equals the uninterrupted run's;
- no page's work is recorded done twice (one ``ocr.done`` event per page and provider);
- LLM mode: every request the server was paid for is recorded ``ok`` in ``calls`` once, and a
  request is asked again only when it was in flight at a kill (the cache answers the rest);
- the killed job's CPU worker processes do not outlive it.

    python -m reliability.crash --kills 10            # both modes, figures to results/crash.json
    python -m reliability.crash --kills 2 --mode llm --book samples/sample-book.pdf
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .common import (
    DEV_BOOK,
    SAMPLE_PDF,
    ScriptedLlm,
    add_book,
    call_figures,
    cli,
    counts,
    descendants,
    env_for,
    export,
    kill,
    open_home,
    short_mode,
    start_job,
    write_result,
)

PHASES = ("extract", "ocr", "blend", "label", "toc")
_POLL_S = 0.01
_RUN_TIMEOUT_S = 900.0




def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): with the pid, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _snapshot(pid: int) -> set[tuple[int, str]]:
    return {(k, t) for k in descendants(pid) if (t := _started(k)) is not None}


def _alive(procs: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those still running (not zombies, and not a new process that was given a reused pid)."""
    alive = set()
    for pid, started in procs:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and fields[19] == started:
            alive.add((pid, started))
    return alive


async def _killed_run(env: dict[str, str], book: str, phase: str, total: int, rng: random.Random,
                      llm: ScriptedLlm | None) -> dict[str, Any]:
    """One run of the job, killed during ``phase``; what was stored when it died."""
    home = Path(env["BOOKOPS_HOME"])
    store = await open_home(home)
    try:
        before = await counts(store, book)
        proc, err_file = start_job(env, book)
        t0 = time.monotonic()
        trigger = ""
        kids: set[tuple[int, str]] = set()
        key = {"extract": "extracted", "ocr": "ocr", "blend": "blended", "label": "labeled"}.get(phase)
        server_kill = llm is not None and phase in ("ocr", "blend", "label", "toc")
        if server_kill:
            assert llm is not None
            op = {"ocr": "ocr", "blend": "blend", "label": "label"}.get(phase) or rng.choice(
                ["metadata", "toc_find", "toc_extract"])
            # the n-th of the requests this op still has to make (vision OCR runs ahead of tesseract)
            key_done = {"ocr": "ocr_llm", "blend": "blended", "label": "labeled"}.get(phase, "labeled")
            left = total - before[key_done]
            n = rng.randint(1, max(1, left // 2)) if phase != "toc" else 1
            llm.kill_on(op, n, lambda: proc.pid)
            trigger = f"server: {n}th {op} request"
        elif key is not None:
            if before[key] >= total - 1:
                k = None
            else:
                k = rng.randint(before[key] + 1, total - 1)
            trigger = f"store: {key} >= {k}" if k is not None else f"{key} already done"
        else:
            k = None
            trigger = "store: toc_find started"
        while proc.poll() is None and time.monotonic() - t0 < _RUN_TIMEOUT_S:
            # the descendants alive now: the last look before the kill is what the kill orphans
            kids = _snapshot(proc.pid) or kids
            if not server_kill:
                c = await counts(store, book)
                hit = (c[key] >= k) if key is not None and k is not None else (
                    key is None and c.get("toc_find") not in (None, "not_started"))
                if hit:
                    kids = _snapshot(proc.pid) or kids
                    kill(proc)
                    break
            await asyncio.sleep(_POLL_S)
        if llm is not None:
            llm.cancel_kill()
        if proc.poll() is None:  # timed out
            kill(proc)
        rc = proc.wait()
        stderr = err_file.read_text(errors="replace")
        t_kill = time.monotonic() - t0
        # the job's CPU workers and tesseract children must not outlive it for long
        deadline = time.monotonic() + 30
        while _alive(kids) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        orphans_s = time.monotonic() - t0 - t_kill
        after = await counts(store, book)
        lost = 0
        if llm is not None:
            # requests the server answered whose answer the job never stored: paid, then lost
            ok = {c.request_hash for c in await store.list_calls(book) if c.outcome == "ok"}
            with llm.lock:
                for h, n in llm.hits.items():
                    now = n - (1 if h in ok else 0)
                    lost += now - llm.lost.get(h, 0)
                    llm.lost[h] = now
        return {"phase": phase, "trigger": trigger, "landed": rc == -9, "rc": rc, "at_s": round(t_kill, 2),
                "lost_in_flight": lost,
                "before": short_mode(before), "after": short_mode(after),
                "children": len(kids), "children_left": len(_alive(kids)),
                "children_gone_s": round(orphans_s, 2),
                "stderr": stderr.strip()[-300:] if rc not in (0, -9) else ""}
    finally:
        await store.close()


async def _ocr_events(home: Path, book: str) -> dict[str, Any]:
    store = await open_home(home)
    try:
        events = await store.list_history(book, event="ocr.done")
        per = Counter((e.page, e.detail.get("provider")) for e in events)
        jobs = [j.status.value for j in await store.list_jobs(book)]
        return {"ocr_done_events": len(events),
                "pages_with_duplicate_ocr_done": sum(1 for n in per.values() if n > 1),
                "jobs": dict(Counter(jobs))}
    finally:
        await store.close()


async def crash_mode(workdir: Path, pdf: Path, *, llm_on: bool, kills: int, seed: int = 1,
                     phases: tuple[str, ...] = PHASES, log: Any = print) -> dict[str, Any]:
    """The reference run, then ``kills`` killed runs (phases in turn), then the finishing run."""
    rng = random.Random(seed)
    mode = "llm" if llm_on else "offline"
    clean_home = workdir / f"{mode}-clean"
    out: dict[str, Any] = {"mode": mode, "book": pdf.name, "kills_planned": kills}

    clean_llm = ScriptedLlm() if llm_on else None
    if clean_llm:
        clean_llm.__enter__()
    try:
        env = env_for(clean_home, clean_llm.server if clean_llm else None)
        book = add_book(env, pdf)
        t0 = time.monotonic()
        ref = cli(env, "job", "process-pages", book, "--quiet")
        out["reference_s"] = round(time.monotonic() - t0, 1)
        if ref.returncode != 0:
            raise RuntimeError(f"the uninterrupted run failed: {ref.stderr}")
        expected = export(env, book)
        if clean_llm:
            out["reference_calls"] = await call_figures(clean_home, book, clean_llm)
            out["reference_calls_by_op"] = dict(clean_llm.by_op)
    finally:
        if clean_llm:
            clean_llm.__exit__()
    log(f"[{mode}] reference run {out['reference_s']} s, {expected['page_count']} pages")

    # rounds of one kill per phase, each on a fresh home: once a round's book is finished there
    # is nothing left to kill
    rounds = []
    done = 0
    r = 0
    while done < kills:
        n = min(len(phases), kills - done)
        rounds.append(await _round(workdir / f"{mode}-killed-{r}", pdf, book, expected, phases[:n],
                                   llm_on, rng, log, f"{mode} round {r + 1}"))
        done += n
        r += 1
    out["rounds"] = rounds
    runs = [run for rd in rounds for run in rd["runs"]]
    out["runs"] = runs
    out["final_rc"] = next((rd["final_rc"] for rd in rounds if rd["final_rc"] != 0), 0)
    out["final_stderr"] = " | ".join(rd.get("final_stderr", "") for rd in rounds).strip(" |")
    out["final_run_s"] = [rd["final_run_s"] for rd in rounds]
    out["kills_landed"] = sum(run["landed"] for run in runs)
    out["runs_failed_otherwise"] = sum(1 for run in runs if run["rc"] not in (0, -9))
    out["kills_by_phase"] = dict(Counter(run["phase"] for run in runs if run["landed"]))
    out["children_left_after_kill"] = sum(run["children_left"] for run in runs)
    out["export_equal"] = all(rd["export_equal"] for rd in rounds)
    out["export_diff_keys"] = sorted({k for rd in rounds for k in rd.get("export_diff_keys", [])})
    out["pages_with_duplicate_ocr_done"] = sum(rd["pages_with_duplicate_ocr_done"] for rd in rounds)
    out["jobs"] = dict(sum((Counter(rd["jobs"]) for rd in rounds), Counter()))
    if llm_on:
        calls: dict[str, Any] = {}
        for rd in rounds:
            for k, v in rd["calls"].items():
                calls[k] = calls.get(k, [] if isinstance(v, list) else 0) + v
        out["calls"] = calls
    return out


async def _round(home: Path, pdf: Path, book: str, expected: dict[str, Any], phases: tuple[str, ...],
                 llm_on: bool, rng: random.Random, log: Any, name: str) -> dict[str, Any]:
    """Kill the job once per phase on a fresh home, then let it finish; compare the export."""
    out: dict[str, Any] = {}
    total = expected["page_count"]
    llm = ScriptedLlm() if llm_on else None
    if llm:
        llm.__enter__()
    try:
        env = env_for(home, llm.server if llm else None)
        assert add_book(env, pdf) == book
        runs = []
        for i, phase in enumerate(phases):
            r = await _killed_run(env, book, phase, total, rng, llm)
            runs.append(r)
            log(f"[{name}] kill {i + 1}/{len(phases)} {phase:8} {r['trigger']:32} landed={r['landed']} "
                f"at {r['at_s']} s: {r['after']}" + (f" rc={r['rc']} {r['stderr']}" if r["stderr"] else ""))
        t0 = time.monotonic()
        final = cli(env, "job", "process-pages", book, "--quiet")
        out["final_run_s"] = round(time.monotonic() - t0, 1)
        out["final_rc"] = final.returncode
        if final.returncode != 0:
            out["final_stderr"] = final.stderr[-500:]
        got = export(env, book)
        out["runs"] = runs
        out["export_equal"] = got == expected
        if got != expected:
            out["export_diff_keys"] = sorted(k for k in expected if expected.get(k) != got.get(k))
            out["export_diff"] = {k: _diff(expected[k], got.get(k)) for k in out["export_diff_keys"]}
        out.update(await _ocr_events(home, book))
        if llm:
            out["calls"] = await call_figures(home, book, llm)
            out["calls"]["lost_in_flight"] = sum(r["lost_in_flight"] for r in runs)
            out["calls_by_op"] = dict(llm.by_op)
            out["server_kills"] = list(llm.killed_on)
    finally:
        if llm:
            llm.__exit__()
    log(f"[{name}] final run rc {out['final_rc']} in {out['final_run_s']} s, "
        f"export equal: {out['export_equal']}")
    return out


def _diff(want: Any, got: Any) -> Any:
    """Where two export values differ: (scan page, expected, got) for per-page lists."""
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [(i + 1, str(a)[:80], str(b)[:80]) for i, (a, b) in enumerate(zip(want, got, strict=True))
                if a != b][:10]
    return [str(want)[:200], str(got)[:200]]


def check(res: dict[str, Any]) -> list[str]:
    """What did not hold, as sentences (empty: everything held)."""
    bad = []
    if res.get("final_rc") != 0:
        bad.append(f"the final run exited {res.get('final_rc')}: {res.get('final_stderr')}")
    if res.get("runs_failed_otherwise"):
        bad.append(f"{res['runs_failed_otherwise']} runs ended with an error instead of being killed")
    if not res.get("export_equal"):
        bad.append(f"export differs from the uninterrupted run in {res.get('export_diff_keys')}")
    if res.get("pages_with_duplicate_ocr_done"):
        bad.append(f"{res['pages_with_duplicate_ocr_done']} pages were OCR'd twice")
    if res.get("children_left_after_kill"):
        bad.append(f"{res['children_left_after_kill']} worker processes outlived their job by 30 s")
    calls = res.get("calls")
    if calls:
        if calls.get("hits_without_record"):
            bad.append(f"{calls['hits_without_record']} answered calls have no record in `calls`")
        if calls["ok_recorded_twice"]:
            bad.append(f"{calls['ok_recorded_twice']} requests were paid and recorded ok twice")
        # every paid call is either the one stored answer of its request, or was in flight when the
        # job died (its answer lost with the process); nothing stored is ever paid for again
        lost = calls.get("lost_in_flight", 0)
        if calls["server_hits"] != calls["calls_ok"] + lost:
            bad.append(f"server answered {calls['server_hits']} calls: {calls['calls_ok']} stored ok + "
                       f"{lost} lost in flight at kills does not add up")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10, help="kills per mode")
    ap.add_argument("--mode", choices=["offline", "llm", "both"], default="both")
    ap.add_argument("--book", type=Path, default=DEV_BOOK if DEV_BOOK.exists() else SAMPLE_PDF)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    modes = [False, True] if args.mode == "both" else [args.mode == "llm"]
    work = Path(tempfile.mkdtemp(prefix="bookops-crash-"))
    results = []
    try:
        for llm_on in modes:
            res = asyncio.run(crash_mode(work, args.book, llm_on=llm_on, kills=args.kills, seed=args.seed))
            res["problems"] = check(res)
            results.append(res)
            print(f"[{res['mode']}] kills landed {res['kills_landed']}/{args.kills}, "
                  f"final rc {res['final_rc']}, export equal: {res['export_equal']}, "
                  f"calls: {res.get('calls')}")
            for p in res["problems"]:
                print(f"[{res['mode']}] DID NOT HOLD: {p}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = write_result("crash", {"at": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results})
    print(f"figures written to {path}")
    if any(r["problems"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

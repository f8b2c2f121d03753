"""Score the real pipeline on the corpus: ``bookops job process-pages``, ``bookops export``, ``score.py``.

Usage: python scripts/score_pipeline.py [--corpus DIR] [--home DIR] [--out DIR] [--real]
           [--only ID ...] [--workers N] [--keep]

For every dev book (and with ``--real`` every image folder of ``real/``): a fresh embedded store in a
temporary BOOKOPS_HOME, offline (no LLM settings are passed on), the CLI exactly as a user runs it,
then the corpus scorer on the JSON export. Prints one row per book and writes the predictions and
scores to OUT/<id>.json and OUT/<id>.score.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_CORPUS = Path("/work/shared/corpus")
DEFAULT_OUT = Path("/tmp/bookops-pipeline-pred")


def bookops_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("bookops")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from bookops.cli import main; main()"]


def clean_env(home: Path) -> dict[str, str]:
    """This environment without bookops/LLM settings (nothing calls a paid API), home in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    env["BOOKOPS_HOME"] = str(home)
    return env


def run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def process(source: Path, home: Path, out: Path, workers: int | None) -> tuple[Path, float]:
    """Add (image folders) or take (PDFs) the book, run process-pages, export JSON; (pred, seconds)."""
    env = clean_env(home)
    target = str(source)
    if source.is_dir():
        target = json.loads(run([*bookops_cmd(), "book", "add", str(source), "--json"], env))["id"]
    cmd = [*bookops_cmd(), "job", "process-pages", target, "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    job = json.loads(run(cmd, env))
    seconds = time.perf_counter() - t0
    book = job["job"]["book"]
    if job["job"]["status"] != "succeeded":
        print(f"  warning: job {job['job']['status']} ({job.get('failed')} failed)", file=sys.stderr)
    run([*bookops_cmd(), "export", book, "--format", "json", "-o", str(out)], env)
    return out, seconds


def score(corpus: Path, gt: Path, pred: Path) -> dict[str, Any]:
    res = subprocess.run([sys.executable, str(corpus / "score.py"), str(gt), str(pred), "--json"],
                         capture_output=True, text=True, check=True)
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def books(corpus: Path, real: bool, only: list[str]) -> list[tuple[str, Path, Path]]:
    """(id, source to process, groundtruth.json)."""
    out = [(d.name, d / "book.pdf", d / "groundtruth.json") for d in sorted((corpus / "dev").iterdir())
           if (d / "book.pdf").exists()]
    if real:
        out += [(d.name, d / "images", d / "groundtruth.json") for d in sorted((corpus / "real").iterdir())
                if (d / "images").is_dir()]
    return [b for b in out if not only or b[0] in only]


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "ok" if v else "WRONG"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--home", type=Path, default=None, help="BOOKOPS_HOME parent (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--real", action="store_true", help="also the image folders of corpus/real")
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary BOOKOPS_HOMEs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.home or Path(tempfile.mkdtemp(prefix="bookops-score-"))
    cols = ("tocP_F1", "tocE_F1", "titleF1", "labels", "lab_num", "lab_nul", "title", "authors", "CER",
            "s/page")
    print(f"{'book':26} " + " ".join(f"{c:>7}" for c in cols), flush=True)
    try:
        for bid, source, gt in books(args.corpus, args.real, args.only):
            home = base / bid
            shutil.rmtree(home, ignore_errors=True)
            pred, secs = process(source, home, args.out / f"{bid}.json", args.workers)
            r = score(args.corpus, gt, pred)
            (args.out / f"{bid}.score.json").write_text(json.dumps(r, indent=1))
            n = json.loads(gt.read_text())["page_count"]
            te, pl, md = r["toc_entries"], r["page_labels"], r["metadata"]
            vals = (r["toc_pages"]["f1"], te["f1"], te["title_only"]["f1"], pl["accuracy"],
                    pl["accuracy_numbered"], pl["accuracy_unnumbered"], md["title"], md["authors"],
                    r.get("cer", {}).get("cer"), secs / n)
            print(f"{bid:26} " + " ".join(f"{fmt(v):>7}" for v in vals), flush=True)
    finally:
        if not args.keep and args.home is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

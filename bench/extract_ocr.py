"""Seconds per page of Extract + OCR, against a bare tesseract pool and OCRmyPDF, with the CER.

    .venv/bin/python bench/extract_ocr.py [PDF] [--pages N] [--workers N] [--rounds N]
        [--skip-job] [--skip-ocrmypdf]

Runs on PDF (default: the 63-page maint-guide of the dev corpus), first N pages:
  (a)  Extract + Ocr(tesseract) through the runner (``run_operations``), embedded store in a temp home
  (a') ``bookops job process-pages`` as a subprocess with a temp BOOKOPS_HOME: all seven operations,
       offline (no LLM key is passed on), so the OCR dominates
  (b)  the floor: a bare process pool, one single-threaded tesseract per core, on the page images;
       (b1) pytesseract.image_to_string on the image as it is (THE floor the ratios use),
       (b1') pytesseract.image_to_data, the call the Ocr op makes for word boxes (no CER: its
       text is not laid out in lines), (b2) bookops' tesseract adapter as the Ocr op runs it (no
       upscale), (b3) the adapter with ``upscale=True``
  (c)  ``ocrmypdf --force-ocr -j <cores> --sidecar`` when OCRmyPDF is installed
With ``--rounds N`` every run is made N times, interleaved, and the ratios are medians of each
round's ratio to that round's floor: on a shared machine the speed drifts by 10-20 % between
minutes, which a single run cannot tell from an effect.
The CER uses the corpus scorer against ``<pdf dir>/pages/NNNN.txt`` when those exist.

Figures and how to read them: bench/README.md, "Extract and OCR".
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib.util
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_PDF = CORPUS / "dev" / "maint-guide" / "book.pdf"


# ---------------------------------------------------------------------------------------- helpers

def scorer() -> ModuleType | None:
    path = CORPUS / "score.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("corpus_score", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def references(pdf: Path, n: int) -> list[str] | None:
    pages = pdf.parent / "pages"
    files = [pages / f"{i:04d}.txt" for i in range(1, n + 1)]
    if not all(f.exists() for f in files):
        return None
    return [f.read_text(encoding="utf-8") for f in files]


def cer(refs: list[str] | None, texts: list[str] | None) -> float | None:
    score = scorer()
    if refs is None or texts is None or score is None:
        return None
    return float(score.score_cer(refs, texts)["cer"])


def clean_env(home: Path) -> dict[str, str]:
    """This environment without bookops/LLM settings (so nothing calls a paid API), home in tmp."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    env["BOOKOPS_HOME"] = str(home)
    return env


def cpu_now() -> float:
    """CPU seconds (user + system) of this process and of every child it has waited for.

    Tesseract runs in pool workers and their children, all reaped by the time a run ends, so the
    difference around a run is its whole CPU cost: steadier than wall time on a shared machine.
    """
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _single_thread() -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"


def _bare_tesseract(path: str, dpi: int | None) -> str:
    import pytesseract

    return str(pytesseract.image_to_string(path, config=f"--dpi {dpi}" if dpi else ""))


def _bare_tesseract_data(path: str, dpi: int | None) -> str:
    """The call the Ocr op is specified to make (word boxes and confidences), bare."""
    import pytesseract

    data = pytesseract.image_to_data(path, config=f"--dpi {dpi}" if dpi else "",
                                     output_type=pytesseract.Output.DICT)
    return " ".join(t for t in data["text"] if t.strip())


def _adapter(path: str, dpi: int | None) -> str:
    from bookops.providers.tesseract import ocr_image

    return str(ocr_image(path, "eng", dpi)["text"])


def _adapter_upscaled(path: str, dpi: int | None) -> str:
    from bookops.providers.tesseract import ocr_image

    return str(ocr_image(path, "eng", dpi, upscale=True)["text"])


def pool_run(fn: Any, images: list[tuple[str, int | None]], workers: int) -> tuple[float, list[str]]:
    with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_single_thread) as ex:
        list(ex.map(_single_thread_noop, range(workers)))  # start the workers outside the timing
        t0 = time.perf_counter()
        texts = list(ex.map(fn, [p for p, _ in images], [d for _, d in images]))
        return time.perf_counter() - t0, texts


def _single_thread_noop(_: int) -> None:
    return None


# ---------------------------------------------------------------------------------------- runs

async def run_library(pdf: Path, n: int, workers: int, home: Path) -> tuple[float, list[str], list[Any]]:
    from bookops.api import Library
    from bookops.jobs.runner import run_operations
    from bookops.ops.extract import Extract
    from bookops.ops.ocr import Ocr
    from bookops.settings import Settings

    settings = Settings(home=home, workers=workers)
    lib = Library(settings)
    try:
        book = await lib.aadd(pdf)
        t0 = time.perf_counter()
        results = await run_operations([Extract(), Ocr("tesseract")], lib, book.id,
                                       pages=range(1, n + 1), settings=settings)
        seconds = time.perf_counter() - t0
        pages = await lib.apages(book.id, range(1, n + 1))
    finally:
        await lib.aclose()
    return seconds, [r.text for r in results], pages


def run_cli(pdf: Path, n: int, workers: int, home: Path) -> tuple[float, dict[str, Any], list[str]]:
    exe = Path(sys.executable).with_name("bookops")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from bookops.cli import main; main()"]
    cmd += ["job", "process-pages", str(pdf), "--pages", f"1-{n}", "--workers", str(workers),
            "--ocr", "tesseract", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=clean_env(home), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"process-pages failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    texts = asyncio.run(_ocr_texts(home, out["job"]["book"], n))
    return seconds, out, texts


async def _ocr_texts(home: Path, book_id: str, n: int) -> list[str]:
    from bookops.settings import Settings
    from bookops.store import open_store

    store = await open_store(Settings(home=home))
    try:
        res = {r.page_num: r.text for r in await store.list_ocr_results(book_id, provider="tesseract")}
    finally:
        await store.close()
    return [res.get(i, "") for i in range(1, n + 1)]


def extract_images(pdf: Path, n: int, out: Path) -> list[tuple[str, int | None]]:
    from bookops.providers.pdf import extract_page

    infos = [extract_page(str(pdf), i, str(out / f"{i + 1:04d}"), 300) for i in range(n)]
    return [(str(i["path"]), i["dpi"]) for i in infos]


def run_ocrmypdf(pdf: Path, n: int, workers: int, tmp: Path) -> tuple[float, list[str]] | None:
    exe = shutil.which("ocrmypdf") or str(Path(sys.executable).with_name("ocrmypdf"))
    if not Path(exe).exists():
        return None
    side = tmp / "sidecar.txt"
    cmd = [exe, "--force-ocr", "-j", str(workers), "--output-type", "pdf", "--pages", f"1-{n}",
           "--sidecar", str(side), "-q", str(pdf), str(tmp / "ocrmypdf.pdf")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    seconds = time.perf_counter() - t0
    return seconds, side.read_text(encoding="utf-8").split("\f")[:n]


# ---------------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pdf", nargs="?", type=Path, default=DEFAULT_PDF)
    ap.add_argument("--pages", type=int, default=None, help="first N pages only (default: all)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run everything this many times, interleaved; medians are reported")
    ap.add_argument("--skip-job", action="store_true", help="skip (a) and (a')")
    ap.add_argument("--skip-cli", action="store_true", help="skip (a') only")
    ap.add_argument("--skip-ocrmypdf", action="store_true")
    ap.add_argument("--skip-upscale", action="store_true", help="skip (b3)")
    args = ap.parse_args()

    import pypdfium2 as pdfium

    with pdfium.PdfDocument(str(args.pdf)) as doc:
        total = len(doc)
    n = min(args.pages or total, total)
    refs = references(args.pdf, n)
    print(f"{args.pdf} : {n} pages, {args.workers} workers, tesseract single-threaded, "
          f"{args.rounds} round(s)")
    if args.skip_ocrmypdf:
        print("(c)  ocrmypdf skipped")

    # name -> one (wall s, CPU s) per round; name -> CER (the same every round)
    times: dict[str, list[tuple[float, float]]] = {}
    cers: dict[str, float | None] = {}

    def record(name: str, c0: float, secs: float, texts: list[str] | None) -> None:
        times.setdefault(name, []).append((secs, cpu_now() - c0))
        if name not in cers:
            cers[name] = cer(refs, texts)
        print(f"  {name:42} {secs:7.1f} s wall", flush=True)

    with tempfile.TemporaryDirectory(prefix="bookops-bench-") as tmpdir:
        tmp = Path(tmpdir)
        images = extract_images(args.pdf, n, tmp / "images")
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}")
            if not args.skip_job:
                c0 = cpu_now()
                secs, texts, pages = asyncio.run(run_library(args.pdf, n, args.workers, tmp / f"home-a{rnd}"))
                record("(a)  Extract+Ocr via run_operations", c0, secs, texts)
                ext = [p.metrics["extract"].seconds or 0 for p in pages if "extract" in p.metrics]
                ocr = [p.metrics["ocr_tesseract"].seconds or 0 for p in pages if "ocr_tesseract" in p.metrics]
                if ext and ocr and rnd == 0:
                    print(f"     per unit: extract {sum(ext) / len(ext):.3f} s, "
                          f"ocr {sum(ocr) / len(ocr):.2f} s (from submission to the CPU pool to the answer)")
                if not args.skip_cli:
                    c0 = cpu_now()
                    secs, out, texts = run_cli(args.pdf, n, args.workers, tmp / f"home-cli{rnd}")
                    record("(a') bookops job process-pages (CLI)", c0, secs, texts)
                    if rnd == 0:
                        print(f"     job status {out['job']['status']}, job time {out['seconds']} s, "
                              f"failed {out['failed']}")
            c0 = cpu_now()
            secs, texts = pool_run(_bare_tesseract, images, args.workers)
            record("(b1) floor: bare tesseract pool", c0, secs, texts)
            c0 = cpu_now()
            secs, texts = pool_run(_bare_tesseract_data, images, args.workers)
            record("(b1') bare pool, image_to_data", c0, secs, None)
            c0 = cpu_now()
            secs, texts = pool_run(_adapter, images, args.workers)
            record("(b2) bare pool, bookops adapter", c0, secs, texts)
            if not args.skip_upscale:
                c0 = cpu_now()
                secs, texts = pool_run(_adapter_upscaled, images, args.workers)
                record("(b3) bare pool, adapter upscale=True", c0, secs, texts)
            if not args.skip_ocrmypdf:
                c0 = cpu_now()
                got = run_ocrmypdf(args.pdf, n, args.workers, tmp)
                if got is None:
                    if rnd == 0:
                        print("(c)  ocrmypdf is not installed (pip install ocrmypdf); skipped")
                else:
                    record(f"(c)  ocrmypdf --force-ocr -j {args.workers}", c0, got[0], got[1])

    floor = next(k for k in times if k.startswith("(b1)"))

    def ratio(name: str, which: int, base: str = floor) -> float:
        """Median over rounds of this run against the same round's ``base`` (drift cancels out)."""
        return median([t[which] / b[which] for t, b in zip(times[name], times[base], strict=True)])

    print(f"\n{'run':42} {'wall s/p':>8} {'x floor':>8} {'CPU s/p':>8} {'x floor':>8} {'CER':>7}"
          f"   (medians of {args.rounds} round(s))")
    for name, runs in times.items():
        c = cers[name]
        print(f"{name:42} {median([w for w, _ in runs]) / n:8.3f} {ratio(name, 0):8.2f} "
              f"{median([u for _, u in runs]) / n:8.3f} {ratio(name, 1):8.2f} "
              f"{'-' if c is None else f'{c:.4f}':>7}")
    if args.rounds > 1:
        print("\nx floor (wall) per round:")
        for name in times:
            per = [t[0] / f[0] for t, f in zip(times[name], times[floor], strict=True)]
            print(f"  {name:42} " + " ".join(f"{r:5.2f}" for r in per))
    by = {k[:4].strip(): k for k in times}
    ocrmypdf = by.get("(c)")
    for mine in ("(a)", "(a')"):
        if mine in by and ocrmypdf is not None:
            wall, cpu = ratio(by[mine], 0, ocrmypdf), ratio(by[mine], 1, ocrmypdf)
            print(f"{mine} / (c): wall {wall:.2f}, CPU {cpu:.2f}")


if __name__ == "__main__":
    main()

"""Scale: peak memory of ``process-pages`` at 100 and 400 pages, and the cost of a no-op rerun.

Builds a synthetic scanned book (text pages rendered with Pillow at 150 dpi, one JPEG per page,
packed with pypdfium2 as a scan would be), runs ``bookops job process-pages`` on its first 100
pages and on all 400 (separate books, separate homes), samples the resident memory of the job
process and of all its descendants (the CPU pool workers and the tesseract they run) every
0.1 s, and then times a rerun of the finished 400-page book, which must find nothing to do.

    python -m reliability.scale                       # 100 and 400 pages, results/scale.json
    python -m reliability.scale --pages 40 --skip-small
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFont

from .common import BOOKOPS, add_book, cli, descendants, env_for, write_result

DPI = 150
W, H = int(8.5 * DPI), int(11 * DPI)
_WORDS = ("the of and to in is that for it as with was on be by this are or an from at which but not "
          "have had his they were been has their more one all would there when so what out into some "
          "river water stream bank delta spring memory page book chapter section store job lease "
          "worker process garbage collector compiler runtime heap stack thread signal").split()


def _page_image(n: int, total: int, rng: random.Random) -> Image.Image:
    img = Image.new("L", (W, H), 250)
    d = ImageDraw.Draw(img)
    body = ImageFont.load_default(size=26)
    big = ImageFont.load_default(size=64)
    if n == 1:
        d.text((200, 500), "A SYNTHETIC BOOK", font=big, fill=10)
        d.text((200, 650), f"of {total} pages, for scale tests", font=body, fill=10)
        return img
    if n == 3:
        d.text((150, 150), "Contents", font=big, fill=10)
        for i in range(1, 21):
            d.text((150, 260 + 55 * i), f"{i} Chapter {i} " + "." * 40 + f" {1 + (i - 1) * (total // 20)}",
                   font=body, fill=10)
        return img
    d.text((150, 90), f"CHAPTER {1 + n * 20 // total}", font=body, fill=10)
    y = 180
    while y < H - 200:
        d.text((150, y), " ".join(rng.choice(_WORDS) for _ in range(12)), font=body, fill=20)
        y += 40
    d.text((W // 2, H - 120), str(n), font=body, fill=10)
    return img


def build_pdf(path: Path, pages: int, seed: int = 1) -> Path:
    """``pages`` scanned-looking pages, each one embedded JPEG at 150 dpi."""
    rng = random.Random(seed)
    pdf = pdfium.PdfDocument.new()
    try:
        for n in range(1, pages + 1):
            buf = io.BytesIO()
            _page_image(n, pages, rng).save(buf, format="JPEG", quality=70, dpi=(DPI, DPI))
            buf.seek(0)
            page = pdf.new_page(612, 792)
            image = pdfium.PdfImage.new(pdf)
            image.load_jpeg(buf, inline=True)
            image.set_matrix(pdfium.PdfMatrix().scale(612, 792))
            page.insert_obj(image)
            page.gen_content()
            page.close()
        pdf.save(path)
    finally:
        pdf.close()
    return path


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0




def run_measured(env: dict[str, str], book: str, timeout_s: float = 7200) -> dict[str, Any]:
    """The job with its memory sampled: peak of the main process, peak of the sum with children."""
    t0 = time.monotonic()
    proc = subprocess.Popen([*BOOKOPS, "job", "process-pages", book, "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_main = peak_total = peak_children = 0
    samples = 0
    while proc.poll() is None and time.monotonic() - t0 < timeout_s:
        main_kb = _rss_kb(proc.pid)
        kids = sum(_rss_kb(k) for k in descendants(proc.pid))
        peak_main = max(peak_main, main_kb)
        peak_children = max(peak_children, kids)
        peak_total = max(peak_total, main_kb + kids)
        samples += 1
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    rc = proc.wait()
    seconds = time.monotonic() - t0
    return {"rc": rc, "seconds": round(seconds, 1), "samples": samples,
            "peak_main_mb": round(peak_main / 1024, 1), "peak_children_mb": round(peak_children / 1024, 1),
            "peak_total_mb": round(peak_total / 1024, 1)}


def time_noop(env: dict[str, str], book: str, runs: int = 3) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        out = cli(env, "job", "process-pages", book, "--quiet")
        times.append(time.monotonic() - t0)
        if out.returncode != 0:
            return {"rc": out.returncode, "stderr": out.stderr[-400:]}
    # the interpreter alone, for scale: what any bookops command costs before it does anything
    t0 = time.monotonic()
    cli(env, "--help")
    bare = time.monotonic() - t0
    return {"rc": 0, "runs_s": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
            "cli_help_s": round(bare, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=400)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--skip-small", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the homes and PDFs (for profiling)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bookops-scale-"))
    res: dict[str, Any] = {"at": time.strftime("%Y-%m-%d %H:%M:%S"), "dpi": DPI}
    try:
        sizes = [args.pages] if args.skip_small else [args.small, args.pages]
        for n in sizes:
            t0 = time.monotonic()
            pdf = build_pdf(work / f"synthetic-{n}.pdf", n)
            built = time.monotonic() - t0
            env = env_for(work / f"home-{n}")
            book = add_book(env, pdf)
            run = run_measured(env, book)
            run.update(pdf_mb=round(pdf.stat().st_size / 2**20, 1), build_s=round(built, 1))
            res[f"pages_{n}"] = run
            print(f"{n} pages: {run}", flush=True)
            if n == args.pages:
                res["noop_rerun"] = noop = time_noop(env, book)
                print(f"no-op rerun of {n} pages: {noop}", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    big = res.get(f"pages_{args.pages}", {})
    small = res.get(f"pages_{args.small}", {})
    problems = []
    if big.get("rc") != 0 or (small and small.get("rc") != 0):
        problems.append("a run did not succeed")
    if big.get("peak_total_mb", 0) >= 500:
        problems.append(f"peak total RSS {big.get('peak_total_mb')} MB >= 500 MB")
    if small and big.get("peak_total_mb", 0) > 1.25 * small.get("peak_total_mb", 0):
        problems.append(f"peak RSS grows with pages: {small.get('peak_total_mb')} -> "
                        f"{big.get('peak_total_mb')} MB")
    if res.get("noop_rerun", {}).get("median_s", 99) >= 2.0:
        problems.append(f"no-op rerun takes {res.get('noop_rerun', {}).get('median_s')} s")
    res["problems"] = problems
    path = write_result("scale", res)
    print(f"figures written to {path}; problems: {problems or 'none'}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

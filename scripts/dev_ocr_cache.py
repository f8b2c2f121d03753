"""OCR the benchmark corpus once with tesseract and cache one PageText JSON per page.

Usage: python scripts/dev_ocr_cache.py [--corpus DIR] [--out DIR] [--jobs 2] [--scale auto|1|2]
           [--only SET/ID ...] [--limit N]

Output: OUT/<set>/<id>/NNNN.json (``bookops.understand.PageText``). Pages already cached are skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# one tesseract per core: OpenMP inside tesseract only slows parallel runs down
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import pypdfium2 as pdfium  # noqa: E402
import pytesseract  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageMath, ImageOps  # noqa: E402

from bookops.understand.pagetext import PageText, text_from_words, words_from_tesseract  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/corpus")
DEFAULT_OUT = Path("/tmp/bookops-dev-cache")


def pdf_page_image(pdf_path: Path, index: int) -> Image.Image:
    """The image drawn on page ``index`` (0-based), taken from that page's own objects."""
    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        page = pdf[index]
        for obj in page.get_objects():
            if isinstance(obj, pdfium.PdfImage):
                return obj.get_bitmap().to_pil().convert("L")
        return page.render(scale=150 / 72).to_pil().convert("L")
    finally:
        pdf.close()


def _isolated_specks(img: Image.Image, unit: float) -> list[tuple[float, float, int, int, int, int]]:
    """Small ink blobs with no other ink around them: (cx, cy, x0, y0, x1, y1)."""
    small, ring = max(1, round(2 * unit)), max(2, round(4 * unit))
    bg = img.filter(ImageFilter.BoxBlur(max(4, round(12 * unit))))
    ink = ImageMath.lambda_eval(lambda a: (a["bg"] - a["im"] > 40) * 255, im=img, bg=bg).convert("L")
    b_small, b_ring = ink.filter(ImageFilter.BoxBlur(small)), ink.filter(ImageFilter.BoxBlur(ring))
    n_small, n_ring = (2 * small + 1) ** 2, (2 * ring + 1) ** 2
    iso = ImageMath.lambda_eval(
        lambda a: ((a["r"] * n_ring - a["s"] * n_small) < 200) * (a["s"] > 0) * (a["ink"] > 0) * 255,
        r=b_ring, s=b_small, ink=ink,
    ).convert("L")
    w = iso.width
    cell = max(2, round(4 * unit))
    cells: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, v in enumerate(iso.tobytes()):
        if v:
            x, y = i % w, i // w
            cells.setdefault((x // cell, y // cell), []).append((x, y))
    seen: set[tuple[int, int]] = set()
    blobs = []
    for c in cells:
        if c in seen:
            continue
        stack, members = [c], []
        seen.add(c)
        while stack:
            cc = stack.pop()
            members.extend(cells[cc])
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    n = (cc[0] + dx, cc[1] + dy)
                    if n in cells and n not in seen:
                        seen.add(n)
                        stack.append(n)
        xs, ys = [m[0] for m in members], [m[1] for m in members]
        blobs.append(((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, min(xs), min(ys), max(xs), max(ys)))
    return blobs


def skew_angle(img: Image.Image, max_deg: float = 2.0, step: float = 0.1) -> float:
    """Rotation (degrees, PIL sense) that makes text rows horizontal: the sharpest row profile.

    Tesseract follows a skewed row, but on a 1 degree tilt a right-column page number drifts a line
    height away from its title and a lone digit is then read out of context ("5" -> "cr").
    """
    small = ImageOps.invert(img.convert("L"))
    scale = 600 / max(small.size)
    small = small.resize((max(1, round(small.width * scale)), max(1, round(small.height * scale))))
    best, best_angle = -1.0, 0.0
    for k in range(-round(max_deg / step), round(max_deg / step) + 1):
        angle = k * step
        rot = small.rotate(angle, resample=Image.Resampling.BILINEAR)
        prof = list(rot.resize((1, rot.height), Image.Resampling.BOX).tobytes())
        v = float(sum((b - a) ** 2 for a, b in zip(prof, prof[1:], strict=False)))
        if v > best:
            best, best_angle = v, angle
    return best_angle


def remove_leader_dots(img: Image.Image, dpi: float) -> Image.Image:
    """Paint out runs of evenly spaced isolated dots (ToC leaders).

    On these degraded scans tesseract's line recogniser turns a title followed by a long leader into
    garbage ("README.Debian ......" -> "Beh GREPND SLI"); without the dots it reads the title, and the
    page number stays a separate word on the same row. Single dots (decimal points, periods, i-dots)
    touch other ink and are kept.
    """
    unit = dpi / 150
    blobs = sorted(_isolated_specks(img, unit), key=lambda b: (b[1], b[0]))
    rows: list[list[tuple[float, float, int, int, int, int]]] = []
    for b in blobs:
        for r in rows[-3:]:
            if abs(r[-1][1] - b[1]) <= 3 * unit:
                r.append(b)
                break
        else:
            rows.append([b])
    mask = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(mask)
    pad = max(1, round(2 * unit))

    def flush(run: list[tuple[float, float, int, int, int, int]]) -> None:
        if len(run) >= 4:
            for b in run:
                draw.rectangle((b[2] - pad, b[3] - pad, b[4] + pad, b[5] + pad), fill=255)

    for r in rows:
        r.sort(key=lambda b: b[0])
        run = [r[0]]
        for b in r[1:]:
            gap = b[0] - run[-1][0]
            even = len(run) < 2 or abs(gap - (run[-1][0] - run[-2][0])) <= 4 * unit
            if 4 * unit <= gap <= 25 * unit and even:
                run.append(b)
            else:
                flush(run)
                run = [b]
        flush(run)
    return Image.composite(Image.new("L", img.size, 255), img, mask)


def ocr_job(job: tuple[str, str, int, str, float]) -> tuple[str, float]:
    kind, src, index, out, scale = job
    t0 = time.time()
    if kind == "pdf":
        img = pdf_page_image(Path(src), index)
    else:
        img = Image.open(src).convert("L")
    w, h = img.size
    angle = skew_angle(img)
    if angle:
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    if kind == "pdf":
        img = remove_leader_dots(img, dpi=150)
    if scale != 1.0:
        img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    # psm 4 (one column, variable sizes) keeps a ToC row and its right-hand page number on one
    # line; the default layout analysis dropped or split the number column on several pages
    config = "--psm 4" + (f" --dpi {round(150 * scale)}" if kind == "pdf" else "")
    data = pytesseract.image_to_data(img, lang="eng", config=config, output_type=pytesseract.Output.DICT)
    words = words_from_tesseract(data, scale=scale)
    page = PageText(page_num=index + 1, text=text_from_words(words), words=words, width=w, height=h)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(out + ".tmp")
    tmp.write_text(page.model_dump_json())
    tmp.replace(out)
    return out, time.time() - t0


Job = tuple[str, str, int, str, float]


def plan(corpus: Path, out: Path, scale_opt: str, only: list[str], limit: int) -> list[Job]:
    jobs: list[Job] = []
    for book in sorted((corpus / "dev").glob("*/book.pdf")):
        key = f"dev/{book.parent.name}"
        if only and key not in only:
            continue
        # the dev scans are 150 dpi: tesseract reads small type better at twice the size
        scale = 2.0 if scale_opt == "auto" else float(scale_opt)
        n = len(pdfium.PdfDocument(str(book)))
        for i in range(min(n, limit) if limit else n):
            jobs.append(("pdf", str(book), i, str(out / key / f"{i + 1:04d}.json"), scale))
    for d in sorted((corpus / "real").glob("*/images")):
        key = f"real/{d.parent.name}"
        if only and key not in only:
            continue
        scale = 1.0 if scale_opt == "auto" else float(scale_opt)
        exts = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in exts)
        for i, f in enumerate(files[:limit] if limit else files):
            jobs.append(("image", str(f), i, str(out / key / f"{i + 1:04d}.json"), scale))
    return jobs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--scale", default="auto")
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    jobs = [j for j in plan(args.corpus, args.out, args.scale, args.only, args.limit)
            if args.force or not Path(j[3]).exists()]
    print(f"{len(jobs)} pages to OCR", flush=True)
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for n, (path, secs) in enumerate(ex.map(ocr_job, jobs), 1):
            if n % 20 == 0 or n == len(jobs):
                print(f"{n}/{len(jobs)} {time.time() - t0:.0f}s last {secs:.1f}s {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

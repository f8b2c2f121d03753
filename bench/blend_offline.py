"""Offline blend of two tesseract readings of the dev books: is the vote no worse than the better one?

    .venv/bin/python bench/blend_offline.py [--books ID ...] [--pairs a+b a+c] [--pages N] [--workers N]

Each page image of ``<corpus>/dev/<id>/book.pdf`` (the embedded 150 dpi JPEG, copied out as the
Extract op does) is read by tesseract in differently configured ways ("variants"):

  a   upscaled to 225 dpi, page segmentation mode 3 (automatic): bookops with ``ocr_upscale``
  b   the same image at 225 dpi, page segmentation mode 6 (one uniform block of text)
  c   the image as it is, 150 dpi, mode 3: bookops' default reading (no upscale)
  d   upscaled to 300 dpi, mode 3 (the same layout analysis as a, at another scale)

Each pair is blended page by page exactly as the Blend op does offline
(``providers.blend_vote``: outlier check, then the confidence-weighted word vote), and every
reading and blend is scored with the corpus scorer (``score.py``, a ``pages`` list per book)
against ``pages/NNNN.txt``. Readings are cached as JSON under ``--cache`` (default
/tmp/bookops-blend-bench), so a rerun after a change to the vote takes seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

# one single-threaded tesseract per core (OpenMP threads of parallel tesseracts fight)
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import pytesseract  # noqa: E402
from PIL import Image  # noqa: E402

from bookops.providers.blend_vote import Reading, drop_outliers, vote  # noqa: E402
from bookops.providers.pdf import extract_page  # noqa: E402
from bookops.providers.tesseract import _words, build_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
BOOKS = ("sbcl-internals", "maint-guide", "around-the-bend")
# variant -> (target dpi or None for the image as it is, tesseract page segmentation mode)
VARIANTS: dict[str, tuple[int | None, int]] = {"a": (225, 3), "b": (225, 6), "c": (None, 3),
                                               "d": (300, 3)}


def scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("corpus_score", CORPUS / "score.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------- reading

def read_page(image: str, variant: str, out: str) -> str:
    """One tesseract reading of one page image, written to ``out`` as JSON (text, confidence, confs)."""
    target, psm = VARIANTS[variant]
    with Image.open(image) as src:
        src.load()
        width, height = src.size
        dpi = int(round(float(src.info.get("dpi", (150, 150))[0]))) or 150
        scale = target / dpi if target and target > dpi else 1.0
        img = src.convert("L")
        if scale != 1.0:
            img = img.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
        data = pytesseract.image_to_data(img, lang="eng", config=f"--dpi {round(dpi * scale)} --psm {psm}",
                                         output_type=pytesseract.Output.DICT)
    words = _words(data, 1.0 / scale, width, height)
    confs = [float(w["conf"]) for w in words]
    doc = {"text": build_text(words), "confs": confs,
           "confidence": round(sum(confs) / len(confs) / 100.0, 4) if confs else None}
    Path(out).write_text(json.dumps(doc), encoding="utf-8")
    return out


def prepare(books: list[str], variants: set[str], cache: Path, pages: int | None, workers: int) -> None:
    """Copy out the page images and read every page with every variant, skipping what is cached."""
    jobs: list[tuple[str, str, str]] = []
    for book in books:
        pdf = CORPUS / "dev" / book / "book.pdf"
        n = count_pages(book) if pages is None else min(pages, count_pages(book))
        img_dir = cache / book / "img"
        img_dir.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            stem = img_dir / f"{i:04d}"
            found = next(iter(img_dir.glob(f"{i:04d}.*")), None)
            image = found if found is not None else Path(extract_page(str(pdf), i - 1, str(stem))["path"])
            for v in sorted(variants):
                out = cache / book / v / f"{i:04d}.json"
                if not out.exists():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    jobs.append((str(image), v, str(out)))
    if not jobs:
        return
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for k, _ in enumerate(pool.map(read_page, *zip(*jobs, strict=True)), 1):
            if k % 50 == 0 or k == len(jobs):
                print(f"  read {k}/{len(jobs)} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)


def count_pages(book: str) -> int:
    gt = json.loads((CORPUS / "dev" / book / "groundtruth.json").read_text(encoding="utf-8"))
    return int(gt["page_count"])


def load(cache: Path, book: str, variant: str, n: int) -> list[Reading]:
    out = []
    for i in range(1, n + 1):
        doc = json.loads((cache / book / variant / f"{i:04d}.json").read_text(encoding="utf-8"))
        out.append(Reading(source=variant, text=doc["text"], confidence=doc["confidence"],
                           confs=doc["confs"]))
    return out


# ---------------------------------------------------------------------------------------- blending

def blend(readings: list[Reading]) -> tuple[str, str]:
    """What the Blend op does offline with these readings: (text, method)."""
    kept, _dropped = drop_outliers(readings)
    if len(kept) == 1:
        return kept[0].text, "single"
    if len({" ".join(r.text.split()) for r in kept}) == 1:
        return kept[0].text, "agree"
    return vote(kept).text, "vote"


def cer(score: ModuleType, book: str, texts: list[str], n: int) -> dict[str, Any]:
    """The corpus scorer's CER over the first ``n`` pages (the rest count as not predicted)."""
    gt_path = CORPUS / "dev" / book / "groundtruth.json"
    refs = score.read_pages_dir(str(CORPUS / "dev" / book / "pages"), count_pages(book))[:n]
    if n == count_pages(book):
        result: dict[str, Any] = score.score_book(str(gt_path), {"pages": texts})["cer"]
        return result
    return dict(score.score_cer(refs, texts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--books", nargs="+", default=list(BOOKS))
    ap.add_argument("--pairs", nargs="+", default=["a+b", "a+c"], help="variant pairs to blend")
    ap.add_argument("--pages", type=int, default=None, help="only the first N pages of each book")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bookops-blend-bench"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    pairs = [tuple(p.split("+")) for p in a.pairs]
    variants = {v for p in pairs for v in p}
    unknown = variants - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    prepare(a.books, variants, a.cache, a.pages, a.workers)
    score = scorer()
    rows: list[dict[str, Any]] = []
    for book in a.books:
        n = count_pages(book) if a.pages is None else min(a.pages, count_pages(book))
        readings = {v: load(a.cache, book, v, n) for v in variants}
        single = {v: cer(score, book, [r.text for r in readings[v]], n) for v in variants}
        for x, y in pairs:
            t0 = time.monotonic()
            blended = [blend([rx, ry]) for rx, ry in zip(readings[x], readings[y], strict=True)]
            secs = time.monotonic() - t0
            voted = cer(score, book, [t for t, _ in blended], n)
            methods = {m: sum(1 for _, mm in blended if mm == m) for m in ("vote", "agree", "single")}
            rows.append({"book": book, "pair": f"{x}+{y}", "pages": n, "ref_chars": voted["ref_chars"],
                         "cer_x": single[x]["cer"], "cer_y": single[y]["cer"], "cer_vote": voted["cer"],
                         "edits_x": single[x]["edits"], "edits_y": single[y]["edits"],
                         "edits_vote": voted["edits"], "methods": methods, "vote_s": round(secs, 2)})
    for pair in a.pairs:
        mine = [r for r in rows if r["pair"] == pair]
        chars = sum(r["ref_chars"] for r in mine)
        rows.append({"book": "all (micro)", "pair": pair, "pages": sum(r["pages"] for r in mine),
                     "ref_chars": chars,
                     **{f"cer_{k}": round(sum(r[f"edits_{k}"] for r in mine) / chars, 4)
                        for k in ("x", "y", "vote")},
                     **{f"edits_{k}": sum(r[f"edits_{k}"] for r in mine) for k in ("x", "y", "vote")},
                     "methods": {m: sum(r["methods"][m] for r in mine) for m in ("vote", "agree", "single")},
                     "vote_s": round(sum(r["vote_s"] for r in mine), 2)})
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| book | pair | pages | CER x | CER y | CER vote | better single | vote <= better | "
          "pages voted / agreed / single |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        best = min(r["cer_x"], r["cer_y"])
        m = r["methods"]
        print(f"| {r['book']} | {r['pair']} | {r['pages']} | {r['cer_x']:.4f} | {r['cer_y']:.4f} | "
              f"{r['cer_vote']:.4f} | {best:.4f} | {'yes' if r['cer_vote'] <= best else 'NO'} | "
              f"{m['vote']} / {m['agree']} / {m['single']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

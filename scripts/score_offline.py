"""Run the offline heuristics on the cached OCR of the corpus and score them.

Usage: python scripts/score_offline.py [--cache DIR] [--corpus DIR] [--out DIR] [--only SET/ID ...] [--show]

Reads OUT of ``dev_ocr_cache.py`` (CACHE/<set>/<id>/NNNN.json), writes OUT/<set>/<id>.json in the
corpus ground-truth format and prints the scorer's main numbers per book.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bookops.understand import extract_metadata, find_toc, label_pages, parse_toc, resolve_scan_pages
from bookops.understand.pagetext import PageText

DEFAULT_CORPUS = Path("/work/shared/corpus")
DEFAULT_CACHE = Path("/tmp/bookops-dev-cache")
DEFAULT_OUT = Path("/tmp/bookops-offline-pred")


def load_pages(d: Path) -> list[PageText]:
    return [PageText.model_validate_json(f.read_text()) for f in sorted(d.glob("[0-9][0-9][0-9][0-9].json"))]


def predict(pages: list[PageText]) -> dict[str, Any]:
    labels = label_pages(pages)
    toc_pages, conf = find_toc(pages[:30])
    entries = parse_toc([p for p in pages if p.page_num in toc_pages]) if toc_pages else []
    entries = resolve_scan_pages(entries, labels)
    meta = extract_metadata(pages[:20])
    return {
        "page_count": len(pages),
        "toc_pages": toc_pages,
        "toc_confidence": conf,
        "toc_entries": [
            {"title": e.title, "level": e.level, "printed_page": e.printed_page, "number": e.number,
             "scan_page": e.scan_page}
            for e in entries
        ],
        "page_labels": [lab.printed_page for lab in labels],
        "labels_detail": [lab.model_dump(exclude_defaults=True) for lab in labels],
        "metadata": meta.model_dump(),
        "pages": [p.text for p in pages],
    }


def score(gt: Path, pred: Path, corpus: Path) -> dict[str, Any]:
    res = subprocess.run([sys.executable, str(corpus / "score.py"), str(gt), str(pred), "--json"],
                         capture_output=True, text=True, check=True)
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--show", action="store_true", help="print label and ToC differences")
    args = ap.parse_args()
    header = f"{'book':34} {'tocP_F1':>7} {'tocE_F1':>7} {'titleF1':>7} {'level':>6} {'labels':>6} " \
             f"{'lab_num':>7} {'lab_nul':>7} {'meta':>5}  metadata fields wrong"
    print(header)
    for gt in sorted(args.corpus.glob("*/*/groundtruth.json")):
        key = f"{gt.parent.parent.name}/{gt.parent.name}"
        cache = args.cache / key
        if (args.only and key not in args.only) or not cache.is_dir():
            continue
        pages = load_pages(cache)
        truth = json.loads(gt.read_text())
        if len(pages) != truth["page_count"]:
            print(f"{key:34} cache incomplete ({len(pages)}/{truth['page_count']})")
            continue
        pred = predict(pages)
        out = args.out / f"{key}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(pred, indent=1, ensure_ascii=False))
        r = score(gt, out, args.corpus)
        tp, te, pl, md = r["toc_pages"], r["toc_entries"], r["page_labels"], r["metadata"]
        wrong = [f for f in ("title", "authors", "publisher", "year", "isbn") if not md.get(f)]
        lvl = te.get("level_accuracy")
        print(f"{key:34} {tp['f1']:7.3f} {te['f1']:7.3f} {te['title_only']['f1']:7.3f} "
              f"{lvl if lvl is not None else '-':>6} {pl['accuracy']:6.3f} "
              f"{pl['accuracy_numbered'] if pl['accuracy_numbered'] is not None else '-':>7} "
              f"{pl['accuracy_unnumbered'] if pl['accuracy_unnumbered'] is not None else '-':>7} "
              f"{md['accuracy']:5.2f}  {' '.join(wrong)}")
        if args.show:
            show(truth, pred)
    return 0


def show(truth: dict[str, Any], pred: dict[str, Any]) -> None:
    for i, (g, p) in enumerate(zip(truth["page_labels"], pred["page_labels"], strict=False), 1):
        if (g or "").lower() != (p or "").lower():
            print(f"   label p{i}: gt={g!r} pred={p!r}")
    print(f"   toc pages gt={truth['toc_pages']} pred={pred['toc_pages']}")
    gt_titles = {(e["title"], e["printed_page"]) for e in truth["toc_entries"]}
    pr_titles = {(e["title"], e["printed_page"]) for e in pred["toc_entries"]}
    for t in sorted(gt_titles - pr_titles)[:40]:
        print(f"   toc missing {t}")
    for t in sorted(pr_titles - gt_titles)[:40]:
        print(f"   toc extra   {t}")
    print(f"   metadata gt={truth['metadata']}")
    print(f"   metadata pr={ {k: v for k, v in pred['metadata'].items() if v} }")


if __name__ == "__main__":
    sys.exit(main())

"""Reports on what the operations did: per-page quality rows, filters, a book summary, cost rollups.

Everything here reads the store and computes; nothing is written. The CLI (``bookops report``) and
``bookops book show`` print what these functions return, and notebooks can call them directly::

    rows = await page_rows(store, book_id, "ocr")
    weak = sort_rows(filter_rows(rows, ["confidence<0.6"]), "confidence")
"""

from __future__ import annotations

import csv
import io
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .schema import BOOK_OPS, Book, OpMetrics, Page
from .store import Store

__all__ = [
    "BOOK_LEVEL_OPS", "OPS", "PAGE_OPS", "QUALITY_COLUMNS", "CostRollup", "OpSummary", "Summary",
    "book_rows", "book_summary", "cost_rollup", "filter_rows", "page_rows", "parse_filter", "rows_csv",
    "sort_rows",
]

PAGE_OPS = ("extract", "ocr", "blend", "label")
BOOK_LEVEL_OPS = tuple(BOOK_OPS)
OPS = PAGE_OPS + BOOK_LEVEL_OPS

# The quality subset each op's table shows, after ``page`` and ``status`` (CSV and JSON carry every field).
QUALITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "extract": ("method", "dpi", "width", "height"),
    "ocr": ("provider", "confidence", "low_conf_share", "words"),
    "blend": ("method", "sources", "agreement", "dropped", "chars"),
    "label": ("printed_page", "read_as", "sequence_fixed", "content_type"),
    "metadata": ("fields_found", "title_found", "isbn_found", "method"),
    "toc_find": ("found", "toc_pages", "confidence", "method"),
    "toc_extract": ("entries", "without_page", "unresolved", "method"),
}
COST_COLUMNS = ("provider", "model", "seconds", "queue_s", "attempts", "prompt_tokens",
                "completion_tokens", "cost_usd")

Row = dict[str, Any]


# ---------------------------------------------------------------------- rows
def _op_name(op: str) -> tuple[str, str | None]:
    """``ocr``, ``ocr:tesseract`` or ``ocr_tesseract`` -> ("ocr", provider or None)."""
    op = op.strip().lower()
    for sep in (":", "_"):
        if op.startswith(f"ocr{sep}"):
            return "ocr", op[4:]
    if op not in OPS:
        raise UserError(f"unknown operation '{op}'; known: {', '.join(OPS)} (or ocr:PROVIDER)")
    return op, None


def _metric_fields(m: OpMetrics | None) -> Row:
    if m is None:
        return dict.fromkeys(COST_COLUMNS)
    return {"provider": m.provider, "model": m.model,
            "seconds": None if m.seconds is None else round(m.seconds, 3),
            "queue_s": None if m.queue_s is None else round(m.queue_s, 3), "attempts": m.attempts,
            "prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens,
            "cost_usd": m.cost_usd}


def _page_status(page: Page, op: str, key: str, done: bool, stale: bool) -> str:
    if key in page.errors or op in page.errors:
        return "failed"
    if done:
        return "stale" if stale else "done"
    return "pending"


def _ocr_providers(book: Book, pages: list[Page]) -> list[str]:
    seen = list(book.ocr_providers)
    for p in pages:
        seen += [k for k in p.ocr if k not in seen]
        seen += [k[4:] for k in p.metrics if k.startswith("ocr_") and k[4:] not in seen]
    return seen


def _rows_for_page(book: Book, page: Page, op: str, providers: list[str]) -> list[Row]:
    stale = op in book.stale
    out: list[Row] = []
    if op == "ocr":
        for prov in providers:
            key = f"ocr_{prov}"
            m = page.metrics.get(key)
            st = page.ocr.get(prov)
            row: Row = {"page": page.page_num,
                        "status": _page_status(page, op, key, bool(st and st.done), stale)}
            row.update(_metric_fields(m))
            row["provider"] = prov
            row.update({"confidence": st.confidence if st else None, "chars": st.chars if st else None})
            if m is not None:
                row.update(m.quality)
            _add_error(row, page, key)
            out.append(row)
        return out
    done = {"extract": page.extracted, "blend": page.blended, "label": page.labeled}[op]
    m = page.metrics.get(op)
    row = {"page": page.page_num, "status": _page_status(page, op, op, done, stale)}
    row.update(_metric_fields(m))
    if m is not None:
        row.update(m.quality)
    if op == "label" and page.label is not None:  # the stored label is the truth after the pass
        lab = page.label
        row.update({"printed_page": lab.printed_page, "read_as": lab.read_as,
                    "sequence_fixed": lab.sequence_fixed, "content_type": lab.content_type.value,
                    "printed_page_found": lab.printed_page is not None})
    if op == "blend" and page.blend is not None:
        row.setdefault("agreement", page.blend.agreement)
        row.setdefault("method", page.blend.method)
    _add_error(row, page, op)
    out.append(row)
    return out


def _add_error(row: Row, page: Page, key: str) -> None:
    err = page.errors.get(key)
    row["error"] = f"{err.kind}: {err.message}" if err is not None else None


async def page_rows(store: Store, book_id: str, op: str, *, pages: Iterable[int] | None = None) -> list[Row]:
    """One row per page (per page and provider for OCR) with the op's metrics and quality indicators.

    A book-level op gives one row, ``page`` None.
    """
    book = await _book(store, book_id)
    name, provider = _op_name(op)
    if name in BOOK_LEVEL_OPS:
        return [book_rows(book, name)]
    page_list = await store.list_pages(book.id, pages=pages)
    providers = [provider] if provider else _ocr_providers(book, page_list)
    rows: list[Row] = []
    for page in page_list:
        rows += _rows_for_page(book, page, name, providers)
    return rows


def book_rows(book: Book, op: str) -> Row:
    flag = book.flag(op)
    m = book.metrics.get(op)
    state = flag.state.value
    row: Row = {"page": None, "status": "stale" if op in book.stale and state == "done" else state}
    row.update(_metric_fields(m))
    if m is not None:
        row.update(m.quality)
    row["error"] = flag.error
    return row


async def _book(store: Store, book_id: str) -> Book:
    book = await store.get_book(book_id)
    if book is None:
        raise UserError(f"no book '{book_id}'; see `bookops book list`")
    return book


# ---------------------------------------------------------------------- filter and sort
_FILTER = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def parse_filter(spec: str) -> Callable[[Row], bool]:
    """``printed_page=`` (no value: null or empty), ``confidence<0.6``, ``status!=done``, ``cached=true``."""
    m = _FILTER.match(spec)
    if m is None:
        raise UserError(f"--filter '{spec}': expected FIELD=VALUE, FIELD!=VALUE or FIELD<NUMBER "
                        "(<, <=, >, >=)")
    name, op, raw = m.group(1), m.group(2), m.group(3)
    cmp = _OPS[op]
    want = _value(raw)

    def test(row: Row) -> bool:
        have = row.get(name)
        if op in ("=", "==", "!="):
            equal = _equal(have, want)
            return equal if op != "!=" else not equal
        if have is None or want is None or isinstance(have, bool):
            return False  # an ordering needs a value on both sides
        try:
            return bool(cmp(float(have), float(want)))
        except (TypeError, ValueError):
            return bool(cmp(str(have), str(want)))

    return test


def _value(raw: str) -> Any:
    if raw == "" or raw.lower() in ("null", "none"):
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return float(raw)
    except ValueError:
        return raw


def _equal(have: Any, want: Any) -> bool:
    if want is None:
        return have is None or have == ""
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(have) == want if isinstance(want, bool) else str(have).lower() == str(want).lower()
    if isinstance(want, float):
        try:
            return have is not None and float(have) == want
        except (TypeError, ValueError):
            return False
    return have is not None and str(have) == want


def filter_rows(rows: list[Row], specs: Iterable[str] | None) -> list[Row]:
    tests = [parse_filter(s) for s in specs or ()]
    return [r for r in rows if all(t(r) for t in tests)]


def sort_rows(rows: list[Row], key: str | None) -> list[Row]:
    """Ascending by ``key`` (``-key`` descending); rows without a value go last either way."""
    if not key:
        return rows
    desc = key.startswith("-")
    name = key.lstrip("-+")

    def k(row: Row) -> Any:
        v = row.get(name)
        if isinstance(v, bool):
            return (0, float(v), "")
        if isinstance(v, (int, float)):
            return (0, float(v), "")
        return (0, 0.0, str(v))

    have = [r for r in rows if r.get(name) is not None]
    missing = [r for r in rows if r.get(name) is None]
    return sorted(have, key=k, reverse=desc) + missing


def table_columns(op: str, rows: list[Row]) -> list[str]:
    """``page``, ``status``, the op's quality subset, then time and cost; ``error`` when any row has one."""
    name, _ = _op_name(op)
    cols = ["page", "status", *QUALITY_COLUMNS[name]]
    cols += [c for c in ("seconds", "cost_usd") if c not in cols]
    if name != "ocr" and any(r.get("provider") not in (None, "offline", "cpu") for r in rows):
        cols.insert(2, "provider")
    if name == "ocr" and len({r.get("provider") for r in rows}) <= 1:
        cols.remove("provider")
    if any(r.get("error") for r in rows):
        cols.append("error")
    # a column empty on every row (no cost on an offline run) only takes room
    return [c for c in cols if c not in ("seconds", "cost_usd") or any(r.get(c) is not None for r in rows)]


def all_columns(rows: list[Row]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def rows_csv(rows: list[Row], columns: list[str] | None = None) -> str:
    cols = columns or all_columns(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: "" if r.get(c) is None else r.get(c) for c in cols})
    return buf.getvalue()


# ---------------------------------------------------------------------- costs
@dataclass
class CostRollup:
    """What a book cost, from the ``calls`` collection (every paid HTTP call, repairs and failures
    included; cache hits are free and not recorded) and the per-page metrics."""

    book_usd: float = 0.0
    calls: int = 0
    unpriced_calls: int = 0
    by_op: dict[str, float] = field(default_factory=dict)
    by_job: dict[str, float] = field(default_factory=dict)
    by_page: dict[int, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})

    def as_dict(self) -> dict[str, Any]:
        return {"book_usd": round(self.book_usd, 6), "calls": self.calls,
                "unpriced_calls": self.unpriced_calls,
                "by_op": {k: round(v, 6) for k, v in sorted(self.by_op.items())},
                "by_job": {k: round(v, 6) for k, v in self.by_job.items()},
                "by_page": {str(k): round(v, 6) for k, v in sorted(self.by_page.items())},
                "tokens": dict(self.tokens)}


async def cost_rollup(store: Store, book_id: str) -> CostRollup:
    out = CostRollup()
    by_op: dict[str, float] = defaultdict(float)
    by_job: dict[str, float] = defaultdict(float)
    by_page: dict[int, float] = defaultdict(float)
    for c in await store.list_calls(book_id):
        out.calls += 1
        out.tokens["prompt"] += c.prompt_tokens or 0
        out.tokens["completion"] += c.completion_tokens or 0
        if c.cost_usd is None:
            out.unpriced_calls += 1
            continue
        out.book_usd += c.cost_usd
        by_op[c.op] += c.cost_usd
        by_job[c.job or "-"] += c.cost_usd
        if c.page is not None:
            by_page[c.page] += c.cost_usd
    out.by_op, out.by_job, out.by_page = dict(by_op), dict(by_job), dict(by_page)
    return out


# ---------------------------------------------------------------------- the one-screen summary
@dataclass
class OpSummary:
    op: str
    total: int = 0
    done: int = 0
    failed: int = 0
    stale: int = 0
    pending: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    quality: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "total": self.total, "done": self.done, "failed": self.failed,
                "stale": self.stale, "pending": self.pending, "seconds": round(self.seconds, 2),
                "cost_usd": round(self.cost_usd, 6), "quality": self.quality}


@dataclass
class Summary:
    book: str
    page_count: int
    ops: list[OpSummary]
    weakest: dict[str, list[Row]]
    cost: CostRollup
    jobs: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"book": self.book, "page_count": self.page_count, "ops": [o.as_dict() for o in self.ops],
                "weakest": self.weakest, "cost": self.cost.as_dict(), "jobs": self.jobs}


def _summarise(op: str, rows: list[Row]) -> OpSummary:
    s = OpSummary(op=op, total=len(rows))
    for r in rows:
        st = r["status"]
        if st == "done":
            s.done += 1
        elif st == "failed":
            s.failed += 1
        elif st == "stale":
            s.stale += 1
            s.done += 1  # a stale result is there, only older than its inputs
        else:
            s.pending += 1
        s.seconds += r.get("seconds") or 0.0
        s.cost_usd += r.get("cost_usd") or 0.0
    return s


def _mean(rows: list[Row], key: str) -> float | None:
    vals = [float(r[key]) for r in rows
            if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)]
    return sum(vals) / len(vals) if vals else None


def _quality_line(op: str, rows: list[Row]) -> str:
    done = [r for r in rows if r["status"] in ("done", "stale")]
    if not done:
        return ""
    if op.startswith("ocr"):
        conf, low = _mean(done, "confidence"), _mean(done, "low_conf_share")
        return (f"mean confidence {conf:.2f}" if conf is not None else "no confidence") + (
            f", low-conf words {low:.0%}" if low is not None else "")
    if op == "blend":
        agree = _mean(done, "agreement")
        multi = sum(1 for r in done if (r.get("sources") or 0) > 1)
        return f"{multi} pages from several sources" + (
            f", agreement {agree:.2f}" if agree is not None else "")
    if op == "label":
        found = sum(1 for r in done if r.get("printed_page") not in (None, ""))
        fixed = sum(1 for r in done if r.get("sequence_fixed"))
        return f"printed number on {found}/{len(done)} pages, {fixed} repaired by the sequence pass"
    if op == "extract":
        methods: dict[str, int] = defaultdict(int)
        for r in done:
            methods[str(r.get("method"))] += 1
        return ", ".join(f"{k} {v}" for k, v in sorted(methods.items()))
    r = done[0]
    if op == "metadata":
        return f"{r.get('fields_found', '?')}/5 fields (title, authors, publisher, year, isbn)"
    if op == "toc_find":
        n = r.get("toc_pages") or 0
        return (f"found on {n} page{'s' if n != 1 else ''}, confidence {r.get('confidence')}"
                if r.get("found") else "no ToC found")
    if op == "toc_extract":
        return (f"{r.get('entries')} entries, {r.get('without_page')} without a page, "
                f"{r.get('unresolved')} unresolved")
    return ""


async def book_summary(store: Store, book_id: str, *, weakest: int = 5) -> Summary:
    """Per op pages done/failed/stale, time and cost; the weakest pages; cost rollups; the jobs."""
    book = await _book(store, book_id)
    pages = await store.list_pages(book.id)
    providers = _ocr_providers(book, pages)
    ops: list[OpSummary] = []
    by_op: dict[str, list[Row]] = {}
    for op in PAGE_OPS:
        if op == "ocr":
            for prov in providers or ["tesseract"]:
                rows = [r for p in pages for r in _rows_for_page(book, p, "ocr", [prov])]
                by_op[f"ocr:{prov}"] = rows
        else:
            by_op[op] = [r for p in pages for r in _rows_for_page(book, p, op, providers)]
    for op in BOOK_LEVEL_OPS:
        by_op[op] = [book_rows(book, op)]
    for key, rows in by_op.items():
        s = _summarise(key, rows)
        s.quality = _quality_line(key, rows)
        ops.append(s)

    weak: dict[str, list[Row]] = {}
    for key, rows in by_op.items():
        if key.startswith("ocr:"):
            cand = [r for r in rows if r.get("confidence") is not None]
            weak[f"lowest {key} confidence"] = _pick(sort_rows(cand, "confidence"), weakest,
                                                     ("page", "confidence", "low_conf_share", "words"))
    blend = [r for r in by_op.get("blend", []) if r.get("agreement") is not None]
    if blend:
        weak["lowest blend agreement"] = _pick(sort_rows(blend, "agreement"), weakest,
                                               ("page", "agreement", "sources", "dropped"))
    label = by_op.get("label", [])
    body_without = [r for r in label
                    if r["status"] in ("done", "stale") and r.get("printed_page") in (None, "")
                    and r.get("content_type") in ("body", "index", "back_matter")]
    if body_without:
        weak["body pages without a printed number"] = _pick(body_without, weakest,
                                                            ("page", "content_type", "read_as"))
    fixed = [r for r in label if r.get("sequence_fixed")]
    if fixed:
        weak["numbers repaired by the sequence pass"] = _pick(fixed, weakest,
                                                              ("page", "read_as", "printed_page"))
    failed = [{"page": r.get("page"), "op": key, "error": r.get("error")}
              for key, rows in by_op.items() for r in rows if r["status"] == "failed"]
    if failed:
        weak["failed"] = failed[:weakest]

    cost = await cost_rollup(store, book.id)
    jobs = [{"id": j.id, "kind": j.kind, "status": j.status.value, "cost_usd": round(j.cost_usd, 6)}
            for j in await store.list_jobs(book.id)]
    return Summary(book=book.id, page_count=book.page_count, ops=ops, weakest=weak, cost=cost, jobs=jobs)


def _pick(rows: list[Row], n: int, cols: tuple[str, ...]) -> list[Row]:
    return [{c: r.get(c) for c in cols} for r in rows[:n]]

"""Rich displays of stored data: HTML in Jupyter (``_repr_html_``), tables in a terminal (``__rich__``).

The views are read-only snapshots built by the library (``lib.show_book(id)``, ``lib.show_page(id, n)``,
``lib.show_toc(id)``, ``lib.show_history(id)``, ``lib.show_job(job)``, ``lib.cost(id)``); the stored
pydantic models stay plain data. A view is the last expression of a cell to display it; ``str(view)``
gives the terminal rendering as text, and ``rich.print(view)`` prints it in colour.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .schema import (
    BOOK_OPS,
    Book,
    CallRecord,
    HistoryEvent,
    JobRecord,
    OcrResult,
    Page,
    Toc,
)

__all__ = ["BookView", "CostView", "HistoryView", "JobView", "PageView", "thumbnail_data_uri", "TocView"]

_TABLE_CSS = "border-collapse:collapse;margin:0.3em 0;font-size:0.9em"
_CELL_CSS = "padding:0.15em 0.6em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _html_table(header: list[str], rows: list[list[str]], *, caption: str | None = None) -> str:
    """A small HTML table; cells are HTML already (escape text with ``_e`` before)."""
    head = "".join(f'<th style="{_CELL_CSS}">{_e(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL_CSS}">{c}</td>' for c in row) + "</tr>"
                   for row in rows)
    cap = f'<caption style="text-align:left;font-weight:bold">{_e(caption)}</caption>' if caption else ""
    return f'<table style="{_TABLE_CSS}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _bar(done: int, total: int) -> str:
    pct = 0 if total <= 0 else max(0, min(100, round(100 * done / total)))
    return (f'<div style="display:inline-block;width:8em;height:0.7em;background:#eee;'
            f'vertical-align:middle"><div style="width:{pct}%;height:100%;background:#4a8"></div></div>')


def thumbnail_data_uri(path: Path, *, max_width: int = 400) -> str | None:
    """A page image scaled down to ``max_width`` pixels, as a ``data:image/...;base64,`` URI.

    Bilevel scans stay PNG (sharp and small); grey and colour pages become JPEG. Returns None when
    the file is missing or unreadable, so a display never fails on a lost image.
    """
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.thumbnail((max_width, max_width * 3))
            buf = io.BytesIO()
            if img.mode == "1":
                fmt = "png"
                img.save(buf, format="PNG", optimize=True)
            else:
                fmt = "jpeg"
                out = img if img.mode in ("L", "RGB") else img.convert("RGB")
                out.save(buf, format="JPEG", quality=80)
    except (OSError, ValueError):
        return None
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pages_text(pages: list[int]) -> str:
    if not pages:
        return "pages unknown"
    if len(pages) == 1:
        return f"scan page {pages[0]}"
    if pages == list(range(pages[0], pages[-1] + 1)):
        return f"scan pages {pages[0]}-{pages[-1]}"
    return "scan pages " + ", ".join(str(p) for p in pages)


class _View:
    """Shared behaviour: ``str()`` renders the rich form as plain text, ``repr`` stays short."""

    def __rich__(self) -> RenderableType:
        raise NotImplementedError

    def _repr_html_(self) -> str:
        raise NotImplementedError

    def _short(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self._short()

    def __str__(self) -> str:
        console = Console(width=110, record=True, file=io.StringIO(), color_system=None)
        console.print(self)
        return console.export_text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display (a terminal IPython) shows the table, not the dataclass."""
        printer.text(str(self).rstrip("\n"))


# ------------------------------------------------------------------------------------------ book


@dataclass(frozen=True, repr=False)
class BookView(_View):
    """A book at a glance: metadata, pages done by operation, book-level flags and the ToC summary."""

    book: Book
    pages_done: dict[str, int] = field(default_factory=dict)
    """Pages done per page-level step: ``extracted``, ``ocr <provider>``, ``blended``, ``labeled``,
    ``failed``."""
    toc: Toc | None = None

    def _short(self) -> str:
        return f"<BookView {self.book.id}>"

    def _metadata_rows(self) -> list[tuple[str, str]]:
        md = self.book.metadata
        if md is None:
            return []
        rows = [("title", md.title), ("subtitle", md.subtitle), ("authors", "; ".join(md.authors) or None),
                ("editors", "; ".join(md.editors) or None), ("publisher", md.publisher),
                ("year", md.year), ("isbn", md.isbn), ("lccn", md.lccn), ("language", md.language)]
        return [(k, v) for k, v in rows if v]

    def _flag_rows(self) -> list[tuple[str, str, str, str, str]]:
        rows = []
        for op in BOOK_OPS:
            flag = self.book.flag(op)
            state = "stale" if op in self.book.stale else flag.state.value
            rows.append((op, state, flag.provider or "", str(flag.attempts or ""), flag.error or ""))
        return rows

    def _toc_line(self) -> str:
        if self.toc is None:
            return "not looked for yet"
        if not self.toc.found:
            return "none found"
        pages = _pages_text(self.toc.pages)
        return f"{len(self.toc.entries)} entries on {pages}"

    def _repr_html_(self) -> str:
        b = self.book
        head = (f"<div><b>{_e(b.name)}</b> <code>{_e(b.id)}</code> &middot; {b.page_count} pages"
                f" &middot; {len(b.sources)} source file{'s' if len(b.sources) != 1 else ''}</div>")
        parts = [head]
        md = self._metadata_rows()
        parts.append(_html_table(["field", "value"], [[_e(k), _e(v)] for k, v in md], caption="metadata")
                     if md else "<div><i>no metadata yet</i></div>")
        prog = [[_e(k), f"{n}/{b.page_count}", _bar(n, b.page_count) if k != "failed" else ""]
                for k, n in self.pages_done.items()]
        parts.append(_html_table(["pages", "done", ""], prog, caption="progress"))
        parts.append(_html_table(["book-level op", "state", "provider", "attempts", "error"],
                                 [[_e(c) for c in row] for row in self._flag_rows()]))
        parts.append(f"<div>table of contents: {_e(self._toc_line())}</div>")
        return '<div class="bookops-book">' + "".join(parts) + "</div>"

    def __rich__(self) -> RenderableType:
        b = self.book
        items: list[RenderableType] = [Text.assemble(
            (b.name, "bold"), f"  {b.id}  {b.page_count} pages, {len(b.sources)} source file(s)")]
        md = self._metadata_rows()
        if md:
            t = Table("field", "value", title="metadata", title_justify="left")
            for k, v in md:
                t.add_row(k, v)
            items.append(t)
        else:
            items.append(Text("no metadata yet", style="italic"))
        prog = Table("pages", "done", title="progress", title_justify="left")
        for k, n in self.pages_done.items():
            prog.add_row(k, f"{n}/{b.page_count}")
        items.append(prog)
        flags = Table("book-level op", "state", "provider", "attempts", "error")
        for row in self._flag_rows():
            flags.add_row(*row)
        items.append(flags)
        items.append(Text(f"table of contents: {self._toc_line()}"))
        return Group(*items)


# ------------------------------------------------------------------------------------------ page


@dataclass(frozen=True, repr=False)
class PageView(_View):
    """One page: its image (a thumbnail inline in Jupyter) beside its blended text and label."""

    page: Page
    image_path: Path | None = None
    ocr: list[OcrResult] = field(default_factory=list)
    thumb_width: int = 400

    def _short(self) -> str:
        return f"<PageView {self.page.book} page {self.page.page_num}>"

    def _label_rows(self) -> list[tuple[str, str]]:
        p = self.page
        rows: list[tuple[str, str]] = []
        if p.label is not None:
            lab = p.label
            rows += [("printed page", lab.printed_page or "(none)"), ("content", lab.content_type.value)]
            if lab.running_header:
                rows.append(("running header", lab.running_header))
            if lab.is_chapter_start:
                rows.append(("chapter start", lab.chapter_title or "yes"))
        else:
            rows.append(("label", "not labeled yet"))
        for r in self.ocr:
            conf = f"{r.confidence:.2f}" if r.confidence is not None else "?"
            rows.append((f"ocr {r.provider}", f"{len(r.text)} chars, confidence {conf}"))
        if p.blend is not None:
            rows.append(("blend", f"{p.blend.method} from {', '.join(p.blend.sources)}"))
        for op, err in p.errors.items():
            rows.append((f"failed: {op}", f"{err.kind}: {err.message}"))
        return rows

    def _text(self) -> str:
        if self.page.blend is not None:
            return self.page.blend.text
        return self.ocr[0].text if self.ocr else ""

    def _repr_html_(self) -> str:
        p = self.page
        uri = thumbnail_data_uri(self.image_path, max_width=self.thumb_width) if self.image_path else None
        if uri is not None:
            img = (f'<img src="{uri}" alt="page {p.page_num}" '
                   f'style="max-width:{self.thumb_width}px;border:1px solid #ccc"/>')
        else:
            why = "no image yet (run Extract)" if self.image_path is None else "image missing"
            img = f"<div><i>{why}</i></div>"
        if p.blend is not None:
            source = "blended text"
        else:
            source = "OCR text (not blended yet)" if self.ocr else "no text yet"
        text = self._text()
        right = (_html_table(["", ""], [[_e(k), _e(v)] for k, v in self._label_rows()])
                 + f"<div><b>{_e(source)}</b></div>"
                 + '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto;margin:0">'
                 + f"{_e(text)}</pre>")
        return (f'<div class="bookops-page"><div><b>page {p.page_num}</b> of <code>{_e(p.book)}</code></div>'
                f'<div style="display:flex;gap:1em;align-items:flex-start">'
                f'<div style="flex:0 0 auto">{img}</div><div style="flex:1 1 auto;min-width:0">{right}</div>'
                f"</div></div>")

    def __rich__(self) -> RenderableType:
        p = self.page
        info = Table(show_header=False, box=None)
        info.add_row("image", str(self.image_path) if self.image_path else "no image yet (run Extract)")
        for k, v in self._label_rows():
            info.add_row(k, v)
        text = self._text()
        return Panel(Group(info, Text(""), Text(text or "(no text yet)")),
                     title=f"page {p.page_num} of {p.book}", title_align="left")


# ------------------------------------------------------------------------------------------ toc


@dataclass(frozen=True, repr=False)
class TocView(_View):
    """The table of contents, indented by level, with printed and scan page of every entry."""

    book_id: str
    toc: Toc | None = None

    def _short(self) -> str:
        n = len(self.toc.entries) if self.toc else 0
        return f"<TocView {self.book_id}: {n} entries>"

    def _summary(self) -> str:
        t = self.toc
        if t is None:
            return "no table of contents yet: run process-pages (or TocFind, then TocExtract)"
        if not t.found:
            return f"no table of contents found (found by {t.found_by or '?'})"
        return (f"{len(t.entries)} entries on {_pages_text(t.pages)}; found by {t.found_by or '?'}, "
                f"extracted by {t.extracted_by or '?'}")

    def _repr_html_(self) -> str:
        rows = []
        for e in self.toc.entries if self.toc else []:
            pad = f"padding-left:{1.5 * (e.level - 1):.1f}em"
            rows.append([_e(e.number or ""), f'<span style="{pad}">{_e(e.title)}</span>',
                         _e(e.level), _e(e.printed_page or ""), _e(e.scan_page or "")])
        table = _html_table(["number", "title", "level", "printed page", "scan page"], rows) if rows else ""
        return (f'<div class="bookops-toc"><div><b>table of contents</b> <code>{_e(self.book_id)}</code>: '
                f"{_e(self._summary())}</div>{table}</div>")

    def __rich__(self) -> RenderableType:
        summary = Text(self._summary())
        if not self.toc or not self.toc.entries:
            return summary
        table = Table("number", "title", "printed page", "scan page", title_justify="left")
        for e in self.toc.entries:
            table.add_row(e.number or "", "  " * (e.level - 1) + e.title, e.printed_page or "",
                          "" if e.scan_page is None else str(e.scan_page))
        return Group(summary, table)


# ------------------------------------------------------------------------------------------ history


def _detail(detail: dict[str, Any], limit: int = 120) -> str:
    text = ", ".join(f"{k}={v}" for k, v in detail.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, repr=False)
class HistoryView(_View):
    """History events of a book, oldest first, with a count by event."""

    book_id: str
    events: list[HistoryEvent] = field(default_factory=list)

    def _short(self) -> str:
        return f"<HistoryView {self.book_id}: {len(self.events)} events>"

    @property
    def counts(self) -> dict[str, int]:
        """How many events of each kind (``ocr.done``: 12, ...)."""
        return dict(Counter(e.event for e in self.events))

    def _rows(self) -> list[tuple[str, str, str, str, str]]:
        return [(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.event, "" if e.page is None else str(e.page),
                 e.job or "", _detail(e.detail)) for e in self.events]

    def _repr_html_(self) -> str:
        rows = [[_e(c) for c in row] for row in self._rows()]
        return (f'<div class="bookops-history"><div><b>history</b> <code>{_e(self.book_id)}</code>: '
                f"{len(self.events)} events</div>"
                + _html_table(["at (UTC)", "event", "page", "job", "detail"], rows) + "</div>")

    def __rich__(self) -> RenderableType:
        table = Table("at (UTC)", "event", "page", "job", "detail",
                      title=f"history of {self.book_id}: {len(self.events)} events", title_justify="left")
        for row in self._rows():
            table.add_row(*row)
        return table


# ------------------------------------------------------------------------------------------ jobs, cost


@dataclass(frozen=True, repr=False)
class JobView(_View):
    """A job record: kind, status, progress per operation, time and cost."""

    job: JobRecord

    def _short(self) -> str:
        return f"<JobView {self.job.id} {self.job.status.value}>"

    def _seconds(self) -> str:
        j = self.job
        if j.started_at and j.finished_at:
            return f"{(j.finished_at - j.started_at).total_seconds():.1f} s"
        return ""

    def _head(self) -> str:
        j = self.job
        return (f"job {j.id}: {j.kind} on {j.book}, {j.status.value}"
                + (f" in {self._seconds()}" if self._seconds() else "") + f", cost ${j.cost_usd:.4f}"
                + (f" — {j.error}" if j.error else ""))

    def _repr_html_(self) -> str:
        rows = [[_e(op), f"{p.done}/{p.total}", _e(p.failed or ""), _bar(p.done, p.total)]
                for op, p in self.job.progress.items()]
        return (f'<div class="bookops-job"><div>{_e(self._head())}</div>'
                + _html_table(["operation", "done", "failed", ""], rows) + "</div>")

    def __rich__(self) -> RenderableType:
        table = Table("operation", "done", "failed")
        for op, p in self.job.progress.items():
            table.add_row(op, f"{p.done}/{p.total}", str(p.failed or ""))
        return Group(Text(self._head()), table)


@dataclass(frozen=True, repr=False)
class CostView(_View):
    """What a book cost: its jobs, and provider calls grouped by operation and model."""

    book_id: str
    jobs: list[JobRecord] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)

    def _short(self) -> str:
        return f"<CostView {self.book_id}: ${self.total_usd:.4f}>"

    @property
    def total_usd(self) -> float:
        """The cost of every job on the book, in US dollars (0 when everything ran offline)."""
        return sum(j.cost_usd for j in self.jobs)

    @property
    def by_op(self) -> dict[str, dict[str, Any]]:
        """Provider calls per ``op/provider/model``: calls, tokens, cost and cached answers."""
        out: dict[str, dict[str, Any]] = {}
        for c in self.calls:
            key = "/".join(x for x in (c.op, c.provider, c.model) if x)
            row = out.setdefault(key, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                       "cost_usd": 0.0, "failed": 0})
            row["calls"] += 1
            row["prompt_tokens"] += c.prompt_tokens or 0
            row["completion_tokens"] += c.completion_tokens or 0
            row["cost_usd"] += c.cost_usd or 0.0
            row["failed"] += c.outcome != "ok"
        return out

    def _head(self) -> str:
        calls = f"{len(self.calls)} provider call{'s' if len(self.calls) != 1 else ''}"
        return f"{self.book_id}: ${self.total_usd:.4f} over {len(self.jobs)} job(s), {calls}"

    def _repr_html_(self) -> str:
        jobs = [[_e(j.id), _e(j.status.value), f"${j.cost_usd:.4f}"] for j in self.jobs]
        ops = [[_e(k), _e(v["calls"]), _e(v["prompt_tokens"]), _e(v["completion_tokens"]),
                f"${v['cost_usd']:.4f}", _e(v["failed"] or "")] for k, v in self.by_op.items()]
        parts = [f'<div class="bookops-cost"><div><b>cost</b> {_e(self._head())}</div>',
                 _html_table(["job", "status", "cost"], jobs)]
        if ops:
            parts.append(_html_table(["op/provider/model", "calls", "prompt tokens", "completion tokens",
                                      "cost", "failed"], ops))
        return "".join(parts) + "</div>"

    def __rich__(self) -> RenderableType:
        jobs = Table("job", "status", "cost")
        for j in self.jobs:
            jobs.add_row(j.id, j.status.value, f"${j.cost_usd:.4f}")
        items: list[RenderableType] = [Text(self._head()), jobs]
        if self.calls:
            ops = Table("op/provider/model", "calls", "prompt tokens", "completion tokens", "cost", "failed")
            for k, v in self.by_op.items():
                ops.add_row(k, str(v["calls"]), str(v["prompt_tokens"]), str(v["completion_tokens"]),
                            f"${v['cost_usd']:.4f}", str(v["failed"] or ""))
            items.append(ops)
        return Group(*items)

"""``bookops report``: per-page quality of one operation, or a one-screen summary of a book."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..report import (
    Summary,
    all_columns,
    book_summary,
    filter_rows,
    page_rows,
    rows_csv,
    sort_rows,
    table_columns,
)
from ._common import console, err_console, load_settings, print_json, run, store_session


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)


def report_cmd(
    book: Annotated[str, typer.Argument(help="book id", show_default=False)],
    op: Annotated[str | None, typer.Option("--op", help="extract, ocr (or ocr:PROVIDER), blend, label, "
                                           "metadata, toc_find, toc_extract; none: the book summary")] = None,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter",
        help="FIELD=VALUE (empty value: none), FIELD!=VALUE, FIELD<N, <=, >, >=; repeatable")] = None,
    sort: Annotated[str | None, typer.Option("--sort", help="sort by FIELD (-FIELD: descending)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="at most this many rows")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="also write every field to this CSV")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Quality, time and cost per page for one operation (--op), or a summary of the whole book."""
    settings = load_settings()
    if op is None:
        if filters or sort or csv_path:
            err_console.print("--filter, --sort and --csv need --op")
            raise typer.Exit(2)

        async def summary_body() -> Summary:
            async with store_session(settings) as store:
                return await book_summary(store, book)

        summary = run(summary_body)
        if as_json:
            print_json(summary.as_dict())
        else:
            print_summary(summary)
        return

    async def rows_body() -> list[dict[str, Any]]:
        async with store_session(settings) as store:
            return await page_rows(store, book, op)

    rows = sort_rows(filter_rows(run(rows_body), filters), sort)
    if limit is not None:
        rows = rows[:limit]
    if csv_path is not None:
        csv_path.write_text(rows_csv(rows, all_columns(rows) or ["page", "status"]), encoding="utf-8")
        err_console.print(f"wrote {len(rows)} rows to {csv_path}")
    if as_json:
        print_json(rows)
        return
    cols = table_columns(op, rows)
    table = Table(*cols, title=f"{book} {op}: {len(rows)} rows", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for r in rows:
        table.add_row(*(escape(_cell(r.get(c))) for c in cols))
    console.print(table)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".") if v != int(v) or abs(v) < 1 else f"{v:g}"
    return str(v)


def print_summary(s: Summary) -> None:
    console.print(f"[bold]{s.book}[/]  {s.page_count} pages  cost ${s.cost.book_usd:.4f} "
                  f"({s.cost.calls} LLM calls)")
    t = Table("operation", "done", "failed", "stale", "pending", "time s", "cost $",
              title="operations", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for o in s.ops:
        t.add_row(o.op, f"{o.done}/{o.total}", str(o.failed), str(o.stale), str(o.pending),
                  f"{o.seconds:.1f}", f"{o.cost_usd:.4f}")
    console.print(t)
    for o in s.ops:
        if o.quality:
            console.print(f"  {o.op}: {o.quality}", markup=False)
    for title, rows in s.weakest.items():
        if not rows:
            continue
        cols = list(rows[0])
        wt = Table(*cols, title=f"weakest: {title}", title_justify="left", box=box.SIMPLE_HEAD,
                   pad_edge=False)
        for r in rows:
            wt.add_row(*(escape(_cell(r.get(c))) for c in cols))
        console.print(wt)
    if s.cost.by_op or s.jobs:
        by_op = ", ".join(f"{k} ${v:.4f}" for k, v in sorted(s.cost.by_op.items())) or "-"
        console.print(f"cost by operation: {by_op}", markup=False)
        for j in s.jobs[-5:]:
            console.print(f"job {j['id']} {j['kind']} {j['status']} ${j['cost_usd']:.4f}", markup=False)

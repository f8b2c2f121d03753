"""Run and inspect jobs: process-pages, rerun-toc, add-ocr-source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..errors import UserError
from ..schema import Book, JobRecord, OpProgress
from ..settings import Settings
from ..store import Store
from ._common import (
    console,
    err_console,
    load_settings,
    parse_pages,
    print_json,
    run,
    split_csv,
    store_session,
)

app = typer.Typer(no_args_is_help=True)

BOOK_ARG = typer.Argument(..., help="a book id, or a path (PDF or image folder) that is added first")
JSON_OPT = typer.Option(False, "--json", help="print JSON")


async def resolve_book(store: Store, settings: Settings, ref: str) -> Book:
    book = await store.get_book(ref)
    if book is not None:
        return book
    path = Path(ref)
    if path.exists():
        from ..ingest import add_book

        book, _created = await add_book(store, settings, [path])
        return book
    raise UserError(f"no book or file '{ref}'; give a book id (see `bookops book list`) or a path")


class _RateColumn(ProgressColumn):
    """Units per second (rich's speed columns assume bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.2f}/s" if speed else "     -/s")


class _Bars:
    """Rich progress bars, one per operation, fed by the runner's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"), _RateColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=not enabled,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def update(self, key: str, prog: OpProgress) -> None:
        failed = f"[red]{prog.failed} failed[/]" if prog.failed else ""
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(key, total=max(prog.total, 1), failed=failed)
        self.progress.update(self.tasks[key], completed=prog.done + prog.failed,
                             total=max(prog.total, prog.done + prog.failed, 1), failed=failed)


BUDGET_OPT = typer.Option(None, "--budget-usd", min=0.0,
                          help="stop dispatching paid (LLM) units before the job's spending passes this")
DRY_RUN_OPT = typer.Option(False, "--dry-run", help="print the units and estimated cost; change nothing")
PARALLEL_OPT = typer.Option(1, "--parallel", min=1, help="with --all: books run at the same time")


def _run_job_cli(kind: str, book_ref: str | None, *, params: dict[str, Any], pages: list[int] | None,
                 as_json: bool, quiet: bool, use_cache: bool, settings: Settings,
                 budget_usd: float | None = None, dry_run: bool = False, all_books: bool = False,
                 stale: bool = False, parallel: int = 1) -> None:
    from ..jobs import run_job

    if all_books:
        if book_ref:
            raise UserError("give a book or --all, not both")
        _run_all_cli(kind, params=params, as_json=as_json, quiet=quiet, use_cache=use_cache,
                     settings=settings, budget_usd=budget_usd, dry_run=dry_run, stale=stale,
                     parallel=parallel)
        return
    if not book_ref:
        raise UserError("give a book id (or a path), or --all")
    if dry_run:
        _dry_run_cli(kind, [book_ref], params=params, pages=pages, as_json=as_json, settings=settings)
        return

    async def body() -> tuple[JobRecord, Any, Book]:
        async with store_session(settings) as store:
            book = await resolve_book(store, settings, book_ref)
            bars = _Bars(enabled=not (as_json or quiet))
            with bars.progress:
                job, summary = await run_job(kind, store, settings, book, params=params, pages=pages,
                                             on_progress=bars.update, use_cache=use_cache,
                                             budget_usd=budget_usd)
            return job, summary, await store.get_book(book.id) or book

    job, summary, book = run(body)
    info = _found(settings, book.id)
    if as_json:
        print_json({"job": job.model_dump(mode="json"), "seconds": round(summary.seconds, 2),
                    "failed": summary.failed, "held": [u.id for u in summary.held], **info})
    elif not quiet:
        _print_summary(job, summary, book, info)
    if job.status.value not in ("succeeded",):
        raise typer.Exit(1)


def _dry_run_cli(kind: str, refs: list[str], *, params: dict[str, Any], pages: list[int] | None,
                 as_json: bool, settings: Settings) -> None:
    """Print what the job would do on each book; reads the store, writes nothing (a path is only scanned)."""
    from ..jobs.dryrun import DryRun, dry_run

    async def body() -> list[DryRun]:
        async with store_session(settings) as store:
            out = []
            for ref in refs:
                book = await store.get_book(ref) or _unstored_book(settings, ref)
                out.append(await dry_run(kind, store, settings, book, params=params, pages=pages))
            return out

    plans = run(body)
    if as_json:
        data = [p.as_dict() for p in plans]
        print_json(data[0] if len(data) == 1 else data)
        return
    for p in plans:
        _print_dry_run(p)
    if len(plans) > 1:
        costs = [p.cost_usd for p in plans]
        total = "unknown" if any(c is None for c in costs) else f"${sum(c or 0.0 for c in costs):.4f}"
        console.print(f"{len(plans)} books, {sum(p.units for p in plans)} units, estimated cost {total}")


def _unstored_book(settings: Settings, ref: str) -> Book:
    from ..ingest import book_id_for, scan_sources

    path = Path(ref)
    if not path.exists():
        raise UserError(f"no book or file '{ref}'; give a book id (see `bookops book list`) or a path")
    name, sources = scan_sources([path])
    return Book(id=book_id_for(name, sources), name=name, sources=sources,
                page_count=sum(s.page_count for s in sources))


def _print_dry_run(p: Any) -> None:
    table = Table("operation", "provider", "units", "model", "tokens in", "tokens out", "est. cost $",
                  title=f"dry run: {p.kind} {p.book} ({p.pages} pages); nothing was changed",
                  title_justify="left")
    for o in p.ops:
        cost = "-" if o.provider != "openai" else ("unknown" if o.cost_usd is None else f"{o.cost_usd:.4f}")
        table.add_row(o.op, o.provider, str(o.units), o.model or "-", str(o.prompt_tokens or "-"),
                      str(o.completion_tokens or "-"), cost)
    console.print(table)
    total = ("unknown (no price for the model in settings.prices)" if p.cost_usd is None
             else f"${p.cost_usd:.4f}")
    console.print(f"{p.units} units; estimated cost {total}")
    for note in p.notes:
        console.print(f"note: {note}", markup=False)


def _run_all_cli(kind: str, *, params: dict[str, Any], as_json: bool, quiet: bool, use_cache: bool,
                 settings: Settings, budget_usd: float | None, dry_run: bool, stale: bool,
                 parallel: int) -> None:
    """One job per selected book, ``parallel`` at a time, sharing one dispatcher (the provider pools)."""
    from ..jobs import run_many, select_books

    async def pick() -> list[Book]:
        async with store_session(settings) as store:
            return await select_books(store, kind, stale_only=stale)

    books = run(pick)
    if dry_run:
        if not books:
            console.print("no book needs this job")
            return
        _dry_run_cli(kind, [b.id for b in books], params=params, pages=None, as_json=as_json,
                     settings=settings)
        return

    def on_book(book: Book, job: JobRecord | None, summary: Any, exc: BaseException | None) -> None:
        if as_json or quiet:
            return
        if exc is not None:
            err_console.print(f"{book.id}: [red]{getattr(exc, 'message', exc)}[/]")
        elif job is not None:
            console.print(f"{book.id}: {job.status.value}, failures {summary.failed}, "
                          f"time {summary.seconds:.1f} s, cost ${summary.cost_usd:.4f}"
                          + (f" - {job.error}" if job.error else ""), markup=False)

    async def body() -> list[tuple[Book, JobRecord | None, BaseException | None]]:
        async with store_session(settings) as store:
            return await run_many(kind, store, settings, books, params=params, parallel=parallel,
                                  use_cache=use_cache, budget_usd=budget_usd, on_book=on_book)

    results = run(body) if books else []
    if as_json:
        print_json([{"book": b.id, "job": j.model_dump(mode="json") if j else None,
                     "error": getattr(e, "message", str(e)) if e else None} for b, j, e in results])
    elif not quiet:
        ok = sum(1 for _b, j, _e in results if j is not None and j.status.value == "succeeded")
        cost = sum(j.cost_usd for _b, j, _e in results if j is not None)
        console.print(f"{len(results)} books: {ok} succeeded, {len(results) - ok} not; cost ${cost:.4f}")
    if any(j is None or j.status.value != "succeeded" for _b, j, _e in results):
        raise typer.Exit(1)


def _found(settings: Settings, book_id: str) -> dict[str, Any]:
    async def body() -> dict[str, Any]:
        async with store_session(settings) as store:
            book = await store.get_book(book_id)
            toc = await store.get_toc(book_id)
            return {"title": book.metadata.title if book and book.metadata else None,
                    "toc_entries": len(toc.entries) if toc else None,
                    "toc_pages": toc.pages if toc else None}

    return run(body)


def _print_summary(job: JobRecord, summary: Any, book: Book, info: dict[str, Any]) -> None:
    table = Table(title=f"{job.kind} {book.id}: {job.status.value}", show_header=True)
    table.add_column("operation")
    table.add_column("done", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("total", justify="right")
    for key, prog in summary.progress.items():
        table.add_row(key, str(prog.done), str(prog.failed), str(prog.total))
    console.print(table)
    console.print(f"pages {book.page_count}, failures {summary.failed}, "
                  f"time {summary.seconds:.1f} s, cost ${summary.cost_usd:.4f}"
                  + (f" (budget ${job.params['budget_usd']:.4f})" if job.params.get("budget_usd") is not None
                     else ""))
    if info.get("title") is not None or info.get("toc_entries") is not None:
        console.print(f"title: {info.get('title') or '-'}; ToC: {info.get('toc_entries') or 0} entries"
                      f" on pages {info.get('toc_pages') or '-'}")
    if job.error:
        console.print(f"[red]{job.error}[/]")


@app.command("process-pages")
def process_pages(
    book: str = typer.Argument(None, help="a book id, or a path (PDF or image folder) that is added first"),
    pages: str = typer.Option(None, "--pages", help="scan pages to process, e.g. 1-20"),
    ocr: str = typer.Option(None, "--ocr", help="OCR providers, comma separated (default from settings)"),
    dpi: int = typer.Option(None, "--dpi", help="render resolution for vector pages"),
    workers: int = typer.Option(None, "--workers", help="CPU workers (default: cores)"),
    renderer: str = typer.Option(None, "--renderer", help="pdfium (default) or poppler"),
    no_cache: bool = typer.Option(False, "--no-cache", help="make new LLM calls even when cached"),
    budget_usd: float = BUDGET_OPT,
    dry_run: bool = DRY_RUN_OPT,
    all_books: bool = typer.Option(False, "--all", help="every book not complete, one job each"),
    parallel: int = PARALLEL_OPT,
    as_json: bool = JSON_OPT,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Extract, OCR, blend, label every page; then metadata and the table of contents."""
    settings = load_settings(dpi=dpi, workers=workers, renderer=renderer,
                             ocr_providers=split_csv(ocr))
    params: dict[str, Any] = {"ocr_providers": settings.ocr_providers, "dpi": settings.dpi,
                              "renderer": settings.renderer}
    _run_job_cli("process-pages", book, params=params, pages=parse_pages(pages), as_json=as_json,
                 quiet=quiet, use_cache=not no_cache, settings=settings, budget_usd=budget_usd,
                 dry_run=dry_run, all_books=all_books, parallel=parallel)


@app.command("rerun-toc")
def rerun_toc(
    book: str = typer.Argument(None, help="book id"),
    pages: str = typer.Option(None, "--pages", help="force the ToC page range, e.g. 3-4"),
    no_cache: bool = typer.Option(False, "--no-cache"),
    budget_usd: float = BUDGET_OPT,
    dry_run: bool = DRY_RUN_OPT,
    all_books: bool = typer.Option(False, "--all", help="every book, one job each"),
    stale: bool = typer.Option(False, "--stale", help="with --all: only books whose ToC is stale or failed"),
    parallel: int = PARALLEL_OPT,
    as_json: bool = JSON_OPT,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Reset the table of contents (history keeps the old one) and find and parse it again."""
    settings = load_settings()
    params: dict[str, Any] = {}
    forced = parse_pages(pages)
    if forced:
        params["toc_pages"] = forced
    if stale and not all_books:
        raise UserError("--stale goes with --all")
    _run_job_cli("rerun-toc", book, params=params, pages=None, as_json=as_json, quiet=quiet,
                 use_cache=not no_cache, settings=settings, budget_usd=budget_usd, dry_run=dry_run,
                 all_books=all_books, stale=stale, parallel=parallel)


@app.command("add-ocr-source")
def add_ocr_source(
    book: str = typer.Argument(..., help="book id"),
    provider: str = typer.Option(..., "--provider", help="OCR provider to add, e.g. openai"),
    rerun_downstream: bool = typer.Option(False, "--rerun-downstream",
                                          help="rerun labels, metadata and ToC too (else marked stale)"),
    no_cache: bool = typer.Option(False, "--no-cache"),
    budget_usd: float = BUDGET_OPT,
    dry_run: bool = DRY_RUN_OPT,
    as_json: bool = JSON_OPT,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """OCR every page with another provider and re-blend the pages that gained a source."""
    settings = load_settings()
    params = {"provider": provider, "rerun_downstream": rerun_downstream}
    _run_job_cli("add-ocr-source", book, params=params, pages=None, as_json=as_json, quiet=quiet,
                 use_cache=not no_cache, settings=settings, budget_usd=budget_usd, dry_run=dry_run)


@app.command("list")
def list_jobs(
    book: str = typer.Option(None, "--book", help="only this book's jobs"),
    as_json: bool = JSON_OPT,
) -> None:
    """Jobs, oldest first."""
    settings = load_settings()

    async def body() -> list[JobRecord]:
        async with store_session(settings) as store:
            return await store.list_jobs(book)

    jobs = run(body)
    if as_json:
        print_json([j.model_dump(mode="json") for j in jobs])
        return
    table = Table(show_header=True)
    for col in ("job", "kind", "book", "status", "started", "failed", "cost $"):
        table.add_column(col)
    for j in jobs:
        failed = sum(p.failed for p in j.progress.values())
        table.add_row(j.id, j.kind, j.book, j.status.value,
                      j.started_at.strftime("%Y-%m-%d %H:%M:%S") if j.started_at else "-",
                      str(failed), f"{j.cost_usd:.4f}")
    console.print(table)


@app.command("show")
def show_job(job_id: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
    """One job: status, progress per operation, times, error, host and pid."""
    settings = load_settings()

    async def body() -> JobRecord | None:
        async with store_session(settings) as store:
            return await store.get_job(job_id)

    job = run(body)
    if job is None:
        raise UserError(f"no job '{job_id}'; see `bookops job list`")
    if as_json:
        print_json(job.model_dump(mode="json"))
        return
    console.print(f"[bold]{job.id}[/] {job.kind} on {job.book}: {job.status.value}")
    console.print(f"started {job.started_at}  finished {job.finished_at}  host {job.host} pid {job.pid}")
    table = Table(show_header=True)
    for col in ("operation", "done", "failed", "total"):
        table.add_column(col)
    for key, p in job.progress.items():
        table.add_row(key, str(p.done), str(p.failed), str(p.total))
    console.print(table)
    console.print(f"cost ${job.cost_usd:.4f}")
    if job.error:
        console.print(f"error: {job.error}")

"""Add, list, show and remove books.

``bookops book add`` prints only the book id on stdout (status goes to stderr), so scripts can do
``id=$(bookops book add scan.pdf)``.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from ..errors import BookBusy, UserError
from ..ingest import add_book
from ..schema import BOOK_OPS, Book, Page
from ..settings import Settings
from ..store import Store
from ._common import console, err_console, load_settings, print_json, run, store_session

app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
BookArg = Annotated[str, typer.Argument(help="Book id (see `bookops book list`).", show_default=False)]


async def get_book_or_fail(store: Store, book_id: str) -> Book:
    book = await store.get_book(book_id)
    if book is None:
        raise UserError(f"no book '{book_id}'; see `bookops book list`")
    return book


# ---------------------------------------------------------------------------------- add


@app.command("add")
def add_cmd(
    paths: Annotated[list[Path], typer.Argument(
        help="PDF files (pages in the order given) or one folder of page images.", show_default=False)],
    book_id: Annotated[str | None, typer.Option("--id", help="Use this id instead of name + hash.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a book from PDFs or a folder of page images; prints its id."""
    settings = load_settings()

    async def body() -> tuple[Book, bool]:
        async with store_session(settings) as store:
            return await add_book(store, settings, paths, book_id=book_id)

    book, created = run(body)
    if as_json:
        print_json({"id": book.id, "created": created, "name": book.name,
                    "page_count": book.page_count, "sources": len(book.sources)})
        return
    print(book.id)
    files = f"{len(book.sources)} file" + ("s" if len(book.sources) != 1 else "")
    if created:
        err_console.print(f"added {book.page_count} pages from {files}")
    else:
        err_console.print(f"already added ({book.page_count} pages from {files}); nothing changed")


# ---------------------------------------------------------------------------------- list


def _ocr_providers(book: Book, settings: Settings) -> list[str]:
    return book.ocr_providers or list(settings.ocr_providers)


async def _counts(store: Store, book: Book, settings: Settings) -> dict[str, int]:
    ocr_done = {f"ocr.{p}.done": True for p in _ocr_providers(book, settings)}
    return {
        "extracted": await store.count_pages(book.id, {"extracted": True}),
        "ocr": await store.count_pages(book.id, ocr_done) if ocr_done else 0,
        "blended": await store.count_pages(book.id, {"blended": True}),
        "labeled": await store.count_pages(book.id, {"labeled": True}),
    }


@app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """List the books in the store with their progress."""
    settings = load_settings()

    async def body() -> list[dict[str, Any]]:
        async with store_session(settings) as store:
            rows = []
            for book in await store.list_books():
                rows.append({
                    "id": book.id, "name": book.name, "pages": book.page_count,
                    **await _counts(store, book, settings),
                    "title": book.metadata.title if book.metadata else None,
                })
            return rows

    rows = run(body)
    if as_json:
        print_json(rows)
        return
    if not rows:
        err_console.print("no books yet; add one with `bookops book add FILE.pdf`")
        return
    table = Table(Column("name", overflow="fold"), "pages", "extracted", "ocr", "blended", "labeled",
                  Column("title", overflow="fold"), caption="counts are pages done")
    # Ids are what every other command takes: never cut them short.
    table.columns.insert(0, Column("id", no_wrap=True, min_width=max(len(r["id"]) for r in rows)))
    for r in rows:
        table.add_row(r["id"], escape(r["name"]), *(str(r[k]) for k in
                      ("pages", "extracted", "ocr", "blended", "labeled")), escape(r["title"] or ""))
    console.print(table)


# ---------------------------------------------------------------------------------- show


def page_states(pages: list[Page]) -> dict[str, Any]:
    """Pages by state, from the per-page flags (never from a job's status)."""
    ocr: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for p in pages:
        ocr.update(name for name, state in p.ocr.items() if state.done)
        failed.update(p.errors.keys())
    return {
        "total": len(pages),
        "extracted": sum(p.extracted for p in pages),
        "ocr": dict(sorted(ocr.items())),
        "blended": sum(p.blended for p in pages),
        "labeled": sum(p.labeled for p in pages),
        "failed": sum(bool(p.errors) for p in pages),
        "failed_by_op": dict(sorted(failed.items())),
    }


async def _show_data(store: Store, settings: Settings, book_id: str) -> dict[str, Any]:
    book = await get_book_or_fail(store, book_id)
    pages = await store.list_pages(book.id)
    states = page_states(pages)
    for provider in _ocr_providers(book, settings):
        states["ocr"].setdefault(provider, 0)
    toc = await store.get_toc(book.id)
    from ..report import cost_rollup

    cost = (await cost_rollup(store, book.id)).as_dict()
    cost["top_pages"] = dict(sorted(cost.pop("by_page").items(), key=lambda kv: -kv[1])[:5])
    return {
        "id": book.id,
        "name": book.name,
        "page_count": book.page_count,
        "sources": [s.model_dump(mode="json") for s in book.sources],
        "pages": states,
        "metadata": book.metadata.model_dump(mode="json") if book.metadata else None,
        "toc": None if toc is None else {
            "found": toc.found, "pages": toc.pages, "entries": len(toc.entries),
            "levels": max((e.level for e in toc.entries), default=0),
            "first_entries": [e.title for e in toc.entries[:5]],
            "found_by": toc.found_by, "extracted_by": toc.extracted_by,
        },
        "ops": {op: book.flag(op).model_dump(mode="json") for op in BOOK_OPS},
        "stale": book.stale,
        "cost": cost,
        "created_at": book.created_at.isoformat(),
        "updated_at": book.updated_at.isoformat(),
    }


@app.command("show")
def show_cmd(book_id: BookArg, as_json: JsonOpt = False) -> None:
    """Show a book: sources, pages by state, metadata, table of contents, book-level ops."""
    settings = load_settings()

    async def body() -> dict[str, Any]:
        async with store_session(settings) as store:
            return await _show_data(store, settings, book_id)

    data = run(body)
    if as_json:
        print_json(data)
    else:
        _print_show(data)


def _print_show(d: dict[str, Any]) -> None:
    console.print(f"[bold]{d['id']}[/bold]  {escape(d['name'])}  {d['page_count']} pages")
    src = Table("#", "kind", "pages", "size", "sha256", Column("path", overflow="fold"),
                title="sources", title_justify="left")
    for i, s in enumerate(d["sources"]):
        src.add_row(str(i), s["kind"], str(s["page_count"]), _size(s["size"]), s["sha256"][:12],
                    escape(s["path"]))
    console.print(src)

    p = d["pages"]
    states = Table("state", "pages", title="pages", title_justify="left")
    states.add_row("extracted", f"{p['extracted']}/{p['total']}")
    for provider, n in p["ocr"].items():
        states.add_row(f"ocr {provider}", f"{n}/{p['total']}")
    for key in ("blended", "labeled", "failed"):
        states.add_row(key, f"{p[key]}/{p['total']}")
    for op, n in p["failed_by_op"].items():
        states.add_row(f"  failed in {op}", str(n))
    console.print(states)

    ops = Table("op", "state", "attempts", "provider", "error", title="book-level ops", title_justify="left")
    for op, f in d["ops"].items():
        state = f["state"] + (" (stale)" if op in d["stale"] else "")
        ops.add_row(op, state, str(f["attempts"]), f["provider"] or "", escape(f["error"] or ""))
    console.print(ops)

    cost = d.get("cost")
    if cost and cost["calls"]:
        by_op = ", ".join(f"{k} ${v:.4f}" for k, v in cost["by_op"].items()) or "-"
        by_job = ", ".join(f"{k} ${v:.4f}" for k, v in cost["by_job"].items()) or "-"
        pages = ", ".join(f"p{k} ${v:.4f}" for k, v in cost["top_pages"].items()) or "-"
        console.print(f"cost: ${cost['book_usd']:.4f} in {cost['calls']} LLM calls"
                      + (f" ({cost['unpriced_calls']} without a price)" if cost["unpriced_calls"] else "")
                      + f"; by operation: {by_op}; by job: {by_job}; dearest pages: {pages}", markup=False)
    else:
        console.print("cost: $0 (no paid LLM calls)")

    meta = d["metadata"]
    if meta:
        shown = {k: v for k, v in meta.items() if v not in (None, [], "") and k != "source_pages"}
        console.print("metadata: " + "; ".join(f"{k}: {_plain(v)}" for k, v in shown.items()),
                      markup=False)
    else:
        console.print("metadata: not extracted yet")
    toc = d["toc"]
    if toc is None:
        console.print("table of contents: not looked for yet")
    elif not toc["found"]:
        console.print("table of contents: none found")
    else:
        pages = ", ".join(str(n) for n in toc["pages"])
        console.print(f"table of contents: scan pages {pages}; {toc['entries']} entries, "
                      f"{toc['levels']} levels")
        for title in toc["first_entries"]:
            console.print(f"  {title}", markup=False)


def _plain(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, list) else str(v)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# ---------------------------------------------------------------------------------- rm


@app.command("rm")
def rm_cmd(
    book_id: BookArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove a book: its documents in the store and its page images."""
    settings = load_settings()

    async def check() -> Book:
        async with store_session(settings) as store:
            book = await get_book_or_fail(store, book_id)
            lease = await store.get_lease(book.id)
            if lease is not None and lease.expires_at > time.time():
                raise BookBusy(f"book '{book.id}' has a running job ({lease.job} on {lease.host},"
                               f" pid {lease.pid}); stop it first", job_id=lease.job)
            return book

    book = run(check)
    if not yes:
        typer.confirm(f"Remove book '{book.id}' ({book.page_count} pages) and its page images?",
                      abort=True, err=True)

    async def remove() -> None:
        async with store_session(settings) as store:
            # Documents first: a crash in between leaves orphan images, never pages without images.
            await store.delete_book(book.id)

    run(remove)
    images = _book_dir(settings, book.id)
    if images is not None:
        shutil.rmtree(images, ignore_errors=True)
    if as_json:
        print_json({"removed": book.id})
    else:
        err_console.print(f"removed {book.id}")


def _book_dir(settings: Settings, book_id: str) -> Path | None:
    """The book's image folder, only if it really is inside ``books_dir`` (ids are folder names)."""
    root = settings.books_dir.resolve()
    path = (root / book_id).resolve()
    return path if path.parent == root and path.is_dir() else None

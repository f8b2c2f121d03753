"""The history of a book: every event the jobs recorded."""

from __future__ import annotations

import typer
from rich.table import Table

from ..errors import UserError
from ..schema import HistoryEvent
from ._common import console, load_settings, print_json, run, store_session


def register(app: typer.Typer) -> None:
    app.command("history")(history)


def history(
    book: str = typer.Argument(..., help="book id"),
    event: str = typer.Option(None, "--event", help="only this event, e.g. ocr.done"),
    op: str = typer.Option(None, "--op", help="only this operation"),
    job: str = typer.Option(None, "--job", help="only this job"),
    limit: int = typer.Option(None, "--limit"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Events recorded for a book, oldest first."""
    settings = load_settings()

    async def body() -> list[HistoryEvent]:
        async with store_session(settings) as store:
            if await store.get_book(book) is None:
                raise UserError(f"no book '{book}'; see `bookops book list`")
            return await store.list_history(book, event=event, op=op, job=job, limit=limit)

    events = run(body)
    if as_json:
        print_json([e.model_dump(mode="json") for e in events])
        return
    table = Table(show_header=True)
    for col in ("at", "job", "op", "page", "event", "detail"):
        table.add_column(col)
    for e in events:
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
        table.add_row(e.at.strftime("%H:%M:%S.%f")[:-3], e.job or "-", e.op or "-",
                      str(e.page or ""), e.event, detail[:80])
    console.print(table)

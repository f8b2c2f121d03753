"""``bookops export``: a processed book as JSON or Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import UserError
from ..export import FORMATS, export_json, export_markdown
from ._common import load_settings, run, store_session


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    book: str = typer.Argument(..., help="book id"),
    fmt: str = typer.Option("json", "--format", "-f", help="json or markdown"),
    output: Path = typer.Option(None, "--output", "-o", help="write here instead of stdout"),
) -> None:
    """Export a book. JSON has the keys of the corpus ground truth, so score.py reads it."""
    if fmt not in FORMATS:
        raise UserError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    settings = load_settings()

    async def body() -> str:
        async with store_session(settings) as store:
            if fmt == "json":
                return json.dumps(await export_json(store, book), indent=2, ensure_ascii=False)
            return await export_markdown(store, book)

    text = run(body)
    if output is None:
        print(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None

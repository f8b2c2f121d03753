"""The ``bookops config`` command: the effective settings, secrets hidden."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import console, load_settings, print_json


def register(app: typer.Typer) -> None:
    app.command("config")(config_cmd)


def config_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the effective settings (environment, bookops.toml, defaults); secrets are hidden."""
    data = load_settings().redacted()
    if as_json:
        print_json(data)
        return
    table = Table("setting", "value")
    for key, value in rows(data):
        table.add_row(key, value)
    console.print(table)


def rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per setting; a per-provider mapping gets one row per provider, not one per field."""
    out: list[tuple[str, str]] = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            for sub, fields in sorted(value.items()):
                out.append((f"{key}.{sub}", " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())))
        else:
            out.append((key, _fmt(value)))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return " ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "-"
    return str(value)

"""Registers the command groups; each group lives in its own module."""

from __future__ import annotations

import importlib

import typer

# (module, attribute, group name or None for top-level commands)
_GROUPS = [
    ("book", "app", "book"),
    ("job", "app", "job"),
    ("config_cmd", "register", None),
    ("history", "register", None),
    ("export", "register", None),
    ("providers", "register", None),
    ("report", "register", None),
]


def register(app: typer.Typer) -> None:
    for mod_name, attr, group in _GROUPS:
        try:
            mod = importlib.import_module(f"bookops.cli.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bookops.cli.{mod_name}":
                continue
            raise
        obj = getattr(mod, attr)
        if group is None:
            obj(app)
        else:
            app.add_typer(obj, name=group, help=(mod.__doc__ or "").strip().splitlines()[0])

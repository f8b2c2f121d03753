"""Helpers shared by the CLI command modules: settings, store, output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import ValidationError
from rich.console import Console

from ..errors import ConfigError
from ..settings import Settings
from ..store import Store, open_store

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and bookops.toml; a bad value is a one-line ConfigError."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"setting {field}: {first.get('msg')}") from None


@asynccontextmanager
async def store_session(settings: Settings) -> AsyncIterator[Store]:
    store = await open_store(settings)
    try:
        yield store
    finally:
        await store.close()


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run one async CLI body to completion."""
    return asyncio.run(_call(fn))


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no rich markup), so it can be piped."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def parse_pages(spec: str | None) -> list[int] | None:
    """``"1-20,25"`` -> [1..20, 25]; None or empty -> None (all pages)."""
    from ..errors import UserError

    if not spec:
        return None
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if a < 1 or b < a:
                    raise ValueError
                out.update(range(a, b + 1))
            else:
                n = int(part)
                if n < 1:
                    raise ValueError
                out.add(n)
        except ValueError:
            raise UserError(f"--pages: '{spec}' is not a page list like 1-20 or 3,5,9-12") from None
    return sorted(out)


def split_csv(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]

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

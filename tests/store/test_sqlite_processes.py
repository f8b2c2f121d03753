"""The embedded store shared by several OS processes, killed, and locked."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sqlite3
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bookops.errors import StoreError
from bookops.store import Store
from bookops.store._sqlite import SqliteBackend

from . import _procs

ctx = multiprocessing.get_context("spawn")


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _open(path: Path, timeout_s: float = 5) -> Store:
    return await Store(SqliteBackend(path, timeout_s=timeout_s)).connect()


def _join_all(procs: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_two_processes_add_books_at_once_to_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "bookops.sqlite3"  # neither process finds a schema: both race to make it
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_procs.add_book, args=(path, book, 120, barrier)) for book in ("one", "two")]
    for p in procs:
        p.start()
    _join_all(procs)

    async def check() -> None:
        store = await _open(path)
        try:
            assert [b.id for b in await store.list_books()] == ["one", "two"]
            for book in ("one", "two"):
                assert [p.page_num for p in await store.list_pages(book)] == list(range(1, 121))
        finally:
            await store.close()

    run(check())


def test_concurrent_increments_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "bookops.sqlite3"
    run(_make(path))
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_procs.increment, args=(path, 150, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    _join_all(procs)

    async def check() -> None:
        store = await _open(path)
        try:
            assert await store.books.get("counter") == {"_id": "counter", "n": 300}
        finally:
            await store.close()

    run(check())


async def _make(path: Path) -> None:
    await (await _open(path)).close()


def test_killed_writer_loses_nothing_it_reported(tmp_path: Path) -> None:
    path = tmp_path / "bookops.sqlite3"
    run(_make(path))
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_procs.write_forever, args=(path, writer))
    proc.start()
    writer.close()  # the child's copy is the only writer left, so EOF follows its death
    reported: list[str] = []
    while len(reported) < 200:
        assert reader.poll(30), "the writer reported nothing"
        reported.extend(reader.recv())
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL
    while True:  # reports sent just before the kill
        try:
            reported.extend(reader.recv())
        except (EOFError, OSError):
            break

    async def check() -> None:
        store = await _open(path)
        try:
            stored = {d["_id"] for d in await store.books.find({})}
            assert set(reported) <= stored
            await store.books.put({"_id": "after", "ok": True})  # and the file still takes writes
            assert await store.books.get("after") == {"_id": "after", "ok": True}
        finally:
            await store.close()

    run(check())
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_locked_past_timeout_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "bookops.sqlite3"
    run(_make(path))
    locked, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_procs.hold_write_lock, args=(path, locked, release))
    holder.start()
    try:
        assert locked.wait(30)

        async def attempt() -> StoreError:
            store = await _open(path, timeout_s=0.2)  # opening an existing file needs no write lock
            try:
                assert await store.books.get("holder") is None, "readers see the last commit meanwhile"
                started = time.monotonic()
                with pytest.raises(StoreError) as info:
                    await store.books.put({"_id": "mine"})
                assert time.monotonic() - started < 5
                return info.value
            finally:
                await store.close()

        err = run(attempt())
        assert str(path) in err.message and "locked" in err.message
        assert "\n" not in err.message
        assert isinstance(err.__cause__, sqlite3.OperationalError)
    finally:
        release.set()
        holder.join(timeout=30)
    assert holder.exitcode == 0

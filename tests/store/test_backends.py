"""What is particular to each backend: opening, error messages, settings."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from bookops.errors import StoreError
from bookops.settings import Settings
from bookops.store import make_backend
from bookops.store._mongo import MongoBackend
from bookops.store._sqlite import SqliteBackend


def test_settings_choose_the_backend(tmp_path: Path) -> None:
    embedded = make_backend(Settings(home=tmp_path))
    assert isinstance(embedded, SqliteBackend) and embedded.path == tmp_path / "bookops.sqlite3"
    mongo = make_backend(Settings(home=tmp_path, mongo_uri=SecretStr("mongodb://127.0.0.1:1/"), db="x"))
    assert isinstance(mongo, MongoBackend) and mongo.kind == "mongo" and mongo.db.name == "x"


async def test_unreachable_mongo_is_one_redacted_line(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, mongo_uri=SecretStr("mongodb://reader:s3cret@127.0.0.1:1/"),
                        store_timeout_s=0.2)
    backend = MongoBackend.from_settings(settings)
    try:
        with pytest.raises(StoreError) as info:
            await backend.connect()
    finally:
        await backend.close()
    msg = info.value.message
    assert "s3cret" not in msg and "reader" not in msg and "\n" not in msg
    assert msg.startswith("cannot reach MongoDB at mongodb://***@127.0.0.1:1/")


@pytest.mark.parametrize("uri", ["mongodb://u:pw@host:notaport/", "http://u:pw@host/"])
def test_bad_mongo_uri_is_a_store_error(tmp_path: Path, uri: str) -> None:
    with pytest.raises(StoreError) as info:
        MongoBackend.from_settings(Settings(home=tmp_path, mongo_uri=SecretStr(uri)))
    assert "pw" not in info.value.message and "\n" not in info.value.message


async def test_sqlite_makes_parent_dirs_and_reopens_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.sqlite3"
    backend = SqliteBackend(path, timeout_s=1)
    await backend.connect()
    await backend.collection("books").put({"_id": "x"})
    await backend.close()
    mtime = path.stat().st_mtime_ns
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    started = time.monotonic()
    again = SqliteBackend(path, timeout_s=1)
    await again.connect()
    assert time.monotonic() - started < 1
    assert await again.collection("books").get("x") == {"_id": "x"}
    await again.close()
    assert path.stat().st_mtime_ns == mtime, "an existing schema is not rewritten on open"


async def test_sqlite_use_before_connect_and_bad_input(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "s.sqlite3", timeout_s=1)
    books = backend.collection("books")
    with pytest.raises(StoreError, match="not connected"):
        await books.get("x")
    with pytest.raises(ValueError):
        backend.collection("nope")
    await backend.connect()
    try:
        with pytest.raises(StoreError):
            await books.find({"a": {"$regex": "x"}})
        with pytest.raises(StoreError):
            await books.put({"_id": 3})
        with pytest.raises(StoreError):
            await books.patch({"_id": "x"}, {"$set": {"a": 1}, "$inc": {"a": 1}})
        with pytest.raises(StoreError):
            await books.patch({"_id": "x"}, {"$set": {"_id": "y"}})
        # Keys that need quoting in a JSON path (provider names) work in filters and indexes.
        await books.put({"_id": "q", "ocr": {"openai:gpt-4o-mini": {"done": True}, "it's": 1}})
        assert await books.count({"ocr.openai:gpt-4o-mini.done": True}) == 1
        assert await books.count({"ocr.it's": 1}) == 1
    finally:
        await backend.close()
    with pytest.raises(StoreError):
        await books.get("q")

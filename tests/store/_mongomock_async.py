"""A thin async face over mongomock: exactly the methods ``MongoBackend`` calls, awaitable.

Documents are deep-copied on the way in and out, as a real server's serialisation would, so a
caller mutating a dict after writing it cannot change what is "stored".
"""

from __future__ import annotations

import copy
from typing import Any

import mongomock
from pymongo.errors import WriteError


def _refused(exc: TypeError) -> WriteError:
    # mongomock lets Python's TypeError escape (e.g. $inc on a string) where a server refuses the write.
    return WriteError(f"update refused: {exc}", code=14)


class AsyncMockCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self._docs = docs

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        return self._docs if length is None else self._docs[:length]


class AsyncMockCollection:
    def __init__(self, coll: mongomock.Collection) -> None:
        self._coll = coll

    def find(self, filter: dict[str, Any], *, sort: list[tuple[str, int]] | None = None,
             limit: int = 0) -> AsyncMockCursor:
        cursor = self._coll.find(copy.deepcopy(filter), sort=sort, limit=limit)
        return AsyncMockCursor([copy.deepcopy(d) for d in cursor])

    async def find_one(self, filter: dict[str, Any]) -> dict[str, Any] | None:
        return copy.deepcopy(self._coll.find_one(copy.deepcopy(filter)))

    async def count_documents(self, filter: dict[str, Any]) -> int:
        return int(self._coll.count_documents(copy.deepcopy(filter)))

    async def replace_one(self, filter: dict[str, Any], doc: dict[str, Any], *, upsert: bool = False) -> Any:
        return self._coll.replace_one(copy.deepcopy(filter), copy.deepcopy(doc), upsert=upsert)

    async def insert_many(self, docs: list[dict[str, Any]], *, ordered: bool = True) -> Any:
        return self._coll.insert_many(copy.deepcopy(docs), ordered=ordered)

    async def update_one(self, filter: dict[str, Any], update: dict[str, Any], *,
                         upsert: bool = False) -> Any:
        try:
            return self._coll.update_one(copy.deepcopy(filter), copy.deepcopy(update), upsert=upsert)
        except TypeError as exc:
            raise _refused(exc) from exc

    async def update_many(self, filter: dict[str, Any], update: dict[str, Any]) -> Any:
        try:
            return self._coll.update_many(copy.deepcopy(filter), copy.deepcopy(update))
        except TypeError as exc:
            raise _refused(exc) from exc

    async def delete_many(self, filter: dict[str, Any]) -> Any:
        return self._coll.delete_many(copy.deepcopy(filter))

    async def find_one_and_update(self, filter: dict[str, Any], update: dict[str, Any], *,
                                  upsert: bool = False, return_document: Any = None) -> dict[str, Any] | None:
        try:
            found = self._coll.find_one_and_update(copy.deepcopy(filter), copy.deepcopy(update),
                                                   upsert=upsert, return_document=return_document)
        except TypeError as exc:
            raise _refused(exc) from exc
        return copy.deepcopy(found)

    async def create_index(self, keys: list[tuple[str, int]], *, unique: bool = False) -> str:
        return str(self._coll.create_index(keys, unique=unique))


class AsyncMockDatabase:
    """Stands in for ``pymongo.asynchronous.database.AsyncDatabase``."""

    def __init__(self, name: str = "bookops_test") -> None:
        self._db: Any = mongomock.MongoClient()[name]
        self.name = name

    def __getitem__(self, name: str) -> AsyncMockCollection:
        return AsyncMockCollection(self._db[name])

    async def command(self, command: str) -> dict[str, Any]:
        return dict(self._db.command(command))

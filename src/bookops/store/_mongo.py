"""The MongoDB store, through PyMongo's native async client.

Only collection methods that both a real server and the mongomock test adapter support are used
(no ``bulk_write``), and every PyMongo error becomes a one-line ``StoreError`` in one function,
with credentials cut out of the URI.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from ..errors import StoreError
from ..settings import Settings, redact_uri
from ._backend import COLLECTIONS, INDEXES, Backend, Collection, Doc, Filter, Sort, Update

__all__ = ["MongoBackend"]

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000
_CREDENTIALS = re.compile(r"([a-zA-Z][\w+.-]*://)[^@/\s]+@")


def _one_line(text: str, limit: int = 240) -> str:
    # Server selection errors append a multi-line topology dump; the first clause says enough.
    line = text.split(", Timeout:")[0].split("Topology Description:")[0].splitlines()[0].strip()
    line = _CREDENTIALS.sub(r"\1***@", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def store_error(exc: BaseException, *, where: str, what: str) -> StoreError:
    """The one place PyMongo errors are turned into ``StoreError``; ``where`` is a redacted URI."""
    detail = _one_line(str(exc) or type(exc).__name__)
    if isinstance(exc, ServerSelectionTimeoutError):
        return StoreError(f"cannot reach MongoDB at {where} ({what}): {detail}")
    if isinstance(exc, (ConfigurationError, ValueError)):
        return StoreError(f"bad MongoDB URI {where}: {detail}")
    if isinstance(exc, DuplicateKeyError):
        return StoreError(f"MongoDB at {where} refused {what}: duplicate key ({detail})")
    if isinstance(exc, ConnectionFailure):
        return StoreError(f"lost the connection to MongoDB at {where} ({what}): {detail}")
    if isinstance(exc, OperationFailure):
        return StoreError(f"MongoDB at {where} refused {what}: {detail}")
    return StoreError(f"MongoDB at {where}: {what} failed: {detail}")


class MongoCollection(Collection):
    def __init__(self, backend: MongoBackend, name: str) -> None:
        self.name = name
        self._backend = backend
        self._coll: AsyncCollection[Doc] = backend.db[name]

    @contextmanager
    def _errors(self, op: str) -> Iterator[None]:
        try:
            yield
        except PyMongoError as exc:
            raise store_error(exc, where=self._backend.where, what=f"{self.name}.{op}") from exc

    async def get(self, id: str) -> Doc | None:
        with self._errors("get"):
            return await self._coll.find_one({"_id": id})

    async def find(self, filter: Filter | None = None, *, sort: Sort | None = None,
                   limit: int | None = None) -> list[Doc]:
        with self._errors("find"):
            cursor = self._coll.find(filter or {}, sort=sort or None, limit=limit or 0)
            return await cursor.to_list(None)

    async def count(self, filter: Filter | None = None) -> int:
        with self._errors("count"):
            return await self._coll.count_documents(filter or {})

    async def put(self, doc: Doc) -> None:
        with self._errors("put"):
            await self._coll.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def insert_many(self, docs: list[Doc], *, ignore_existing: bool = True) -> int:
        if not docs:
            return 0
        try:
            # Copies: the driver adds fields to the dicts it is given.
            result = await self._coll.insert_many([dict(d) for d in docs], ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise store_error(exc, where=self._backend.where, what=f"{self.name}.insert_many") from exc
            inserted = int(exc.details.get("nInserted", len(docs) - len(errors)))
            if not ignore_existing:
                raise StoreError(f"{self.name}: {len(docs) - inserted} of {len(docs)} documents "
                                 "already exist") from exc
            return inserted
        except PyMongoError as exc:
            raise store_error(exc, where=self._backend.where, what=f"{self.name}.insert_many") from exc

    async def patch(self, filter: Filter, update: Update, *, upsert: bool = False) -> bool:
        with self._errors("patch"):
            result = await self._coll.update_one(filter, _with_id(filter, update, upsert), upsert=upsert)
            return result.matched_count > 0 or result.upserted_id is not None

    async def patch_many(self, filter: Filter, update: Update) -> int:
        with self._errors("patch_many"):
            return (await self._coll.update_many(filter, update)).matched_count

    async def delete(self, filter: Filter) -> int:
        with self._errors("delete"):
            return (await self._coll.delete_many(filter)).deleted_count

    async def claim(self, filter: Filter, update: Update, *, upsert: bool = False) -> Doc | None:
        with self._errors("claim"):
            try:
                return await self._coll.find_one_and_update(
                    filter, _with_id(filter, update, upsert), upsert=upsert,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                if not upsert:
                    raise
                # The _id exists but did not match the filter: someone else holds it.
                return None


def _with_id(filter: Filter, update: Update, upsert: bool) -> Update:
    """Give an upserted document a string ``_id`` when the filter names none (not an ObjectId)."""
    if not upsert or isinstance(filter.get("_id"), str):
        return update
    out = dict(update)
    out["$setOnInsert"] = {"_id": uuid.uuid4().hex, **update.get("$setOnInsert", {})}
    return out


class MongoBackend(Backend):
    """MongoDB over ``pymongo.AsyncMongoClient``, or over any database object shaped like one."""

    kind = "mongo"

    def __init__(self, db: AsyncDatabase[Doc], *, client: AsyncMongoClient[Doc] | None = None,
                 where: str | None = None) -> None:
        """``client`` is closed by ``close()`` when given; ``where`` names the server in messages."""
        self.db = db
        self._client = client
        self.where = where or f"database {db.name!r}"
        self._collections: dict[str, MongoCollection] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> MongoBackend:
        if settings.mongo_uri is None:
            raise StoreError("no MongoDB URI configured (set BOOKOPS_MONGO_URI)")
        uri = settings.mongo_uri.get_secret_value()
        where = redact_uri(uri)
        timeout_ms = max(1, int(settings.store_timeout_s * 1000))
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(
                uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
            )
        except (PyMongoError, ValueError) as exc:
            raise store_error(exc, where=where, what="connect") from exc
        return cls(client[settings.db], client=client, where=f"{where} (db {settings.db!r})")

    async def connect(self) -> None:
        try:
            await self.db.command("ping")
            for name in COLLECTIONS:
                for fields, unique in INDEXES[name]:
                    await self.db[name].create_index([(f, 1) for f in fields], unique=unique)
        except PyMongoError as exc:
            raise store_error(exc, where=self.where, what="connect") from exc
        log.debug("connected to MongoDB at %s", self.where)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def collection(self, name: str) -> Collection:
        if name not in COLLECTIONS:
            raise ValueError(f"unknown collection {name!r}")
        if name not in self._collections:
            self._collections[name] = MongoCollection(self, name)
        return self._collections[name]

"""The document-collection layer every store backend implements.

Filters are MongoDB-shaped and limited to what both backends support:
equality on (dotted) paths, ``{"$in": [...]}``, ``{"$nin": [...]}``, ``{"$exists": bool}``,
``{"$ne": v}``, ``{"$lt"|"$lte"|"$gt"|"$gte": v}`` and a top-level ``{"$or": [filter, ...]}``.
Updates use ``$set``, ``$unset``, ``$inc`` and ``$setOnInsert`` on dotted paths.
Documents are JSON-compatible dicts with a string ``_id``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

Doc = dict[str, Any]
Filter = dict[str, Any]
Update = dict[str, Any]
Sort = list[tuple[str, int]]

# name -> (fields, unique). Created at connect time by every backend.
INDEXES: dict[str, list[tuple[list[str], bool]]] = {
    "books": [],
    "pages": [(["book", "page_num"], True)],
    "ocr_results": [(["book", "page_num", "provider"], True)],
    "tocs": [(["book"], True)],
    "jobs": [(["book", "status"], False)],
    "leases": [],
    "history": [(["book", "at"], False)],
    "calls": [(["request_hash"], False), (["book"], False)],
}
COLLECTIONS = tuple(INDEXES)


class Collection(ABC):
    """One collection of JSON documents."""

    name: str

    @abstractmethod
    async def get(self, id: str) -> Doc | None: ...

    @abstractmethod
    async def find(self, filter: Filter | None = None, *, sort: Sort | None = None,
                   limit: int | None = None) -> list[Doc]: ...

    @abstractmethod
    async def count(self, filter: Filter | None = None) -> int: ...

    @abstractmethod
    async def put(self, doc: Doc) -> None:
        """Insert or replace the document with this ``_id``."""

    @abstractmethod
    async def insert_many(self, docs: list[Doc], *, ignore_existing: bool = True) -> int:
        """Insert documents whose ``_id`` is new; returns how many were inserted.

        With ``ignore_existing=False`` an existing ``_id`` raises ``StoreError``.
        """

    @abstractmethod
    async def patch(self, filter: Filter, update: Update, *, upsert: bool = False) -> bool:
        """Update the first matching document; True when one matched or was inserted."""

    @abstractmethod
    async def patch_many(self, filter: Filter, update: Update) -> int: ...

    @abstractmethod
    async def delete(self, filter: Filter) -> int: ...

    @abstractmethod
    async def claim(self, filter: Filter, update: Update, *, upsert: bool = False) -> Doc | None:
        """Atomically update the one matching document and return it as updated.

        With ``upsert`` and no match, insert ``{_id from filter} + update``; if a document with
        that ``_id`` exists but did not match, return None (someone else holds it).
        """


class Backend(ABC):
    """A database holding the collections in ``COLLECTIONS``."""

    kind: str

    @abstractmethod
    async def connect(self) -> None:
        """Open the database and create the indexes; raises StoreError when unreachable."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def collection(self, name: str) -> Collection: ...

"""The store: one async repository over MongoDB or the embedded SQLite file."""

from __future__ import annotations

from ..settings import Settings
from ._backend import COLLECTIONS, INDEXES, Backend, Collection
from .store import Store

__all__ = ["COLLECTIONS", "INDEXES", "Backend", "Collection", "Store", "open_store"]


def make_backend(settings: Settings) -> Backend:
    """The backend the settings ask for: MongoDB when a URI is set, else the embedded SQLite file."""
    if settings.mongo_uri is not None:
        from ._mongo import MongoBackend

        return MongoBackend.from_settings(settings)
    from ._sqlite import SqliteBackend

    return SqliteBackend(settings.sqlite_path, timeout_s=settings.store_timeout_s)


async def open_store(settings: Settings) -> Store:
    """Connect to the configured store (creating indexes) and return it."""
    return await Store(make_backend(settings)).connect()

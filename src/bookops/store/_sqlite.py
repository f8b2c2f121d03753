"""The embedded store: one SQLite file, one table of JSON documents per collection.

Several processes may share the file: WAL lets readers run beside one writer, and every write
is its own ``BEGIN IMMEDIATE`` transaction, so read-modify-write updates never lose a concurrent
update and a process killed mid-way leaves only whole transactions behind. sqlite3 connections
are bound to their thread, so each backend owns one worker thread and one connection.

Filters become SQL over ``json_extract`` (so the expression indexes serve them) with MongoDB's
meaning for types: ``true`` is not ``1``, ``"1"`` is not ``1``, ``None`` matches null or missing.
Equality compares whole values; unlike MongoDB it does not look inside arrays.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from ._backend import COLLECTIONS, INDEXES, Backend, Collection, Doc, Filter, Sort, Update
from ._match import apply_update, upsert_seed, validate_update

__all__ = ["SqliteBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Bumped whenever the DDL below changes; the INDEXES table is folded in, so a new index is
# created on the next connect while an unchanged file opens without taking the write lock.
_SCHEMA_VERSION = zlib.crc32(repr(("v1", sorted(INDEXES.items()))).encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------------------------- filters
def _jpath(path: str) -> str:
    """A SQL string literal holding the JSON path of a dotted field (keys quoted)."""
    parts = path.split(".")
    if any(not p or '"' in p for p in parts):
        raise StoreError(f"unsupported field path {path!r}")
    lit = "$" + "".join(f'."{p}"' for p in parts)
    return "'" + lit.replace("'", "''") + "'"


class _Field:
    """SQL expressions for one field: its JSON type (``type``) and its SQL value (``value``)."""

    def __init__(self, path: str) -> None:
        self.is_id = path == "_id"
        if self.is_id:
            self.type, self.value = "'text'", "id"
        else:
            lit = _jpath(path)
            self.type, self.value = f"json_type(doc, {lit})", f"json_extract(doc, {lit})"


def _eq(f: _Field, v: Any, params: list[Any]) -> str:
    if v is None:
        return "0" if f.is_id else f"{f.value} IS NULL"
    if isinstance(v, bool):
        return "0" if f.is_id else f"{f.type} = '{'true' if v else 'false'}'"
    if isinstance(v, (int, float)):
        if f.is_id:
            return "0"
        params.append(v)
        return f"({f.value} = ? AND {f.type} IN ('integer', 'real'))"
    if isinstance(v, str):
        params.append(v)
        return f"{f.value} = ?" if f.is_id else f"({f.value} = ? AND {f.type} = 'text')"
    if isinstance(v, (dict, list)):
        if f.is_id:
            return "0"
        params.append(json.dumps(v, separators=(",", ":"), ensure_ascii=False))
        kind = "object" if isinstance(v, dict) else "array"
        return f"({f.type} = '{kind}' AND {f.value} = json(?))"
    raise StoreError(f"unsupported value in filter: {v!r}")


def _in(f: _Field, values: Any, params: list[Any]) -> str:
    if not isinstance(values, (list, tuple)):
        raise StoreError("$in and $nin need a list")
    strs: list[str] = []
    nums: list[int | float] = []
    rest: list[Any] = []
    for v in values:
        if isinstance(v, str):
            strs.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            nums.append(v)
        else:
            rest.append(v)
    terms: list[str] = []
    # Grouped into one IN per type so an expression index serves the whole list.
    if strs:
        params.extend(strs)
        marks = ", ".join("?" * len(strs))
        by_type = "" if f.is_id else f" AND {f.type} = 'text'"
        terms.append(f"({f.value} IN ({marks}){by_type})")
    if nums and not f.is_id:
        params.extend(nums)
        terms.append(f"({f.value} IN ({', '.join('?' * len(nums))}) AND {f.type} IN ('integer', 'real'))")
    terms.extend(_eq(f, v, params) for v in rest)
    return "(" + " OR ".join(terms) + ")" if terms else "0"


def _cmp(f: _Field, op: str, v: Any, params: list[Any]) -> str:
    sql_op = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}[op]
    if isinstance(v, str):
        params.append(v)
        return f"{f.value} {sql_op} ?" if f.is_id else f"({f.value} {sql_op} ? AND {f.type} = 'text')"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if f.is_id:
            return "0"
        params.append(v)
        return f"({f.value} {sql_op} ? AND {f.type} IN ('integer', 'real'))"
    raise StoreError(f"{op} compares numbers or strings, not {v!r}")


def _not(sql: str) -> str:
    # A missing field makes the inner test NULL; MongoDB counts that as "not equal".
    return f"NOT IFNULL({sql}, 0)"


def _condition(path: str, cond: Any, params: list[Any]) -> str:
    f = _Field(path)
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return _eq(f, cond, params)
    terms: list[str] = []
    for op, v in cond.items():
        if op == "$eq":
            terms.append(_eq(f, v, params))
        elif op == "$ne":
            terms.append(_not(_eq(f, v, params)))
        elif op == "$in":
            terms.append(_in(f, v, params))
        elif op == "$nin":
            terms.append(_not(_in(f, v, params)))
        elif op == "$exists":
            terms.append(("1" if v else "0") if f.is_id else f"{f.type} IS {'NOT ' if v else ''}NULL")
        elif op in ("$lt", "$lte", "$gt", "$gte"):
            terms.append(_cmp(f, op, v, params))
        else:
            raise StoreError(f"unsupported filter operator {op!r}")
    return " AND ".join(terms)


def compile_filter(flt: Filter | None, params: list[Any]) -> str:
    """A SQL boolean expression for ``flt``; its parameters are appended to ``params``."""
    if not flt:
        return "1"
    terms: list[str] = []
    for key, cond in flt.items():
        if key in ("$or", "$and"):
            if not isinstance(cond, list) or not cond:
                raise StoreError(f"{key} needs a non-empty list of filters")
            joiner = " OR " if key == "$or" else " AND "
            terms.append("(" + joiner.join(f"({compile_filter(c, params)})" for c in cond) + ")")
        elif key.startswith("$"):
            raise StoreError(f"unsupported filter operator {key!r}")
        else:
            terms.append(_condition(key, cond, params))
    return " AND ".join(terms)


_TYPE_RANK = ("CASE {t} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'object' THEN 3 "
              "WHEN 'array' THEN 4 WHEN 'false' THEN 5 WHEN 'true' THEN 5 ELSE 0 END")


def compile_sort(sort: Sort | None) -> str:
    """ORDER BY terms in MongoDB's order: null/missing, numbers, strings, objects, arrays, booleans."""
    if not sort:
        return ""
    terms: list[str] = []
    for path, direction in sort:
        d = "DESC" if direction < 0 else "ASC"
        f = _Field(path)
        if not f.is_id:
            terms.append(f"{_TYPE_RANK.format(t=f.type)} {d}")
        terms.append(f"{f.value} {d}")
    return " ORDER BY " + ", ".join(terms)


# ---------------------------------------------------------------------------------- documents
def _dumps(doc: Doc) -> str:
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"document {doc.get('_id')!r} is not plain JSON: {exc}") from exc


def _doc_id(doc: Doc) -> str:
    doc_id = doc.get("_id")
    if not isinstance(doc_id, str):
        raise StoreError(f"document _id must be a string, got {doc_id!r}")
    return doc_id


def _is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock (the primary result code, extended codes included)."""
    code = getattr(exc, "sqlite_errorcode", None) or 0
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; IMMEDIATE takes the write lock up front so the busy timeout applies."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SqliteCollection(Collection):
    """One table ``(id TEXT PRIMARY KEY, doc TEXT)``; all SQL runs on the backend's thread."""

    def __init__(self, backend: SqliteBackend, name: str) -> None:
        self.name = name
        self._backend = backend
        self._table = f'"{name}"'

    def _conn(self) -> sqlite3.Connection:
        return self._backend._connection()

    async def get(self, id: str) -> Doc | None:
        return await self._backend._run(f"{self.name}.get", self._get, id)

    def _get(self, id: str) -> Doc | None:
        row = self._conn().execute(f"SELECT doc FROM {self._table} WHERE id = ?", (id,)).fetchone()
        return json.loads(row[0]) if row else None

    async def find(self, filter: Filter | None = None, *, sort: Sort | None = None,
                   limit: int | None = None) -> list[Doc]:
        return await self._backend._run(f"{self.name}.find", self._find, filter, sort, limit)

    def _find(self, flt: Filter | None, sort: Sort | None, limit: int | None) -> list[Doc]:
        params: list[Any] = []
        sql = f"SELECT doc FROM {self._table} WHERE {compile_filter(flt, params)}{compile_sort(sort)}"
        if limit:  # 0 means no limit, as on MongoDB
            sql += " LIMIT ?"
            params.append(limit)
        return [json.loads(r[0]) for r in self._conn().execute(sql, params)]

    async def count(self, filter: Filter | None = None) -> int:
        return await self._backend._run(f"{self.name}.count", self._count, filter)

    def _count(self, flt: Filter | None) -> int:
        params: list[Any] = []
        sql = f"SELECT count(*) FROM {self._table} WHERE {compile_filter(flt, params)}"
        return int(self._conn().execute(sql, params).fetchone()[0])

    async def put(self, doc: Doc) -> None:
        await self._backend._run(f"{self.name}.put", self._put, _doc_id(doc), _dumps(doc))

    def _put(self, doc_id: str, text: str) -> None:
        conn = self._conn()
        with _write(conn):
            conn.execute(f"INSERT INTO {self._table} (id, doc) VALUES (?, ?) "
                         "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc", (doc_id, text))

    async def insert_many(self, docs: list[Doc], *, ignore_existing: bool = True) -> int:
        rows = [(_doc_id(d), _dumps(d)) for d in docs]
        if not rows:
            return 0
        inserted = await self._backend._run(f"{self.name}.insert_many", self._insert_many, rows)
        if inserted < len(rows) and not ignore_existing:
            # The new documents stay, as with MongoDB's unordered insert.
            raise StoreError(f"{self.name}: {len(rows) - inserted} of {len(rows)} documents already exist")
        return inserted

    def _insert_many(self, rows: list[tuple[str, str]]) -> int:
        conn = self._conn()
        before = conn.total_changes
        with _write(conn):
            conn.executemany(f"INSERT OR IGNORE INTO {self._table} (id, doc) VALUES (?, ?)", rows)
        return conn.total_changes - before

    async def patch(self, filter: Filter, update: Update, *, upsert: bool = False) -> bool:
        validate_update(update)
        doc = await self._backend._run(f"{self.name}.patch", self._modify, filter, update, upsert, False)
        return doc is not None

    async def claim(self, filter: Filter, update: Update, *, upsert: bool = False) -> Doc | None:
        validate_update(update)
        return await self._backend._run(f"{self.name}.claim", self._modify, filter, update, upsert, True)

    def _modify(self, flt: Filter, update: Update, upsert: bool, claiming: bool) -> Doc | None:
        """Update the first match, or insert when upserting; the new document, or None."""
        conn = self._conn()
        params: list[Any] = []
        where = compile_filter(flt, params)
        with _write(conn):
            row = conn.execute(f"SELECT id, doc FROM {self._table} WHERE {where} LIMIT 1", params).fetchone()
            if row is not None:
                new = apply_update(json.loads(row[1]), update)
                conn.execute(f"UPDATE {self._table} SET doc = ? WHERE id = ?", (_dumps(new), row[0]))
                return new
            if not upsert:
                return None
            new = apply_update(upsert_seed(flt), update, inserting=True)
            try:
                conn.execute(f"INSERT INTO {self._table} (id, doc) VALUES (?, ?)",
                             (_doc_id(new), _dumps(new)))
            except sqlite3.IntegrityError:
                if claiming:  # held by someone else: the document exists but did not match
                    return None
                raise
            return new

    async def patch_many(self, filter: Filter, update: Update) -> int:
        validate_update(update)
        return await self._backend._run(f"{self.name}.patch_many", self._patch_many, filter, update)

    def _patch_many(self, flt: Filter, update: Update) -> int:
        conn = self._conn()
        params: list[Any] = []
        where = compile_filter(flt, params)
        with _write(conn):
            rows = conn.execute(f"SELECT id, doc FROM {self._table} WHERE {where}", params).fetchall()
            conn.executemany(f"UPDATE {self._table} SET doc = ? WHERE id = ?",
                             [(_dumps(apply_update(json.loads(d), update)), i) for i, d in rows])
        return len(rows)

    async def delete(self, filter: Filter) -> int:
        return await self._backend._run(f"{self.name}.delete", self._delete, filter)

    def _delete(self, flt: Filter) -> int:
        conn = self._conn()
        params: list[Any] = []
        where = compile_filter(flt, params)
        with _write(conn):
            return conn.execute(f"DELETE FROM {self._table} WHERE {where}", params).rowcount


class SqliteBackend(Backend):
    """The embedded default: one SQLite file holding every collection."""

    kind = "sqlite"

    def __init__(self, path: Path, *, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used only on the executor's thread
        self._collections: dict[str, SqliteCollection] = {}

    def __repr__(self) -> str:
        return f"SqliteBackend({str(self.path)!r})"

    async def connect(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookops-sqlite")
        try:
            await self._run("connect", self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_conn)
        finally:
            executor.shutdown(wait=True)

    def collection(self, name: str) -> Collection:
        if name not in COLLECTIONS:
            raise ValueError(f"unknown collection {name!r}")
        if name not in self._collections:
            self._collections[name] = SqliteCollection(self, name)
        return self._collections[name]

    # ------------------------------------------------------------------ worker thread
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None)
        try:
            self._ensure_wal(conn)
            # NORMAL in WAL mode survives a killed process; only a power cut may lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        log.debug("opened store %s", self.path)

    def _ensure_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new file to WAL, waiting out other processes doing the same.

        The switch needs the file to itself and SQLite answers "busy" at once instead of
        calling the busy handler, so two commands opening a fresh file together would fail.
        """
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    return
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode == "wal":
                    return
                raise StoreError(f"store {self.path} cannot use WAL journaling (it stays {mode!r})")
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        with _write(conn):
            for name in COLLECTIONS:
                conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (id TEXT PRIMARY KEY, doc TEXT NOT NULL)')
                for fields, unique in INDEXES[name]:
                    cols = ", ".join(f"json_extract(doc, {_jpath(f)})" for f in fields)
                    conn.execute(f'CREATE {"UNIQUE " if unique else ""}INDEX IF NOT EXISTS '
                                 f'"ix_{name}_{"_".join(fields)}" ON "{name}" ({cols})')
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is not open")
        return self._conn

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError(f"store {self.path} is not connected (await store.connect() first)")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except (sqlite3.Error, OSError) as exc:
            raise self._store_error(what, exc) from exc

    def _store_error(self, what: str, exc: sqlite3.Error | OSError) -> StoreError:
        """Every sqlite3 and file error becomes one line naming the file and the operation."""
        if _is_busy(exc):
            return StoreError(f"store {self.path} stayed locked by another process for "
                              f"{self.timeout_s:g} s ({what}); try again when it is free")
        if isinstance(exc, sqlite3.IntegrityError):
            return StoreError(f"store {self.path}: {what} refused, duplicate key ({exc})")
        return StoreError(f"store {self.path}: {what} failed: {exc}")

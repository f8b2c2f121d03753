"""Update documents applied in Python, with MongoDB's meaning, for backends without a native one.

The embedded backend reads the matching rows inside a write transaction, applies the update here
and writes them back, so every operator behaves the same as on MongoDB:
``$set``, ``$unset``, ``$inc`` and ``$setOnInsert`` on dotted paths, creating intermediate objects.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from ..errors import StoreError
from ._backend import Doc, Filter, Update

__all__ = ["apply_update", "upsert_seed", "validate_update"]

_OPERATORS = frozenset({"$set", "$unset", "$inc", "$setOnInsert"})


def validate_update(update: Update) -> None:
    """Refuse what MongoDB would refuse, before touching any document."""
    if not update:
        raise StoreError("empty update document")
    seen: set[str] = set()
    for op, fields in update.items():
        if op not in _OPERATORS:
            raise StoreError(f"unsupported update operator {op!r}")
        if not isinstance(fields, dict):
            raise StoreError(f"{op} needs a document of fields")
        for path in fields:
            if path == "_id" and op != "$setOnInsert":
                raise StoreError("_id cannot be changed by an update")
            for other in seen:
                # MongoDB rejects two operators on one path, or on a path and its parent.
                if path == other or path.startswith(other + ".") or other.startswith(path + "."):
                    raise StoreError(f"update conflict at {path!r}")
            seen.add(path)
            if op == "$inc" and not _is_number(fields[path]):
                raise StoreError(f"$inc of {path!r} needs a number")


def apply_update(doc: Doc, update: Update, *, inserting: bool = False) -> Doc:
    """A copy of ``doc`` with ``update`` applied; ``$setOnInsert`` only counts when inserting."""
    validate_update(update)
    out = copy.deepcopy(doc)
    for path, value in update.get("$set", {}).items():
        _set(out, path, copy.deepcopy(value))
    if inserting:
        for path, value in update.get("$setOnInsert", {}).items():
            _set(out, path, copy.deepcopy(value))
    for path, amount in update.get("$inc", {}).items():
        parent, key = _parent(out, path, create=True)
        current = parent.get(key, 0)
        if not _is_number(current):
            raise StoreError(f"cannot $inc {path!r}: it holds a non-number")
        parent[key] = current + amount
    for path in update.get("$unset", {}):
        try:
            parent, key = _parent(out, path, create=False)
        except KeyError:
            continue
        parent.pop(key, None)
    return out


def upsert_seed(filter: Filter) -> Doc:
    """The document an upsert starts from: the filter's plain equality conditions.

    Operator conditions and ``$or`` contribute nothing, as on MongoDB; without an ``_id``
    equality a random one is made, so ids stay strings on every backend.
    """
    seed: Doc = {}
    for path, cond in filter.items():
        if path.startswith("$"):
            continue
        if isinstance(cond, dict) and any(k.startswith("$") for k in cond):
            continue
        _set(seed, path, copy.deepcopy(cond))
    seed.setdefault("_id", uuid.uuid4().hex)
    return seed


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _parent(doc: Doc, path: str, *, create: bool) -> tuple[dict[str, Any], str]:
    """The object holding the last part of ``path``; missing objects are made when ``create``."""
    parts = path.split(".")
    node: Any = doc
    for part in parts[:-1]:
        if part not in node:
            if not create:
                raise KeyError(path)
            node[part] = {}
        nxt = node[part]
        if not isinstance(nxt, dict):
            if not create:
                raise KeyError(path)
            raise StoreError(f"cannot update {path!r}: {part!r} is not an object")
        node = nxt
    return node, parts[-1]


def _set(doc: Doc, path: str, value: Any) -> None:
    parent, key = _parent(doc, path, create=True)
    parent[key] = value

"""Shared base for stored models: ``id`` maps to the document's ``_id``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


def utcnow() -> datetime:
    return datetime.now(UTC)


class StoredModel(BaseModel):
    """A model kept as one document; ``to_doc``/``from_doc`` convert at the store boundary."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str

    def to_doc(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json")
        doc["_id"] = doc.pop("id")
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        data = dict(doc)
        if "_id" in data:
            data["id"] = data.pop("_id")
        return cls.model_validate(data)

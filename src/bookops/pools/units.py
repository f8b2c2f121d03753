"""Work units and their results: what the pools run and what operations receive back."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ErrorKind

# Book-level units go before page units; among page units, lower pages first.
PRIORITY_BOOK = 0
PRIORITY_PAGE = 10


class WorkUnit(BaseModel):
    """A small description of one piece of work: ids and paths, never pixels."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="deterministic: op, book, page and provider")
    op: str
    provider: str
    book: str
    page: int | None = None
    priority: int = PRIORITY_PAGE
    payload: dict[str, Any] = Field(default_factory=dict)
    attempt: int = 0

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.priority, self.page or 0)


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    model: str | None = None
    cached: bool = False


class Done(NamedTuple):
    """What a unit's execute function may return to report usage along with the value."""

    value: Any
    usage: Usage


class UnitError(BaseModel):
    kind: ErrorKind
    message: str


class WorkResult(BaseModel):
    """The outcome of a unit after the pool's retries."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    unit: WorkUnit
    ok: bool
    value: Any = None
    error: UnitError | None = None
    usage: Usage = Field(default_factory=Usage)
    attempts: int = 1
    queued_s: float = 0.0
    run_s: float = 0.0

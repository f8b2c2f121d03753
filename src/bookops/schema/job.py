"""Job records, history events and provider call records."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from ._base import StoredModel, utcnow


class JobStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    stopped_budget = "stopped_budget"


class OpProgress(BaseModel):
    total: int = 0
    done: int = 0
    failed: int = 0


class JobRecord(StoredModel):
    kind: str
    book: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: JobStatus = JobStatus.queued
    progress: dict[str, OpProgress] = Field(default_factory=dict)
    cost_usd: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    host: str | None = None
    pid: int | None = None


class Lease(StoredModel):
    """Who may run a job on a book (``id`` = book id); expires unless renewed by a heartbeat."""

    job: str
    expires_at: float = Field(description="epoch seconds")
    host: str
    pid: int


class HistoryEvent(StoredModel):
    book: str
    job: str | None = None
    op: str | None = None
    page: int | None = None
    event: str
    at: datetime = Field(default_factory=utcnow)
    detail: dict[str, Any] = Field(default_factory=dict)


class CallRecord(StoredModel):
    """One provider call (LLM or vision); doubles as the response cache, keyed by request hash."""

    book: str | None = None
    job: str | None = None
    op: str
    page: int | None = None
    provider: str
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    attempts: int = 1
    outcome: str = "ok"
    request_hash: str
    response: str | None = Field(None, description="raw response content, for the cache")
    at: datetime = Field(default_factory=utcnow)

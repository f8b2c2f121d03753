"""Call records for LLM requests, and the response cache they double as.

Every HTTP call (repairs included, failures included) becomes one ``CallRecord`` in ``calls``.
A successful record keeps the raw response content under the hash of the original request, so
an identical request later (a rerun) is answered from the store and never paid for twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from ..schema import CallRecord
from ..settings import Settings
from ..store import Store

__all__ = ["CallMeta", "cost_of", "find_cached", "record_call", "request_hash"]

log = logging.getLogger(__name__)

PROVIDER = "openai"


@dataclass(frozen=True)
class CallMeta:
    """Who asked: stamped on every call record of one logical request."""

    op: str
    book: str | None = None
    page: int | None = None
    job: str | None = None


def request_hash(model: str, messages: Any, schema: dict[str, Any] | None) -> str:
    """sha256 of the canonical JSON of what decides the answer: model, messages, output schema."""
    canonical = json.dumps({"model": model, "messages": messages, "schema": schema},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cost_of(settings: Settings, model: str, prompt_tokens: int | None, completion_tokens: int | None,
            reported: float | None) -> float | None:
    """The endpoint's own figure (OpenRouter's ``usage.cost``), else the price table, else unknown."""
    if reported is not None:
        return float(reported)
    price = settings.prices.get(model)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6


async def record_call(store: Store | None, meta: CallMeta, *, model: str, req_hash: str, outcome: str,
                      attempt: int, latency_s: float, prompt_tokens: int | None = None,
                      completion_tokens: int | None = None, cost_usd: float | None = None,
                      response: str | None = None, call_id: str | None = None) -> CallRecord:
    """Write one provider call; the same ``call_id`` replaces its earlier (``in_flight``) record."""
    rec = CallRecord(
        id=call_id or uuid.uuid4().hex, book=meta.book, job=meta.job, op=meta.op, page=meta.page,
        provider=PROVIDER, model=model, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, cost_usd=cost_usd, latency_s=round(latency_s, 4),
        attempts=attempt, outcome=outcome, request_hash=req_hash,
        # only a validated answer is kept: the cache must never replay a bad one
        response=response if outcome == "ok" else None,
    )
    log.debug("llm call op=%s page=%s model=%s outcome=%s tokens=%s/%s latency=%.2fs",
              meta.op, meta.page, model, outcome, prompt_tokens, completion_tokens, latency_s)
    if store is not None:
        await store.put_call(rec)
    return rec


async def find_cached(store: Store | None, req_hash: str) -> CallRecord | None:
    if store is None:
        return None
    return await store.find_cached_call(req_hash)

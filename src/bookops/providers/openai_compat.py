"""A thin client for any OpenAI-compatible chat endpoint (OpenAI, OpenRouter, vLLM, Ollama...).

No policy and no retries here: the pool is the one retry layer, so the SDK is built with
``max_retries=0`` and every failure is mapped to a ``ProviderError`` kind in
:func:`map_openai_error`. The one exception is invalid structured output, which is re-asked
with the validation error at most ``MAX_REPAIRS`` times before failing as ``InvalidOutput``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import httpx2
import openai
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, InvalidOutput, PermanentError, ProviderError, RateLimited, TransientError
from ..pools.units import Done, Usage
from ..settings import Settings
from ..store import Store
from .llm_calls import CallMeta, cost_of, find_cached, record_call, request_hash

__all__ = ["MAX_REPAIRS", "LlmClient", "TextAnswer", "map_openai_error", "parse_retry_after"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

MAX_REPAIRS = 2
# local endpoints (Ollama, vLLM) take any key, but the SDK refuses to start without one
_NO_KEY = "unused"


class TextAnswer(NamedTuple):
    text: str
    finish_reason: str | None


class _Request(NamedTuple):
    """One logical request: what every call record of it (repairs included) is stamped with."""

    meta: CallMeta
    model: str
    req_hash: str
    store: Store | None


class _Reply(NamedTuple):
    content: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float
    call_id: str


def parse_retry_after(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` in seconds, or an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def map_openai_error(exc: BaseException, *, secret: str | None = None) -> ProviderError:
    """The one place SDK exceptions become bookops errors; the caller does ``raise ... from exc``."""

    def msg(text: str) -> str:
        # some endpoints echo (part of) the key in their error text
        return text.replace(secret, "***") if secret else text

    if isinstance(exc, ValidationError):
        return InvalidOutput(f"output failed validation: {_short_validation(exc)}")
    if isinstance(exc, openai.APITimeoutError):
        return TransientError("LLM request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return TransientError(msg(f"cannot reach the LLM endpoint: {exc.message}"))
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = msg(str(exc.message))[:300]
        if status == 429:
            return RateLimited(f"rate limited (429): {detail}",
                               retry_after=parse_retry_after(exc.response.headers))
        if status == 401:
            return PermanentError("the LLM endpoint refused the API key (401): check BOOKOPS_LLM_API_KEY")
        if status in (408, 409) or status >= 500:
            return TransientError(f"LLM endpoint error {status}: {detail}")
        return PermanentError(f"LLM endpoint refused the request ({status}): {detail}")
    if isinstance(exc, openai.APIResponseValidationError):
        return InvalidOutput(msg(f"unexpected response shape: {exc.message}"))
    if isinstance(exc, (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError)):
        return InvalidOutput(str(exc))
    if isinstance(exc, openai.OpenAIError):
        return PermanentError(msg(f"LLM client error: {exc}"))
    return PermanentError(msg(f"{type(exc).__name__}: {exc}"))


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


class LlmClient:
    """One OpenAI-compatible endpoint. Use as ``async with LlmClient(settings) as llm:``."""

    def __init__(self, settings: Settings, *, timeout_s: float | None = None) -> None:
        if not settings.llm_configured:
            raise ConfigError("no LLM configured: set BOOKOPS_LLM_BASE_URL and/or BOOKOPS_LLM_API_KEY")
        self.settings = settings
        self._secret = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        t = timeout_s if timeout_s is not None else settings.limit_for("openai").timeout_s
        self.timeout_s = t
        self._client = openai.AsyncOpenAI(
            base_url=settings.llm_base_url, api_key=self._secret or _NO_KEY, max_retries=0,
            timeout=httpx2.Timeout(t, connect=min(t, 10.0)),
        )

    def __repr__(self) -> str:
        return f"LlmClient(base_url={self.settings.llm_base_url!r}, timeout_s={self.timeout_s})"

    async def __aenter__(self) -> LlmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.close()

    def _model(self, model: str | None) -> str:
        chosen = model or self.settings.llm_model
        if not chosen:
            raise ConfigError("no LLM model configured: set BOOKOPS_LLM_MODEL")
        return chosen

    # ------------------------------------------------------------------ public calls
    async def structured(self, messages: list[dict[str, Any]], schema: type[M], *, model: str | None = None,
                         op: str, book: str | None = None, page: int | None = None, job: str | None = None,
                         store: Store | None = None, use_cache: bool = True,
                         check: Callable[[M], None] | None = None,
                         max_tokens: int | None = None) -> Done:
        """Ask for JSON matching ``schema``; returns ``Done(instance, Usage)``.

        ``check`` may raise ``InvalidOutput`` on a parsed answer (a semantic check); it is
        treated like a validation failure: re-asked, recorded, never cached.
        """
        model = self._model(model)
        json_schema = to_strict_json_schema(schema)
        response_format = {"type": "json_schema",
                           "json_schema": {"name": schema.__name__, "schema": json_schema, "strict": True}}
        req = _Request(CallMeta(op=op, book=book, page=page, job=job), model,
                       request_hash(model, messages, json_schema), store)
        if use_cache and self.settings.llm_cache:
            hit = await find_cached(store, req.req_hash)
            if hit is not None and hit.response is not None:
                try:
                    return Done(schema.model_validate_json(hit.response), _cached_usage(model))
                except ValidationError:
                    log.warning("cached response for %s no longer validates; asking again", op)

        convo = list(messages)
        usage = Usage(model=model, prompt_tokens=0, completion_tokens=0, latency_s=0.0)
        problem = ""
        for attempt in range(1, MAX_REPAIRS + 2):
            reply = await self._call(req, convo, attempt, response_format, max_tokens)
            _add(usage, reply)
            try:
                if reply.finish_reason == "length":
                    raise InvalidOutput("answer cut off at the token limit (finish_reason=length)")
                try:
                    parsed = schema.model_validate_json(reply.content)
                except ValidationError as exc:
                    raise map_openai_error(exc, secret=self._secret) from exc
                if check is not None:
                    check(parsed)
            except InvalidOutput as exc:
                problem = exc.message
                await self._record(req, "invalid_output", attempt, reply)
                convo = convo + [
                    {"role": "assistant", "content": reply.content},
                    {"role": "user", "content": _repair_prompt(problem)},
                ]
                continue
            await self._record(req, "ok", attempt, reply, response=reply.content)
            return Done(parsed, usage)
        raise InvalidOutput(f"{op}: invalid output after {MAX_REPAIRS} repairs: {problem}", repaired=True)

    async def text(self, messages: list[dict[str, Any]], *, model: str | None = None, op: str,
                   book: str | None = None, page: int | None = None, job: str | None = None,
                   store: Store | None = None, use_cache: bool = True,
                   check: Callable[[TextAnswer], None] | None = None,
                   max_tokens: int | None = None) -> Done:
        """A plain completion: ``Done(TextAnswer(text, finish_reason), Usage)``.

        ``check`` may raise a ``ProviderError`` (a guard); the call is then recorded with that
        outcome and not cached, and the error propagates (no re-ask: the pool decides).
        """
        model = self._model(model)
        req = _Request(CallMeta(op=op, book=book, page=page, job=job), model,
                       request_hash(model, messages, None), store)
        if use_cache and self.settings.llm_cache:
            hit = await find_cached(store, req.req_hash)
            if hit is not None and hit.response is not None:
                return Done(TextAnswer(hit.response, "stop"), _cached_usage(model))
        reply = await self._call(req, list(messages), 1, None, max_tokens)
        usage = Usage(model=model, prompt_tokens=0, completion_tokens=0, latency_s=0.0)
        _add(usage, reply)
        answer = TextAnswer(reply.content, reply.finish_reason)
        if check is not None:
            try:
                check(answer)
            except ProviderError as exc:
                await self._record(req, exc.kind.value, 1, reply)
                raise
        await self._record(req, "ok", 1, reply, response=reply.content)
        return Done(answer, usage)

    async def list_models(self, *, timeout_s: float = 5.0) -> list[str]:
        """Model ids the endpoint offers; a quick reachability probe."""
        try:
            page = await self._client.with_options(timeout=timeout_s).models.list()
            return [m.id for m in page.data]
        except openai.OpenAIError as exc:
            raise map_openai_error(exc, secret=self._secret) from exc

    # ------------------------------------------------------------------ one HTTP call
    async def _call(self, req: _Request, messages: list[dict[str, Any]], attempt: int,
                    response_format: dict[str, Any] | None, max_tokens: int | None) -> _Reply:
        kwargs: dict[str, Any] = {"model": req.model, "messages": messages}
        if response_format is not None:
            kwargs["response_format"] = response_format
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        # Recorded before it is sent: a process killed mid-request still leaves the (maybe billed)
        # call in `calls`, so the record count never falls short of what the endpoint answered.
        call_id = uuid.uuid4().hex
        await record_call(req.store, req.meta, model=req.model, req_hash=req.req_hash,
                          outcome="in_flight", attempt=attempt, latency_s=0.0, call_id=call_id)
        t0 = time.monotonic()
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except (openai.OpenAIError, ValidationError) as exc:
            err = map_openai_error(exc, secret=self._secret)
            await record_call(req.store, req.meta, model=req.model, req_hash=req.req_hash,
                              outcome=err.kind.value, attempt=attempt, latency_s=time.monotonic() - t0,
                              call_id=call_id)
            raise err from exc
        except asyncio.CancelledError:
            # The pool's timeout (it starts before this request, so it fires before the client's)
            # or a Ctrl-C ended the request: the endpoint may bill it all the same, so record it.
            await record_call(req.store, req.meta, model=req.model, req_hash=req.req_hash,
                              outcome="cancelled", attempt=attempt, latency_s=time.monotonic() - t0,
                              call_id=call_id)
            raise
        latency = time.monotonic() - t0
        if not completion.choices:
            await record_call(req.store, req.meta, model=req.model, req_hash=req.req_hash,
                              outcome="invalid_output", attempt=attempt, latency_s=latency,
                              call_id=call_id)
            raise InvalidOutput("the endpoint answered with no choices")
        choice = completion.choices[0]
        u = completion.usage
        pt = u.prompt_tokens if u else None
        ct = u.completion_tokens if u else None
        reported = getattr(u, "cost", None) if u else None  # OpenRouter's extra usage field
        if not isinstance(reported, (int, float)):
            reported = None
        cost = cost_of(self.settings, req.model, pt, ct, reported)
        return _Reply(choice.message.content or "", choice.finish_reason, pt, ct, cost, latency, call_id)

    async def _record(self, req: _Request, outcome: str, attempt: int, reply: _Reply, *,
                      response: str | None = None) -> None:
        await record_call(req.store, req.meta, model=req.model, req_hash=req.req_hash,
                          outcome=outcome,
                          attempt=attempt, latency_s=reply.latency_s, prompt_tokens=reply.prompt_tokens,
                          completion_tokens=reply.completion_tokens, cost_usd=reply.cost_usd,
                          response=response, call_id=reply.call_id)


def _cached_usage(model: str) -> Usage:
    return Usage(model=model, prompt_tokens=0, completion_tokens=0, cost_usd=0.0, latency_s=0.0, cached=True)


def _add(usage: Usage, reply: _Reply) -> None:
    usage.prompt_tokens = (usage.prompt_tokens or 0) + (reply.prompt_tokens or 0)
    usage.completion_tokens = (usage.completion_tokens or 0) + (reply.completion_tokens or 0)
    usage.latency_s = (usage.latency_s or 0.0) + reply.latency_s
    if reply.cost_usd is not None:
        usage.cost_usd = (usage.cost_usd or 0.0) + reply.cost_usd


def _repair_prompt(problem: str) -> str:
    return ("Your previous answer could not be used: " + problem + "\n"
            "Answer again with only a JSON object that matches the required schema exactly.")

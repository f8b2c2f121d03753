"""The OpenAI-compatible client, with the real ``openai`` SDK against the loopback server."""

from __future__ import annotations

import email.utils
import json
import logging
import time

import pytest
from pydantic import BaseModel, Field

from bookops.errors import InvalidOutput, PermanentError, RateLimited, TransientError
from bookops.pools.units import Done
from bookops.providers.openai_compat import LlmClient, TextAnswer, parse_retry_after
from bookops.settings import ModelPrice, Settings
from bookops.store import Store
from tests.llm_server import LlmServer, Reply

from .conftest import API_KEY


class Title(BaseModel):
    title: str
    year: int | None = Field(None, ge=1400, le=2100)


MESSAGES = [{"role": "user", "content": "What is the title?"}]


async def ask(llm: LlmClient, store: Store | None = None, *, use_cache: bool = True) -> Done:
    return await llm.structured(MESSAGES, Title, op="metadata", book="b1", page=3, store=store,
                                use_cache=use_cache)


async def test_structured_output_parsed_and_schema_sent(llm_server: LlmServer, llm_settings: Settings,
                                                       store: Store) -> None:
    llm_server.push(Reply.json({"title": "Moby-Dick", "year": 1851}, prompt_tokens=120, completion_tokens=9))
    async with LlmClient(llm_settings) as llm:
        done = await ask(llm, store)
    assert done.value == Title(title="Moby-Dick", year=1851)
    assert done.usage.prompt_tokens == 120 and done.usage.completion_tokens == 9
    sent = llm_server.chat_requests()[0].body
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert sent["model"] == "test-model"
    assert llm_server.chat_requests()[0].headers["authorization"] == f"Bearer {API_KEY}"


async def test_invalid_json_is_repaired(llm_server: LlmServer, llm_settings: Settings, store: Store) -> None:
    llm_server.push(Reply(content='{"title": "Moby'), Reply.json({"title": "Moby-Dick", "year": None}))
    async with LlmClient(llm_settings) as llm:
        done = await ask(llm, store)
    assert done.value.title == "Moby-Dick"
    reqs = llm_server.chat_requests()
    assert len(reqs) == 2
    # the repair shows the model its own answer and what was wrong with it
    repair = reqs[1].messages
    assert repair[-2] == {"role": "assistant", "content": '{"title": "Moby'}
    assert "could not be used" in repair[-1]["content"]
    calls = await store.list_calls("b1")
    assert [c.outcome for c in calls] == ["invalid_output", "ok"]
    assert [c.attempts for c in calls] == [1, 2]
    assert len({c.request_hash for c in calls}) == 1


async def test_schema_violation_fails_after_two_repairs(llm_server: LlmServer, llm_settings: Settings,
                                                        store: Store) -> None:
    bad = Reply.json({"title": "x", "year": 99})  # year out of range: valid JSON, invalid data
    llm_server.push(bad, Reply(content="not json"), bad)
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(InvalidOutput, match="after 2 repairs"):
            await ask(llm, store)
    assert llm_server.hits["/v1/chat/completions"] == 3
    calls = await store.list_calls("b1")
    assert [c.outcome for c in calls] == ["invalid_output"] * 3
    assert all(c.response is None for c in calls)


async def test_finish_reason_length_is_invalid_output(llm_server: LlmServer, llm_settings: Settings) -> None:
    cut = Reply.json({"title": "x"}, finish_reason="length")
    llm_server.push(cut, cut, cut)
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(InvalidOutput, match="token limit"):
            await ask(llm)


@pytest.mark.parametrize("header,expected", [("7", 7.0), ("0.5", 0.5)])
async def test_429_maps_to_rate_limited_with_retry_after(llm_server: LlmServer, llm_settings: Settings,
                                                         store: Store, header: str, expected: float) -> None:
    llm_server.push(Reply.rate_limited(header))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(RateLimited) as info:
            await ask(llm, store)
    assert info.value.retry_after == pytest.approx(expected)
    assert llm_server.hits["/v1/chat/completions"] == 1  # the SDK did not retry by itself
    assert [c.outcome for c in await store.list_calls("b1")] == ["rate_limited"]


async def test_429_with_http_date_and_without_header(llm_server: LlmServer, llm_settings: Settings) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    llm_server.push(Reply.rate_limited(when), Reply.rate_limited(None))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(RateLimited) as first:
            await ask(llm)
        with pytest.raises(RateLimited) as second:
            await ask(llm)
    assert first.value.retry_after is not None and 25 <= first.value.retry_after <= 31
    assert second.value.retry_after is None


def test_parse_retry_after_variants() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "garbage"}) is None
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


async def test_500_is_transient(llm_server: LlmServer, llm_settings: Settings, store: Store) -> None:
    llm_server.push(Reply.error(500), Reply.error(503))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(TransientError, match="500"):
            await ask(llm, store)
        with pytest.raises(TransientError, match="503"):
            await ask(llm, store)
    assert llm_server.hits["/v1/chat/completions"] == 2
    assert [c.outcome for c in await store.list_calls("b1")] == ["transient", "transient"]


async def test_timeout_is_transient(llm_server: LlmServer, llm_settings: Settings) -> None:
    llm_server.push(Reply.slow(10.0, content=json.dumps({"title": "late"})))
    async with LlmClient(llm_settings, timeout_s=0.3) as llm:
        t0 = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            await ask(llm)
    assert time.monotonic() - t0 < 5
    assert llm_server.hits["/v1/chat/completions"] == 1


async def test_connection_refused_is_transient(llm_settings: Settings) -> None:
    # a port that was just free: nothing listens there
    with LlmServer() as gone:
        url = gone.base_url
    s = llm_settings.model_copy(update={"llm_base_url": url})
    async with LlmClient(s) as llm:
        with pytest.raises(TransientError, match="cannot reach"):
            await ask(llm)


@pytest.mark.parametrize("status", [400, 403, 404])
async def test_client_errors_are_permanent(llm_server: LlmServer, llm_settings: Settings,
                                           status: int) -> None:
    llm_server.push(Reply.error(status, "no such model"))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(PermanentError, match=str(status)):
            await ask(llm)


async def test_401_names_the_variable_never_the_key(llm_server: LlmServer, llm_settings: Settings) -> None:
    llm_server.push(Reply.error(401, f"Incorrect API key provided: {API_KEY}"))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(PermanentError) as info:
            await ask(llm)
    assert "BOOKOPS_LLM_API_KEY" in info.value.message
    assert API_KEY not in info.value.message and API_KEY not in repr(llm)


async def test_key_echoed_in_an_error_is_scrubbed(llm_server: LlmServer, llm_settings: Settings) -> None:
    llm_server.push(Reply.error(400, f"bad request for key {API_KEY}"))
    async with LlmClient(llm_settings) as llm:
        with pytest.raises(PermanentError) as info:
            await ask(llm)
    assert API_KEY not in str(info.value)


async def test_usage_and_reported_cost_recorded(llm_server: LlmServer, llm_settings: Settings,
                                                store: Store) -> None:
    llm_server.push(Reply.json({"title": "A"}, prompt_tokens=1000, completion_tokens=50, cost=0.0123))
    async with LlmClient(llm_settings) as llm:
        done = await ask(llm, store)
    assert done.usage.cost_usd == pytest.approx(0.0123)
    (call,) = await store.list_calls("b1")
    assert (call.op, call.provider, call.model, call.page) == ("metadata", "openai", "test-model", 3)
    assert (call.prompt_tokens, call.completion_tokens) == (1000, 50)
    assert call.cost_usd == pytest.approx(0.0123)
    assert call.outcome == "ok" and call.latency_s is not None and call.latency_s >= 0
    assert json.loads(call.response or "") == {"title": "A"}
    assert len(call.request_hash) == 64


async def test_cost_from_price_table_else_null(llm_server: LlmServer, llm_settings: Settings,
                                               store: Store) -> None:
    priced = llm_settings.model_copy(update={
        "prices": {"test-model": ModelPrice(input_per_mtok=2.0, output_per_mtok=10.0)}})
    llm_server.push(Reply.json({"title": "A"}, prompt_tokens=1000, completion_tokens=100),
                    Reply.json({"title": "B"}, prompt_tokens=1000, completion_tokens=100))
    async with LlmClient(priced) as llm:
        await llm.structured(MESSAGES, Title, op="metadata", book="b1", store=store)
    async with LlmClient(llm_settings) as llm:
        await llm.structured(MESSAGES + [{"role": "user", "content": "again"}], Title, op="metadata",
                             book="b1", store=store)
    first, second = await store.list_calls("b1")
    assert first.cost_usd == pytest.approx((1000 * 2.0 + 100 * 10.0) / 1e6)
    assert second.cost_usd is None


async def test_identical_request_served_from_cache(llm_server: LlmServer, llm_settings: Settings,
                                                   store: Store) -> None:
    llm_server.push(Reply.json({"title": "Moby-Dick", "year": 1851}, cost=0.01))
    async with LlmClient(llm_settings) as llm:
        first = await ask(llm, store)
        hits = llm_server.hits["/v1/chat/completions"]
        second = await ask(llm, store)
        assert llm_server.hits["/v1/chat/completions"] == hits == 1
        assert second.value == first.value
        assert second.usage.cached and second.usage.cost_usd == 0
        # opting out asks again
        llm_server.push(Reply.json({"title": "Fresh"}))
        third = await ask(llm, store, use_cache=False)
    assert third.value.title == "Fresh"
    assert llm_server.hits["/v1/chat/completions"] == 2


async def test_text_completion_returns_finish_reason(llm_server: LlmServer, llm_settings: Settings,
                                                     store: Store) -> None:
    llm_server.push(Reply(content="plain words", finish_reason="length"))
    async with LlmClient(llm_settings) as llm:
        done = await llm.text(MESSAGES, op="ocr", book="b1", store=store)
    assert done.value == TextAnswer("plain words", "length")
    assert "response_format" not in llm_server.chat_requests()[0].body


async def test_no_key_in_calls_history_or_logs(llm_server: LlmServer, llm_settings: Settings, store: Store,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    llm_server.push(Reply(content="oops"), Reply.json({"title": "A"}), Reply.error(401), Reply.error(500))
    async with LlmClient(llm_settings) as llm:
        await ask(llm, store)
        with pytest.raises(PermanentError):
            await llm.text(MESSAGES, op="ocr", book="b1", store=store)
        with pytest.raises(TransientError):
            await llm.text(MESSAGES, op="ocr", book="b1", store=store)
    dumped = json.dumps(await store.calls.find({}), default=str)
    dumped += json.dumps(await store.history.find({}), default=str)
    assert API_KEY not in dumped
    assert "test-model" in dumped
    assert API_KEY not in caplog.text
    assert any("llm call" in r.getMessage() for r in caplog.records)


def test_client_refuses_without_configuration() -> None:
    from bookops.errors import ConfigError

    with pytest.raises(ConfigError):
        LlmClient(Settings())


async def test_list_models_and_repr(llm_server: LlmServer, llm_settings: Settings) -> None:
    async with LlmClient(llm_settings) as llm:
        assert await llm.list_models() == ["test-model"]
        assert API_KEY not in repr(llm)
    assert llm_server.hits["/v1/models"] == 1


def test_providers_command_lists_and_checks(llm_server: LlmServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bookops.cli import app

    monkeypatch.setenv("BOOKOPS_LLM_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("BOOKOPS_LLM_API_KEY", API_KEY)
    monkeypatch.setenv("BOOKOPS_LLM_MODEL", "test-model")
    monkeypatch.setenv("BOOKOPS_VISION_MODEL", "missing-vision")
    result = CliRunner().invoke(app, ["providers", "--json"])
    assert result.exit_code == 0, result.output
    assert API_KEY not in result.output
    rows = {r["name"]: r for r in json.loads(result.output)["providers"]}
    assert set(rows) >= {"tesseract", "openai", "offline"}
    assert rows["openai"]["reachable"] is True and rows["openai"]["api_key_set"] is True
    assert "'missing-vision' not listed" in rows["openai"]["detail"]
    assert rows["openai"]["ops"] == ["blend", "label", "metadata", "toc_find", "toc_extract"]
    assert rows["tesseract"]["ops"] == ["ocr"] and rows["offline"]["ops"] == []
    assert rows["openai"]["limits"]["concurrency"] >= 1
    assert llm_server.hits["/v1/models"] == 1
    table = CliRunner().invoke(app, ["providers"])
    assert table.exit_code == 0 and "openai" in table.output and API_KEY not in table.output


def test_providers_command_without_llm_and_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bookops.cli import app

    result = CliRunner().invoke(app, ["providers", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)["providers"]}
    assert rows["openai"]["reachable"] is None and "not configured" in rows["openai"]["detail"]
    assert rows["offline"]["ops"] == ["blend", "label", "metadata", "toc_find", "toc_extract"]
    with LlmServer() as gone:
        url = gone.base_url
    monkeypatch.setenv("BOOKOPS_LLM_BASE_URL", url)
    result = CliRunner().invoke(app, ["providers", "--json", "--timeout", "2"])
    rows = {r["name"]: r for r in json.loads(result.output)["providers"]}
    assert rows["openai"]["reachable"] is False and "cannot reach" in rows["openai"]["detail"]

"""Secrets stay secret: the API key and the MongoDB password never reach the store, logs or output.

A job that makes real LLM calls (vision OCR, blend, label, metadata, ToC) runs against the loopback
server with a key and a MongoDB URI with a password in its settings, logging at DEBUG. One of the
server's answers echoes the key back in an error, as some endpoints do. Then every collection is
dumped, and the CLI's ``config``, ``providers``, ``job show``, ``job list``, ``history`` and
``book show`` outputs (with ``--verbose`` DEBUG logs on stderr) are searched for either secret.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr

from bookops.ingest import add_book
from bookops.jobs import run_job
from bookops.settings import RateLimit, Settings, redact_uri
from bookops.store import Store
from bookops.store._mongo import MongoBackend
from bookops.store._sqlite import SqliteBackend
from tests.conftest import sample_pdf
from tests.jobs.test_multi_ocr import COPYRIGHT, Model, cli
from tests.llm_server import LlmServer
from tests.store._mongomock_async import AsyncMockDatabase

from .conftest import SAMPLE_PDF

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not SAMPLE_PDF.exists(), reason="no sample book")]

API_KEY = "sk-proj-SECRET-9c4e7a11b2d3"
MONGO_PASSWORD = "Pw-SECRET-51f0aa"
MONGO_URI = f"mongodb://bookops:{MONGO_PASSWORD}@db.example.invalid:27017/bookops?authSource=admin"
SECRETS = (API_KEY, MONGO_PASSWORD)
COLLECTIONS = ("books", "pages", "ocr_results", "tocs", "jobs", "history", "calls", "leases")


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def job_settings(home: Path, srv: LlmServer) -> Settings:
    return Settings(home=home, mongo_uri=SecretStr(MONGO_URI), llm_base_url=srv.base_url,
                    llm_api_key=SecretStr(API_KEY), llm_model="test-model", vision_model="test-vision",
                    dpi=100, limits={"openai": RateLimit(rpm=None, max_attempts=2, backoff_s=0.01,
                                                         backoff_max_s=0.05, timeout_s=20)})


async def connect(backend: str, settings: Settings) -> Store:
    # The settings carry the MongoDB URI either way; the documents go to the embedded file (which
    # the CLI reads afterwards) or to MongoDB's backend over mongomock, with what it really sends.
    if backend == "sqlite":
        return await Store(SqliteBackend(settings.sqlite_path, timeout_s=5)).connect()
    db = AsyncMockDatabase()
    return await Store(MongoBackend(cast(Any, db), where=redact_uri(MONGO_URI))).connect()


def cli_env(home: Path, srv: LlmServer, *, mongo: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    env.update({"BOOKOPS_HOME": str(home), "BOOKOPS_LLM_BASE_URL": srv.base_url,
                "BOOKOPS_LLM_API_KEY": API_KEY, "BOOKOPS_LLM_MODEL": "test-model",
                "BOOKOPS_VISION_MODEL": "test-vision"})
    if mongo:
        env["BOOKOPS_MONGO_URI"] = MONGO_URI
    return env


@pytest.mark.parametrize("backend", ["sqlite", "mongodb"])
async def test_no_secret_in_store_logs_or_cli_output(backend: str, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: bookops, openai, the HTTP client, pymongo
    home = tmp_path / "home"
    pdf = sample_pdf(tmp_path / "book.pdf", (2,), blank_after=True)
    with LlmServer() as srv:
        # the blank page's vision request is answered with an error that quotes the key
        srv.responder = Model(home, {1: COPYRIGHT}, echo_key_on_blank=True)
        settings = job_settings(home, srv)
        store = await connect(backend, settings)
        try:
            book, _ = await add_book(store, settings, [pdf])
            job, summary = await run_job("process-pages", store, settings, book, params={
                "ocr_providers": ["tesseract", "openai"], "ocr_upscale": False})
            dump = {c: await getattr(store, c).find({}) for c in COLLECTIONS}
            history = await store.list_history(book.id)
            calls = await store.list_calls(book.id)
        finally:
            await store.close()
        # the job made its LLM calls, and the echoed key did reach us
        assert job.status.value == "succeeded" and summary.failed == 1, job.error
        assert {c.op for c in calls} >= {"ocr", "blend", "label", "metadata", "toc_find"}
        assert any(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in srv.chat_requests())
        page2 = next(p for p in dump["pages"] if p["page_num"] == 2)
        assert "***" in page2["errors"]["ocr_openai"]["message"]  # the echo, redacted

        stored = json.dumps(dump, default=str)
        assert all(dump[c] for c in COLLECTIONS if c not in ("tocs", "leases")), "a collection is empty"
        assert leaks(stored) == [], "a secret is in the store"
        assert leaks(json.dumps([e.model_dump(mode="json") for e in history])) == []
        assert leaks(json.dumps([c.model_dump(mode="json") for c in calls])) == []
        logged = caplog.text + "\n".join(repr(r.args) + str(r.exc_info) for r in caplog.records)
        assert any(r.levelno == logging.DEBUG for r in caplog.records)
        assert leaks(logged) == [], "a secret is in the logs"

        if backend != "sqlite":
            return
        outputs: dict[str, str] = {}
        parsed: dict[str, Any] = {}
        plain, with_mongo = cli_env(home, srv, mongo=False), cli_env(home, srv, mongo=True)
        for name, env, args in [
            ("config", with_mongo, ["config"]),
            ("config --json", with_mongo, ["config", "--json"]),
            ("providers", with_mongo, ["--verbose", "providers"]),
            ("providers --json", with_mongo, ["--verbose", "providers", "--json"]),
            ("job show", plain, ["--verbose", "job", "show", job.id, "--json"]),
            ("job list", plain, ["--verbose", "job", "list", "--json"]),
            ("history", plain, ["--verbose", "history", book.id, "--json"]),
            ("book show", plain, ["--verbose", "book", "show", book.id, "--json"]),
        ]:
            out = cli(env, *args)
            assert out.returncode == 0, (name, out.stderr)
            outputs[name] = out.stdout + out.stderr
            assert leaks(outputs[name]) == [], f"a secret is in the output of `bookops {name}`"
            if name.endswith("--json") or name in ("job show", "job list", "history", "book show"):
                parsed[name] = json.loads(out.stdout)

    config = parsed["config --json"]
    assert config["mongo_uri"] == "mongodb://***@db.example.invalid:27017/bookops?authSource=admin"
    assert config["llm_api_key"] == "********"
    assert "mongodb://***@db.example.invalid" in outputs["config"]
    # the key was used, not only hidden: the endpoint answered the reachability check
    openai_row = next(r for r in parsed["providers --json"]["providers"] if r["name"] == "openai")
    assert openai_row["reachable"] is True and openai_row["api_key_set"] is True
    assert parsed["job show"]["status"] == "succeeded"
    assert any(e["event"] == "ocr.failed" for e in parsed["history"])
    assert "DEBUG" in outputs["providers"]  # --verbose really logged at DEBUG


def test_unreachable_mongodb_error_hides_the_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    # a closed local port fails fast; --verbose prints the whole exception chain too
    env.update({"BOOKOPS_HOME": str(tmp_path / "home"), "BOOKOPS_STORE_TIMEOUT_S": "0.3",
                "BOOKOPS_MONGO_URI": f"mongodb://bookops:{MONGO_PASSWORD}@127.0.0.1:9/bookops"})
    out = cli(env, "--verbose", "job", "list")
    assert out.returncode != 0
    assert "mongodb://***@127.0.0.1:9" in out.stderr
    assert leaks(out.stdout + out.stderr) == []

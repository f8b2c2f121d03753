"""Fixtures for provider tests: the loopback LLM server and settings that point at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bookops.settings import Settings
from tests.llm_server import LlmServer

API_KEY = "sk-test-DO-NOT-LEAK-7f3a9c"


@pytest.fixture
def llm_server() -> Iterator[LlmServer]:
    with LlmServer() as srv:
        yield srv


@pytest.fixture
def llm_settings(tmp_path: Path, llm_server: LlmServer) -> Settings:
    return Settings(home=tmp_path / "home", llm_base_url=llm_server.base_url, llm_api_key=SecretStr(API_KEY),
                    llm_model="test-model", vision_model="test-vision")

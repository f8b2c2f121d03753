"""One typed settings object, read from ``BOOKOPS_*`` variables and an optional ``bookops.toml``.

Built once (by the CLI, or ``Settings()`` in a notebook) and passed down; never a module global.
Precedence, highest first: keyword arguments, environment, ``bookops.toml``, defaults. The TOML
file is ``$BOOKOPS_CONFIG`` when set, else ``./bookops.toml``, else ``$BOOKOPS_HOME/bookops.toml``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["ModelPrice", "RateLimit", "Settings", "redact_uri"]


class RateLimit(BaseModel):
    """Limits of one provider: concurrency, requests per minute with a burst, attempts, timeout."""

    concurrency: int = Field(2, ge=1)
    rpm: float | None = Field(None, gt=0, description="requests per minute; None for no limit")
    burst: int = Field(1, ge=1, description="requests allowed back to back after an idle spell")
    tpm: int | None = Field(None, gt=0, description="tokens per minute, where the provider has one")
    max_attempts: int = Field(4, ge=1, description="attempts per unit, the first one included")
    timeout_s: float = Field(120.0, gt=0)
    backoff_s: float = Field(1.0, gt=0, description="first retry wait; doubles per attempt, with jitter")
    backoff_max_s: float = Field(60.0, gt=0)


class ModelPrice(BaseModel):
    """USD per million tokens, used when the endpoint does not report a cost."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


def _default_limits() -> dict[str, RateLimit]:
    # Local work runs in the CPU pool (one process per core). Twice as many units in flight as
    # cores keeps one waiting at each worker: a worker that finishes a page starts the next at
    # once instead of idling while the result goes through the event loop and the store and the
    # next unit comes back (measured on 63 pages: Extract+Ocr 2-6 % faster than one per core).
    local = 2 * (os.cpu_count() or 1)
    return {
        # three times that for tesseract: the pages waiting for a busy worker leave together, as
        # one tesseract process (pools.batch, providers.tesseract.ocr_images), about three a batch
        "tesseract": RateLimit(concurrency=3 * local, rpm=None, max_attempts=2, timeout_s=300),
        "cpu": RateLimit(concurrency=local, rpm=None, max_attempts=2, timeout_s=300),
        "offline": RateLimit(concurrency=local, rpm=None, max_attempts=1, timeout_s=300),
        "openai": RateLimit(concurrency=4, rpm=60, burst=1, max_attempts=4, timeout_s=120),
    }


_TOML_NAME = "bookops.toml"


class Settings(BaseSettings):
    """Effective bookops settings. Every field has a default that works with nothing set."""

    model_config = SettingsConfigDict(
        env_prefix="BOOKOPS_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".bookops")
    mongo_uri: SecretStr | None = None
    db: str = "bookops"
    store_timeout_s: float = Field(10.0, gt=0, description="server selection / lock wait timeout")

    ocr_lang: str = "eng"
    dpi: int = Field(300, ge=50, le=1200)
    renderer: str = Field("pdfium", pattern="^(pdfium|poppler)$")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    ocr_providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["tesseract"])

    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("llm_api_key", "BOOKOPS_LLM_API_KEY", "OPENAI_API_KEY")
    )
    llm_model: str | None = None
    vision_model: str | None = None
    llm_ops: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["blend", "label", "metadata", "toc_find", "toc_extract"],
        description="operations that use the LLM when one is configured; the rest run offline",
    )
    llm_cache: bool = True

    limits: dict[str, RateLimit] = Field(default_factory=_default_limits)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("ocr_providers", "llm_ops", mode="before")
    @classmethod
    def _split_csv(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("limits", mode="after")
    @classmethod
    def _fill_limits(cls, v: dict[str, RateLimit]) -> dict[str, RateLimit]:
        # Merge field by field: BOOKOPS_LIMITS__OPENAI__RPM=30 alone keeps openai's other defaults.
        merged = _default_limits()
        for name, given in v.items():
            base = merged.get(name, RateLimit())
            merged[name] = base.model_copy(update={f: getattr(given, f) for f in given.model_fields_set})
        return merged

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _toml_path()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    # ------------------------------------------------------------------ derived values
    @property
    def llm_configured(self) -> bool:
        """True when an LLM endpoint or key is set."""
        return bool(self.llm_base_url or self.llm_api_key)

    def limit_for(self, provider: str) -> RateLimit:
        """The rate limits of a provider (the generic defaults for an unknown one)."""
        return self.limits.get(provider) or RateLimit()

    def provider_for(self, op: str) -> str:
        """Which provider an LLM-capable operation uses: ``openai`` or ``offline``."""
        return "openai" if self.llm_configured and op in self.llm_ops else "offline"

    @property
    def books_dir(self) -> Path:
        """Where page images live: ``<home>/books``."""
        return self.home / "books"

    @property
    def sqlite_path(self) -> Path:
        """The embedded store's file: ``<home>/bookops.sqlite3``."""
        return self.home / "bookops.sqlite3"

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with every secret hidden, for ``bookops config``."""
        data = self.model_dump(mode="json")
        data["mongo_uri"] = redact_uri(self.mongo_uri.get_secret_value()) if self.mongo_uri else None
        data["llm_api_key"] = "********" if self.llm_api_key else None
        data["config_file"] = str(_toml_path()) if _toml_path() else None
        return data


def _toml_path() -> Path | None:
    explicit = os.environ.get("BOOKOPS_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    for candidate in (
        Path.cwd() / _TOML_NAME,
        Path(os.environ.get("BOOKOPS_HOME", str(Path.home() / ".bookops"))).expanduser() / _TOML_NAME,
    ):
        if candidate.is_file():
            return candidate
    return None


_CRED_RE = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<cred>[^@/]+)@")


def redact_uri(uri: str) -> str:
    """``mongodb://user:pw@host`` -> ``mongodb://***@host``; URIs without credentials unchanged."""
    return _CRED_RE.sub(lambda m: f"{m.group('scheme')}***@", uri)

"""The OCR engines the ``Ocr`` operation can use, by name.

An engine is an async callable ``(ctx, unit) -> dict of OcrResult fields`` (or ``Done`` of that
dict and the usage) plus the provider pool its units go through. Built-in engines are imported
lazily, so using tesseract never imports the LLM client; others plug in with
:func:`register_ocr_engine`.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PermanentError

if TYPE_CHECKING:
    from ..ops.base import OpContext
    from ..pools.units import WorkUnit

__all__ = ["OcrEngine", "get_ocr_engine", "known_engines", "register_ocr_engine", "tesseract_engine"]

EngineFn = Callable[["OpContext", "WorkUnit"], Awaitable[Any]]


@dataclass(frozen=True)
class OcrEngine:
    """A named OCR engine and the provider pool (rate limits, concurrency) it runs under."""

    name: str
    pool: str
    fn: EngineFn

    async def __call__(self, ctx: OpContext, unit: WorkUnit) -> Any:
        return await self.fn(ctx, unit)


async def tesseract_engine(ctx: OpContext, unit: WorkUnit) -> dict[str, Any]:
    """Tesseract on the page image, in a CPU-pool process (one single-threaded tesseract per core)."""
    from .tesseract import read_pages

    path = page_image_path(ctx, unit)
    lang = str(unit.payload.get("lang") or ctx.settings.ocr_lang)
    dpi = unit.payload.get("dpi")
    # tesseract is killed at the pool's timeout, so a stuck page does not keep a CPU worker busy
    timeout_s = ctx.settings.limit_for(unit.provider).timeout_s
    # pages waiting at the same time share one tesseract process: its start costs a sixth of a page
    key = (lang, bool(unit.payload.get("upscale", False)), timeout_s)
    fields: dict[str, Any] = await ctx.dispatcher.batcher("tesseract", read_pages).submit(
        key, (str(path), int(dpi) if dpi else None))
    return fields


def page_image_path(ctx: OpContext, unit: WorkUnit) -> Path:
    raw = unit.payload.get("image")
    if not raw:
        raise PermanentError(f"page {unit.page} has no image yet (run extract first)")
    path = Path(str(raw))
    return path if path.is_absolute() else ctx.settings.home / path


# name -> (pool, "module:function"), imported on first use
_BUILTIN: dict[str, tuple[str, str]] = {
    "tesseract": ("tesseract", "bookops.providers.ocr_engines:tesseract_engine"),
    "openai": ("openai", "bookops.providers.vision_ocr:openai_ocr"),
}
_REGISTERED: dict[str, OcrEngine] = {}


def register_ocr_engine(name: str, fn: EngineFn, *, pool: str | None = None) -> OcrEngine:
    """Make ``fn`` available as OCR provider ``name`` (its units use pool ``pool``, default ``name``)."""
    if not name or "." in name or "$" in name:
        # the name becomes a key in stored documents (ocr.<name>.done)
        raise ConfigError(f"invalid OCR engine name {name!r}")
    engine = OcrEngine(name=name, pool=pool or name, fn=fn)
    _REGISTERED[name] = engine
    return engine


def known_engines() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get_ocr_engine(name: str) -> OcrEngine:
    """The engine called ``name``; ``ConfigError`` naming the known ones when there is none."""
    engine = _REGISTERED.get(name)
    if engine is not None:
        return engine
    if name not in _BUILTIN:
        raise ConfigError(f"unknown OCR provider '{name}'; known: {', '.join(known_engines())}")
    pool, target = _BUILTIN[name]
    mod_name, attr = target.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"OCR provider '{name}' is not available: {exc}") from exc
    return register_ocr_engine(name, fn, pool=pool)


# ------------------------------------------------------------------ targeted passes for the readers

async def tesseract_pass(ctx: OpContext, kind: str, image: Path, dpi: int | None) -> dict[str, Any]:
    """One of tesseract's targeted re-reads of a page image, in the CPU pool.

    ``kind`` is ``"margin"`` (the outermost head and foot lines, for folios) or ``"careful"`` (the
    slow full-page read for ToC pages); see :mod:`bookops.providers.tesseract`.
    """
    from .tesseract import ocr_careful, ocr_margin_lines

    fn = {"margin": ocr_margin_lines, "careful": ocr_careful}.get(kind)
    if fn is None:
        raise ValueError(f"unknown tesseract pass {kind!r}")
    timeout_s = ctx.settings.limit_for("tesseract").timeout_s
    fields: dict[str, Any] = await ctx.dispatcher.cpu.run(
        partial(fn, timeout_s=timeout_s), str(image), ctx.settings.ocr_lang, dpi)
    return fields

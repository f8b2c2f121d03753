"""The job kinds: which operations each one composes, and what it resets first."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..ops.base import OpContext, Operation

log = logging.getLogger(__name__)

# op name -> (module, class). Ops import lazily so a notebook importing one pulls in only it.
_OPS: dict[str, tuple[str, str]] = {
    "extract": ("bookops.ops.extract", "Extract"),
    "ocr": ("bookops.ops.ocr", "Ocr"),
    "blend": ("bookops.ops.blend", "Blend"),
    "label": ("bookops.ops.label", "Label"),
    "metadata": ("bookops.ops.metadata", "Metadata"),
    "toc_find": ("bookops.ops.toc_find", "TocFind"),
    "toc_extract": ("bookops.ops.toc_extract", "TocExtract"),
}


def op_class(name: str) -> type[Operation] | None:
    mod_name, cls_name = _OPS[name]
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name == mod_name:
            return None
        raise
    cls: type[Operation] = getattr(mod, cls_name)
    return cls


def make_op(name: str, **kwargs: Any) -> Operation | None:
    cls = op_class(name)
    return cls(**kwargs) if cls is not None else None


Prepare = Callable[[OpContext], Awaitable[None]]


@dataclass
class JobPlan:
    ops: list[Operation]
    prepare: Prepare | None = None


def _present(ops: list[Operation | None]) -> list[Operation]:
    return [op for op in ops if op is not None]


def plan_process_pages(params: dict[str, Any]) -> JobPlan:
    providers = params.get("ocr_providers") or ["tesseract"]
    ops: list[Operation | None] = [make_op("extract")]
    ops += [make_op("ocr", provider=p) for p in providers]
    ops += [make_op(n) for n in ("blend", "label", "metadata", "toc_find", "toc_extract")]
    return JobPlan(_present(ops))


def plan_rerun_toc(params: dict[str, Any]) -> JobPlan:
    ops = _present([make_op("toc_find"), make_op("toc_extract")])

    async def prepare(ctx: OpContext) -> None:
        old = await ctx.store.get_toc(ctx.book.id)
        summary: dict[str, Any] = {"found": False}
        if old is not None:
            summary = {"found": old.found, "pages": old.pages, "entries": len(old.entries),
                       "found_by": old.found_by, "extracted_by": old.extracted_by,
                       "first_titles": [e.title for e in old.entries[:5]]}
        for op in ops:
            await op.reset(ctx.store, ctx.book.id)
        ctx.event("toc", "toc.reset", old=summary, forced_pages=params.get("toc_pages"))
        await ctx.refresh_book()

    return JobPlan(ops, prepare)


def plan_add_ocr_source(params: dict[str, Any]) -> JobPlan:
    provider = params.get("provider")
    if not provider:
        raise UserError("add-ocr-source needs --provider")
    downstream = ("label", "metadata", "toc_find", "toc_extract")
    ops: list[Operation | None] = [make_op("ocr", provider=provider), make_op("blend")]
    rerun = bool(params.get("rerun_downstream"))
    if rerun:
        ops += [make_op(n) for n in downstream]
    present = _present(ops)

    async def prepare(ctx: OpContext) -> None:
        existing = list(ctx.book.ocr_providers or ctx.settings.ocr_providers)
        providers = existing + ([provider] if provider not in existing else [])
        ctx.params["ocr_providers"] = providers
        if rerun:
            for op in present:
                if op.name in downstream:
                    await op.reset(ctx.store, ctx.book.id)
            # Reset ops have no results left to be stale; they say "not done" until they rerun.
            await ctx.store.patch_book(ctx.book.id, {"$set": {
                "stale": [s for s in ctx.book.stale if s not in downstream]}})
            # The pages keep their old blend (the text stays readable) but lose the flag until
            # they are blended with the new source (or it failed there for good): Label and the
            # book-level ops wait on `blended`, and would otherwise rerun at once on the old text.
            await ctx.store.patch_pages(ctx.book.id, {"page_num": {"$in": ctx.page_range()},
                                                      "blended": True}, {"$set": {"blended": False}})
            ctx.event("job", "downstream.reset", ops=list(downstream))
        else:
            await ctx.store.patch_book(ctx.book.id, {"$set": {"stale": list(downstream)}})
            ctx.event("job", "downstream.stale", ops=list(downstream), provider=provider)
        await ctx.refresh_book()

    return JobPlan(present, prepare)


KINDS: dict[str, Callable[[dict[str, Any]], JobPlan]] = {
    "process-pages": plan_process_pages,
    "rerun-toc": plan_rerun_toc,
    "add-ocr-source": plan_add_ocr_source,
}


def plan(kind: str, params: dict[str, Any]) -> JobPlan:
    try:
        factory = KINDS[kind]
    except KeyError:
        raise UserError(f"unknown job kind '{kind}'; known: {', '.join(KINDS)}") from None
    return factory(params)

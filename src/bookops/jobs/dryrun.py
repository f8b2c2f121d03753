"""``--dry-run``: the units a job would create, per operation and provider, and what they would cost.

Nothing is written: the projection reads the book's page flags and book-level flags (or only the
book's sources, for a path not added yet) and mirrors each operation's own ``create_units`` rules,
counting units that only become runnable once upstream work is done (every page of a fresh book
gets an OCR unit even though no page is extracted yet). A job's ``prepare`` step (the resets of
``rerun-toc`` and ``add-ocr-source --rerun-downstream``) is not run; the ops it would reset count as
not done.

The cost of a paid unit is the price table (``settings.prices``, USD per million tokens) applied
to the typical token counts below, measured on real pages (a 300-word body page, a two-page ToC).
An endpoint that reports its own cost (OpenRouter's ``usage.cost``) bills what it bills; the
estimate is meant to be within a factor of two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ops.base import Operation
from ..schema import Book, Page
from ..settings import Settings
from ..store import Store
from .budget import PAID_PROVIDERS
from .kinds import plan

__all__ = ["TYPICAL_TOKENS", "DryRun", "PlannedOp", "dry_run", "unit_estimate"]

# (prompt, completion) tokens of one unit, the structured-output schema included.
TYPICAL_TOKENS: dict[str, tuple[int, int]] = {
    "ocr": (1100, 550),  # a page image at the vision model's detail, and its transcription
    "blend": (1500, 500),  # two or three readings of a page, and the one text
    "label": (900, 50),  # instructions, the head and foot lines, the offline hint (measured 860/30)
    "metadata": (3500, 120),  # the front pages, trimmed (measured 3660/50 on the sample book)
    "toc_find": (1800, 30),  # excerpts of the candidate pages (measured 1670/8)
    "toc_extract": (2000, 900),  # the ToC pages, and every entry as JSON (~30 tokens an entry)
}


def _model(settings: Settings, op: str) -> str | None:
    if op == "ocr":
        return settings.vision_model or settings.llm_model
    return settings.llm_model


def unit_estimate(settings: Settings, op: str, provider: str) -> float | None:
    """USD of one unit from the price table and typical tokens; 0 for unpaid, None when unpriced."""
    if provider not in PAID_PROVIDERS:
        return 0.0
    op = op.split(":", 1)[0]
    model = _model(settings, op)
    price = settings.prices.get(model) if model else None
    tokens = TYPICAL_TOKENS.get(op)
    if price is None or tokens is None:
        return None
    return (tokens[0] * price.input_per_mtok + tokens[1] * price.output_per_mtok) / 1e6


@dataclass
class PlannedOp:
    op: str
    provider: str
    units: int
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "provider": self.provider, "units": self.units, "model": self.model,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6)}


@dataclass
class DryRun:
    kind: str
    book: str
    pages: int
    ops: list[PlannedOp] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def cost_usd(self) -> float | None:
        costs = [o.cost_usd for o in self.ops if o.units]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    @property
    def units(self) -> int:
        return sum(o.units for o in self.ops)

    def as_dict(self) -> dict[str, Any]:
        cost = self.cost_usd
        return {"kind": self.kind, "book": self.book, "pages": self.pages, "units": self.units,
                "cost_usd": None if cost is None else round(cost, 6),
                "ops": [o.as_dict() for o in self.ops], "notes": self.notes}


def _planned(settings: Settings, op: str, provider: str, units: int) -> PlannedOp:
    p = PlannedOp(op=op, provider=provider, units=units)
    if provider in PAID_PROVIDERS:
        p.model = _model(settings, op.split(":", 1)[0])
        pt, ct = TYPICAL_TOKENS.get(op.split(":", 1)[0], (0, 0))
        p.prompt_tokens, p.completion_tokens = pt * units, ct * units
        each = unit_estimate(settings, op, provider)
        p.cost_usd = None if each is None else each * units
    return p


async def dry_run(kind: str, store: Store, settings: Settings, book: Book, *,
                  params: dict[str, Any] | None = None, pages: list[int] | None = None) -> DryRun:
    """What ``run_job(kind, ...)`` would do now on ``book``; reads the store, writes nothing."""
    params = dict(params or {})
    job_plan = plan(kind, params)
    stored = await store.get_book(book.id)
    the_book = stored or book
    page_docs = await store.list_pages(the_book.id, pages=pages) if stored else []
    wanted = sorted(pages) if pages else list(range(1, the_book.page_count + 1))
    by_num = {p.page_num: p for p in page_docs}
    page_list = [by_num.get(n) for n in wanted]

    reset: set[str] = set()
    if kind == "rerun-toc":
        reset = {"toc_find", "toc_extract"}
    ocr_providers = list(params.get("ocr_providers") or settings.ocr_providers)
    if kind == "add-ocr-source":
        new = str(params["provider"])
        existing = list(the_book.ocr_providers or settings.ocr_providers)
        ocr_providers = existing + ([new] if new not in existing else [])
        if params.get("rerun_downstream"):
            reset = {"label", "metadata", "toc_find", "toc_extract"}

    out = DryRun(kind=kind, book=the_book.id, pages=len(wanted))
    if stored is None:
        out.notes.append("the book is not in the store yet: every page counts as new")
    if not settings.prices and settings.llm_configured:
        out.notes.append("no price table (settings.prices): paid units have no cost estimate")
    for op in job_plan.ops:
        out.ops += _project(op, settings, the_book, page_list, ocr_providers, reset)
    return out


def _project(op: Operation, settings: Settings, book: Book, pages: list[Page | None],
             ocr_providers: list[str], reset: set[str]) -> list[PlannedOp]:
    name = op.name
    chosen = getattr(op, "provider", None)
    llm = chosen or settings.provider_for(name)
    if name == "extract":
        n = sum(1 for p in pages if p is None or not p.extracted)
        return [_planned(settings, name, "cpu", n)]
    if name == "ocr":
        engine = getattr(op, "engine", None)
        pool = str(getattr(engine, "pool", chosen or "tesseract"))
        n = sum(1 for p in pages if p is None or not ((st := p.ocr.get(str(chosen))) and st.done))
        return [_planned(settings, f"ocr:{chosen}" if chosen else name, pool, n)]
    if name == "blend":
        provider = "openai" if len(ocr_providers) > 1 and llm == "openai" else "offline"
        n = sum(1 for p in pages if p is None or not _blend_current(p, ocr_providers))
        return [_planned(settings, name, provider, n)]
    if name == "label":
        n = sum(1 for p in pages if p is None or name in reset or not p.labeled)
        done = book.flag(name).state.value == "done" and name not in reset
        return [_planned(settings, name, llm, n),
                _planned(settings, "label:sequence", "offline", int(n > 0 or not done))]
    # book-level: one unit unless done (or failed: a job does not retry it on its own)
    state = book.flag(name).state.value
    n = int(name in reset or state not in ("done", "failed"))
    return [_planned(settings, name, llm, n)]


def _blend_current(page: Page, providers: list[str]) -> bool:
    if not page.blended or page.blend is None:
        return False
    return set(providers) <= set(page.blend.sources) | set(page.blend.dropped)

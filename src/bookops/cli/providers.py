"""The ``bookops providers`` command: each provider, its limits, the ops it serves, and a live check."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import BookopsError
from ..settings import Settings, redact_uri
from ._common import console, load_settings, print_json, run

# Operations that can run on the LLM or offline, in pipeline order.
LLM_CAPABLE = ("blend", "label", "metadata", "toc_find", "toc_extract")
PROVIDERS = ("tesseract", "openai", "offline", "cpu")


def register(app: typer.Typer) -> None:
    app.command("providers")(providers_cmd)


def providers_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each reachability check.")] = 5.0,
) -> None:
    """List the providers, their limits, which operations use them, and whether they answer."""
    settings = load_settings()
    rows = run(lambda: describe(settings, timeout_s=timeout))
    if as_json:
        print_json({"providers": rows})
        return
    table = Table("provider", "reachable", "detail", "used by", "limits")
    for r in rows:
        mark = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[r["reachable"]]
        lim = r["limits"]
        limits = f"conc={lim['concurrency']} rpm={lim['rpm'] or '-'} attempts={lim['max_attempts']} " \
                 f"timeout={lim['timeout_s']:g}s"
        table.add_row(r["name"], mark, r["detail"], ", ".join(r["ops"]) or "-", limits)
    console.print(table)


def ops_by_provider(settings: Settings) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {p: [] for p in PROVIDERS}
    used["cpu"].append("extract")
    for p in settings.ocr_providers:
        used.setdefault(p, []).append("ocr")
    for op in LLM_CAPABLE:
        used[settings.provider_for(op)].append(op)
    return used


async def describe(settings: Settings, *, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    used = ops_by_provider(settings)
    checks = {"tesseract": _check_tesseract(timeout_s), "openai": _check_openai(settings, timeout_s)}
    names = list(checks)
    answers = await asyncio.gather(*checks.values())
    status: dict[str, tuple[bool | None, str]] = dict(zip(names, answers, strict=True))
    status["offline"] = (True, "built-in heuristics")
    status["cpu"] = (True, f"{settings.workers} worker processes")
    rows = []
    for name in used:
        reachable, detail = status.get(name, (None, "unknown provider"))
        row: dict[str, Any] = {"name": name, "reachable": reachable, "detail": detail, "ops": used[name],
                               "limits": settings.limit_for(name).model_dump(mode="json")}
        if name == "openai":
            row["base_url"] = redact_uri(settings.llm_base_url) if settings.llm_base_url else None
            row["model"] = settings.llm_model
            row["vision_model"] = settings.vision_model or settings.llm_model
            row["api_key_set"] = settings.llm_api_key is not None
        rows.append(row)
    return rows


async def _check_tesseract(timeout_s: float) -> tuple[bool, str]:
    from ..providers.tesseract import tesseract_version

    try:
        version = await asyncio.wait_for(asyncio.to_thread(tesseract_version), timeout_s)
    except BookopsError as exc:
        return False, exc.message
    except (TimeoutError, OSError) as exc:
        return False, f"tesseract did not answer: {type(exc).__name__}"
    return True, f"tesseract {version}"


async def _check_openai(settings: Settings, timeout_s: float) -> tuple[bool | None, str]:
    if not settings.llm_configured:
        return None, "not configured (set BOOKOPS_LLM_BASE_URL and/or BOOKOPS_LLM_API_KEY)"
    from ..providers.openai_compat import LlmClient

    try:
        async with LlmClient(settings, timeout_s=timeout_s) as llm:
            models = await llm.list_models(timeout_s=timeout_s)
    except BookopsError as exc:
        return False, exc.message
    detail = f"{len(models)} models"
    for label, model in (("model", settings.llm_model), ("vision model", settings.vision_model)):
        if model and models and model not in models:
            detail += f"; {label} {model!r} not listed"
    return True, detail

"""The ``openai`` OCR engine: a vision model transcribes the page image.

Vision models read degraded print well but invent text on blank pages, fall into repetition
loops and stop at the token limit mid-page; every answer passes :func:`check_transcription`
before it is saved, and a rejected answer is recorded as a failed call, never cached.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from ..errors import InvalidOutput, PermanentError
from ..pools.units import Done, WorkUnit
from ..settings import Settings
from .openai_compat import LlmClient, TextAnswer

if TYPE_CHECKING:
    from ..ops.base import OpContext

__all__ = ["MAX_SIDE", "PageImage", "check_transcription", "load_page_image", "openai_ocr",
           "transcribe"]

log = logging.getLogger(__name__)

# Long side sent to the model: enough for 8-9 pt print on a full page, and the image tokens
# (and the upload) stay a fraction of what a 300 dpi original costs.
MAX_SIDE = 1800
# A dense page is ~1500 tokens; the cap turns a runaway loop into finish_reason=length.
MAX_TOKENS = 4096
# Guards. Characters allowed per unit of dark-pixel share: measured prose runs ~50k, so this is
# ~5x slack for small or thin type; the constant lets a lone folio through on a "blank" page.
CHARS_PER_INK = 250_000
BLANK_ALLOWANCE = 40
MAX_ZLIB_RATIO = 4.5  # prose and ToCs compress 2-3x; a model stuck in a loop far better
MIN_LOOP_CHARS = 400
MAX_LINE_RUN = 5

PROMPT = (
    "This image is one scanned page of a printed book. Transcribe the text printed on it, "
    "exactly as printed, from top to bottom.\n"
    "- Keep the page's line breaks: one output line per printed line, a blank line between "
    "paragraphs or blocks.\n"
    "- Keep spelling, capitalisation, punctuation, numbers, hyphens at line ends, running "
    "heads, page numbers and footnotes as they are. Do not correct, modernise or translate.\n"
    "- In a table of contents or an index keep each entry on its own line with its page "
    "number; write a row of leader dots as three dots.\n"
    "- Where a word cannot be read, give your best reading of its letters; never fill in text "
    "that is not on the page.\n"
    "- If the page has no printed text, answer with an empty message.\n"
    "Answer with the transcription only: no introduction, no comments, no Markdown."
)


@dataclass(frozen=True)
class PageImage:
    data_url: str
    width: int  # of the original file
    height: int
    ink: float  # share of dark pixels inside the margins, 0..1


def load_page_image(path: Path, *, max_side: int = MAX_SIDE) -> PageImage:
    """Downscale, measure ink and encode as a data URL (CPU work: call in a thread)."""
    try:
        with Image.open(path) as src:
            src.load()
            width, height = src.size
            img = src.convert("L") if src.mode not in ("L", "1", "RGB") else src.copy()
    except FileNotFoundError as exc:
        raise PermanentError(f"page image not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise PermanentError(f"not a readable image: {path}: {exc}") from exc
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    ink = _ink_share(img)
    buf = io.BytesIO()
    if img.mode == "1":
        img.save(buf, format="PNG", optimize=True)  # bilevel PNG is small and exact
        mime = "image/png"
    else:
        img.save(buf, format="JPEG", quality=88)
        mime = "image/jpeg"
    url = f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
    return PageImage(url, width, height, ink)


def _ink_share(img: Image.Image) -> float:
    gray = img.convert("L")
    w, h = gray.size
    # scanner shadows and page edges live in the outer margin; they are not print
    mx, my = int(w * 0.05), int(h * 0.05)
    gray = gray.crop((mx, my, max(mx + 1, w - mx), max(my + 1, h - my)))
    hist = gray.histogram()
    total = sum(hist) or 1
    median = _hist_median(hist, total)
    # relative to the paper's own tone, so yellowed paper and faded ink still count right
    thr = max(1, min(200, int(median * 0.75)))
    return sum(hist[:thr]) / total


def _hist_median(hist: list[int], total: int) -> int:
    acc = 0
    for value, count in enumerate(hist):
        acc += count
        if acc * 2 >= total:
            return value
    return 255


def check_transcription(answer: TextAnswer, ink: float) -> None:
    """Raise ``InvalidOutput`` when the answer must not be saved as the page's text."""
    if answer.finish_reason == "length":
        raise InvalidOutput("vision OCR cut off at the token limit (finish_reason=length)")
    text = answer.text
    chars = sum(1 for c in text if not c.isspace())
    allowed = BLANK_ALLOWANCE + ink * CHARS_PER_INK
    if chars > allowed:
        raise InvalidOutput(f"vision OCR wrote {chars} characters on a page with "
                            f"{ink:.3%} ink (at most {int(allowed)} expected): invented text")
    loop = repetition_reason(text)
    if loop:
        raise InvalidOutput(f"vision OCR fell into a repetition loop: {loop}")


def repetition_reason(text: str) -> str | None:
    """Why ``text`` looks like a generation loop, or None."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    run, longest, prev = 0, 0, None
    counts: dict[str, int] = {}
    for ln in lines:
        if len(ln) < 8 or not re.search(r"\w{3}", ln):  # rules, dots, folios repeat legitimately
            prev, run = None, 0
            continue
        run = run + 1 if ln == prev else 1
        prev = ln
        longest = max(longest, run)
        counts[ln] = counts.get(ln, 0) + 1
    if longest >= MAX_LINE_RUN:
        return f"a line repeated {longest} times in a row"
    if counts and lines:
        top = max(counts.values())
        if top >= 8 and top / len(lines) >= 0.3:
            return f"a line repeated {top} times"
    # leaders and rules compress well but are print, not a loop
    squeezed = re.sub(r"(.)\1{3,}", r"\1\1\1", text).encode("utf-8")
    if len(squeezed) >= MIN_LOOP_CHARS:
        ratio = len(squeezed) / len(zlib.compress(squeezed, 9))
        if ratio > MAX_ZLIB_RATIO:
            return f"text compresses {ratio:.1f}x"
    return None


def _strip_fence(text: str) -> str:
    m = re.fullmatch(r"\s*```[a-zA-Z]*\n(.*?)\n?```\s*", text, flags=re.S)
    return m.group(1) if m else text.strip("\n")


def vision_model(settings: Settings) -> str:
    model = settings.vision_model or settings.llm_model
    if not model:
        raise PermanentError("no vision model configured: set BOOKOPS_VISION_MODEL or BOOKOPS_LLM_MODEL")
    return model


async def transcribe(llm: LlmClient, image_path: Path, *, model: str, op: str = "ocr",
                     book: str | None = None, page: int | None = None, job: str | None = None,
                     store: Any = None, use_cache: bool = True) -> Done:
    """Transcribe one page image; ``Done`` of a dict of ``OcrResult`` fields and the usage."""
    img = await asyncio.to_thread(load_page_image, image_path)
    messages = [{"role": "user", "content": [
        {"type": "text", "text": PROMPT},
        {"type": "image_url", "image_url": {"url": img.data_url}},
    ]}]

    def check(answer: TextAnswer) -> None:
        try:
            check_transcription(TextAnswer(_strip_fence(answer.text), answer.finish_reason), img.ink)
        except InvalidOutput as exc:
            log.warning("page %s: %s", page, exc.message)
            raise

    done = await llm.text(messages, model=model, op=op, book=book, page=page, job=job, store=store,
                          use_cache=use_cache, check=check, max_tokens=MAX_TOKENS)
    answer: TextAnswer = done.value
    fields: dict[str, Any] = {
        "text": _strip_fence(answer.text),
        "confidence": None,  # the model reports none; blending weighs it by source instead
        "words": [],
        "image_width": img.width,
        "image_height": img.height,
        "engine_version": f"openai:{model}",
        "model": model,
    }
    return Done(fields, done.usage)


def image_path_for(ctx: OpContext, unit: WorkUnit, page_image: str | None) -> Path:
    raw = unit.payload.get("image_path") or unit.payload.get("image") or page_image
    if not raw:
        raise PermanentError(f"page {unit.page} has no image yet (run extract first)")
    path = Path(str(raw))
    return path if path.is_absolute() else ctx.settings.home / path


async def openai_ocr(ctx: OpContext, unit: WorkUnit) -> Done:
    """The OCR engine entry point: (ctx, unit) -> Done(OcrResult fields, Usage)."""
    assert unit.page is not None, "OCR units are page units"
    page_image = None
    if not (unit.payload.get("image_path") or unit.payload.get("image")):
        page = await ctx.store.get_page(unit.book, unit.page)
        page_image = page.image.path if page is not None and page.image is not None else None
    path = image_path_for(ctx, unit, page_image)
    return await transcribe(ctx.dispatcher.llm(), path, model=vision_model(ctx.settings), op="ocr",
                            book=unit.book, page=unit.page, job=ctx.job_id, store=ctx.store,
                            use_cache=ctx.use_cache)

"""Tesseract through pytesseract: one page image in, text with word boxes out.

Runs in a CPU-pool worker (``OMP_THREAD_LIMIT=1`` is set there); arguments are paths and
plain values so they pickle, and the result is a plain dict of ``OcrResult`` fields.
No retries here: failures are mapped to ``PermanentError`` / ``TransientError`` for the pool.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytesseract
from PIL import Image, UnidentifiedImageError

from ..errors import PermanentError, TransientError

__all__ = ["LOW_CONF", "UPSCALE_BELOW_DPI", "UPSCALE_TO_DPI", "build_text", "ocr_image",
           "tesseract_version"]

# Images under this resolution are enlarged to it before OCR. Measured on 14 body pages of the
# 150 dpi dev corpus (LANCZOS): CER 0.0297 as is, 0.0202 at 225 dpi, 0.0200 at 300 dpi, with
# 225 dpi about 20 % faster than 300 (and ~35 % slower than no upscale).
UPSCALE_BELOW_DPI = 225
UPSCALE_TO_DPI = 225
# Words under this confidence (0..100) count as "low confidence" in the quality metrics.
LOW_CONF = 50.0
# Tesseract's own default when an image carries no resolution; tells it the scale of glyphs.
_FALLBACK_DPI = 300


def tesseract_version() -> str:
    try:
        return str(pytesseract.get_tesseract_version())
    except pytesseract.TesseractNotFoundError as exc:
        raise PermanentError("tesseract is not installed or not on PATH") from exc


def ocr_image(image_path: str, lang: str = "eng", dpi: int | None = None, *,
              upscale: bool = True, timeout_s: float = 0) -> dict[str, Any]:
    """OCR one image; word boxes are in the pixel coordinates of the file at ``image_path``.

    Returns ``text`` (reading order, a line per line, a blank line between blocks), ``words``,
    ``confidence`` (mean over words, 0..1, None when no word), ``image_width``/``image_height``,
    ``engine_version``, ``dpi`` (what tesseract was told) and ``scale`` (the upscale factor used).
    """
    # OpenMP threads of parallel tesseracts fight each other (6.2 s/page against 1.1): the CPU
    # pool sets this in its workers, and a direct call (notebook, bench) gets it too
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    with _open_image(image_path) as img:
        width, height = img.size
        src_dpi = dpi or _file_dpi(img)
        scale = 1.0
        if upscale and src_dpi is not None and src_dpi < UPSCALE_BELOW_DPI:
            scale = UPSCALE_TO_DPI / src_dpi
        ocr_dpi = round((src_dpi or _FALLBACK_DPI) * scale)
        if scale != 1.0:
            target: Image.Image | str = _prepare(img).resize(
                (round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
        else:
            # a path goes to tesseract as it is: no re-encode of the page in this process
            target = image_path
        data = _run(target, lang, ocr_dpi, timeout_s)
    words = _words(data, 1.0 / scale, width, height)
    confs = [w["conf"] for w in words]
    return {
        "text": build_text(words),
        "words": words,
        "confidence": round(sum(confs) / len(confs) / 100.0, 4) if confs else None,
        "image_width": width,
        "image_height": height,
        "engine_version": tesseract_version(),
        "dpi": ocr_dpi,
        "scale": round(scale, 4),
    }


def build_text(words: Sequence[Mapping[str, Any]]) -> str:
    """Words (in tesseract's reading order) to text: lines by line id, blocks by a blank line."""
    blocks: list[list[str]] = []
    line_words: list[str] = []
    cur_block: int | None = None
    cur_line: tuple[int, int, int] | None = None
    for w in words:
        key = (int(w["block"]), int(w["par"]), int(w["line"]))
        if key != cur_line:
            if line_words:
                blocks[-1].append(" ".join(line_words))
            line_words = []
            if key[0] != cur_block:
                blocks.append([])
                cur_block = key[0]
            cur_line = key
        line_words.append(str(w["text"]))
    if line_words:
        blocks[-1].append(" ".join(line_words))
    return "\n\n".join("\n".join(lines) for lines in blocks if lines)


# ---------------------------------------------------------------------------------------- helpers

@contextmanager
def _open_image(path: str) -> Iterator[Image.Image]:
    try:
        img = Image.open(path)
    except FileNotFoundError as exc:
        raise PermanentError(f"page image not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise PermanentError(f"not a readable image: {path}: {exc}") from exc
    try:
        yield img
    finally:
        img.close()


def _file_dpi(img: Image.Image) -> int | None:
    dpi = img.info.get("dpi")
    try:
        value = round(float(dpi[0])) if dpi else None
    except (TypeError, ValueError, IndexError):
        return None
    # 1 or 72 dpi is what editors write when they know nothing; no page is scanned that coarse
    return value if value and value >= 100 else None


def _prepare(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except OSError as exc:
        raise PermanentError(f"truncated or corrupt image: {exc}") from exc
    if img.mode not in ("L", "RGB"):
        return img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK") else "L")
    return img


def _run(target: Image.Image | str, lang: str, dpi: int, timeout_s: float) -> dict[str, list[Any]]:
    try:
        data = pytesseract.image_to_data(target, lang=lang, config=f"--dpi {dpi}",
                                         output_type=pytesseract.Output.DICT, timeout=timeout_s)
    except pytesseract.TesseractNotFoundError as exc:
        raise PermanentError("tesseract is not installed or not on PATH") from exc
    except pytesseract.TesseractError as exc:
        raise _map_tesseract_error(exc) from exc
    except RuntimeError as exc:  # pytesseract's timeout: the process was killed by us
        raise TransientError(f"tesseract: {exc}") from exc
    except (subprocess.SubprocessError, OSError) as exc:
        raise TransientError(f"tesseract could not run: {exc}") from exc
    return dict(data)


def _map_tesseract_error(exc: pytesseract.TesseractError) -> Exception:
    status = exc.status
    msg = str(exc.message).strip()[:300]
    # negative: killed by a signal (OOM killer, shutdown); may pass on another try
    if isinstance(status, int) and status < 0:
        return TransientError(f"tesseract killed by signal {-status}: {msg}")
    if "Failed loading language" in msg or "Error opening data file" in msg:
        return PermanentError(f"tesseract language data missing: {msg}")
    return PermanentError(f"tesseract failed (exit {status}): {msg}")


def _words(data: Mapping[str, list[Any]], factor: float, width: int,
           height: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, text in enumerate(data.get("text", [])):
        text = (text or "").strip()
        if int(data["level"][i]) != 5 or not text:
            continue
        conf = float(data["conf"][i])
        if conf < 0:
            continue
        left = min(max(0, round(int(data["left"][i]) * factor)), width)
        top = min(max(0, round(int(data["top"][i]) * factor)), height)
        out.append({
            "text": text,
            "conf": round(conf, 2),
            "left": left,
            "top": top,
            "width": min(round(int(data["width"][i]) * factor), width - left),
            "height": min(round(int(data["height"][i]) * factor), height - top),
            "block": int(data["block_num"][i]),
            "par": int(data["par_num"][i]),
            "line": int(data["line_num"][i]),
        })
    return out



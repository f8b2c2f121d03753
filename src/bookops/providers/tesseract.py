"""Tesseract through pytesseract: one page image in, text with word boxes out.

Runs in a CPU-pool worker (``OMP_THREAD_LIMIT=1`` is set there); arguments are paths and
plain values so they pickle, and the result is a plain dict of ``OcrResult`` fields.
No retries here: failures are mapped to ``PermanentError`` / ``TransientError`` for the pool.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytesseract
from PIL import Image

from ..errors import PermanentError, TransientError
from .images import file_dpi, open_image
from .preprocess import ink_mask, ink_rows, remove_leader_dots, skew_angle

__all__ = ["LOW_CONF", "UPSCALE_BELOW_DPI", "UPSCALE_TO_DPI", "build_text", "ocr_careful", "ocr_image",
           "ocr_margin_lines", "tesseract_version"]

# With ``upscale=True``, images under this resolution are enlarged to it before OCR. Measured on 14
# body pages of the 150 dpi dev corpus (LANCZOS): CER 0.0297 as is, 0.0202 at 225 dpi, 0.0200 at
# 300 dpi, with 225 dpi about 20 % faster than 300 but ~1.5x the time of no upscale: off by default,
# the page as it is reads well enough, and the targeted passes below spend the time where it counts.
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
              upscale: bool = False, timeout_s: float = 0) -> dict[str, Any]:
    """OCR one image; word boxes are in the pixel coordinates of the file at ``image_path``.

    Returns ``text`` (reading order, a line per line, a blank line between blocks), ``words``,
    ``confidence`` (mean over words, 0..1, None when no word), ``image_width``/``image_height``,
    ``engine_version``, ``dpi`` (what tesseract was told) and ``scale`` (the upscale factor used).
    """
    return ocr_images([image_path], lang, [dpi], upscale=upscale, timeout_s=timeout_s)[0]


def ocr_images(image_paths: Sequence[str], lang: str = "eng", dpis: Sequence[int | None] | None = None, *,
               upscale: bool = False, timeout_s: float = 0) -> list[dict[str, Any]]:
    """``ocr_image`` of several images, through one tesseract process per resolution.

    Starting tesseract and loading its model costs ~0.1 s of CPU a call, a sixth of reading a
    150 dpi page; read as the pages of one list file, the images give the same words, boxes and
    confidences as read one by one. ``timeout_s`` is per image.
    """
    dpis = list(dpis) if dpis is not None else [None] * len(image_paths)
    with tempfile.TemporaryDirectory(prefix="bookops-tess-") as tmp:
        plans = [_plan(path, dpi, upscale, os.path.join(tmp, f"{i:03d}"))
                 for i, (path, dpi) in enumerate(zip(image_paths, dpis, strict=True))]
        data: list[dict[str, list[Any]] | None] = [None] * len(plans)
        for ocr_dpi in sorted({plan.dpi for plan in plans}):
            group = [i for i, plan in enumerate(plans) if plan.dpi == ocr_dpi]
            targets = [plans[i].target for i in group]
            if len(group) == 1:
                read = [_run(targets[0], lang, ocr_dpi, timeout_s)]
            else:
                read = _split_pages(_run(_listing(targets, tmp, ocr_dpi), lang, ocr_dpi,
                                         timeout_s * len(group)), len(group))
            for i, page in zip(group, read, strict=True):
                data[i] = page
    out: list[dict[str, Any]] = []
    for plan, got in zip(plans, data, strict=True):
        assert got is not None
        out.append(_result(_words(got, 1.0 / plan.scale, plan.width, plan.height), plan.width,
                           plan.height, plan.dpi, plan.scale))
    return out


def read_pages(key: Hashable, items: list[tuple[str, int | None]]) -> list[dict[str, Any]]:
    """``ocr_images`` for the CPU pool's batcher: ``key`` is ``(lang, upscale, timeout_s)``, each
    item a ``(path, dpi)``."""
    lang, upscale, timeout_s = cast(tuple[str, bool, float], key)
    return ocr_images([path for path, _ in items], lang, [dpi for _, dpi in items],
                      upscale=upscale, timeout_s=timeout_s)


@dataclass(frozen=True)
class _Plan:
    """How one image goes to tesseract: the file as it is, or an upscaled copy."""

    target: str
    width: int
    height: int
    dpi: int
    scale: float


def _plan(image_path: str, dpi: int | None, upscale: bool, stem: str) -> _Plan:
    with open_image(image_path) as img:
        width, height = img.size
        src_dpi = dpi or file_dpi(img)
        scale = 1.0
        if upscale and src_dpi is not None and src_dpi < UPSCALE_BELOW_DPI:
            scale = UPSCALE_TO_DPI / src_dpi
        ocr_dpi = round((src_dpi or _FALLBACK_DPI) * scale)
        if scale == 1.0:
            # a path goes to tesseract as it is: no re-encode of the page in this process
            return _Plan(image_path, width, height, ocr_dpi, scale)
        big = _prepare(img).resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
    return _Plan(_save_raw(big, stem), width, height, ocr_dpi, scale)


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

def _result(words: list[dict[str, Any]], width: int, height: int, dpi: int | None,
            scale: float) -> dict[str, Any]:
    """OcrResult fields: text in reading order, words in stored-image pixels, mean confidence 0..1."""
    confs = [w["conf"] for w in words]
    return {
        "text": build_text(words),
        "words": words,
        "confidence": round(sum(confs) / len(confs) / 100.0, 4) if confs else None,
        "image_width": width,
        "image_height": height,
        "engine_version": tesseract_version(),
        "dpi": dpi,
        "scale": round(scale, 4),
    }


def _prepare(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except OSError as exc:
        raise PermanentError(f"truncated or corrupt image: {exc}") from exc
    if img.mode not in ("L", "RGB"):
        return img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK") else "L")
    return img


def _run(target: Image.Image | str, lang: str, dpi: int, timeout_s: float,
         extra: str = "") -> dict[str, list[Any]]:
    # OpenMP threads of parallel tesseracts fight each other (6.2 s/page against 1.1): the CPU
    # pool sets this in its workers, and a direct call (notebook, bench) gets it here
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    if isinstance(target, Image.Image):
        with tempfile.TemporaryDirectory(prefix="bookops-tess-") as tmp:
            return _run(_save_raw(target, os.path.join(tmp, "page")), lang, dpi, timeout_s, extra)
    try:
        data = pytesseract.image_to_data(target, lang=lang, config=f"--dpi {dpi} {extra}".strip(),
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


def _save_raw(img: Image.Image, stem: str) -> str:
    """Write ``img`` uncompressed (PGM/PPM) for tesseract: a twentieth of the time of the PNG
    pytesseract would encode, for an image that lives a fraction of a second."""
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK") else "L")
    path = stem + (".pgm" if img.mode == "L" else ".ppm")
    img.save(path, format="PPM")
    return path


def _run_many(images: Sequence[Image.Image], lang: str, dpi: int, timeout_s: float,
              extra: str = "") -> list[dict[str, list[Any]]]:
    """Several small images through one tesseract process (a list file: one page per image).

    Starting tesseract and loading its model costs more than reading a line (~0.25 s against
    a few ms), so the lines of one page go in one call. One answer per image, in order.
    """
    if not images:
        return []
    with tempfile.TemporaryDirectory(prefix="bookops-tess-") as tmp:
        paths = [_save_raw(im, os.path.join(tmp, f"{i:03d}")) for i, im in enumerate(images)]
        data = _run(_listing(paths, tmp, dpi), lang, dpi, timeout_s, extra)
    return _split_pages(data, len(images))


def _listing(paths: Sequence[str], tmp: str, tag: int) -> str:
    """A list file of images: tesseract reads each as one page of a multi-page document."""
    listing = os.path.join(tmp, f"pages-{tag}.txt")
    with open(listing, "w", encoding="utf-8") as fh:
        fh.write("\n".join(paths) + "\n")
    return listing


def _split_pages(data: Mapping[str, list[Any]], n: int) -> list[dict[str, list[Any]]]:
    """The rows of a multi-page reading, one dict per page (1-based ``page_num``), in order."""
    out: list[dict[str, list[Any]]] = [{k: [] for k in data} for _ in range(n)]
    for i, page in enumerate(data.get("page_num", [])):
        k = int(page) - 1
        if 0 <= k < n:
            for key, values in data.items():
                out[k][key].append(values[i])
    return out


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
           height: int, dx: int = 0, dy: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, text in enumerate(data.get("text", [])):
        text = (text or "").strip()
        if int(data["level"][i]) != 5 or not text:
            continue
        conf = float(data["conf"][i])
        if conf < 0:
            continue
        left = min(max(0, dx + round(int(data["left"][i]) * factor)), width)
        top = min(max(0, dy + round(int(data["top"][i]) * factor)), height)
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




# ---------------------------------------------------------------------------------- targeted passes

# The targeted passes read small type at this resolution at least (tesseract is trained on ~300 dpi
# text; a lone digit at 150 dpi is ~12 px tall and often dropped as noise).
PASS_DPI = 300
# A margin line is looked for within this share of the page height from the top and the bottom edge.
MARGIN_SHARE = 0.25


def ocr_margin_lines(image_path: str, lang: str = "eng", dpi: int | None = None, *,
                     timeout_s: float = 0) -> dict[str, Any]:
    """Re-read the outermost ink line at the head and at the foot of the page, one line each.

    This is where folios sit, and where full-page OCR loses them: a lone "7" in a corner or at the
    foot is dropped by the layout analysis, a "7 / 57" next to a rule comes out as "7157". Each line
    is cut out on its own, cleaned against the local paper tone, enlarged to 300 dpi and read as a
    single text line (psm 7). Returns ``words`` (page pixel coordinates) and ``bands`` (the
    ``(top, bottom)`` rows each read covers, so callers replace what the page OCR had there).
    """
    gray, src_dpi = _open_gray(image_path, dpi)
    width, height = gray.size
    mask = ink_mask(gray)
    bands = _text_bands(mask, src_dpi)
    # a text line is at most ~3 lines of body type tall; a taller band is a picture or a smear
    max_h = 0.06 * height
    picked: list[tuple[int, int]] = []
    for band in (bands[:1], bands[-1:]):
        for top, bottom in band:
            near_edge = bottom <= MARGIN_SHARE * height or top >= (1 - MARGIN_SHARE) * height
            if near_edge and bottom - top <= max_h and (top, bottom) not in picked:
                picked.append((top, bottom))
    if not picked:
        return {"words": [], "bands": [], "image_width": width, "image_height": height}
    scale = max(1.0, PASS_DPI / src_dpi)
    lines: list[Image.Image] = []
    tops: list[int] = []
    for top, bottom in picked:
        pad = max(2, (bottom - top) // 2)
        y0, y1 = max(0, top - pad), min(height, bottom + pad)
        # the cleaned line (black on white), not the grey one: tesseract's global threshold would
        # turn the paper texture of a mostly empty strip into glyphs
        line = mask.crop((0, y0, width, y1)).point(lambda v: 0 if v else 255)
        lines.append(line.resize((round(width * scale), round((y1 - y0) * scale)), Image.Resampling.LANCZOS))
        tops.append(y0)
    words: list[dict[str, Any]] = []
    for data, y0 in zip(_run_many(lines, lang, round(src_dpi * scale), timeout_s, "--psm 7"), tops,
                        strict=True):
        words += _words(data, 1.0 / scale, width, height, 0, y0)
    return {"words": words, "bands": picked, "image_width": width, "image_height": height}


def _open_gray(image_path: str, dpi: int | None) -> tuple[Image.Image, int]:
    """The page in grey, and its resolution (given, else the file's, else tesseract's default)."""
    with open_image(image_path) as img:
        return _prepare(img).convert("L"), dpi or file_dpi(img) or _FALLBACK_DPI


def _text_bands(mask: Image.Image, dpi: int) -> list[tuple[int, int]]:
    """Rows of ink of the page's ``ink_mask``: text lines, rules and borders left out."""
    return ink_rows(_without_borders(mask), min_height=max(3, round(5 * dpi / 300)))


def _without_borders(mask: Image.Image) -> Image.Image:
    """The ink mask with columns inked down most of the page (scan borders, gutter shadows) cleared:
    they would join every row into one band."""
    w, h = mask.size
    cols = mask.resize((w, 1), Image.Resampling.BOX).tobytes()
    heavy = [x for x, v in enumerate(cols) if v > 0.5 * 255]
    if not heavy:
        return mask
    out = mask.copy()
    for x in heavy:
        out.paste(0, (x, 0, x + 1, h))
    return out


def ocr_careful(image_path: str, lang: str = "eng", dpi: int | None = None, *,
                scale_to: int = 150, timeout_s: float = 0) -> dict[str, Any]:
    """A slower, more careful read for the few pages whose layout matters (table of contents).

    The page is de-skewed (a right-hand page number must stay on its title's row), leader dots are
    painted out (tesseract reads a title followed by a leader as garbage), a page under ``scale_to``
    dpi is enlarged to it (on the dev ToC pages at 150 dpi, entry F1 was within 0.01 as they are,
    at 200 and at 225 dpi, at up to 1.5x the time) and read as one column of lines of varying size
    (psm 4). Then the right-hand number column, when the page has one, is read again on its own
    (tesseract drops isolated short numbers once the leaders are gone). Word boxes are in the
    pixels of the de-skewed page, which has the size of the file; ``angle`` says how much it turned.
    """
    gray, src_dpi = _open_gray(image_path, dpi)
    width, height = gray.size
    angle = skew_angle(gray)
    if angle:
        gray = gray.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    clean = remove_leader_dots(gray, src_dpi)
    scale = max(1.0, scale_to / src_dpi)
    target = clean if scale == 1.0 else clean.resize((round(width * scale), round(height * scale)),
                                                     Image.Resampling.LANCZOS)
    data = _run(target, lang, round(src_dpi * scale), timeout_s, "--psm 4")
    words = _words(data, 1.0 / scale, width, height)
    words = _merge_column(words, _number_column(clean, src_dpi, lang, timeout_s))
    return {**_result(words, width, height, round(src_dpi * scale), scale), "angle": angle}


def _number_column(clean: Image.Image, src_dpi: int, lang: str, timeout_s: float) -> list[dict[str, Any]]:
    """Words of the right-aligned column that most rows end in, read on its own; [] when none."""
    mask = ink_mask(clean)
    width, height = mask.size
    rows = _text_bands(mask, src_dpi)
    rights: list[int] = []
    for top, bottom in rows:
        box = mask.crop((0, top, width, bottom)).getbbox()
        if box:
            rights.append(box[2])
    if len(rights) < 3:
        return []
    heights = sorted(b - t for t, b in rows)
    line_h = heights[len(heights) // 2]
    # right-aligned numbers end at the same x (within a line height); ragged text does not
    x_r, count = max(((r, sum(1 for o in rights if abs(o - r) <= line_h)) for r in rights),
                     key=lambda rc: (rc[1], rc[0]))
    if count < max(3, 0.3 * len(rights)):
        return []
    x0, x1 = max(0, x_r - 5 * line_h), min(width, x_r + line_h)
    scale = max(1.0, PASS_DPI / src_dpi)
    col = mask.crop((x0, 0, x1, height)).point(lambda v: 0 if v else 255)
    col = col.resize((round((x1 - x0) * scale), round(height * scale)), Image.Resampling.LANCZOS)
    data = _run(col, lang, round(src_dpi * scale), timeout_s, "--psm 6")
    out = _words(data, 1.0 / scale, width, height, x0, 0)
    # only what lies wholly inside the column: a title cut at the column edge reads as garbage
    return [w for w in out if w["left"] > x0 + 2 and any(c.isalnum() for c in w["text"])]


_LOOKALIKE = str.maketrans({"l": "1", "I": "1", "i": "1", "|": "1", "!": "1", "O": "0", "o": "0",
                            "S": "5", "B": "8", "Z": "2", "z": "2"})


def _as_number(text: str, arabic_column: bool) -> str | None:
    """A page reference as printed ("12", "xiv"), a likely misread of one in an arabic column
    ("il" -> "11"), or None."""
    from ..understand.roman import roman_value

    t = text.strip(".,:;·'\"‘’()[]|")
    if t.isdigit():
        return t
    if arabic_column:
        digits = t.translate(_LOOKALIKE)
        if digits.isdigit():
            return digits
    return t if roman_value(t) is not None else None


def _merge_column(words: list[dict[str, Any]], column: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Page words with the number column's readings: a column number replaces the short page words it
    covers when the page did not read a number there as surely, or is added where the page read
    nothing."""
    if not column:
        return words
    arabic = sum(str(c["text"]).strip(".,").isdigit() for c in column) >= 0.7 * len(column)
    out = list(words)
    block = max((int(w["block"]) for w in words), default=0) + 1
    for k, c in enumerate(column):
        number = _as_number(str(c["text"]), arabic)
        if number is None:
            continue
        hit = [i for i, w in enumerate(out) if _overlap(w, c) > 0.5]
        if any(len(str(out[i]["text"])) > 6 for i in hit):
            continue  # it overlaps a title word: the page's reading of that row stands
        if any(_as_number(str(out[i]["text"]), False) is not None and out[i]["conf"] >= c["conf"]
               for i in hit):
            continue  # the page read a number there at least as surely
        for i in sorted(hit, reverse=True):
            del out[i]
        word = {**c, "text": number}
        # join the tesseract line of its row, right after that line's last word: the text then
        # reads "title 29", and the row's slope (used to rebuild visual rows) includes the number
        same_row = [i for i, w in enumerate(out) if _v_overlap(w, c) > 0.5 and w["left"] < c["left"]]
        if same_row:
            row = out[max(same_row, key=lambda i: out[i]["left"])]
            key = (row["block"], row["par"], row["line"])
            at = max(i for i, w in enumerate(out) if (w["block"], w["par"], w["line"]) == key) + 1
            out.insert(at, {**word, "block": key[0], "par": key[1], "line": key[2]})
        else:
            out.append({**word, "block": block, "par": 1, "line": k + 1})
    return out


def _v_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Vertical overlap of two word boxes over the shorter one's height."""
    iy = min(a["top"] + a["height"], b["top"] + b["height"]) - max(a["top"], b["top"])
    return max(0.0, float(iy) / max(1, min(a["height"], b["height"])))


def _overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Intersection of two word boxes over the smaller one's area."""
    ix = min(a["left"] + a["width"], b["left"] + b["width"]) - max(a["left"], b["left"])
    iy = min(a["top"] + a["height"], b["top"] + b["height"]) - max(a["top"], b["top"])
    if ix <= 0 or iy <= 0:
        return 0.0
    small = min(a["width"] * a["height"], b["width"] * b["height"]) or 1
    return float(ix * iy) / small

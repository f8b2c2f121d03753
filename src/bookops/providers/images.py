"""Page image files: atomic writes, and normalisation of the images of an image-folder book.

Functions here run in CPU-pool workers: arguments are paths and plain values, results are
plain dicts shaped like ``ImageInfo`` (with an absolute ``path``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

from ..errors import PermanentError

__all__ = ["PAGE_EXTS", "copy_atomic", "image_info", "is_gray", "normalise_image", "save_image",
           "write_atomic"]

# Every extension a page file may have; a new file of one kind removes a stale one of another.
PAGE_EXTS = (".png", ".jpg", ".jp2")
# Below this an image's stated resolution is an editor default (1, 72, 96), not a scan's.
_MIN_PLAUSIBLE_DPI = 100


def write_atomic(data: bytes, out_stem: str, ext: str) -> Path:
    """Write ``data`` to ``out_stem + ext`` through a temp file and a rename.

    A crash leaves the old file or the new one, never half an image; a page file of another
    extension (from an earlier run with other settings) is removed so one page has one file.
    """
    def fill(fh: BinaryIO) -> None:
        fh.write(data)

    return _commit(fill, out_stem, ext)


def copy_atomic(src: str, out_stem: str, ext: str) -> Path:
    """Copy the file ``src`` to ``out_stem + ext`` with the guarantees of :func:`write_atomic`."""
    def fill(fh: BinaryIO) -> None:
        with open(src, "rb") as inp:
            shutil.copyfileobj(inp, fh, 1 << 20)

    return _commit(fill, out_stem, ext)


def _commit(fill: Callable[[BinaryIO], None], out_stem: str, ext: str) -> Path:
    target = Path(out_stem + ext)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    for other in PAGE_EXTS:
        if other != ext:
            with contextlib.suppress(OSError):
                os.unlink(out_stem + other)
    return target


def save_image(img: Image.Image, out_stem: str, *, dpi: int | None) -> Path:
    """Encode ``img`` as PNG (with its resolution when known) and write it atomically."""
    buf = io.BytesIO()
    params: dict[str, Any] = {"compress_level": 6}
    if dpi:
        params["dpi"] = (dpi, dpi)
    img.save(buf, format="PNG", **params)
    return write_atomic(buf.getvalue(), out_stem, ".png")


def image_info(path: Path, *, width: int, height: int, dpi: int | None, method: str) -> dict[str, Any]:
    return {"path": str(path), "sha256": _sha256_file(path), "width": width, "height": height,
            "dpi": dpi, "method": method}


def is_gray(img: Image.Image) -> bool:
    """True when an RGB image has R == G == B everywhere."""
    if img.mode in ("L", "1", "I", "I;16", "F"):
        return True
    rgb = img.convert("RGB")
    r, g, b = rgb.split()
    return ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(r, b).getbbox() is None


def normalise_image(src_path: str, out_stem: str) -> dict[str, Any]:
    """One image of an image-folder book -> the page file: upright, 8-bit L or RGB.

    EXIF orientation is applied; CMYK, palette, alpha, 1-bit and 16-bit images become L or RGB
    (alpha on white). A PNG or JPEG that needs no change is copied byte for byte (``.png`` /
    ``.jpg``), which keeps the scanner's pixels and costs no encode.
    """
    with open_image(src_path) as img:
        dpi = file_dpi(img)
        fmt = img.format
        rotated = img.getexif().get(ImageOps.ExifTags.Base.Orientation, 1) not in (0, 1)
        if not rotated and img.mode in ("L", "RGB") and fmt in ("PNG", "JPEG"):
            out = copy_atomic(src_path, out_stem, ".png" if fmt == "PNG" else ".jpg")
            return image_info(out, width=img.width, height=img.height, dpi=dpi, method="image")
        try:
            upright = ImageOps.exif_transpose(img)
            page = _to_l_or_rgb(upright)
        except OSError as exc:
            raise PermanentError(f"truncated or corrupt image: {src_path}: {exc}") from exc
    out = save_image(page, out_stem, dpi=dpi)
    return image_info(out, width=page.width, height=page.height, dpi=dpi, method="image")


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit gray: scale to 8 bits rather than clip (PIL's convert("L") clips at 255)
        return img.point(lambda v: v / 257).convert("L")
    if mode == "F":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "PA", "RGBA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode == "1":
        return img.convert("L")
    elif mode != "L":
        # CMYK, YCbCr, LAB, RGBX ...: PIL's conversion is good enough for OCR input
        img = img.convert("RGB")
    if img.mode == "RGB" and is_gray(img):
        return img.convert("L")
    return img


@contextlib.contextmanager
def open_image(path: str) -> Iterator[Image.Image]:
    """Open an image file, closed after; a missing or unreadable file is a PermanentError."""
    try:
        img = Image.open(path)
    except FileNotFoundError as exc:
        raise PermanentError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise PermanentError(f"not a readable image: {path}: {exc}") from exc
    try:
        yield img
    finally:
        img.close()


def file_dpi(img: Image.Image) -> int | None:
    """The resolution the file declares, or None when absent or implausibly coarse."""
    dpi = img.info.get("dpi")
    try:
        value = round(float(dpi[0])) if dpi else None
    except (TypeError, ValueError, IndexError):
        return None
    return value if value and value >= _MIN_PLAUSIBLE_DPI else None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

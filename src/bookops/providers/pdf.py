"""One PDF page -> one page image file, in a CPU-pool worker.

A scan page that is a single full-page image is copied out with its original pixels (a JPEG
keeps its bytes); any other page is rendered at the requested resolution. The image is always
taken from the objects drawn on *that* page, never by counting image objects through the file:
files store images in any order, and matching by order is how "page 8 shows the OCR of page 78"
happens. One page per call and the document closed after it, so memory does not grow with the
book; arguments are paths and ints so the call pickles.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from ..errors import PermanentError
from .images import image_info, is_gray, save_image, write_atomic

__all__ = ["COVERAGE", "extract_page", "find_page_image"]

Renderer = Literal["pdfium", "poppler"]

# Share of the page an image must cover to count as "the scan" (img2pdf and scanners place it
# edge to edge; a small margin allows for rounding and slightly cropped scans).
COVERAGE = 0.95
_PT_PER_INCH = 72.0


def extract_page(pdf_path: str, index: int, out_stem: str, dpi: int = 300,
                 renderer: Renderer = "pdfium") -> dict[str, Any]:
    """Write page ``index`` (0-based) of ``pdf_path`` to ``out_stem`` + ``.jpg``/``.png``.

    Returns ``ImageInfo`` fields with an absolute ``path``; ``method`` is ``embedded`` when the
    page's own image was copied out, ``rendered`` otherwise.
    """
    try:
        pdf = pdfium.PdfDocument(pdf_path)
    except FileNotFoundError as exc:
        raise PermanentError(f"PDF not found: {pdf_path}") from exc
    except pdfium.PdfiumError as exc:
        raise PermanentError(f"cannot open PDF {pdf_path}: {exc}") from exc
    try:
        if not 0 <= index < len(pdf):
            raise PermanentError(f"{pdf_path} has {len(pdf)} pages; no page index {index}")
        page = pdf[index]
        try:
            embedded = _copy_embedded(page, out_stem)
            if embedded is not None:
                return embedded
            if renderer == "poppler":
                img = _render_poppler(pdf_path, index, dpi)
            else:
                img = _render_pdfium(page, dpi)
        finally:
            page.close()
    finally:
        pdf.close()
    if is_gray(img):
        img = img.convert("L")
    out = save_image(img, out_stem, dpi=dpi)
    return image_info(out, width=img.width, height=img.height, dpi=dpi, method="rendered")


def find_page_image(page: pdfium.PdfPage) -> pdfium.PdfImage | None:
    """The image that is this whole page, or None when the page draws anything else.

    Allowed besides the one image: form containers and invisible text (an OCR layer).
    The image must be upright (no rotation or mirror) and cover ``COVERAGE`` of the crop box,
    and the page itself must not be rotated, or copying it would not give what is seen.
    """
    if page.get_rotation() % 360:
        return None
    found: pdfium.PdfImage | None = None
    for obj in page.get_objects():
        if obj.type == pdfium_c.FPDF_PAGEOBJ_FORM:
            continue
        if obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT and _invisible_text(obj):
            continue
        if obj.type != pdfium_c.FPDF_PAGEOBJ_IMAGE or found is not None:
            return None
        assert isinstance(obj, pdfium.PdfImage)
        found = obj
    if found is None or not _upright(found):
        return None
    left, bottom, right, top = page.get_cropbox()
    page_area = abs(right - left) * abs(top - bottom)
    il, ib, ir, it = found.get_bounds()
    overlap_w = max(0.0, min(ir, right) - max(il, left))
    overlap_h = max(0.0, min(it, top) - max(ib, bottom))
    if page_area <= 0 or overlap_w * overlap_h < COVERAGE * page_area:
        return None
    return found


# ---------------------------------------------------------------------------------------- helpers

def _copy_embedded(page: pdfium.PdfPage, out_stem: str) -> dict[str, Any] | None:
    img_obj = find_page_image(page)
    if img_obj is None:
        return None
    px_w, px_h = img_obj.get_px_size()
    il, _, ir, _ = img_obj.get_bounds()
    width_in = abs(ir - il) / _PT_PER_INCH
    dpi = round(px_w / width_in) if width_in > 0 else None
    meta = img_obj.get_metadata()
    filters = img_obj.get_filters()
    if filters == ["DCTDecode"] and meta.colorspace in (
            pdfium_c.FPDF_COLORSPACE_DEVICEGRAY, pdfium_c.FPDF_COLORSPACE_DEVICERGB):
        # The stream is a complete JPEG file: copy it byte for byte. CMYK JPEGs are left to
        # the bitmap path below, since PDF writers often store them inverted (Adobe APP14).
        out = write_atomic(bytes(img_obj.get_data(decode_simple=True)), out_stem, ".jpg")
        return image_info(out, width=px_w, height=px_h, dpi=dpi, method="embedded")
    try:
        bitmap = img_obj.get_bitmap(render=False)
    except pdfium.PdfiumError:
        return None  # an image pdfium cannot decode alone (e.g. a mask it needs): render
    pil = bitmap.to_pil()
    pil = pil.convert("L") if is_gray(pil) else pil.convert("RGB")
    out = save_image(pil, out_stem, dpi=dpi)
    return image_info(out, width=pil.width, height=pil.height, dpi=dpi, method="embedded")


def _upright(obj: pdfium.PdfImage) -> bool:
    m = obj.get_matrix()
    return math.isclose(m.b, 0.0, abs_tol=1e-6) and math.isclose(m.c, 0.0, abs_tol=1e-6) \
        and m.a > 0 and m.d > 0


def _invisible_text(obj: pdfium.PdfObject) -> bool:
    return bool(pdfium_c.FPDFTextObj_GetTextRenderMode(obj) == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE)


def _render_pdfium(page: pdfium.PdfPage, dpi: int) -> Image.Image:
    bitmap = page.render(scale=dpi / _PT_PER_INCH, rev_byteorder=True)
    # to_pil shares the bitmap's buffer, which dies with the page: take a copy
    return bitmap.to_pil().convert("RGB")


def _render_poppler(pdf_path: str, index: int, dpi: int) -> Image.Image:
    from pdf2image import convert_from_path
    from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFSyntaxError

    try:
        # first_page == last_page: poppler renders this page only (the default call holds
        # every page of the document in memory at once)
        images = convert_from_path(pdf_path, dpi=dpi, first_page=index + 1, last_page=index + 1)
    except PDFInfoNotInstalledError as exc:
        raise PermanentError("poppler (pdftoppm/pdfinfo) is not installed") from exc
    except (PDFPageCountError, PDFSyntaxError) as exc:
        raise PermanentError(f"poppler cannot read {pdf_path}: {exc}") from exc
    if not images:
        raise PermanentError(f"poppler rendered nothing for page {index + 1} of {pdf_path}")
    return images[0].convert("RGB")

"""Page extraction from PDFs and normalisation of image-folder pages, on real files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from bookops.errors import PermanentError
from bookops.providers.images import normalise_image
from bookops.providers.pdf import extract_page


def _jpeg(shade: int, label: str, size: tuple[int, int] = (300, 400), mode: str = "L") -> bytes:
    img = Image.new(mode, size, shade if mode == "L" else (shade, 255 - shade, 90))
    ImageDraw.Draw(img).text((40, 40), label, fill=0 if mode == "L" else (0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _add_image_page(pdf: pdfium.PdfDocument, jpeg: bytes, *, index: int | None,
                    w: float = 144, h: float = 192) -> None:
    page = pdf.new_page(w, h, index=index)
    img = pdfium.PdfImage.new(pdf)
    img.load_jpeg(io.BytesIO(jpeg), inline=True)
    img.set_matrix(pdfium.PdfMatrix().scale(w, h))
    page.insert_obj(img)
    page.gen_content()


def _save(pdf: pdfium.PdfDocument, path: Path) -> Path:
    pdf.save(str(path))
    pdf.close()
    return path


def _vector_pdf(path: Path, n_pages: int = 2) -> Path:
    """A hand-written PDF: text and one black bar per page, the bar lower on each later page."""
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    font_num = 3
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for k in range(n_pages):
        y = 700 - 200 * k
        stream = (f"BT /F1 24 Tf 72 {y + 40} Td (Page {k + 1} of the vector book) Tj ET\n"
                  f"0 g 72 {y} 300 20 re f\n").encode()
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objs)
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
                    f"/Resources << /Font << /F1 {font_num} 0 R >> >> >>".encode())
        kids.append(f"{len(objs)} 0 R")
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {n_pages} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def _gray_at(img: Image.Image, xy: tuple[int, int]) -> int:
    value = img.convert("L").getpixel(xy)
    assert isinstance(value, int)
    return value


def _bar_row(img: Image.Image) -> int:
    """The first pixel row (from the top) that is mostly black: where the page's bar is."""
    gray = img.convert("L")
    for y in range(gray.height):
        row = gray.crop((0, y, gray.width, y + 1)).tobytes()
        if sum(1 for v in row if v < 64) > gray.width // 4:
            return y
    raise AssertionError("no bar drawn")


# ---------------------------------------------------------------------------------------- PDFs

def test_embedded_jpeg_is_copied_byte_for_byte(tmp_path: Path) -> None:
    jpeg = _jpeg(200, "scan page")
    pdf = pdfium.PdfDocument.new()
    _add_image_page(pdf, jpeg, index=None)  # 300 px over 144 pt = 2 in -> 150 dpi
    src = _save(pdf, tmp_path / "scan.pdf")

    info = extract_page(str(src), 0, str(tmp_path / "pages" / "0001"), 300)

    assert info["method"] == "embedded"
    assert info["path"].endswith("0001.jpg")
    assert Path(info["path"]).read_bytes() == jpeg
    assert (info["width"], info["height"], info["dpi"]) == (300, 400, 150)
    import hashlib
    assert info["sha256"] == hashlib.sha256(jpeg).hexdigest()


def test_each_page_gets_its_own_image_whatever_the_storage_order(tmp_path: Path) -> None:
    jpegs = {label: _jpeg(shade, label) for label, shade in (("A", 230), ("B", 160), ("C", 90))}
    pdf = pdfium.PdfDocument.new()
    # each new page goes in front: image objects are stored A, B, C but the pages read C, B, A
    for label in ("A", "B", "C"):
        _add_image_page(pdf, jpegs[label], index=0)
    src = _save(pdf, tmp_path / "reordered.pdf")
    raw = src.read_bytes()
    assert raw.index(jpegs["A"]) < raw.index(jpegs["B"]) < raw.index(jpegs["C"])

    got = [Path(extract_page(str(src), i, str(tmp_path / f"{i + 1:04d}"), 300)["path"]).read_bytes()
           for i in range(3)]

    assert got == [jpegs["C"], jpegs["B"], jpegs["A"]]


def test_imported_pages_keep_their_images(tmp_path: Path) -> None:
    first = pdfium.PdfDocument.new()
    jpegs = [_jpeg(60 + 40 * k, f"p{k}") for k in range(4)]
    for j in jpegs:
        _add_image_page(first, j, index=None)
    a = _save(first, tmp_path / "a.pdf")
    # a second file that takes the pages in another order, as splitting/merging tools do
    src_doc = pdfium.PdfDocument(str(a))
    out = pdfium.PdfDocument.new()
    out.import_pages(src_doc, [3, 1, 0, 2])
    b = _save(out, tmp_path / "b.pdf")
    src_doc.close()

    for i, want in enumerate([3, 1, 0, 2]):
        info = extract_page(str(b), i, str(tmp_path / "out" / f"{i + 1:04d}"), 300)
        assert Path(info["path"]).read_bytes() == jpegs[want]


def test_flate_image_is_copied_with_its_pixels(tmp_path: Path) -> None:
    original = Image.new("L", (200, 260), 255)
    ImageDraw.Draw(original).rectangle((20, 30, 120, 90), fill=0)
    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(96, 124.8)
    img = pdfium.PdfImage.new(pdf)
    img.set_bitmap(pdfium.PdfBitmap.from_pil(original))
    img.set_matrix(pdfium.PdfMatrix().scale(96, 124.8))
    page.insert_obj(img)
    page.gen_content()
    src = _save(pdf, tmp_path / "flate.pdf")

    info = extract_page(str(src), 0, str(tmp_path / "0001"), 300)

    assert info["method"] == "embedded" and info["path"].endswith(".png")
    assert info["dpi"] == 150
    with Image.open(info["path"]) as out:
        assert out.mode == "L"
        assert out.tobytes() == original.tobytes()


def test_vector_page_is_rendered_at_the_requested_dpi(tmp_path: Path) -> None:
    src = _vector_pdf(tmp_path / "vector.pdf")

    info = extract_page(str(src), 1, str(tmp_path / "pages" / "0002"), 100)

    assert info["method"] == "rendered" and info["path"].endswith("0002.png")
    assert (info["width"], info["height"], info["dpi"]) == (850, 1100, 100)
    with Image.open(info["path"]) as out:
        assert out.mode == "L"  # black on white: stored as grayscale
        assert out.info["dpi"][0] == pytest.approx(100, abs=0.5)
        # page 2's bar is 200 pt lower than page 1's: bottom of bar at 792-500 pt from the top
        assert _bar_row(out) == pytest.approx((792 - 520) * 100 / 72, abs=3)
    assert os.listdir(tmp_path / "pages") == ["0002.png"]  # no temp file left behind


def test_poppler_renders_just_the_asked_page(tmp_path: Path) -> None:
    src = _vector_pdf(tmp_path / "vector.pdf", n_pages=3)

    info = extract_page(str(src), 2, str(tmp_path / "0003"), 72, "poppler")

    assert info["method"] == "rendered"
    assert (info["width"], info["height"]) == (612, 792)
    with Image.open(info["path"]) as out:
        assert _bar_row(out) == pytest.approx(792 - 320, abs=3)


def test_reextracting_replaces_the_old_file(tmp_path: Path) -> None:
    vector = _vector_pdf(tmp_path / "vector.pdf")
    pdf = pdfium.PdfDocument.new()
    _add_image_page(pdf, _jpeg(128, "x"), index=None)
    scan = _save(pdf, tmp_path / "scan.pdf")
    stem = str(tmp_path / "pages" / "0001")

    extract_page(str(scan), 0, stem, 300)
    extract_page(str(vector), 0, stem, 50)

    assert os.listdir(tmp_path / "pages") == ["0001.png"]


def test_bad_input_is_a_permanent_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"not a pdf at all")
    with pytest.raises(PermanentError):
        extract_page(str(junk), 0, str(tmp_path / "0001"), 300)
    with pytest.raises(PermanentError):
        extract_page(str(_vector_pdf(tmp_path / "v.pdf")), 5, str(tmp_path / "0001"), 300)


# ---------------------------------------------------------------------------------------- image folders

def test_plain_png_is_copied(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.new("L", (40, 50), 200).save(src, dpi=(300, 300))

    info = normalise_image(str(src), str(tmp_path / "0001"))

    assert Path(info["path"]).read_bytes() == src.read_bytes()
    assert (info["width"], info["height"], info["dpi"], info["method"]) == (40, 50, 300, "image")


def test_exif_rotated_jpeg_is_turned_upright(tmp_path: Path) -> None:
    img = Image.new("RGB", (60, 40), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((0, 0, 9, 39), fill=(0, 0, 0))  # a black band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers turn it 90 degrees clockwise
    src = tmp_path / "in.jpg"
    img.save(src, exif=exif.tobytes(), dpi=(200, 200), quality=95)

    info = normalise_image(str(src), str(tmp_path / "0001"))

    assert info["path"].endswith(".png")
    assert (info["width"], info["height"], info["dpi"]) == (40, 60, 200)
    with Image.open(info["path"]) as out:
        assert out.mode == "L"
        assert _gray_at(out, (20, 3)) < 60 and _gray_at(out, (20, 55)) > 200  # band is now on top


@pytest.mark.parametrize("mode", ["CMYK", "P", "LA", "I;16", "1"])
def test_odd_modes_become_l_or_rgb(tmp_path: Path, mode: str) -> None:
    base = Image.new("RGB", (30, 20), (250, 40, 40))
    ImageDraw.Draw(base).rectangle((0, 0, 9, 19), fill=(0, 0, 0))
    if mode == "I;16":
        img = Image.new("I;16", (30, 20))
        img.putdata([65535 if x >= 10 else 0 for _y in range(20) for x in range(30)])
    elif mode == "1":
        img = base.convert("L").point(lambda v: 255 if v > 30 else 0).convert("1")
    else:
        img = base.convert(mode)
    src = tmp_path / ("in.tif" if mode in ("CMYK", "I;16") else "in.png")
    img.save(src)

    info = normalise_image(str(src), str(tmp_path / "0001"))

    with Image.open(info["path"]) as out:
        assert out.mode in ("L", "RGB")
        assert out.size == (30, 20)
        dark, light = _gray_at(out, (2, 2)), _gray_at(out, (25, 10))
        assert dark < 40 and light > dark + 40
        if mode in ("CMYK", "P"):
            assert out.mode == "RGB"  # colour survives
        if mode == "I;16":
            assert light == 255  # scaled from 16 bits, not clipped


def test_unreadable_image_is_a_permanent_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG nonsense")
    with pytest.raises(PermanentError):
        normalise_image(str(bad), str(tmp_path / "0001"))


@pytest.mark.parametrize("invisible", [True, False])
def test_an_ocr_text_layer_does_not_stop_the_copy(tmp_path: Path, invisible: bool) -> None:
    import ctypes

    import pypdfium2.raw as pdfium_c

    jpeg = _jpeg(180, "scan with a text layer")
    pdf = pdfium.PdfDocument.new()
    _add_image_page(pdf, jpeg, index=None)
    page = pdf[0]
    text = pdfium_c.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(12))
    words = "hidden words\x00".encode("utf-16-le")
    pdfium_c.FPDFText_SetText(text, ctypes.cast(ctypes.c_char_p(words), ctypes.POINTER(ctypes.c_ushort)))
    if invisible:
        pdfium_c.FPDFTextObj_SetTextRenderMode(text, pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE)
    pdfium_c.FPDFPage_InsertObject(page.raw, text)
    page.gen_content()
    page.close()
    src = _save(pdf, tmp_path / "layered.pdf")

    info = extract_page(str(src), 0, str(tmp_path / "0001"), 150)

    if invisible:
        assert info["method"] == "embedded" and Path(info["path"]).read_bytes() == jpeg
    else:  # visible text on top of the scan: only a render shows the page as it looks
        assert info["method"] == "rendered"

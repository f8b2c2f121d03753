"""Adding damaged input: nothing but success or a clean ``UserError`` ever comes out.

A hypothesis fuzz of PDF ingest over mutated bytes (of a small text PDF and of the sample scan,
where the damage is aimed at the header and the cross-reference table as well as anywhere), and
the bad inputs ``tests/cli/test_book_cli.py`` does not cover: other image formats past the pixel
limit, stray PDFs and sub-folders among page images, a dangling link, a PNG of no pixels, and bad
paths given to ``job process-pages`` (which adds a path before running).
"""

from __future__ import annotations

import asyncio
import io
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bookops.cli import main
from bookops.cli._common import store_session
from bookops.errors import UserError
from bookops.ingest import scan_sources
from bookops.settings import Settings
from tests.conftest import SAMPLE_PDF


def _text_pdf() -> bytes:
    """A two-page PDF with a font and a text stream on each page."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    for n in (1, 2):
        page = pdf.add_blank_page(page_size=(300, 400))
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = pdf.make_stream(f"BT /F1 14 Tf 40 300 Td (Page {n} of a book) Tj ET".encode())
    buf = io.BytesIO()
    pdf.save(buf, compress_streams=False)
    return buf.getvalue()


BASES: dict[str, bytes] = {"text": _text_pdf()}
if SAMPLE_PDF.exists():
    BASES["sample"] = SAMPLE_PDF.read_bytes()


@st.composite
def mutated_pdf(draw: st.DrawFn) -> bytes:
    data = bytearray(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 6))):
        size = len(data)
        if size == 0:
            break
        # the structure lives at both ends: the header, and the xref table and trailer at the tail
        pos = draw(st.one_of(st.integers(0, min(size - 1, 1024)),
                             st.integers(max(0, size - 4096), size - 1),
                             st.integers(0, size - 1)))
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos:pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 256))]
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=mutated_pdf())
def test_mutated_pdf_is_added_or_refused_cleanly(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Scan für Ünïcode test.pdf"
        path.write_bytes(data)
        try:
            _name, sources = scan_sources([path])
        except UserError as exc:
            assert str(path) in exc.message and "\n" not in exc.message
        else:
            assert sources[0].kind == "pdf" and sources[0].page_count >= 1


# ---------------------------------------------------------------------------------- bad inputs


def _run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return (exc.value.code if isinstance(exc.value.code, int) else 1), out, err


def _snapshot(settings: Settings) -> Any:
    async def read() -> Any:
        async with store_session(settings) as store:
            colls = (store.books, store.pages, store.jobs)
            return [await coll.find({}, sort=[("_id", 1)]) for coll in colls]
    return asyncio.run(read())


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _huge_jpeg() -> bytes:
    """A small JPEG whose frame header claims 60000 x 60000 pixels."""
    buf = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    return bytes(data)


def _huge_tiff() -> bytes:
    """An uncompressed TIFF whose IFD claims 50000 x 50000 pixels."""
    entries = [(256, 4, 50000), (257, 4, 50000), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (278, 4, 50000), (279, 4, 1)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, val in entries:
        value = struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val)
        ifd += struct.pack("<HHI", tag, typ, 1) + value
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8 + 1) + b"\x00" + ifd


def _scans(base: Path, extra: dict[str, bytes | None]) -> Path:
    base.mkdir(parents=True)
    Image.new("L", (30, 40), 200).save(base / "p1.png")
    for name, data in extra.items():
        if data is None:
            (base / name).mkdir()
        else:
            (base / name).write_bytes(data)
    return base


def _huge_jpeg_case(d: Path) -> tuple[list[str], str]:
    p = _scans(d / "scans", {"p2.jpg": _huge_jpeg()})
    return [str(p)], str(p / "p2.jpg")


def _huge_tiff_case(d: Path) -> tuple[list[str], str]:
    p = _scans(d / "scans", {"p2.tif": _huge_tiff()})
    return [str(p)], str(p / "p2.tif")


def _zero_pixel_png(d: Path) -> tuple[list[str], str]:
    p = _scans(d / "scans", {"p2.png": _png(0, 0)})
    return [str(p)], str(p / "p2.png")


def _pdf_among_images(d: Path) -> tuple[list[str], str]:
    p = _scans(d / "scans", {"p2.pdf": BASES["text"]})
    return [str(p)], "p2.pdf"


def _subfolder_among_images(d: Path) -> tuple[list[str], str]:
    p = _scans(d / "scans", {"more pages": None})
    return [str(p)], "more pages"


def _dangling_link(d: Path) -> tuple[list[str], str]:
    link = d / "gone.pdf"
    link.symlink_to(d / "moved away.pdf")
    return [str(link)], str(link)


def _png_named_pdf(d: Path) -> tuple[list[str], str]:
    p = d / "actually an image.pdf"
    Image.new("L", (30, 40), 200).save(p, format="PNG")
    return [str(p)], str(p)


MORE_BAD: dict[str, tuple[Callable[[Path], tuple[list[str], str]], str]] = {
    "JPEG over the pixel limit": (_huge_jpeg_case, "too large"),
    "TIFF over the pixel limit": (_huge_tiff_case, "too large"),
    "PNG of 0 x 0 pixels": (_zero_pixel_png, "not a readable image"),
    "PDF among page images": (_pdf_among_images, "not page images"),
    "sub-folder among page images": (_subfolder_among_images, "not page images"),
    "dangling link": (_dangling_link, "no such file"),
    "PNG named .pdf": (_png_named_pdf, "not a readable PDF"),
}


def _assert_refused(code: int, out: str, err: str, culprit: str, says: str) -> None:
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert culprit in lines[0] and says in lines[0], lines[0]


@pytest.mark.parametrize(("make", "says"), MORE_BAD.values(), ids=MORE_BAD.keys())
def test_more_bad_inputs_are_one_line_exit_2_store_unchanged(
        make: Callable[[Path], tuple[list[str], str]], says: str, tmp_path: Path, settings: Settings,
        capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "Bücher und Scans"
    where.mkdir()
    argv, culprit = make(where)
    before = _snapshot(settings)
    _assert_refused(*_run_main(capsys, "book", "add", *argv), culprit, says)
    assert _snapshot(settings) == before


@pytest.mark.parametrize("case", ["PNG named .pdf", "sub-folder among page images",
                                  "TIFF over the pixel limit"])
def test_process_pages_on_a_bad_path_is_refused_before_any_job(case: str, tmp_path: Path, settings: Settings,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    make, says = MORE_BAD[case]
    where = tmp_path / "Bücher und Scans"
    where.mkdir()
    argv, culprit = make(where)
    before = _snapshot(settings)
    _assert_refused(*_run_main(capsys, "job", "process-pages", argv[0], "--quiet"), culprit, says)
    assert _snapshot(settings) == before  # no book, no pages, no job record

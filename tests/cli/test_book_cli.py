"""The book and config commands, in-process and through the real entry point.

Every bad input must end with exit code 2, one ``error:`` line on stderr naming the path, no
traceback, and the store exactly as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from bookops.cli import app, main
from bookops.cli._common import store_session
from bookops.schema import Toc, TocEntry
from bookops.settings import Settings
from tests.conftest import SAMPLE_PDF

runner = CliRunner()


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The console-script entry point: returns exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


def snapshot(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with store_session(settings) as store:
            return (await store.books.find({}, sort=[("_id", 1)]),
                    await store.pages.find({}, sort=[("_id", 1)]))
    return asyncio.run(read())


def in_store(settings: Settings, fn: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        async with store_session(settings) as store:
            return await fn(store)
    return asyncio.run(go())


@pytest.fixture
def sample_id() -> str:
    result = cli("book", "add", str(SAMPLE_PDF))
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


# ---------------------------------------------------------------------------------- bad inputs


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims the given size: enough for Pillow's size check, tiny on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _zero_page_pdf() -> bytes:
    """A well-formed PDF whose page tree is empty."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _folder(base: Path, files: dict[str, bytes | None]) -> Path:
    """A folder of files; ``None`` makes a valid small PNG."""
    base.mkdir(parents=True)
    for name, data in files.items():
        if data is None:
            Image.new("L", (30, 40), 200).save(base / name, format="PNG")
        else:
            (base / name).write_bytes(data)
    return base


def _missing(d: Path) -> tuple[list[str], Path]:
    return [str(d / "no such book.pdf")], d / "no such book.pdf"


def _not_pdf_or_image(d: Path) -> tuple[list[str], Path]:
    p = d / "notes.txt"
    p.write_text("not a book")
    return [str(p)], p


def _corrupt_pdf(d: Path) -> tuple[list[str], Path]:
    p = d / "broken.pdf"
    p.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    return [str(p)], p


def _truncated_pdf(d: Path) -> tuple[list[str], Path]:
    p = d / "truncated.pdf"
    data = SAMPLE_PDF.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    return [str(p)], p


def _encrypted_pdf(d: Path) -> tuple[list[str], Path]:
    p = d / "locked.pdf"
    with pikepdf.open(SAMPLE_PDF) as pdf:
        pdf.save(p, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    return [str(p)], p


def _zero_pages(d: Path) -> tuple[list[str], Path]:
    p = d / "no pages.pdf"
    p.write_bytes(_zero_page_pdf())
    return [str(p)], p


def _empty_file(d: Path) -> tuple[list[str], Path]:
    p = d / "empty.pdf"
    p.write_bytes(b"")
    return [str(p)], p


def _second_file_empty(d: Path) -> tuple[list[str], Path]:
    p = d / "vol2.pdf"
    p.write_bytes(b"")
    return [str(SAMPLE_PDF), str(p)], p


def _empty_folder(d: Path) -> tuple[list[str], Path]:
    p = _folder(d / "empty scans", {".DS_Store": b"\0"})
    return [str(p)], p


def _folder_of_folders(d: Path) -> tuple[list[str], Path]:
    p = d / "library"
    _folder(p / "book a", {"p1.png": None})
    _folder(p / "book b", {"p1.png": None})
    return [str(p)], p


def _unreadable_image(d: Path) -> tuple[list[str], Path]:
    p = _folder(d / "scans", {"p1.png": None, "p2.png": b"\x89PNG\r\n\x1a\nnot really"})
    return [str(p)], p / "p2.png"


def _truncated_jpeg(d: Path) -> tuple[list[str], Path]:
    p = _folder(d / "scans", {"p1.png": None})
    Image.effect_noise((300, 400), 60).convert("L").save(p / "p2.jpg", format="JPEG")
    data = (p / "p2.jpg").read_bytes()
    (p / "p2.jpg").write_bytes(data[: len(data) // 2])
    return [str(p)], p / "p2.jpg"


def _empty_image(d: Path) -> tuple[list[str], Path]:
    p = _folder(d / "scans", {"p1.png": None, "p2.png": b""})
    return [str(p)], p / "p2.png"


def _bomb_error(d: Path) -> tuple[list[str], Path]:
    # Over twice Pillow's limit: Pillow raises DecompressionBombError.
    p = _folder(d / "scans", {"p1.png": None, "p2.png": _png_header(20_000, 20_000)})
    return [str(p)], p / "p2.png"


def _bomb_warning(d: Path) -> tuple[list[str], Path]:
    # Between the limit and twice it: Pillow only warns (DecompressionBombWarning).
    p = _folder(d / "scans", {"p1.png": None, "p2.png": _png_header(10_000, 10_000)})
    return [str(p)], p / "p2.png"


def _stray_file(d: Path) -> tuple[list[str], Path]:
    p = _folder(d / "scans", {"p1.png": None, "README.txt": b"scanned 2020"})
    return [str(p)], p


def _folder_and_file(d: Path) -> tuple[list[str], Path]:
    p = _folder(d / "scans", {"p1.png": None})
    return [str(SAMPLE_PDF), str(p)], p


# name -> (builder, what the message must say)
BAD_INPUTS: dict[str, tuple[Callable[[Path], tuple[list[str], Path]], str]] = {
    "missing path": (_missing, "no such file or folder"),
    "not a PDF or image": (_not_pdf_or_image, "not a PDF or a page image"),
    "corrupt PDF": (_corrupt_pdf, "not a readable PDF"),
    "truncated PDF": (_truncated_pdf, "not a readable PDF"),
    "encrypted PDF": (_encrypted_pdf, "encrypted"),
    "PDF with no pages": (_zero_pages, "has no pages"),
    "0-byte file": (_empty_file, "empty (0 bytes)"),
    "0-byte second file": (_second_file_empty, "empty (0 bytes)"),
    "empty folder": (_empty_folder, "folder is empty"),
    "folder of folders": (_folder_of_folders, "only folders"),
    "unreadable image": (_unreadable_image, "not a readable image"),
    "truncated JPEG": (_truncated_jpeg, "not a readable image"),
    "0-byte image": (_empty_image, "empty (0 bytes)"),
    "image over twice the pixel limit": (_bomb_error, "too large"),
    "image over the pixel limit": (_bomb_warning, "too large"),
    "non-image file in folder": (_stray_file, "README.txt"),
    "folder with another path": (_folder_and_file, "on its own"),
}


@pytest.mark.parametrize(("make", "says"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_error_line_exit_2_and_store_unchanged(
        make: Callable[[Path], tuple[list[str], Path]], says: str, tmp_path: Path, settings: Settings,
        sample_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "Bücher und Scans"  # unicode and spaces in every path
    where.mkdir()
    argv, culprit = make(where)
    before = snapshot(settings)
    capsys.readouterr()

    code, out, err = run_main(capsys, "book", "add", *argv)

    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert str(culprit) in lines[0] and says in lines[0]
    assert "Traceback" not in err
    assert snapshot(settings) == before


def test_pdf_errors_do_not_leak_into_the_next_file(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # PDFium's last error code outlives the call that set it; a file without pages must not
    # be reported as encrypted because an encrypted one was checked just before.
    encrypted, _ = _encrypted_pdf(tmp_path)
    empty, _ = _zero_pages(tmp_path)
    assert "encrypted" in run_main(capsys, "book", "add", *encrypted)[2]
    assert "has no pages" in run_main(capsys, "book", "add", *empty)[2]


@pytest.mark.parametrize("bad_id", ["Has Space", "a:b", "../up"])
def test_bad_id_is_refused(bad_id: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "book", "add", str(SAMPLE_PDF), "--id", bad_id)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and bad_id in err
    assert snapshot(settings) == ([], [])


def test_unknown_book_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in (["book", "show", "nope"], ["book", "rm", "nope", "--yes"]):
        code, out, err = run_main(capsys, *cmd)
        assert code == 2 and out == ""
        assert err == "error: no book 'nope'; see `bookops book list`\n"


def test_unknown_book_with_json_prints_a_json_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "book", "show", "nope", "--json")
    assert code == 2
    assert json.loads(out) == {"error": {"type": "UserError",
                                         "message": "no book 'nope'; see `bookops book list`"}}
    assert err.startswith("error: ")


# ---------------------------------------------------------------------------------- add, list, show


def test_help_lists_the_book_and_job_groups() -> None:
    result = cli("--help")
    assert result.exit_code == 0
    commands = {line.strip("│ ").split(" ")[0] for line in result.stdout.splitlines()}
    assert {"book", "job", "config"} <= commands


def test_add_prints_the_id_and_says_when_it_existed(settings: Settings) -> None:
    first = cli("book", "add", str(SAMPLE_PDF))
    assert first.exit_code == 0
    book_id = first.stdout.strip()
    assert book_id.startswith("sample-book-") and "added 12 pages" in first.stderr

    again = cli("book", "add", str(SAMPLE_PDF))
    assert again.exit_code == 0 and again.stdout.strip() == book_id
    assert "already added" in again.stderr

    as_json = json.loads(cli("book", "add", str(SAMPLE_PDF), "--json").stdout)
    assert as_json == {"id": book_id, "created": False, "name": "sample-book", "page_count": 12,
                       "sources": 1}
    books, pages = snapshot(settings)
    assert len(books) == 1 and len(pages) == 12


def test_add_with_id(tmp_path: Path) -> None:
    result = cli("book", "add", str(SAMPLE_PDF), "--id", "sbcl_sample")
    assert result.exit_code == 0 and result.stdout == "sbcl_sample\n"


def _record_progress(book_id: str) -> Callable[[Any], Any]:
    """Flags and results as a job would leave them part-way through."""
    async def go(store: Any) -> None:
        await store.patch_pages(book_id, {}, {"$set": {"extracted": True}})
        await store.patch_pages(book_id, {"page_num": {"$lte": 10}},
                                {"$set": {"ocr.tesseract": {"done": True, "chars": 100}}})
        await store.patch_pages(book_id, {"page_num": {"$lte": 8}}, {"$set": {"blended": True}})
        await store.patch_pages(book_id, {"page_num": {"$lte": 5}}, {"$set": {"labeled": True}})
        await store.patch_page(book_id, 12, {"$set": {"errors.ocr": {
            "kind": "permanent", "message": "tesseract crashed", "attempts": 2,
            "at": "2026-01-01T00:00:00+00:00"}}})
        await store.put_toc(Toc(id=book_id, book=book_id, found=True, pages=[3, 4], found_by="offline",
                                entries=[TocEntry(title="1 Introduction", level=1, printed_page="1"),
                                         TocEntry(title="1.1 [Scope]", level=2, printed_page="2")]))
        await store.patch_book(book_id, {"$set": {
            "metadata": {"title": "SBCL Internals", "authors": []},
            "flags.metadata": {"state": "done", "attempts": 1, "provider": "offline"}}})
    return go


def test_show_and_list_report_pages_by_state(settings: Settings, sample_id: str) -> None:
    in_store(settings, _record_progress(sample_id))

    result = cli("book", "show", sample_id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == sample_id and data["page_count"] == 12
    assert data["sources"][0]["path"] == str(SAMPLE_PDF.resolve())
    assert data["pages"] == {"total": 12, "extracted": 12, "ocr": {"tesseract": 10}, "blended": 8,
                             "labeled": 5, "failed": 1, "failed_by_op": {"ocr": 1}}
    assert data["metadata"]["title"] == "SBCL Internals"
    assert data["toc"]["found"] and data["toc"]["pages"] == [3, 4] and data["toc"]["entries"] == 2
    assert data["ops"]["metadata"]["state"] == "done"
    assert data["ops"]["toc_find"]["state"] == "not_started"

    text = cli("book", "show", sample_id)
    assert text.exit_code == 0
    for expected in ("ocr tesseract", "10/12", "SBCL Internals", "scan pages 3, 4", "1.1 [Scope]"):
        assert expected in text.stdout

    rows = json.loads(cli("book", "list", "--json").stdout)
    assert rows == [{"id": sample_id, "name": "sample-book", "pages": 12, "extracted": 12, "ocr": 10,
                     "blended": 8, "labeled": 5, "title": "SBCL Internals"}]
    table = cli("book", "list")
    assert table.exit_code == 0 and sample_id in table.stdout


def test_show_json_of_a_new_book_is_valid_json(sample_id: str) -> None:
    data = json.loads(cli("book", "show", sample_id, "--json").stdout)
    assert data["toc"] is None and data["metadata"] is None
    assert data["pages"]["extracted"] == 0 and data["pages"]["ocr"] == {"tesseract": 0}


def test_list_with_no_books() -> None:
    result = cli("book", "list", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "no books yet" in cli("book", "list").stderr


# ---------------------------------------------------------------------------------- rm


def _page_images(settings: Settings, book_id: str) -> Path:
    folder = settings.books_dir / book_id / "pages"
    folder.mkdir(parents=True)
    Image.new("L", (10, 10)).save(folder / "0001.png")
    return folder.parent


def test_rm_removes_documents_and_page_images(settings: Settings, sample_id: str) -> None:
    images = _page_images(settings, sample_id)
    result = cli("book", "rm", sample_id, "--yes")
    assert result.exit_code == 0, result.output
    assert snapshot(settings) == ([], [])
    assert not images.exists() and settings.books_dir.exists()


def test_rm_asks_first(settings: Settings, sample_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    declined = cli("book", "rm", sample_id, input="n\n")
    assert declined.exit_code != 0
    assert len(snapshot(settings)[0]) == 1

    accepted = cli("book", "rm", sample_id, input="y\n")
    assert accepted.exit_code == 0
    assert snapshot(settings) == ([], [])


def test_rm_refuses_while_a_job_holds_the_book(settings: Settings, sample_id: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    in_store(settings, lambda store: store.claim_lease(sample_id, "job-1", ttl_s=60, host="h", pid=1))
    code, _, err = run_main(capsys, "book", "rm", sample_id, "--yes")
    assert code == 2 and "job-1" in err and len(err.splitlines()) == 1
    assert len(snapshot(settings)[0]) == 1


# ---------------------------------------------------------------------------------- config


def test_config_never_shows_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKOPS_LLM_API_KEY", "sk-test-do-not-show")
    monkeypatch.setenv("BOOKOPS_MONGO_URI", "mongodb://reader:hunter2@127.0.0.1:27017")
    monkeypatch.setenv("BOOKOPS_DPI", "200")
    for args in (["config"], ["config", "--json"]):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert "sk-test-do-not-show" not in result.output and "hunter2" not in result.output
    data = json.loads(cli("config", "--json").stdout)
    assert data["dpi"] == 200 and data["llm_api_key"] == "********"
    assert data["mongo_uri"] == "mongodb://***@127.0.0.1:27017"


# ---------------------------------------------------------------------------------- subprocess


def test_installed_entry_point_adds_the_sample(tmp_path: Path) -> None:
    exe = shutil.which("bookops", path=str(Path(sys.executable).parent))
    assert exe is not None
    env = {**os.environ, "BOOKOPS_HOME": str(tmp_path / "sub home")}
    ok = subprocess.run([exe, "book", "add", str(SAMPLE_PDF)], capture_output=True, text=True,
                        env=env, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith("sample-book-")

    bad = subprocess.run([exe, "book", "add", str(tmp_path / "missing.pdf")], capture_output=True,
                         text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [f"error: {tmp_path / 'missing.pdf'}: no such file or folder;"
                                       " check the path"]

"""Adding a book: check the scans, give the book an id, write the book and page documents.

A book is one or more PDFs (pages in the order given) or one folder of page images (in natural
order: ``page2`` before ``page10``). Every input is checked before anything is written, and each
problem is a one-line ``UserError`` that names the path, says what is wrong and what to do.

The id is a readable slug of the first file or folder name plus a short hash of the content, so
adding the same scans again finds the book already there and writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, UnidentifiedImageError

from .errors import UserError
from .schema import Book, Page, PageSource, SourceFile
from .settings import Settings
from .store import Store

__all__ = [
    "IMAGE_SUFFIXES",
    "add_book",
    "book_id_for",
    "check_book_id",
    "natural_key",
    "scan_sources",
    "slugify",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
_IMAGE_LIST = " ".join(sorted(IMAGE_SUFFIXES))
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HASH_LEN = 8
_SLUG_MAX = 40
_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Input:
    """A file to ingest: its resolved path, and the path as the user wrote it (for messages)."""

    path: Path
    shown: str


# ---------------------------------------------------------------------------------- naming


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: ``p2`` < ``p10``; case is ignored."""
    parts = re.split(r"(\d+)", name.casefold())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def slugify(text: str) -> str:
    """``"Über Bücher (1923)"`` -> ``"uber-bucher-1923"``; ``"book"`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:_SLUG_MAX].rstrip("-") or "book"


def content_hash(sources: Sequence[SourceFile]) -> str:
    """sha256 over the ordered source hashes: the same scans in the same order, the same book."""
    return hashlib.sha256("\n".join(s.sha256 for s in sources).encode()).hexdigest()


def book_id_for(name: str, sources: Sequence[SourceFile]) -> str:
    return f"{slugify(name)}-{content_hash(sources)[:_HASH_LEN]}"


def check_book_id(book_id: str) -> str:
    """An id given by the user; it becomes a folder name and a prefix of page ids."""
    if not _ID_RE.match(book_id):
        raise UserError(
            f"book id {book_id!r} is not valid; use 1-64 lower-case letters, digits, '-' or '_',"
            " starting with a letter or digit"
        )
    return book_id


# ---------------------------------------------------------------------------------- checks


def _sha256(item: _Input) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with item.path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UserError(
            f"{item.shown}: cannot read the file ({exc.strerror}); check its permissions"
        ) from None
    return digest.hexdigest(), size


def _looks_like_pdf(path: Path) -> bool:
    # The PDF header may follow a little junk; readers accept it within the first KiB.
    try:
        with path.open("rb") as fh:
            return b"%PDF-" in fh.read(1024)
    except OSError:
        return False


def _pdf_page_count(item: _Input) -> int:
    try:
        doc = pdfium.PdfDocument(item.path)
    except pdfium.PdfiumError:
        raise UserError(_pdf_open_error(item.shown, _pdf_load_error(item.path))) from None
    count = page = 0
    try:
        count = len(doc)
        for page in range(1, count + 1):
            # A page whose object is missing fails here rather than halfway through a job.
            doc.get_page_size(page - 1)
    except pdfium.PdfiumError:
        raise UserError(
            f"{item.shown}: PDF page {page} cannot be read; the file is damaged, re-download or"
            " re-export it"
        ) from None
    finally:
        doc.close()
    if count == 0:
        raise UserError(f"{item.shown}: PDF has no pages; check that it is the right file")
    return count


def _pdf_load_error(path: Path) -> int | None:
    """Why PDFium will not open ``path``: its error code, or None when it opens with no pages.

    pypdfium2 reports a document with no pages as a load failure and attaches PDFium's last
    error code, which then is left over from an earlier, unrelated failure (an encrypted file
    added before would make this one "encrypted" too). Loading again through the raw API tells
    the two cases apart with a code that belongs to this file.
    """
    raw = pdfium_c.FPDF_LoadDocument((str(path) + "\x00").encode("utf-8", "surrogateescape"), None)
    if not raw:
        return int(pdfium_c.FPDF_GetLastError())
    pdfium_c.FPDF_CloseDocument(raw)
    return None


def _pdf_open_error(shown: str, code: int | None) -> str:
    if code is None:
        return f"{shown}: PDF has no pages; check that it is the right file"
    if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
        return (f"{shown}: PDF is encrypted (password protected); save a copy without the password"
                " (e.g. `qpdf --decrypt in.pdf out.pdf`) and add that")
    if code == pdfium_c.FPDF_ERR_FILE:
        return f"{shown}: cannot open the file; check that it exists and is readable"
    return (f"{shown}: not a readable PDF (damaged or truncated); re-download or re-export it")


def _check_image(item: _Input) -> None:
    """Open and decode enough of the image to catch damage, without decoding every pixel of a PNG."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; both mean "too large" here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(item.path) as im:
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    raise UserError(f"{item.shown}: image has {frames} frames; save one image per page")
                if im.format == "PNG":
                    im.verify()  # checks every chunk's CRC: catches truncation and bit rot
                else:
                    if im.format == "JPEG":
                        # Decoding at 1/8 scale still reads the whole stream, at a fraction of the cost.
                        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
                    im.load()
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"{item.shown}: image is too large to open safely (over {Image.MAX_IMAGE_PIXELS} pixels);"
            " scale it down"
        ) from None
    except UnidentifiedImageError:
        raise UserError(f"{item.shown}: not a readable image; replace it or remove it") from None
    except Exception as exc:  # decoders raise OSError, SyntaxError, struct.error, ValueError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{item.shown}: not a readable image ({reason}); replace it or remove it") from None


def _source(item: _Input) -> SourceFile:
    if not item.path.is_file():
        raise UserError(f"{item.shown}: not a regular file; give PDF files or one folder of page images")
    if item.path.stat().st_size == 0:
        raise UserError(f"{item.shown}: file is empty (0 bytes); copy or download it again")
    suffix = item.path.suffix.lower()
    kind: Literal["pdf", "image"]
    if suffix == ".pdf" or _looks_like_pdf(item.path):
        pages = _pdf_page_count(item)
        kind = "pdf"
    elif suffix in IMAGE_SUFFIXES:
        _check_image(item)
        pages = 1
        kind = "image"
    else:
        raise UserError(
            f"{item.shown}: not a PDF or a page image ({_IMAGE_LIST}); give PDF files or one folder"
            " of page images"
        )
    sha, size = _sha256(item)
    return SourceFile(path=str(item.path), sha256=sha, kind=kind, page_count=pages, size=size)


def _folder_items(folder: Path, shown: str) -> list[_Input]:
    try:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
    except OSError as exc:
        raise UserError(f"{shown}: cannot list the folder ({exc.strerror}); check its permissions") from None
    if not entries:
        raise UserError(f"{shown}: folder is empty; put the page images ({_IMAGE_LIST}) in it")
    dirs = sorted((e.name for e in entries if e.is_dir()), key=natural_key)
    if len(dirs) == len(entries):
        raise UserError(
            f"{shown}: folder holds only folders ({_few(dirs)}); give the folder that holds the page"
            " images, one book at a time"
        )
    others = sorted((e.name for e in entries if e.is_dir() or e.suffix.lower() not in IMAGE_SUFFIXES),
                    key=natural_key)
    if others:
        raise UserError(
            f"{shown}: folder holds entries that are not page images ({_IMAGE_LIST}): {_few(others)};"
            " move them out"
        )
    names = sorted((e.name for e in entries), key=lambda n: (natural_key(n), n))
    base = shown.rstrip("/\\") or shown
    return [_Input(path=(folder / n).resolve(), shown=f"{base}/{n}") for n in names]


def _few(names: list[str], limit: int = 5) -> str:
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def scan_sources(paths: Sequence[Path]) -> tuple[str, list[SourceFile]]:
    """Check every input and describe it; returns the book's readable name and its sources.

    Raises ``UserError`` on the first problem found; nothing has been written at that point.
    """
    if not paths:
        raise UserError("no input given; give PDF files or one folder of page images")
    for p in paths:
        if not p.exists():
            raise UserError(f"{p}: no such file or folder; check the path")
    folders = [p for p in paths if p.is_dir()]
    if folders and len(paths) > 1:
        raise UserError(
            f"{folders[0]}: a folder can only be added on its own; give one folder of page images,"
            " or PDF files"
        )
    if folders:
        folder = folders[0].resolve()
        items = _folder_items(folder, str(folders[0]))
        name = folder.name
    else:
        items = [_Input(path=p.resolve(), shown=str(p)) for p in paths]
        name = items[0].path.stem
    return name, [_source(item) for item in items]


# ---------------------------------------------------------------------------------- add


async def add_book(store: Store, settings: Settings, paths: list[Path], *,
                   book_id: str | None = None) -> tuple[Book, bool]:
    """Add the scans at ``paths`` as a book; returns the book and whether it was created now.

    The same content (same files, same order) added again returns the existing book. With
    ``book_id`` the id is the caller's; reusing an id for different content is an error.
    ``settings`` is taken for symmetry with the other entry points (ids do not depend on it).

    Runs synchronous file checks (hashing, PDFium, Pillow) in the calling thread: PDFium is not
    thread-safe, and a few seconds of blocking is acceptable for a one-off command.
    """
    del settings
    if book_id is not None:
        check_book_id(book_id)
    name, sources = scan_sources(paths)
    digest = content_hash(sources)

    existing = await _find_same_content(store, digest, book_id)
    if existing is not None:
        return existing, False
    if book_id is None:
        book_id = book_id_for(name, sources)
    elif (other := await store.get_book(book_id)) is not None:
        raise UserError(
            f"book id '{book_id}' is already used by other scans ({other.name}); choose another --id"
            " or remove that book first"
        )

    book = Book(id=book_id, name=name, sources=sources, page_count=sum(s.page_count for s in sources))
    pages = [
        Page.new(book_id, num, PageSource(file=i, index=j))
        for num, (i, j) in enumerate(
            ((i, j) for i, src in enumerate(sources) for j in range(src.page_count)), start=1
        )
    ]
    created = await store.add_book(book, pages)
    if not created:
        # Another process added the same id between our check and our write.
        stored = await store.get_book(book_id)
        return (stored or book), False
    log.info("added book %s: %d pages from %d sources", book_id, book.page_count, len(sources))
    return book, True


async def _find_same_content(store: Store, digest: str, book_id: str | None) -> Book | None:
    """The stored book with exactly these sources, so a renamed copy is still the same book."""
    if book_id is not None:
        book = await store.get_book(book_id)
        return book if book is not None and content_hash(book.sources) == digest else None
    for book in await store.list_books():
        if content_hash(book.sources) == digest:
            return book
    return None

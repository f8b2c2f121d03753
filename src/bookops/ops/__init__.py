"""The seven operations of book processing, usable alone from a notebook or a script.

::

    from bookops.ops import Extract, Ocr, Blend, Label, Metadata, TocFind, TocExtract

    Extract().run_sync(lib, book)                                  # page images first
    texts = Ocr(provider="tesseract").run_sync(lib, book, pages=range(1, 11))
    texts = await Ocr(provider="tesseract").run(lib, book, pages=range(1, 11))  # in async code

Each one does what is runnable now, judged from the store, and returns its stored results as
pydantic models (``results()``): Extract a list of ``ImageInfo`` (None for a page not extracted),
Ocr a list of ``OcrResult``, Blend a list of the pages' ``Blend``, Label a list of ``PageLabel``,
Metadata a ``BookMetadata``, TocFind and TocExtract the ``Toc`` (or None).

The order matters: each operation reads what the one before it stored::

    Extract -> Ocr(provider) -> Blend -> Label -> Metadata, TocFind -> TocExtract

so ``Ocr().run(lib, book)`` on a book whose pages are not extracted yet raises ``UserError`` saying
that Extract has to run first. ``lib.run_ops([Extract(), Ocr()], book, pages=...)`` runs several in
order in one go, each finding its input made by the one before it.
``lib.run("process-pages", book)`` runs all seven as a job (recorded, resumable, one per book).
Metadata and TocFind wait for the front pages (1..20 and 1..30) to be blended; TocExtract needs the
pages labeled to resolve scan pages.

``Operation`` is the base class and contract of all of them (see :mod:`bookops.ops.base`).
"""

from .base import Operation
from .blend import Blend
from .extract import Extract
from .label import Label
from .metadata import Metadata
from .ocr import Ocr
from .toc_extract import TocExtract
from .toc_find import TocFind

__all__ = ["Blend", "Extract", "Label", "Metadata", "Ocr", "Operation", "TocExtract", "TocFind"]

"""bookops: scanned books into structured data.

In a notebook or a script::

    import bookops

    lib = bookops.open()                      # the embedded store under ~/.bookops (or BOOKOPS_HOME)
    book = lib.add("scan.pdf")
    lib.run("process-pages", book.id)         # or: await lib.arun("process-pages", book.id)
    lib.show_book(book.id)                    # HTML in Jupyter, a table in a terminal

The operations (``Extract``, ``Ocr``, ``Blend``, ``Label``, ``Metadata``, ``TocFind``,
``TocExtract``) also run alone; see :mod:`bookops.ops`. The stored models are in
:mod:`bookops.schema`, the displays in :mod:`bookops.display`, the errors in :mod:`bookops.errors`.
"""

from .api import Library, open
from .errors import (
    BookBusy,
    BookopsError,
    ConfigError,
    InvalidOutput,
    PermanentError,
    ProviderError,
    RateLimited,
    StoreError,
    TransientError,
    UserError,
)
from .ops import Blend, Extract, Label, Metadata, Ocr, Operation, TocExtract, TocFind
from .settings import Settings
from .store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Blend",
    "BookBusy",
    "BookopsError",
    "ConfigError",
    "Extract",
    "InvalidOutput",
    "Label",
    "Library",
    "Metadata",
    "Ocr",
    "open",
    "open_store",
    "Operation",
    "PermanentError",
    "ProviderError",
    "RateLimited",
    "Settings",
    "Store",
    "StoreError",
    "TocExtract",
    "TocFind",
    "TransientError",
    "UserError",
]

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

import importlib as _importlib
import typing as _typing

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

if _typing.TYPE_CHECKING:
    from .api import Library, open
    from .ops import Blend, Extract, Label, Metadata, Ocr, Operation, TocExtract, TocFind
    from .settings import Settings
    from .store import Store, open_store

# Imported on first use: the CPU pool's worker processes import bookops.providers, and with it this
# package; the whole library (store, displays, pydantic models) would cost each worker 0.3 s more.
_LAZY = {"Library": ".api", "open": ".api", "Settings": ".settings", "Store": ".store",
         "open_store": ".store", **{name: ".ops" for name in (
             "Blend", "Extract", "Label", "Metadata", "Ocr", "Operation", "TocExtract", "TocFind")}}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bookops' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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

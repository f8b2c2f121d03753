"""The public surface: ``__all__`` is exactly the intended names, each documented and typed.

As httpx's ``test_exported_members``: ``__all__`` lists every public name the package namespace
holds (submodules aside) and nothing else, sorted; then every name, and every public method of
every class, has a docstring and full type hints.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bookops
import bookops.display
import bookops.ops

ROOT_NAMES = {
    "__version__",
    # the facade
    "Library", "open", "Settings", "Store", "open_store",
    # operations
    "Operation", "Extract", "Ocr", "Blend", "Label", "Metadata", "TocFind", "TocExtract",
    # errors
    "BookopsError", "UserError", "BookBusy", "ConfigError", "StoreError", "ProviderError",
    "RateLimited", "TransientError", "InvalidOutput", "PermanentError",
}
OPS_NAMES = {"Operation", "Extract", "Ocr", "Blend", "Label", "Metadata", "TocFind", "TocExtract"}
DISPLAY_NAMES = {"BookView", "PageView", "TocView", "HistoryView", "JobView", "CostView",
                 "thumbnail_data_uri"}

MODULES = [(bookops, ROOT_NAMES), (bookops.ops, OPS_NAMES), (bookops.display, DISPLAY_NAMES)]


def _public_namespace(module: types.ModuleType) -> set[str]:
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)}


@pytest.mark.parametrize(("module", "intended"), MODULES, ids=lambda m: getattr(m, "__name__", ""))
def test_all_is_the_intended_public_names(module: types.ModuleType, intended: set[str]) -> None:
    assert set(module.__all__) == intended
    assert len(module.__all__) == len(intended)  # no duplicates
    for name in module.__all__:  # the package imports the heavier names on first use
        assert getattr(module, name) is not None
    if module is not bookops.display:  # the package namespaces hold nothing else public
        assert _public_namespace(module) == intended - {"__version__"}
    else:
        assert intended <= _public_namespace(module)
    assert module.__all__ == sorted(module.__all__, key=str.casefold)


def test_ops_are_the_same_objects_everywhere() -> None:
    from bookops.jobs.kinds import op_class

    for name, op in [("extract", bookops.Extract), ("ocr", bookops.Ocr), ("blend", bookops.Blend),
                     ("label", bookops.Label), ("metadata", bookops.Metadata),
                     ("toc_find", bookops.TocFind), ("toc_extract", bookops.TocExtract)]:
        assert getattr(bookops.ops, op.__name__) is op
        assert op_class(name) is op
        assert op.name == name


def _missing_hints(func: Callable[..., Any]) -> list[str]:
    hints = getattr(func, "__annotations__", {})
    sig = inspect.signature(func)
    missing = [p for p in sig.parameters if p not in ("self", "cls") and p not in hints]
    if "return" not in hints:
        missing.append("return")
    return missing


def _public_methods(cls: type) -> Iterator[tuple[str, Callable[..., Any], str | None]]:
    """(name, function, docstring) of every public method and property bookops defines on ``cls``."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, property):
            func, doc = raw.fget, raw.__doc__
        else:
            func = getattr(raw, "__func__", raw)
            doc = inspect.getdoc(getattr(cls, name))  # inherits the overridden method's docstring
        if func is None or not callable(func) or isinstance(func, type):
            continue
        if not getattr(func, "__module__", "").startswith("bookops"):
            continue  # pydantic's, Exception's...
        yield name, func, doc


def _objects() -> Iterator[tuple[str, Any]]:
    for module, _ in MODULES:
        for name in module.__all__:
            if name != "__version__":
                yield f"{module.__name__}.{name}", getattr(module, name)


@pytest.mark.parametrize(("qualname", "obj"), list(_objects()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_names_have_docstrings_and_type_hints(qualname: str, obj: Any) -> None:
    assert inspect.getdoc(obj), f"{qualname} has no docstring"
    if inspect.isclass(obj):
        problems = []
        for name, func, doc in _public_methods(obj):
            if not doc:
                problems.append(f"{name}: no docstring")
            missing = _missing_hints(func)
            if missing:
                problems.append(f"{name}: no type hints for {missing}")
        assert not problems, f"{qualname}: {problems}"
    else:
        assert callable(obj)
        assert not _missing_hints(obj), f"{qualname}: no type hints for {_missing_hints(obj)}"


def test_workers_import_the_providers_without_the_library() -> None:
    """A CPU-pool worker imports ``bookops.providers``: the store, jobs and displays stay out."""
    import subprocess
    import sys

    code = ("import sys, bookops.providers.pdf, bookops.providers.tesseract; "
            "print(sorted(m for m in sys.modules if m.startswith(('bookops.', 'rich', 'pydantic'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("bookops.api", "bookops.store", "bookops.jobs", "bookops.display", "rich", "pydantic"):
        assert f"'{heavy}" not in loaded, loaded


def test_version_is_a_string() -> None:
    assert isinstance(bookops.__version__, str) and bookops.__version__.count(".") == 2


def test_docs_and_notebook_never_import_private_modules() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in [root / "docs" / "notebook.ipynb", root / "README.md"]:
        text = path.read_text(encoding="utf-8")
        assert "bookops._" not in text and "from ._" not in text, path

"""docs/notebook.ipynb runs end to end, headless, so it never rots.

The notebook makes its own temporary home (under ``TMPDIR``, pointed at ``tmp_path`` here) and
removes it at the end; ``BOOKOPS_HOME`` is a tmp dir too (the ``clean_environ`` fixture), so a cell
that forgot the home could not touch ``~/.bookops``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"


def _by_tag(nb: Any) -> dict[str, Any]:
    return {tag: cell for cell in nb.cells for tag in cell.metadata.get("tags", [])}


def _html(cell: Any) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def _text(cell: Any) -> str:
    parts = []
    for o in cell.outputs:
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "bookops._" not in NOTEBOOK.read_text(encoding="utf-8")  # public API only


def test_notebook_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel inherits it: the notebook's home lands here
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no path-migration DeprecationWarning
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # no debugger notice on stderr
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # run from docs/, as Jupyter would
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None
            assert not [o for o in cell.outputs if o.output_type == "error"]

    cells = _by_tag(nb)
    assert "sample-book-" in _text(cells["add"]) and "12" in _text(cells["add"])
    assert "process-pages" in _html(cells["process-pages"]) and "succeeded" in _html(cells["process-pages"])
    book = _html(cells["show-book"])
    assert "SBCL" in book and "12/12" in book and "toc_extract" in book
    page = _html(cells["show-page"])
    assert '<img src="data:image/' in page and "printed page" in page and "blended text" in page
    assert "tesseract: confidence" in _text(cells["ocr"])
    toc = _html(cells["show-toc"])
    assert "scan page" in toc and "padding-left" in toc and "entries" in toc
    assert "succeeded" in _html(cells["rerun-toc"])
    assert "toc.reset" in _text(cells["history-counts"]) and "toc.reset" in _html(cells["history"])
    assert "$0.0000" in _html(cells["cost"])
    assert "(1, " in _text(cells["ops"])
    run_ops = _text(cells["run-ops"])
    assert "UserError: Ocr needs extracted pages" in run_ops and "[1, 2]" in run_ops
    assert "SBCL" in _text(cells["async"])
    # the temporary home was removed by the last cell
    assert not list(tmp_path.glob("bookops-notebook-*"))


def test_kernel_is_this_python() -> None:
    """The ``python3`` kernel runs the venv's interpreter, so the notebook imports this bookops."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    exe = spec.argv[0]
    assert exe in ("python", "python3", "{python}") or Path(exe).resolve() == Path(sys.executable).resolve()

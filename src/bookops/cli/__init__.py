"""The ``bookops`` command line. One handler turns bookops errors into one line and an exit code."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer

from ..errors import BookopsError
from . import _groups

app = typer.Typer(
    name="bookops",
    help="Turn scanned books into structured data: pages, OCR, labels, metadata, table of contents.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # the default would print settings and API keys
    add_completion=False,
)
_groups.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --verbose is global and may stand anywhere; the commands never see it.
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    as_json = "--json" in args
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        rc = app(args=args, standalone_mode=False)
        # typer turns a KeyboardInterrupt inside a command into a returned 130
        if rc == 130:
            raise KeyboardInterrupt
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except BookopsError as exc:
        _fail(exc, exc.exit_code, as_json, verbose)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:  # a declined confirmation
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # click usage errors carry their own exit code
        try:
            import click
        except ModuleNotFoundError:  # newer typer vendors click as typer._click
            from typer import _click as click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _fail(exc: BookopsError, code: int, as_json: bool, verbose: bool) -> None:
    if verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if as_json:
        payload: dict[str, Any] = {"error": {"type": type(exc).__name__, "message": exc.message}}
        print(json.dumps(payload))
    print(f"error: {exc.message}", file=sys.stderr)
    sys.exit(code)

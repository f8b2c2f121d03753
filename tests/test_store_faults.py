"""Store faults through the real CLI: an unreachable MongoDB and an embedded store locked by
another process end with one line and StoreError's exit code, within the configured timeout,
with nothing half-written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bookops.errors import StoreError
from tests.conftest import SAMPLE_PDF

pytestmark = pytest.mark.timeout(90)

BOOKOPS = [sys.executable, "-c", "from bookops.cli import main; main()"]
TIMEOUT_S = 1.0


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKOPS_", "OPENAI_"))}
    env.update({"BOOKOPS_HOME": str(home), "BOOKOPS_STORE_TIMEOUT_S": str(TIMEOUT_S), **extra})
    return env


def _run(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    out = subprocess.run([*BOOKOPS, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    return out, time.monotonic() - t0


def _one_error_line(out: subprocess.CompletedProcess[str], says: str) -> str:
    assert out.returncode == StoreError.exit_code, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""
    return lines[0]


@pytest.mark.parametrize("args", [["book", "add", str(SAMPLE_PDF)], ["book", "list"],
                                  ["job", "process-pages", str(SAMPLE_PDF)]],
                         ids=["book add", "book list", "process-pages"])
def test_unreachable_mongodb_is_one_line_within_the_timeout(args: list[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    uri = f"mongodb://reader:hunter2@127.0.0.1:{_closed_port()}/?directConnection=true"
    out, seconds = _run(_env(home, BOOKOPS_MONGO_URI=uri), *args)
    line = _one_error_line(out, "cannot reach MongoDB at mongodb://***@127.0.0.1")
    assert "hunter2" not in line
    # server selection waits TIMEOUT_S; the rest is interpreter start-up and imports
    assert seconds < TIMEOUT_S + 8, seconds
    # nothing written anywhere: no embedded store and no page images were made instead
    assert not (home / "bookops.sqlite3").exists() and not (home / "books").exists()


def test_malformed_mongodb_uri_is_one_line(tmp_path: Path) -> None:
    out, _ = _run(_env(tmp_path / "home", BOOKOPS_MONGO_URI="mongodb://127.0.0.1:notaport"),
                  "book", "list")
    _one_error_line(out, "MongoDB URI")


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT OR REPLACE INTO books (id, doc) VALUES ('lock-holder', '{}')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def _hold_write_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(db), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _books(env: dict[str, str]) -> str:
    out, _ = _run(env, "book", "list", "--json")
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_embedded_store_locked_by_another_process_waits_then_fails_clearly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home)
    assert _books(env).strip() == "[]"  # creates the store file and its schema
    before = _books(env)
    holder = _hold_write_lock(home / "bookops.sqlite3", 30)
    try:
        out, seconds = _run(env, "book", "add", str(SAMPLE_PDF))
        _one_error_line(out, "stayed locked by another process")
        assert seconds >= TIMEOUT_S  # it waited for the lock first
        assert seconds < TIMEOUT_S + 8, seconds
    finally:
        holder.kill()
        holder.wait()
    assert _books(env) == before  # nothing half-written: no pages without their book


def test_embedded_store_lock_released_in_time_is_waited_for(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home, BOOKOPS_STORE_TIMEOUT_S="20")
    assert _books(env).strip() == "[]"
    holder = _hold_write_lock(home / "bookops.sqlite3", 1.5)
    try:
        out, _ = _run(env, "book", "add", str(SAMPLE_PDF))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().startswith("sample-book-")
    finally:
        holder.wait(timeout=30)

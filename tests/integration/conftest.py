"""Integration fixtures: the loopback OpenAI-compatible stub server and the CLIs run as real subprocesses."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.openai_stub import StubServer
from tests.conftest import ROOT
from tests.integration.postgres import PostgresServer, serving_postgres

# the samples columns every consumer of condor.db may rely on
CONTRACT_COLUMNS = {
    "id", "tag_path", "task_type", "difficulty", "language", "question", "void_answer",
    "refined_answer", "rounds", "final_score", "status", "error",
}  # fmt: skip


def serving(latency: float) -> Iterator[StubServer]:
    """A stub server on loopback for the length of a fixture."""
    server = StubServer(latency=latency).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    yield from serving(0.01)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real Postgres server for the whole session (tests/integration/postgres.py); tests take fresh databases."""
    yield from serving_postgres()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONDOR_"))}
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def wait_until_up(url: str, proc: subprocess.Popen[Any], what: str, timeout: float = 120) -> None:
    """Poll a server's URL until it answers; fail early if its process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.5)


def run_cli(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=cli_env(**env), capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stored(db: Path) -> int:
    """Sample rows in a run's condor.db as another process sees them (0 while it does not exist yet)."""
    if not db.exists():
        return 0
    try:  # read-only (it never checkpoints the run's WAL) and closed at once (it never sees the WAL removed under it)
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return int(conn.execute("select count(*) from samples").fetchone()[0])
    except sqlite3.OperationalError:
        return 0

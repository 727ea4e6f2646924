"""Shared fixtures: a loopback OpenAI-compatible stub server and a way to run the CLIs as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openai_stub import StubServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer(latency=0.01).start()
    yield server
    server.shutdown()
    server.server_close()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONDOR_"))}
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_cli(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=cli_env(**env), capture_output=True, text=True, timeout=timeout
    )

"""Shared fixtures: a loopback OpenAI-compatible stub server and a way to run the CLIs as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

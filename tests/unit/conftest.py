"""Unit-test helpers: no network, no subprocess, no model, no server thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest

import agents.models
from condor_state.context import Context
from graphs.runner import run_job
from tests.unit.fake_chat import FakeChatModel, Script

SERVED = Context(base_url="http://127.0.0.1:9/v1", concurrency=4)  # the model itself is the fake


def use_fake_model(monkeypatch: pytest.MonkeyPatch, script: Script | None = None) -> tuple[list[str], list[Any]]:
    """Every role's model becomes a FakeChatModel; returns the shared call log and conversation log."""
    calls: list[str] = []
    conversations: list[Any] = []

    def fake_chat_model(_: Context, role: str, shared: object = None) -> FakeChatModel:
        return FakeChatModel(role=role, script=script, calls=calls, conversations=conversations)

    monkeypatch.setattr(agents.models, "chat_model", fake_chat_model)  # what ModelPool.for_role builds from
    return calls, conversations


def run_until(
    held: threading.Event, release: threading.Event, out: Path, samples: int, context: Context = SERVED
) -> None:
    """run_job until a request is held at the model, then cancelled there, as SIGTERM does (a kill -9 leaves the
    same on disk: each commit lands before the loop's next callback); the held request is let go afterwards."""

    async def cancelled_run() -> None:
        run = asyncio.ensure_future(run_job(out, samples, context))
        while not held.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the other requests of the step come back meanwhile
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        release.set()  # its reply, come too late, goes nowhere

    asyncio.run(cancelled_run())

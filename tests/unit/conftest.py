"""Unit-test helpers: no network, no subprocess, no model, no server thread."""

from __future__ import annotations

from typing import Any

import pytest

import agents.models
from condor_state.context import Context
from tests.unit.fake_chat import FakeChatModel, Script


def use_fake_model(monkeypatch: pytest.MonkeyPatch, script: Script | None = None) -> tuple[list[str], list[Any]]:
    """Every role's model becomes a FakeChatModel; returns the shared call log and conversation log."""
    calls: list[str] = []
    conversations: list[Any] = []

    def fake_chat_model(_: Context, role: str, shared: object = None) -> FakeChatModel:
        return FakeChatModel(role=role, script=script, calls=calls, conversations=conversations)

    monkeypatch.setattr(agents.models, "chat_model", fake_chat_model)  # what ModelPool.for_role builds from
    return calls, conversations

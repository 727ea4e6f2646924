"""Graph logic with a deterministic fake model: routing, round bookkeeping, failures recorded with reasons."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

import agents.model_call
from condor_state.context import Context
from graphs.graph import builder
from tests.fake_chat import FakeChatModel

Script = Callable[[str, list[dict]], str | None] | None


def run_batch(monkeypatch: pytest.MonkeyPatch, context: Context, script: Script = None, **inputs: Any) -> dict:
    calls: list[str] = []

    def fake_chat_model(_: Context, role: str, loop: object = None) -> FakeChatModel:
        return FakeChatModel(role=role, script=script, calls=calls)

    monkeypatch.setattr(agents.model_call, "chat_model", fake_chat_model)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    state = asyncio.run(graph.ainvoke({"call_index": 0, "keep": 3, **inputs}, config, context=context))
    state["_calls"] = calls
    return state


def test_samples_loop_until_the_critic_is_satisfied(monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_batch(monkeypatch, Context(threshold=8, max_rounds=2))
    samples = state["samples"]
    assert [s["difficulty"] for s in samples] == ["Easy", "Medium", "Hard"]
    for s in samples:
        assert s["status"] == "done"
        assert [r["score"] for r in s["rounds"]] == [5, 9]  # void answer scored 5, revised answer 9
        assert s["rounds"][0]["revised_answer"] == s["answer"]
        assert s["rounds"][1]["revised_answer"] is None
        assert s["void_answer"].startswith("An answer")
        assert "(revised)" in s["answer"]
    assert state["_calls"].count("critic") == 6 and state["_calls"].count("reviser") == 3


def test_round_limit_stops_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_batch(monkeypatch, Context(threshold=10, max_rounds=2), keep=1)
    (sample,) = state["samples"]
    assert sample["status"] == "done"
    assert len(sample["rounds"]) == 3  # critique, revise, critique, revise, final critique
    assert sum(1 for r in sample["rounds"] if r["revised_answer"]) == 2


def test_zero_rounds_keeps_the_first_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_batch(monkeypatch, Context(threshold=10, max_rounds=0), keep=2)
    assert len(state["samples"]) == 2
    for s in state["samples"]:
        assert s["status"] == "done" and s["answer"] == s["void_answer"] and len(s["rounds"]) == 1


def test_unparsable_critique_fails_the_sample_with_a_reason_after_repair(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict]) -> str | None:
        return "I think it is fine." if role == "critic" else None

    state = run_batch(monkeypatch, Context(max_repairs=1), script=script, keep=1)
    (sample,) = state["samples"]
    assert sample["status"] == "failed"
    assert sample["error"].startswith("critic: no score")
    assert "after 1 repair" in sample["error"]
    assert state["_calls"].count("critic") == 2  # first try + one repair


def test_repair_recovers_a_bad_first_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict]) -> str | None:
        first_try = not any(m["role"] == "assistant" for m in messages)
        return "Sure! Here are some questions about it." if role == "question_writer" and first_try else None

    state = run_batch(monkeypatch, Context(), script=script, keep=3)
    assert all(s["status"] == "done" for s in state["samples"])
    assert all(s["repairs"] == 1 for s in state["samples"])
    assert state["_calls"].count("question_writer") == 2


def test_missing_level_becomes_a_failed_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict]) -> str | None:
        if role == "question_writer":
            return "[Easy][Question Start]What is a good first question here?[Question End]"
        return None

    state = run_batch(monkeypatch, Context(max_repairs=0), script=script)
    statuses = {s["difficulty"]: (s["status"], s["error"]) for s in state["samples"]}
    assert statuses["Easy"] == ("done", None)
    assert statuses["Medium"][0] == "failed" and "no Medium question" in statuses["Medium"][1]
    assert statuses["Hard"][0] == "failed"


def test_pinned_inputs_win_over_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_batch(monkeypatch, Context(), tag_path="Health > Sleep > Naps", task_type="View", language="zh", keep=1)
    assert state["tag_path"] == ["Health", "Sleep", "Naps"]
    assert state["task_type"] == "View" and state["language"] == "zh"


def test_pinned_question_skips_the_question_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_batch(monkeypatch, Context(), question="How do noise-cancelling headphones work?")
    (sample,) = state["samples"]
    assert sample["question"] == "How do noise-cancelling headphones work?"
    assert "question_writer" not in state["_calls"]
    assert sample["status"] == "done"

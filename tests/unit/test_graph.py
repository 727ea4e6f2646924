"""Graph logic with a deterministic fake model: routing, round bookkeeping, failures recorded with reasons."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from condor_state.context import Context
from graphs.graph import builder, recursion_limit
from tests.unit.conftest import use_fake_model
from tests.unit.fake_chat import Script


def run_batch(
    monkeypatch: pytest.MonkeyPatch, context: Context, script: Script | None = None, **inputs: Any
) -> dict[str, Any]:
    calls, conversations = use_fake_model(monkeypatch, script)
    graph = builder.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t"}, "recursion_limit": recursion_limit(context)}
    batch_input: Any = {"call_index": 0, "keep": 3, **inputs}
    state = asyncio.run(graph.ainvoke(batch_input, config, context=context))
    state["_calls"] = calls
    state["_conversations"] = conversations
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
    assert statuses["Medium"][0] == "failed" and "no Medium, Hard question" in statuses["Medium"][1]
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


def test_a_half_parsed_question_reply_is_re_asked_only_for_the_missing_level(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict]) -> str | None:
        if role != "question_writer":
            return None
        if messages[-1]["role"] == "user" and "Medium" in messages[-1]["content"] and len(messages) > 2:
            return "[Medium][Question Start]怎样煮好米饭？[Question End]"
        return (
            "Here are the questions:\n[Easy][Question Start]What does [Easy] mean in a game menu?[Question End]\n"
            "[Hard][Question Start]Compare arr[0] access costs in C and Python.[Question End]"
        )

    state = run_batch(monkeypatch, Context(max_repairs=1), script=script)
    questions = {s["difficulty"]: s["question"] for s in state["samples"]}
    assert questions == {
        "Easy": "What does [Easy] mean in a game menu?",
        "Medium": "怎样煮好米饭？",
        "Hard": "Compare arr[0] access costs in C and Python.",
    }
    assert {s["difficulty"]: s["repairs"] for s in state["samples"]}["Medium"] >= 1
    first_repairs = {s["difficulty"]: s["repairs"] for s in state["samples"] if s["difficulty"] != "Medium"}
    assert set(first_repairs.values()) <= {0, 1}  # the writer's re-ask is not charged to questions it already had
    writer_turns = [m for role, m in state["_conversations"] if role == "question_writer"]
    assert len(writer_turns) == 2
    re_ask = writer_turns[1][-1]["content"]
    assert "Medium" in re_ask and "Easy" not in re_ask and "Hard" not in re_ask


def test_a_failed_final_critique_keeps_the_revision_with_its_score_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict]) -> str | None:
        if role != "critic":
            return None
        answer_is_revised = "(revised)" in messages[1]["content"].split("[Score End]")[-1]  # the prompt, not a re-ask
        return "Looks fine to me." if answer_is_revised else None

    state = run_batch(monkeypatch, Context(max_repairs=1, max_rounds=2), script=script, keep=1)
    (sample,) = state["samples"]
    assert sample["status"] == "done"
    assert "(revised)" in sample["answer"] and sample["rounds"][-1]["revised_answer"] == sample["answer"]
    assert sample["error"].startswith("final score unknown: critic: ")


def test_a_reply_cut_at_the_limit_is_re_asked_with_a_length_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict]) -> str | tuple[str, str] | None:
        if role == "responder" and len(messages) == 1:
            return "A very long answer that never ends because", "length"
        return None

    state = run_batch(monkeypatch, Context(max_tokens=600), script=script, keep=1)
    (sample,) = state["samples"]
    assert sample["status"] == "done" and sample["void_answer"].startswith("An answer")
    re_ask = [m for role, m in state["_conversations"] if role == "responder"][1][-1]["content"]
    assert "600 tokens" in re_ask and "300 words" in re_ask
    assert "format" not in re_ask  # the responder has no format: a plain turn


def test_an_empty_answer_is_re_asked_as_a_plain_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict]) -> str | None:
        return "<think>Let me think about this.</think>" if role == "responder" and len(messages) == 1 else None

    state = run_batch(monkeypatch, Context(), script=script, keep=1)
    assert state["samples"][0]["status"] == "done"
    re_ask = [m for role, m in state["_conversations"] if role == "responder"][1][-1]["content"]
    assert "answer the question again" in re_ask and "format" not in re_ask


def test_a_continued_call_writes_only_the_levels_not_stored_from_its_earlier_questions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    earlier = {"Easy": "Stored already?", "Medium": "Kept from the first reply?", "Hard": "Also kept?"}
    state = run_batch(monkeypatch, Context(seed=3), call_index=4, questions=earlier, stored_levels=["Easy"])
    assert "question_writer" not in state["_calls"]
    assert [(s["difficulty"], s["position"], s["question"]) for s in state["samples"]] == [
        ("Medium", 13, "Kept from the first reply?"),
        ("Hard", 14, "Also kept?"),
    ]
    assert [s["id"] for s in state["samples"]] == ["s3-0000013", "s3-0000014"]


def test_many_rounds_fit_in_the_recursion_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_batch(monkeypatch, Context(threshold=10, max_rounds=14), keep=1)  # 32 steps; LangGraph's default: 25
    (sample,) = state["samples"]
    assert sample["status"] == "done" and len(sample["rounds"]) == 15


def test_the_run_seed_reaches_the_served_model() -> None:
    from agents.models import chat_model

    model: Any = chat_model(Context(base_url="http://127.0.0.1:9/v1", seed=1234), "critic")
    assert model.seed == 1234


@pytest.mark.parametrize("client", ["condor", "openai"])
def test_a_run_imports_at_start_up_the_module_of_the_client_its_model_is_made_from(client: str) -> None:
    from agents.models import chat_model, client_module

    served = Context(base_url="http://127.0.0.1:9/v1", client=client)
    module = client_module(served)
    assert module is not None and type(chat_model(served, "critic")).__module__.startswith(module)
    assert client_module(Context()) is None  # the embedded model: no HTTP client to import

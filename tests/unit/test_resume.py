"""Resume: the three outcomes of a checkpointed thread, and runs that grow without redoing stored work."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver

import agents.models
from condor_state.context import Context
from condor_state.dataset import Dataset
from condor_state.rundir import thread_id
from graphs.checkpoints import RunCheckpoints
from graphs.graph import builder
from graphs.runner import YOUNG_GENERATION, RunError, finish_thread, run_job, run_loop
from tests.unit.conftest import SERVED, run_until, use_fake_model
from tests.unit.fake_chat import FakeChatModel


def test_a_thread_with_pending_tasks_is_continued_from_its_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    calls, _ = use_fake_model(monkeypatch)
    saver = InMemorySaver()
    config: Any = {"configurable": {"thread_id": "t"}}
    halted = builder.compile(checkpointer=saver, interrupt_before=["critic"])
    asyncio.run(halted.ainvoke({"call_index": 0, "keep": 1}, config, context=SERVED))
    assert calls == ["question_writer", "responder"]
    final = asyncio.run(finish_thread(builder.compile(checkpointer=saver), config, SERVED))
    assert final is not None and final["samples"][0]["status"] == "done"
    assert calls == ["question_writer", "responder", "critic", "reviser", "critic"]  # nothing asked twice


def test_the_runs_checkpointer_keeps_a_paused_thread_on_disk_for_the_next_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls, _ = use_fake_model(monkeypatch)
    config: Any = {"configurable": {"thread_id": "t"}}
    with RunCheckpoints.open(tmp_path / "checkpoints.db") as saver:
        halted = builder.compile(checkpointer=saver, interrupt_before=["critic"])
        asyncio.run(halted.ainvoke({"call_index": 0, "keep": 1}, config, context=SERVED, durability="sync"))
    with RunCheckpoints.open(tmp_path / "checkpoints.db") as saver:  # reopened, as a re-run does
        assert saver.thread_ids() == {"t"}
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        final = asyncio.run(finish_thread(builder.compile(checkpointer=saver), config, SERVED))
        asyncio.run(saver.adelete_thread("t"))
        assert saver.thread_ids() == set()
    assert final is not None and final["samples"][0]["status"] == "done"
    assert calls == ["question_writer", "responder", "critic", "reviser", "critic"]  # nothing asked twice


def test_a_thread_that_finished_before_a_crash_gives_its_values_without_a_model_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls, _ = use_fake_model(monkeypatch)
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t"}}
    done = asyncio.run(graph.ainvoke({"call_index": 0, "keep": 2}, config, context=SERVED))
    before = len(calls)
    final = asyncio.run(finish_thread(graph, config, SERVED))
    assert final == done and len(calls) == before


def test_a_thread_with_nothing_saved_starts_afresh() -> None:
    graph = builder.compile(checkpointer=InMemorySaver())
    assert asyncio.run(finish_thread(graph, {"configurable": {"thread_id": "never"}}, SERVED)) is None


def test_a_run_on_the_engines_loop_stores_every_sample_on_uvloop_with_a_larger_young_generation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The collector's thresholds are the engine's only while it runs: a library caller gets its own back."""
    import uvloop

    use_fake_model(monkeypatch)
    loops: list[asyncio.AbstractEventLoop] = []
    thresholds: list[tuple[int, int, int]] = []
    before = gc.get_threshold()

    async def job() -> Any:
        loops.append(asyncio.get_running_loop())
        thresholds.append(gc.get_threshold())
        return await run_job(tmp_path, 3, SERVED)

    summary = run_loop(job())
    assert isinstance(loops[0], uvloop.Loop) and summary.done == 3 and len(rows(tmp_path)) == 3
    assert thresholds == [(YOUNG_GENERATION, *before[1:])] and gc.get_threshold() == before


def rows(out: Path) -> list[dict[str, Any]]:
    dataset = Dataset.in_dir(out)
    try:
        samples = list(dataset.samples())
        return [{**s, "rounds_rows": dataset.rounds_of(s["id"])} for s in samples]
    finally:
        dataset.close()


def test_a_run_finishes_a_thread_an_earlier_version_checkpointed_step_by_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Such a thread has no log, only checkpoints: the run continues it from them and asks nothing again."""
    calls, _ = use_fake_model(monkeypatch)
    config: Any = {"configurable": {"thread_id": thread_id(SERVED.seed, 0)}}
    with RunCheckpoints.open(tmp_path / "checkpoints.db") as saver:
        halted = builder.compile(checkpointer=saver, interrupt_before=["critic"])
        asyncio.run(halted.ainvoke({"call_index": 0, "keep": 3}, config, context=SERVED, durability="sync"))
    asked_before = list(calls)
    summary = asyncio.run(run_job(tmp_path, 3, SERVED))
    assert summary.resumed_threads == 1 and summary.done == 3 and len(rows(tmp_path)) == 3
    assert calls[: len(asked_before)] == asked_before
    assert "question_writer" not in calls[len(asked_before) :] and "responder" not in calls[len(asked_before) :]
    with RunCheckpoints.open(tmp_path / "checkpoints.db") as saver:
        assert saver.thread_ids() == set()


def test_growing_samples_continues_a_short_call_from_its_stored_questions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls, conversations = use_fake_model(monkeypatch)
    first = asyncio.run(run_job(tmp_path, 4, SERVED))
    assert (first.done, first.stored_before) == (4, 0)
    before = rows(tmp_path)
    writer_calls = calls.count("question_writer")
    asked = {m[-1]["content"] for role, m in conversations if role == "responder"}
    grown = asyncio.run(run_job(tmp_path, 8, SERVED))
    assert (grown.done, grown.stored_before) == (4, 4)
    after = rows(tmp_path)
    assert len(after) == 8 and after[:4] == before  # stored rows untouched, rounds included
    assert calls.count("question_writer") == writer_calls + 1  # only call 2; call 1 reuses its stored reply
    asked_again = [m[-1]["content"] for role, m in conversations if role == "responder"][len(asked) :]
    assert not set(asked_again) & {r["question"] for r in before}
    call_one = [r for r in after if r["call_index"] == 1]
    assert [r["difficulty"] for r in call_one] == ["Easy", "Medium", "Hard"]
    assert len({r["question"].split("topic ")[-1] for r in call_one}) == 1  # one writer reply's triple


def test_shrinking_below_what_is_stored_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_fake_model(monkeypatch)
    asyncio.run(run_job(tmp_path, 5, SERVED))
    with pytest.raises(RunError, match="already holds 5 samples; --samples must be at least 5"):
        asyncio.run(run_job(tmp_path, 4, SERVED))
    assert len(rows(tmp_path)) == 5


def test_a_change_of_backend_grammar_or_prompts_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_fake_model(monkeypatch)
    asyncio.run(run_job(tmp_path, 3, SERVED))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(RunError, match="backend: 'served' -> 'embedded'"):
        asyncio.run(run_job(tmp_path, 3, Context()))
    with pytest.raises(RunError, match="grammar: False -> True"):
        asyncio.run(run_job(tmp_path, 3, Context(base_url=SERVED.base_url, grammar=True)))
    monkeypatch.setattr("condor_state.rundir.prompt_version", lambda: "another")
    with pytest.raises(RunError, match=r"prompt_version: '[0-9a-f]{12}' -> 'another'"):
        asyncio.run(run_job(tmp_path, 3, SERVED))


def test_a_call_interrupted_while_keeping_one_question_finishes_all_three_when_the_run_grows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from condor_state.rundir import CHECKPOINTS, thread_id

    calls, _ = use_fake_model(monkeypatch)
    asyncio.run(run_job(tmp_path, 4, SERVED))  # call 0 keeps 3, call 1 keeps 1
    dataset = Dataset.in_dir(tmp_path)  # back to before call 1 was stored
    dataset.db.execute("DELETE FROM rounds WHERE sample_id = 's0-0000003'")
    dataset.db.execute("DELETE FROM samples WHERE call_index = 1")
    dataset.db.execute("DELETE FROM calls WHERE call_index = 1")
    dataset.close()

    async def halt_call_one() -> None:  # as if killed before its critique, still keeping one question
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / CHECKPOINTS)) as saver:
            halted = builder.compile(checkpointer=saver, interrupt_before=["critic"])
            config: Any = {"configurable": {"thread_id": thread_id(0, 1)}}
            await halted.ainvoke({"call_index": 1, "keep": 1}, config, context=SERVED)

    asyncio.run(halt_call_one())
    writer_calls = calls.count("question_writer")
    grown = asyncio.run(run_job(tmp_path, 6, SERVED))
    assert (grown.resumed_threads, grown.done, grown.interrupted) == (1, 3, False)
    assert calls.count("question_writer") == writer_calls  # Medium and Hard come from the halted call's reply
    assert [r["difficulty"] for r in rows(tmp_path) if r["call_index"] == 1] == ["Easy", "Medium", "Hard"]


class CommittedAtEachCall(list[str]):
    """The fake model's call log, noting at each model call what another connection can read of the thread."""

    def __init__(self, db: Path) -> None:
        super().__init__()
        self.db = db
        self.committed: list[tuple[int, int]] = []

    def append(self, role: str) -> None:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            logged = conn.execute("SELECT count(*) FROM checkpoint_replies").fetchone()[0]
            self.committed.append((logged, conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]))
        super().append(role)


def test_a_threads_input_and_each_reply_are_committed_before_the_next_model_request_leaves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = CommittedAtEachCall(tmp_path / "checkpoints.db")
    monkeypatch.setattr(agents.models, "chat_model", lambda _, role, shared=None: FakeChatModel(role=role, calls=calls))
    asyncio.run(run_job(tmp_path, 1, SERVED))
    assert calls == ["question_writer", "responder", "critic", "reviser", "critic"]
    # the input, then every earlier reply: a kill at any request loses only that request; no step is checkpointed
    assert calls.committed == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]
    assert sqlite_rows(tmp_path / "checkpoints.db", "checkpoint_replies") == 0  # the stored call's log is deleted


class InlineChat(FakeChatModel):
    """Answers on the loop's thread without yielding, as a client whose connection is ready writes at once."""

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return self._generate(messages, stop, run_manager, **kw)


def test_a_re_ask_leaves_only_after_the_reply_it_is_about_is_committed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def first_critique_has_no_score(role: str, messages: list[dict[str, Any]]) -> str | None:
        if role == "critic" and len(messages) == 2:  # the first request: system and user turns
            return "[Strengths Start]Clear.[Strengths End] No score at all."
        return None

    calls = CommittedAtEachCall(tmp_path / "checkpoints.db")
    fake = lambda _, role, shared=None: InlineChat(role=role, script=first_critique_has_no_score, calls=calls)  # noqa: E731
    monkeypatch.setattr(agents.models, "chat_model", fake)
    asyncio.run(run_job(tmp_path, 1, SERVED))
    assert calls[:4] == ["question_writer", "responder", "critic", "critic"]
    assert calls.committed[3] == (4, 0)  # the re-ask sees the scoreless reply kept, though it left in the same task


def test_saves_on_the_loop_are_committed_together_after_the_current_callbacks(tmp_path: Path) -> None:
    db = tmp_path / "checkpoints.db"

    def committed() -> int:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return int(conn.execute("SELECT count(DISTINCT thread_id) FROM checkpoints").fetchone()[0])

    async def save_three(saver: RunCheckpoints) -> list[int]:
        seen = []
        for thread in ("a", "b", "c"):
            config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
            await saver.aput(config, empty_checkpoint(), {}, {})
            seen.append(committed())  # still one open transaction: nothing visible to others yet
        await asyncio.sleep(0)  # the queued commit runs
        return [*seen, committed()]

    with RunCheckpoints.open(db) as saver:
        assert asyncio.run(save_three(saver)) == [0, 0, 0, 3]
        saver.delete_thread("a")  # without a running loop: committed at once
        assert committed() == 2
        with saver.cursor() as cur:
            cur.execute("DELETE FROM checkpoints WHERE thread_id = 'b'")
    assert committed() == 1


def test_a_step_resumed_after_a_crash_sends_again_only_the_request_that_was_in_flight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two of a call's three answers arrive, the third is still out when the run stops: the answers that arrived
    were kept as they came, so the resumed step asks for the third alone."""
    held, release = threading.Event(), threading.Event()
    answers = 0
    lock = threading.Lock()

    def third_answer_hangs(role: str, _: list[dict[str, Any]]) -> None:
        nonlocal answers
        with lock:
            answers += role == "responder"
            hang = role == "responder" and answers == 3
        if hang and not release.is_set():
            held.set()
            release.wait(30)
        return None  # the stub's reply

    calls, _ = use_fake_model(monkeypatch, third_answer_hangs)
    run_until(held, release, tmp_path, 3)
    assert calls == ["question_writer", "responder", "responder", "responder"]
    asyncio.run(run_job(tmp_path, 3, SERVED))
    assert [r["status"] for r in rows(tmp_path)] == ["done"] * 3
    assert calls.count("responder") == 4  # the one answer that never came, asked for again; nothing else twice
    assert calls.count("question_writer") == 1
    assert sqlite_rows(tmp_path / "checkpoints.db", "checkpoint_replies") == 0  # gone with the stored call's thread


def sqlite_rows(db: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_re_ask_cut_short_by_a_crash_keeps_the_reply_it_was_re_asking_about(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each request of a sample's repair loop is kept on its own: the resumed step sends the re-ask, not the first
    request again, and counts the repair as the uninterrupted run would."""
    held, release = threading.Event(), threading.Event()

    def critique_without_a_score_then_the_re_ask_hangs(role: str, messages: list[dict[str, Any]]) -> str | None:
        if role != "critic" or "(revised)" in messages[-1]["content"]:
            return None
        if not any(m["role"] == "assistant" for m in messages):  # the first answer's first critique
            return "[Strengths Start]Clear.[Strengths End] No score at all."
        if not release.is_set():
            held.set()
            release.wait(30)
        return None

    calls, conversations = use_fake_model(monkeypatch, critique_without_a_score_then_the_re_ask_hangs)
    run_until(held, release, tmp_path, 1)
    assert calls == ["question_writer", "responder", "critic", "critic"]
    asyncio.run(run_job(tmp_path, 1, SERVED))
    first_requests = [m for role, m in conversations if role == "critic" and all(t["role"] != "assistant" for t in m)]
    assert len(first_requests) == 2  # the first answer's and the revision's: the reply without a score was kept
    assert calls == ["question_writer", "responder", "critic", "critic", "critic", "reviser", "critic"]
    [row] = rows(tmp_path)
    assert row["status"] == "done" and row["repairs"] == 1


class KeptReplies(list[tuple[str, str, str]]):
    """A ReplyLog in memory: what the engine would write to checkpoint_replies."""

    async def arecord_reply(self, thread_id: str, key: str, reply: str) -> None:
        self.append((thread_id, key, reply))


def test_a_kept_reply_is_given_back_and_an_unreachable_model_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replies are kept under the request's place in the thread and given back once; a model that could not be
    reached is asked again after a resume (it may be fixed by then), so its refusal is not kept."""
    from agents.model_call import ThreadReplies, ask, thread_replies
    from agents.models import ModelUnavailable

    calls, _ = use_fake_model(monkeypatch)
    messages = [{"role": "user", "content": "What limits the speed of sound?"}]

    async def answer(replies: ThreadReplies) -> str | None:
        thread_replies.set(replies)
        return (await ask(SERVED, "responder", messages, str.strip, "en", formatted=False, scope="s0/0")).value

    log = KeptReplies()
    first = asyncio.run(answer(ThreadReplies(log, "t")))
    assert calls == ["responder"] and len(log) == 1 and log[0][1].startswith("s0/0/responder/0/")
    again = asyncio.run(answer(ThreadReplies(log, "t", {key: reply for _, key, reply in log})))
    assert again == first and calls == ["responder"]  # given back, not asked again

    def unreachable(*_: Any, **__: Any) -> Any:
        raise ModelUnavailable("cannot reach http://127.0.0.1:9/v1: refused")

    monkeypatch.setattr(agents.models, "chat_model", unreachable)  # each asyncio.run has its own pool
    unkept = KeptReplies()
    asyncio.run(answer(ThreadReplies(unkept, "t2")))
    assert unkept == []

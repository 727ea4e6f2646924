"""`graphs.show` in process on a run directory written directly: a call paused before the critic, a failed
sample, and the rich view (user text is never read as markup)."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from rich.console import Console

from condor_state.context import Context
from condor_state.dataset import Dataset
from condor_state.state import BatchState, Round, new_sample
from graphs.graph import builder
from graphs.show import PlainView, RichView, main
from tests.unit.conftest import run_until, use_fake_model


def stopped_before_critic(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call paused before the critic in DIR/checkpoints.db, as a run killed at that moment leaves it."""
    use_fake_model(monkeypatch)

    async def run() -> None:
        async with AsyncSqliteSaver.from_conn_string(str(run_dir / "checkpoints.db")) as saver:
            graph = builder.compile(checkpointer=saver, interrupt_before=["critic"])
            config: RunnableConfig = {"configurable": {"thread_id": "condor-s0-c0000001"}}
            await graph.ainvoke({"call_index": 1, "keep": 2}, config, context=Context(base_url="http://127.0.0.1:9"))

    asyncio.run(run())


def failed_batch(run_dir: Path) -> None:
    """Call 0 stored: one done sample whose question holds rich markup, one failed with its reason."""
    done = new_sample(0, 0, "Easy", "Explain [bold]markup[/bold] and [Strength Start] literally?")
    done |= {"void_answer": "First.", "answer": "Better.", "status": "done"}
    done["rounds"] = [
        Round(round=1, strengths="1. Short.", weaknesses="1. Vague.", suggestions="1. Expand.", score=4,
              critique="raw", revised_answer="Better."),
        Round(round=2, strengths="1. Clear.", weaknesses="", suggestions="", score=8, critique="raw",
              revised_answer=None),
    ]  # fmt: skip
    failed = new_sample(0, 1, "Medium", "A question?") | {"status": "failed", "error": "critic: no score"}
    batch = BatchState(
        call_index=0, tag_path=["Health", "Sleep"], task_type="View", language="en", samples=[done, failed]
    )
    Dataset.in_dir(run_dir).write_batch(batch)
    (run_dir / "run.json").write_text(json.dumps({"threshold": 8, "seed": 0, "embedded": True}))


def test_in_progress_samples_failures_and_rich_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    failed_batch(run)
    stopped_before_critic(run, monkeypatch)

    plain = io.StringIO()
    assert main([str(run)], PlainView(plain)) == 0
    text = plain.getvalue()
    assert "samples:    2 stored: 1 done, 1 failed" in text
    assert "-- failure reasons (top 1) --\n      1  critic: no score" in text
    assert "-- unfinished: 1 question-writer call in checkpoints.db" in text
    assert "condor-s0-c0000001  next critic; s0-0000003 active (0 critiques), s0-0000004 active (0 critiques)" in text

    paused = io.StringIO()
    assert main([str(run), "s0-0000004"], PlainView(paused)) == 0
    text = paused.getvalue()
    assert "Sample s0-0000004: unfinished (active), condor-s0-c0000001  next critic" in text
    assert "-- first answer (void) --\n  An answer" in text and "round 1" not in text

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system=None, width=100)
    assert main([str(run), "s0-0000000"], RichView(console)) == 0
    text = screen.getvalue()
    assert "╭─ question" in text and "round 2: critique, score 8, accepted (threshold 8)" in text
    assert "[bold]markup[/bold] and [Strength Start]" in text  # user text is shown as is, never as markup


def test_a_call_stopped_mid_step_is_shown_from_its_log_of_replies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run keeps no step checkpoints: show rebuilds the stopped call from its input and kept replies, up to the
    step whose replies are not all in (one critique of two came back)."""
    held, release = threading.Event(), threading.Event()

    def first_critique_hangs(role: str, _: list[dict[str, Any]]) -> None:
        if role == "critic" and not held.is_set():
            held.set()
            release.wait(30)

    use_fake_model(monkeypatch, first_critique_hangs)
    run_until(held, release, tmp_path, 2)
    with closing(sqlite3.connect(tmp_path / "checkpoints.db")) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0
        keys = sorted(
            row[0].split("/")[-3] if "/" in row[0] else row[0]
            for row in conn.execute("SELECT key FROM checkpoint_replies")
        )
    assert keys == ["critic", "input", "question_writer", "responder", "responder"]

    plain = io.StringIO()
    assert main([str(tmp_path)], PlainView(plain)) == 0
    text = plain.getvalue()
    assert "-- unfinished: 1 question-writer call in checkpoints.db" in text
    assert "condor-s0-c0000000  next critic; s0-0000000 active (0 critiques), s0-0000001 active (0 critiques)" in text
    one = io.StringIO()
    assert main([str(tmp_path), "s0-0000001"], PlainView(one)) == 0
    assert "Sample s0-0000001: unfinished (active), condor-s0-c0000000  next critic" in one.getvalue()
    assert "-- first answer (void) --\n  An answer" in one.getvalue()

    (tmp_path / "run.json").unlink()  # a directory copied without it: the call is listed, not rebuilt
    bare = io.StringIO()
    assert main([str(tmp_path)], PlainView(bare)) == 0
    assert (
        "condor-s0-c0000000  unreadable (no run.json: the run's settings are needed to rebuild its calls)"
        in bare.getvalue()
    )

"""`python -m graphs.show` on real run directories: finished, killed mid-run, and mistakes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from rich.console import Console

import agents.model_call
from condor_state.context import Context
from condor_state.dataset import Dataset
from condor_state.state import Round, new_sample
from graphs.graph import builder
from graphs.show import PlainView, RichView, main
from tests.conftest import ROOT, cli_env, run_cli
from tests.fake_chat import FakeChatModel
from tests.openai_stub import StubServer
from tests.test_crash import stored


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("python -m graphs.show: error: ")
    return result.stderr


def test_summary_and_story_of_a_finished_run(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    run = run_cli("graphs.run", "--samples", "6", "--out", str(out), "--base-url", stub.base_url, "--model", "stub")
    assert run.returncode == 0, run.stderr

    summary = run_cli("graphs.show", str(out))
    assert summary.returncode == 0, summary.stderr
    text = summary.stdout
    assert "6 stored: 6 done, 0 failed" in text
    assert "first 5.00 -> final 9.00" in text  # the stub scores first answers 5, revisions 9
    assert "6 (1.00 per done sample; 6x 1 revision)" in text
    assert "difficulty: Easy 2, Hard 2, Medium 2" in text
    with sqlite3.connect(out / "condor.db") as conn:
        tokens_in, tokens_out = conn.execute("select sum(tokens_in), sum(tokens_out) from samples").fetchone()
        languages = dict(conn.execute("select language, count(*) from samples group by language").fetchall())
        row = conn.execute(
            "select question, void_answer, refined_answer from samples where id = 's0-0000004'"
        ).fetchone()
    assert f"tokens:     {tokens_in} in / {tokens_out} out" in text
    assert "language:   " + ", ".join(f"{k} {v}" for k, v in sorted(languages.items(), key=lambda kv: -kv[1])) in text
    assert "model:      stub via " + stub.base_url in text
    assert "unfinished work: none" in text
    assert "╭" not in text and "\x1b[" not in text  # not a terminal: plain text

    story = run_cli("graphs.show", str(out), "s0-0000004")
    assert story.returncode == 0, story.stderr
    lines = story.stdout
    question, void_answer, refined = row
    expected_order = [
        "Sample s0-0000004: done",
        "difficulty:      Medium",
        "-- question --",
        question,
        "-- first answer (void) --",
        void_answer,
        "-- round 1: critique, score 5, revised --",
        "weaknesses:\n    1. Too short.",
        "-- round 1: revised answer --",
        refined,
        "-- round 2: critique, score 9, accepted (threshold 8) --",
        "final answer: the round 1 revised answer",
        "scores:       first 5 -> final 9",
    ]
    positions = [lines.find(part) for part in expected_order]
    assert -1 not in positions and positions == sorted(positions), dict(zip(expected_order, positions, strict=True))
    by_position = run_cli("graphs.show", str(out), "4")
    assert by_position.stdout == story.stdout


def test_half_finished_killed_run(tmp_path: Path) -> None:
    server = StubServer(latency=0.1).start()
    out = tmp_path / "run"
    args = ["graphs.run", "--samples", "30", "--out", str(out), "--base-url", server.base_url, "--concurrency", "3"]
    try:
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while stored(out / "condor.db") == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        server.shutdown()
        server.server_close()
    files = [p for p in out.iterdir() if p.suffix == ".db" or p.name.endswith("-wal")]
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    summary = run_cli("graphs.show", str(out))
    assert summary.returncode == 0, summary.stderr
    with sqlite3.connect(f"file:{out / 'checkpoints.db'}?mode=ro", uri=True) as conn:
        threads = [r[0] for r in conn.execute("select distinct thread_id from checkpoints order by thread_id")]
    count = stored(out / "condor.db")
    assert 0 < count < 30 and threads, (count, threads)  # the kill really left work unfinished
    assert f"samples:    {count} stored" in summary.stdout
    assert f"-- unfinished: {len(threads)} question-writer call" in summary.stdout
    for thread in threads[:10]:
        assert f"  {thread}  " in summary.stdout
    story = run_cli("graphs.show", str(out), "s0-0000000")
    assert story.returncode == 0, story.stderr
    assert "Sample s0-0000000: " in story.stdout
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert after == before  # showing a run never changes it


def test_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    assert "is not a directory" in one_line_error(run_cli("graphs.show", str(tmp_path / "missing")))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no condor.db" in one_line_error(run_cli("graphs.show", str(empty)))
    run = tmp_path / "run"
    run.mkdir()
    Dataset.in_dir(run).close()
    assert "no sample 's0-9999999'" in one_line_error(run_cli("graphs.show", str(run), "s0-9999999"))
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "condor.db").write_bytes(b"this is not sqlite" * 100)
    assert "not a readable Condor database" in one_line_error(run_cli("graphs.show", str(garbage)))
    bad_flag = run_cli("graphs.show", str(run), "--limit", "x")
    assert bad_flag.returncode == 2 and bad_flag.stderr.count("\n") == 1


def stopped_before_critic(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call paused before the critic in DIR/checkpoints.db, as a run killed at that moment leaves it."""
    monkeypatch.setattr(agents.model_call, "chat_model", lambda _, role, loop=None: FakeChatModel(role=role))

    async def run() -> None:
        async with AsyncSqliteSaver.from_conn_string(str(run_dir / "checkpoints.db")) as saver:
            graph = builder.compile(checkpointer=saver, interrupt_before=["critic"])
            config = {"configurable": {"thread_id": "condor-s0-c0000001"}}
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
    state = {"call_index": 0, "tag_path": ["Health", "Sleep"], "task_type": "View", "language": "en"}
    Dataset.in_dir(run_dir).write_batch({**state, "samples": [done, failed]})  # type: ignore[typeddict-item]
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

"""`python -m graphs.show` on real run directories: finished, killed mid-run, and mistakes."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.openai_stub import StubServer
from condor_state.dataset import Dataset
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli, stored


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
        threads = [r[0] for r in conn.execute("select distinct thread_id from checkpoint_replies order by thread_id")]
        assert conn.execute("select count(*) from checkpoints").fetchone()[0] == 0  # each thread is its log alone
    count = stored(out / "condor.db")
    assert 0 < count < 30 and threads, (count, threads)  # the kill really left work unfinished
    assert f"samples:    {count} stored" in summary.stdout
    assert f"-- unfinished: {len(threads)} question-writer call" in summary.stdout
    for thread in threads[:10]:
        assert f"  {thread}  " in summary.stdout
    assert "unreadable" not in summary.stdout  # every thread rebuilt from its log
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

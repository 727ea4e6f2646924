"""One writer per run directory: a second run is refused at once, a killed run never blocks the next, and an
unreadable database is one line, with nothing written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlite_utils

from benchmarks.openai_stub import StubServer
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli

HOLD = "import sys, time; from pathlib import Path; from condor_state import rundir; rundir.hold(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)"  # noqa: E501


def holder(run_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_a_directory_in_use_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    proc = holder(out)
    try:
        started = time.monotonic()
        result = run_cli("graphs.run", "--samples", "3", "--out", str(out), "--base-url", "http://127.0.0.1:9/v1")
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"in use by process {proc.pid}" in result.stderr
        assert time.monotonic() - started < 30
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "condor.db").exists()  # the refused run wrote nothing


def test_a_run_killed_with_sigkill_leaves_the_directory_free_for_the_next(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    out.mkdir()
    proc = holder(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "run.lock").exists()  # the file stays; the kernel released the lock with the process
    result = run_cli("graphs.run", "--samples", "3", "--out", str(out), "--base-url", stub.base_url)
    assert result.returncode == 0, result.stderr


def test_two_runs_started_together_do_each_call_once(tmp_path: Path) -> None:
    server = StubServer(latency=1.0).start()  # ten sequential requests per call: the first run is still busy
    try:
        out = tmp_path / "run"
        args = [sys.executable, "-m", "graphs.run", "--samples", "6", "--out", str(out), "--base-url", server.base_url]
        first = subprocess.Popen(
            args, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while server.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run_cli(*args[2:])
        assert second.returncode == 1 and "in use by process" in second.stderr
        _, stderr = first.communicate(timeout=120)
        assert first.returncode == 0, stderr
        db = sqlite_utils.Database(out / "condor.db")
        assert db["samples"].count == 6
        assert server.requests == 2 + 6 * 4  # two question-writer calls, then answer, critique, revision, critique
    finally:
        server.shutdown()
        server.server_close()


def test_a_corrupt_condor_db_is_one_line_and_stays_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    garbage = b"SQLite format 3\x00" + b"\xff" * 4000
    (out / "condor.db").write_bytes(garbage)
    result = run_cli("graphs.run", "--samples", "3", "--out", str(out), "--base-url", "http://127.0.0.1:9/v1")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "condor.db" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "condor.db").read_bytes() == garbage
    assert not (out / "run.json").exists()

"""Faults a long run meets, on real processes and real SQLite: flaky servers, garbage replies, Ctrl-C."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.openai_stub import StubServer
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli, stored


@pytest.mark.parametrize("client", ["condor", "openai"])
def test_run_survives_a_server_that_fails_a_fifth_of_its_requests(tmp_path: Path, client: str) -> None:
    server = StubServer(latency=0.01, faults=0.2, hang=2.0).start()
    out = tmp_path / "run"
    try:
        result = run_cli(
            "graphs.run", "--samples", "30", "--out", str(out), "--base-url", server.base_url,
            "--concurrency", "6", "--timeout", "1", timeout=600, CONDOR_MAX_RETRIES="4", CONDOR_CLIENT=client,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert set(server.fault_counts) == {"429", "500", "timeout", "garbage", "truncated", "badjson"}
    with sqlite3.connect(out / "condor.db") as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("select id, status, error, repairs from samples").fetchall()
    assert len(rows) == 30 and len({r[0] for r in rows}) == 30
    for _, status, error, _ in rows:
        assert status in {"done", "failed"}
        assert bool(error) == (status == "failed") or error.startswith("final score unknown: critic: ")
    # transport faults are retried by the client and bad replies repaired: most samples still finish
    assert sum(r[1] == "done" for r in rows) >= 24
    assert sum(r[3] for r in rows) > 0  # repairs happened and were counted


def start_run(out: Path, server: StubServer, samples: int, processes: str = "1") -> subprocess.Popen[str]:
    args = ["graphs.run", "--samples", str(samples), "--out", str(out), "--base-url", server.base_url]
    args += ["--concurrency", "2", "--processes", processes]
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_rows(db: Path, proc: subprocess.Popen[str], at_least: int = 1) -> None:
    deadline = time.monotonic() + 60
    while stored(db) < at_least and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("processes", ["1", "2"])  # with 2, the parent relays the signals to its workers
def test_ctrl_c_finishes_calls_in_flight_then_a_rerun_completes(tmp_path: Path, processes: str) -> None:
    server = StubServer(latency=0.15).start()
    out = tmp_path / "run"
    try:
        proc = start_run(out, server, 45, processes)
        wait_for_rows(out / "condor.db", proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "finishing the calls in flight" in stderr and "Traceback" not in stderr
        assert "stopped early" in stdout
        partial = stored(out / "condor.db")
        assert 0 < partial < 45 and partial % 3 == 0  # whole calls only: the in-flight ones were finished
        with sqlite3.connect(out / "checkpoints.db") as conn:
            assert conn.execute("select count(*) from checkpoints").fetchone()[0] == 0  # nothing left half-done

        proc = start_run(out, server, 45, processes)
        wait_for_rows(out / "condor.db", proc, partial + 1)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # the second Ctrl-C stops at once
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "stopping now" in stderr and "Traceback" not in stderr
        again = stored(out / "condor.db")

        final = run_cli("graphs.run", "--samples", "45", "--out", str(out), "--base-url", server.base_url)
        assert final.returncode == 0, final.stderr
        assert f"; {again} were already stored)" in final.stdout
    finally:
        server.shutdown()
        server.server_close()
    with sqlite3.connect(out / "condor.db") as conn:
        ids = [r[0] for r in conn.execute("select id from samples")]
        assert sorted(ids) == [f"s0-{i:07d}" for i in range(45)]
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        per_sample = conn.execute("select sample_id, count(*) from rounds group by sample_id").fetchall()
        assert len(per_sample) == 45 and {n for _, n in per_sample} == {2}
        assert conn.execute("select count(*) from runs").fetchone()[0] == 3
        assert conn.execute("select sum(interrupted) from runs").fetchone()[0] == 2

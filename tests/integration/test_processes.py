"""A run split over worker processes: the same dataset, the same bound on requests, the same crash safety."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.openai_stub import StubServer
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli, serving, stored


@pytest.fixture
def slow_stub() -> Iterator[StubServer]:
    yield from serving(0.05)


def run_args(out: Path, server: StubServer, samples: int) -> list[str]:
    return ["graphs.run", "--samples", str(samples), "--out", str(out), "--base-url", server.base_url,
            "--concurrency", "4", "--processes", "2"]  # fmt: skip


def assert_complete(out: Path, samples: int) -> None:
    with sqlite3.connect(out / "condor.db") as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        ids = [row[0] for row in conn.execute("select id from samples")]
        assert sorted(ids) == [f"s0-{i:07d}" for i in range(samples)]  # exactly N, none twice
        per_sample = conn.execute("select sample_id, count(*) from rounds group by sample_id").fetchall()
        assert len(per_sample) == samples and {n for _, n in per_sample} == {2}
    with sqlite3.connect(out / "checkpoints.db") as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert conn.execute("select count(*) from checkpoints").fetchone()[0] == 0


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is pid."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_two_processes_give_exactly_n_rows_within_the_request_bound(tmp_path: Path, slow_stub: StubServer) -> None:
    out = tmp_path / "run"
    result = run_cli(*run_args(out, slow_stub, 48))
    assert result.returncode == 0, result.stderr
    assert "in 2 processes" in result.stderr and "Traceback" not in result.stderr
    assert "samples: 48/48 stored (48 done, 0 failed" in result.stdout
    assert 2 < slow_stub.max_in_flight <= 4  # both workers sent requests; together never more than --concurrency
    assert_complete(out, 48)
    with sqlite3.connect(out / "condor.db") as conn:
        assert conn.execute("select count(*), sum(done) from runs").fetchone() == (1, 48)  # one row per invocation


def test_more_processes_than_request_slots_is_refused(tmp_path: Path, slow_stub: StubServer) -> None:
    result = run_cli("graphs.run", "--samples", "3", "--out", str(tmp_path / "run"), "--base-url",
                     slow_stub.base_url, "--concurrency", "2", "--processes", "3")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python -m graphs.run: error: --processes must be between 1 and --concurrency (0: automatic)"
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the worker processes")
def test_sigkill_of_the_parent_takes_its_workers_and_a_rerun_completes(tmp_path: Path, slow_stub: StubServer) -> None:
    out = tmp_path / "run"
    db = out / "condor.db"
    rng = random.Random(99)
    for attempt in range(3):
        before = stored(db)
        proc = subprocess.Popen([sys.executable, "-m", *run_args(out, slow_stub, 90)], cwd=ROOT, env=cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while stored(db) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        workers = children(proc.pid)
        assert len(workers) == 2 or (attempt and workers), workers  # later, one shard may have finished already
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(w) for w in workers)  # no orphan keeps writing to the run directory
    assert 0 < stored(db) < 90
    final = run_cli(*run_args(out, slow_stub, 90))
    assert final.returncode == 0, final.stderr
    assert_complete(out, 90)

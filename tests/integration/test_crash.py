"""Crash safety with real SIGKILLs: a run killed mid-work and re-run ends with exactly N rows, none twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.openai_stub import StubServer
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli, stored

SAMPLES = 60
KEY = "sk-condor-crash-test-key-0123456789"
CONCURRENCY = 2
KILLS = 5


def test_sigkill_at_random_moments_then_rerun_gives_exactly_n_unique_rows(tmp_path: Path) -> None:
    server = StubServer(latency=0.1).start()
    out = tmp_path / "run"
    db = out / "condor.db"
    args = ["graphs.run", "--samples", str(SAMPLES), "--out", str(out), "--base-url", server.base_url]
    args += ["--concurrency", str(CONCURRENCY)]
    rng = random.Random(1234)
    counts = []
    try:
        for _ in range(KILLS):
            before = stored(db)
            proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=cli_env(OPENAI_API_KEY=KEY),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            deadline = time.monotonic() + 60
            while stored(db) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))  # land anywhere: mid-request, mid-checkpoint, mid-write
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            counts.append(stored(db))
        assert 0 < counts[-1] < SAMPLES, counts  # the kills really interrupted the run
        # the key is in no file of the run directory, unfinished checkpoints and WAL files included
        assert any(p.name.startswith("checkpoints.db") and p.stat().st_size for p in out.iterdir())
        for file in out.iterdir():
            assert KEY.encode() not in file.read_bytes(), file
        final = run_cli(*args, OPENAI_API_KEY=KEY)
        assert final.returncode == 0, final.stderr
        assert KEY not in final.stdout + final.stderr
        # each reply is kept as it arrives: a kill costs at most the requests it had in flight, asked again
        assert server.repeats <= KILLS * CONCURRENCY, server.repeats
    finally:
        server.shutdown()
        server.server_close()

    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        ids = [row[0] for row in conn.execute("select id from samples")]
        assert len(ids) == SAMPLES and len(set(ids)) == SAMPLES
        assert sorted(ids) == [f"s0-{i:07d}" for i in range(SAMPLES)]
        assert conn.execute("select count(*) from samples where status != 'done'").fetchone()[0] == 0
        # every sample has exactly its own rounds: critique of the first answer, then of the revision
        per_sample = conn.execute("select sample_id, count(*) from rounds group by sample_id").fetchall()
        assert len(per_sample) == SAMPLES and {n for _, n in per_sample} == {2}
    with sqlite3.connect(out / "checkpoints.db") as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert conn.execute("select count(*) from checkpoints").fetchone()[0] == 0
        assert conn.execute("select count(*) from checkpoint_replies").fetchone()[0] == 0

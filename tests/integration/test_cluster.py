"""A run on a real Ray cluster (a head and two worker nodes on this machine) with a real Postgres store: a lost
node and a killed driver both end with exactly N rows, each call whole, and only in-flight requests redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from benchmarks.openai_stub import StubServer
from condor_state.context import Context
from condor_state.rundir import thread_id
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, free_port, run_cli, serving
from tests.integration.postgres import PostgresServer

SAMPLES = 45  # 15 question-writer calls
CONCURRENCY = 6  # 3 task slots (one CPU per node) of 2 requests each
# What an interrupted run can lose: the requests it had in flight (every reply is kept as it arrives). A removed
# node's are its one task slot's share of the concurrency; a killed or stopped driver's, all of them.
IN_FLIGHT_PER_NODE = CONCURRENCY // 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A Ray head and two worker nodes of one CPU each, as separate raylets on this machine."""
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "include_dashboard": False, "ray_client_server_port": free_port()}
    ray_cluster = Cluster(initialize_head=True, head_node_args=head)
    ray_cluster.client_port = head["ray_client_server_port"]  # type: ignore[attr-defined]
    workers = [ray_cluster.add_node(num_cpus=1) for _ in range(2)]
    ray_cluster.wait_for_nodes()
    ray_cluster.workers = workers  # type: ignore[attr-defined]
    yield ray_cluster
    ray_cluster.shutdown()


@pytest.fixture
def slow() -> Iterator[StubServer]:
    yield from serving(0.15)  # slow enough that a node is removed with work in flight


def driver(out: Path, url: str, address: str, server: StubServer, pg: PostgresServer) -> subprocess.Popen[str]:
    args = ["--samples", str(SAMPLES), "--out", str(out), "--base-url", server.base_url]
    args += ["--concurrency", str(CONCURRENCY), "--ray", address, "--store", url]
    return subprocess.Popen(
        [sys.executable, "-m", "graphs.run", *args],
        cwd=ROOT,
        env=cli_env(**pg.env(), OPENAI_API_KEY="sk-test-secret-1234"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def query(pg: PostgresServer, url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, password=pg.password) as conn:
        return list(conn.execute(sql).fetchall())


def stored(pg: PostgresServer, url: str) -> int:
    try:
        return int(query(pg, url, "SELECT count(*) FROM samples")[0][0])
    except psycopg.errors.UndefinedTable:
        return 0


def wait_for_rows(pg: PostgresServer, url: str, proc: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 240
    while stored(pg, url) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.2)


def run_under_way(
    tmp_path: Path, name: str, cluster: Any, slow: StubServer, postgres: PostgresServer
) -> tuple[str, subprocess.Popen[str]]:
    """A driver on a fresh store, once it has stored its first calls (so an interruption lands mid-run)."""
    url = postgres.fresh_database(name)
    proc = driver(tmp_path / "run", url, cluster.address, slow, postgres)
    wait_for_rows(postgres, url, proc, 6)
    return url, proc


def assert_whole(pg: PostgresServer, url: str) -> None:
    """Exactly N unique rows, every call's samples the questions of its one writer reply, no thread left."""
    rows = query(pg, url, "SELECT id, call_index, difficulty, question FROM samples")
    assert len(rows) == SAMPLES and len({r[0] for r in rows}) == SAMPLES
    writer = {i: json.loads(q) for i, q in query(pg, url, "SELECT call_index, questions FROM calls")}
    assert all(writer[call][level] == question for _, call, level, question in rows)
    assert query(pg, url, "SELECT count(*) FROM checkpoints")[0][0] == 0
    assert query(pg, url, "SELECT count(*) FROM checkpoint_replies")[0][0] == 0  # deleted with their threads


def test_a_worker_node_removed_mid_run_ends_with_exactly_n_rows_redoing_only_its_requests_in_flight(
    tmp_path: Path, cluster: Any, slow: StubServer, postgres: PostgresServer
) -> None:
    url, proc = run_under_way(tmp_path, "lost_node", cluster, slow, postgres)
    cluster.remove_node(cluster.workers[0])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"samples: {SAMPLES}/{SAMPLES} stored" in out
    assert_whole(postgres, url)
    assert slow.repeats <= IN_FLIGHT_PER_NODE, slow.repeats  # only the lost node's requests in flight
    assert slow.max_in_flight <= CONCURRENCY
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["store"] == url and postgres.password not in json.dumps(record)
    assert slow.authorizations == {"Bearer sk-test-secret-1234"}  # the key reached every worker's requests
    assert "sk-test-secret" not in out + err
    assert not secrets_in(Path(cluster.head_node.get_session_dir_path()), ["sk-test-secret", postgres.password])


def secrets_in(session: Path, secrets: list[str]) -> list[str]:
    """Files of Ray's session (logs, job records, spilled objects) that hold a secret."""
    return [
        str(path)
        for path in session.rglob("*")
        if path.is_file() and any(secret.encode() in path.read_bytes() for secret in secrets)
    ]


def test_a_driver_killed_with_sigkill_leaves_nothing_writing_and_the_same_command_finishes_the_run(
    tmp_path: Path, cluster: Any, slow: StubServer, postgres: PostgresServer
) -> None:
    url, proc = run_under_way(tmp_path, "killed_driver", cluster, slow, postgres)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    time.sleep(3)  # Ray ends a dead driver's tasks; a straggler could still finish a call it held
    settled = stored(postgres, url)
    time.sleep(2)
    assert stored(postgres, url) == settled < SAMPLES  # nothing writes any more, and the run is unfinished
    again = driver(tmp_path / "run", url, cluster.address, slow, postgres)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert_whole(postgres, url)
    assert slow.repeats <= CONCURRENCY, slow.repeats  # only the requests in flight at the kill


def test_a_thread_left_by_a_call_stored_just_before_its_worker_died_is_deleted_by_the_next_driver(
    tmp_path: Path, cluster: Any, slow: StubServer, postgres: PostgresServer
) -> None:
    url = postgres.fresh_database("leftover")
    args = ["--samples", "6", "--out", str(tmp_path / "run"), "--base-url", slow.base_url]
    args += ["--ray", cluster.address, "--store", url]
    first = run_cli("graphs.run", *args, **postgres.env())
    assert first.returncode == 0, first.stderr
    seed = Context().seed
    # the log a worker killed between storing call 0 and deleting its thread leaves behind, and the log of a call
    # beyond this run's plan (a larger run's, interrupted), which a later larger run still needs
    with psycopg.connect(url, password=postgres.password) as conn:
        for call, key in [(0, "input"), (0, "writer"), (7, "input")]:
            conn.execute("INSERT INTO checkpoint_replies VALUES (%s, %s, %s)", (thread_id(seed, call), key, "{}"))
    again = run_cli("graphs.run", *args, **postgres.env())
    assert again.returncode == 0, again.stderr
    left = query(postgres, url, "SELECT DISTINCT thread_id FROM checkpoint_replies")
    assert left == [(thread_id(seed, 7),)]
    assert stored(postgres, url) == 6


@pytest.mark.parametrize("how", ["auto", "client"])
def test_a_driver_joins_this_machines_cluster_or_reaches_it_through_ray_client(
    how: str, tmp_path: Path, cluster: Any, slow: StubServer, postgres: PostgresServer
) -> None:
    url = postgres.fresh_database(f"joined_{how}")
    address = "auto" if how == "auto" else f"ray://127.0.0.1:{cluster.client_port}"
    result = run_cli(
        "graphs.run", "--samples", "6", "--out", str(tmp_path / "run"), "--base-url", slow.base_url,
        "--ray", address, "--store", url, **postgres.env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stored(postgres, url) == 6


def test_sigterm_cancels_the_clusters_tasks_and_the_same_command_finishes_the_run(
    tmp_path: Path, cluster: Any, slow: StubServer, postgres: PostgresServer
) -> None:
    url, proc = run_under_way(tmp_path, "stopped", cluster, slow, postgres)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "stopped early" in out
    settled = stored(postgres, url)
    time.sleep(2)
    assert stored(postgres, url) == settled < SAMPLES, err[-3000:]  # the cancelled tasks write nothing more
    threads = query(postgres, url, "SELECT count(DISTINCT thread_id) FROM checkpoint_replies")[0][0]
    shown = run_cli("graphs.show", str(tmp_path / "run"), **postgres.env())
    assert shown.returncode == 0, shown.stderr
    assert f"{settled} stored" in shown.stdout
    assert threads > 0  # the cancelled calls' logs stay in the store, and show lists them
    assert f"unfinished: {threads} question-writer call" in shown.stdout, shown.stdout
    again = driver(tmp_path / "run", url, cluster.address, slow, postgres)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert_whole(postgres, url)
    assert slow.repeats <= CONCURRENCY, slow.repeats  # only the requests in flight at the stop


def test_rpm_is_one_budget_for_the_whole_cluster(
    tmp_path: Path, cluster: Any, slow: StubServer, postgres: PostgresServer
) -> None:
    url = postgres.fresh_database("rpm")
    result = run_cli(
        "graphs.run", "--samples", "6", "--out", str(tmp_path / "run"), "--base-url", slow.base_url,
        "--concurrency", str(CONCURRENCY), "--rpm", "300", "--ray", cluster.address, "--store", url,
        **postgres.env(),
    )  # fmt: skip
    arrivals = sorted(slow.arrivals)
    assert result.returncode == 0, result.stderr
    assert len(arrivals) >= 20
    # 300 a minute is one every 0.2 s: any 11 requests span at least 2 s, less a little scheduling jitter
    assert min(b - a for a, b in zip(arrivals, arrivals[10:], strict=False)) >= 1.9


def test_a_cluster_run_with_other_settings_is_refused_before_any_work(
    tmp_path: Path, slow: StubServer, postgres: PostgresServer
) -> None:
    url = postgres.fresh_database("settings")
    first = run_cli(
        "graphs.run", "--samples", "3", "--out", str(tmp_path / "a"), "--base-url", slow.base_url,
        "--ray", "local", "--store", url, **postgres.env(),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    requests = slow.requests
    changed = run_cli(
        "graphs.run", "--samples", "6", "--out", str(tmp_path / "b"), "--base-url", slow.base_url,
        "--ray", "local", "--store", url, "--max-rounds", "5", **postgres.env(),
    )  # fmt: skip
    assert changed.returncode == 1 and "max_rounds: 2 -> 5" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) <= 2 and "Traceback" not in changed.stderr
    assert slow.requests == requests


def test_an_unreachable_cluster_or_store_is_one_line_before_any_work(
    tmp_path: Path, slow: StubServer, postgres: PostgresServer
) -> None:
    url = postgres.fresh_database("unreachable")
    nobody = f"postgresql://condor@127.0.0.1:{free_port()}/none"
    for extra, problem in (
        (["--ray", "127.0.0.1:1", "--store", url], "cannot reach the Ray cluster at 127.0.0.1:1"),
        (["--ray", "local", "--store", nobody], "cannot open the store"),
    ):
        result = run_cli(
            "graphs.run", "--samples", "3", "--out", str(tmp_path / "run"), "--base-url", slow.base_url, *extra,
            timeout=120, **postgres.env(),
        )  # fmt: skip
        assert result.returncode == 1 and problem in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert slow.requests == 0


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--ray", "local"], "--ray and --store go together"),
        (["--store", "postgresql://u@127.0.0.1/db"], "--ray and --store go together"),
        (["--ray", "local", "--store", "postgresql://u:hunter2@127.0.0.1/db"], "must not hold a password"),
        (["--ray", "local", "--store", "mysql://u@127.0.0.1/db"], "must be a postgresql:// URL"),
    ],
)
def test_cluster_options_that_cannot_work_are_one_line_errors(tmp_path: Path, extra: list[str], problem: str) -> None:
    result = run_cli(
        "graphs.run", "--samples", "3", "--out", str(tmp_path / "run"), "--base-url", "http://127.0.0.1:9/v1", *extra
    )
    assert result.returncode == 2 and problem in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()

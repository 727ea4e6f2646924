"""The Postgres store of a cluster run, on a real server: the same rows and promises as condor.db, claims that die
with their holder, pull, and the readers on a run directory that names a store."""

from __future__ import annotations

import contextlib
import hashlib
import io
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from condor_state.context import Context
from condor_state.dataset import DB_NAME, Dataset
from condor_state.postgres import CallClaims, PostgresDataset, StoreError, open_run, pull
from condor_state.rundir import run_settings, write_settings
from condor_state.state import BatchState, new_sample
from graphs import export, report, show
from graphs import pull as pull_command
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli
from tests.integration.postgres import PostgresServer
from tests.unit.test_dataset import make_batch, make_round, revised_twice


@pytest.fixture
def url(postgres: PostgresServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of the session's server, with the password in this process's environment (as a worker
    has it), and none in the URL."""
    monkeypatch.setenv("PGPASSWORD", postgres.env()["PGPASSWORD"])
    monkeypatch.setenv("PGPASSFILE", postgres.env()["PGPASSFILE"])
    return postgres.fresh_database("t_" + hashlib.sha1(request.node.name.encode()).hexdigest()[:16])


@pytest.fixture
def store(url: str) -> Iterator[PostgresDataset]:
    dataset = PostgresDataset(url)
    dataset.setup()
    yield dataset
    dataset.close()


def table(conn: psycopg.Connection[Any] | sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in conn.execute(sql).fetchall()]


def without_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in {"created_at", "duplicate_of"}} for row in rows]


def more_batches() -> list[BatchState]:
    """What a run writes over its life: a call, a call continued by a larger run, a repeat, a priced call, none."""
    later = new_sample(42, 40, "Easy", "Which plants survive a dark office?")
    later |= {"void_answer": "ZZ plants.", "answer": "ZZ plants and pothos.", "status": "done", "cost": 0.0125}
    later["rounds"] = [make_round(1, 6, "ZZ plants and pothos."), make_round(2, 9, None)]
    priced = BatchState(call_index=13, tag_path=["Work", "Office"], task_type="View", language="en", samples=[later])
    priced |= {"tokens_in": 9, "tokens_out": 3, "cost": 0.003, "questions": {"Easy": later["question"]}}
    return [
        {**make_batch(), "samples": [revised_twice()], "keep": 1, "questions": {"Easy": "Q1", "Medium": "Q2"}},
        {**make_batch(), "questions": {"Medium": "rewritten", "Hard": "Q3"}},
        make_batch(),
        priced,
        BatchState(call_index=14, samples=[]),
    ]


def test_a_call_is_stored_exactly_once_and_a_repeat_adds_and_changes_nothing(store: PostgresDataset) -> None:
    written = [row["id"] for row in store.write_batch(make_batch())]
    assert written == ["s42-0000030", "s42-0000031", "s42-0000032"]
    samples = table(store.conn, "SELECT * FROM samples ORDER BY id")
    rounds = table(store.conn, "SELECT * FROM rounds ORDER BY sample_id, round")
    assert len(rounds) == 4

    assert store.write_batch(make_batch()) == []
    again = make_batch()
    again["samples"][0]["answer"] = "A different text from a redone call."
    again["samples"][0]["rounds"] = again["samples"][0]["rounds"][:1]
    assert store.write_batch(again) == []
    assert table(store.conn, "SELECT * FROM samples ORDER BY id") == samples  # not even created_at changed
    assert table(store.conn, "SELECT * FROM rounds ORDER BY sample_id, round") == rounds


def test_a_failing_statement_mid_transaction_leaves_nothing(store: PostgresDataset) -> None:
    store.conn.execute(
        "CREATE FUNCTION fail_rounds() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'disk went away'; END $$"
    )
    store.conn.execute("CREATE TRIGGER fail_rounds BEFORE INSERT ON rounds FOR EACH ROW EXECUTE FUNCTION fail_rounds()")
    with pytest.raises(psycopg.errors.RaiseException, match="disk went away"):
        store.write_batch(make_batch())  # the samples insert ran first; the rounds insert fails
    assert store.count() == 0
    assert table(store.conn, "SELECT call_index FROM calls") == []
    store.conn.execute("DROP TRIGGER fail_rounds ON rounds")
    assert len(store.write_batch(make_batch())) == 3  # and the same call stores whole afterwards


def test_the_store_answers_the_engine_as_condor_db_does_given_the_same_batches(
    store: PostgresDataset, tmp_path: Path
) -> None:
    local = Dataset(tmp_path / DB_NAME)
    try:
        for batch in more_batches():
            assert without_time(store.write_batch(batch)) == without_time(local.write_batch(batch))
        assert store.stored_per_call() == local.stored_per_call() == {10: 3, 13: 1}
        for call in (10, 11, 13, 14):
            assert store.stored_levels(call) == local.stored_levels(call)
            assert store.questions_of(call) == local.questions_of(call)
        assert store.questions_of(10) == {"Easy": "Q1", "Medium": "Q2", "Hard": "Q3"}  # a level's first text stays
        assert store.questions_of(14) == local.questions_of(14) == {}
        assert [store.count(s) for s in (None, "done", "failed", "active")] == [4, 3, 1, 0]
        assert [local.count(s) for s in (None, "done", "failed", "active")] == [4, 3, 1, 0]
        assert without_time(list(store.samples())) == without_time(list(local.samples()))
        assert without_time(list(store.samples(["failed"]))) == without_time(list(local.samples(["failed"])))
        assert store.ids() == local.ids()
        ids = ["s42-0000040", "s42-0000030"]
        assert without_time(store.samples_by_ids(ids)) == without_time(local.samples_by_ids(ids))
        for sample_id in store.ids():
            assert store.rounds_of(sample_id) == local.rounds_of(sample_id)
        assert next(iter(store.samples(["done"])))["cost"] is None  # no price: NULL, as in condor.db
        assert store.samples_by_ids(["s42-0000040"])[0]["cost"] == pytest.approx(0.0125 + 0.003)
    finally:
        local.close()


def test_two_claim_holders_cannot_take_the_same_call(store: PostgresDataset) -> None:
    with store.claims() as first, store.claims() as second:
        assert first.take(5)
        assert not second.take(5)
        assert first.take(5)  # a holder may ask again
        assert second.take(6)
        assert not first.take(6)
        first.give_back(5)
        assert second.take(5)
        assert not first.take(5)
        assert first.held() == set() and second.held() == {5, 6}


def wait_to_take(claims: CallClaims, call_index: int, seconds: float = 10) -> float:
    """Poll until the call can be taken; returns how long that took."""
    started = time.monotonic()
    while not claims.take(call_index):
        assert time.monotonic() - started < seconds, f"call {call_index} was never freed"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_claim_is_freed_when_its_holder_dies(store: PostgresDataset, postgres: PostgresServer) -> None:
    holder = (
        "import sys, time\nfrom condor_state.postgres import CallClaims\n"
        "claims = CallClaims(sys.argv[1])\nassert claims.take(7)\nprint('held', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, store.url],
        cwd=ROOT,
        env=cli_env(**postgres.env()),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        with store.claims() as other:
            assert not other.take(7)
            proc.send_signal(signal.SIGKILL)  # a worker that dies without a word
            proc.wait(timeout=10)
            assert wait_to_take(other, 7) < 5

            ended = store.claims()  # a connection the server ends (a lost node, as its keepalives find it)
            assert ended.take(8) and not other.take(8)
            store.conn.execute("SELECT pg_terminate_backend(%s)", [ended.pid])
            wait_to_take(other, 8)
            assert ended.take(9)  # the holder finds its connection gone, makes a new one, and claims again
            assert not ended.take(8) and not other.take(9)
            ended.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def test_several_workers_can_set_up_the_store_at_the_same_moment(url: str) -> None:
    workers = [PostgresDataset(url) for _ in range(4)]
    start = threading.Barrier(len(workers))
    problems: list[BaseException] = []

    def setup(dataset: PostgresDataset) -> None:
        start.wait()
        try:
            dataset.setup()
        except BaseException as exc:
            problems.append(exc)

    threads = [threading.Thread(target=setup, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert len(workers[0].write_batch(make_batch())) == 3
    for worker in workers:
        worker.close()


def test_setup_gives_an_older_store_the_columns_added_since(url: str) -> None:
    with PostgresDataset(url) as old:
        old.conn.execute("CREATE TABLE samples (id TEXT PRIMARY KEY, position BIGINT, status TEXT)")
        old.setup()
        old.setup()  # and nothing more the second time
        columns = old._columns("samples")
        assert "cost" in columns and columns["cost"] == "double precision"
        assert len(old.write_batch(make_batch())) == 3


def pg_rows(store: PostgresDataset, name: str, order: str) -> list[tuple[Any, ...]]:
    return table(store.conn, f"SELECT * FROM {name} ORDER BY {order}")


def sqlite_rows(path: Path, name: str, order: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return table(conn, f"SELECT * FROM [{name}] ORDER BY {order}")


def test_pull_gives_a_condor_db_with_identical_rows_and_a_repull_refreshes_it(
    store: PostgresDataset, tmp_path: Path
) -> None:
    for batch in more_batches()[:2]:
        store.write_batch(batch)
    store.record_run({"started_at": 1.5, "samples": 3, "interrupted": False, "cost": None})
    copy = tmp_path / "copy" / DB_NAME
    assert pull(store.url, copy) == 3

    for batch in more_batches()[2:]:
        store.write_batch(batch)
    store.record_run({"started_at": 2.5, "samples": 4, "interrupted": True, "settings": '{"seed": 0}'})
    assert pull(store.url, copy) == 4  # a second pull replaces the first copy
    assert pull(store.url, copy) == 4
    orders = {"samples": "id", "rounds": "sample_id, round", "calls": "call_index", "runs": "started_at"}
    for name, order in orders.items():
        assert sqlite_rows(copy, name, order) == pg_rows(store, name, order), name

    fresh = tmp_path / "fresh" / DB_NAME
    fresh.parent.mkdir()
    Dataset(fresh).close()
    schema = "SELECT name, sql FROM sqlite_master WHERE name != 'runs' ORDER BY name"
    with contextlib.closing(sqlite3.connect(copy)) as conn, contextlib.closing(sqlite3.connect(fresh)) as made:
        assert table(conn, schema) == table(made, schema)  # the SQLite schema, as a run writes it
        kinds = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(runs)")}
    assert kinds == {"started_at": "FLOAT", "samples": "INTEGER", "interrupted": "INTEGER", "cost": "FLOAT",
                     "settings": "TEXT"}  # fmt: skip


def test_a_wrong_password_no_server_or_an_empty_store_is_one_line(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match=r"holds no Condor run \(no samples table\)$"):
        pull(url, tmp_path / DB_NAME)
    assert not (tmp_path / DB_NAME).exists()
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(StoreError) as wrong:
        PostgresDataset(url)
    message = str(wrong.value)
    assert "password authentication failed" in message and "\n" not in message
    assert "not-the-password" not in message and message.startswith(f"cannot open the store {url}: ")
    with pytest.raises(StoreError, match="Connection refused") as refused:
        CallClaims("postgresql://condor@127.0.0.1:1/none")
    assert "\n" not in str(refused.value)


def cluster_run_dir(path: Path, url: str) -> Path:
    path.mkdir(parents=True)
    write_settings(path, {**run_settings(Context()), "store": url})
    return path


def test_the_pull_command_writes_the_copy_and_reports_problems_in_one_line(
    store: PostgresDataset, tmp_path: Path, postgres: PostgresServer
) -> None:
    store.write_batch(make_batch())
    run = cluster_run_dir(tmp_path / "run", store.url)
    done = run_cli("graphs.pull", str(run), timeout=60, **postgres.env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pulled 3 samples from {store.url} into {run / DB_NAME} in ")
    assert done.stdout.count("\n") == 1
    assert sqlite_rows(run / DB_NAME, "samples", "id") == pg_rows(store, "samples", "id")

    problems = {
        "has no run.json": ("graphs.pull", str(tmp_path / "nowhere")),
        "password authentication failed": ("graphs.pull", str(run), "-o", str(tmp_path / "x.db")),
    }
    local = tmp_path / "local"
    local.mkdir()
    write_settings(local, run_settings(Context()))
    problems["records no Postgres store"] = ("graphs.pull", str(local))
    for expected, args in problems.items():
        result = run_cli(*args, timeout=60, PGPASSWORD="wrong", PGPASSFILE=str(tmp_path / "none"))
        assert result.returncode == 1, result
        assert result.stderr.startswith("python -m graphs.pull: error: ") and expected in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()  # a store that cannot be read leaves no file behind
    assert pull_command.main([str(run), "-o", str(tmp_path / "again.db")]) == 0


def normalized(text: str, run: Path) -> str:
    return text.replace(str(run), "DIR")


def readers_output(run: Path, out: Path) -> dict[str, str]:
    """What export (JSONL and its card, and DPO pairs), report and show print or write for a run directory."""
    out.mkdir()
    assert export.main([str(run), "--metadata", "-o", str(out / "sft" / "data.jsonl")]) == 0
    assert export.main([str(run), "--format", "dpo", "--pairs", "consecutive", "-o", str(out / "dpo.jsonl")]) == 0
    assert report.main([str(run), "-o", str(out / "report")]) == 0
    summary, story = io.StringIO(), io.StringIO()
    assert show.main([str(run)], show.PlainView(summary)) == 0
    assert show.main([str(run), "s42-0000030"], show.PlainView(story)) == 0
    files = {
        "sft": (out / "sft" / "data.jsonl").read_text(),
        "card": (out / "sft" / "README.md").read_text(),
        "dpo": (out / "dpo.jsonl").read_text(),
        "report": (out / "report" / "report.md").read_text(),
        "summary": summary.getvalue(),
        "story": story.getvalue(),
    }
    return {name: normalized(text, run) for name, text in files.items()}


def test_export_report_and_show_on_a_cluster_run_match_their_output_on_a_pulled_copy(
    store: PostgresDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for batch in more_batches():
        store.write_batch(batch)
    cluster = cluster_run_dir(tmp_path / "one" / "run", store.url)  # paths of one length: shown the same way
    local = tmp_path / "two" / "run"
    local.mkdir(parents=True)
    write_settings(local, run_settings(Context()))
    pull(store.url, local / DB_NAME)
    scratch = set(Path(tempfile.gettempdir()).glob("condor-pull-*"))

    on_cluster = readers_output(cluster, tmp_path / "from-cluster")
    on_copy = readers_output(local, tmp_path / "from-copy")
    capsys.readouterr()
    assert on_cluster == on_copy
    assert "s42-0000040" in on_cluster["summary"] and '"id": "s42-0000040"' in on_cluster["sft"]
    assert sorted(p.name for p in cluster.iterdir()) == ["run.json"]  # nothing written into DIR
    assert set(Path(tempfile.gettempdir()).glob("condor-pull-*")) == scratch  # every temporary copy removed


def test_a_reader_of_a_cluster_run_whose_store_is_unreachable_says_so_in_one_line(tmp_path: Path) -> None:
    run = cluster_run_dir(tmp_path / "run", "postgresql://condor@127.0.0.1:1/gone")
    with pytest.raises(StoreError) as unreachable:
        open_run(run)
    assert str(unreachable.value).startswith("cannot open the store postgresql://condor@127.0.0.1:1/gone: ")
    for command in (("graphs.export", str(run), "-o", str(tmp_path / "x.jsonl")), ("graphs.show", str(run))):
        result = run_cli(*command, timeout=60)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result
        assert "cannot open the store" in result.stderr and "Traceback" not in result.stderr


def test_importing_the_single_machine_run_loads_no_cluster_library() -> None:
    probe = (
        "import sys, graphs.run, graphs.export, graphs.show\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'psycopg', 'psycopg_pool', 'ray'}"
        " or m.startswith('langgraph.checkpoint.postgres')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

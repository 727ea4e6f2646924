"""The SQLite dataset: the samples/rounds contract, idempotent writes, and a healthy file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from condor_state.dataset import DB_NAME, Dataset, UnreadableDatabase
from condor_state.state import BatchState, Round, Sample, new_sample

SEED = 42
CONTRACT_COLUMNS = {
    "id",
    "tag_path",
    "task_type",
    "difficulty",
    "language",
    "question",
    "void_answer",
    "refined_answer",
    "rounds",
    "final_score",
    "status",
    "error",
}


def make_round(n: int, score: int, revised: str | None) -> Round:
    return Round(
        round=n,
        strengths=f"1. strength {n}",
        weaknesses=f"1. weakness {n}",
        suggestions=f"1. suggestion {n}",
        score=score,
        critique=f"[Score Start]{score}[Score End]",
        revised_answer=revised,
    )


def revised_twice() -> Sample:
    """Done after one revision: round 1 scored the void answer, round 2 scored the revision."""
    sample = new_sample(SEED, 30, "Easy", "How often should I water a snake plant?")
    sample["void_answer"] = "Weekly."
    sample["answer"] = "Every two to three weeks; let the soil dry out."
    sample["rounds"] = [
        make_round(1, 5, "Every two to three weeks; let the soil dry out."),
        make_round(2, 9, None),
    ]
    sample["status"] = "done"
    sample["tokens_in"], sample["tokens_out"] = 100, 50
    return sample


def failed() -> Sample:
    """Failed in the second critique, after one revision."""
    sample = new_sample(SEED, 31, "Medium", "Why are my snake plant's leaves turning yellow?")
    sample["void_answer"] = "Overwatering."
    sample["answer"] = "Most likely overwatering causing root rot."
    sample["rounds"] = [make_round(1, 4, "Most likely overwatering causing root rot.")]
    sample["status"] = "failed"
    sample["error"] = "critic: no score between [Score Start] and [Score End]"
    sample["repairs"] = 2
    return sample


def accepted_first_time() -> Sample:
    sample = new_sample(SEED, 32, "Hard", "Design a winter watering plan for five succulents.")
    sample["void_answer"] = "Water every 4 weeks, in the morning, with room-temperature water."
    sample["answer"] = sample["void_answer"]
    sample["rounds"] = [make_round(1, 8, None)]
    sample["status"] = "done"
    return sample


def make_batch() -> BatchState:
    return BatchState(
        call_index=10,
        keep=3,
        tag_path=["Home & Garden", "Houseplants", "Snake plant care"],
        task_type="Domain QA",
        language="en",
        samples=[revised_twice(), failed(), accepted_first_time()],
        error=None,
        tokens_in=30,
        tokens_out=90,
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Iterator[Dataset]:
    ds = Dataset.in_dir(tmp_path)
    yield ds
    ds.close()


def rows(path: Path, sql: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def test_write_batch_sample_rows(dataset: Dataset, tmp_path: Path) -> None:
    written = [row["id"] for row in dataset.write_batch(make_batch())]
    assert written == ["s42-0000030", "s42-0000031", "s42-0000032"]
    samples = {r["id"]: r for r in rows(tmp_path / DB_NAME, "SELECT * FROM samples")}
    assert set(samples) == set(written)
    assert set(next(iter(samples.values()))) >= CONTRACT_COLUMNS

    done = samples["s42-0000030"]
    assert done["tag_path"] == "Home & Garden > Houseplants > Snake plant care"
    assert done["root"] == "Home & Garden"
    assert done["task_type"] == "Domain QA"
    assert done["difficulty"] == "Easy"
    assert done["language"] == "en"
    assert done["question"] == "How often should I water a snake plant?"
    assert done["void_answer"] == "Weekly."
    assert done["refined_answer"] == "Every two to three weeks; let the soil dry out."
    assert done["rounds"] == 1
    assert done["first_score"] == 5
    assert done["final_score"] == 9
    assert done["status"] == "done"
    assert done["error"] is None
    assert done["call_index"] == 10
    assert done["position"] == 30
    assert (done["tokens_in"], done["tokens_out"]) == (110, 80)  # own tokens + a third of the writer's

    bad = samples["s42-0000031"]
    assert bad["status"] == "failed"
    assert bad["error"] == "critic: no score between [Score Start] and [Score End]"
    assert bad["refined_answer"] is None
    assert bad["void_answer"] == "Overwatering."
    assert bad["rounds"] == 1
    assert bad["first_score"] == 4
    assert bad["final_score"] is None  # the revision was never scored
    assert bad["repairs"] == 2

    first_time = samples["s42-0000032"]
    assert first_time["status"] == "done"
    assert first_time["rounds"] == 0
    assert first_time["final_score"] == first_time["first_score"] == 8
    assert first_time["refined_answer"] == first_time["void_answer"]
    assert first_time["difficulty"] == "Hard"


def test_write_batch_round_rows(dataset: Dataset, tmp_path: Path) -> None:
    dataset.write_batch(make_batch())
    sql = "SELECT sample_id, round, score, revised_answer FROM rounds ORDER BY sample_id, round"
    got = rows(tmp_path / DB_NAME, sql)
    assert [(r["sample_id"], r["round"], r["score"], r["revised_answer"]) for r in got] == [
        ("s42-0000030", 1, 5, "Every two to three weeks; let the soil dry out."),
        ("s42-0000030", 2, 9, None),
        ("s42-0000031", 1, 4, "Most likely overwatering causing root rot."),
        ("s42-0000032", 1, 8, None),
    ]
    first = dataset.rounds_of("s42-0000030")[0]
    assert first["strengths"] == "1. strength 1"
    assert first["weaknesses"] == "1. weakness 1"
    assert first["suggestions"] == "1. suggestion 1"
    assert first["critique"] == "[Score Start]5[Score End]"


def test_write_batch_is_idempotent(dataset: Dataset, tmp_path: Path) -> None:
    dataset.write_batch(make_batch())
    before_samples = rows(tmp_path / DB_NAME, "SELECT * FROM samples ORDER BY id")
    before_rounds = rows(tmp_path / DB_NAME, "SELECT * FROM rounds ORDER BY sample_id, round")
    dataset.write_batch(make_batch())
    after_samples = rows(tmp_path / DB_NAME, "SELECT * FROM samples ORDER BY id")
    after_rounds = rows(tmp_path / DB_NAME, "SELECT * FROM rounds ORDER BY sample_id, round")
    assert len(after_samples) == 3
    assert after_rounds == before_rounds
    strip = [{k: v for k, v in r.items() if k != "created_at"} for r in before_samples]
    assert [{k: v for k, v in r.items() if k != "created_at"} for r in after_samples] == strip


def test_a_stored_sample_is_never_replaced_by_a_later_write(dataset: Dataset) -> None:
    first = make_batch()
    assert len(dataset.write_batch(first)) == 3
    again = make_batch()
    again["samples"][0]["answer"] = "A different text from a redone call."
    again["samples"][0]["rounds"] = again["samples"][0]["rounds"][:1]
    assert dataset.write_batch(again) == []  # nothing new was added
    stored = dataset.samples_by_ids(["s42-0000030"])[0]
    assert stored["refined_answer"] == "Every two to three weeks; let the soil dry out."
    assert [r["round"] for r in dataset.rounds_of("s42-0000030")] == [1, 2]


def test_a_call_is_stored_in_one_transaction_so_a_failing_statement_leaves_nothing(
    dataset: Dataset, tmp_path: Path
) -> None:
    dataset.db.execute(
        "CREATE TRIGGER fail_rounds BEFORE INSERT ON rounds BEGIN SELECT RAISE(ABORT, 'disk went away'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="disk went away"):
        dataset.write_batch(make_batch())  # the samples insert ran first; the rounds insert fails
    assert rows(tmp_path / DB_NAME, "SELECT id FROM samples") == []
    assert rows(tmp_path / DB_NAME, "SELECT call_index FROM calls") == []
    dataset.db.execute("DROP TRIGGER fail_rounds")
    assert len(dataset.write_batch(make_batch())) == 3  # and the same call stores whole afterwards


def test_a_call_records_every_question_its_writer_gave_and_keeps_the_first_text_of_each(dataset: Dataset) -> None:
    batch = make_batch()
    batch["questions"] = {"Easy": "Q1", "Medium": "Q2"}
    dataset.write_batch(batch)
    later = BatchState(call_index=10, samples=[], questions={"Medium": "rewritten", "Hard": "Q3"})
    dataset.write_batch(later)
    assert dataset.questions_of(10) == {"Easy": "Q1", "Medium": "Q2", "Hard": "Q3"}
    assert dataset.questions_of(11) == {}
    assert dataset.stored_levels(10) == ["Easy", "Medium", "Hard"]


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(UnreadableDatabase, match="is not a readable Condor database"):
        Dataset(path)
    assert path.read_bytes() == b"this is not SQLite" * 100


def test_ids_and_count(dataset: Dataset) -> None:
    assert dataset.ids() == set()
    assert dataset.stored_per_call() == {}
    assert dataset.count() == 0
    dataset.write_batch(make_batch())
    assert dataset.ids() == {"s42-0000030", "s42-0000031", "s42-0000032"}
    assert dataset.stored_per_call() == {10: 3}  # what a resume counts to skip the call
    assert dataset.count() == 3
    assert dataset.count("done") == 2
    assert dataset.count("failed") == 1
    assert dataset.count("active") == 0


def test_samples_query_helpers(dataset: Dataset) -> None:
    dataset.write_batch(make_batch())
    assert [r["position"] for r in dataset.samples()] == [30, 31, 32]
    assert [r["id"] for r in dataset.samples(["failed"])] == ["s42-0000031"]
    assert [r["id"] for r in dataset.samples_by_ids(["s42-0000032", "s42-0000030"])] == [
        "s42-0000030",
        "s42-0000032",
    ]
    assert dataset.samples_by_ids([]) == []


def test_empty_batch_writes_nothing(dataset: Dataset) -> None:
    assert dataset.write_batch(BatchState(call_index=0, samples=[])) == []
    assert dataset.count() == 0


def test_reopen_keeps_data_and_integrity(dataset: Dataset, tmp_path: Path) -> None:
    dataset.write_batch(make_batch())
    dataset.close()
    reopened = Dataset(tmp_path / DB_NAME)
    try:
        assert reopened.count() == 3
        assert len(reopened.rounds_of("s42-0000030")) == 2
    finally:
        reopened.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_the_runs_table_gains_the_columns_a_newer_version_records(dataset: Dataset, tmp_path: Path) -> None:
    dataset.record_run({"started_at": 1.5, "samples": 3, "interrupted": False})
    dataset.record_run({"started_at": 2.5, "samples": 6, "interrupted": True, "settings": '{"seed": 0}'})
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        types = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(runs)")}
        rows = conn.execute("SELECT started_at, samples, interrupted, settings FROM runs ORDER BY rowid").fetchall()
    finally:
        conn.close()
    assert types == {"started_at": "FLOAT", "samples": "INTEGER", "interrupted": "INTEGER", "settings": "TEXT"}
    assert rows == [(1.5, 3, 0, None), (2.5, 6, 1, '{"seed": 0}')]

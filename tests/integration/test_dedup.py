"""Duplicate questions: planted exact and near-duplicates in a real run's condor.db are marked, distinct ones not.

The texts here are not the question-writer prompt's examples (those are seeded as originals and tested apart).
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from benchmarks.openai_stub import StubServer
from condor_state.dataset import Dataset
from condor_state.dedup import mark_duplicates
from condor_state.state import BatchState, Round, Sample, new_sample
from prompts.questions import EXAMPLES
from tests.dedup_texts import DISTINCT, RESTAURANT, RESTAURANT_CHAR, STARTER, STARTER_PUNCT, STARTER_WORD
from tests.integration.conftest import run_cli

SEED = 0


def done_sample(position: int, question: str) -> Sample:
    sample = new_sample(SEED, position, "Medium", question)
    sample["void_answer"] = "first answer"
    sample["answer"] = "final answer"
    sample["rounds"] = [
        Round(round=1, strengths="s", weaknesses="w", suggestions="g", score=9, critique="c", revised_answer=None)
    ]
    sample["status"] = "done"
    return sample


def plant(run_dir: Path, first_position: int, questions: list[str], failed: frozenset[int] = frozenset()) -> list[str]:
    """Write one batch of done samples (failed for the given offsets) straight into the run's condor.db."""
    samples = []
    for k, question in enumerate(questions):
        sample = done_sample(first_position + k, question)
        if k in failed:
            sample.update({"status": "failed", "error": "critic: no score", "answer": None, "rounds": []})
        samples.append(sample)
    state = BatchState(
        call_index=first_position // 3,
        tag_path=["Food", "Baking"],
        task_type="Domain QA",
        language="en",
        samples=samples,
    )
    dataset = Dataset.in_dir(run_dir)
    ids = [row["id"] for row in dataset.write_batch(state)]
    dataset.close()
    return ids


def test_planted_duplicates_in_a_real_run_are_marked(tmp_path: Path, stub: StubServer) -> None:
    run = tmp_path / "run"
    result = run_cli("graphs.run", "--samples", "6", "--out", str(run), "--base-url", stub.base_url)
    assert result.returncode == 0, result.stderr
    originals = plant(run, 6, [STARTER, RESTAURANT, DISTINCT[0]])
    distinct = plant(run, 9, DISTINCT[1:])
    copies = plant(run, 12, [STARTER_WORD, RESTAURANT_CHAR, STARTER_PUNCT])
    failed_copy = plant(run, 15, [STARTER], failed=frozenset({0}))
    hard = EXAMPLES["zh"][0][4]
    from_prompt = plant(run, 18, [hard, hard.replace("五分钟", "六分钟")])  # the prompt's example, exact and edited

    assert mark_duplicates(run) == 5
    db = sqlite_utils.Database(run / "condor.db")
    marks = {r["id"]: r["duplicate_of"] for r in db["samples"].rows}
    assert marks[copies[0]] == originals[0]  # a word changed
    assert marks[copies[1]] == originals[1]  # one Chinese character changed
    assert marks[copies[2]] == originals[0]  # case and punctuation only: an exact duplicate
    assert [marks[i] for i in from_prompt] == ["example:zh:1:Hard", "example:zh:1:Hard"]
    assert all(marks[i] is None for i in [*originals, *distinct, *failed_copy])
    # the stub's own templated questions ("A easy question about topic <hash>?") differ enough to be kept
    assert sum(v is not None for v in marks.values()) == 5

    # recomputed from scratch: idempotent, and a removed original releases its copy
    assert mark_duplicates(Dataset.in_dir(run)) == 5
    db.execute("DELETE FROM samples WHERE id = ?", [originals[1]])
    db.conn.commit()
    assert mark_duplicates(run / "condor.db") == 4
    assert db.table("samples").get(copies[1])["duplicate_of"] is None

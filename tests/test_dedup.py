"""Duplicate questions: planted exact and near-duplicates in a real run's condor.db are marked, distinct ones not."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from condor_state.dataset import Dataset
from condor_state.dedup import find_duplicates, jaccard, mark_duplicates, normalize, shingles
from condor_state.state import BatchState, Round, Sample, new_sample
from tests.conftest import run_cli
from tests.openai_stub import StubServer

SEED = 0
STARTER = (
    "My sourdough starter doubles in size but smells strongly of nail-polish remover after 12 hours on the "
    "counter. What is causing this, and how should I change my feeding ratio to fix it?"
)
STARTER_WORD = STARTER.replace("12 hours", "ten hours")  # a word changed
STARTER_PUNCT = STARTER.upper().replace(",", "").replace("?", " ?!").replace("  ", " ")  # case and punctuation
RESTAURANT = (
    "我要给一家新开的川菜馆设计麻婆豆腐的标准化出品流程，"
    "要求每份口味稳定、出餐时间不超过五分钟，请给出原料配比和操作步骤。"
)
RESTAURANT_CHAR = RESTAURANT.replace("五分钟", "六分钟")  # one Chinese character changed
DISTINCT = [
    # same topic, different question: must stay unmarked
    "How often should I feed a sourdough starter that I keep in the fridge between weekly bakes?",
    "Design a two-week feeding schedule for reviving a dried sourdough starter, and explain the microbiology.",
    "我要给一家新开的湘菜馆设计剁椒鱼头的出品流程，重点是如何保证鱼头火候一致，请说明原因。",
    "请你扮演一位高中班主任，跟我聊聊新高考选科时最需要注意什么。",
]


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
            sample.update(status="failed", error="critic: no score", answer=None, rounds=[])
        samples.append(sample)
    state = BatchState(
        call_index=first_position // 3,
        tag_path=["Food", "Baking"],
        task_type="Domain QA",
        language="en",
        samples=samples,
    )
    dataset = Dataset.in_dir(run_dir)
    ids = dataset.write_batch(state)
    dataset.close()
    return ids


def test_normalize_and_shingles() -> None:
    assert normalize("Hello,  WORLD!") == normalize("hello world") == "helloworld"
    assert normalize("ＡＢＣ，１２３") == "abc123"  # full-width forms fold
    assert jaccard(shingles(normalize(RESTAURANT)), shingles(normalize(RESTAURANT_CHAR))) >= 0.8  # 2-grams for CJK
    assert jaccard(shingles(normalize(STARTER)), shingles(normalize(DISTINCT[0]))) < 0.5


def test_find_duplicates_points_at_the_earliest_original() -> None:
    rows = [{"id": f"q{i}", "question": q} for i, q in enumerate([STARTER, *DISTINCT, STARTER_WORD, STARTER_PUNCT])]
    assert find_duplicates(rows) == {"q5": "q0", "q6": "q0"}
    assert find_duplicates(rows, threshold=0.99) == {"q6": "q0"}  # only the exact (normalized) one is left


def test_planted_duplicates_in_a_real_run_are_marked(tmp_path: Path, stub: StubServer) -> None:
    run = tmp_path / "run"
    result = run_cli("graphs.run", "--samples", "6", "--out", str(run), "--base-url", stub.base_url)
    assert result.returncode == 0, result.stderr
    originals = plant(run, 6, [STARTER, RESTAURANT, DISTINCT[0]])
    distinct = plant(run, 9, DISTINCT[1:])
    copies = plant(run, 12, [STARTER_WORD, RESTAURANT_CHAR, STARTER_PUNCT])
    failed_copy = plant(run, 15, [STARTER], failed=frozenset({0}))

    assert mark_duplicates(run) == 3
    db = sqlite_utils.Database(run / "condor.db")
    marks = {r["id"]: r["duplicate_of"] for r in db["samples"].rows}
    assert marks[copies[0]] == originals[0]  # a word changed
    assert marks[copies[1]] == originals[1]  # one Chinese character changed
    assert marks[copies[2]] == originals[0]  # case and punctuation only: an exact duplicate
    assert all(marks[i] is None for i in [*originals, *distinct, *failed_copy])
    # the stub's own templated questions ("A easy question about topic <hash>?") differ enough to be kept
    assert sum(v is not None for v in marks.values()) == 3

    # recomputed from scratch: idempotent, and a removed original releases its copy
    assert mark_duplicates(Dataset.in_dir(run)) == 3
    db.execute("DELETE FROM samples WHERE id = ?", [originals[1]])
    db.conn.commit()
    assert mark_duplicates(run / "condor.db") == 2
    assert db["samples"].get(copies[1])["duplicate_of"] is None

"""Duplicate questions: planted exact and near-duplicates in a real run's condor.db are marked, distinct ones not.

The texts here are not the question-writer prompt's examples (those are seeded as originals and tested apart).
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from condor_state.dataset import Dataset
from condor_state.dedup import (
    example_questions,
    find_duplicates,
    is_example,
    jaccard,
    mark_duplicates,
    normalize,
    shingles,
)
from condor_state.state import BatchState, Round, Sample, new_sample
from prompts.questions import EXAMPLES
from tests.conftest import run_cli
from tests.openai_stub import StubServer

SEED = 0
STARTER = (
    "My kombucha has grown a thick white film and smells faintly of vinegar after nine days at room temperature. "
    "Is this mould or a healthy new culture, and how should I change the brewing time to fix it?"
)
STARTER_WORD = STARTER.replace("nine days", "ten days")  # a word changed
STARTER_PUNCT = STARTER.upper().replace(",", "").replace("?", " ?!").replace("  ", " ")  # case and punctuation
RESTAURANT = (
    "我要给一家新开的粤菜馆设计白切鸡的标准化出品流程，"
    "要求每份口感稳定、出餐时间不超过五分钟，请给出原料配比和操作步骤。"
)
RESTAURANT_CHAR = RESTAURANT.replace("五分钟", "六分钟")  # one Chinese character changed
DISTINCT = [
    # same topic, different question: must stay unmarked
    "How often should I feed a kombucha culture that I keep in the fridge between monthly brews?",
    "Design a two-week schedule for reviving a dried kombucha culture, and explain the microbiology.",
    "我要给一家新开的湘菜馆设计剁椒鱼头的出品流程，重点是如何保证鱼头火候一致，请说明原因。",
    "请你扮演一位大学辅导员，跟我聊聊大一新生选社团时最需要注意什么。",
]
# a chain: B is near A, C is near B but not near A (Jaccard 0.89, 0.82 and 0.73)
GARDEN_A = (
    "Our community garden has twelve raised beds and a single rain barrel. How should we schedule watering during "
    "a dry August so that the tomatoes and the squash both get enough water?"
)
GARDEN_B = GARDEN_A.replace("squash", "beans")
GARDEN_C = GARDEN_B.replace("a single rain barrel", "two rain barrels").replace("water?", "water without runoff?")


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


def similarity(a: str, b: str) -> float:
    return jaccard(shingles(normalize(a)), shingles(normalize(b)))


def test_normalize_and_shingles() -> None:
    assert normalize("Hello,  WORLD!") == normalize("hello world") == "helloworld"
    assert normalize("ＡＢＣ，１２３") == "abc123"  # full-width forms fold
    assert jaccard(shingles(normalize(RESTAURANT)), shingles(normalize(RESTAURANT_CHAR))) >= 0.8  # 2-grams for CJK
    assert jaccard(shingles(normalize(STARTER)), shingles(normalize(DISTINCT[0]))) < 0.5


def test_find_duplicates_points_at_the_earliest_original() -> None:
    rows = [{"id": f"q{i}", "question": q} for i, q in enumerate([STARTER, *DISTINCT, STARTER_WORD, STARTER_PUNCT])]
    assert find_duplicates(rows) == {"q5": "q0", "q6": "q0"}
    assert find_duplicates(rows, threshold=0.99) == {"q6": "q0"}  # only the exact (normalized) one is left


def test_a_question_near_only_a_duplicate_is_an_original_not_a_duplicate_of_the_duplicate() -> None:
    assert similarity(GARDEN_A, GARDEN_B) >= 0.8 and similarity(GARDEN_B, GARDEN_C) >= 0.8
    assert similarity(GARDEN_A, GARDEN_C) < 0.8
    rows = [{"id": i, "question": q} for i, q in (("a", GARDEN_A), ("b", GARDEN_B), ("c", GARDEN_C))]
    # B is a duplicate, so it is never a target: C is compared with A only, and is an original
    assert find_duplicates(rows) == {"b": "a"}
    # and as an original, C is what a later copy of it points at
    assert find_duplicates([*rows, {"id": "d", "question": GARDEN_C.upper()}]) == {"b": "a", "d": "c"}


def test_exact_and_near_copies_of_a_near_duplicate_point_at_its_original() -> None:
    rows = [
        {"id": "a", "question": GARDEN_A},
        {"id": "b", "question": GARDEN_B},
        {"id": "b-exact", "question": GARDEN_B.lower().replace("?", "!")},  # the same text as B once normalized
        {"id": "b-near", "question": GARDEN_B.replace("Our ", "Our own ")},  # nearer B (0.95) than A (0.85)
    ]
    assert find_duplicates(rows) == {"b": "a", "b-exact": "a", "b-near": "a"}


def test_the_prompts_examples_are_seeded_by_pseudo_id_from_the_prompt_itself() -> None:
    examples = example_questions()
    assert len(examples) == 3 * sum(len(v) for v in EXAMPLES.values())
    assert examples["example:en:1:Easy"] == EXAMPLES["en"][0][2]
    assert examples["example:zh:2:Hard"] == EXAMPLES["zh"][1][4]
    assert is_example("example:en:1:Easy") and not is_example("s0-0000001") and not is_example(None)
    seeds = [{"id": k, "question": q} for k, q in examples.items()]
    medium = EXAMPLES["en"][0][3]
    rows = [
        {"id": "exact", "question": medium},
        {"id": "edited", "question": medium.replace("12 hours", "10 hours")},
        {"id": "own", "question": STARTER},
        {"id": "own-copy", "question": STARTER_WORD},
    ]
    assert find_duplicates(rows, seeds=seeds) == {
        "exact": "example:en:1:Medium",
        "edited": "example:en:1:Medium",
        "own-copy": "own",
    }
    assert find_duplicates(seeds) == {}  # the examples differ from one another: none hides another


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
    assert db["samples"].get(copies[1])["duplicate_of"] is None

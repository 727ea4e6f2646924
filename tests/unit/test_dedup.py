"""Duplicate questions: normalization, shingles, and which question a near or exact copy points at.

The texts here are not the question-writer prompt's examples (those are seeded as originals and tested apart).
"""

from __future__ import annotations

from condor_state.dedup import example_questions, find_duplicates, is_example, jaccard, normalize, shingles
from prompts.questions import EXAMPLES
from tests.dedup_texts import DISTINCT, RESTAURANT, RESTAURANT_CHAR, STARTER, STARTER_PUNCT, STARTER_WORD

# a chain: B is near A, C is near B but not near A (Jaccard 0.89, 0.82 and 0.73)
GARDEN_A = (
    "Our community garden has twelve raised beds and a single rain barrel. How should we schedule watering during "
    "a dry August so that the tomatoes and the squash both get enough water?"
)
GARDEN_B = GARDEN_A.replace("squash", "beans")
GARDEN_C = GARDEN_B.replace("a single rain barrel", "two rain barrels").replace("water?", "water without runoff?")


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

"""The sampling plan: full coverage per epoch, root balance, exact language mix, random access."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from condor_state.plan import LanguageMixError, PlanEntry, SamplingPlan, parse_language_mix, parse_root_weights
from condor_state.tasks import TASK_TYPES
from condor_state.tree import KnowledgeTree

SMALL = {
    "en": {
        "Alpha": {"A1": ["a", "b", "c"]},
        "Beta": {"B1": ["d"], "B2": ["e"]},
    }
}
BILINGUAL = {
    "en": {"Alpha": {"A1": ["a", "b"]}, "Beta": {"B1": ["c"]}},
    "zh": {"甲": {"子": ["一", "二"]}},
}


@pytest.fixture(scope="module")
def small_tree() -> KnowledgeTree:
    return KnowledgeTree.from_dict(SMALL)


@pytest.fixture(scope="module")
def bilingual_tree() -> KnowledgeTree:
    return KnowledgeTree.from_dict(BILINGUAL)


def entries(plan: SamplingPlan, n: int, start: int = 0) -> list[PlanEntry]:
    return [plan.entry(i) for i in range(start, start + n)]


def all_pairs(tree: KnowledgeTree, language: str) -> set[tuple[tuple[str, ...], str]]:
    return {(leaf, task) for leaf in tree.leaves[language] for task in TASK_TYPES}


def test_first_epoch_covers_every_pair_once(small_tree: KnowledgeTree) -> None:
    size = len(small_tree.leaves["en"]) * len(TASK_TYPES)
    assert size == 35
    plan = SamplingPlan(small_tree, seed=1, mix={"en": 1.0})
    first = [(e.tag_path, e.task_type) for e in entries(plan, size)]
    assert len(set(first)) == size
    assert set(first) == all_pairs(small_tree, "en")
    assert all(e.language == "en" for e in entries(plan, size))


def test_second_epoch_covers_every_pair_again(small_tree: KnowledgeTree) -> None:
    size = 35
    plan = SamplingPlan(small_tree, seed=1, mix={"en": 1.0})
    second = [(e.tag_path, e.task_type) for e in entries(plan, size, start=size)]
    assert len(set(second)) == size
    assert set(second) == all_pairs(small_tree, "en")
    third = [(e.tag_path, e.task_type) for e in entries(plan, size, start=2 * size)]
    assert set(third) == all_pairs(small_tree, "en")


def test_epochs_are_reshuffled(small_tree: KnowledgeTree) -> None:
    plan = SamplingPlan(small_tree, seed=1, mix={"en": 1.0})
    epochs = [entries(plan, 35, start=k * 35) for k in range(4)]
    assert len({tuple(epoch) for epoch in epochs}) > 1


def test_same_seed_same_plan(small_tree: KnowledgeTree) -> None:
    a = entries(SamplingPlan(small_tree, seed=7, mix={"en": 1.0}), 80)
    b = entries(SamplingPlan(KnowledgeTree.from_dict(SMALL), seed=7, mix={"en": 1.0}), 80)
    assert a == b


def test_different_seed_different_order(small_tree: KnowledgeTree) -> None:
    a = entries(SamplingPlan(small_tree, seed=7, mix={"en": 1.0}), 35)
    b = entries(SamplingPlan(small_tree, seed=8, mix={"en": 1.0}), 35)
    assert a != b
    assert set(a) == set(b)


def test_roots_take_turns(small_tree: KnowledgeTree) -> None:
    plan = SamplingPlan(small_tree, seed=3, mix={"en": 1.0})
    per_root = Counter(path[0] for path in small_tree.leaves["en"])
    min_root_pairs = min(per_root.values()) * len(TASK_TYPES)
    assert min_root_pairs == 14
    counts: Counter[str] = Counter()
    for e in entries(plan, 2 * min_root_pairs):
        counts[e.tag_path[0]] += 1
        assert abs(counts["Alpha"] - counts["Beta"]) <= 1, counts
    assert counts["Alpha"] == counts["Beta"] == min_root_pairs


@pytest.mark.parametrize("seed", [0, 1, 2, 99])
def test_roots_take_turns_in_every_epoch(small_tree: KnowledgeTree, seed: int) -> None:
    plan = SamplingPlan(small_tree, seed=seed, mix={"en": 1.0})
    for epoch in range(3):
        counts: Counter[str] = Counter()
        for e in entries(plan, 28, start=epoch * 35):
            counts[e.tag_path[0]] += 1
            assert abs(counts["Alpha"] - counts["Beta"]) <= 1


def test_language_mix_exact(bilingual_tree: KnowledgeTree) -> None:
    plan = SamplingPlan(bilingual_tree, seed=0, mix={"en": 0.75, "zh": 0.25})
    languages = [e.language for e in entries(plan, 100)]
    assert Counter(languages) == {"en": 75, "zh": 25}
    en = 0
    for n, language in enumerate(languages, start=1):
        en += language == "en"
        assert abs(en - 0.75 * n) <= 1, n


def test_language_mix_each_language_covers_its_pairs(bilingual_tree: KnowledgeTree) -> None:
    plan = SamplingPlan(bilingual_tree, seed=5, mix=parse_language_mix("en,zh", bilingual_tree.languages))
    got = entries(plan, 2 * 21)
    for language in ("en", "zh"):
        pairs = [(e.tag_path, e.task_type) for e in got if e.language == language]
        assert len(pairs) == 21
        assert set(pairs) == all_pairs(bilingual_tree, language)


def test_zero_weight_language_never_used(bilingual_tree: KnowledgeTree) -> None:
    plan = SamplingPlan(bilingual_tree, seed=0, mix={"en": 1.0, "zh": 0.0})
    assert {e.language for e in entries(plan, 50)} == {"en"}


def test_entry_random_access_matches_iteration(bilingual_tree: KnowledgeTree) -> None:
    mix = {"en": 0.75, "zh": 0.25}
    walked = SamplingPlan(bilingual_tree, seed=11, mix=mix)
    sequence = entries(walked, 501)
    fresh = SamplingPlan(bilingual_tree, seed=11, mix=mix)
    assert fresh.entry(500) == sequence[500]
    for i in (499, 0, 137, 250, 500):
        assert fresh.entry(i) == sequence[i]


def test_parse_language_mix_normalizes() -> None:
    assert parse_language_mix("en=3,zh=1", ("en", "zh")) == {"en": 0.75, "zh": 0.25}
    assert parse_language_mix(" en , zh ", ("en", "zh")) == {"en": 0.5, "zh": 0.5}
    assert parse_language_mix("en=0.75,zh=0.25", ("en", "zh")) == {"en": 0.75, "zh": 0.25}
    assert parse_language_mix("en=1,zh=0", ("en", "zh")) == {"en": 1.0}
    assert parse_language_mix("zh", ("en", "zh")) == {"zh": 1.0}


@pytest.mark.parametrize(
    ("text", "available", "fragment"),
    [
        ("fr=1", ("en", "zh"), "no 'fr'"),
        ("zh", ("en",), "no 'zh'"),
        ("en=-0.5,zh=1", ("en", "zh"), "negative"),
        ("en=0,zh=0", ("en", "zh"), "no language a positive weight"),
        ("", ("en", "zh"), "no language a positive weight"),
        (" , ", ("en", "zh"), "no language a positive weight"),
        ("en=x", ("en", "zh"), "NAME=WEIGHT"),
        ("en=0.5=1", ("en", "zh"), "NAME=WEIGHT"),
    ],
)
def test_parse_language_mix_errors(text: str, available: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(LanguageMixError, match=fragment):
        parse_language_mix(text, available)


@pytest.mark.parametrize("text", ["en=nan", "en=inf"])
def test_parse_language_mix_non_finite_weight(text: str) -> None:
    try:
        mix = parse_language_mix(text, ("en", "zh"))
    except LanguageMixError:
        return
    assert mix and all(math.isfinite(w) and w > 0 for w in mix.values()), mix


def test_root_weights_draw_a_root_more_often_but_keep_each_pair_once() -> None:
    tree = KnowledgeTree.from_dict({"en": {"A": [f"a{i}" for i in range(6)], "B": [f"b{i}" for i in range(6)]}})
    weights = parse_root_weights("A=3", tree)
    plan = SamplingPlan(tree, 0, {"en": 1.0}, weights)
    first = [e.tag_path[0] for e in entries(plan, 40)]
    assert first.count("A") == 30 and first.count("B") == 10  # 3:1 while both roots have pairs left
    epoch = entries(plan, 6 * 2 * len(TASK_TYPES))
    assert {(e.tag_path, e.task_type) for e in epoch} == all_pairs(tree, "en")  # still each pair once per pass


@pytest.mark.parametrize("text", ["Nowhere=2", "A=0", "A=-1", "A", "A=x", "A=inf"])
def test_root_weights_errors(text: str) -> None:
    tree = KnowledgeTree.from_dict({"en": {"A": ["a"], "B": ["b"]}})
    with pytest.raises(LanguageMixError, match="--root-weights"):
        parse_root_weights(text, tree)

"""The language schedule found by period or stepped gives exactly the plan the call-by-call loop gave."""

from __future__ import annotations

import random
from functools import lru_cache

import pytest

from condor_state.plan import CYCLE_SEARCH, LanguageSchedule, SamplingPlan, parse_language_mix
from condor_state.tasks import TASK_TYPES, TaskType
from condor_state.tree import KnowledgeTree, TagPath, default_tree

CALLS = 100_000  # a 300k-sample run; a resumed 100k-sample run starts ~33k calls in
MIXES = [
    "en",
    "en=0.5,zh=0.5",
    "en=0.7,zh=0.3",
    "en=3,zh=1",
    "en=2,zh=1",
    "en=0.1,zh=0.9",
    "en=0.123,zh=0.877",
    "en=1,zh=1,fr=1",
    "en=0.137,zh=0.521,fr=0.342",
    "en=3,zh=5,fr=7",
]


def reference_schedule(mix: dict[str, float], calls: int) -> list[tuple[str, int]]:
    """The plan's schedule as it was computed before (each call stepped in turn): (language, index in language)."""
    languages = list(mix)
    weights = [mix[lang] for lang in languages]
    credit = [0.0] * len(languages)
    counts = [0] * len(languages)
    order = range(len(languages))
    schedule = []
    for _ in range(calls):
        for k in order:
            credit[k] += weights[k]
        chosen = max(order, key=credit.__getitem__)
        credit[chosen] -= 1.0
        schedule.append((languages[chosen], counts[chosen]))
        counts[chosen] += 1
    return schedule


@lru_cache(maxsize=64)
def reference_epoch(tree: KnowledgeTree, language: str, seed: int, epoch: int) -> tuple[tuple[TagPath, TaskType], ...]:
    """One pass over a language's pairs as it was computed before (without root weights)."""
    rng = random.Random(f"{seed}:{language}:{epoch}:{tree.fingerprint}")
    by_root: dict[str, list[tuple[TagPath, TaskType]]] = {}
    for path in tree.leaves[language]:
        by_root.setdefault(path[0], []).extend((path, task) for task in TASK_TYPES)
    queues = list(by_root.values())
    rng.shuffle(queues)
    for queue in queues:
        rng.shuffle(queue)
    order: list[tuple[TagPath, TaskType]] = []
    depth = 0
    while len(order) < sum(len(q) for q in queues):
        order.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return tuple(order)


def mix_of(text: str) -> dict[str, float]:
    return parse_language_mix(text, ("en", "zh", "fr"))


@pytest.mark.parametrize("text", MIXES)
def test_every_call_has_the_language_and_index_of_the_call_by_call_loop(text: str) -> None:
    mix = mix_of(text)
    expected = reference_schedule(mix, CALLS)
    names = list(mix)
    walked = LanguageSchedule(tuple(mix.values()))
    assert [(names[k], j) for k, j in map(walked.position, range(CALLS))] == expected
    late_first = LanguageSchedule(tuple(mix.values()))  # a resume asks for a late call first, then others
    for i in (CALLS - 1, 33_333, 33_334, 0, 1, CYCLE_SEARCH - 1, CYCLE_SEARCH, CYCLE_SEARCH + 1, 77_777):
        k, j = late_first.position(i)
        assert (names[k], j) == expected[i], i


@pytest.mark.parametrize("text", ["en", "en=0.5,zh=0.5", "en=3,zh=1", "en=1,zh=1,fr=1", "en=0.1,zh=0.9"])
def test_mixes_whose_credits_repeat_are_looked_up_by_period(text: str) -> None:
    schedule = LanguageSchedule(tuple(mix_of(text).values()))
    schedule.position(CALLS)
    assert schedule._cycle is not None
    assert len(schedule._chosen) < CYCLE_SEARCH  # nothing stepped beyond the first period


@pytest.mark.parametrize("text", ["en", "en=0.5,zh=0.5", "en=0.7,zh=0.3"])
def test_default_tree_plan_entries_are_unchanged(text: str) -> None:
    tree = default_tree()
    mix = parse_language_mix(text, tree.languages)
    plan = SamplingPlan(tree, 0, mix)
    expected = reference_schedule(mix, 34_000)
    for i in [*range(33_000, 33_400), *range(0, 34_000, 97)]:
        language, j = expected[i]
        pairs = reference_epoch(tree, language, 0, j // (len(tree.leaves[language]) * len(TASK_TYPES)))
        entry = plan.entry(i)
        assert (entry.tag_path, entry.task_type, entry.language) == (*pairs[j % len(pairs)], language), i


def test_three_language_plan_entries_are_unchanged() -> None:
    leaves: dict[str, tuple[TagPath, ...]] = {
        "en": (("A", "a1"), ("A", "a2"), ("B", "b1")),
        "zh": (("甲", "一"),),
        "fr": (("C", "c1"), ("C", "c2"), ("D", "d1"), ("D", "d2")),
    }
    tree = KnowledgeTree(leaves=leaves, fingerprint="three")  # past the loader, which knows only en and zh
    mix = mix_of("en=0.137,zh=0.521,fr=0.342")
    plan = SamplingPlan(tree, 4, mix)
    for i, (language, j) in enumerate(reference_schedule(mix, 5_000)):
        pairs = reference_epoch(tree, language, 4, j // (len(leaves[language]) * len(TASK_TYPES)))
        entry = plan.entry(i)
        assert (entry.tag_path, entry.task_type, entry.language) == (*pairs[j % len(pairs)], language), i

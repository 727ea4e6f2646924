"""The seeded, balanced sampling plan: which (tag path, task type, language) each question-writer call gets."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

from condor_state.tasks import TASK_TYPES, TaskType
from condor_state.tree import KnowledgeTree, TagPath, load_tree


class LanguageMixError(ValueError):
    """A --languages value that cannot be used."""


@dataclass(frozen=True)
class PlanEntry:
    tag_path: TagPath
    task_type: TaskType
    language: str


def parse_language_mix(text: str, available: tuple[str, ...]) -> dict[str, float]:
    """Parse 'en=0.5,zh=0.5' (or 'en,zh' for equal shares) into normalized weights."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value) if value else 1.0
        except ValueError:
            raise LanguageMixError(f"--languages: '{part}' is not NAME=WEIGHT") from None
        if not math.isfinite(weight) or weight < 0:
            raise LanguageMixError(f"--languages: weight for '{name}' must be a finite number, not negative")
        if name not in available:
            raise LanguageMixError(f"--languages: the tree has no '{name}' tags (it has: {', '.join(available)})")
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise LanguageMixError(f"--languages: '{text}' gives no language a positive weight")
    return {name: w / total for name, w in weights.items() if w > 0}


class SamplingPlan:
    """Every (leaf, task type) pair of a language is used once before any repeats; roots take turns.

    Languages follow the mix exactly over any prefix (smooth weighted round robin), so the plan is a pure
    function of (tree, seed, mix) and call i's entry never depends on how far a run got.
    """

    def __init__(self, tree: KnowledgeTree, seed: int, mix: dict[str, float]) -> None:
        self.tree = tree
        self.seed = seed
        self.mix = {lang: w for lang, w in mix.items() if w > 0}
        self._languages: list[str] = []  # language of call i
        self._index_in_language: list[int] = []  # how many earlier calls had the same language
        self._credit = dict.fromkeys(self.mix, 0.0)
        self._counts = dict.fromkeys(self.mix, 0)

    def entry(self, call_index: int) -> PlanEntry:
        while len(self._languages) <= call_index:
            self._extend_language_schedule()
        language = self._languages[call_index]
        j = self._index_in_language[call_index]
        pairs = self._epoch(language, j)
        tag_path, task_type = pairs[j % len(pairs)]
        return PlanEntry(tag_path=tag_path, task_type=task_type, language=language)

    def _extend_language_schedule(self) -> None:
        for lang, weight in self.mix.items():
            self._credit[lang] += weight
        chosen = max(self.mix, key=lambda lang: self._credit[lang])
        self._credit[chosen] -= 1.0
        self._languages.append(chosen)
        self._index_in_language.append(self._counts[chosen])
        self._counts[chosen] += 1

    def _epoch(self, language: str, j: int) -> tuple[tuple[TagPath, TaskType], ...]:
        size = len(self.tree.leaves[language]) * len(TASK_TYPES)
        return _epoch_order(self.tree, language, self.seed, j // size)


@lru_cache(maxsize=16)
def _epoch_order(tree: KnowledgeTree, language: str, seed: int, epoch: int) -> tuple[tuple[TagPath, TaskType], ...]:
    """One pass over all (leaf, task) pairs: shuffled within each root, roots interleaved in turn."""
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


@lru_cache(maxsize=8)
def plan_for(tree_file: str, seed: int, languages: str) -> SamplingPlan:
    """The plan for a run's settings, built once per process (trees load in a fraction of a second)."""
    tree = load_tree(tree_file or None)
    return SamplingPlan(tree, seed, parse_language_mix(languages, tree.languages))

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


def parse_root_weights(text: str, tree: KnowledgeTree) -> tuple[tuple[str, float], ...]:
    """Parse 'Health=2,科技=0.5' into (root, weight) pairs; roots not named keep weight 1."""
    roots = {root for language in tree.languages for root in tree.roots(language)}
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not math.isfinite(weight) or weight <= 0:
            raise LanguageMixError(f"--root-weights: '{part}' is not ROOT=WEIGHT with a positive weight")
        if name.strip() not in roots:
            raise LanguageMixError(f"--root-weights: the tree has no root domain '{name.strip()}'")
        weights[name.strip()] = weight
    return tuple(sorted(weights.items()))


class SamplingPlan:
    """Every (leaf, task type) pair of a language is used once before any repeats; roots take turns.

    Languages follow the mix exactly over any prefix (smooth weighted round robin), so the plan is a pure
    function of (tree, seed, mix) and call i's entry never depends on how far a run got. Root weights make a
    root come up proportionally more often within a pass, until its pairs are used.
    """

    def __init__(
        self, tree: KnowledgeTree, seed: int, mix: dict[str, float], root_weights: tuple[tuple[str, float], ...] = ()
    ) -> None:
        self.tree = tree
        self.seed = seed
        self.root_weights = root_weights
        self.mix = {lang: w for lang, w in mix.items() if w > 0}
        self._languages: list[str] = []  # language of call i
        self._index_in_language: list[int] = []  # how many earlier calls had the same language
        self._credit = dict.fromkeys(self.mix, 0.0)
        self._counts = dict.fromkeys(self.mix, 0)

    def entry(self, call_index: int) -> PlanEntry:
        if len(self._languages) <= call_index:
            self._extend_language_schedule(call_index)
        language = self._languages[call_index]
        j = self._index_in_language[call_index]
        pairs = self._epoch(language, j)
        tag_path, task_type = pairs[j % len(pairs)]
        return PlanEntry(tag_path=tag_path, task_type=task_type, language=language)

    def _extend_language_schedule(self, call_index: int) -> None:
        """The schedule up to call_index, in one tight loop (a resumed 100k-sample run starts ~33k calls in)."""
        languages = list(self.mix)
        weights = [self.mix[lang] for lang in languages]
        credit = [self._credit[lang] for lang in languages]
        counts = [self._counts[lang] for lang in languages]
        order = range(len(languages))
        for _ in range(call_index + 1 - len(self._languages)):
            for k in order:
                credit[k] += weights[k]
            chosen = max(order, key=credit.__getitem__)  # the first of equals, as max over the mix would give
            credit[chosen] -= 1.0
            self._languages.append(languages[chosen])
            self._index_in_language.append(counts[chosen])
            counts[chosen] += 1
        self._credit = dict(zip(languages, credit, strict=True))
        self._counts = dict(zip(languages, counts, strict=True))

    def _epoch(self, language: str, j: int) -> tuple[tuple[TagPath, TaskType], ...]:
        size = len(self.tree.leaves[language]) * len(TASK_TYPES)
        return _epoch_order(self.tree, language, self.seed, j // size, self.root_weights)


@lru_cache(maxsize=16)
def _epoch_order(
    tree: KnowledgeTree, language: str, seed: int, epoch: int, root_weights: tuple[tuple[str, float], ...] = ()
) -> tuple[tuple[TagPath, TaskType], ...]:
    """One pass over all (leaf, task) pairs: shuffled within each root, roots interleaved in turn (by weight)."""
    rng = random.Random(f"{seed}:{language}:{epoch}:{tree.fingerprint}")
    by_root: dict[str, list[tuple[TagPath, TaskType]]] = {}
    for path in tree.leaves[language]:
        by_root.setdefault(path[0], []).extend((path, task) for task in TASK_TYPES)
    queues = list(by_root.values())
    rng.shuffle(queues)
    for queue in queues:
        rng.shuffle(queue)
    if root_weights:
        return _weighted_interleave(queues, dict(root_weights))
    order: list[tuple[TagPath, TaskType]] = []
    depth = 0
    while len(order) < sum(len(q) for q in queues):
        order.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return tuple(order)


def _weighted_interleave(
    queues: list[list[tuple[TagPath, TaskType]]], weights: dict[str, float]
) -> tuple[tuple[TagPath, TaskType], ...]:
    """Smooth weighted round robin over roots that still have pairs: a weight-2 root comes up twice as often."""
    cursors = [0] * len(queues)
    root_weight = [weights.get(q[0][0][0], 1.0) for q in queues]
    credit = [0.0] * len(queues)
    order: list[tuple[TagPath, TaskType]] = []
    active = [i for i, q in enumerate(queues) if q]
    while active:
        total = sum(root_weight[i] for i in active)
        for i in active:
            credit[i] += root_weight[i]
        chosen = max(active, key=lambda i: credit[i])
        credit[chosen] -= total
        order.append(queues[chosen][cursors[chosen]])
        cursors[chosen] += 1
        if cursors[chosen] == len(queues[chosen]):
            active.remove(chosen)
    return tuple(order)


@lru_cache(maxsize=8)
def plan_for(tree_file: str, seed: int, languages: str, root_weights: str = "") -> SamplingPlan:
    """The plan for a run's settings, built once per process (trees load in a fraction of a second)."""
    tree = load_tree(tree_file or None)
    mix = parse_language_mix(languages, tree.languages)
    return SamplingPlan(tree, seed, mix, parse_root_weights(root_weights, tree))

"""The seeded, balanced sampling plan: which (tag path, task type, language) each question-writer call gets."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from itertools import zip_longest

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
        self._schedule = LanguageSchedule(tuple(self.mix.values()))
        self._names = list(self.mix)

    def entry(self, call_index: int) -> PlanEntry:
        k, j = self._schedule.position(call_index)
        language = self._names[k]
        pairs = self._epoch(language, j)
        tag_path, task_type = pairs[j % len(pairs)]
        return PlanEntry(tag_path=tag_path, task_type=task_type, language=language)

    def _epoch(self, language: str, j: int) -> tuple[tuple[TagPath, TaskType], ...]:
        size = len(self.tree.leaves[language]) * len(TASK_TYPES)
        return _epoch_order(self.tree, language, self.seed, j // size, self.root_weights)


CYCLE_SEARCH = 1024  # schedule steps watched for a repeated state (exact mixes such as 0.5/0.5 repeat within a few)


class LanguageSchedule:
    """The language mix's smooth weighted round robin: for call i, which language (its place in the mix) and how
    many earlier calls had that language.

    Each step adds every weight to its language's credit, picks the first language of highest credit and takes 1
    from it. The credits are the whole state, so once they repeat one earlier state exactly (the float values, as
    the steps compute them) the schedule is periodic from there: a resumed run's late call is then found by
    arithmetic instead of stepping through every call before it. A mix whose credits never repeat early is stepped.
    """

    def __init__(self, weights: tuple[float, ...]) -> None:
        self.weights = weights
        self._chosen: list[int] = []  # the language of call i
        self._index: list[int] = []  # how many earlier calls had the same language
        self._credit = [0.0] * len(weights)
        self._counts = [0] * len(weights)
        self._cycle: tuple[int, int, list[int]] | None = None  # period's first call, its length, calls per language
        self._find_cycle()

    def position(self, call_index: int) -> tuple[int, int]:
        """(language's place in the mix, how many earlier calls had it) for call `call_index`."""
        if call_index < len(self._chosen):
            return self._chosen[call_index], self._index[call_index]
        if self._cycle is None:
            self._step(call_index + 1 - len(self._chosen))
            return self._chosen[call_index], self._index[call_index]
        start, period, per_period = self._cycle
        turns, offset = divmod(call_index - start, period)
        k = self._chosen[start + offset]
        return k, self._index[start + offset] + turns * per_period[k]

    def _find_cycle(self) -> None:
        """Step until the credits equal those after an earlier step (the period found) or CYCLE_SEARCH steps."""
        seen = {tuple(self._credit): 0}
        while self.weights and len(self._chosen) < CYCLE_SEARCH:
            self._step(1)
            done = len(self._chosen)
            start = seen.setdefault(tuple(self._credit), done)
            if start != done:
                per_period = [0] * len(self.weights)
                for k in self._chosen[start:]:
                    per_period[k] += 1
                self._cycle = (start, done - start, per_period)
                return

    def _step(self, steps: int) -> None:
        """`steps` more calls of the schedule, in one tight loop (a resumed 100k-sample run starts ~33k calls in)."""
        weights, credit, counts = self.weights, self._credit, self._counts
        add_chosen, add_index = self._chosen.append, self._index.append
        rest = range(1, len(weights))
        for _ in range(steps):
            best = 0
            top = credit[0] = credit[0] + weights[0]
            for k in rest:
                value = credit[k] = credit[k] + weights[k]
                if value > top:  # strictly: the first of equal credits wins
                    best, top = k, value
            credit[best] = top - 1.0
            add_chosen(best)
            add_index(counts[best])
            counts[best] += 1


@lru_cache(maxsize=16)
def _epoch_order(
    tree: KnowledgeTree, language: str, seed: int, epoch: int, root_weights: tuple[tuple[str, float], ...] = ()
) -> tuple[tuple[TagPath, TaskType], ...]:
    """One pass over all (leaf, task) pairs: shuffled within each root, roots interleaved in turn (by weight)."""
    rng = random.Random(f"{seed}:{language}:{epoch}:{tree.fingerprint}")
    by_root: dict[str, list[tuple[TagPath, TaskType]]] = {}
    for path in tree.leaves[language]:
        by_root.setdefault(path[0], []).extend([(path, task) for task in TASK_TYPES])
    queues = list(by_root.values())
    rng.shuffle(queues)
    for queue in queues:
        rng.shuffle(queue)
    if root_weights:
        return _weighted_interleave(queues, dict(root_weights))
    # depth by depth, each root's next pair in turn (zip_longest pads a used-up root with None, never a pair)
    return tuple(pair for layer in zip_longest(*queues) for pair in layer if pair is not None)


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

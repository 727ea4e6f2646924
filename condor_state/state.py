"""Graph state: plain, JSON-like types so every checkpoint serializes cleanly and reads back in Studio."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

SampleStatus = Literal["active", "done", "failed"]


class Round(TypedDict):
    """One critique of the current answer, and the revision it led to (None when none was made)."""

    round: int
    strengths: str
    weaknesses: str
    suggestions: str
    score: int
    critique: str
    revised_answer: str | None


class Sample(TypedDict):
    """One question and its answers as it moves through responder → critic ⇄ reviser."""

    id: str
    position: int
    difficulty: str
    question: str
    void_answer: str | None
    answer: str | None
    rounds: list[Round]
    status: SampleStatus
    error: str | None
    repairs: int
    tokens_in: int
    tokens_out: int
    cost: NotRequired[float | None]  # of its own model calls at the roles' prices; None: no price (or older state)


class BatchInput(TypedDict, total=False):
    """What a thread starts from: a call index of the run plan, or pinned choices (Studio).

    A call continued by a larger run brings the questions it wrote before and the levels already stored.
    """

    call_index: int
    keep: int
    questions: dict[str, str]
    stored_levels: list[str]
    tag_path: list[str]
    task_type: str
    language: str
    question: str
    difficulty: str


class BatchState(TypedDict):
    """One question-writer call: its tag, task and language, and the samples it produced."""

    call_index: NotRequired[int]
    keep: NotRequired[int]
    questions: NotRequired[dict[str, str]]  # every level's question the writer gave, kept or not
    stored_levels: NotRequired[list[str]]
    tag_path: NotRequired[list[str]]
    task_type: NotRequired[str]
    language: NotRequired[str]
    question: NotRequired[str]
    difficulty: NotRequired[str]
    samples: NotRequired[list[Sample]]
    error: NotRequired[str | None]
    tokens_in: NotRequired[int]
    tokens_out: NotRequired[int]
    cost: NotRequired[float | None]  # the question writer's, shared like its tokens


def sample_id(seed: int, position: int) -> str:
    """Deterministic from the run seed and the sample's position in the plan."""
    return f"s{seed}-{position:07d}"


def new_sample(seed: int, position: int, difficulty: str, question: str, error: str | None = None) -> Sample:
    return Sample(
        id=sample_id(seed, position),
        position=position,
        difficulty=difficulty,
        question=question,
        void_answer=None,
        answer=None,
        rounds=[],
        status="failed" if error else "active",
        error=error,
        repairs=0,
        tokens_in=0,
        tokens_out=0,
        cost=None,
    )


def revisions(sample: Sample) -> int:
    """How many times the sample's answer was revised."""
    return sum(1 for r in sample["rounds"] if r["revised_answer"])


def with_usage(sample: Sample, tokens_in: int, tokens_out: int, repairs: int, cost: float | None = None) -> Sample:
    """The sample with one more model call's tokens, repairs and cost (at its role's price) counted."""
    return {
        **sample,
        "tokens_in": sample["tokens_in"] + tokens_in,
        "tokens_out": sample["tokens_out"] + tokens_out,
        "repairs": sample["repairs"] + repairs,
        "cost": add_cost(sample.get("cost"), cost),
    }


def add_cost(a: float | None, b: float | None) -> float | None:
    """A sum of costs where None means unpriced: it stays None only when both are, so a zero price still counts."""
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)

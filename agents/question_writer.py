"""question_writer: one call → Easy, Medium and Hard questions, each becoming its own sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.runtime import Runtime

from agents.model_call import ask
from condor_state.context import Context
from condor_state.state import BatchState, Sample, new_sample
from condor_state.tasks import DIFFICULTIES, QUESTIONS_PER_CALL
from prompts.questions import build_messages, parse_questions
from prompts.repair import MissingParts

MISSING = {
    "en": "Your reply had no {levels} question. Write only the missing question(s), in the same format:\n{blocks}",
    "zh": "你的回复缺少{levels}难度的问题。请只写出缺少的问题，格式不变：\n{blocks}",
}


class QuestionCollector:
    """Parses each reply of one call, keeping the first text given for every level and re-asking for the rest."""

    def __init__(self, wanted: Sequence[str], known: dict[str, str]) -> None:
        self.wanted = wanted
        self.found = dict(known)
        self.replies = 0
        self.repairs_for: dict[str, int] = dict.fromkeys(known, 0)  # replies it took to get each level

    def __call__(self, text: str) -> dict[str, str]:
        self.replies += 1
        for level, question in parse_questions(text).items():
            if level not in self.found:
                self.found[level] = question
                self.repairs_for[level] = self.replies - 1
        missing = [level for level in self.wanted if level not in self.found]
        if missing:
            blocks = "\n".join(f"[{level}][Question Start]...[Question End]" for level in missing)
            levels = ", ".join(missing)
            request = {lang: template.format(levels=levels, blocks=blocks) for lang, template in MISSING.items()}
            raise MissingParts(f"no {levels} question in the reply", request)
        return self.found


async def question_writer(state: BatchState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the questions; a level the model never produced becomes a failed sample with the reason.

    A call continued by a larger run writes samples only for levels not stored yet, from the questions it wrote
    before; the model is asked only for a level it never wrote.
    """
    context = runtime.context or Context()
    keep = max(1, min(state.get("keep", QUESTIONS_PER_CALL), QUESTIONS_PER_CALL))
    first = state.get("call_index", 0) * QUESTIONS_PER_CALL
    if state.get("question"):  # a question pinned in the input (Studio)
        sample = new_sample(context.seed, first, state.get("difficulty", "Medium"), state["question"])
        return {"samples": [sample]}
    stored = set(state.get("stored_levels", []))
    wanted = [level for level in DIFFICULTIES[:keep] if level not in stored]
    collector = QuestionCollector(wanted, state.get("questions", {}))
    error, tokens_in, tokens_out, cost = None, 0, 0, None
    if any(level not in collector.found for level in wanted):
        outcome = await ask(
            context,
            "question_writer",
            build_messages(state["tag_path"], state["task_type"], state["language"]),
            collector,
            state["language"],
            scope="questions",
        )
        error, tokens_in, tokens_out, cost = outcome.error, outcome.tokens_in, outcome.tokens_out, outcome.cost
    samples: list[Sample] = []
    for level in wanted:
        question = collector.found.get(level)
        reason = None if question else (error or f"question_writer: no {level} question in the reply")
        sample = new_sample(context.seed, first + DIFFICULTIES.index(level), level, question or "", reason)
        sample["repairs"] = collector.repairs_for.get(level, collector.replies - 1 if collector.replies else 0)
        samples.append(sample)
    usage = {"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost}  # shared by its samples when stored
    return {"samples": samples, "questions": collector.found, **usage}

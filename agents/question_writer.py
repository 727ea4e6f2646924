"""question_writer: one call → Easy, Medium and Hard questions, each becoming its own sample."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.model_call import ask
from condor_state.context import Context
from condor_state.state import BatchState, Sample, new_sample
from condor_state.tasks import DIFFICULTIES
from prompts.questions import build_messages, parse_questions


async def question_writer(state: BatchState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the questions; a level the model never produced becomes a failed sample with the reason."""
    context = runtime.context or Context()
    keep = max(1, min(state.get("keep", 3), 3))
    first = state.get("call_index", 0) * 3
    if state.get("question"):  # a question pinned in the input (Studio)
        sample = new_sample(context.seed, first, state.get("difficulty", "Medium"), state["question"])  # type: ignore[typeddict-item]
        return {"samples": [sample]}
    outcome = await ask(
        context,
        "question_writer",
        build_messages(state["tag_path"], state["task_type"], state["language"]),
        parse_questions,
        state["language"],
    )
    found = outcome.value or {}
    samples: list[Sample] = []
    for k, level in enumerate(DIFFICULTIES[:keep]):
        question = found.get(level)
        error = None if question else (outcome.error or f"question_writer: no {level} question in the reply")
        sample = new_sample(context.seed, first + k, level, question or "", error)
        sample["repairs"] = outcome.repairs
        samples.append(sample)
    return {"samples": samples, "tokens_in": outcome.tokens_in, "tokens_out": outcome.tokens_out}

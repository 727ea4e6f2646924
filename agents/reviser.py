"""reviser: an improved answer from the latest critique, keeping strengths and fixing weaknesses."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.each_sample import each_active_sample, request_scope
from agents.model_call import ask
from condor_state.context import Context
from condor_state.state import BatchState, Sample, with_usage
from prompts.revision import build_messages, parse_revision


async def reviser(state: BatchState, runtime: Runtime[Context]) -> dict[str, Any]:
    return await each_active_sample(state, runtime, _revise)


async def _revise(sample: Sample, state: BatchState, context: Context) -> Sample:
    if not sample["rounds"] or sample["rounds"][-1]["revised_answer"]:  # nothing new to revise from
        return sample
    last = sample["rounds"][-1]
    language = state["language"]
    messages = build_messages(
        sample["question"], sample["answer"] or "", last["strengths"], last["weaknesses"], last["suggestions"], language
    )
    outcome = await ask(context, "reviser", messages, parse_revision, language, scope=request_scope(sample))
    updated = with_usage(sample, outcome.tokens_in, outcome.tokens_out, outcome.repairs, outcome.cost)
    if outcome.value is None:
        return {**updated, "status": "failed", "error": outcome.error}
    rounds = [*sample["rounds"][:-1], {**last, "revised_answer": outcome.value}]
    return {**updated, "rounds": rounds, "answer": outcome.value}  # type: ignore[typeddict-item]

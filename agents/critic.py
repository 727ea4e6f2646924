"""critic: strengths, weaknesses, suggestions and a 1–10 score for each answer still in the loop."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.each_sample import each_active_sample, request_scope
from agents.model_call import ask
from condor_state.context import Context
from condor_state.state import BatchState, Round, Sample, revisions, with_usage
from prompts.critique import build_messages, parse_critique


async def critic(state: BatchState, runtime: Runtime[Context]) -> dict[str, Any]:
    return await each_active_sample(state, runtime, _judge)


async def _judge(sample: Sample, state: BatchState, context: Context) -> Sample:
    """Record a round; the sample is done once satisfied or out of revisions, else it stays for the reviser."""
    if not _awaiting_critique(sample):
        return sample
    language = state["language"]
    messages = build_messages(sample["question"], sample["answer"] or "", language)
    outcome = await ask(context, "critic", messages, parse_critique, language, scope=request_scope(sample))
    updated = with_usage(sample, outcome.tokens_in, outcome.tokens_out, outcome.repairs, outcome.cost)
    verdict = outcome.value
    if verdict is None and revisions(sample):  # the revision stands; only its score is unknown
        return {**updated, "status": "done", "error": f"final score unknown: {outcome.error}"}
    if verdict is None:
        return {**updated, "status": "failed", "error": outcome.error}
    new_round = Round(
        round=len(sample["rounds"]) + 1,
        strengths=verdict.strengths,
        weaknesses=verdict.weaknesses,
        suggestions=verdict.suggestions,
        score=verdict.score,
        critique=outcome.raw,
        revised_answer=None,
    )
    finished = verdict.satisfied(context.threshold) or revisions(sample) >= context.max_rounds
    return {**updated, "rounds": [*sample["rounds"], new_round], "status": "done" if finished else "active"}


def _awaiting_critique(sample: Sample) -> bool:
    """True when the current answer has not been critiqued yet (no rounds, or the last one was revised)."""
    return not sample["rounds"] or bool(sample["rounds"][-1]["revised_answer"])

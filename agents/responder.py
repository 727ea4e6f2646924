"""responder: the first ("void") answer, with the question as a plain user turn."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.each_sample import each_active_sample, request_scope
from agents.model_call import ask
from condor_state.context import Context
from condor_state.state import BatchState, Sample, with_usage
from prompts.answer import build_messages, parse_answer


async def responder(state: BatchState, runtime: Runtime[Context]) -> dict[str, Any]:
    return await each_active_sample(state, runtime, _answer)


async def _answer(sample: Sample, state: BatchState, context: Context) -> Sample:
    if sample["answer"]:
        return sample
    messages = build_messages(sample["question"])
    outcome = await ask(
        context, "responder", messages, parse_answer, state["language"], formatted=False, scope=request_scope(sample)
    )
    updated = with_usage(sample, outcome.tokens_in, outcome.tokens_out, outcome.repairs, outcome.cost)
    if outcome.value is None:
        return {**updated, "status": "failed", "error": outcome.error}
    return {**updated, "void_answer": outcome.value, "answer": outcome.value}

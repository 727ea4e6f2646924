"""reviser: an improved answer from the latest critique, keeping strengths and fixing weaknesses."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from agents.model_call import ask
from condor_state.context import Context
from condor_state.state import BatchState, Sample, with_usage
from prompts.revision import build_messages, parse_revision


async def reviser(state: BatchState, runtime: Runtime[Context]) -> dict[str, Any]:
    samples = state.get("samples", [])
    context = runtime.context or Context()  # None when a caller (e.g. Studio) sends no context
    revised = await asyncio.gather(*(_revise(s, state, context) for s in samples))
    return {"samples": list(revised)}


async def _revise(sample: Sample, state: BatchState, context: Context) -> Sample:
    if sample["status"] != "active" or not sample["rounds"] or sample["rounds"][-1]["revised_answer"]:
        return sample
    last = sample["rounds"][-1]
    language = state["language"]
    messages = build_messages(
        sample["question"], sample["answer"] or "", last["strengths"], last["weaknesses"], last["suggestions"], language
    )
    outcome = await ask(context, "reviser", messages, parse_revision, language)
    updated = with_usage(sample, outcome.tokens_in, outcome.tokens_out, outcome.repairs)
    if outcome.value is None:
        return {**updated, "status": "failed", "error": outcome.error}
    rounds = [*sample["rounds"][:-1], {**last, "revised_answer": outcome.value}]
    return {**updated, "rounds": rounds, "answer": outcome.value}  # type: ignore[typeddict-item]

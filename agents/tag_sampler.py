"""tag_sampler: which tag path, task type and language this question-writer call is about."""

from __future__ import annotations

import random
from typing import Any

from langgraph.runtime import Runtime

from condor_state.context import Context
from condor_state.plan import plan_for
from condor_state.state import BatchState


async def tag_sampler(state: BatchState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Take call_index's entry of the seeded, balanced plan; pinned choices in the input win. A coroutine, like every
    node: LangGraph runs a plain function in a worker thread."""
    context = runtime.context or Context()
    index = state.get("call_index")
    if index is None:  # an interactive run (Studio) without a plan position
        index = random.randrange(10_000)  # small: the plan's language schedule is built up to the index
    entry = plan_for(context.tree, context.seed, context.languages, context.root_weights).entry(index)
    pinned = state.get("tag_path")
    if isinstance(pinned, str):
        pinned = [part.strip() for part in pinned.split(">") if part.strip()]
    return {
        "call_index": index,
        "tag_path": list(pinned or entry.tag_path),
        "task_type": state.get("task_type") or entry.task_type,
        "language": state.get("language") or entry.language,
        "samples": [],
    }

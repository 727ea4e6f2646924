"""What the per-sample nodes share: every active sample of the call is worked on at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.runtime import Runtime

from condor_state.context import Context
from condor_state.state import BatchState, Sample

Step = Callable[[Sample, BatchState, Context], Awaitable[Sample]]


async def each_active_sample(state: BatchState, runtime: Runtime[Context], step: Step) -> dict[str, Any]:
    """The node's update: `step` applied to every active sample concurrently; done and failed ones pass through."""
    context = runtime.context or Context()  # None when a caller (e.g. Studio) sends no context
    samples = state.get("samples", [])

    async def one(sample: Sample) -> Sample:
        return await step(sample, state, context) if sample["status"] == "active" else sample

    return {"samples": list(await asyncio.gather(*(one(s) for s in samples)))}


def request_scope(sample: Sample) -> str:
    """Names a sample's request within its thread: which sample, at which round (the role and attempt are added)."""
    return f"{sample['id']}/{len(sample['rounds'])}"

"""The Condor machine: tag_sampler → question_writer → responder → critic ⇄ reviser."""

from __future__ import annotations

from typing import Literal

from langgraph.graph import START, StateGraph

from agents.critic import critic
from agents.question_writer import question_writer
from agents.responder import responder
from agents.reviser import reviser
from agents.tag_sampler import tag_sampler
from condor_state.context import Context
from condor_state.state import BatchInput, BatchState


# The routers are coroutines, like the nodes: LangGraph runs a plain function in a worker thread, a hand-off per step.
async def after_critic(state: BatchState) -> Literal["reviser", "__end__"]:
    """Loop while any sample is unsatisfied with revisions left (the critic leaves exactly those active)."""
    return "reviser" if any(s["status"] == "active" for s in state.get("samples", [])) else "__end__"


def recursion_limit(context: Context) -> int:
    """Steps one call may take: four up to the first critique, then a revision and a critique per round."""
    return 4 + 2 * context.max_rounds + 2  # +2: a resumed thread re-runs the step it was killed in


async def after_question_writer(state: BatchState) -> Literal["responder", "__end__"]:
    return "responder" if any(s["status"] == "active" for s in state.get("samples", [])) else "__end__"


builder = StateGraph(BatchState, context_schema=Context, input_schema=BatchInput)
builder.add_node("tag_sampler", tag_sampler)
builder.add_node("question_writer", question_writer)
builder.add_node("responder", responder)
builder.add_node("critic", critic)
builder.add_node("reviser", reviser)

builder.add_edge(START, "tag_sampler")
builder.add_edge("tag_sampler", "question_writer")
builder.add_conditional_edges("question_writer", after_question_writer)
builder.add_edge("responder", "critic")
builder.add_conditional_edges("critic", after_critic)
builder.add_edge("reviser", "critic")

graph = builder.compile(name="condor")

"""One model call with its repair loop: the only way nodes talk to a model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from langchain_core.messages import AIMessage

from agents.models import ModelUnavailable, pool
from condor_state.context import Context
from prompts.markers import ParseError
from prompts.repair import TRUNCATED_REASON, repair_messages, truncation_messages

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """A parsed value, or the reason there is none; tokens, repairs and cost are counted either way."""

    value: T | None = None
    error: str | None = None
    raw: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    repairs: int = 0
    price: tuple[float, float] | None = None  # the role's, per million input and output tokens

    @property
    def cost(self) -> float | None:
        """The tokens of every attempt at the role's price; None when no price is given."""
        if self.price is None:
            return None
        return (self.tokens_in * self.price[0] + self.tokens_out * self.price[1]) / 1_000_000


async def ask(
    context: Context,
    role: str,
    messages: list[dict[str, str]],
    parse: Callable[[str], T],
    language: str,
    formatted: bool = True,
) -> Outcome[T]:
    """Call the role's model and parse its reply, re-asking up to context.max_repairs times.

    A re-ask says what was wrong: the format (or, for a plain turn, just the question) again, only the missing
    parts of a partly usable reply, or a length budget after a reply cut at the token limit.
    """
    outcome: Outcome[T] = Outcome(price=context.price_for(role))
    models = pool()
    try:
        model = await models.for_role(context, role)
    except ModelUnavailable as exc:
        outcome.error = f"{role}: {exc}"
        return outcome
    conversation = list(messages)
    reason = ""
    for attempt in range(context.max_repairs + 1):
        try:
            async with models.slot(context):
                reply = await model.ainvoke(conversation)
        except ModelUnavailable as exc:
            outcome.error = f"{role}: {exc}"
            return outcome
        except Exception as exc:  # left after the client's own retries, or an unreadable response body
            reason = f"request failed: {type(exc).__name__}: {str(exc)[:300]}"
            continue  # counts as an attempt; re-ask the same conversation
        if not isinstance(reply, AIMessage):  # a chat model always answers with one; a stand-in might not
            reply = AIMessage(content=reply.content)
        text = _text(reply)
        _count_tokens(outcome, reply, conversation, text)
        outcome.raw = text
        outcome.repairs = attempt
        if reply.response_metadata.get("finish_reason") == "length":
            reason = TRUNCATED_REASON
            conversation = [*messages, *truncation_messages(text, context.max_tokens, language, formatted)]
            continue
        try:
            outcome.value = parse(text)
            return outcome
        except ParseError as exc:
            reason = str(exc)
            conversation = [*messages, *repair_messages(text, exc, language, formatted)]
    outcome.error = f"{role}: {reason}" + (
        f" (after {context.max_repairs} repair attempts)" if context.max_repairs else ""
    )
    return outcome


def _text(reply: AIMessage) -> str:
    content = reply.content
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def _count_tokens(outcome: Outcome[T], reply: AIMessage, conversation: list[dict[str, str]], text: str) -> None:
    usage = reply.usage_metadata
    if usage:
        outcome.tokens_in += usage.get("input_tokens", 0)
        outcome.tokens_out += usage.get("output_tokens", 0)
    else:  # rough estimate when a server reports no usage
        outcome.tokens_in += sum(len(m["content"]) for m in conversation) // 4
        outcome.tokens_out += len(text) // 4

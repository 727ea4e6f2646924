"""One model call with its repair loop: the only way nodes talk to a model."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypedDict, TypeVar, cast

import orjson

from agents.models import ModelUnavailable, completion_of, pool
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


class Reply(TypedDict, total=False):
    """What one request gave, as plain data: the text with its usage and finish reason, or why there is none."""

    text: str
    usage: dict[str, int] | None
    finish_reason: str | None
    failed: str
    unavailable: str


class ReplyLog(Protocol):
    """Where a thread's replies are kept the moment they arrive: the run's checkpointer, beside the thread."""

    async def arecord_reply(self, thread_id: str, key: str, reply: str) -> None: ...


class ReplyNotKept(Exception):
    """A replay that asks no model reached a request with no kept reply: the thread stands just before it."""


class _NoLog:
    async def arecord_reply(self, thread_id: str, key: str, reply: str) -> None:
        return None


NO_LOG: ReplyLog = _NoLog()  # for a replay, which records nothing


@dataclass
class ThreadReplies:
    """The replies of the thread being run: recorded as they come, and those of an earlier, interrupted attempt at
    it (read once when it is resumed), given back instead of asking again. With `asks` False no model is asked:
    the first request without a kept reply raises ReplyNotKept."""

    log: ReplyLog
    thread_id: str
    recorded: dict[str, str] = field(default_factory=dict)
    asks: bool = True


# Set by the run engine around each thread it runs; None (Studio, a graph run by hand) records nothing.
thread_replies: ContextVar[ThreadReplies | None] = ContextVar("thread_replies", default=None)


async def ask(
    context: Context,
    role: str,
    messages: list[dict[str, str]],
    parse: Callable[[str], T],
    language: str,
    formatted: bool = True,
    scope: str = "",
) -> Outcome[T]:
    """Call the role's model and parse its reply, re-asking up to context.max_repairs times.

    A re-ask says what was wrong: the format (or, for a plain turn, just the question) again, only the missing
    parts of a partly usable reply, or a length budget after a reply cut at the token limit. `scope` names the
    request within its thread (the sample and its round), so a resumed step finds the replies it already had.
    """
    outcome: Outcome[T] = Outcome(price=context.price_for(role))
    conversation = list(messages)
    reason = ""
    for attempt in range(context.max_repairs + 1):
        reply = await _reply(context, role, conversation, f"{scope}/{role}/{attempt}")
        if "unavailable" in reply:
            outcome.error = f"{role}: {reply['unavailable']}"
            return outcome
        if "failed" in reply:  # left after the client's own retries, or an unreadable response body
            reason = reply["failed"]
            continue  # counts as an attempt; re-ask the same conversation
        text = reply.get("text", "")
        _count_tokens(outcome, reply, conversation, text)
        outcome.raw = text
        outcome.repairs = attempt
        if reply.get("finish_reason") == "length":
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


async def _reply(context: Context, role: str, conversation: list[dict[str, str]], key: str) -> Reply:
    """The reply to one request: the one recorded for it before an interruption, or the model's, recorded."""
    replies = thread_replies.get()
    if replies is None:
        return await _request(context, role, conversation)
    # the scope, role and attempt place the request; the digest of its last turn guards against a reply kept for
    # another conversation ever being given back
    key += "/" + hashlib.blake2b(conversation[-1]["content"].encode(), digest_size=12).hexdigest()
    if (kept := replies.recorded.pop(key, None)) is not None:
        return cast(Reply, orjson.loads(kept))
    if not replies.asks:
        raise ReplyNotKept(key)
    reply = await _request(context, role, conversation)
    if "unavailable" not in reply:  # a model that cannot be reached or loaded may be fixed before the resume
        await replies.log.arecord_reply(replies.thread_id, key, orjson.dumps(reply).decode())
        await asyncio.sleep(0)  # a commit queued on the loop by the write runs before this task's next request
    return reply


async def _request(context: Context, role: str, conversation: list[dict[str, str]]) -> Reply:
    models = pool()
    try:
        model = await models.for_role(context, role)
        complete = getattr(model, "acomplete", None)  # OpenAIChat's: plain data, LangChain's run only if heard
        async with models.slot(context):
            done = await complete(conversation) if complete else completion_of(await model.ainvoke(conversation))
    except ModelUnavailable as exc:
        return {"unavailable": str(exc)}
    except Exception as exc:  # left after the client's own retries, or an unreadable response body
        return {"failed": f"request failed: {type(exc).__name__}: {str(exc)[:300]}"}
    usage = done["usage"]
    tokens = (
        {"input_tokens": usage.get("input_tokens", 0), "output_tokens": usage.get("output_tokens", 0)}
        if usage
        else None
    )
    return {"text": done["text"], "usage": tokens, "finish_reason": done["finish_reason"]}


def _count_tokens(outcome: Outcome[T], reply: Reply, conversation: list[dict[str, str]], text: str) -> None:
    usage = reply.get("usage")
    if usage:
        outcome.tokens_in += usage.get("input_tokens", 0)
        outcome.tokens_out += usage.get("output_tokens", 0)
    else:  # rough estimate when a server reports no usage
        outcome.tokens_in += sum(len(m["content"]) for m in conversation) // 4
        outcome.tokens_out += len(text) // 4

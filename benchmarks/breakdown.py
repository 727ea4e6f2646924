"""Where a sample's CPU goes: the model client stack alone, and the engine with the client taken out.

Run by benchmarks.bench in fresh processes, so imports and caches do not leak between figures:
  python -m benchmarks.breakdown client BASE_URL REQUESTS CONCURRENCY  -> CPU seconds of REQUESTS served-model calls
  python -m benchmarks.breakdown engine OUT SAMPLES                   -> CPU seconds of run_job with instant replies
  python -m benchmarks.breakdown engine-chat OUT SAMPLES              -> the same, the instant model an OpenAIChat
                                                                         (what the client costs around the request)
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any, cast

import orjson

import agents.models
from agents.models import Completion, close_pool, pool
from agents.openai_chat import OpenAIChat
from benchmarks.openai_stub import reply_for
from condor_state.context import Context
from graphs.runner import run_job, run_loop
from prompts.critique import build_messages


async def client(base_url: str, requests: int, concurrency: int) -> float:
    """The factory's critic model from the event loop's pool (its HTTP connections, retries) sending a critic
    prompt, as the engine would."""
    context = Context(base_url=base_url, concurrency=concurrency)
    model = cast(OpenAIChat, await pool().for_role(context, "critic"))
    messages = build_messages("What limits the speed of sound in air?", "Temperature, mostly. " * 40, "en")
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await model.acomplete(messages)

    await asyncio.gather(*(one() for _ in range(concurrency)))  # connections open, lazy imports done
    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    spent = time.process_time() - started
    await close_pool()
    return spent


class InstantModel:
    """Replies at once, in process, with what the stub server would send: no client stack at all."""

    async def acomplete(self, conversation: list[dict[str, str]]) -> Completion:
        return {
            "text": reply_for(conversation),
            "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
            "finish_reason": "stop",
            "model_name": "instant",
        }


class InstantChat(OpenAIChat):
    """OpenAIChat with its HTTP exchange replaced by the stub's decoded reply: what a served call costs in Condor's
    client around the request (the body, reading the completion; LangChain's run when anyone listens)."""

    async def _apost(self, data: bytes) -> dict[str, Any]:
        reply = reply_for(orjson.loads(data)["messages"])
        return {
            "model": "instant",
            "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


async def bare(base_url: str, requests: int, concurrency: int) -> float:
    """A bare aiohttp client posting the same critic prompt and reading the reply: the floor of client CPU."""
    import aiohttp

    messages = build_messages("What limits the speed of sound in air?", "Temperature, mostly. " * 40, "en")
    body = {"model": "default", "messages": messages, "max_tokens": 4096, "temperature": 0.7}
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with gate, session.post(base_url + "/chat/completions", json=body) as reply:
                await reply.read()

        await asyncio.gather(*(one() for _ in range(concurrency)))
        started = time.process_time()
        await asyncio.gather(*(one() for _ in range(requests)))
        return time.process_time() - started


async def engine(out: Path, samples: int, chat: bool = False) -> float:
    """run_job as graphs.run runs it (graph, prompts, parsing, checkpoints, storage), the model call instant."""
    instant: Any = InstantChat(base_url="http://127.0.0.1:9/v1", model="instant") if chat else InstantModel()

    def instant_model(context: Context, role: str, shared: agents.models.ModelPool | None = None) -> Any:
        return instant

    agents.models.chat_model = instant_model  # what the pool builds each role's model with
    started = time.process_time()
    await run_job(out, samples, Context(base_url="http://127.0.0.1:9/v1", concurrency=16))
    return time.process_time() - started


def main() -> None:
    gc.freeze()  # as graphs.run does after its imports
    what, *args = sys.argv[1:]
    if what == "client":  # on the engine's loop, as a run calls its model
        seconds = run_loop(client(args[0], int(args[1]), int(args[2])))
    elif what == "bare":  # a bare client as commonly written: asyncio's own loop
        seconds = asyncio.run(bare(args[0], int(args[1]), int(args[2])))
    else:
        seconds = run_loop(engine(Path(args[0]), int(args[1]), chat=what == "engine-chat"))
    print(f"{seconds:.4f}")


if __name__ == "__main__":
    main()

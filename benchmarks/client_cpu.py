"""Client CPU per request at an instant server: a bare aiohttp client, OpenAIChat and ChatOpenAI, from one run.

The stub runs in its own process on 127.0.0.1 (its CPU is not charged here); this process's CPU
(time.process_time) is summed over rounds that interleave the three clients (a, b, c, a, b, c, …), so drift in
machine speed hits all three alike. Imports, connection set-up and lazy initialisation are done before measuring.
Run: .venv/bin/python -m benchmarks.client_cpu [--requests 2000] [--concurrency 16] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from agents.openai_chat import OpenAIChat
from prompts.critique import build_messages

ROOT = Path(__file__).resolve().parent.parent
STUB_MODULE = "benchmarks.openai_stub"
LEAN = "b. OpenAIChat.acomplete (the engine's call)"
# the engine's served-model settings (condor_state.context defaults: temperature 0.7, seed 0, timeout 300, 6 retries)
SETTINGS: dict[str, Any] = {"model": "stub", "temperature": 0.7, "max_tokens": 1024, "seed": 0}
MESSAGES = build_messages("What limits the speed of sound in air?", "Temperature, mostly. " * 40, "en")

Call = Callable[[], Awaitable[Any]]


class Stub:
    """The stub server in its own process, answering at once (latency 0)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", STUB_MODULE, "--port", "0", "--latency", "0"],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


async def batch(call: Call, requests: int, concurrency: int) -> None:
    """`requests` calls with at most `concurrency` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one() for _ in range(requests)))


async def clients(base_url: str, session: aiohttp.ClientSession) -> tuple[dict[str, Call], list[Any]]:
    """The three clients, each with its own connection pool; and what must be closed afterwards."""
    from langchain_openai import ChatOpenAI
    from openai import DefaultAioHttpClient

    url = base_url + "/chat/completions"
    body = {**SETTINGS, "messages": MESSAGES}

    async def bare() -> None:
        async with session.post(url, json=body) as reply:
            await reply.read()

    lean_session = aiohttp.ClientSession()
    lean = OpenAIChat(base_url=base_url, api_key="not-needed", timeout=300, max_retries=6, session=lean_session,
                      **SETTINGS)  # fmt: skip
    http = DefaultAioHttpClient()
    sdk = ChatOpenAI(
        base_url=base_url,
        model=SETTINGS["model"],
        api_key="not-needed",
        temperature=SETTINGS["temperature"],
        max_completion_tokens=SETTINGS["max_tokens"],
        seed=SETTINGS["seed"],
        timeout=300,
        max_retries=6,
        http_async_client=http,
    )
    calls: dict[str, Call] = {
        "a. bare aiohttp (post JSON, read body)": bare,
        LEAN: lambda: lean.acomplete(MESSAGES),
        "c. ChatOpenAI.ainvoke (openai SDK, aiohttp)": lambda: sdk.ainvoke(MESSAGES),
    }
    return calls, [lean_session, http]


async def measure(base_url: str, requests: int, concurrency: int, rounds: int, profile_requests: int) -> None:
    async with aiohttp.ClientSession() as session:
        calls, closers = await clients(base_url, session)
        try:
            reply = await calls[LEAN]()
            check = await calls["c. ChatOpenAI.ainvoke (openai SDK, aiohttp)"]()
            assert (
                reply["text"] == check.content
                and reply["usage"]["total_tokens"] == check.usage_metadata["total_tokens"]
            ), "OpenAIChat and ChatOpenAI disagree on the same reply"
            for call in calls.values():  # warm-up: connections open, lazy imports and caches filled
                await batch(call, max(200, concurrency * 8), concurrency)
            spent = dict.fromkeys(calls, 0.0)
            per_round = max(1, requests // rounds)
            for _ in range(rounds):
                for name, call in calls.items():
                    started = time.process_time()
                    await batch(call, per_round, concurrency)
                    spent[name] += time.process_time() - started
            done = per_round * rounds
            base = spent["a. bare aiohttp (post JSON, read body)"] / done
            print(f"# client CPU per request, instant stub in its own process ({done} requests per client, "
                  f"{concurrency} in flight, {rounds} interleaved rounds)")  # fmt: skip
            print(f"{'client':<46} {'ms/request':>10} {'x bare':>7}")
            for name, seconds in spent.items():
                print(f"{name:<46} {seconds / done * 1000:>10.3f} {seconds / done / base:>7.1f}")
            lean_ratio = spent[LEAN] / done / base
            verdict = "met" if lean_ratio <= 6 else "NOT met"
            print(f"goal: OpenAIChat <= 6 x bare aiohttp: {verdict} ({lean_ratio:.1f} x)", flush=True)

            profiler = cProfile.Profile(time.process_time)  # CPU time: waiting on the socket is not counted
            profiler.enable()
            await batch(calls[LEAN], profile_requests, concurrency)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs()
            stats.sort_stats("cumulative").print_stats(15)
            stats.sort_stats("tottime").print_stats(10)
            cumulative, own = (part.split("\n\n", 1)[-1].rstrip() for part in out.getvalue().split("\n\n\n")[:2])
            print(f"\n# cProfile (CPU clock) of OpenAIChat.acomplete, {profile_requests} requests; a coroutine counts "
                  "a call per resumption")  # fmt: skip
            print(f"## top 15 by cumulative time\n{cumulative}\n## top 10 by own time\n{own}")
        finally:
            for closer in closers:
                await (closer.close() if isinstance(closer, aiohttp.ClientSession) else closer.aclose())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per client")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile-requests", type=int, default=1000)
    args = parser.parse_args()
    stub = Stub()
    try:
        asyncio.run(measure(stub.base_url, args.requests, args.concurrency, args.rounds, args.profile_requests))
    finally:
        stub.close()


if __name__ == "__main__":
    main()

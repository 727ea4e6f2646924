"""A tiny OpenAI-compatible chat server on loopback that answers each Condor role in format, deterministically.

It stands in for a served model where the model's content does not matter (crash safety, concurrency, routing
through the real HTTP client); `--latency` simulates a slow server and `max_in_flight` is measured here.
Run: python -m tests.openai_stub --port 0 [--latency 0.05]  (prints the port it listens on).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import threading
import time
from typing import Any

from aiohttp import web


def reply_for(messages: list[dict[str, Any]]) -> str:
    """A well-formed reply for whichever role's prompt this is; first answers score 5, revised ones 9."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = messages[-1]["content"] if messages else ""
    digest = hashlib.sha256(user.encode()).hexdigest()[:8]
    if "[Easy][Question Start]" in system:
        return "\n".join(
            f"[{level}][Question Start]A {level.lower()} question about topic {digest}?[Question End]"
            for level in ("Easy", "Medium", "Hard")
        )
    if "[Strength Start]" in system:
        score = 9 if "(revised)" in user.split("[Score End]")[-1] else 5
        return (
            f"[Strength Start]1. Clear.[Strength End]\n[Weakness Start]1. Too short.[Weakness End]\n"
            f"[Suggestion Start]1. Add detail.[Suggestion End]\n[Score Start]{score}[Score End]"
        )
    if "[Tag Start]" in system:  # graphs.tree expand: four sub-tags, unique per path
        return "\n".join(f"[Tag Start]Topic {digest} {i}[Tag End]" for i in range(1, 5))
    if "[Improved Answer Start]" in system:
        return f"[Improved Answer Start]A longer, better answer {digest} (revised).[Improved Answer End]"
    return f"An answer {digest}."


FAULTS = ("429", "500", "timeout", "garbage", "truncated", "badjson")


class StubServer:
    """The server on its own asyncio loop in a background thread: latency is an `asyncio.sleep`, so thousands of
    requests can wait at once for little CPU, and the server is never what limits a benchmark."""

    def __init__(self, port: int = 0, latency: float = 0.0, faults: float = 0.0, hang: float = 5.0) -> None:
        self.latency = latency
        self.faults = faults  # share of requests answered with one of FAULTS
        self.hang = hang  # seconds a "timeout" fault stalls before answering
        self.rng = random.Random(0)
        self.fault_counts: dict[str, int] = {}
        self.first_request_at: float | None = None
        self.last_response_at: float | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/reset", self._reset)
        app.router.add_get("/{prefix:.*}models", self._models)
        app.router.add_post("/{prefix:.*}chat/completions", self._chat)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        self.loop.run_until_complete(site.start())
        self.server_address: tuple[str, int] = self.runner.addresses[0][:2]
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> StubServer:
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.loop.run_forever()

    def shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread:
            self.thread.join(timeout=10)

    def server_close(self) -> None:
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "max_in_flight": self.max_in_flight,
                "first_request_at": self.first_request_at,
                "last_response_at": self.last_response_at,
            }
        )

    async def _reset(self, _: web.Request) -> web.Response:
        self.requests = self.max_in_flight = 0
        self.first_request_at = self.last_response_at = None
        return web.json_response({})

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "condor"}]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        self.in_flight += 1
        self.requests += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.first_request_at is None:
            self.first_request_at = time.time()
        fault = self.rng.choice(FAULTS) if self.rng.random() < self.faults else None
        if fault:
            self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self._reply(body, fault)
        finally:
            self.in_flight -= 1
            self.last_response_at = time.time()

    async def _reply(self, body: dict[str, Any], fault: str | None) -> web.Response:
        content = reply_for(body.get("messages", []))
        finish_reason = "stop"
        if fault == "429":
            return web.json_response({"error": {"message": "rate limited"}}, status=429, headers={"Retry-After": "0.2"})
        if fault == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "timeout":
            await asyncio.sleep(self.hang)
        if fault == "badjson":
            return web.Response(body=b'{"id": "chatcmpl-stub", "choices": [', content_type="application/json")
        if fault == "garbage":
            content = "lorem ipsum [Question Sta dolor [Score] sit amet"
        if fault == "truncated":
            content, finish_reason = content[: len(content) // 2], "length"
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
        return web.json_response(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "stub"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": prompt_tokens + len(content) // 4,
                },
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--faults", type=float, default=0.0)
    args = parser.parse_args()
    server = StubServer(args.port, args.latency, args.faults)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

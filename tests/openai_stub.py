"""A tiny OpenAI-compatible chat server on loopback that answers each Condor role in format, deterministically.

It stands in for a served model where the model's content does not matter (crash safety, concurrency, routing
through the real HTTP client); `--latency` simulates a slow server and `max_in_flight` is measured here.
Run: python -m tests.openai_stub --port 0 [--latency 0.05]  (prints the port it listens on).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, latency: float = 0.0, faults: float = 0.0, hang: float = 5.0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.latency = latency
        self.faults = faults  # share of requests answered with one of FAULTS
        self.hang = hang  # seconds a "timeout" fault stalls before answering
        self.rng = random.Random(0)
        self.fault_counts: dict[str, int] = {}
        self.first_request_at: float | None = None
        self.last_response_at: float | None = None
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> StubServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


FAULTS = ("429", "500", "timeout", "garbage", "truncated", "badjson")


class Handler(BaseHTTPRequestHandler):
    server: StubServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle(self) -> None:
        # a client closing its keep-alive connection (run finished or killed) is not an error here
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(body).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) or was killed

    def do_GET(self) -> None:
        server = self.server
        if self.path == "/stats":
            with server.lock:
                stats = {
                    "requests": server.requests,
                    "max_in_flight": server.max_in_flight,
                    "first_request_at": server.first_request_at,
                    "last_response_at": server.last_response_at,
                }
            self._send(200, stats)
        elif self.path == "/reset":
            with server.lock:
                server.requests = server.max_in_flight = 0
                server.first_request_at = server.last_response_at = None
            self._send(200, {})
        elif self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "condor"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.requests += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            if server.first_request_at is None:
                server.first_request_at = time.time()
            fault = server.rng.choice(FAULTS) if server.rng.random() < server.faults else None
            if fault:
                server.fault_counts[fault] = server.fault_counts.get(fault, 0) + 1
        try:
            if server.latency:
                time.sleep(server.latency)
            content = reply_for(body.get("messages", []))
            finish_reason = "stop"
            if fault == "429":
                return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.2"})
            if fault == "500":
                return self._send(500, {"error": {"message": "internal error"}})
            if fault == "timeout":
                time.sleep(server.hang)
            if fault == "badjson":
                return self._send_raw(200, b'{"id": "chatcmpl-stub", "choices": [')
            if fault == "garbage":
                content = "lorem ipsum [Question Sta dolor [Score] sit amet"
            if fault == "truncated":
                content, finish_reason = content[: len(content) // 2], "length"
            prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
            self._send(
                200,
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(content) // 4,
                        "total_tokens": prompt_tokens + len(content) // 4,
                    },
                },
            )
        finally:
            with server.lock:
                server.in_flight -= 1
                server.last_response_at = time.time()


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

"""A tiny OpenAI-compatible chat server on loopback that answers each Condor role in format, deterministically.

It stands in for a served model where the model's content does not matter (crash safety, concurrency, routing
through the real HTTP client); `--latency` simulates a slow server and `max_in_flight` is measured here.
Run: python -m tests.openai_stub --port 0 [--latency 0.05]  (prints the port it listens on).
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
    if "[Improved Answer Start]" in system:
        return f"[Improved Answer Start]A longer, better answer {digest} (revised).[Improved Answer End]"
    return f"An answer {digest}."


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, latency: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.latency = latency
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


class Handler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
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
        try:
            if server.latency:
                time.sleep(server.latency)
            content = reply_for(body.get("messages", []))
            prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
            self._send(
                200,
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = StubServer(args.port, args.latency)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

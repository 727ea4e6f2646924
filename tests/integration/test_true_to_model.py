"""What a run stores is exactly what the model wrote, against a server that answers like real instruct models.

Real models (Qwen, Llama, DeepSeek-R1 distills) add preambles, reasoning blocks, markdown and full-width brackets
around the format's markers, and write bracketed words, code and `<think>` mentions inside their content. The
realistic stub records the exact content pieces of every reply it sends; these tests compare condor.db with them.
Real subprocess CLI, real SQLite, the stub on 127.0.0.1.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.openai_stub import TOPIC, StubServer
from tests.integration.conftest import run_cli
from tests.stub_requests import chat


@pytest.fixture
def realistic_stub() -> Iterator[StubServer]:
    server = StubServer(latency=0.005, realistic=True).start()
    yield server
    server.shutdown()
    server.server_close()


def run(out: Path, server: StubServer, samples: int) -> Any:
    return run_cli(
        "graphs.run", "--samples", str(samples), "--out", str(out), "--base-url", server.base_url, "--model", "stub",
        "--max-rounds", "2", "--max-repairs", "2",
    )  # fmt: skip


def table(out: Path, name: str, order: str) -> list[dict[str, Any]]:
    with sqlite3.connect(out / "condor.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"select * from {name} order by {order}")]


def topic_of(entry: dict[str, Any]) -> str:
    """The tag path a question-writer request asked about (its last `Topic:` line)."""
    user = next(m["content"] for m in entry["messages"] if m["role"] == "user")
    return TOPIC.findall(user)[-1].strip()


def first_user(entry: dict[str, Any]) -> str:
    return next(m["content"] for m in entry["messages"] if m["role"] == "user")


def test_the_server_records_each_reply_with_its_request_and_serves_it_at_sent(realistic_stub: StubServer) -> None:
    base = realistic_stub.base_url
    requests = [chat("question_writer", "Topic: Health > Sleep > Naps", False), [{"role": "user", "content": "Hi?"}]]
    contents = []
    for messages in requests:
        body = json.dumps({"model": "stub", "messages": messages}).encode()
        post = urllib.request.Request(f"{base}/chat/completions", body, {"Content-Type": "application/json"})
        reply = json.loads(urllib.request.urlopen(post, timeout=10).read())
        contents.append(reply["choices"][0]["message"]["content"])
    assert [s["raw"] for s in realistic_stub.sent] == contents
    assert [s["messages"] for s in realistic_stub.sent] == requests
    assert [s["role"] for s in realistic_stub.sent] == ["question_writer", "responder"]
    root = base.removesuffix("/v1")
    assert json.loads(urllib.request.urlopen(f"{root}/sent", timeout=10).read()) == realistic_stub.sent
    urllib.request.urlopen(f"{root}/reset", timeout=10).read()
    assert realistic_stub.sent == []


def test_the_canonical_stub_records_nothing_unless_asked(stub: StubServer) -> None:
    body = json.dumps({"model": "stub", "messages": [{"role": "user", "content": "Hi?"}]}).encode()
    post = urllib.request.Request(f"{stub.base_url}/chat/completions", body, {"Content-Type": "application/json"})
    assert json.loads(urllib.request.urlopen(post, timeout=10).read())["choices"][0]["message"]["content"]
    assert stub.sent == [] and stub.requests == 1


def test_a_run_against_realistic_replies_stores_exactly_what_the_server_sent(
    tmp_path: Path, realistic_stub: StubServer
) -> None:
    out = tmp_path / "run"
    result = run(out, realistic_stub, 30)
    assert result.returncode == 0, result.stderr[-3000:]
    sent = list(realistic_stub.sent)
    writer: dict[str, list[dict[str, str]]] = defaultdict(list)
    answers: dict[str, list[str]] = defaultdict(list)
    critiques: dict[str, dict[str, Any]] = {}
    improved: list[tuple[str, str]] = []  # (the reviser's request, the improved answer sent)
    for s in sent:
        if s["pieces"] is None:
            continue
        if s["role"] == "question_writer":
            writer[topic_of(s)].append(s["pieces"])
        elif s["role"] == "responder":
            answers[s["messages"][-1]["content"]].append(s["pieces"]["answer"])
        elif s["role"] == "critic":
            critiques[s["raw"]] = s["pieces"]
        elif s["role"] == "reviser":
            improved.append((first_user(s), s["pieces"]["improved_answer"]))
    samples = table(out, "samples", "position")
    rounds = defaultdict(list)
    for r in table(out, "rounds", "sample_id, round"):
        rounds[r["sample_id"]].append(r)
    assert len(samples) == 30
    for row in samples:
        where = f"{row['id']} ({row['language']}, {row['difficulty']})"
        if row["question"]:
            sent_questions = {p.get(row["difficulty"]) for p in writer[row["tag_path"]]}
            assert row["question"] in sent_questions, f"{where}: question {row['question']!r} vs {sent_questions}"
        if row["void_answer"]:
            assert row["void_answer"] in answers[row["question"]], f"{where}: void answer {row['void_answer']!r}"
        for r in rounds[row["id"]]:
            truth = critiques.get(r["critique"])
            assert truth is not None, f"{where} round {r['round']}: stored critique is not a reply that was sent"
            stored = {k: r[k] for k in ("strengths", "weaknesses", "suggestions", "score")}
            assert stored == truth, f"{where} round {r['round']}"
            if r["revised_answer"] is not None:
                sent_improved = [a for request, a in improved if row["question"] in request]
                assert r["revised_answer"] in sent_improved, f"{where} round {r['round']}: {r['revised_answer']!r}"
        if row["status"] == "done":
            revised = [r["revised_answer"] for r in rounds[row["id"]] if r["revised_answer"]]
            assert row["refined_answer"] == (revised[-1] if revised else row["void_answer"]), where
            assert row["first_score"] == rounds[row["id"]][0]["score"], where
            assert row["final_score"] == rounds[row["id"]][-1]["score"], where
        else:
            assert row["error"], f"{where}: failed without a reason"
    done = sum(row["status"] == "done" for row in samples)
    assert done >= 0.95 * len(samples), [row["error"] for row in samples if row["status"] != "done"]


def test_growing_samples_redoes_nothing(tmp_path: Path, realistic_stub: StubServer) -> None:
    out = tmp_path / "run"
    assert (first := run(out, realistic_stub, 4)).returncode == 0, first.stderr[-3000:]
    samples_before = {r["id"]: r for r in table(out, "samples", "position")}
    rounds_before = table(out, "rounds", "sample_id, round")
    writer_replies = {topic_of(s): s["pieces"] for s in realistic_stub.sent if s["role"] == "question_writer"}
    mark = len(realistic_stub.sent)

    assert (second := run(out, realistic_stub, 8)).returncode == 0, second.stderr[-3000:]
    samples_after = {r["id"]: r for r in table(out, "samples", "position")}
    assert len(samples_after) == 8
    assert {i: samples_after[i] for i in samples_before} == samples_before  # whole rows, every column
    assert [r for r in table(out, "rounds", "sample_id, round") if r["sample_id"] in samples_before] == rounds_before
    new_rows = [r for i, r in samples_after.items() if i not in samples_before]
    assert sorted((r["call_index"], r["difficulty"]) for r in new_rows) == sorted(
        [(1, "Medium"), (1, "Hard"), (2, "Easy"), (2, "Medium")]
    )
    requests = realistic_stub.sent[mark:]
    writer_topics = [topic_of(s) for s in requests if s["role"] == "question_writer" and not s["repair"]]
    call_2 = {r["tag_path"] for r in new_rows if r["call_index"] == 2}
    assert writer_topics == list(call_2)  # one question-writer request, for the new call only
    # call 1 finishes from the question-writer reply it was stored from in the first run
    call_1 = [r for r in new_rows if r["call_index"] == 1]
    for row in call_1:
        assert row["question"] == writer_replies[row["tag_path"]][row["difficulty"]]
    asked = [s["messages"][-1]["content"] for s in requests if s["role"] == "responder"]
    assert sorted(asked) == sorted(r["question"] for r in new_rows)  # each new sample asked once, no stored one
    assert not set(asked) & ({r["question"] for r in samples_before.values()} - {r["question"] for r in new_rows})


def test_shrinking_samples_below_what_is_stored_is_refused(tmp_path: Path, realistic_stub: StubServer) -> None:
    out = tmp_path / "run"
    assert (first := run(out, realistic_stub, 6)).returncode == 0, first.stderr[-3000:]

    def snapshot() -> tuple[list[str], bytes, int]:
        with sqlite3.connect(out / "condor.db") as conn:
            dump = list(conn.iterdump())
        conn.close()
        return dump, (out / "run.json").read_bytes(), realistic_stub.requests

    before = snapshot()
    refused = run(out, realistic_stub, 3)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr[-3000:]
    assert snapshot() == before

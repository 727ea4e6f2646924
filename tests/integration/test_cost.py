"""Cost through the real commands against the loopback stub server: every stored cost is the tokens the server
reported for that sample's own requests (and its share of its question-writer call) at each role's price; without
a price nothing about cost is shown and the columns stay NULL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from benchmarks.openai_stub import StubServer
from condor_state.context import cost_text
from tests.integration.conftest import run_cli

# the question writer and the responder at the shared --price, the critic at its flag, the reviser from the env
PRICES = {"question_writer": (0.15, 0.6), "responder": (0.15, 0.6), "critic": (3.0, 15.0), "reviser": (7.0, 21.0)}


@pytest.fixture
def recording() -> Iterator[StubServer]:
    """A stub server that keeps every request's messages and reply, so the test knows each request's usage."""
    server = StubServer(record=True).start()
    yield server
    server.shutdown()
    server.server_close()


def usage(request: dict[str, Any]) -> tuple[int, int]:
    """The tokens the stub reported for one request (its own rule: characters // 4)."""
    prompt = sum(len(str(m.get("content", ""))) for m in request["messages"]) // 4
    return prompt, len(request["raw"]) // 4


def priced(request: dict[str, Any]) -> float:
    tokens_in, tokens_out = usage(request)
    price_in, price_out = PRICES[request["role"]]
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql)]


def test_stored_costs_are_each_role_s_tokens_at_its_price(tmp_path: Path, recording: StubServer) -> None:
    out = tmp_path / "run"
    args = ["--samples", "5", "--out", str(out), "--base-url", recording.base_url, "--model", "stub"]
    result = run_cli("graphs.run", *args, "--price", "0.15/0.60", "--critic-price", "3/15", CONDOR_REVISER_PRICE="7/21")
    assert result.returncode == 0, result.stderr
    sent = recording.sent
    assert {r["role"] for r in sent} == set(PRICES) and not any(r["fault"] for r in sent)

    samples = rows(out / "condor.db", "SELECT * FROM samples ORDER BY position")
    assert len(samples) == 5 and all(s["status"] == "done" for s in samples)
    per_call: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        per_call.setdefault(s["call_index"], []).append(s)
    for call in per_call.values():  # calls of 3 and 2 samples: the writer's request is shared by those it kept
        (writer,) = [r for r in sent if r["role"] == "question_writer" and call[0]["question"] in r["raw"]]
        for s in call:
            own = [r for r in sent if r["role"] != "question_writer" and any(s["question"] in str(m["content"])
                                                                              for m in r["messages"])]  # fmt: skip
            assert sorted(r["role"] for r in own) == ["critic", "critic", "responder", "reviser"]
            shared_in, shared_out = (n // len(call) for n in usage(writer))
            assert s["tokens_in"] == sum(usage(r)[0] for r in own) + shared_in  # the requests are this sample's
            assert s["tokens_out"] == sum(usage(r)[1] for r in own) + shared_out
            assert s["cost"] == pytest.approx(sum(priced(r) for r in own) + priced(writer) / len(call), rel=1e-12)
    total = sum(s["cost"] for s in samples)
    assert total == pytest.approx(sum(priced(r) for r in sent), rel=1e-12)  # every request paid for, once

    (run,) = rows(out / "condor.db", "SELECT cost, typeof(cost) AS kind FROM runs")
    assert run["kind"] == "real" and run["cost"] == pytest.approx(total, rel=1e-12)
    per_thousand = cost_text(total * 1000 / 5)
    assert f"cost {cost_text(total)} ({per_thousand} per 1,000 done samples)" in result.stdout
    tokens = f"tokens {sum(s['tokens_in'] for s in samples)} in / {sum(s['tokens_out'] for s in samples)} out"
    assert f"{tokens}, cost {cost_text(total)} ({per_thousand} per 1,000 done samples)\n" in result.stderr  # progress

    assert run_cli("graphs.report", str(out)).returncode == 0
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    section = report[report.index("## Tokens") :]
    assert f"| all samples | {cost_text(total)} |" in section
    assert f"| per 1,000 done samples (all samples' cost ÷ done) | {per_thousand} |" in section
    assert "| critic | 3/15 |" in section and "| reviser | 7/21 |" in section and "| responder | 0.15/0.60 |" in section
    shown = run_cli("graphs.show", str(out))
    assert f"{cost_text(total)} ({per_thousand} per 1,000 done samples)" in shown.stdout


def test_without_a_price_nothing_about_cost_is_shown_and_it_stays_null(tmp_path: Path, recording: StubServer) -> None:
    out = tmp_path / "run"
    result = run_cli("graphs.run", "--samples", "3", "--out", str(out), "--base-url", recording.base_url)
    assert result.returncode == 0, result.stderr
    assert "cost" not in result.stdout + result.stderr
    samples = rows(out / "condor.db", "SELECT cost, tokens_in, tokens_out FROM samples")
    assert len(samples) == 3 and all(s["cost"] is None and s["tokens_in"] > 0 for s in samples)
    assert rows(out / "condor.db", "SELECT cost FROM runs") == [{"cost": None}]
    assert run_cli("graphs.report", str(out)).returncode == 0
    assert "cost" not in (out / "report" / "report.md").read_text(encoding="utf-8").lower()
    assert "cost" not in run_cli("graphs.show", str(out)).stdout


def test_a_malformed_price_is_one_line_before_any_work(tmp_path: Path) -> None:
    for flags in (["--price", "abc"], ["--price", "1/2", "--critic-price", "1/2/3"], ["--price=-1/2"]):
        result = run_cli("graphs.run", "--samples", "3", "--out", str(tmp_path / "run"), *flags)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("python -m graphs.run: error: --") and "must be" in result.stderr
    env = run_cli("graphs.run", "--samples", "3", "--out", str(tmp_path / "run"), CONDOR_PRICE="0.15")
    assert env.returncode == 2 and env.stderr.startswith("python -m graphs.run: error: CONDOR_PRICE must be IN/OUT")
    assert not (tmp_path / "run").exists()

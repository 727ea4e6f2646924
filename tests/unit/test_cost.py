"""Cost: prices per role as settings, each model call priced at its own role's price where it is counted, and the
cost stored per sample and per run (NULL without a price), shown only when a price was given."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from condor_state.context import ROLES, Context, SettingError, cost_text, data_settings, parse_price
from condor_state.dataset import SAMPLE_COLUMNS, Dataset
from condor_state.rundir import run_settings
from condor_state.state import BatchState, new_sample
from graphs.options import add_context_flags, context_from
from graphs.progress import LogReporter, RunSummary
from graphs.runner import run_row
from graphs.show import PlainView, main
from tests.unit.fake_chat import Script
from tests.unit.test_graph import run_batch

# FakeChatModel reports 10 input and 5 output tokens for every reply
PER_CALL_IN, PER_CALL_OUT = 10, 5
PRICES = {"question_writer": (1.0, 2.0), "responder": (10.0, 20.0), "critic": (100.0, 200.0), "reviser": (1e3, 2e3)}


def call_cost(role: str, calls: int = 1) -> float:
    price_in, price_out = PRICES[role]
    return calls * (PER_CALL_IN * price_in + PER_CALL_OUT * price_out) / 1_000_000


def priced_context(**settings: Any) -> Context:
    """The question writer at the shared price, every other role at its own (all different)."""
    own: dict[str, Any] = {f"{role}_price": "{:g}/{:g}".format(*PRICES[role]) for role in ROLES[1:]}
    return Context(price="{:g}/{:g}".format(*PRICES["question_writer"]), **own, **settings)


@pytest.mark.parametrize(
    ("text", "prices"),
    [("", None), ("0.15/0.60", (0.15, 0.6)), (" 3 / 15 ", (3.0, 15.0)), ("0/0", (0.0, 0.0)), ("1e-1/2", (0.1, 2.0))],
)
def test_a_price_is_input_slash_output_per_million_tokens(text: str, prices: tuple[float, float] | None) -> None:
    assert parse_price(text) == prices


@pytest.mark.parametrize("text", ["abc", "1/2/3", "0.15", "1/", "/2", "-1/2", "1/-0.5", "nan/1", "1/inf", "$1/$2"])
def test_a_malformed_or_negative_price_is_refused_in_one_line(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SettingError) as refused:
        Context(price="1/1", critic_price=text)
    assert refused.value.subject == "critic_price" and repr(text) in str(refused.value)
    parser = argparse.ArgumentParser()
    add_context_flags(parser)
    with pytest.raises(SystemExit) as stopped:
        context_from("prog", parser.parse_args([f"--price={text}"]))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("prog: error: --price must be ") and err.count("\n") == 1 and repr(text) in err


def test_a_price_from_the_environment_is_checked_and_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDOR_PRICE", "0.15/0.60")
    monkeypatch.setenv("CONDOR_CRITIC_PRICE", "3/15")
    context = Context()
    assert (context.price_for("responder"), context.price_for("critic")) == ((0.15, 0.6), (3.0, 15.0))
    monkeypatch.setenv("CONDOR_REVISER_PRICE", "cheap")
    with pytest.raises(SettingError, match=r"^CONDOR_REVISER_PRICE must be IN/OUT.*'cheap' \(the reviser_price set"):
        Context()


def test_a_role_s_own_price_overrides_the_shared_one_and_no_role_may_be_left_unpriced() -> None:
    context = Context(price="1/2", reviser_price="5/6")
    assert [context.price_for(role) for role in ROLES] == [(1.0, 2.0), (1.0, 2.0), (1.0, 2.0), (5.0, 6.0)]
    assert context.priced and not Context().priced
    with pytest.raises(SettingError, match=r"^price is needed for the question writer, responder and reviser too"):
        Context(critic_price="3/15")
    all_own: dict[str, Any] = {f"{role}_price": "1/1" for role in ROLES}
    assert Context(**all_own).priced


def test_prices_do_not_change_the_data_and_are_recorded_in_the_settings() -> None:
    assert not {"price", *(f"{role}_price" for role in ROLES)} & set(data_settings())
    record = run_settings(Context(price="0.15/0.60", critic_price="3/15"))
    assert (record["price"], record["critic_price"], record["responder_price"]) == ("0.15/0.60", "3/15", "")


def test_each_role_s_tokens_are_priced_at_that_role_s_price(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = run_batch(monkeypatch, priced_context(threshold=8, max_rounds=2))  # 1 answer, 2 critiques, 1 revision
    own = call_cost("responder") + call_cost("critic", 2) + call_cost("reviser")
    assert state["cost"] == pytest.approx(call_cost("question_writer"), rel=1e-12)
    assert [s["cost"] for s in state["samples"]] == pytest.approx([own] * 3, rel=1e-12)

    rows = Dataset.in_dir(tmp_path).write_batch(cast(BatchState, state))  # the writer's call shared by 3 samples
    assert [r["cost"] for r in rows] == pytest.approx([own + call_cost("question_writer") / 3] * 3, rel=1e-12)
    stored = sqlite3.connect(tmp_path / "condor.db").execute("SELECT sum(cost), typeof(cost) FROM samples").fetchone()
    assert stored == (pytest.approx(3 * own + call_cost("question_writer"), rel=1e-12), "real")


def test_every_attempt_of_a_re_asked_reply_is_priced(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(role: str, messages: list[dict[str, Any]]) -> str | None:
        first_try = not any(m["role"] == "assistant" for m in messages)
        return "It is fine." if role == "critic" and first_try else None

    quiet: Script = script
    state = run_batch(monkeypatch, priced_context(threshold=1, max_rounds=0), script=quiet, keep=1)
    (sample,) = state["samples"]
    assert sample["repairs"] == 1 and sample["status"] == "done"
    assert sample["cost"] == pytest.approx(call_cost("responder") + call_cost("critic", 2), rel=1e-12)


def test_without_a_price_cost_stays_null_and_a_zero_price_costs_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    unpriced = run_batch(monkeypatch, Context(), keep=2)
    assert unpriced["cost"] is None and [s["cost"] for s in unpriced["samples"]] == [None, None]
    assert all(s["tokens_in"] > 0 for s in unpriced["samples"])  # tokens are counted all the same
    free = run_batch(monkeypatch, Context(price="0/0"), keep=2)
    assert free["cost"] == 0.0 and [s["cost"] for s in free["samples"]] == [0.0, 0.0]
    dataset = Dataset.in_dir(tmp_path)
    assert [r["cost"] for r in dataset.write_batch(cast(BatchState, unpriced))] == [None, None]


def test_a_database_from_before_costs_gains_the_column_and_its_rows_stay_unpriced(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "condor.db")
    before = [column for column in SAMPLE_COLUMNS if column != "cost"]
    conn.execute(f"CREATE TABLE samples ({', '.join(before)}, PRIMARY KEY (id))")
    conn.execute("INSERT INTO samples (id, position, rounds, status) VALUES ('s0-0000000', 0, 0, 'done')")
    conn.execute("CREATE TABLE runs (started_at FLOAT, tokens_in INTEGER)")
    conn.commit()
    conn.close()
    show = io.StringIO()
    assert main([str(tmp_path), "--limit", "0"], PlainView(show)) == 0  # read-only: the old file as it is
    assert "cost" not in show.getvalue()

    dataset = Dataset.in_dir(tmp_path)
    dataset.record_run({"started_at": 1.0, "tokens_in": 5, "cost": None})  # no price: NULL, yet a number column
    dataset.record_run({"started_at": 2.0, "tokens_in": 5, "cost": 0.25})
    assert dataset.conn.execute("SELECT cost FROM samples").fetchall() == [(None,)]
    runs = dataset.conn.execute("SELECT cost, typeof(cost) FROM runs ORDER BY started_at").fetchall()
    assert runs == [(None, "null"), (0.25, "real")]
    assert dict(dataset.conn.execute("SELECT name, type FROM pragma_table_info('runs')").fetchall())["cost"] == "FLOAT"


def test_a_new_runs_table_types_cost_as_a_number_even_when_the_first_run_had_no_price(tmp_path: Path) -> None:
    dataset = Dataset.in_dir(tmp_path)
    dataset.record_run(run_row(RunSummary(samples=3), 0.0, {}))
    dataset.record_run(run_row(RunSummary(samples=3, cost=0.5), 0.0, {}))
    assert dataset.conn.execute("SELECT cost, typeof(cost) FROM runs").fetchall() == [(None, "null"), (0.5, "real")]


def test_the_summary_and_progress_show_cost_per_thousand_done_samples_only_with_a_price(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert not any("cost" in line for line in RunSummary(samples=3, done=3, tokens_in=9).lines())
    priced = RunSummary(samples=4, done=4, failed=1, tokens_in=9, tokens_out=3, cost=0.002)
    assert "tokens: 9 in / 3 out; cost 0.00200 (0.500 per 1,000 done samples)" in priced.lines()
    assert RunSummary(samples=1, failed=1, cost=0.0).cost_text() == "cost 0 (no done samples)"
    LogReporter().update(priced, in_flight=0)
    assert capsys.readouterr().err.endswith(", tokens 9 in / 3 out, cost 0.00200 (0.500 per 1,000 done samples)\n")
    LogReporter().update(RunSummary(samples=4, done=4, tokens_in=9, tokens_out=3), in_flight=0)
    assert capsys.readouterr().err.endswith(", tokens 9 in / 3 out\n")
    assert [cost_text(x) for x in (0.000123456, 0.5, 12.345, 12345.6)] == ["0.000123", "0.500", "12.35", "12,345.60"]


def test_show_gives_the_run_s_cost_and_each_sample_s(tmp_path: Path) -> None:
    sample = new_sample(0, 0, "Easy", "Why?") | {"status": "done", "answer": "Because.", "cost": 0.003}
    other = new_sample(0, 1, "Medium", "How?") | {"status": "failed", "error": "critic: no score", "cost": 0.001}
    batch = BatchState(call_index=0, tag_path=["A", "B"], task_type="View", language="en", samples=[sample, other])
    Dataset.in_dir(tmp_path).write_batch({**batch, "cost": 0.002})  # the writer's 0.002, 0.001 for each sample
    (tmp_path / "run.json").write_text(json.dumps({"seed": 0}))
    summary, story = io.StringIO(), io.StringIO()
    assert main([str(tmp_path)], PlainView(summary)) == 0
    assert "cost:" in summary.getvalue() and "0.00600 (6.00 per 1,000 done samples)" in summary.getvalue()
    assert main([str(tmp_path), "s0-0000000"], PlainView(story)) == 0
    assert "0.00400" in story.getvalue()

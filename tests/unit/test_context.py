"""Settings defined once: Context holds each default, range and environment name; everything else derives from it."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from condor_state.context import Context, SettingError, data_settings, defaults, options_table
from graphs.options import add_context_flags, context_from
from tests.conftest import ROOT


def test_the_readme_options_table_is_the_one_derived_from_context() -> None:
    assert options_table() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"threshold": 0}, "threshold must be between 1 and 10, not 0"),
        ({"max_rounds": -1}, "max_rounds must be between 0 and 50"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"temperature": float("nan")}, "temperature must be between 0 and 2"),
        ({"max_tokens": 8}, "max_tokens must be 0 (automatic) or at least 16"),
    ],
)
def test_out_of_range_settings_are_refused_by_context_itself(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Context(**settings)


def test_a_setting_left_at_its_default_takes_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDOR_GRAMMAR", "1")
    monkeypatch.setenv("CONDOR_MAX_RETRIES", "2")
    monkeypatch.setenv("CONDOR_CRITIC_MODEL", "judge")
    context = Context(base_url="http://127.0.0.1:9/v1", model="m")
    assert (context.grammar, context.max_retries, context.model_for("critic"), context.model_for("reviser")) == (
        True,
        2,
        "judge",
        "m",
    )
    monkeypatch.setenv("CONDOR_N_CTX", "lots")
    with pytest.raises(SettingError, match="CONDOR_N_CTX is 'lots', not a valid int"):
        Context()


def test_the_automatic_reply_budget_depends_on_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert Context().max_tokens == 384
    assert Context(base_url="http://127.0.0.1:9/v1").max_tokens == 4096
    assert Context(base_url="http://127.0.0.1:9/v1", max_tokens=700).max_tokens == 700


def test_cli_flags_are_derived_from_context_and_refuse_the_same_values(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_context_flags(parser)
    args = parser.parse_args(["--threshold", "9", "--grammar", "--base-url", "http://h/v1"])
    context = context_from("prog", args)
    assert (context.threshold, context.grammar, context.max_rounds) == (9, True, defaults()["max_rounds"])
    with pytest.raises(SystemExit) as stopped:
        context_from("prog", parser.parse_args(["--threshold", "11"]))
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "prog: error: --threshold must be between 1 and 10, not 11\n"


def test_the_settings_that_change_the_data_are_marked_in_context() -> None:
    assert {"seed", "threshold", "max_rounds", "tree", "temperature", "max_tokens", "grammar"} <= set(data_settings())
    assert not {"concurrency", "timeout", "rpm", "base_url", "max_retries"} & set(data_settings())

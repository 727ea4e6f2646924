"""The quality report and the export formats on a real run directory (loopback server + planted rows), through the
commands and the `datasets` library in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.openai_stub import StubServer
from condor_state.dataset import Dataset
from condor_state.state import BatchState, Round, new_sample
from graphs.export import main as export_main
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli

PNG = b"\x89PNG\r\n\x1a\n"
PLANTED_QUESTION = (
    "I bake twice a week in a 28 °C apartment and want my sourdough starter to peak reliably eight hours after "
    "feeding. Which flour, ratio and water temperature should I use, and why?"
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """9 stub samples, then a planted batch: an original (score 6), its near-duplicate, and a failed sample."""
    server = StubServer().start()
    try:
        out = tmp_path_factory.mktemp("report") / "run"
        result = run_cli("graphs.run", "--samples", "9", "--out", str(out), "--base-url", server.base_url)
        assert result.returncode == 0, result.stderr
    finally:
        server.shutdown()
        server.server_close()
    samples = []
    for k, question in enumerate([PLANTED_QUESTION, PLANTED_QUESTION.replace("twice", "three times")]):
        sample = new_sample(0, 9 + k, "Hard", question)
        sample.update({"void_answer": "first", "answer": "final", "status": "done", "repairs": 1, "tokens_in": 10})
        sample["tokens_out"] = 5
        sample["rounds"] = [Round(round=1, strengths="s", weaknesses="w", suggestions="g", score=6, critique="c",
                                  revised_answer=None)]  # fmt: skip
        samples.append(sample)
    failed = new_sample(0, 11, "Hard", "", error="question_writer: no Hard question in the reply")
    samples.append(failed)
    dataset = Dataset.in_dir(out)
    dataset.write_batch(
        BatchState(call_index=3, tag_path=["Food", "Baking"], task_type="View", language="en", samples=samples)
    )
    dataset.close()
    yield out


def load_with_datasets(builder: str, data_file: Path) -> dict:
    """Load through the `datasets` library in a clean, offline process; return rows and column names."""
    code = (
        "import json, sys\nfrom datasets import load_dataset\n"
        f"ds = load_dataset({builder!r}, data_files={str(data_file)!r}, split='train', cache_dir=sys.argv[1])\n"
        "print(json.dumps({'columns': ds.column_names, 'rows': ds.to_list()}))\n"
    )
    env = cli_env(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(data_file.parent / "hf"))
    result = subprocess.run(
        [sys.executable, "-c", code, str(data_file.parent / "hf-cache")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_report_on_a_real_run(run_dir: Path, tmp_path: Path) -> None:
    result = run_cli("graphs.report", str(run_dir))
    assert result.returncode == 0, result.stderr
    folder = run_dir / "report"
    report = (folder / "report.md").read_text()
    for name in ("coverage", "roots", "scores", "rounds", "gain", "format", "tokens"):
        png = folder / f"{name}.png"
        assert png.read_bytes().startswith(PNG) and png.stat().st_size > 5000, name
        assert f"]({name}.png)" in report
    for heading in ("## Coverage", "## Scores and refinement", "### Refine gain", "## Format compliance", "## Tokens"):
        assert heading in report
    assert "| samples | 12 |" in report
    assert "| done | 11 (91.7%) |" in report
    assert "| duplicate questions among done | 1 (9.1%) |" in report
    assert "| question-writer calls complying | 3 / 4 (75.0%) |" in report
    assert "| samples needing at least one repair | 2 (16.7%) |" in report
    assert "| question_writer | no Hard question in the reply | 1 |" in report
    assert "| mean critic score | 5.18 | 8.45 |" in report  # 9 stub samples 5 -> 9, two planted 6 -> 6
    assert "| improved | 9 (81.8%) |" in report
    assert "| score unknown | 0 | 0 |" in report and "Final score unknown" not in report
    assert "(0 of them copy an example;" in report  # the planted near-duplicate repeats a sample, not the prompt
    assert "| Given Material Processing | 0 | 0.0% |" in report  # unused task types show as gaps
    assert "| en | 8 / 49 " not in report and "/ 49 (" in report  # coverage against the bundled tree

    elsewhere = tmp_path / "elsewhere"
    assert run_cli("graphs.report", str(run_dir), "-o", str(elsewhere)).returncode == 0
    assert (elsewhere / "report.md").is_file() and (elsewhere / "scores.png").is_file()


def test_parquet_export_loads_with_datasets_and_has_a_card(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "data" / "sft.parquet"
    result = run_cli("graphs.export", str(run_dir), "--format", "parquet", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 10 samples" in result.stdout  # 11 done, the near-duplicate skipped
    data = load_with_datasets("parquet", out)
    assert {
        "messages",
        "id",
        "tag_path",
        "task_type",
        "difficulty",
        "language",
        "final_score",
        "status",
        "cost",
    } <= set(data["columns"])
    rows = data["rows"]
    assert len(rows) == 10 and {r["status"] for r in rows} == {"done"}
    assert {r["cost"] for r in rows} == {None}  # the run had no price
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
    assert rows[0]["messages"][1]["content"] == rows[0]["answer"] == rows[0]["refined_answer"]
    assert "s0-0000010" not in {r["id"] for r in rows}  # the planted near-duplicate

    card = (out.parent / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "    path: sft.parquet" in card
    assert "| written | 10 |" in card and "| done / failed | 11 / 1 |" in card
    assert "| duplicates skipped | 1 |" in card
    assert "| seed | 0 |" in card and "OpenAI-compatible endpoint http://127.0.0.1:" in card
    assert "| en | 49 | " in card and "| zh | 48 | " in card  # the bundled tree's statistics


def test_export_filters_status_score_and_duplicates(run_dir: Path, tmp_path: Path) -> None:
    def export(*args: str) -> list[dict]:  # in process: the command line itself is covered by the other tests
        out = tmp_path / "x.jsonl"
        assert export_main([str(run_dir), "--metadata", "-o", str(out), *args]) == 0
        return [json.loads(line) for line in out.read_text().splitlines()]

    assert len(export()) == 10
    kept = export("--keep-duplicates")
    assert len(kept) == 11 and "s0-0000010" in {r["metadata"]["id"] for r in kept}
    assert {r["metadata"]["final_score"] for r in export("--min-score", "8")} == {9}
    assert len(export("--min-score", "8")) == 9
    assert export("--status", "failed") == []  # JSONL needs an answer; the failed sample has none
    sharegpt = export("--format", "sharegpt", "--answers", "void", "--status", "all")
    assert len(sharegpt) == 10 and sharegpt[0]["conversations"][1]["from"] == "gpt"

    failed = tmp_path / "failed.parquet"
    assert export_main([str(run_dir), "--format", "parquet", "--status", "failed", "-o", str(failed)]) == 0
    rows = load_with_datasets("parquet", failed)["rows"]
    assert [(r["status"], r["messages"], r["error"]) for r in rows] == [
        ("failed", [], "question_writer: no Hard question in the reply")
    ]


def test_card_does_not_replace_a_foreign_readme(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my project\n")
    result = run_cli("graphs.export", str(run_dir), "-o", str(tmp_path / "sft.jsonl"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "README.md").read_text() == "# my project\n"
    card = (tmp_path / "sft.jsonl.README.md").read_text()
    assert 'load_dataset("json", data_files="sft.jsonl"' in card
    assert len(load_with_datasets("json", tmp_path / "sft.jsonl")["rows"]) == 10


def test_report_and_export_mistakes_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    def one_line(result: subprocess.CompletedProcess[str]) -> str:
        assert result.returncode != 0
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
        return result.stderr

    assert "has no condor.db" in one_line(run_cli("graphs.report", str(tmp_path / "nowhere")))
    (tmp_path / "file").write_text("x")
    assert "not a directory" in one_line(run_cli("graphs.report", str(run_dir), "-o", str(tmp_path / "file")))
    one_line(run_cli("graphs.report"))
    assert "Parquet" in one_line(run_cli("graphs.export", str(run_dir), "--format", "parquet", "-o", "-"))
    one_line(run_cli("graphs.export", str(run_dir), "--status", "maybe", "-o", str(tmp_path / "x.jsonl")))

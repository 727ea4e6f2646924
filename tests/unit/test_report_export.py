"""Export filters and the quality report on a condor.db written directly: no run, no server, no subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from condor_state.dataset import Dataset
from graphs.export import main as export_main
from graphs.export import parser as export_parser
from graphs.report import build_report
from prompts.questions import EXAMPLES


def stored(position: int, question: str, first: int | None, final: int | None, error: str | None = None) -> dict:
    """One done samples row as the run stores it; `error` is a note on a done sample (e.g. an unreadable critique)."""
    return {
        "id": f"t-{position:03d}", "position": position, "call_index": position // 3, "tag_path": "Food > Baking",
        "root": "Food", "task_type": "Domain QA", "difficulty": "Easy", "language": "en", "question": question,
        "void_answer": f"first answer {position}", "refined_answer": f"final answer {position}", "rounds": 1,
        "first_score": first, "final_score": final, "status": "done", "error": error, "repairs": 0,
        "tokens_in": 10, "tokens_out": 5, "created_at": 0.0,
    }  # fmt: skip


def db_only_run(tmp_path: Path, rows: list[dict]) -> Path:
    run = tmp_path / "db-only"
    run.mkdir()
    dataset = Dataset.in_dir(run)
    dataset.db.table("samples").insert_all(rows)
    dataset.close()
    return run


def exported_ids(run: Path, tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "out" / "x.jsonl"
    assert export_main([str(run), "--metadata", "-o", str(out), *args]) == 0
    return {json.loads(line)["metadata"]["id"] for line in out.read_text().splitlines()}


def test_min_score_reads_the_first_score_for_void_answers_and_the_final_score_for_refined_ones(
    tmp_path: Path,
) -> None:
    run = db_only_run(
        tmp_path,
        [
            stored(0, "Which flour makes the crispest crust for a home pizza oven?", first=3, final=9),
            stored(1, "How long should a brioche dough rest in the fridge overnight?", first=9, final=3),
        ],
    )
    assert exported_ids(run, tmp_path, "--answers", "refine", "--min-score", "8") == {"t-000"}
    assert exported_ids(run, tmp_path, "--answers", "void", "--min-score", "8") == {"t-001"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| below --min-score 8 (critic score of the first answer) or without that score | 1 |" in card
    assert exported_ids(run, tmp_path, "--answers", "void") == {"t-000", "t-001"}
    assert "| minimum critic score of the first answer | none |" in (tmp_path / "out" / "README.md").read_text()
    usage = " ".join(export_parser().format_help().split())
    assert "the first score with --answers void, the final score with --answers refine" in usage


def test_a_done_sample_with_an_unknown_final_score_is_dropped_by_min_score_and_not_averaged_as_zero(
    tmp_path: Path,
) -> None:
    note = "critic: the final critique could not be read after the revision"
    run = db_only_run(
        tmp_path,
        [
            stored(0, "Which flour makes the crispest crust for a home pizza oven?", first=4, final=8),
            stored(1, "How long should a brioche dough rest in the fridge overnight?", first=6, final=None, error=note),
        ],
    )
    assert exported_ids(run, tmp_path) == {"t-000", "t-001"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| critic score of the final answer | 8.00 |" in card and "1 done rows have no final critic score" in card
    assert exported_ids(run, tmp_path, "--min-score", "0") == {"t-000"}  # unknown is not at least 0
    assert exported_ids(run, tmp_path, "--answers", "void", "--min-score", "5") == {"t-001"}  # its first score is 6

    report = build_report(run, tmp_path / "report").read_text()
    assert "| mean critic score | 5.00 | 8.00 |" in report  # 8 alone, not (8 + 0) / 2
    assert "| score unknown | 0 | 1 |" in report
    assert "Final score unknown for 1 done samples (50.0%)" in report
    assert "| critic | the final critique could not be read after the revision | 1 |" in report
    assert "| question-writer calls complying | 1 / 1 (100.0%) |" in report  # a done sample's note is no failure
    assert "No failed samples." in report


def test_questions_copying_the_prompts_examples_are_marked_with_the_example_id_and_not_exported(
    tmp_path: Path,
) -> None:
    easy = EXAMPLES["en"][0][2]
    run = db_only_run(
        tmp_path,
        [
            stored(0, easy, first=7, final=9),  # the prompt's own example, word for word
            stored(1, easy.replace("kitchen counter", "counter"), first=7, final=9),  # a tiny edit
            stored(2, "Which flour makes the crispest crust for a home pizza oven?", first=7, final=9),
        ],
    )
    assert exported_ids(run, tmp_path) == {"t-002"}
    dataset = Dataset.in_dir(run)
    marks = {r["id"]: r["duplicate_of"] for r in dataset.samples()}
    dataset.close()
    assert marks == {"t-000": "example:en:1:Easy", "t-001": "example:en:1:Easy", "t-002": None}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "one of the question-writer prompt's few-shot examples) | 2 |" in card
    assert "| duplicates skipped | 2 |" in card
    assert exported_ids(run, tmp_path, "--keep-duplicates") == {"t-000", "t-001", "t-002"}

    report = build_report(run, tmp_path / "report").read_text()
    assert "(2 of them copy an example;" in report
    assert f"| t-000 | {easy} | example:en:1:Easy | {easy} |" in report

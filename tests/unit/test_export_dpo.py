"""Preference export (--format dpo) and the report's pair counts on hand-built run directories: which answers pair,
which score judges which answer, the Parquet twin of the JSONL, the card, and the options refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from condor_state.dataset import Dataset
from condor_state.state import BatchState, Round, Sample, new_sample
from graphs.export import main as export_main
from graphs.markdown import sample_pairs
from graphs.report import build_report

SEED = 7
QUESTIONS = [
    "Which flour makes the crispest crust for a pizza baked in a home oven at 250 degrees?",
    "How long should brioche dough rest in the fridge before shaping it the next morning?",
    "Why does my sourdough starter smell like nail polish remover after a week away?",
    "What is the safest way to temper dark chocolate without a thermometer at home?",
    "Can I replace eggs with aquafaba in a lemon meringue pie, and what changes?",
    "How do I stop a cheesecake from cracking while it cools on the counter?",
    "Which sugar keeps chewy cookies soft for several days in a tin?",
    "Why do my macarons come out hollow even though the feet look right?",
]


def sample(position: int, scores: list[int], revisions: list[str], status: str = "done") -> Sample:
    """A sample whose round r has scores[r-1] and, while there is one, revisions[r-1] as its revised answer.

    Round 1 scores the first answer `first {position}`; a revision is scored by the round after it, so a sample
    with as many revisions as rounds ends with its last revision unscored (its final score unknown).
    """
    made = new_sample(SEED, position, "Medium", QUESTIONS[position])
    rounds = [
        Round(round=n, strengths="s", weaknesses="w", suggestions="g", score=score, critique=f"[Score Start]{score}",
              revised_answer=revisions[n - 1] if n <= len(revisions) else None)
        for n, score in enumerate(scores, start=1)
    ]  # fmt: skip
    made["void_answer"] = f"first {position}"
    made["answer"] = revisions[-1] if revisions else made["void_answer"]
    made["rounds"] = rounds
    made["status"] = "done" if status == "done" else "failed"
    if len(revisions) == len(scores) and status == "done":
        made["error"] = "final score unknown: critic: no score in the reply"
    return made


def run_of(tmp_path: Path, samples: list[Sample]) -> Path:
    """A run directory holding only condor.db, written the way a run writes a finished call."""
    run = tmp_path / "run"
    run.mkdir(parents=True, exist_ok=True)
    dataset = Dataset.in_dir(run)
    batch = BatchState(call_index=0, tag_path=["Food", "Baking"], task_type="Domain QA", language="en")
    dataset.write_batch({**batch, "samples": samples})
    dataset.close()
    return run


def pairs(run: Path, tmp_path: Path, *args: str, name: str = "pairs.jsonl") -> list[dict[str, Any]]:
    out = tmp_path / "out" / name
    assert export_main([str(run), "--format", "dpo", "-o", str(out), *args]) == 0
    if name.endswith(".parquet"):
        rows: list[dict[str, Any]] = pq.read_table(out).to_pylist()
        return rows
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, int, int]]:
    """(sample id, chosen, rejected, rejected score, chosen score) of each pair, from its metadata."""
    return [
        (
            r["metadata"]["id"],
            r["chosen"][0]["content"],
            r["rejected"][0]["content"],
            r["metadata"]["rejected_score"],
            r["metadata"]["chosen_score"],
        )
        for r in rows
    ]


def margins(markdown: str) -> str:
    """The margin table that follows its caption in a card or a report."""
    return markdown.split("Margin (chosen − rejected critic score):\n\n", 1)[1].split("\n\n", 1)[0]


@pytest.fixture
def final_run(tmp_path: Path) -> Path:
    return run_of(
        tmp_path,
        [
            sample(0, [4, 8], ["revised 0"]),  # a pair: 4 -> 8
            sample(1, [9], []),  # accepted at once: no revision, never a pair
            sample(2, [7, 5], ["revised 2"]),  # revised, but the final score fell
            sample(3, [6, 6], ["revised 3"]),  # revised, the final score no higher
            sample(4, [3], ["revised 4"]),  # revised, the final critique unreadable: final score unknown
            sample(5, [3, 9], ["first 5"]),  # the "revision" is the first answer again: chosen would equal rejected
            sample(6, [3], ["revised 6"], status="failed"),  # failed
            sample(7, [7, 8], ["revised 7"]),  # a pair at margin 1 only
        ],
    )


def test_the_final_answer_is_chosen_over_the_first_only_where_a_revision_raised_the_score_by_the_margin(
    final_run: Path, tmp_path: Path
) -> None:
    rows = pairs(final_run, tmp_path)
    assert rows == [
        {
            "prompt": [{"role": "user", "content": QUESTIONS[0]}],
            "chosen": [{"role": "assistant", "content": "revised 0"}],
            "rejected": [{"role": "assistant", "content": "first 0"}],
        },
        {
            "prompt": [{"role": "user", "content": QUESTIONS[7]}],
            "chosen": [{"role": "assistant", "content": "revised 7"}],
            "rejected": [{"role": "assistant", "content": "first 7"}],
        },
    ]
    assert summary(pairs(final_run, tmp_path, "--metadata")) == [
        ("s7-0000000", "revised 0", "first 0", 4, 8),
        ("s7-0000007", "revised 7", "first 7", 7, 8),
    ]
    assert summary(pairs(final_run, tmp_path, "--metadata", "--min-margin", "2")) == [
        ("s7-0000000", "revised 0", "first 0", 4, 8)
    ]
    assert pairs(final_run, tmp_path, "--min-margin", "5") == []


def test_consecutive_pairs_score_each_revision_by_the_next_rounds_critique(tmp_path: Path) -> None:
    run = run_of(
        tmp_path,
        [
            # answers first 0 (scored 4 by round 1), a1 (7 by round 2), a2 (6 by round 3): a1 beat first 0, a2 fell
            sample(0, [4, 7, 6], ["a1", "a2"]),
            # one revision: its consecutive pair is the final-over-first pair, written once
            sample(1, [5, 9], ["b1"]),
            # c2's critique unreadable: no final pair, c1 over first 2 (3 -> 8) still stands, c2 never pairs
            sample(2, [3, 8], ["c1", "c2"]),
            # d1 no better than the first answer (5 -> 5), d2 much better than d1 (5 -> 9)
            sample(3, [5, 5, 9], ["d1", "d2"]),
        ],
    )
    rows = pairs(run, tmp_path, "--metadata", "--pairs", "consecutive")
    got = [
        (
            r["metadata"]["id"][-1],
            r["metadata"]["pairing"],
            r["metadata"]["rejected_revision"],
            r["metadata"]["chosen_revision"],
            r["rejected"][0]["content"],
            r["chosen"][0]["content"],
            r["metadata"]["rejected_score"],
            r["metadata"]["chosen_score"],
            r["metadata"]["margin"],
        )
        for r in rows
    ]
    assert got == [
        ("0", "final", 0, 2, "first 0", "a2", 4, 6, 2),
        ("0", "consecutive", 0, 1, "first 0", "a1", 4, 7, 3),
        ("1", "final", 0, 1, "first 1", "b1", 5, 9, 4),
        ("2", "consecutive", 0, 1, "first 2", "c1", 3, 8, 5),
        ("3", "final", 0, 2, "first 3", "d2", 5, 9, 4),
        ("3", "consecutive", 1, 2, "d1", "d2", 5, 9, 4),
    ]
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert [r["metadata"]["id"][-1] for r in pairs(run, tmp_path, "--metadata")] == ["0", "1", "3"]  # final only
    margin_3 = pairs(run, tmp_path, "--metadata", "--pairs", "consecutive", "--min-margin", "3")
    assert [(r["metadata"]["id"][-1], r["metadata"]["chosen_revision"]) for r in margin_3] == [
        ("0", 1), ("1", 1), ("2", 1), ("3", 2), ("3", 2)
    ]  # fmt: skip


def test_duplicate_questions_are_skipped_unless_kept_and_metadata_names_the_sample(tmp_path: Path) -> None:
    twin = sample(1, [4, 9], ["revised 1"])
    twin["question"] = QUESTIONS[0]  # the same question again
    run = run_of(tmp_path, [sample(0, [4, 9], ["revised 0"]), twin])
    assert [r["metadata"]["id"] for r in pairs(run, tmp_path, "--metadata")] == ["s7-0000000"]
    kept = pairs(run, tmp_path, "--metadata", "--keep-duplicates")
    assert [r["metadata"]["id"] for r in kept] == ["s7-0000000", "s7-0000001"]
    assert kept[0]["metadata"] == {
        "id": "s7-0000000", "tag_path": "Food > Baking", "task_type": "Domain QA", "difficulty": "Medium",
        "language": "en", "pairing": "final", "rejected_revision": 0, "chosen_revision": 1, "rejected_score": 4,
        "chosen_score": 9, "margin": 5,
    }  # fmt: skip
    assert set(pairs(run, tmp_path)[0]) == {"prompt", "chosen", "rejected"}


def test_a_parquet_file_holds_the_same_rows_as_the_jsonl(tmp_path: Path) -> None:
    run = run_of(tmp_path, [sample(0, [4, 7, 6], ["a1", "a2"]), sample(1, [5, 9], ["b1"]), sample(2, [9], [])])
    for args, count in ((("--metadata", "--pairs", "consecutive"), 3), ((), 2)):
        jsonl = pairs(run, tmp_path, *args)
        parquet = pairs(run, tmp_path, *args, name="pairs.parquet")
        assert len(jsonl) == count and parquet == jsonl
    schema = pq.read_schema(tmp_path / "out" / "pairs.parquet")
    assert schema.names == ["prompt", "chosen", "rejected"]
    assert str(schema.field("chosen").type) == "list<element: struct<role: string, content: string>>"
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "    path: pairs.parquet" in card and 'load_dataset("parquet", data_files="pairs.parquet"' in card


def test_the_card_counts_the_pairs_and_tabulates_their_margins(final_run: Path, tmp_path: Path) -> None:
    pairs(final_run, tmp_path)
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "pretty_name: Condor preference pairs" in card and "- dpo" in card
    assert "Pairing rule `--pairs final`: the final (refined) answer over the first (void) answer" in card
    assert "`--min-margin 1`" in card
    for line in (
        "| done samples selected (above) | 7 |",
        "| of them with at least one revision | 6 |",
        "| samples giving pairs | 2 |",
        "| pairs written | 2 |",
    ):
        assert line in card, line
    assert margins(card) == "| margin | pairs |\n| --- | --- |\n| 1 | 1 |\n| 4 | 1 |"
    assert "| minimum final critic score |" not in card  # pairs are filtered by margin, not by score

    run = run_of(tmp_path / "other", [sample(0, [4, 7, 6], ["a1", "a2"]), sample(1, [5, 9], ["b1"])])
    pairs(run, tmp_path, "--pairs", "consecutive")
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert margins(card).splitlines() == [
        "| margin | final over first | revision over the one before | all pairs |",
        "| --- | --- | --- | --- |",
        "| 2 | 1 | 0 | 1 |",
        "| 3 | 0 | 1 | 1 |",
        "| 4 | 1 | 0 | 1 |",
    ]
    assert "| pairs: a revision over the answer before it (other than final over first) | 1 |" in card


def test_pairs_go_to_standard_output_without_a_card(
    final_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert export_main([str(final_run), "--format", "dpo", "-o", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["chosen"][0]["content"] for line in lines] == ["revised 0", "revised 7"]
    assert not (tmp_path / "README.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--format", "dpo", "--status", "all"), "--status all does not apply to --format dpo"),
        (("--format", "dpo", "--answers", "void"), "--answers does not apply to --format dpo"),
        (("--format", "dpo", "--min-score", "8"), "--min-score does not apply to --format dpo"),
        (("--format", "dpo", "--min-margin", "0"), "--min-margin must be at least 1"),
        (("--pairs", "consecutive"), "--pairs applies only to --format dpo"),
        (("--format", "parquet", "--min-margin", "2"), "--min-margin applies only to --format dpo"),
    ],
)
def test_options_that_make_no_sense_for_the_format_are_refused_in_one_line(
    final_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "x.jsonl"
    with pytest.raises(SystemExit) as exit_:
        export_main([str(final_run), "-o", str(out), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_the_report_counts_the_pairs_a_run_yields_at_margin_one(tmp_path: Path) -> None:
    run = run_of(
        tmp_path,
        [
            sample(0, [4, 7, 6], ["a1", "a2"]),  # final 4 -> 6 (margin 2); consecutive also a1 over first (3)
            sample(1, [5, 9], ["b1"]),  # final 5 -> 9 (4)
            sample(2, [7, 5], ["c1"]),  # fell: none
            sample(3, [9], []),  # no revision: none
        ],
    )
    report = build_report(run, tmp_path / "report").read_text(encoding="utf-8")
    section = report.split("## Preference pairs", 1)[1].split("\n## ", 1)[0]
    assert "from the 4 done samples that are not duplicates (3 of them revised at least once)" in section
    assert "| final answer over first (`--pairs final`) | 2 | 2 |" in section
    assert "| also each revision over the one before (`--pairs consecutive`) | 3 | 2 |" in section
    assert margins(section).splitlines() == [
        "| margin | `--pairs final` | `--pairs consecutive` |",
        "| --- | --- | --- |",
        "| 2 | 1 | 1 |",
        "| 3 | 0 | 1 |",
        "| 4 | 1 | 1 |",
    ]


def test_rows_that_say_no_revision_was_made_or_that_failed_never_pair_whatever_their_scores(tmp_path: Path) -> None:
    """Rows written by hand or by another tool: the revision count and the status decide, not the columns' look."""
    row = {
        "id": "hand-0", "question": QUESTIONS[0], "void_answer": "first", "refined_answer": "better", "rounds": 1,
        "first_score": 3, "final_score": 9, "status": "done", "tag_path": "Food > Baking", "task_type": "Domain QA",
        "difficulty": "Easy", "language": "en",
    }  # fmt: skip
    assert [(p.rejected, p.chosen, p.margin) for p in sample_pairs(row, [])] == [("first", "better", 6)]
    assert sample_pairs({**row, "rounds": 0}, []) == []
    assert sample_pairs({**row, "status": "failed"}, []) == []
    run = tmp_path / "hand"
    run.mkdir()
    dataset = Dataset.in_dir(run)
    dataset.db.table("samples").insert_all([{**row, "position": 0, "rounds": 0}, {**row, "id": "hand-1", "position": 1,
                                            "question": QUESTIONS[1]}])  # fmt: skip
    dataset.close()
    assert [r["metadata"]["id"] for r in pairs(run, tmp_path, "--metadata")] == ["hand-1"]

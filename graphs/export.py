"""`python -m graphs.export DIR --format messages|sharegpt|parquet -o FILE`: SFT-ready data and its dataset card.

Duplicates are marked first (condor_state.dedup.mark_duplicates) so export works on any run directory, old or
new, and skips repeated questions (including copies of the question-writer prompt's few-shot examples) unless
--keep-duplicates. --min-score filters on the critic score of the answer being exported: the first score for
--answers void, the final score for --answers refine; an unknown score is never at least N. A dataset card
(README.md, in the Hugging Face format) is written next to the output file.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from condor_state.dataset import Dataset
from condor_state.dedup import THRESHOLD, mark_duplicates
from condor_state.rundir import read_settings
from graphs.markdown import TREE_HEADER, md_table, model_lines, run_tree, tree_stat_rows
from graphs.options import OneLineParser, fail, run_dir_arg

PROG = "python -m graphs.export"
STATUSES = {"done": ["done"], "failed": ["failed"], "all": ["done", "failed"]}
CARD_MARK = "<!-- condor dataset card: written by python -m graphs.export, rewritten on every export here -->"
PARQUET_COLUMNS = (
    "id", "question", "answer", "void_answer", "refined_answer", "tag_path", "root", "task_type", "difficulty",
    "language", "rounds", "first_score", "final_score", "status", "error", "repairs", "tokens_in", "tokens_out",
    "duplicate_of",
)  # fmt: skip
METADATA = ("id", "tag_path", "task_type", "difficulty", "language", "rounds", "first_score", "final_score")


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Export a Condor run's samples for fine-tuning, with a dataset card.")
    p.add_argument("run_dir", help="run directory holding condor.db")
    p.add_argument(
        "--format",
        choices=("messages", "sharegpt", "parquet"),
        default="messages",
        help="OpenAI messages JSONL, ShareGPT JSONL, or Parquet (messages column plus every sample field)",
    )
    p.add_argument("--answers", choices=("refine", "void"), default="refine", help="refined (default) or first answers")
    p.add_argument("-o", "--output", required=True, help="file to write ('-' for standard output, JSONL only)")
    p.add_argument(
        "--min-score",
        type=int,
        default=None,
        help="keep samples whose exported answer's critic score is at least this: the first score with --answers "
        "void, the final score with --answers refine (a sample without that score is dropped)",
    )
    p.add_argument("--status", choices=tuple(STATUSES), default="done", help="which samples to export (default done)")
    p.add_argument("--keep-duplicates", action="store_true", help="also export questions marked as duplicates")
    p.add_argument(
        "--metadata", action="store_true", help="JSONL: add a 'metadata' object (id, tag path, task, scores)"
    )
    return p


def answer_of(row: dict[str, Any], answers: str) -> str | None:
    return row["refined_answer"] if answers == "refine" else row["void_answer"]


def score_column(answers: str) -> str:
    """The critic score that judged the exported answer: the first critique scored the void answer."""
    return "final_score" if answers == "refine" else "first_score"


def record(row: dict[str, Any], fmt: str, answers: str, metadata: bool) -> dict[str, Any] | None:
    answer = answer_of(row, answers)
    if not answer or not row["question"]:
        return None
    if fmt == "messages":
        out: dict[str, Any] = {
            "messages": [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": answer}]
        }
    else:
        out = {"conversations": [{"from": "human", "value": row["question"]}, {"from": "gpt", "value": answer}]}
    if metadata:
        out["metadata"] = {k: row[k] for k in METADATA}
    return out


def select(
    run_dir: Path,
    status: str = "done",
    min_score: int | None = None,
    keep_duplicates: bool = False,
    answers: str = "refine",
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows to export, in plan order, and the counts the dataset card reports.

    --min-score reads the score of the answer exported; a NULL score (unknown) is not at least N, so it is dropped.
    """
    column = score_column(answers)
    dataset = Dataset.in_dir(run_dir)
    try:
        duplicates = mark_duplicates(dataset)
        counts = {"samples": dataset.count(), "done": dataset.count("done"), "failed": dataset.count("failed")}
        rows = []
        skipped_duplicates = skipped_score = 0
        for row in dataset.samples(status=STATUSES[status]):
            if min_score is not None and (row[column] is None or row[column] < min_score):
                skipped_score += 1
            elif row.get("duplicate_of") and not keep_duplicates:
                skipped_duplicates += 1
            else:
                rows.append(row)
    finally:
        dataset.close()
    counts |= {"duplicates": duplicates, "skipped_duplicates": skipped_duplicates, "skipped_score": skipped_score}
    return rows, counts


def write_jsonl(rows: list[dict[str, Any]], fmt: str, answers: str, output: str, metadata: bool) -> int:
    lines = [json.dumps(item, ensure_ascii=False) for row in rows if (item := record(row, fmt, answers, metadata))]
    text = "\n".join(lines) + ("\n" if lines else "")
    if output == "-":
        print(text, end="")
    else:
        Path(output).write_text(text, encoding="utf-8")
    return len(lines)


def write_parquet(rows: list[dict[str, Any]], answers: str, output: str) -> int:
    """Every selected row; `messages` is the user/assistant pair, empty when the sample has no such answer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    ints = {"rounds", "first_score", "final_score", "repairs", "tokens_in", "tokens_out"}
    fields = [pa.field("messages", pa.list_(message))]
    fields += [pa.field(c, pa.int64() if c in ints else pa.string()) for c in PARQUET_COLUMNS]
    columns: dict[str, list[Any]] = {f.name: [] for f in fields}
    for row in rows:
        answer = answer_of(row, answers)
        columns["messages"].append(
            [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": answer}]
            if answer and row["question"]
            else []
        )
        for c in PARQUET_COLUMNS:
            columns[c].append(answer if c == "answer" else row.get(c))
    table = pa.Table.from_pydict(columns, schema=pa.schema(fields))
    pq.write_table(table, output)
    return table.num_rows


def export(
    run_dir: Path,
    fmt: str,
    answers: str,
    output: str,
    min_score: int | None = None,
    metadata: bool = False,
    status: str = "done",
    keep_duplicates: bool = False,
) -> int:
    """Write the selected samples (and, for a file, the dataset card next to it); returns how many were written."""
    rows, counts = select(run_dir, status, min_score, keep_duplicates, answers)
    if output != "-":
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        written = write_parquet(rows, answers, output)
    else:
        written = write_jsonl(rows, fmt, answers, output, metadata)
    if output != "-":
        options = {
            "format": fmt,
            "answers": answers,
            "status": status,
            "min_score": min_score,
            "keep_duplicates": keep_duplicates,
        }
        write_card(run_dir, Path(output), rows, counts | {"written": written}, options)
    return written


def card_path(output: Path) -> Path:
    """README.md next to the data, unless a README that export did not write is already there."""
    readme = output.parent / "README.md"
    if readme.exists() and CARD_MARK not in readme.read_text(encoding="utf-8", errors="replace"):
        return output.parent / f"{output.name}.README.md"
    return readme


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def write_card(
    run_dir: Path, output: Path, rows: list[dict[str, Any]], counts: dict[str, int], options: dict[str, Any]
) -> Path:
    """A Hugging Face dataset card: loading config, then settings, models, tree statistics and counts."""
    settings = read_settings(run_dir)
    tree = run_tree(settings)
    languages = sorted({r["language"] for r in rows if r["language"]})
    builder = "parquet" if options["format"] == "parquet" else "json"
    score_label = "critic score of the first answer" if options["answers"] == "void" else "final critic score"
    front = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {output.name}",
        "language:",
        *[f"- {lang}" for lang in languages or ["en"]],
        "task_categories:",
        "- text-generation",
        "tags:",
        "- sft",
        "- synthetic",
        "- condor",
        "size_categories:",
        f"- {size_category(counts['written'])}",
        "pretty_name: Condor SFT data",
        "---",
        CARD_MARK,
        "",
    ]
    md = [
        f"# Condor SFT data: `{output.name}`",
        "",
        "Supervised fine-tuning data synthesized with Condor (arXiv 2501.12273): questions written from a World "
        "Knowledge Tree tag, one of seven task types and three difficulties (Condor Void), answered, then critiqued "
        "and revised until the critic was satisfied or the round limit was reached (Condor Refine, multi-round).",
        "",
        "## Files",
        "",
        md_table(
            ["file", "format", "answers", "rows"],
            [[output.name, options["format"], _answers_label(options["answers"]), counts["written"]]],
        ),
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{builder}", data_files="{output.name}", split="train")',
        "```",
        "",
        "## Selection and counts",
        "",
        md_table(
            ["", "samples"],
            [
                ["in the run's condor.db", counts["samples"]],
                ["done / failed", f"{counts['done']} / {counts['failed']}"],
                [
                    f"duplicate questions among done (Jaccard ≥ {THRESHOLD}; an earlier question or one of the "
                    "question-writer prompt's few-shot examples)",
                    counts["duplicates"],
                ],
                [f"status filter: {options['status']}", ""],
                [
                    f"below --min-score {options['min_score']} ({score_label}) or without that score",
                    counts["skipped_score"],
                ]
                if options["min_score"] is not None
                else [f"minimum {score_label}", "none"],
                [
                    "duplicates skipped" if not options["keep_duplicates"] else "duplicates kept",
                    counts["skipped_duplicates"] if not options["keep_duplicates"] else "",
                ],
                ["written", counts["written"]],
            ],
        ),
        "",
    ]
    md += _breakdown(rows)
    if settings:
        keys = ("seed", "languages", "threshold", "max_rounds", "temperature", "max_tokens", "max_repairs")
        md += ["## Settings", "", md_table(["setting", "value"], [[k, settings.get(k, "")] for k in keys]), ""]
        md += ["## Models", "", md_table(["role", "model"], model_lines(settings)), ""]
    md += ["## Knowledge tree", ""]
    if tree is not None:
        name = "The bundled bilingual tree" if tree.source == "<default tree>" else f"`{tree.source}`"
        md += [f"{name} (fingerprint `{tree.fingerprint}`):", "", md_table(TREE_HEADER, tree_stat_rows(tree)), ""]
    elif settings:
        md += [f"A custom tree (fingerprint `{settings.get('tree')}`); its file is not recorded in run.json.", ""]
    else:
        md += ["Not recorded: the run directory has no run.json.", ""]
    roots = {(r["language"], r["root"]) for r in rows}
    leaves = {(r["language"], r["tag_path"]) for r in rows}
    md += [f"Exported rows cover {len(roots)} root domains and {len(leaves)} leaf tags.", ""]
    md += [
        "## Notes",
        "",
        "The content is machine-generated and inherits the strengths and errors of the models above; the critic "
        "scores are the generating model's own judgement, not human ratings.",
    ]
    path = card_path(output)
    path.write_text("\n".join(front + md) + "\n", encoding="utf-8")
    return path


def _answers_label(answers: str) -> str:
    return "refined (final) answers" if answers == "refine" else "first (void) answers"


def _breakdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    md = ["## What is in it", ""]
    for column, title in (("language", "language"), ("task_type", "task type"), ("difficulty", "difficulty")):
        counter = Counter(r[column] for r in rows)
        md += [md_table([title, "rows"], sorted(counter.items())), ""]
    first = [r["first_score"] for r in rows if r["first_score"] is not None]
    final = [r["final_score"] for r in rows if r["final_score"] is not None]
    rounds = [r["rounds"] or 0 for r in rows]
    md += [
        md_table(
            ["measure", "mean"],
            [
                ["critic score of the first answer", f"{statistics.fmean(first):.2f}" if first else "–"],
                ["critic score of the final answer", f"{statistics.fmean(final):.2f}" if final else "–"],
                ["revisions per sample", f"{statistics.fmean(rounds):.2f}"],
            ],
        ),
        "",
    ]
    unknown = sum(1 for r in rows if r["status"] == "done" and r["final_score"] is None)
    if unknown:
        md += [
            f"{unknown} done rows have no final critic score (the last revision was not scored, or its critique "
            "could not be read; see the `error` column); the final-answer mean leaves them out.",
            "",
        ]
    return md


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = run_dir_arg(PROG, args.run_dir)
    if args.format == "parquet" and args.output == "-":
        fail(PROG, "Parquet cannot go to standard output; pass -o FILE", 2)
    try:
        count = export(
            run_dir,
            args.format,
            args.answers,
            args.output,
            args.min_score,
            args.metadata,
            args.status,
            args.keep_duplicates,
        )
    except OSError as exc:
        fail(PROG, f"cannot write {args.output}: {exc.strerror or exc}")
    if args.output != "-":
        print(f"wrote {count} samples to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

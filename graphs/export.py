"""`python -m graphs.export DIR --format messages|sharegpt|parquet|dpo -o FILE`: SFT-ready data, or preference
pairs, and its dataset card.

Duplicates are marked first (condor_state.dedup.mark_duplicates) so export works on any run directory, old or
new, and skips repeated questions (including copies of the question-writer prompt's few-shot examples) unless
--keep-duplicates. --min-score filters on the critic score of the answer being exported: the first score for
--answers void, the final score for --answers refine; an unknown score is never at least N. A dataset card
(README.md, in the Hugging Face format) is written next to the output file.

--format dpo writes TRL's conversational preference format from done samples, one pair per line:
{"prompt": [user question], "chosen": [final answer], "rejected": [first answer]}, only where a revision was made
and the final critic score beats the first by at least --min-margin (an unknown score never does);
--pairs consecutive also pairs each revision over the answer before it (graphs.markdown.sample_pairs). A FILE
ending in .parquet gets the same columns as Parquet: prompt/chosen/rejected as list<struct<role, content>>, and
with --metadata one `metadata` struct column holding what the JSONL `metadata` object holds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from condor_state.dedup import THRESHOLD, mark_duplicates
from condor_state.postgres import StoreError, open_run
from condor_state.rundir import read_settings
from graphs.markdown import (
    PAIRINGS,
    TREE_HEADER,
    Pair,
    margin_table,
    md_table,
    model_lines,
    read_rounds,
    run_tree,
    sample_pairs,
    tree_stat_rows,
)
from graphs.options import OneLineParser, fail, run_dir_arg

PROG = "python -m graphs.export"
STATUSES = {"done": ["done"], "failed": ["failed"], "all": ["done", "failed"]}
CARD_MARK = "<!-- condor dataset card: written by python -m graphs.export, rewritten on every export here -->"
PARQUET_COLUMNS = (
    "id", "question", "answer", "void_answer", "refined_answer", "tag_path", "root", "task_type", "difficulty",
    "language", "rounds", "first_score", "final_score", "status", "error", "repairs", "tokens_in", "tokens_out",
    "cost", "duplicate_of",
)  # fmt: skip
METADATA = ("id", "tag_path", "task_type", "difficulty", "language", "rounds", "first_score", "final_score")
PAIR_METADATA = (
    ("id", "string"), ("tag_path", "string"), ("task_type", "string"), ("difficulty", "string"),
    ("language", "string"), ("pairing", "string"), ("rejected_revision", "int64"), ("chosen_revision", "int64"),
    ("rejected_score", "int64"), ("chosen_score", "int64"), ("margin", "int64"),
)  # fmt: skip
PAIRING_RULES = {
    "final": "the final (refined) answer over the first (void) answer",
    "consecutive": "the final answer over the first, and each revision over the answer before it",
}


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Export a Condor run's samples for fine-tuning, with a dataset card.")
    p.add_argument("run_dir", help="run directory holding condor.db")
    p.add_argument(
        "--format",
        choices=("messages", "sharegpt", "parquet", "dpo"),
        default="messages",
        help="OpenAI messages JSONL, ShareGPT JSONL, Parquet (messages column plus every sample field), or dpo: "
        "TRL preference pairs (JSONL, or Parquet when FILE ends in .parquet)",
    )
    p.add_argument("--answers", choices=("refine", "void"), default=None, help="refined (default) or first answers")
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
        "--metadata",
        action="store_true",
        help="JSONL: add a 'metadata' object (id, tag path, task, scores); dpo: also a Parquet 'metadata' column",
    )
    p.add_argument(
        "--pairs",
        choices=PAIRINGS,
        default=None,
        help="dpo: final (default): the final answer over the first; consecutive: also each revision over the "
        "answer before it",
    )
    p.add_argument(
        "--min-margin",
        type=int,
        default=None,
        help="dpo: least rise of the critic score from rejected to chosen (default 1)",
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
    dataset = open_run(run_dir)  # condor.db, or a pulled copy of a cluster run's store
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
    return write_lines([item for row in rows if (item := record(row, fmt, answers, metadata))], output)


def write_lines(records: list[dict[str, Any]], output: str) -> int:
    """One JSON object per line, to the file or to standard output ('-')."""
    lines = [json.dumps(item, ensure_ascii=False) for item in records]
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
    kinds = {c: pa.int64() for c in ints} | {"cost": pa.float64()}  # cost: null when the run had no price
    fields += [pa.field(c, kinds.get(c, pa.string())) for c in PARQUET_COLUMNS]
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


def pair_metadata(pair: Pair) -> dict[str, Any]:
    """Where the pair comes from and how far chosen beats rejected (revision 0 is the first answer)."""
    found = {
        "pairing": pair.pairing,
        "rejected_revision": pair.rejected_revision,
        "chosen_revision": pair.chosen_revision,
        "rejected_score": pair.rejected_score,
        "chosen_score": pair.chosen_score,
        "margin": pair.margin,
    }
    return {name: found[name] if name in found else pair.row[name] for name, _ in PAIR_METADATA}


def dpo_record(pair: Pair, metadata: bool) -> dict[str, Any]:
    """TRL's conversational preference format: the prompt turn, then one assistant turn each for chosen and rejected."""
    out: dict[str, Any] = {
        "prompt": [{"role": "user", "content": pair.row["question"]}],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }
    if metadata:
        out["metadata"] = pair_metadata(pair)
    return out


def write_dpo(pairs: list[Pair], output: str, metadata: bool) -> int:
    """JSONL, or Parquet with the same columns when the file ends in .parquet."""
    records = [dpo_record(pair, metadata) for pair in pairs]
    if not output.endswith(".parquet"):
        return write_lines(records, output)
    import pyarrow as pa
    import pyarrow.parquet as pq

    turns = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    fields = [pa.field(name, turns) for name in ("prompt", "chosen", "rejected")]
    if metadata:
        fields.append(pa.field("metadata", pa.struct([(n, getattr(pa, kind)()) for n, kind in PAIR_METADATA])))
    schema = pa.schema(fields)
    table = pa.Table.from_pylist(records, schema=schema)
    pq.write_table(table, output)
    return int(table.num_rows)


def select_pairs(
    run_dir: Path, pairing: str, min_margin: int, keep_duplicates: bool
) -> tuple[list[Pair], dict[str, int]]:
    """The pairs of the done samples export selects (duplicates skipped unless kept), in plan order."""
    rows, counts = select(run_dir, "done", None, keep_duplicates)
    rounds = read_rounds(run_dir) if pairing == "consecutive" else {}
    pairs = [pair for row in rows for pair in sample_pairs(row, rounds.get(row["id"], []), pairing, min_margin)]
    counts |= {"selected": len(rows), "revised": sum(1 for r in rows if (r["rounds"] or 0) > 0)}
    return pairs, counts


def export(
    run_dir: Path,
    fmt: str,
    answers: str,
    output: str,
    min_score: int | None = None,
    metadata: bool = False,
    status: str = "done",
    keep_duplicates: bool = False,
    pairing: str = "final",
    min_margin: int = 1,
) -> int:
    """Write the selected samples (and, for a file, the dataset card next to it); returns how many were written."""
    if fmt == "dpo":
        return export_pairs(run_dir, output, pairing, min_margin, metadata, keep_duplicates)
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


def export_pairs(
    run_dir: Path, output: str, pairing: str, min_margin: int, metadata: bool, keep_duplicates: bool
) -> int:
    """Write the preference pairs (and, for a file, their dataset card); returns how many pairs were written."""
    pairs, counts = select_pairs(run_dir, pairing, min_margin, keep_duplicates)
    if output != "-":
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    written = write_dpo(pairs, output, metadata)
    if output != "-":
        rows = list({id(p.row): p.row for p in pairs}.values())  # the samples giving pairs, in plan order
        options = {
            "format": "dpo",
            "answers": "pairs",
            "status": "done",
            "min_score": None,
            "keep_duplicates": keep_duplicates,
            "pairing": pairing,
            "min_margin": min_margin,
        }
        write_card(run_dir, Path(output), rows, counts | {"written": written}, options, pairs)
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
    run_dir: Path,
    output: Path,
    rows: list[dict[str, Any]],
    counts: dict[str, int],
    options: dict[str, Any],
    pairs: list[Pair] | None = None,
) -> Path:
    """A Hugging Face dataset card: loading config, then settings, models, tree statistics and counts (for
    preference pairs, `rows` are the samples giving pairs and the counts are pairs')."""
    settings = read_settings(run_dir)
    tree = run_tree(settings)
    languages = sorted({r["language"] for r in rows if r["language"]})
    dpo = pairs is not None
    builder = "parquet" if options["format"] == "parquet" or output.suffix == ".parquet" else "json"
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
        *(["- dpo", "- preference"] if dpo else ["- sft"]),
        "- synthetic",
        "- condor",
        "size_categories:",
        f"- {size_category(counts['written'])}",
        f"pretty_name: Condor {'preference pairs' if dpo else 'SFT data'}",
        "---",
        CARD_MARK,
        "",
    ]
    md = [
        f"# Condor {'preference pairs' if dpo else 'SFT data'}: `{output.name}`",
        "",
        ("Preference pairs from data" if dpo else "Supervised fine-tuning data")
        + " synthesized with Condor (arXiv 2501.12273): questions written from a World "
        "Knowledge Tree tag, one of seven task types and three difficulties (Condor Void), answered, then critiqued "
        "and revised until the critic was satisfied or the round limit was reached (Condor Refine, multi-round)."
        + (
            " Each pair puts a later answer (chosen) over an earlier one the critic scored lower (rejected)."
            if dpo
            else ""
        ),
        "",
        "## Files",
        "",
        md_table(
            ["file", "format", "answers", "rows"],
            [
                [
                    output.name,
                    "dpo (TRL conversational preference: prompt, chosen, rejected)" if dpo else options["format"],
                    PAIRING_RULES[options["pairing"]] if dpo else _answers_label(options["answers"]),
                    counts["written"],
                ]
            ],
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
                *(
                    []
                    if dpo  # pairs are filtered by their margin instead: see below
                    else [
                        [
                            f"below --min-score {options['min_score']} ({score_label}) or without that score",
                            counts["skipped_score"],
                        ]
                        if options["min_score"] is not None
                        else [f"minimum {score_label}", "none"]
                    ]
                ),
                [
                    "duplicates skipped" if not options["keep_duplicates"] else "duplicates kept",
                    counts["skipped_duplicates"] if not options["keep_duplicates"] else "",
                ],
                ["pairs written" if dpo else "written", counts["written"]],
            ],
        ),
        "",
    ]
    if pairs is not None:
        md += _pairs_card(pairs, counts, options)
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


def _pairs_card(pairs: list[Pair], counts: dict[str, int], options: dict[str, Any]) -> list[str]:
    """How the pairs were made, how many each rule gave, and how far chosen beats rejected."""
    final = [p for p in pairs if p.pairing == "final"]
    later = [p for p in pairs if p.pairing == "consecutive"]
    giving = len({p.row["id"] for p in pairs})
    rows: list[list[Any]] = [
        ["done samples selected (above)", counts["selected"]],
        ["of them with at least one revision", counts["revised"]],
        ["samples giving pairs", giving],
        ["pairs: final answer over first answer", len(final)],
    ]
    if options["pairing"] == "consecutive":
        rows.append(["pairs: a revision over the answer before it (other than final over first)", len(later)])
    columns = [("pairs", pairs)]
    if options["pairing"] == "consecutive":
        columns = [("final over first", final), ("revision over the one before", later), ("all pairs", pairs)]
    return [
        "## Preference pairs",
        "",
        f"Pairing rule `--pairs {options['pairing']}`: {PAIRING_RULES[options['pairing']]}, when the critic's score "
        f"rose by at least `--min-margin {options['min_margin']}`. `chosen` is the later answer, `rejected` the "
        "earlier one; a revision is judged by the critique of the next round, the first answer by the first round's. "
        "A pair with an unknown score, or whose two answers are the same text, is never made. The margin is the "
        "critic model's judgement, not a human rating.",
        "",
        md_table(["", "count"], rows),
        "",
        "Margin (chosen − rejected critic score):",
        "",
        margin_table(columns),
        "",
        "The rows are TRL's conversational preference format, which `DPOTrainer` (and the other preference "
        "trainers) read as they are; the chat template is applied by the trainer. The tables below describe the "
        f"{giving} samples giving pairs.",
        "",
    ]


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
    check_pair_options(args)
    try:
        count = export(
            run_dir,
            args.format,
            args.answers or "refine",
            args.output,
            args.min_score,
            args.metadata,
            args.status,
            args.keep_duplicates,
            args.pairs or "final",
            1 if args.min_margin is None else args.min_margin,
        )
    except OSError as exc:
        fail(PROG, f"cannot write {args.output}: {exc.strerror or exc}")
    except StoreError as exc:
        fail(PROG, str(exc))
    if args.output != "-":
        print(f"wrote {count} {'pairs' if args.format == 'dpo' else 'samples'} to {args.output}")
    return 0


def check_pair_options(args: argparse.Namespace) -> None:
    """Options that mean nothing for the format asked for are refused in one line, not silently ignored."""
    if args.format != "dpo":
        for flag, value in (("--pairs", args.pairs), ("--min-margin", args.min_margin)):
            if value is not None:
                fail(PROG, f"{flag} applies only to --format dpo", 2)
        return
    if args.answers is not None:
        fail(PROG, "--answers does not apply to --format dpo: chosen is the final answer, rejected the first", 2)
    if args.status != "done":
        fail(PROG, f"--status {args.status} does not apply to --format dpo: pairs come from done samples only", 2)
    if args.min_score is not None:
        fail(PROG, "--min-score does not apply to --format dpo; filter pairs with --min-margin", 2)
    if args.min_margin is not None and args.min_margin < 1:
        fail(PROG, f"--min-margin must be at least 1 (chosen must beat rejected), not {args.min_margin}", 2)


if __name__ == "__main__":
    raise SystemExit(main())

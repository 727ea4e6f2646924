"""`python -m graphs.export DIR --format messages|sharegpt --answers refine|void -o FILE`: SFT-ready JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from condor_state.dataset import DB_NAME, Dataset
from graphs.cli import OneLineParser, fail

PROG = "python -m graphs.export"


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Export a Condor run's samples as JSONL for fine-tuning.")
    p.add_argument("run_dir", help="run directory holding condor.db")
    p.add_argument("--format", choices=("messages", "sharegpt"), default="messages", help="OpenAI messages or ShareGPT")
    p.add_argument("--answers", choices=("refine", "void"), default="refine", help="refined (default) or first answers")
    p.add_argument("-o", "--output", required=True, help="JSONL file to write ('-' for standard output)")
    p.add_argument("--min-score", type=int, default=None, help="keep samples whose final critic score is at least this")
    p.add_argument("--metadata", action="store_true", help="add a 'metadata' object (id, tag path, task, scores)")
    return p


def record(row: dict[str, Any], fmt: str, answers: str, metadata: bool) -> dict[str, Any] | None:
    answer = row["refined_answer"] if answers == "refine" else row["void_answer"]
    if not answer or not row["question"]:
        return None
    if fmt == "messages":
        out: dict[str, Any] = {
            "messages": [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": answer}]
        }
    else:
        out = {"conversations": [{"from": "human", "value": row["question"]}, {"from": "gpt", "value": answer}]}
    if metadata:
        out["metadata"] = {
            k: row[k]
            for k in ("id", "tag_path", "task_type", "difficulty", "language", "rounds", "first_score", "final_score")
        }
    return out


def export(
    run_dir: Path, fmt: str, answers: str, output: str, min_score: int | None = None, metadata: bool = False
) -> int:
    """Write done samples (optionally above a score) and return how many were written."""
    dataset = Dataset.in_dir(run_dir)
    lines = []
    for row in dataset.samples(status=["done"]):
        if min_score is not None and (row["final_score"] or 0) < min_score:
            continue
        if (item := record(row, fmt, answers, metadata)) is not None:
            lines.append(json.dumps(item, ensure_ascii=False))
    dataset.close()
    text = "\n".join(lines) + ("\n" if lines else "")
    if output == "-":
        print(text, end="")
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / DB_NAME).is_file():
        fail(PROG, f"{run_dir} has no {DB_NAME}; pass the --out directory of a run")
    try:
        count = export(run_dir, args.format, args.answers, args.output, args.min_score, args.metadata)
    except OSError as exc:
        fail(PROG, f"cannot write {args.output}: {exc.strerror or exc}")
    if args.output != "-":
        print(f"wrote {count} samples to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m graphs.report DIR [-o OUTDIR]`: a Markdown data-quality report with PNG plots for a run directory.

Everything comes from DIR/condor.db (and DIR/run.json for the settings): coverage of the knowledge tree, task types,
difficulties and languages; first vs final critic scores, rounds and refine gain; the preference pairs export
--format dpo would write; question-format compliance,
repairs and failure reasons; duplicates (of earlier questions or of the prompt's few-shot examples); tokens. A done
sample may lack a final score (never re-scored, or its critique unreadable): it is counted, never averaged as 0.
Plots carry numbers only (no tag names), so they render with any font; names go in the Markdown tables.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from condor_state.context import ROLES, cost_text
from condor_state.dedup import THRESHOLD, example_questions, is_example, mark_duplicates
from condor_state.postgres import StoreError, open_run
from condor_state.rundir import read_settings
from condor_state.tasks import DIFFICULTIES, TASK_TYPES
from condor_state.tree import KnowledgeTree
from graphs.markdown import (
    TREE_HEADER,
    margin_table,
    md_table,
    model_lines,
    read_rounds,
    run_tree,
    sample_pairs,
    tree_stat_rows,
)
from graphs.options import OneLineParser, fail, run_dir_arg

PROG = "python -m graphs.report"
FIRST_COLOR, FINAL_COLOR = "#9aa5b1", "#2f7ed8"


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Write a Markdown data-quality report with plots for a Condor run.")
    p.add_argument("run_dir", help="run directory holding condor.db")
    p.add_argument("-o", "--out", default=None, help="folder for report.md and the PNGs (default: DIR/report)")
    return p


# --- what export's dataset card shares ---------------------------------------------------------------------------


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f}" if values else "–"


# --- the report --------------------------------------------------------------------------------------------------


def failure_reason(error: str | None) -> tuple[str, str]:
    """(role, reason) with numbers blanked, so the same failure on different samples groups together."""
    text = (error or "unknown").strip()
    role, sep, rest = text.partition(":")
    if not sep or role.strip() not in ROLES:
        role, rest = "other", text
    reason = re.sub(r"\d+", "N", rest.strip())
    return role.strip(), reason[:140]


class Plots:
    """PNG figures written next to report.md; each returns the Markdown that shows it."""

    def __init__(self, out: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.out = out

    def save(self, fig: Any, name: str, title: str) -> str:
        from matplotlib.ticker import MaxNLocator

        for ax in fig.axes:  # counts are whole numbers
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        fig.savefig(self.out / name, dpi=110)
        self.plt.close(fig)
        return f"![{title}]({name})"

    def bars(self, name: str, title: str, panels: list[tuple[str, list[str], list[int]]]) -> str:
        fig, axes = self.plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
        for ax, (panel_title, labels, values) in zip(axes[0], panels, strict=True):
            ax.bar(range(len(labels)), values, color=FINAL_COLOR)
            ax.set_xticks(range(len(labels)), labels, rotation=35 if len(labels) > 3 else 0, ha="right", fontsize=8)
            ax.set_title(panel_title, fontsize=10)
            ax.set_ylabel("samples")
            for x, v in enumerate(values):
                ax.annotate(str(v), (x, v), ha="center", va="bottom", fontsize=7)
        return self.save(fig, name, title)

    def histogram(self, name: str, title: str, values: list[int], xlabel: str, ylabel: str) -> str:
        fig, ax = self.plt.subplots(figsize=(6, 3.4))
        if values:
            lo, hi = min(values), max(values)
            ax.hist(values, bins=range(lo, hi + 2), align="left", color=FINAL_COLOR, rwidth=0.85)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        return self.save(fig, name, title)

    def scores(self, name: str, first: list[int], final: list[int]) -> str:
        fig, ax = self.plt.subplots(figsize=(6.4, 3.6))
        xs = list(range(1, 11))
        width = 0.4
        ax.bar(
            [x - width / 2 for x in xs], [first.count(x) for x in xs], width, label="first answer", color=FIRST_COLOR
        )
        ax.bar(
            [x + width / 2 for x in xs], [final.count(x) for x in xs], width, label="final answer", color=FINAL_COLOR
        )
        ax.set_xticks(xs)
        ax.set_xlabel("critic score (1-10)")
        ax.set_ylabel("done samples")
        ax.set_title("Critic score: first answer vs final answer", fontsize=10)
        ax.legend()
        return self.save(fig, name, "scores")


def build_report(run_dir: Path, out: Path) -> Path:
    """Write out/report.md and its PNGs; returns the Markdown file."""
    out.mkdir(parents=True, exist_ok=True)
    dataset = open_run(run_dir)  # condor.db, or a pulled copy of a cluster run's store
    try:
        duplicates = mark_duplicates(dataset)
        rows = list(dataset.samples())
        score_rows = list(dataset.db.execute("SELECT sample_id, round, score FROM rounds ORDER BY sample_id, round"))
    finally:
        dataset.close()
    settings = read_settings(run_dir)
    tree = run_tree(settings)
    plots = Plots(out)
    done = [r for r in rows if r["status"] == "done"]
    failed = [r for r in rows if r["status"] != "done"]
    md: list[str] = [f"# Condor data-quality report: `{run_dir}`", ""]

    # summary
    calls = {r["call_index"] for r in rows}
    tokens_in = sum(r["tokens_in"] or 0 for r in rows)
    tokens_out = sum(r["tokens_out"] or 0 for r in rows)
    md += [
        "## Summary",
        "",
        md_table(
            ["measure", "value"],
            [
                ["samples", len(rows)],
                ["done", f"{len(done)} ({pct(len(done), len(rows))})"],
                ["failed", f"{len(failed)} ({pct(len(failed), len(rows))})"],
                ["duplicate questions among done", f"{duplicates} ({pct(duplicates, len(done))})"],
                ["done and unique", len(done) - duplicates],
                ["question-writer calls", len(calls)],
                ["tokens in / out", f"{tokens_in} / {tokens_out}"],
            ],
        ),
        "",
    ]
    if settings:
        keys = ("seed", "languages", "threshold", "max_rounds", "temperature", "max_tokens", "max_repairs", "tree")
        md += ["## Settings and models", "", md_table(["setting", "value"], [[k, settings.get(k, "")] for k in keys])]
        md += ["", md_table(["role", "model"], model_lines(settings)), ""]

    md += coverage_section(rows, tree, plots)
    md += scores_section(done, score_rows, plots)
    md += preference_section(run_dir, done)
    md += format_section(rows, failed, plots)
    md += duplicates_section(rows, done, duplicates)
    md += tokens_section(rows, done, plots, settings)
    report = out / "report.md"
    report.write_text("\n".join(md) + "\n", encoding="utf-8")
    return report


def coverage_section(rows: list[dict[str, Any]], tree: KnowledgeTree | None, plots: Plots) -> list[str]:
    md = ["## Coverage", ""]
    languages = Counter(r["language"] for r in rows)
    tasks = Counter(r["task_type"] for r in rows)
    levels = Counter(r["difficulty"] for r in rows)
    task_labels = [*TASK_TYPES, *sorted(t for t in tasks if t not in TASK_TYPES)]  # unused ones show as gaps
    level_labels = [*DIFFICULTIES, *sorted(d for d in levels if d not in DIFFICULTIES)]
    md.append(
        plots.bars(
            "coverage.png",
            "languages, task types and difficulties",
            [
                ("languages", sorted(languages), [languages[k] for k in sorted(languages)]),
                ("task types", task_labels, [tasks[k] for k in task_labels]),
                ("difficulties", level_labels, [levels[k] for k in level_labels]),
            ],
        )
    )
    md += [
        "",
        md_table(["task type", "samples", "share"], [[t, tasks[t], pct(tasks[t], len(rows))] for t in task_labels]),
    ]
    md += ["", md_table(["difficulty", "samples"], [[d, levels[d]] for d in level_labels])]
    md += [
        "",
        md_table(["language", "samples", "share"], [[k, v, pct(v, len(rows))] for k, v in sorted(languages.items())]),
    ]
    md.append("")

    # roots and leaves, per language, against the tree when it is known
    table = []
    per_root: Counter[tuple[str, str]] = Counter()
    per_leaf: Counter[tuple[str, str]] = Counter()
    pairs: set[tuple[str, str, str]] = set()
    for r in rows:
        per_root[r["language"], r["root"]] += 1
        per_leaf[r["language"], r["tag_path"]] += 1
        pairs.add((r["language"], r["tag_path"], r["task_type"]))
    for language in sorted(languages):
        roots_used = {root for (lang, root) in per_root if lang == language}
        leaves_used = {leaf for (lang, leaf) in per_leaf if lang == language}
        pairs_used = sum(1 for p in pairs if p[0] == language)
        if tree is not None and language in tree.leaves:
            n_roots, n_leaves = len(tree.roots(language)), len(tree.leaves[language])
            table.append(
                [
                    language,
                    f"{len(roots_used)} / {n_roots} ({pct(len(roots_used), n_roots)})",
                    f"{len(leaves_used)} / {n_leaves} ({pct(len(leaves_used), n_leaves)})",
                    f"{pairs_used} / {n_leaves * len(TASK_TYPES)}",
                ]
            )
        else:
            table.append([language, len(roots_used), len(leaves_used), pairs_used])
    md += [
        "### Knowledge tree",
        "",
        "Roots, leaves and (leaf, task type) pairs used, out of the tree's when the tree is known"
        + ("" if tree is not None else " (this run's tree file is not recorded: counts only)")
        + ".",
        "",
        md_table(["language", "roots used", "leaves used", "(leaf, task) pairs used"], table),
        "",
    ]
    if tree is not None:
        md += [md_table(TREE_HEADER, tree_stat_rows(tree)), ""]
    md.append(
        plots.histogram(
            "roots.png", "Samples per root domain", list(per_root.values()), "samples in a root", "root domains"
        )
    )
    md.append("")
    top = per_root.most_common()
    md += [
        md_table(["language", "root", "samples"], [[lang, root, n] for (lang, root), n in top[:10]]),
        "",
    ]
    if len(top) > 10:
        md += ["Least used roots:", "", md_table(["language", "root", "samples"], [[*k, n] for k, n in top[-5:]]), ""]
    return md


def scores_section(done: list[dict[str, Any]], score_rows: list[tuple[str, int, int]], plots: Plots) -> list[str]:
    first = [r["first_score"] for r in done if r["first_score"] is not None]
    final = [r["final_score"] for r in done if r["final_score"] is not None]
    gains = [r["final_score"] - r["first_score"] for r in done if None not in (r["final_score"], r["first_score"])]
    rounds = [r["rounds"] or 0 for r in done]
    md = ["## Scores and refinement", "", plots.scores("scores.png", first, final), ""]
    md.append(
        md_table(
            ["measure", "first answer", "final answer"],
            [
                ["mean critic score", mean(first), mean(final)],
                ["median", statistics.median(first) if first else "–", statistics.median(final) if final else "–"],
                ["scored samples", len(first), len(final)],
                ["score unknown", len(done) - len(first), len(done) - len(final)],
            ],
        )
    )
    md += unknown_final_notes(done)
    md += ["", "### Rounds per sample", ""]
    md.append(plots.histogram("rounds.png", "Revisions per done sample", rounds, "revisions", "done samples"))
    md += ["", md_table(["revisions", "done samples"], sorted(Counter(rounds).items())), ""]
    md += ["### Refine gain (final − first score)", ""]
    md.append(plots.histogram("gain.png", "Refine gain: final - first critic score", gains, "gain", "done samples"))
    md += [
        "",
        md_table(
            ["measure", "value"],
            [
                ["mean gain", mean(gains)],
                ["improved", f"{sum(g > 0 for g in gains)} ({pct(sum(g > 0 for g in gains), len(gains))})"],
                ["unchanged", f"{sum(g == 0 for g in gains)} ({pct(sum(g == 0 for g in gains), len(gains))})"],
                ["worse", f"{sum(g < 0 for g in gains)} ({pct(sum(g < 0 for g in gains), len(gains))})"],
                ["critique rounds stored", len(score_rows)],
            ],
        ),
        "",
    ]
    return md


def unknown_final_notes(done: list[dict[str, Any]]) -> list[str]:
    """Why done samples lack a final score: they are left out of means and gains, so say how many and why."""
    unknown = [r for r in done if r["final_score"] is None]
    if not unknown:
        return []
    reasons = Counter(failure_reason(r["error"]) if r["error"] else ("–", "last revision not scored") for r in unknown)
    return [
        "",
        f"Final score unknown for {len(unknown)} done samples ({pct(len(unknown), len(done))}): the last revision "
        "was not scored, or its critique could not be read (the `error` column says so). Means, medians and gains "
        "leave them out.",
        "",
        md_table(
            ["role", "reason", "done samples"], [[role, reason, n] for (role, reason), n in reasons.most_common()]
        ),
    ]


def preference_section(run_dir: Path, done: list[dict[str, Any]]) -> list[str]:
    """What `graphs.export --format dpo` would write at margin 1, so a run's preference yield shows without exporting;
    counted over the done samples that are not duplicates, as export selects them."""
    unique = [r for r in done if not r.get("duplicate_of")]
    rounds = read_rounds(run_dir)
    final = [p for r in unique for p in sample_pairs(r, [], "final", 1)]
    every = [p for r in unique for p in sample_pairs(r, rounds.get(r["id"], []), "consecutive", 1)]
    revised = sum(1 for r in unique if (r["rounds"] or 0) > 0)
    return [
        "## Preference pairs",
        "",
        f"Pairs `python -m graphs.export DIR --format dpo` writes at `--min-margin 1` from the {len(unique)} done "
        f"samples that are not duplicates ({revised} of them revised at least once): chosen is a later answer, "
        "rejected an earlier one the critic scored lower; an unknown score never makes a pair.",
        "",
        md_table(
            ["pairing", "pairs", "samples giving pairs"],
            [
                ["final answer over first (`--pairs final`)", len(final), len({p.row["id"] for p in final})],
                [
                    "also each revision over the one before (`--pairs consecutive`)",
                    len(every),
                    len({p.row["id"] for p in every}),
                ],
            ],
        ),
        "",
        "Margin (chosen − rejected critic score):",
        "",
        margin_table([("`--pairs final`", final), ("`--pairs consecutive`", every)]),
        "",
    ]


def format_section(rows: list[dict[str, Any]], failed: list[dict[str, Any]], plots: Plots) -> list[str]:
    by_call: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_call.setdefault(r["call_index"], []).append(r)
    writer_failed = [r for r in failed if failure_reason(r["error"])[0] == "question_writer"]
    lost = {r["id"] for r in writer_failed}  # only failed rows: a done sample's `error` is a note, not a failure
    complete_calls = sum(1 for call in by_call.values() if not any(r["id"] in lost for r in call))
    repairs = [r["repairs"] or 0 for r in rows]
    md = [
        "## Format compliance, repairs and failures",
        "",
        "A question-writer call complies when every difficulty it was asked for parsed (after repair re-asks); "
        "`repairs` counts re-asks after unparsable replies, all roles of a sample together.",
        "",
        md_table(
            ["measure", "value"],
            [
                [
                    "question-writer calls complying",
                    f"{complete_calls} / {len(by_call)} ({pct(complete_calls, len(by_call))})",
                ],
                ["samples lost at question writing", len(writer_failed)],
                [
                    "samples needing at least one repair",
                    f"{sum(x > 0 for x in repairs)} ({pct(sum(x > 0 for x in repairs), len(rows))})",
                ],
                ["repair re-asks in total", sum(repairs)],
            ],
        ),
        "",
        md_table(["repairs per sample", "samples"], sorted(Counter(repairs).items())),
        "",
    ]
    reasons = Counter(failure_reason(r["error"]) for r in failed)
    roles = Counter(role for role, _ in reasons.elements())
    repair_counts = Counter(repairs)
    repair_labels = [str(k) for k in range(max(repairs, default=0) + 1)]
    panels = [("re-asks per sample", repair_labels, [repair_counts[int(k)] for k in repair_labels])]
    role_labels = [role for role in (*ROLES, "other") if roles[role]]
    if failed:
        panels.append(("failed samples by role", role_labels, [roles[x] for x in role_labels]))
    md.append(plots.bars("format.png", "repairs and failures", panels))
    md.append("")
    if failed:
        md += [
            "",
            md_table(["role", "reason", "samples"], [[role, reason, n] for (role, reason), n in reasons.most_common()]),
            "",
        ]
    else:
        md += ["No failed samples.", ""]
    return md


def duplicates_section(rows: list[dict[str, Any]], done: list[dict[str, Any]], duplicates: int) -> list[str]:
    """Duplicates of earlier samples and copies of the prompt's few-shot examples (pseudo-ids `example:…`)."""
    questions = {r["id"]: r["question"] for r in rows} | example_questions()
    marked = [r for r in done if r.get("duplicate_of")]
    copies = sum(1 for r in marked if is_example(r["duplicate_of"]))
    md = [
        "## Duplicates",
        "",
        f"{duplicates} of {len(done)} done samples ({pct(duplicates, len(done))}) repeat, exactly or nearly "
        f"(MinHash over character shingles, Jaccard ≥ {THRESHOLD}), an earlier question or one of the "
        f"question-writer prompt's few-shot examples ({copies} of them copy an example; their `duplicate_of` is "
        "a pseudo-id such as `example:en:1:Easy`); export skips them unless `--keep-duplicates`.",
        "",
    ]
    if marked:
        md += [
            md_table(
                ["sample", "question", "duplicate of", "repeated question"],
                [
                    [r["id"], r["question"][:90], r["duplicate_of"], (questions.get(r["duplicate_of"]) or "")[:90]]
                    for r in marked[:5]
                ],
            ),
            "",
        ]
    return md


def tokens_section(
    rows: list[dict[str, Any]], done: list[dict[str, Any]], plots: Plots, settings: dict[str, Any] | None = None
) -> list[str]:
    totals = [(r["tokens_in"] or 0) + (r["tokens_out"] or 0) for r in rows]
    md = ["## Tokens", ""]
    md.append(plots.histogram("tokens.png", "Tokens per sample (in + out, all roles)", totals, "tokens", "samples"))
    done_in = sum(r["tokens_in"] or 0 for r in done)
    done_out = sum(r["tokens_out"] or 0 for r in done)
    md += [
        "",
        md_table(
            ["measure", "in", "out"],
            [
                ["all samples", sum(r["tokens_in"] or 0 for r in rows), sum(r["tokens_out"] or 0 for r in rows)],
                [
                    "per sample (mean)",
                    mean([r["tokens_in"] or 0 for r in rows]),
                    mean([r["tokens_out"] or 0 for r in rows]),
                ],
                [
                    "per done sample (spent on done samples)",
                    f"{done_in / len(done):.0f}" if done else "–",
                    f"{done_out / len(done):.0f}" if done else "–",
                ],
            ],
        ),
        "",
    ]
    return md + cost_lines(rows, len(done), settings or {})


def cost_lines(rows: list[dict[str, Any]], done: int, settings: dict[str, Any]) -> list[str]:
    """The cost at the roles' prices, total and per 1,000 done samples; nothing when no sample was priced."""
    costs = [r["cost"] for r in rows if r.get("cost") is not None]
    if not costs:
        return []
    total = sum(costs)
    per = cost_text(total * 1000 / done) if done else "–"
    table = [["all samples", cost_text(total)], ["per 1,000 done samples (all samples' cost ÷ done)", per]]
    prices = [[role, price] for role in ROLES if (price := settings.get(f"{role}_price") or settings.get("price"))]
    md = [md_table(["cost", "value"], table), ""]
    if prices:
        md += [md_table(["role", "price per million tokens in/out (latest invocation)"], prices), ""]
    if unpriced := len(rows) - len(costs):
        md += [f"{unpriced} samples have no cost (stored without a price); the total leaves them out.", ""]
    return md


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = run_dir_arg(PROG, args.run_dir)
    out = Path(args.out) if args.out else run_dir / "report"
    if out.exists() and not out.is_dir():
        fail(PROG, f"-o {out} exists and is not a directory")
    try:
        report = build_report(run_dir, out)
    except OSError as exc:
        fail(PROG, f"cannot write the report to {out}: {exc.strerror or exc}")
    except StoreError as exc:
        fail(PROG, str(exc))
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the quality report and the dataset card share: Markdown tables, the run's models and its tree, and the
preference pairs a run yields (export --format dpo writes them; the report counts them the same way)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condor_state.context import ROLES
from condor_state.postgres import open_run
from condor_state.tree import KnowledgeTree, TreeError, default_tree, load_tree, tree_stats


def run_tree(settings: dict[str, Any]) -> KnowledgeTree | None:
    """The run's knowledge tree when it can be identified by its fingerprint (the bundled one, or a recorded file)."""
    fingerprint = settings.get("tree")
    if not fingerprint:
        return None
    tree = default_tree()
    if tree.fingerprint == fingerprint:
        return tree
    for key in ("tree_file", "tree_path", "tree_source"):
        if isinstance(settings.get(key), str) and settings[key]:
            try:
                candidate = load_tree(settings[key])
            except TreeError:
                continue
            if candidate.fingerprint == fingerprint:
                return candidate
    return None


def model_lines(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, model) rows: what generated the data, as far as run.json tells."""
    if not settings:
        return []
    models = settings.get("models") or {}
    if settings.get("embedded"):
        where = "embedded llama.cpp model (Gemma 3 270M base, from the PyPI package, unless a .gguf is named)"
    else:
        where = f"OpenAI-compatible endpoint {settings.get('base_url', '')}"
    default = "gemma-3-270m (embedded)" if settings.get("embedded") else "(the server's default)"
    rows = [("endpoint", where)]
    rows += [(role, models.get(role) or default) for role in ROLES]
    return rows


def tree_stat_rows(tree: KnowledgeTree) -> list[list[str]]:
    rows = []
    for language, s in tree_stats(tree).items():
        rows.append([language, *(str(s[k]) for k in ("roots", "subdomains", "leaves", "tags", "depth"))])
    return rows


TREE_HEADER = ["language", "roots", "sub-domains", "leaves", "tags", "depth"]


def md_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --- preference pairs: export --format dpo writes them, the report counts them ----------------------------------

PAIRINGS = ("final", "consecutive")


@dataclass
class Pair:
    """A later answer of one sample (chosen) over an earlier one (rejected) that the critic scored lower.

    Revisions are numbered as the run made them: 0 is the first (void) answer, k the k-th revision.
    """

    row: dict[str, Any]
    pairing: str  # "final": the final answer over the first; "consecutive": a revision over the answer before it
    rejected: str
    chosen: str
    rejected_revision: int
    chosen_revision: int
    rejected_score: int
    chosen_score: int

    @property
    def margin(self) -> int:
        return self.chosen_score - self.rejected_score


def read_rounds(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every sample's rounds (number, score, revision), in order: what consecutive pairs are judged by."""
    dataset = open_run(run_dir)
    try:
        query = "SELECT sample_id, round, score, revised_answer FROM rounds ORDER BY sample_id, round"
        found: dict[str, list[dict[str, Any]]] = {}
        for sample_id, number, score, revised in dataset.conn.execute(query):
            found.setdefault(sample_id, []).append({"round": number, "score": score, "revised_answer": revised})
    finally:
        dataset.close()
    return found


def answer_chain(row: dict[str, Any], rounds: list[dict[str, Any]]) -> list[tuple[str | None, int | None]]:
    """(answer, the score that judged it) for the first answer and each revision, in order.

    Round r's score judges the answer current at round r (round 1: the void answer), and round r's revision is
    judged by round r+1's score — unknown (None) when no later round scored it.
    """
    chain: list[tuple[str | None, int | None]] = [(row["void_answer"], None)]
    for r in sorted(rounds, key=lambda r: r["round"]):
        chain[-1] = (chain[-1][0], r["score"])
        if not r["revised_answer"]:
            break
        chain.append((r["revised_answer"], None))
    return chain


def sample_pairs(
    row: dict[str, Any], rounds: list[dict[str, Any]], pairing: str = "final", min_margin: int = 1
) -> list[Pair]:
    """A done sample's pairs: its final answer over its first when a revision was made and the final score beats the
    first by at least min_margin; with pairing "consecutive" also each revision over the answer before it, likewise.
    An unknown score never makes a pair, and chosen never equals rejected."""
    if row["status"] != "done" or not row["question"]:
        return []
    pairs = []
    first, final = row["first_score"], row["final_score"]
    if (row["rounds"] or 0) > 0 and first is not None and final is not None:
        pair = _pair(row, "final", (row["void_answer"], first, 0), (row["refined_answer"], final, row["rounds"]))
        if pair is not None and pair.margin >= min_margin:
            pairs.append(pair)
    if pairing == "consecutive":
        chain = answer_chain(row, rounds)
        for k in range(1, len(chain)):
            (before, before_score), (after, after_score) = chain[k - 1], chain[k]
            if before_score is None or after_score is None or (k - 1, k) == (0, row["rounds"]):
                continue  # a score unknown, or the final-over-first pair the first rule judged
            pair = _pair(row, "consecutive", (before, before_score, k - 1), (after, after_score, k))
            if pair is not None and pair.margin >= min_margin:
                pairs.append(pair)
    return pairs


def _pair(
    row: dict[str, Any], pairing: str, rejected: tuple[str | None, int, int], chosen: tuple[str | None, int, int]
) -> Pair | None:
    """The pair of two answers (text, score, revision), or None when one is missing or both are the same text."""
    if not rejected[0] or not chosen[0] or rejected[0] == chosen[0]:
        return None
    return Pair(row, pairing, rejected[0], chosen[0], rejected[2], chosen[2], rejected[1], chosen[1])


def margin_table(columns: list[tuple[str, list[Pair]]]) -> str:
    """Pairs per margin (chosen − rejected critic score), one count column per named list of pairs."""
    counters = [Counter(p.margin for p in pairs) for _, pairs in columns]
    margins = sorted({m for counter in counters for m in counter})
    rows = [[m, *(counter[m] for counter in counters)] for m in margins]
    return md_table(["margin", *(name for name, _ in columns)], rows or [["–", *(0 for _ in columns)]])

"""Markdown pieces the quality report and the dataset card share: tables, the run's models and its tree."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from condor_state.context import ROLES
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

"""The run directory: the one module that knows its files, the settings record (run.json), thread ids, the row
shape of a sample, and the writer lock that lets one run write a directory at a time."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from condor_state.context import ROLES, Context, data_settings
from condor_state.state import BatchState, Sample, add_cost
from condor_state.tree import load_tree
from prompts import prompt_version

DB_NAME = "condor.db"  # the dataset (samples, rounds, calls, runs)
CHECKPOINTS = "checkpoints.db"  # unfinished calls' LangGraph threads
SETTINGS = "run.json"  # the settings record
LOCK = "run.lock"  # the writer lock
THREAD_PREFIX = "condor-s"


class DirectoryInUse(RuntimeError):
    """Another process holds the run directory; the message names it, in one line."""


class SettingsChanged(RuntimeError):
    """A resume with settings that would mix two datasets, or an unreadable record; one line for the user."""


# --- thread ids --------------------------------------------------------------------------------------------------


def thread_id(seed: int, call_index: int) -> str:
    """The checkpoint thread of one question-writer call."""
    return f"{THREAD_PREFIX}{seed}-c{call_index:07d}"


def call_of(thread: str, seed: int | None = None) -> int | None:
    """The call index in a thread id made by thread_id (of `seed`, when given), or None for any other thread."""
    head, _, index = thread.rpartition("-c")
    if not head.startswith(THREAD_PREFIX) or not index.isdigit():
        return None
    run_seed = head[len(THREAD_PREFIX) :]
    if not run_seed.lstrip("-").isdigit() or (seed is not None and int(run_seed) != seed):
        return None
    return int(index)


# --- the settings record -----------------------------------------------------------------------------------------

MODEL_SETTINGS = {f"{role}_model" for role in ROLES} | {"model"}
# What is compared on resume: Context's data settings (models as each role's effective one), plus the backend and
# the prompts' version, which no single setting carries.
DATA_SETTINGS = ("backend", "prompt_version", "models", *(n for n in data_settings() if n not in MODEL_SETTINGS))
# Settings recorded later than others: what an older run directory's record meant (its prompts were today's).
SETTING_DEFAULTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "root_weights": lambda _: "",
    "backend": lambda before: "embedded" if before.get("embedded") else "served",
    "grammar": lambda before: bool(before.get("embedded")),
    "prompt_version": lambda _: "6648a70352b1",
}


def run_settings(context: Context) -> dict[str, Any]:
    """The settings record: every setting (no key is ever one), the tree's fingerprint and what they imply."""
    tree = load_tree(context.tree or None)
    return {
        **context.as_dict(),
        "tree": tree.fingerprint,
        "tree_file": context.tree,
        "models": {role: context.model_for(role) for role in ROLES},
        "backend": "embedded" if context.embedded else "served",
        "embedded": context.embedded,
        "grammar": context.uses_grammar,
        "prompt_version": prompt_version(),
    }


def recorded_context(settings: dict[str, Any]) -> Context:
    """The settings a run_settings record holds, as a Context again (its "tree" is the tree's fingerprint; the file
    is "tree_file")."""
    return Context.recorded({**settings, "tree": settings.get("tree_file") or ""})


def read_settings(run_dir: Path) -> dict[str, Any]:
    """The settings record, or {} when the directory has none or it is unreadable (a database copied alone)."""
    try:
        data = json.loads((run_dir / SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_settings(run_dir: Path, settings: dict[str, Any]) -> None:
    (run_dir / SETTINGS).write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_settings(run_dir: Path, settings: dict[str, Any]) -> None:
    """Record the run's settings, or refuse a directory made with data-changing differences (SettingsChanged)."""
    file = run_dir / SETTINGS
    if file.exists():
        try:
            before = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise SettingsChanged(f"{file} is unreadable; use a new --out directory") from None
        refuse_changes(before, settings, str(run_dir))
    write_settings(run_dir, settings)


def refuse_changes(before: dict[str, Any], settings: dict[str, Any], where: str) -> None:
    """SettingsChanged when `settings` differ from the recorded ones in anything that changes the data."""
    changed = [k for k in DATA_SETTINGS if recorded(before, k) != settings.get(k)]
    if changed:
        diffs = ", ".join(f"{k}: {recorded(before, k)!r} -> {settings.get(k)!r}" for k in changed)
        raise SettingsChanged(f"{where} was started with other settings ({diffs}); rerun with those or use a new --out")


def recorded(before: dict[str, Any], key: str) -> Any:
    """A setting as a record states it, or what an older record that lacks it meant."""
    if key in before or key not in SETTING_DEFAULTS:
        return before.get(key)
    return SETTING_DEFAULTS[key](before)


# --- the row shape -----------------------------------------------------------------------------------------------


def shared_tokens(state: BatchState) -> tuple[int, int]:
    """The question-writer's tokens, split across the samples it produced."""
    n = max(1, len(state.get("samples", [])))
    return state.get("tokens_in", 0) // n, state.get("tokens_out", 0) // n


def shared_cost(state: BatchState) -> float | None:
    """The question-writer's cost, split evenly across the samples it produced; None when no price was given."""
    cost = state.get("cost")
    return None if cost is None else cost / max(1, len(state.get("samples", [])))


def sample_row(
    state: BatchState,
    sample: Sample,
    now: float,
    shared_in: int = 0,
    shared_out: int = 0,
    shared: float | None = None,
) -> dict[str, Any]:
    """A sample as its condor.db row: `shared_in`, `shared_out` and `shared` (cost) are its part of the
    question-writer's call."""
    rounds = sample["rounds"]
    revised = [r for r in rounds if r["revised_answer"]]
    tag_path = list(state.get("tag_path", []))
    return {
        "id": sample["id"],
        "position": sample["position"],
        "call_index": state.get("call_index", -1),
        "tag_path": " > ".join(tag_path),
        "root": tag_path[0] if tag_path else "",
        "task_type": state.get("task_type", ""),
        "difficulty": sample["difficulty"],
        "language": state.get("language", ""),
        "question": sample["question"],
        "void_answer": sample["void_answer"],
        "refined_answer": sample["answer"] if sample["status"] == "done" else None,
        "rounds": len(revised),
        "first_score": rounds[0]["score"] if rounds else None,
        "final_score": rounds[-1]["score"] if rounds and not rounds[-1]["revised_answer"] else None,
        "status": "done" if sample["status"] == "done" else "failed",
        "error": sample["error"],  # on a done sample: why its final score is unknown
        "repairs": sample["repairs"],
        "tokens_in": sample["tokens_in"] + shared_in,
        "tokens_out": sample["tokens_out"] + shared_out,
        "cost": add_cost(sample.get("cost"), shared),
        "created_at": now,
    }


def round_rows_of(sample: Sample) -> list[dict[str, Any]]:
    return [
        {
            "sample_id": sample["id"],
            "round": r["round"],
            "strengths": r["strengths"],
            "weaknesses": r["weaknesses"],
            "suggestions": r["suggestions"],
            "score": r["score"],
            "critique": r["critique"],
            "revised_answer": r["revised_answer"],
        }
        for r in sample["rounds"]
    ]


# --- the writer lock ---------------------------------------------------------------------------------------------

_HELD: dict[Path, int] = {}  # run directories this process holds, with the open lock file (re-entrant holds)


def hold(run_dir: Path) -> None:
    """Take the directory's lock for the life of this process (and its forked workers), or raise DirectoryInUse.

    An flock belongs to the open file, so the kernel releases it when every process holding it is gone: a
    kill -9 frees the directory at once, with no stale lock file to remove.
    """
    key = run_dir.resolve()
    if key in _HELD:
        return
    fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DirectoryInUse(
            f"{run_dir} is in use by {holder}; wait for that run to end or stop it, or use another --out"
        ) from None
    os.ftruncate(fd, 0)
    command = " ".join(["python", *sys.argv])[:200]
    os.pwrite(fd, f"process {os.getpid()} ({command})\n".encode(), 0)
    _HELD[key] = fd


def held() -> set[Path]:
    """The run directories this process holds."""
    return set(_HELD)


def release(run_dir: Path) -> None:
    """Give the directory back (a long-lived process that ran a job, such as a test or a benchmark)."""
    fd = _HELD.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)

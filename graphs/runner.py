"""A whole run: the plan's question-writer calls as checkpointed threads, finished samples stored once."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from condor_state.context import ROLES, Context
from condor_state.dataset import Dataset
from condor_state.state import BatchState, sample_id
from condor_state.tree import load_tree
from graphs.graph import builder

CHECKPOINTS = "checkpoints.db"
SETTINGS = "run.json"
QUESTIONS_PER_CALL = 3
# Settings that change the data: resuming with another value would mix two datasets.
DATA_SETTINGS = (
    "seed",
    "tree",
    "languages",
    "threshold",
    "max_rounds",
    "models",
    "temperature",
    "max_tokens",
    "max_repairs",
)


class RunError(RuntimeError):
    """A run that cannot start; the message is one line for the user."""


@dataclass
class RunSummary:
    samples: int
    done: int = 0
    failed: int = 0
    revisions: int = 0
    stored_before: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    unfinished: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        mean = self.revisions / self.done if self.done else 0.0
        return [
            f"samples: {self.done + self.failed}/{self.samples} stored "
            f"({self.done} done, {self.failed} failed; {self.stored_before} were already stored)",
            f"revisions: {self.revisions} ({mean:.2f} per done sample)",
            f"tokens: {self.tokens_in} in / {self.tokens_out} out",
            f"time: {self.seconds:.1f} s",
        ]


def thread_id(seed: int, call_index: int) -> str:
    return f"condor-s{seed}-c{call_index:07d}"


def calls_for(samples: int) -> list[tuple[int, int]]:
    """(call index, questions kept) for every question-writer call of an N-sample run."""
    full, rest = divmod(samples, QUESTIONS_PER_CALL)
    calls = [(i, QUESTIONS_PER_CALL) for i in range(full)]
    return calls + ([(full, rest)] if rest else [])


def run_settings(context: Context) -> dict[str, Any]:
    tree = load_tree(context.tree or None)
    return {
        "seed": context.seed,
        "tree": tree.fingerprint,
        "languages": context.languages,
        "threshold": context.threshold,
        "max_rounds": context.max_rounds,
        "models": {role: context.model_for(role) for role in ROLES},
        "temperature": context.temperature,
        "max_tokens": context.max_tokens,
        "max_repairs": context.max_repairs,
        "base_url": context.base_url,
        "embedded": context.embedded,
    }


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record the run's settings, or refuse to resume a directory made with data-changing differences."""
    file = out / SETTINGS
    if file.exists():
        try:
            before = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError):
            raise RunError(f"{file} is unreadable; use a new --out directory") from None
        changed = [k for k in DATA_SETTINGS if before.get(k) != settings.get(k)]
        if changed:
            diffs = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise RunError(f"{out} was started with other settings ({diffs}); rerun with those or use a new --out")
    file.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")


async def run_job(
    out: Path, samples: int, context: Context, report: Callable[[RunSummary, int], None] | None = None
) -> RunSummary:
    """Run every unfinished call of the plan with at most `concurrency` threads in flight."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, run_settings(context))
    dataset = Dataset.in_dir(out)
    summary = RunSummary(samples=samples)
    stored = dataset.ids()
    calls = calls_for(samples)
    pending = [
        (i, keep)
        for i, keep in calls
        if not all(sample_id(context.seed, i * QUESTIONS_PER_CALL + k) in stored for k in range(keep))
    ]
    summary.stored_before = sum(keep for _, keep in calls) - sum(keep for _, keep in pending)
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for item in pending:
        queue.put_nowait(item)
    in_flight = 0

    async with AsyncSqliteSaver.from_conn_string(str(out / CHECKPOINTS)) as saver:
        graph = builder.compile(checkpointer=saver)

        async def run_call(call_index: int, keep: int) -> None:
            config: dict[str, Any] = {"configurable": {"thread_id": thread_id(context.seed, call_index)}}
            snapshot = await graph.aget_state(config)
            if snapshot.values and not snapshot.next:
                final: BatchState = snapshot.values  # finished before a crash, not yet stored
            else:
                start = None if snapshot.next else {"call_index": call_index, "keep": keep}
                final = await graph.ainvoke(start, config, context=context, durability="sync")
            for sample in dataset.samples_by_ids(dataset.write_batch(final)):
                _count(summary, sample)
            await saver.adelete_thread(config["configurable"]["thread_id"])

        async def worker() -> None:
            nonlocal in_flight
            while not queue.empty():
                call_index, keep = queue.get_nowait()
                in_flight += 1
                try:
                    await run_call(call_index, keep)
                except Exception as exc:  # keep going; the thread stays checkpointed for the next run
                    summary.unfinished.append(f"call {call_index}: {type(exc).__name__}: {exc}")
                finally:
                    in_flight -= 1
                    if report:
                        report(summary, in_flight)

        workers = max(1, min(len(pending), 1 if context.embedded else context.concurrency))
        await asyncio.gather(*(worker() for _ in range(workers)))

    summary.done = dataset.count("done")
    summary.failed = dataset.count("failed")
    summary.seconds = time.monotonic() - started
    dataset.close()
    return summary


def _count(summary: RunSummary, row: dict[str, Any]) -> None:
    summary.revisions += row["rounds"] or 0
    summary.tokens_in += row["tokens_in"] or 0
    summary.tokens_out += row["tokens_out"] or 0
    if row["status"] == "done":
        summary.done += 1
    else:
        summary.failed += 1


def plain_reporter(every: float = 10.0) -> Callable[[RunSummary, int], None]:
    """Log lines at most every `every` seconds, for logs and pipes (no terminal)."""
    last = 0.0

    def report(summary: RunSummary, in_flight: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every:
            last = now
            made = summary.done + summary.failed
            print(
                f"[condor] {summary.stored_before + made}/{summary.samples} samples "
                f"({summary.done} done, {summary.failed} failed this run), {in_flight} calls in flight",
                file=sys.stderr,
                flush=True,
            )

    return report

"""What a run shows while it works: its counts, a progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from condor_state.context import cost_text


@dataclass
class RunSummary:
    """Counts for the user: this invocation's work and the directory's totals."""

    samples: int
    stored_before: int = 0
    done: int = 0  # this invocation
    failed: int = 0  # this invocation
    revisions: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None  # this invocation's, at the roles' prices; None: no price given
    total_done: int = 0
    total_failed: int = 0
    resumed_threads: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    unfinished: list[str] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return self.stored_before + self.done + self.failed

    def cost_text(self) -> str:
        """This invocation's cost and its cost per 1,000 done samples (failed ones' spend included), or ''."""
        if self.cost is None:
            return ""
        per = f"{cost_text(self.cost * 1000 / self.done)} per 1,000 done samples" if self.done else "no done samples"
        return f"cost {cost_text(self.cost)} ({per})"

    def lines(self) -> list[str]:
        mean = self.revisions / self.done if self.done else 0.0
        rate = (self.done + self.failed) / self.seconds * 60 if self.seconds else 0.0
        return [
            f"samples: {self.total_done + self.total_failed}/{self.samples} stored "
            f"({self.total_done} done, {self.total_failed} failed; {self.stored_before} were already stored)",
            f"this run: {self.done} done, {self.failed} failed, {self.revisions} revisions "
            f"({mean:.2f} per done sample), {rate:.1f} samples/min",
            "; ".join(filter(None, [f"tokens: {self.tokens_in} in / {self.tokens_out} out", self.cost_text()])),
            f"time: {self.seconds:.1f} s" + ("  (stopped early: re-run the same command to resume)" * self.interrupted),
        ]


class Reporter(Protocol):
    """Told after every finished call; a run over processes forwards its workers' counts to one."""

    def update(self, summary: RunSummary, in_flight: int) -> None: ...

    def close(self) -> None: ...


class LogReporter:
    """Plain log lines at most every `every` seconds, for logs and pipes (no terminal)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.last = 0.0
        self.started = time.monotonic()

    def update(self, summary: RunSummary, in_flight: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and summary.stored < summary.samples:
            return
        self.last = now
        made = summary.done + summary.failed
        rate = made / max(now - self.started, 1e-9) * 60
        left = summary.samples - summary.stored
        eta = f"{left / rate:.1f} min" if rate else "?"
        usage = ", ".join(
            filter(None, [f"tokens {summary.tokens_in} in / {summary.tokens_out} out", summary.cost_text()])
        )
        print(
            f"[condor] {summary.stored}/{summary.samples} samples ({summary.done} done, {summary.failed} failed "
            f"this run), {in_flight} calls in flight, {rate:.1f} samples/min, ETA {eta}, {usage}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        pass


class BarReporter:
    """A rich progress bar on the terminal: done / failed / in flight, rate, ETA, tokens."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]condor"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[in_flight]} in flight  {task.fields[rate]:.1f}/min"),
            TimeRemainingColumn(),
            TextColumn("tokens {task.fields[tokens]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task: Any = None
        self.started = time.monotonic()

    def update(self, summary: RunSummary, in_flight: int) -> None:
        made = summary.done + summary.failed
        fields: dict[str, Any] = {
            "done": summary.done,
            "failed": summary.failed,
            "in_flight": in_flight,
            "rate": made / max(time.monotonic() - self.started, 1e-9) * 60,
            "tokens": "  ".join(filter(None, [f"{summary.tokens_in}/{summary.tokens_out}", summary.cost_text()])),
        }
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("run", total=summary.samples, completed=summary.stored, **fields)
        self.progress.update(self.task, completed=summary.stored, **fields)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


def reporter() -> Reporter:
    """A progress bar on a terminal, plain periodic log lines otherwise."""
    return BarReporter() if sys.stderr.isatty() else LogReporter()

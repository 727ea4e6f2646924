"""A run split over worker processes, for servers fast enough that one Python process's CPU is the bottleneck.

Worker i runs the calls whose index is i modulo the worker count, with its share of the request slots, so the
bound on requests in flight still holds for the whole run. Workers share nothing but the two SQLite files.
The parent relays Ctrl-C / SIGTERM, shows the combined progress and records the run's one `runs` row; a worker
dies with its parent, so a killed run leaves no process behind writing to the run directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from condor_state.context import Context
from condor_state.dataset import Dataset
from condor_state.rundir import CHECKPOINTS, run_settings
from condor_state.state import add_cost
from graphs.checkpoints import RunCheckpoints
from graphs.progress import Reporter, RunSummary
from graphs.runner import Shard, run_job, run_loop, run_row, two_stage_stop

REQUESTS_PER_PROCESS = 16  # the auto rule: one process per this many request slots, at most one per core


def auto_processes(context: Context) -> int:
    """One process per 16 request slots, up to the core count; the embedded model always runs in one."""
    if context.embedded or not can_fork():
        return 1
    return max(1, min(os.cpu_count() or 1, context.concurrency // REQUESTS_PER_PROCESS))


def can_fork() -> bool:
    """Workers are forked (they start without importing anything again); Windows has no fork."""
    return "fork" in multiprocessing.get_all_start_methods()


def share(context: Context, shard: Shard) -> Context:
    """Worker `shard`'s settings: its part of the request slots and of the requests-per-minute budget."""
    slots = context.concurrency // shard.count + (1 if shard.index < context.concurrency % shard.count else 0)
    return replace(context, concurrency=slots, rpm=context.rpm / shard.count)


def run_in_processes(out: Path, samples: int, context: Context, processes: int, reporter: Reporter) -> RunSummary:
    """Run the job in `processes` workers (forked, so they start without importing anything again)."""
    started, wall_started = time.monotonic(), time.time()
    settings = run_settings(context)
    Dataset.in_dir(out).close()  # both databases exist before the workers open them at the same moment
    with RunCheckpoints.open(out / CHECKPOINTS):
        pass
    fork = multiprocessing.get_context("fork")
    events: Any = fork.Queue()
    stop, now = fork.Event(), fork.Event()
    shards = [Shard(i, processes) for i in range(processes)]
    workers = [
        fork.Process(target=_worker, args=(out, samples, share(context, s), s, events, stop, now, os.getpid()))
        for s in shards
    ]
    progress: dict[int, dict[str, Any]] = {}
    finals: dict[int, dict[str, Any]] = {}
    problems: list[str] = []

    on_signal = two_stage_stop(stop.set, now.set)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for worker in workers:
            worker.start()
        while any(w.is_alive() for w in workers) or not events.empty():
            with contextlib.suppress(queue.Empty):
                kind, index, payload, in_flight = events.get(timeout=0.2)
                if kind == "progress":
                    progress[index] = {**payload, "in_flight": in_flight}
                    in_flight_now = sum(p["in_flight"] for p in progress.values())
                    reporter.update(_combined(samples, progress.values()), in_flight_now)
                elif kind == "final":
                    finals[index] = payload
                else:
                    problems.append(f"worker {index}: {payload}")
        for worker in workers:
            worker.join()
            if worker.exitcode not in (0, None) and worker.exitcode != -signal.SIGKILL and not now.is_set():
                problems.append(f"worker {worker.name} exited with code {worker.exitcode}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = _combined(samples, [finals.get(s.index) or progress.get(s.index) or {} for s in shards])
    summary.unfinished = [u for f in finals.values() for u in f["unfinished"]] + problems
    summary.interrupted = stop.is_set() or now.is_set() or any(f["interrupted"] for f in finals.values())
    summary.interrupted = summary.interrupted or len(finals) < processes
    summary.seconds = time.monotonic() - started
    dataset = Dataset.in_dir(out)
    try:
        summary.total_done, summary.total_failed = dataset.count("done"), dataset.count("failed")
        dataset.record_run(run_row(summary, wall_started, settings))
    finally:
        dataset.close()
        reporter.close()
    return summary


def _combined(samples: int, parts: Any) -> RunSummary:
    summary = RunSummary(samples=samples)
    for part in parts:
        for name in ("stored_before", "done", "failed", "revisions", "tokens_in", "tokens_out", "resumed_threads"):
            setattr(summary, name, getattr(summary, name) + part.get(name, 0))
        summary.cost = add_cost(summary.cost, part.get("cost"))
    return summary


class _ShardReporter:
    """A worker's progress, sent to the parent that shows it."""

    def __init__(self, events: Any, index: int) -> None:
        self.events = events
        self.index = index

    def update(self, summary: RunSummary, in_flight: int) -> None:
        self.events.put(("progress", self.index, asdict(summary), in_flight))

    def close(self) -> None:
        pass


def _worker(
    out: Path, samples: int, context: Context, shard: Shard, events: Any, stop: Any, now: Any, parent: int
) -> None:
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; a terminal's Ctrl-C reaches every process
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        summary = run_loop(_run_shard(out, samples, context, shard, events, stop, now, parent))
        events.put(("final", shard.index, asdict(summary), 0))
    except asyncio.CancelledError:
        pass  # stopped at once; the calls continue from their last checkpoint next time
    except Exception as exc:  # reported by the parent as an unfinished worker; its calls resume next time
        events.put(("error", shard.index, f"{type(exc).__name__}: {exc}", 0))
    events.close()
    events.join_thread()


async def _run_shard(
    out: Path, samples: int, context: Context, shard: Shard, events: Any, stop: Any, now: Any, parent: int
) -> RunSummary:
    graceful = asyncio.Event()
    job = asyncio.ensure_future(run_job(out, samples, context, _ShardReporter(events, shard.index), graceful, shard))

    async def watch() -> None:
        while not job.done():
            if now.is_set() or os.getppid() != parent:
                job.cancel()
            elif stop.is_set():
                graceful.set()
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(watch())
    try:
        return await job
    finally:
        watcher.cancel()


def _die_with(parent: int) -> None:
    """Linux: the kernel kills this worker when the parent dies (elsewhere the watcher sees the parent change)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

"""A whole run: the plan's question-writer calls as checkpointed threads, finished samples stored once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from agents.model_call import NO_LOG, ReplyLog, ReplyNotKept, ThreadReplies, thread_replies
from agents.models import close_pool
from condor_state.context import Context
from condor_state.dataset import Dataset, UnreadableDatabase
from condor_state.rundir import (
    CHECKPOINTS,
    DB_NAME,
    DirectoryInUse,
    SettingsChanged,
    call_of,
    check_settings,
    held,
    hold,
    release,
    run_settings,
    thread_id,
    write_settings,
)
from condor_state.state import BatchInput, BatchState, add_cost
from condor_state.tasks import DIFFICULTIES, QUESTIONS_PER_CALL
from graphs.checkpoints import INPUT_KEY, RunCheckpoints
from graphs.graph import builder, recursion_limit
from graphs.progress import Reporter, RunSummary

T = TypeVar("T")


# Objects a collection of the youngest generation waits for while the engine runs (Python's default: 700). A graph
# step makes thousands that die young; at 700 the collector ran every few steps: 3–5 % of a run's CPU.
YOUNG_GENERATION = 20_000


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the engine on uvloop, libuv's event loop, as vLLM's and SGLang's servers do: the same asyncio API for
    about 7 % fewer instructions per sample than asyncio's own loop here; asyncio's where uvloop is not built
    (Windows). The collector's youngest generation is larger meanwhile."""
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, *thresholds[1:])
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main)
        return uvloop.run(main)
    finally:
        gc.set_threshold(*thresholds)


class RunError(RuntimeError):
    """A run that cannot start; the message is one line for the user."""


@dataclass(frozen=True)
class Shard:
    """One worker process's share of a run split over several: the calls whose index is `index` modulo `count`.

    The parent process has checked the settings and created both databases, and records the run's row itself.
    """

    index: int
    count: int

    def owns(self, call_index: int) -> bool:
        return call_index % self.count == self.index


def two_stage_stop(graceful: Callable[[], None], immediate: Callable[[], None]) -> Callable[..., None]:
    """A Ctrl-C / SIGTERM handler: the first finishes the calls in flight and takes no new ones, the second stops
    at once (the interrupted calls continue from their last checkpoint next time)."""
    stopping = False

    def on_signal(*_: Any) -> None:
        nonlocal stopping
        if stopping:
            print("\n[condor] stopping now; unfinished calls resume from their last checkpoint", file=sys.stderr)
            immediate()
        else:
            stopping = True
            print("\n[condor] finishing the calls in flight (Ctrl-C again to stop now)", file=sys.stderr)
            graceful()

    return on_signal


def calls_for(samples: int) -> list[tuple[int, int]]:
    """(call index, questions kept) for every question-writer call of an N-sample run."""
    full, rest = divmod(samples, QUESTIONS_PER_CALL)
    calls = [(i, QUESTIONS_PER_CALL) for i in range(full)]
    return calls + ([(full, rest)] if rest else [])


def prepare(out: Path, samples: int, context: Context) -> dict[str, Any]:
    """Everything checked before any work, in one process or the parent of workers: this process holds the
    directory, its databases are readable, --samples does not shrink below what is stored, and the settings
    match the recorded ones once the directory holds any work. Returns the settings; a refusal gives the
    directory back."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        was_held = out.resolve() in held()
        hold(out)
    except (DirectoryInUse, OSError) as exc:
        raise RunError(str(exc)) from None
    try:
        return _checked(out, samples, context)
    except RunError:
        if not was_held:
            release(out)
        raise


def _checked(out: Path, samples: int, context: Context) -> dict[str, Any]:
    try:
        stored = _stored(out)
    except (UnreadableDatabase, OSError) as exc:
        raise RunError(str(exc)) from None
    if stored > samples:
        raise RunError(f"{out} already holds {stored} samples; --samples must be at least {stored}")
    settings = run_settings(context)
    if not (stored or _checkpointed(out / CHECKPOINTS)):
        write_settings(out, settings)  # nothing made yet: the record follows the settings
        return settings
    try:
        check_settings(out, settings)
    except SettingsChanged as exc:
        raise RunError(str(exc)) from None
    return settings


def _stored(out: Path) -> int:
    """Samples the directory holds, read without creating a database (an unreadable one raises)."""
    if not (out / DB_NAME).exists():
        return 0
    dataset = Dataset.in_dir(out)
    try:
        return dataset.count()
    finally:
        dataset.close()


def _checkpointed(checkpoints: Path) -> bool:
    """Whether the checkpoint database holds any thread; an unreadable one is a RunError."""
    if not checkpoints.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(checkpoints)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            kept = [table for table in ("checkpoint_replies", "checkpoints") if table in tables]
            return any(conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None for table in kept)
    except sqlite3.DatabaseError as exc:
        raise RunError(f"{checkpoints} is not a readable checkpoint database ({exc})") from None


async def final_state(
    graph: CompiledStateGraph[Any, Any, Any, Any], start: Any, config: Any, context: Context
) -> BatchState:
    """The thread's last state; "v2" streams only the values, not also every step's updates (as "v1" does)."""
    return cast(BatchState, (await graph.ainvoke(start, config, context=context, version="v2")).value)


async def finish_thread(
    graph: CompiledStateGraph[Any, Any, Any, Any], config: Any, context: Context
) -> BatchState | None:
    """A thread checkpointed step by step (as runs before the thread log were): continue from its pending tasks;
    take its saved values when it finished before a crash (not stored yet); None when it holds nothing.

    Pending tasks, not StateSnapshot.next, decide: a step killed after saving its writes but before its checkpoint
    has no `next` and stale values; resuming applies the saved writes and goes on.
    """
    snapshot = await graph.aget_state(config)
    if snapshot.tasks:
        return cast(BatchState, await graph.ainvoke(None, config, context=context, durability="sync"))
    return cast(BatchState, snapshot.values) or None


async def replayed(log: dict[str, str], context: Context) -> StateSnapshot:
    """An unfinished thread's state rebuilt from its log without a model: its steps re-run on the kept replies up
    to the first request that has none (what `show` displays of a call in progress)."""
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "replay"}, "recursion_limit": recursion_limit(context)}
    replies = dict(log)
    start = json.loads(replies.pop(INPUT_KEY))
    thread_replies.set(ThreadReplies(NO_LOG, "replay", replies, asks=False))
    with contextlib.suppress(ReplyNotKept):
        await graph.ainvoke(start, config, context=context, durability="sync")
    return await graph.aget_state(config)


async def run_job(
    out: Path,
    samples: int,
    context: Context,
    reporter: Reporter | None = None,
    stop: asyncio.Event | None = None,
    shard: Shard | None = None,
) -> RunSummary:
    """Run every unfinished call of the plan (or of one shard of it) with at most `concurrency` requests in flight.

    Setting `stop` lets calls in flight finish and takes no new ones; cancelling the task stops at once, and the
    cancelled calls resume from their last checkpoint next time. A directory this process already holds was
    prepared by whoever took it (graphs.run's main, or the parent of workers), so it is not checked twice.
    """
    started, wall_started = time.monotonic(), time.time()
    held_before = out.resolve() in held()
    settings = run_settings(context) if shard or held_before else prepare(out, samples, context)
    owns = shard.owns if shard else lambda _: True
    dataset = Dataset.in_dir(out)
    summary = RunSummary(samples=samples, cost=0.0 if context.priced else None)
    stop = stop or asyncio.Event()
    calls = [(i, keep) for i, keep in calls_for(samples) if owns(i)]
    left = len(calls)
    try:
        with RunCheckpoints.open(out / CHECKPOINTS) as saver:
            left = await run_calls(calls, context, dataset, saver, summary, stop, owns, reporter)
    except asyncio.CancelledError:
        summary.interrupted = True
        raise
    finally:
        summary.interrupted = summary.interrupted or left > 0 or stop.is_set()
        summary.total_done = dataset.count("done")
        summary.total_failed = dataset.count("failed")
        summary.seconds = time.monotonic() - started
        if shard is None:
            dataset.record_run(run_row(summary, wall_started, settings))
        dataset.close()
        if shard is None and not held_before:
            release(out)
        await close_pool()
        if reporter:
            reporter.close()
    return summary


class Store(Protocol):
    """What the engine asks of a run's store: condor.db (Dataset) or a cluster's Postgres (PostgresDataset)."""

    def write_batch(self, state: BatchState) -> list[dict[str, Any]]: ...
    def stored_per_call(self) -> dict[int, int]: ...
    def stored_levels(self, call_index: int) -> list[str]: ...
    def questions_of(self, call_index: int) -> dict[str, str]: ...


class Saver(ReplyLog, Protocol):
    """Where threads are kept: each one's log (its input, then every reply as it arrives), and the LangGraph
    checkpoints of threads begun before the log (RunCheckpoints, or the cluster's Postgres one)."""

    async def athread_ids(self) -> set[str]:
        """Every thread with a log or a checkpoint."""
        ...

    async def adelete_thread(self, thread_id: str) -> None: ...
    async def areplies(self, thread_id: str) -> dict[str, str]: ...


class Claims(Protocol):
    """Exclusive hold of a call across the machines of a cluster, freed by the store if the holder dies."""

    def take(self, call_index: int) -> bool: ...
    def give_back(self, call_index: int) -> None: ...


async def run_calls(
    calls: list[tuple[int, int]],
    context: Context,
    dataset: Store,
    saver: Saver,
    summary: RunSummary,
    stop: asyncio.Event,
    owns: Callable[[int], bool],
    reporter: Reporter | None = None,
    claims: Claims | None = None,
) -> int:
    """The engine: every call of `calls` not stored yet, its thread finished or begun, its samples stored once.

    With `claims` (a cluster) a call is run only while held, and what is stored and checkpointed is read again
    after taking it: another worker may have finished it since this one started. Returns the calls left unstarted.
    """
    stored = dataset.stored_per_call()
    pending = [(i, keep) for i, keep in calls if stored.get(i, 0) < keep]
    summary.stored_before = sum(min(stored.get(i, 0), keep) for i, keep in calls)
    queue = deque(pending)
    in_flight = 0
    # A thread's durable record is its log (input and replies, kept as they come): re-running its steps on the
    # kept replies rebuilds it, so no step is checkpointed. Threads checkpointed by earlier versions still finish.
    graph = builder.compile()
    checkpointed = functools.cache(lambda: builder.compile(checkpointer=cast(Any, saver)))  # only for such threads
    existing = await _threads_to_resume(saver, context.seed, {i for i, _ in pending}, owns)
    summary.resumed_threads = len(existing)

    def store(final: BatchState, keep: int) -> None:
        kept = DIFFICULTIES[:keep]  # a thread begun for more questions than the run now wants keeps fewer
        final = {**final, "samples": [s for s in final.get("samples", []) if s["difficulty"] in kept]}
        for row in dataset.write_batch(final):
            _count(summary, row)

    async def run_call(call_index: int, keep: int) -> None:
        """Finish the call's unfinished thread, then write whatever of its `keep` questions is missing
        (a larger run continues a call from the questions it wrote before)."""
        tid = thread_id(context.seed, call_index)
        config: Any = {"configurable": {"thread_id": tid}, "recursion_limit": recursion_limit(context)}
        resumed = tid in existing or claims is not None
        replies = ThreadReplies(saver, tid, await saver.areplies(tid) if resumed else {})
        thread_replies.set(replies)  # this worker task's own context: the graph's tasks inherit it
        if resumed:
            kept_input = replies.recorded.pop(INPUT_KEY, None)
            final = (  # re-run on the kept replies; a thread checkpointed by an earlier version continues from it
                await final_state(graph, json.loads(kept_input), config, context)
                if kept_input is not None
                else await finish_thread(checkpointed(), config, context)
            )
            if final is not None:
                store(final, keep)
            await saver.adelete_thread(tid)
            replies.recorded.clear()
        levels = dataset.stored_levels(call_index) if stored.get(call_index) or resumed else []
        if len(levels) >= keep:
            return
        start: BatchInput = {"call_index": call_index, "keep": keep}
        if levels:
            start |= {"questions": dataset.questions_of(call_index), "stored_levels": levels}
        await saver.arecord_reply(tid, INPUT_KEY, json.dumps(start, ensure_ascii=False))  # the log's first entry
        store(await final_state(graph, start, config, context), keep)
        await saver.adelete_thread(tid)

    async def claimed(call_index: int, keep: int) -> None:
        if claims is None:
            return await run_call(call_index, keep)
        if not claims.take(call_index):
            return  # another worker holds it; the driver sees it stored, or offers it again
        try:
            await run_call(call_index, keep)
        finally:
            claims.give_back(call_index)

    async def worker() -> None:
        nonlocal in_flight
        while queue and not stop.is_set():
            call_index, keep = queue.popleft()
            in_flight += 1
            try:
                await claimed(call_index, keep)
            except Exception as exc:  # keep going; the thread stays checkpointed for the next run
                summary.unfinished.append(f"call {call_index}: {type(exc).__name__}: {exc}")
            finally:
                in_flight -= 1
                if reporter:
                    reporter.update(summary, in_flight)

    # twice as many calls as request slots: a call waiting on its one question-writer request
    # must not leave a slot idle; the request gate still bounds requests in flight
    workers = max(1, min(len(pending), 1 if context.embedded else 2 * context.concurrency))
    if reporter:
        reporter.update(summary, 0)
    await asyncio.gather(*(worker() for _ in range(workers)))
    return len(queue)


def run_row(summary: RunSummary, started_at: float, settings: dict[str, Any]) -> dict[str, Any]:
    """The `runs` table's row for one invocation."""
    return {
        "started_at": started_at,
        "seconds": round(summary.seconds, 3),
        "samples": summary.samples,
        "done": summary.done,
        "failed": summary.failed,
        "revisions": summary.revisions,
        "tokens_in": summary.tokens_in,
        "tokens_out": summary.tokens_out,
        "cost": summary.cost,  # None (NULL) when no price was given
        "interrupted": summary.interrupted,
        "settings": json.dumps(settings, ensure_ascii=False),
    }


async def _threads_to_resume(saver: Saver, seed: int, pending: set[int], owns: Callable[[int], bool]) -> set[str]:
    """Checkpointed threads of pending calls; this shard's threads of calls already stored are deleted (leftovers
    of a crash between storing a call and deleting its thread)."""
    threads = await saver.athread_ids()
    wanted = {thread_id(seed, i) for i in pending}
    for leftover in threads - wanted:
        call = call_of(leftover, seed)
        if call is not None and owns(call):
            await saver.adelete_thread(leftover)
    return threads & wanted


def _count(summary: RunSummary, row: dict[str, Any]) -> None:
    summary.revisions += row["rounds"] or 0
    summary.tokens_in += row["tokens_in"] or 0
    summary.tokens_out += row["tokens_out"] or 0
    summary.cost = add_cost(summary.cost, row["cost"])
    if row["status"] == "done":
        summary.done += 1
    else:
        summary.failed += 1

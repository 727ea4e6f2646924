"""A run on a Ray cluster with a Postgres store: the plan's calls in chunks as Ray tasks, exactly once.

The driver checks the settings against those the store recorded, creates the tables once, and keeps at most one
chunk per task slot in flight, each with its share of --concurrency, so the bound holds across the cluster. A task
runs the same engine as one machine (graphs.runner.run_calls) over its chunk, with Postgres checkpoints, and
holds each call by a Postgres advisory lock while it runs it: a lost node's locks are freed with its connections,
Ray runs its chunk again elsewhere, and the retry continues every call from its last checkpoint and skips the
stored ones. Ray and psycopg are imported only here, on the cluster path.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agents.models import close_pool, pool
from condor_state.context import Context
from condor_state.rundir import (
    SETTINGS,
    DirectoryInUse,
    SettingsChanged,
    call_of,
    hold,
    read_settings,
    refuse_changes,
    run_settings,
    write_settings,
)
from condor_state.state import add_cost
from graphs.progress import Reporter, RunSummary
from graphs.runner import RunError, calls_for, run_calls, run_loop, run_row

CHUNKS_PER_SLOT = 4  # chunks per task slot, when the run is large enough: a lost node's share is soon run elsewhere
TASK_RETRIES = 5  # Ray runs a chunk again this often when its worker or node dies
CLIENT_ATTEMPTS = 3  # Ray Client connections tried while its proxy fails to start the per-client server
CANCEL_GRACE_S = 5.0  # how long a cancelled chunk may take to unwind before its worker process is killed
ROUNDS = 3  # offers of still-missing calls (held by a dying worker, or failed) before the driver gives up
# Secrets reach each task as an argument, set into its worker's environment there: a runtime_env's env_vars would
# be written in plain text to Ray's runtime_env_agent.log on every node.
SECRETS = ("OPENAI_API_KEY", "PGPASSWORD", "PGPASSFILE")


def store_problem(url: str) -> str | None:
    """What is wrong with a --store URL, in one line, or None: a password in it would be written to run.json."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        return f"--store must be a postgresql:// URL, not {url!r}"
    if parts.password:
        return "--store must not hold a password: put it in PGPASSWORD or ~/.pgpass, as for psql"
    return None


def run_on_ray(out: Path, samples: int, context: Context, address: str, url: str, reporter: Reporter) -> RunSummary:
    """The driver: settings checked and recorded, chunks submitted and offered again until every call is stored."""
    from condor_state.postgres import PostgresDataset, StoreError

    started, wall_started = time.monotonic(), time.time()
    settings = run_settings(context)
    try:
        store = PostgresDataset(url)
        store.setup()
    except StoreError as exc:
        raise RunError(str(exc)) from None
    try:
        _check(out, samples, settings, url, store)
        asyncio.run(_setup_checkpoints(url))
        _connect(address)
        return _drive(out, samples, context, url, store, reporter, settings, started, wall_started)
    finally:
        store.close()


def _check(out: Path, samples: int, settings: dict[str, Any], url: str, store: Any) -> None:
    """One driver per DIR; the store and DIR agree on the run; --samples does not shrink below what is stored."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        hold(out)
    except (DirectoryInUse, OSError) as exc:
        raise RunError(str(exc)) from None
    recorded_store = read_settings(out).get("store")
    if (out / SETTINGS).exists() and recorded_store != url:
        raise RunError(f"{out} belongs to {'another store' if recorded_store else 'a local run'}; use a new --out")
    stored = store.count()
    if stored > samples:
        raise RunError(f"the store already holds {stored} samples; --samples must be at least {stored}")
    before = store.read_settings()
    if before is not None:
        try:
            refuse_changes(before, settings, "the store's run")
        except SettingsChanged as exc:
            raise RunError(str(exc)) from None
    else:
        store.write_settings(settings)
    write_settings(out, {**settings, "store": url})


async def _setup_checkpoints(url: str) -> None:
    async with _checkpoints(url) as saver:
        await saver.setup()


def _connect(address: str) -> None:
    """Start a local Ray, join this machine's cluster (auto) or connect to an address."""
    import ray

    options: dict[str, Any] = {"logging_level": "ERROR"}
    if address not in {"local", "auto"} and not address.startswith("ray://"):
        _reachable(address)  # ray.init retries an unreachable GCS address for minutes
    if address.startswith("ray://") and not os.environ.get("RAY_AUTH_MODE") and _ray_token():
        # Ray turns token authentication on where a token exists, but Ray Client does not: without this its
        # requests reach a token-authenticated cluster with no token and time out
        os.environ["RAY_AUTH_MODE"] = "token"
    for attempt in range(CLIENT_ATTEMPTS):
        try:
            if address == "local":
                ray.init(include_dashboard=False, **options)
            else:
                ray.init(address=address, **options)
            return
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError… for an unreachable cluster
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            if "client server failed" in reason and attempt + 1 < CLIENT_ATTEMPTS:
                continue  # Ray Client's proxy lost the fork of its per-client server (a gRPC race); a new one is made
            raise RunError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _ray_token() -> bool:
    """Whether this machine has a Ray authentication token where Ray looks for one."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def _reachable(address: str) -> None:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
    except ValueError:
        raise RunError(f"--ray {address}: expected local, auto, HOST:PORT or ray://HOST:PORT") from None
    except OSError as exc:
        raise RunError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _drive(
    out: Path,
    samples: int,
    context: Context,
    url: str,
    store: Any,
    reporter: Reporter,
    settings: dict[str, Any],
    started: float,
    wall_started: float,
) -> RunSummary:
    import ray

    plan = calls_for(samples)
    summary = RunSummary(samples=samples, stored_before=store.count(), cost=0.0 if context.priced else None)
    base = {"done": store.count("done"), "failed": store.count("failed")}
    slots = max(1, min(context.concurrency, int(ray.cluster_resources().get("CPU", 1))))
    task = ray.remote(run_chunk).options(num_cpus=1, max_retries=TASK_RETRIES)
    secrets = {name: os.environ[name] for name in SECRETS if os.environ.get(name)}
    budget = None
    if context.rpm > 0:  # on the head node, which lives as long as the cluster
        actor = ray.remote(RequestTimes).options(num_cpus=0, resources={"node:__internal_head__": 0.001})
        budget = (actor.remote(context.rpm), max(1, min(32, int(context.rpm / 60 / slots))))
    stopping = False

    def on_signal(*_: Any) -> None:
        nonlocal stopping
        if not stopping:
            print("\n[condor] stopping: cancelling the cluster's tasks; re-run to resume", file=sys.stderr)
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(ROUNDS):
            stored = store.stored_per_call()
            pending = [(i, keep) for i, keep in plan if stored.get(i, 0) < keep]
            if not pending or stopping:
                break
            # at least enough calls to keep a slot's share of requests busy (the engine keeps two calls per slot)
            size = max(math.ceil(len(pending) / (slots * CHUNKS_PER_SLOT)), 4 * math.ceil(context.concurrency / slots))
            queue = [pending[i : i + size] for i in range(0, len(pending), size)]
            running: dict[Any, int] = {}  # task -> its slot
            free = list(range(slots))
            while (queue or running) and not stopping:
                while queue and free:
                    slot = free.pop()
                    chunk_context = replace(context, **_share(context, slot, slots))
                    chunk = queue.pop(0)
                    running[task.remote(url, _fields(chunk_context), chunk, samples, budget, secrets)] = slot
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in ready:
                    free.append(running.pop(ref))
                    try:
                        _add(summary, ray.get(ref))
                    except Exception as exc:  # a chunk that failed every retry: its calls are offered again
                        summary.unfinished.append(f"chunk: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                summary.done = store.count("done") - base["done"]
                summary.failed = store.count("failed") - base["failed"]
                reporter.update(summary, len(running))
            if stopping:
                _cancel(list(running))
        if not stopping:
            asyncio.run(_delete_leftovers(url, context.seed, dict(plan), store))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stored = store.stored_per_call()
        missing = sum(max(0, keep - stored.get(i, 0)) for i, keep in plan)
        summary.done = store.count("done") - base["done"]
        summary.failed = store.count("failed") - base["failed"]
        summary.total_done, summary.total_failed = store.count("done"), store.count("failed")
        summary.interrupted = stopping
        if missing and not stopping and not summary.unfinished:
            summary.unfinished.append(f"{missing} samples still missing after {ROUNDS} offers")
        summary.seconds = time.monotonic() - started
        store.record_run(run_row(summary, wall_started, settings))
        reporter.close()
        ray.shutdown()
    return summary


async def _delete_leftovers(url: str, seed: int, keep: dict[int, int], store: Any) -> None:
    """Threads of calls stored in full: a worker killed between storing a call and deleting its thread leaves one,
    and no chunk owns a stored call. Each is deleted under its call's claim, so a straggler still finishing it wins."""
    stored = store.stored_per_call()
    claims = store.claims()
    try:
        async with _checkpoints(url) as saver:
            for tid in await saver.athread_ids():
                call = call_of(tid, seed)
                if call is None or call not in keep or stored.get(call, 0) < keep[call] or not claims.take(call):
                    continue
                try:
                    await saver.adelete_thread(tid)
                finally:
                    claims.give_back(call)
    finally:
        claims.close()


def _cancel(tasks: list[Any]) -> None:
    """Cancel the chunks: an interrupt in each task first (its calls stop at their next await), then, for any still
    running after the grace period, the worker process killed, which a store of exactly-once calls treats like a lost
    node (its requests in flight are asked again next time)."""
    import ray

    for ref in tasks:
        ray.cancel(ref)
    _, left = ray.wait(tasks, num_returns=len(tasks), timeout=CANCEL_GRACE_S)
    for ref in left:
        ray.cancel(ref, force=True)
    if left:
        ray.wait(left, num_returns=len(left), timeout=CANCEL_GRACE_S)


def _share(context: Context, slot: int, slots: int) -> dict[str, Any]:
    """A task slot's part of the request slots (--rpm is one budget for all: the RequestTimes actor)."""
    concurrency = context.concurrency // slots + (1 if slot < context.concurrency % slots else 0)
    return {"concurrency": max(1, concurrency)}


class RequestTimes:
    """The cluster's --rpm: one actor on the head node hands out send times spaced 60/rpm apart, in batches, so
    all workers together never exceed the rate however the load moves between them."""

    def __init__(self, rpm: float) -> None:
        self.gap = 60.0 / rpm
        self.next = time.monotonic()

    def grant(self, count: int) -> list[float]:
        """Delays from now at which `count` requests may leave."""
        now = time.monotonic()
        self.next = max(self.next, now)
        delays = [self.next + k * self.gap - now for k in range(count)]
        self.next += count * self.gap
        return delays


class SharedBudget:
    """A worker's side of RequestTimes: send times fetched a batch at a time, each used once."""

    def __init__(self, actor: Any, batch: int) -> None:
        self.actor = actor
        self.batch = batch
        self.times: deque[float] = deque()
        self.fetching = asyncio.Lock()

    async def aacquire(self) -> None:
        async with self.fetching:
            if not self.times:
                now = time.monotonic()
                self.times.extend(now + delay for delay in await self.actor.grant.remote(self.batch))
            at = self.times.popleft()
        await asyncio.sleep(max(0.0, at - time.monotonic()))


def _fields(context: Context) -> dict[str, Any]:
    return {f.name: getattr(context, f.name) for f in fields(context)}


def _add(summary: RunSummary, part: dict[str, Any]) -> None:
    for name in ("revisions", "tokens_in", "tokens_out", "resumed_threads"):
        setattr(summary, name, getattr(summary, name) + part.get(name, 0))
    summary.unfinished.extend(part.get("unfinished", []))
    summary.cost = add_cost(summary.cost, part.get("cost"))


def run_chunk(
    url: str,
    settings: dict[str, Any],
    calls: list[tuple[int, int]],
    samples: int,
    budget: tuple[Any, int] | None,
    secrets: dict[str, str],
) -> dict[str, Any]:
    """A Ray task: the engine over one chunk of calls, on this worker's own event loop."""
    os.environ.update(secrets)  # this job's worker process only: the model client and libpq read them here
    chunk = [(int(i), int(keep)) for i, keep in calls]
    return run_loop(_run_chunk(url, Context(**settings), chunk, samples, budget))


async def _run_chunk(
    url: str, context: Context, calls: list[tuple[int, int]], samples: int, budget: tuple[Any, int] | None
) -> dict[str, Any]:
    from condor_state.postgres import PostgresDataset

    if budget is not None:
        pool().budget = SharedBudget(*budget)

    store = PostgresDataset(url)
    claims = store.claims()
    summary = RunSummary(samples=samples, cost=0.0 if context.priced else None)
    chunk = {i for i, _ in calls}
    try:
        async with _checkpoints(url) as saver:
            await run_calls(calls, context, store, saver, summary, asyncio.Event(), chunk.__contains__, claims=claims)
    finally:
        claims.close()
        store.close()
        await close_pool()
    return asdict(summary)


@asynccontextmanager
async def _checkpoints(url: str) -> AsyncIterator[Any]:
    """LangGraph's AsyncPostgresSaver over a small pool, able to list its threads as RunCheckpoints does."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from condor_state.postgres import KEEPALIVES, SERVER_KEEPALIVES
    from graphs.checkpoints import REPLIES_TABLE

    class ClusterCheckpoints(AsyncPostgresSaver):
        async def setup(self) -> None:
            await super().setup()
            async with connections.connection() as conn:
                await conn.execute(REPLIES_TABLE)

        async def athread_ids(self) -> set[str]:
            async with connections.connection() as conn:
                query = "SELECT thread_id FROM checkpoint_replies UNION SELECT thread_id FROM checkpoints"
                cursor = await conn.execute(query)
                return {row["thread_id"] for row in await cursor.fetchall()}

        async def arecord_reply(self, thread_id: str, key: str, reply: str) -> None:
            async with connections.connection() as conn:
                await conn.execute(
                    "INSERT INTO checkpoint_replies VALUES (%s, %s, %s)"
                    " ON CONFLICT (thread_id, key) DO UPDATE SET reply = EXCLUDED.reply",
                    (thread_id, key, reply),
                )

        async def areplies(self, thread_id: str) -> dict[str, str]:
            async with connections.connection() as conn:
                cursor = await conn.execute(
                    "SELECT key, reply FROM checkpoint_replies WHERE thread_id = %s", (thread_id,)
                )
                return {row["key"]: row["reply"] for row in await cursor.fetchall()}

        async def adelete_thread(self, thread_id: str) -> None:
            """The thread's checkpoints and replies; the replies first, so none outlives its thread."""
            async with connections.connection() as conn:
                await conn.execute("DELETE FROM checkpoint_replies WHERE thread_id = %s", (thread_id,))
            await super().adelete_thread(thread_id)

    kwargs = {**KEEPALIVES, "options": SERVER_KEEPALIVES, "autocommit": True, "prepare_threshold": 0}
    kwargs["row_factory"] = dict_row
    connections: AsyncConnectionPool[Any] = AsyncConnectionPool(url, min_size=1, max_size=4, kwargs=kwargs, open=False)
    await connections.open()
    try:
        yield ClusterCheckpoints(connections)
    finally:
        await connections.close()

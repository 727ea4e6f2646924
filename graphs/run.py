"""`python -m graphs.run --samples N --out DIR`: synthesize N refined samples into DIR/condor.db, resumably."""

from __future__ import annotations

import gc

from graphs.startup import imported

# The engine with all it imports (LangGraph, LangChain's chat-model base, aiohttp) first, the fast way (see
# graphs.startup); the statements below then find it imported.
imported("graphs.runner")

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from agents.models import ModelUnavailable, check_model, client_module, gguf_path
from condor_state.context import Context
from condor_state.plan import LanguageMixError, parse_language_mix, parse_root_weights
from condor_state.tree import TreeError, load_tree
from graphs.options import OneLineParser, add_context_flags, context_from, fail
from graphs.processes import auto_processes, can_fork, run_in_processes
from graphs.progress import RunSummary, reporter
from graphs.runner import RunError, prepare, run_job, run_loop, two_stage_stop

PROG = "python -m graphs.run"


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Synthesize Condor SFT samples (questions, answers, critique rounds).")
    p.add_argument("--samples", type=int, required=True, help="number of sample rows the run ends with")
    p.add_argument("--out", required=True, help="run directory (condor.db, checkpoints.db, run.json)")
    add_context_flags(p)
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        help="worker processes sharing the request slots (default: one per 16 slots, at most one per core; "
        "the embedded model always uses one)",
    )
    p.add_argument(
        "--ray",
        metavar="local|auto|ADDRESS",
        help="run on Ray: local (start one on this machine), auto (join this machine's cluster), or a cluster "
        "address (HOST:PORT, or ray://HOST:PORT for Ray Client); needs --store",
    )
    p.add_argument(
        "--store",
        metavar="postgresql://USER@HOST:PORT/DB",
        help="the Postgres database a Ray run's workers share (password from PGPASSWORD or ~/.pgpass); needs --ray",
    )
    return p


def validate(args: object, context: Context) -> None:
    """Every user mistake found here, before any work: one line each."""
    a = vars(args)
    if a["samples"] < 1:
        fail(PROG, "--samples must be at least 1", 2)
    if a["processes"] < 0 or a["processes"] > context.concurrency:
        fail(PROG, "--processes must be between 1 and --concurrency (0: automatic)", 2)
    if a["processes"] > 1 and not can_fork():
        fail(PROG, "--processes above 1 needs a system with fork (Linux, macOS)", 2)
    try:
        tree = load_tree(context.tree or None)
        parse_language_mix(context.languages, tree.languages)
        parse_root_weights(context.root_weights, tree)
    except (TreeError, LanguageMixError) as exc:
        fail(PROG, str(exc))
    out = Path(a["out"])
    if out.exists() and not out.is_dir():
        fail(PROG, f"--out {out} exists and is not a directory")
    if bool(a["ray"]) != bool(a["store"]):
        fail(PROG, "--ray and --store go together: Ray workers share the run through the Postgres store", 2)
    if a["ray"]:
        from graphs.cluster import store_problem

        if problem := store_problem(a["store"]):
            fail(PROG, problem, 2)
        if context.embedded:
            fail(PROG, "--ray needs a served model (--base-url): each worker would load the embedded one", 2)
        if a["processes"] > 1:
            fail(PROG, "--processes is for one machine; on Ray, --concurrency is split across the task slots", 2)


async def run_until_stopped(out: Path, samples: int, context: Context) -> RunSummary:
    """First Ctrl-C (or SIGTERM): finish calls in flight, start no new ones. Second Ctrl-C: stop now."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    job = asyncio.ensure_future(run_job(out, samples, context, reporter(), stop))

    def stop_now() -> None:
        job.cancel()

    on_signal = two_stage_stop(stop.set, stop_now)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    return await job


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    context = context_from(PROG, args)
    validate(args, context)
    if (module := client_module(context)) and not args.ray:  # a Ray driver sends no request itself
        imported(module)  # the served model's client (aiohttp, LangChain's chat-model base) the fast way, not lazily
    gc.freeze()  # what the imports made lives as long as the process: collections skip it from now on
    if args.ray:
        return finish(run_cluster(args, context))
    try:
        prepare(Path(args.out), args.samples, context)
    except RunError as exc:
        fail(PROG, str(exc))
    try:
        check_model(context)
    except ModelUnavailable as exc:
        fail(PROG, str(exc))
    where = context.base_url or f"embedded {gguf_path(context.model).name}"
    processes = 1 if context.embedded else args.processes or auto_processes(context)
    workers = f" in {processes} processes" if processes > 1 else ""
    print(f"[condor] {args.samples} samples -> {args.out} using {where}{workers}", file=sys.stderr, flush=True)
    try:
        if processes > 1:
            summary = run_in_processes(Path(args.out), args.samples, context, processes, reporter())
        else:
            summary = run_loop(run_until_stopped(Path(args.out), args.samples, context))
    except RunError as exc:
        fail(PROG, str(exc))
    except (KeyboardInterrupt, asyncio.CancelledError):
        fail(PROG, "stopped; finished samples are stored, re-run the same command to resume", 130)
    return finish(summary)


def run_cluster(args: Any, context: Context) -> RunSummary:
    """The run on Ray with the Postgres store (graphs.cluster), after the same endpoint check."""
    from graphs.cluster import run_on_ray

    try:
        check_model(context)
    except ModelUnavailable as exc:
        fail(PROG, str(exc))
    print(f"[condor] {args.samples} samples -> {args.store} on Ray ({args.ray}) using {context.base_url}",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        return run_on_ray(Path(args.out), args.samples, context, args.ray, args.store, reporter())
    except RunError as exc:
        fail(PROG, str(exc))


def finish(summary: RunSummary) -> int:
    """The summary printed; the exit status says whether the run is complete."""
    for line in summary.lines():
        print(line)
    if summary.interrupted:
        return 130
    if summary.unfinished:
        for problem in summary.unfinished[:5]:
            print(f"unfinished: {problem}", file=sys.stderr)
        fail(PROG, f"{len(summary.unfinished)} calls did not finish; re-run the same command to resume them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

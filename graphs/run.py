"""`python -m graphs.run --samples N --out DIR`: synthesize N refined samples into DIR/condor.db, resumably."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from condor_state.context import Context
from condor_state.plan import LanguageMixError, parse_language_mix, parse_root_weights
from condor_state.tree import TreeError, load_tree
from graphs.cli import OneLineParser, add_context_flags, context_from, fail
from graphs.models import ModelUnavailable, embedded_model, gguf_path
from graphs.processes import auto_processes, can_fork, run_in_processes
from graphs.runner import (
    BarReporter,
    LogReporter,
    Reporter,
    RunError,
    RunSummary,
    prepare,
    run_job,
    two_stage_stop,
)

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


def check_model(context: Context) -> None:
    """Fail fast, in one line, when the model cannot be used at all."""
    if context.embedded:
        gguf_path(context.model)
        embedded_model(context.model, context.n_ctx)
        return
    from openai import APIConnectionError, APIStatusError, AuthenticationError, OpenAI

    client = OpenAI(
        base_url=context.base_url, api_key=os.environ.get("OPENAI_API_KEY") or "not-needed", timeout=15, max_retries=1
    )
    try:
        client.models.list()
    except AuthenticationError:
        raise ModelUnavailable(f"{context.base_url} refused the API key (set OPENAI_API_KEY)") from None
    except APIConnectionError as exc:
        raise ModelUnavailable(f"cannot reach {context.base_url}: {exc.__cause__ or exc}") from None
    except APIStatusError:
        pass  # some servers do not list models; the endpoint answered, which is what matters here


def reporter() -> Reporter:
    """A progress bar on a terminal, plain periodic log lines otherwise."""
    return BarReporter() if sys.stderr.isatty() else LogReporter()


async def run_until_stopped(out: Path, samples: int, context: Context) -> RunSummary:
    """First Ctrl-C (or SIGTERM): finish calls in flight, start no new ones. Second Ctrl-C: stop now."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    job = asyncio.ensure_future(run_job(out, samples, context, reporter(), stop))
    on_signal = two_stage_stop(stop.set, job.cancel)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    return await job


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    context = context_from(PROG, args)
    validate(args, context)
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
            summary = asyncio.run(run_until_stopped(Path(args.out), args.samples, context))
    except RunError as exc:
        fail(PROG, str(exc))
    except (KeyboardInterrupt, asyncio.CancelledError):
        fail(PROG, "stopped; finished samples are stored, re-run the same command to resume", 130)
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

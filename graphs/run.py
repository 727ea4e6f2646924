"""`python -m graphs.run --samples N --out DIR`: synthesize N refined samples into DIR/condor.db, resumably."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path

from condor_state.context import Context
from condor_state.plan import LanguageMixError, parse_language_mix, parse_root_weights
from condor_state.tree import TreeError, load_tree
from graphs.cli import OneLineParser, fail
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
    p.add_argument(
        "--base-url", default="", help="OpenAI-compatible endpoint (default: env OPENAI_BASE_URL, else embedded)"
    )
    p.add_argument("--model", default="", help="model name for every role (default: env CONDOR_MODEL)")
    for role in ("question-writer", "responder", "critic", "reviser"):
        p.add_argument(f"--{role}-model", default="", help=f"model for the {role} (default: --model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling plan (default 0)")
    p.add_argument("--max-rounds", type=int, default=2, help="most revisions per sample (default 2)")
    p.add_argument("--threshold", type=int, default=8, help="critic score that accepts an answer (default 8)")
    p.add_argument("--tree", default="", help="knowledge tree file, YAML or JSON (default: the bundled tree)")
    p.add_argument("--languages", default="en=0.5,zh=0.5", help="language mix (default en=0.5,zh=0.5)")
    p.add_argument("--root-weights", default="", help="draw some root domains more often, e.g. Health=2,Travel=0.5")
    p.add_argument("--concurrency", type=int, default=16, help="most model requests in flight, all roles (default 16)")
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        help="worker processes sharing the request slots (default: one per 16 slots, at most one per core; "
        "the embedded model always uses one)",
    )
    p.add_argument("--rpm", type=float, default=0, help="most requests per minute, for hosted APIs (default: no limit)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    p.add_argument("--max-tokens", type=int, default=0, help="most tokens per reply (default 1024; embedded: 384)")
    p.add_argument("--max-repairs", type=int, default=1, help="re-asks after an unparsable reply (default 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per model request (default 300)")
    return p


def context_from(args: object) -> Context:
    """Flags map one to one onto Context fields (dashes become underscores); the tree path is made absolute."""
    given = vars(args)
    settings = {f.name: given[f.name] for f in fields(Context) if f.name in given}
    settings["tree"] = str(Path(given["tree"]).resolve()) if given["tree"] else ""
    return Context(**settings)


def validate(args: object, context: Context) -> None:
    """Every user mistake found here, before any work: one line each."""
    a = vars(args)
    if a["samples"] < 1:
        fail(PROG, "--samples must be at least 1", 2)
    too_few_tokens = 0 < a["max_tokens"] < 16
    if a["max_rounds"] < 0 or a["concurrency"] < 1 or too_few_tokens or a["max_repairs"] < 0 or a["rpm"] < 0:
        fail(PROG, "--max-rounds, --max-repairs and --rpm must be >= 0, --concurrency >= 1, --max-tokens >= 16", 2)
    if a["processes"] < 0 or a["processes"] > a["concurrency"]:
        fail(PROG, "--processes must be between 1 and --concurrency (0: automatic)", 2)
    if a["processes"] > 1 and not can_fork():
        fail(PROG, "--processes above 1 needs a system with fork (Linux, macOS)", 2)
    if not 1 <= a["threshold"] <= 10:
        fail(PROG, "--threshold must be between 1 and 10", 2)
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
        embedded_model(context.model)
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
    context = context_from(args)
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

"""Run-engine benchmark: concurrency efficiency, orchestration CPU per sample, peak memory, resume latency.

Everything runs on loopback against benchmarks/openai_stub.py (an OpenAI-compatible server of the project's own,
started here as a separate process), driving the real `python -m graphs.run` as a subprocess.
Run: .venv/bin/python -m benchmarks.bench [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import sqlite_utils

ROOT = Path(__file__).resolve().parent.parent
LATENCY = 0.1


class Stub:
    """The stub server in its own process, so its CPU is not charged to the run being measured."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.openai_stub", "--port", "0", "--latency", str(latency)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> dict[str, Any]:
        return json.loads(urllib.request.urlopen(self.url + path, timeout=10).read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def env() -> dict[str, str]:
    """The environment of every measured command, with bytecode caches on as a user's interpreter keeps them: an
    environment that turns them off (PYTHONDONTWRITEBYTECODE, as this machine's does) charges each start-up the
    compiling of the project's own modules (50-80 ms here), which a user's second run never pays."""
    skipped = ("OPENAI_", "CONDOR_", "PYTHONDONTWRITEBYTECODE")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(skipped)}, "PYTHONPATH": str(ROOT)}


def run(
    stub: Stub,
    out: Path,
    samples: int,
    concurrency: int,
    processes: int = 0,
    extra: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """One graphs.run to completion; wall time, CPU seconds (its worker processes included) and peak RSS."""
    args = ["--samples", str(samples), "--out", str(out), "--base-url", stub.url + "/v1"]
    args += ["--concurrency", str(concurrency), *(["--processes", str(processes)] if processes else []), *extra]
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "graphs.run", *args], cwd=ROOT, env={**env(), **(extra_env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"graphs.run failed: {proc.stderr.read()[-2000:]}")
    return {
        "wall": time.monotonic() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def efficiency(work: Path, concurrency: int, samples: int, latency: float, processes: int) -> dict[str, float]:
    stub = Stub(latency)
    try:
        result = run(stub, work / f"eff-{concurrency}-{latency}-{processes}", samples, concurrency, processes)
        stats = stub.get("/stats")
    finally:
        stub.close()
    span = stats["last_response_at"] - stats["first_request_at"]
    ideal = stats["requests"] * latency / concurrency
    return {
        "requests": stats["requests"],
        "max_in_flight": stats["max_in_flight"],
        "span": span,
        "efficiency": ideal / span,
        "efficiency_whole_command": ideal / result["wall"],
        "cpu_share": result["cpu"] / result["wall"],  # 1.0 = one core busy the whole time
    }


def server_ceiling(concurrency: int, requests: int) -> float:
    """The stub driven by a bare aiohttp client (almost no client CPU): the best efficiency this machine allows."""
    import asyncio

    import aiohttp

    stub = Stub(LATENCY)
    body = {"model": "stub", "messages": [{"role": "user", "content": "What limits the speed of sound?"}]}

    async def drive() -> None:
        gate = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> None:
                if i < concurrency:  # staggered starts: requests in lock-step would leave slots idle between waves
                    await asyncio.sleep(i * LATENCY / concurrency)
                async with gate, session.post(stub.url + "/v1/chat/completions", json=body) as reply:
                    await reply.read()

            await asyncio.gather(*(one(i) for i in range(requests)))

    try:
        asyncio.run(drive())
        stats = stub.get("/stats")
    finally:
        stub.close()
    return stats["requests"] * LATENCY / concurrency / (stats["last_response_at"] - stats["first_request_at"])


def dataflow_problem(python: str) -> str | None:
    """Why `python` cannot run DataFlow's operators, in one line, or None: told before a ten-minute run, not in it."""
    check = "import importlib.util, sys; sys.exit(importlib.util.find_spec('dataflow') is None)"
    try:
        found = subprocess.run([python, "-c", check], capture_output=True).returncode == 0
    except OSError as exc:
        return f"--dataflow {python}: cannot run it: {exc.strerror or exc}"
    return None if found else f"--dataflow {python}: open-dataflow is not installed for that interpreter"


def dataflow_cpu(python: str, stub: Stub, samples: int) -> tuple[float, int]:
    """CPU seconds of OpenDCAI DataFlow's Condor operators on `samples` (imports excluded) and the requests sent."""
    before = stub.get("/stats")["requests"]
    args = [python, "-m", "benchmarks.dataflow_cpu", str(samples), "--base-url", stub.url + "/v1"]
    out = subprocess.run([*args, "--concurrency", "16"], cwd=ROOT, env=env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmarks.dataflow_cpu failed: {out.stderr[-2000:]}")
    figures = json.loads(out.stdout.splitlines()[-1])
    if sorted(figures["rows"].values()) != [samples, samples]:  # the generator's and the refiner's rows: all done
        raise SystemExit(f"DataFlow's operators did not finish every sample: {figures['rows']}")
    return float(figures["cpu_s"]), stub.get("/stats")["requests"] - before


def cpu_per_sample(work: Path, small: int, large: int, rounds: int = 3, dataflow: str | None = None) -> dict[str, Any]:
    """CPU per sample against an instant server (start-up cost cancels in the difference), and its parts: the
    median of `rounds` rounds, each measuring every figure within the same minute (the bare client included), so
    a drift in the machine's speed moves a round's figures together rather than the comparison between them."""
    measured: dict[str, list[float]] = {}
    for round_ in range(rounds):
        stub = Stub(0.0)
        try:
            a = run(stub, work / f"cpu-small-{round_}", small, 16)
            before = stub.get("/stats")["requests"]
            b = run(stub, work / f"cpu-large-{round_}", large, 16)
            per_sample = (stub.get("/stats")["requests"] - before) / large
            client = breakdown("client", stub.url + "/v1", "2000", "16") / 2000
            bare = breakdown("bare", stub.url + "/v1", "2000", "16") / 2000
            if dataflow:  # the same stub, sizes and in-flight bound, in the same minute
                (df_small, _), (df_large, df_requests) = (dataflow_cpu(dataflow, stub, n) for n in (small, large))
                df_total = (df_large - df_small) / (large - small)
                measured.setdefault("dataflow", []).append(df_total)
                measured.setdefault("dataflow_requests_per_sample", []).append(df_requests / large)
                measured.setdefault("dataflow_request_ratio", []).append(df_total / (df_requests / large) / bare)
        finally:
            stub.close()
        engine, chat = (
            (
                breakdown(mode, str(work / f"{mode}-large-{round_}"), str(large))
                - breakdown(mode, str(work / f"{mode}-small-{round_}"), str(small))
            )
            / (large - small)
            for mode in ("engine", "engine-chat")
        )
        total = (b["cpu"] - a["cpu"]) / (large - small)
        figures = {
            "total": total,
            "requests_per_sample": per_sample,
            "client_per_request": client,
            "bare_per_request": bare,
            "request_ratio": total / per_sample / bare,  # per request against the bare client of the same round
            "engine": engine,
            "client_layer": chat - engine,
        }
        for name, value in figures.items():
            measured.setdefault(name, []).append(value)
    ranges = {f"{name}_range": (min(values), max(values)) for name, values in measured.items()}
    return {name: statistics.median(values) for name, values in measured.items()} | ranges


def breakdown(*args: str) -> float:
    out = subprocess.run([sys.executable, "-m", "benchmarks.breakdown", *args], cwd=ROOT, env=env(),
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"benchmarks.breakdown failed: {out.stderr[-2000:]}")
    return float(out.stdout)


def import_seconds() -> float:
    """A bare interpreter importing the libraries a run needs before its first request: the floor for resuming."""
    code = "import langgraph.graph, langgraph.checkpoint.sqlite, langchain_core.language_models, aiohttp"
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), check=True)
    return time.monotonic() - started


def peak_rss(work: Path, sizes: list[int]) -> dict[int, float]:
    stub = Stub(0.0)
    try:
        return {n: run(stub, work / f"rss-{n}", n, 32, processes=1)["rss_mb"] for n in sizes}
    finally:
        stub.close()


def resume_latency(work: Path, samples: int, attempt: int = 0, done_share: float = 0.99) -> float:
    """Seconds from starting `graphs.run` on a run dir that is 99 % stored to its first new model request."""
    from condor_state.context import Context
    from graphs.runner import check_settings, run_settings

    out = work / f"resume-{samples}-{attempt}"
    out.mkdir()
    stub = Stub(0.0)
    try:
        context = Context(base_url=stub.url + "/v1")
        check_settings(out, run_settings(context))
        stored = int(samples * done_share) // 3 * 3
        db = sqlite_utils.Database(out / "condor.db")
        from condor_state.dataset import Dataset

        Dataset(out / "condor.db").close()  # the real schema
        rows = (
            {"id": f"s0-{i:07d}", "position": i, "call_index": i // 3, "status": "done", "question": "q", "rounds": 0}
            for i in range(stored)
        )
        db.table("samples").insert_all(rows, batch_size=5000)
        db.close()
        args = ["--samples", str(samples), "--out", str(out), "--base-url", stub.url + "/v1"]
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "graphs.run", *args], cwd=ROOT, env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        while (first := stub.get("/stats")["first_request_at"]) is None:
            if proc.poll() is not None:
                raise SystemExit("graphs.run exited before its first request")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return first - started
    finally:
        stub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, figures less stable)")
    parser.add_argument("--dataflow", metavar="PYTHON", help="an interpreter with open-dataflow installed: its Condor "
                        "operators are measured beside Condor in each CPU round (see the README)")  # fmt: skip
    args = parser.parse_args()
    if args.dataflow and (problem := dataflow_problem(args.dataflow)):
        parser.error(problem)
    scale = 0.25 if args.quick else 1.0
    with tempfile.TemporaryDirectory(prefix="condor-bench-") as tmp:
        work = Path(tmp)
        print(f"# Condor run-engine benchmark ({os.cpu_count()} cores, stub latency {LATENCY * 1000:.0f} ms)")
        print("\n## Concurrency efficiency = (requests x latency / concurrency) / wall time (target >= 0.95 at 32)")
        print("(processes 0 = automatic: one per 16 request slots, at most one per core; CPU share counts them all)")
        print("latency  concurrency  processes  requests  max_in_flight  span_s  efficiency  (whole command)  CPU")
        rows = [(LATENCY, 1, 12, 0), (LATENCY, 8, 96, 0), (LATENCY, 32, 384, 1), (LATENCY, 32, 384, 0)]
        rows += [(LATENCY, 64, 768, 0), (1.0, 32, 192, 1)]
        for latency, concurrency, samples, processes in rows:
            r = efficiency(work, concurrency, max(6, int(samples * scale)), latency, processes)
            print(
                f"{latency * 1000:>5.0f}ms  {concurrency:>11}  {processes:>9}  {r['requests']:>8}  "
                f"{r['max_in_flight']:>13}  {r['span']:>6.2f}  {r['efficiency']:>10.3f}  "
                f"({r['efficiency_whole_command']:.3f}){r['cpu_share']:>11.2f}",
                flush=True,
            )
        ceiling = server_ceiling(32, max(320, int(1664 * scale)))
        print(
            f"  the stub with a bare aiohttp client at 32, starts staggered (the ceiling): {ceiling:.3f}",
            flush=True,
        )
        cpu = cpu_per_sample(work, 30, max(60, int(600 * scale)), rounds=1 if args.quick else 3, dataflow=args.dataflow)
        client = cpu["client_per_request"] * cpu["requests_per_sample"]
        per_request = cpu["total"] / cpu["requests_per_sample"]
        bare = cpu["bare_per_request"]
        low, high = cpu["total_range"]
        print(
            "\n## CPU, instant server (targets: per request <= 6 x a bare aiohttp client's; per sample <= DataFlow's)"
            "\n(medians of rounds that each measure every figure within a minute, the bare client included)"
        )
        print(f"  per sample: {cpu['total'] * 1000:.1f} ms (rounds {low * 1000:.1f}-{high * 1000:.1f} ms; "
              f"{cpu['requests_per_sample']:.2f} requests per sample)")  # fmt: skip
        print(f"  per request: {per_request * 1000:.2f} ms = {cpu['request_ratio']:.1f} x a bare aiohttp client's "
              f"{bare * 1000:.2f} ms in the same round, same stub, same prompt", flush=True)  # fmt: skip
        if args.dataflow:
            df_low, df_high = cpu["dataflow_range"]
            df_per_request = cpu["dataflow"] / cpu["dataflow_requests_per_sample"]
            print(f"  OpenDCAI DataFlow's Condor operators, same rounds: {cpu['dataflow'] * 1000:.1f} ms per sample "
                  f"(rounds {df_low * 1000:.1f}-{df_high * 1000:.1f} ms; {cpu['dataflow_requests_per_sample']:.2f} "
                  f"requests per sample, no critique loop); {df_per_request * 1000:.2f} ms = "
                  f"{cpu['dataflow_request_ratio']:.1f} x bare per request", flush=True)  # fmt: skip
        else:
            print("  (DataFlow not measured: --dataflow PYTHON adds it to every round)")
        print(
            f"  model client alone (the factory's served model): {cpu['client_per_request'] * 1000:.2f} ms per "
            f"request ({cpu['client_per_request'] / bare:.1f} x bare) x {cpu['requests_per_sample']:.2f} = "
            f"{client * 1000:.1f} ms per sample"
        )
        print(f"  engine alone (graph, prompts, parsing, checkpoints, storage; instant in-process model): "
              f"{cpu['engine'] * 1000:.1f} ms", flush=True)  # fmt: skip
        print(f"  OpenAIChat around the request under the graph, nobody listening (body, reading the completion; "
              f"engine-chat minus engine): {cpu['client_layer'] * 1000:.1f} ms", flush=True)  # fmt: skip
        sizes = [max(100, int(1000 * scale)), max(1000, int(10000 * scale))]
        rss = peak_rss(work, sizes)
        print("\n## Peak RSS of graphs.run (target: flat)")
        for n, mb in rss.items():
            print(f"{n:>6} samples: {mb:.0f} MB", flush=True)
        large = max(10000, int(100000 * scale))
        print(f"\n## Resume with 99 % stored: start to first new request (target < 2 s at {large} samples)")
        for size in (large // 10, large):
            seconds = statistics.median(resume_latency(work, size, attempt) for attempt in range(3))
            print(f"{size:>7} samples: {seconds:.2f} s (median of 3)", flush=True)
        floor = statistics.median(import_seconds() for _ in range(3))
        print(f"  a bare import of langgraph, langchain-core's chat models and aiohttp: {floor:.2f} s (median of 3)")


if __name__ == "__main__":
    main()

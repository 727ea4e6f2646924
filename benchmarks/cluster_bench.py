"""The Ray path beside one process, in one run: the same stub, samples and --concurrency; and what the Postgres
store is asked per sample (transactions, rows written, WAL bytes).

Starts its own Postgres (benchmarks/postgres_server.py) and a local Ray (`--ray local`).
Run: .venv/bin/python -m benchmarks.cluster_bench [--samples N] [--concurrency K]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench import LATENCY, Stub, run
from benchmarks.postgres_server import PostgresServer, serve


def store_counters(server: PostgresServer, url: str) -> dict[str, float]:
    """The database's commits, rows written and WAL position, as Postgres counts them."""
    import psycopg

    time.sleep(1.0)  # Postgres publishes a session's statistics about once a second
    with psycopg.connect(url, password=server.password) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, pg_current_wal_lsn() - '0/0'::pg_lsn "
            "FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return {"commits": float(row[0]), "rows": float(row[1]), "wal": float(row[2])}


def measure(stub: Stub, out: Path, samples: int, concurrency: int, **options: Any) -> dict[str, float]:
    stub.get("/reset")
    result = run(stub, out, samples, concurrency, **options)
    stats = stub.get("/stats")
    span = stats["last_response_at"] - stats["first_request_at"]
    ideal = stats["requests"] * LATENCY / concurrency
    return {
        "wall": result["wall"],
        "requests": stats["requests"],
        "max_in_flight": stats["max_in_flight"],
        "efficiency": ideal / span,
        "whole": ideal / result["wall"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    stub = Stub(LATENCY)
    try:
        with contextlib.contextmanager(serve)() as server, tempfile.TemporaryDirectory() as work:
            one = measure(stub, Path(work) / "one", args.samples, args.concurrency, processes=1)
            url = server.fresh_database("bench")
            before = store_counters(server, url)
            cluster = measure(
                stub, Path(work) / "ray", args.samples, args.concurrency,
                extra=("--ray", "local", "--store", url), extra_env=dict(server.env()),
            )  # fmt: skip
            after = store_counters(server, url)
    finally:
        stub.close()
    print(f"{args.samples} samples, --concurrency {args.concurrency}, stub latency {LATENCY * 1000:.0f} ms\n")
    print("| path | efficiency (first request to last response) | whole command | wall | requests | max in flight |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in (("one process, SQLite", one), ("Ray (local), Postgres", cluster)):
        print(
            f"| {name} | {m['efficiency']:.3f} | {m['whole']:.3f} | {m['wall']:.1f} s | {m['requests']:.0f} "
            f"| {m['max_in_flight']:.0f} |"
        )
    per = {k: (after[k] - before[k]) / args.samples for k in before}
    print(
        f"\nPostgres per sample: {per['commits']:.1f} transactions, {per['rows']:.1f} rows written, "
        f"{per['wal'] / 1024:.1f} KiB of WAL"
    )


if __name__ == "__main__":
    main()

"""`python -m graphs.pull DIR [-o FILE]`: copy a cluster run's Postgres store into DIR/condor.db (or FILE).

The store is the one DIR's settings record names; its password comes from PGPASSWORD or ~/.pgpass, never from a
file Condor writes. Pulling again refreshes the copy. The copy is an ordinary condor.db: sqlite-utils, Datasette
and every command that reads a run work on it.
"""

from __future__ import annotations

import time
from pathlib import Path

from condor_state.dataset import UnreadableDatabase
from condor_state.postgres import StoreError, public_url, pull, store_of
from condor_state.rundir import DB_NAME, SETTINGS, read_settings
from graphs.options import OneLineParser, fail

PROG = "python -m graphs.pull"


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Copy a cluster run's Postgres store into a local condor.db.")
    p.add_argument("run_dir", help="run directory of a run made with --store (its settings name the store)")
    p.add_argument("-o", "--output", default=None, help=f"SQLite file to write (default DIR/{DB_NAME})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / SETTINGS).is_file():
        fail(PROG, f"{run_dir} has no {SETTINGS}; pass the --out directory of a run")
    if not read_settings(run_dir):
        fail(PROG, f"{run_dir / SETTINGS} is unreadable")
    url = store_of(run_dir)
    if url is None:
        fail(PROG, f"{run_dir} records no Postgres store: its data is already in {run_dir / DB_NAME}")
    output = Path(args.output) if args.output else run_dir / DB_NAME
    started = time.monotonic()
    try:
        samples = pull(url, output)
    except (StoreError, UnreadableDatabase) as exc:
        fail(PROG, str(exc))
    except OSError as exc:
        fail(PROG, f"cannot write {output}: {exc.strerror or exc}")
    print(f"pulled {samples} samples from {public_url(url)} into {output} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m graphs.browse DIR [--port N] [--open]`: a run's dataset in Datasette, read-only, on loopback.

DIR/condor.db is served immutable (SQLite's `immutable=1`, as `datasette serve -i`): nothing is written to the run
directory, not even a -shm or -wal file. The Datasette metadata is made here from the database's own columns, never
written to a file: facets on the samples table, canned queries (failures by reason, the largest refine gains,
duplicates with their originals) and, from graphs/browse-templates, one page per sample with its question, its
answers side by side and every critique round with its score (the samples table's id column links to it).

Datasette runs in this process under uvicorn, on a socket bound here first: a port in use is one line before any
server starts, there is no second process to supervise or to leave behind, and Ctrl-C (or SIGTERM) stops the
server cleanly and exits 0.
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sqlite3
import sys
import threading
import webbrowser
from contextlib import closing
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from condor_state.rundir import DB_NAME, read_settings
from graphs.options import OneLineParser, fail

PROG = "python -m graphs.browse"
HOST = "127.0.0.1"  # loopback only: the data is the user's own, and Datasette serves it without authentication
DEFAULT_PORT = 8001  # Datasette's own default
TEMPLATES = Path(__file__).with_name("browse-templates")
DATABASE = Path(DB_NAME).stem  # Datasette names a database after its file: /condor/samples
FACETS = ("status", "task_type", "difficulty", "language", "root")
PLUGIN_NAME = "condor-browse"
# One local reader, so time limits can be generous; suggested facets are off: the useful ones are configured, and
# suggesting them cost 2.7 of the samples page's 3.3 s on a 50,000-sample run (230 MB).
SETTINGS = {"suggest_facets": False, "facet_time_limit_ms": 2000, "sql_time_limit_ms": 5000}


class BrowseError(Exception):
    """A problem with what the user pointed at or asked for; one line."""


def port_number(text: str) -> int:
    """A TCP port (0 asks the kernel for a free one), or argparse's one-line error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not between 0 and 65535")
    return port


def parser() -> OneLineParser:
    p = OneLineParser(
        prog=PROG,
        description="Browse a Condor run's condor.db in Datasette: read-only, on 127.0.0.1, with facets, canned "
        "queries and one page per sample (its answers and critique rounds side by side). Ctrl-C stops it.",
    )
    p.add_argument("run_dir", help="run directory (the --out of python -m graphs.run)")
    p.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port on {HOST} (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument(
        "--open", action=argparse.BooleanOptionalAction, default=False, help="open the samples page in a web browser"
    )
    return p


# ---------------------------------------------------------------- the database, read as Datasette will read it


def sample_columns(db: Path) -> list[str]:
    """The samples table's columns, read the way Datasette reads the file (immutable); BrowseError when unreadable."""
    try:
        with closing(sqlite3.connect(f"file:{db.resolve()}?mode=ro&immutable=1", uri=True)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            columns = [row[1] for row in conn.execute("PRAGMA table_info([samples])")]
    except (sqlite3.Error, OSError) as exc:
        raise BrowseError(f"{db} is not a readable Condor database ({exc})") from None
    if not columns and unmerged_wal(db):
        raise BrowseError(
            f"{db} has no samples table outside its write-ahead log yet (a run is going, or was killed before SQLite "
            "merged the log); browse it when the run has ended or been resumed"
        )
    if not columns:
        raise BrowseError(f"{db} has no samples table; pass the --out directory of a run")
    return columns


def unmerged_wal(db: Path) -> int:
    """Bytes of writes still in the database's write-ahead log: an immutable reader does not see them."""
    try:
        return Path(f"{db}-wal").stat().st_size
    except OSError:
        return 0


# ---------------------------------------------------------------- the metadata: facets, canned queries, descriptions


def story_link(id_sql: str) -> str:
    """SQL for an absolute link to a sample's page, built from the request's Host header (a canned query's magic
    parameter), so it is right whichever address the browser used; Datasette links a cell that holds a URL."""
    return f"'http://' || :_header_host || '/{DATABASE}/samples/' || {id_sql}"


FAILURE_REASONS = f"""
-- the error's leading part: the role and its first clause, without the "(after N repair attempts)" tail
WITH failed AS (
  SELECT id, position, coalesce(nullif(trim(error), ''), '(no reason recorded)') AS error
  FROM samples WHERE status = 'failed'
), head AS (
  SELECT id, position,
    CASE WHEN instr(error, ' (after ') > 0 THEN substr(error, 1, instr(error, ' (after ') - 1) ELSE error END AS text
  FROM failed
), split AS (
  SELECT id, position, text, instr(text, ': ') AS first, instr(substr(text, instr(text, ': ') + 2), ': ') AS second
  FROM head
)
SELECT
  substr(CASE WHEN first > 0 AND second > 0 THEN substr(text, 1, first + second) ELSE text END, 1, 120) AS reason,
  count(*) AS samples,
  min(position) AS first_position,
  id AS first_sample,  -- SQLite: a bare column comes from the row that gave min()
  {story_link("id")} AS story
FROM split
GROUP BY reason
ORDER BY samples DESC, reason
"""

REFINE_GAINS = f"""
SELECT
  id, final_score - first_score AS gain, first_score, final_score, rounds AS revisions,
  root, task_type, difficulty, language, question,
  {story_link("id")} AS story
FROM samples
WHERE status = 'done' AND first_score IS NOT NULL AND final_score IS NOT NULL
ORDER BY gain DESC, final_score DESC, position
LIMIT 1000  -- Datasette shows at most 1,000 rows; a top-N sort: 0.3 s instead of 0.45 s on 50,000 samples
"""

DUPLICATES = f"""
-- an original that is not a sample is one of the question-writer prompt's few-shot examples
SELECT
  d.id, d.duplicate_of AS original, d.question,
  CASE WHEN o.id IS NULL THEN '(a few-shot example of the question-writer prompt)' ELSE o.question END
    AS original_question,
  d.language, d.root, d.task_type,
  {story_link("d.id")} AS story,
  CASE WHEN o.id IS NULL THEN NULL ELSE {story_link("o.id")} END AS original_story
FROM samples d LEFT JOIN samples o ON o.id = d.duplicate_of
WHERE d.duplicate_of IS NOT NULL
ORDER BY d.position
"""

QUERIES: dict[str, dict[str, str]] = {
    "failure_reasons": {
        "title": "Failed samples by reason",
        "description": "Failed samples grouped by the leading part of their error (the role and what went wrong), "
        "most common first, with the first sample of each.",
        "sql": FAILURE_REASONS,
    },
    "refine_gains": {
        "title": "Largest refine gains",
        "description": "Done samples by how much refinement raised the critic's score (final - first), biggest first.",
        "sql": REFINE_GAINS,
    },
    "duplicates": {
        "title": "Duplicates and their originals",
        "description": "Samples whose question repeats an earlier one (exact or near duplicate), next to the "
        "original they repeat.",
        "sql": DUPLICATES,
    },
}
QUERY_COLUMNS = {"duplicates": "duplicate_of"}  # a query that needs a column a database may not have yet


def metadata(run_dir: Path, columns: list[str]) -> dict[str, Any]:
    """Datasette metadata for a run: title, facets and canned queries fit to the database's columns."""
    present = set(columns)
    queries = {name: query for name, query in QUERIES.items() if QUERY_COLUMNS.get(name, "id") in present}
    notes = [] if "duplicate_of" in present else [
        "No duplicates are marked yet: condor export and condor report mark them (browsing never writes)."
    ]  # fmt: skip
    return {
        "title": f"Condor run {run_dir.resolve().name}",
        "description": " ".join([describe(run_dir), *notes]),
        "databases": {
            DATABASE: {
                "tables": {
                    "samples": {
                        "description": "One row per sample; an id opens the sample's page: its question, the "
                        "answers side by side and every critique round with its score.",
                        "facets": [column for column in FACETS if column in present],
                        "sort": "position" if "position" in present else "id",
                    },
                    "rounds": {"description": "One row per critique round: its sections, score and revised answer."},
                },
                "queries": queries,
            }
        },
    }


def describe(run_dir: Path) -> str:
    """The front page's description: how the run was made, from DIR/run.json when it is there and readable."""
    settings = read_settings(run_dir)
    if not settings:
        return f"Read-only view of {run_dir.resolve()}."
    models = sorted({m or "default" for m in (settings.get("models") or {}).values()}) or ["default"]
    backend = "the embedded model" if settings.get("embedded") else settings.get("base_url") or "a served model"
    return (
        f"Read-only view of {run_dir.resolve()}: model {', '.join(models)} via {backend}; seed {settings.get('seed')}, "
        f"threshold {settings.get('threshold')}, max rounds {settings.get('max_rounds')}."
    )


# ---------------------------------------------------------------- serving


def template_vars(datasette: Any, database: str | None) -> dict[str, Any]:
    """Datasette's extra_template_vars hook: the templates' `sql(query, params)`, read-only queries on the run's
    database (what the datasette-template-sql plugin offers, in a few lines instead of one more dependency)."""

    async def sql(query: str, params: list[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        results = await datasette.get_database(database or DATABASE).execute(query, params or [])
        return [dict(row) for row in results.rows]

    return {"sql": sql}


def register_plugin() -> None:
    """Register the template hook once per process (Datasette's plugin manager is global)."""
    from datasette import hookimpl
    from datasette.plugins import pm

    if pm.get_plugin(PLUGIN_NAME) is None:
        plugin = ModuleType(PLUGIN_NAME)  # pluggy takes hooks from any hashable object's attributes
        plugin.extra_template_vars = hookimpl(template_vars)  # type: ignore[attr-defined]
        pm.register(plugin, name=PLUGIN_NAME)


def listen(port: int) -> socket.socket:
    """A listening socket on loopback, bound before anything starts, so a busy port is one line and never a race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart may reuse a TIME_WAIT port
    try:
        sock.bind((HOST, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BrowseError(f"port {port} on {HOST} is in use; pass another --port (0: any free port)") from None
        raise BrowseError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
    return sock


def app(db: Path, meta: dict[str, Any]) -> Any:
    """Datasette's ASGI app over the database, immutable, with Condor's metadata and templates."""
    from datasette.app import Datasette

    register_plugin()
    datasette = Datasette(immutables=[str(db)], metadata=meta, template_dir=str(TEMPLATES), settings=SETTINGS)
    return datasette.app()


class Stopped(Exception):
    """SIGTERM: stop like Ctrl-C."""


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises the SIGTERM it stopped on; this turns it into an ordinary exit."""
    raise Stopped


def serve(asgi: Any, sock: socket.socket) -> None:
    """Serve until Ctrl-C or SIGTERM: uvicorn shuts down gracefully, then re-raises the signal, which ends here."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="on"))
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        fail(PROG, f"{run_dir} is not a directory; pass the --out directory of a run")
    db = run_dir / DB_NAME
    if not db.is_file() and read_settings(run_dir).get("store"):
        fail(PROG, f"{run_dir} is a run in a Postgres store: `condor pull {run_dir}` writes its {DB_NAME} to browse")
    if not db.is_file():
        fail(PROG, f"{run_dir} has no {DB_NAME}; pass the --out directory of a run")
    try:
        meta = metadata(run_dir, sample_columns(db))
        sock = listen(args.port)
    except BrowseError as exc:
        fail(PROG, str(exc))
    url = f"http://{HOST}:{sock.getsockname()[1]}/{DATABASE}/samples"
    if pending := unmerged_wal(db):
        print(
            f"{PROG}: note: {db}-wal holds {pending} bytes not yet merged into {DB_NAME} (a run is going or was "
            "killed); this read-only view shows the database without them",
            file=sys.stderr,
        )
    try:
        asgi = app(db, meta)
    except Exception as exc:  # Datasette refusing the file: still one line
        sock.close()
        fail(PROG, f"Datasette cannot serve {db}: {exc}")
    print(f"Serving {db} read-only at {url} (Ctrl-C to stop)", flush=True)
    if args.open:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    serve(asgi, sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

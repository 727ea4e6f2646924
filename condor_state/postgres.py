"""A run's store in Postgres, shared by the workers of a cluster: the same tables, rows and promises as condor.db.

`PostgresDataset` answers what the engine asks of `condor_state.dataset.Dataset` over one psycopg 3 connection;
`CallClaims` holds calls across machines with session advisory locks, which Postgres frees when the holder's
connection dies; `pull` copies a store into a local condor.db; `open_run` gives the readers (export, report,
show) a Dataset for any run directory. psycopg is imported inside the functions that use it, so the
single-machine path never pays for it. No password is ever written: libpq reads PGPASSWORD or ~/.pgpass.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from condor_state.dataset import CALL_COLUMNS, ROUND_COLUMNS, RUN_KINDS, SAMPLE_COLUMNS, SQL_TYPES, Dataset
from condor_state.rundir import DB_NAME, read_settings, round_rows_of, sample_row, shared_cost, shared_tokens
from condor_state.state import BatchState

if TYPE_CHECKING:
    import psycopg

PG_TYPES = {str: "TEXT", int: "BIGINT", float: "DOUBLE PRECISION", bool: "BOOLEAN"}
SQLITE_OF_PG = {"bigint": int, "integer": int, "double precision": float, "boolean": bool, "text": str}


def _key(name: str) -> int:
    """A stable signed 32-bit advisory-lock key for a name (the first half of a two-int lock key)."""
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


# Advisory locks are scoped to one database, and a store is one database holding one run, so fixed namespaces
# suffice: (SETUP_KEY, 0) serializes schema changes, (CALLS_KEY, i) the merge of call i's questions, and
# (CLAIMS_KEY, i) is the claim on call i. Call indexes must fit in 32 bits (over six billion samples).
SETUP_KEY = _key("condor schema")
CALLS_KEY = _key("condor calls")
CLAIMS_KEY = _key("condor claims")

# libpq's TCP keepalives notice a lost server; the server's (set per session) notice a lost worker, so a dead
# node's claims are freed in about a minute rather than the kernel's default two hours.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "connect_timeout": 10,
}
SERVER_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"

TABLES: dict[str, tuple[dict[str, type], str]] = {
    "samples": (SAMPLE_COLUMNS, "PRIMARY KEY (id), CHECK (id IS NOT NULL AND status IS NOT NULL)"),
    "rounds": (ROUND_COLUMNS, "PRIMARY KEY (sample_id, round), FOREIGN KEY (sample_id) REFERENCES samples (id)"),
    "calls": (CALL_COLUMNS, "PRIMARY KEY (call_index)"),
}
INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_samples_status ON samples (status)",
    "CREATE INDEX IF NOT EXISTS idx_samples_call_index ON samples (call_index)",  # stored_levels, per call
)
RUN_SETTINGS = (
    "CREATE TABLE IF NOT EXISTS run_settings "
    "(one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), settings TEXT NOT NULL, written_at DOUBLE PRECISION)"
)


class StoreError(RuntimeError):
    """A store that cannot be reached, refuses us, or holds no run; the message is one line for the user."""


def public_url(url: str) -> str:
    """The URL with any password removed: what may be printed or recorded."""
    parts = urlsplit(url)
    if not parts.scheme:
        return re.sub(r"password\s*=\s*('[^']*'|\S+)", "password=***", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "password" in text:
        text += " (the password comes from PGPASSWORD or ~/.pgpass)"
    return text


def connect(url: str, application: str = "condor") -> psycopg.Connection[dict[str, Any]]:
    """An autocommit connection returning dict rows, with keepalives both ways; StoreError when it cannot be made."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row

    try:
        extra: dict[str, Any] = {} if "options" in conninfo_to_dict(url) else {"options": SERVER_KEEPALIVES}
        return psycopg.connect(
            url, autocommit=True, row_factory=dict_row, application_name=application, **KEEPALIVES, **extra
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot open the store {public_url(url)}: {_one_line(exc)}") from None


def _q(name: str) -> str:
    """A quoted identifier (column names such as `position` and `round` are keywords)."""
    return '"' + name.replace('"', '""') + '"'


def _create(name: str, columns: dict[str, type], constraints: str) -> str:
    body = ", ".join(f"{_q(column)} {PG_TYPES[kind]}" for column, kind in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {_q(name)} ({body}, {constraints})"


def _insert_sql(table: str, columns: Iterable[str], rows: int = 1) -> str:
    names = list(columns)
    marks = "(" + ", ".join(["%s"] * len(names)) + ")"
    return f"INSERT INTO {_q(table)} ({', '.join(map(_q, names))}) VALUES {', '.join([marks] * rows)}"


class PostgresDataset:
    """The engine's Dataset over Postgres: a call's new samples, rounds and questions stored once, in one
    transaction, however many workers write. Call `setup()` once per process before writing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = connect(url)

    def __enter__(self) -> PostgresDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        """Create the tables, or give older ones the columns added since; workers may call it at the same moment,
        so the whole change is serialized by a transaction-scoped advisory lock."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s::integer, 0)", [SETUP_KEY])
            for table, (columns, constraints) in TABLES.items():
                self.conn.execute(_create(table, columns, constraints))
                have = self._columns(table)
                for column in (c for c in columns if c not in have):
                    kind = PG_TYPES[columns[column]]
                    self.conn.execute(f"ALTER TABLE {_q(table)} ADD COLUMN IF NOT EXISTS {_q(column)} {kind}")
            for statement in INDEXES:
                self.conn.execute(statement)
            self.conn.execute("CREATE TABLE IF NOT EXISTS runs ()")  # its columns come with record_run's rows
            self.conn.execute(RUN_SETTINGS)

    def _columns(self, table: str) -> dict[str, str]:
        """{column: Postgres type} of a table in the connection's schema, in table order (empty: no table)."""
        query = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position"
        )
        return {row["column_name"]: row["data_type"] for row in self.conn.execute(query, [table])}

    def has_table(self, table: str) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found", [_q(table)]).fetchone()
        return bool(row and row["found"])

    def write_batch(self, state: BatchState) -> list[dict[str, Any]]:
        """Store a finished call's new samples, their rounds and its questions in one transaction.

        A sample already stored is never replaced (another worker, or a resumed call, may bring it again); returns
        the rows this write added, as stored.
        """
        now = time.time()
        shared_in, shared_out = shared_tokens(state)
        samples = state.get("samples", [])
        rows = [sample_row(state, s, now, shared_in, shared_out, shared_cost(state)) for s in samples]
        with self.conn.transaction():
            added = self._insert_new(rows)
            rounds = [r for s in samples if s["id"] in added for r in round_rows_of(s)]
            if rounds:
                with self.conn.cursor() as cursor:
                    cursor.executemany(
                        _insert_sql("rounds", ROUND_COLUMNS), [[r[c] for c in ROUND_COLUMNS] for r in rounds]
                    )
            if "call_index" in state:
                self._record_call(state, now)
        return [row for row in rows if row["id"] in added]

    def _insert_new(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert the rows whose id is not stored yet; returns their ids. A concurrent writer of the same id waits
        for the other's commit, then adds nothing."""
        if not rows:
            return set()
        query = _insert_sql("samples", SAMPLE_COLUMNS, len(rows)) + " ON CONFLICT (id) DO NOTHING RETURNING id"
        params = [row[c] for row in rows for c in SAMPLE_COLUMNS]
        return {found["id"] for found in self.conn.execute(query, params).fetchall()}

    def _record_call(self, state: BatchState, now: float) -> None:
        """The call's questions, merged with any stored before: a level's first text stays (the merge is
        serialized per call, so two writers of one call cannot lose a level)."""
        call_index = state["call_index"]
        self.conn.execute("SELECT pg_advisory_xact_lock(%s::integer, %s::integer)", [CALLS_KEY, call_index])
        questions = {**state.get("questions", {}), **self.questions_of(call_index)}
        row = {
            "call_index": call_index,
            "tag_path": " > ".join(state.get("tag_path", [])),
            "task_type": state.get("task_type", ""),
            "language": state.get("language", ""),
            "questions": json.dumps(questions, ensure_ascii=False),
            "created_at": now,
        }
        update = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in CALL_COLUMNS if c != "call_index")
        query = _insert_sql("calls", CALL_COLUMNS) + f" ON CONFLICT (call_index) DO UPDATE SET {update}"
        self.conn.execute(query, [row[c] for c in CALL_COLUMNS])

    def questions_of(self, call_index: int) -> dict[str, str]:
        """Every question a stored call's writer gave, by difficulty (empty for a call never stored)."""
        row = self.conn.execute("SELECT questions FROM calls WHERE call_index = %s", [call_index]).fetchone()
        return json.loads(row["questions"]) if row and row["questions"] else {}

    def stored_levels(self, call_index: int) -> list[str]:
        """The difficulties of a call's stored samples."""
        query = "SELECT difficulty FROM samples WHERE call_index = %s ORDER BY position"
        return [row["difficulty"] for row in self.conn.execute(query, [call_index])]

    def stored_per_call(self) -> dict[int, int]:
        """Samples stored per question-writer call, counted by the server."""
        query = "SELECT call_index, count(*) AS n FROM samples GROUP BY call_index"
        return {row["call_index"]: row["n"] for row in self.conn.execute(query)}

    def ids(self) -> set[str]:
        return {row["id"] for row in self.conn.execute("SELECT id FROM samples")}

    def count(self, status: str | None = None) -> int:
        if status is None:
            row = self.conn.execute("SELECT count(*) AS n FROM samples").fetchone()
        else:
            row = self.conn.execute("SELECT count(*) AS n FROM samples WHERE status = %s", [status]).fetchone()
        return int(row["n"]) if row else 0

    def samples(self, status: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
        """Sample rows in plan order, of the given statuses (all when None)."""
        if status is None:
            yield from self.conn.execute("SELECT * FROM samples ORDER BY position").fetchall()
        else:
            query = "SELECT * FROM samples WHERE status = ANY(%s) ORDER BY position"
            yield from self.conn.execute(query, [list(status)]).fetchall()

    def samples_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return self.conn.execute("SELECT * FROM samples WHERE id = ANY(%s) ORDER BY position", [ids]).fetchall()

    def rounds_of(self, sample_id: str) -> list[dict[str, Any]]:
        query = "SELECT * FROM rounds WHERE sample_id = %s ORDER BY round"
        return self.conn.execute(query, [sample_id]).fetchall()

    def record_run(self, row: dict[str, Any]) -> None:
        """One row per invocation of a run; the table gains the columns a newer version adds (typed as the SQLite
        side types them, under the schema lock, as several drivers may record at once)."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s::integer, 0)", [SETUP_KEY])
            self.conn.execute("CREATE TABLE IF NOT EXISTS runs ()")
            have = self._columns("runs")
            for column, value in row.items():
                if column not in have:
                    kind = PG_TYPES.get(RUN_KINDS.get(column, type(value)), "TEXT")
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {_q(column)} {kind}")
            self.conn.execute(_insert_sql("runs", row), list(row.values()))

    def read_settings(self) -> dict[str, Any] | None:
        """The run's settings record as the store keeps it (every worker compares against one), or None."""
        if not self.has_table("run_settings"):
            return None
        row = self.conn.execute("SELECT settings FROM run_settings").fetchone()
        return json.loads(row["settings"]) if row else None

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record (or replace) the run's settings; the table holds one row."""
        self.conn.execute(
            "INSERT INTO run_settings (one, settings, written_at) VALUES (TRUE, %s, %s) "
            "ON CONFLICT (one) DO UPDATE SET settings = EXCLUDED.settings, written_at = EXCLUDED.written_at",
            [json.dumps(settings, ensure_ascii=False), time.time()],
        )

    def claims(self) -> CallClaims:
        """A claim holder for this run's calls, on a connection of its own (one per worker process)."""
        return CallClaims(self.url)

    def close(self) -> None:
        self.conn.close()


class CallClaims:
    """Exclusive hold of calls across the machines of a cluster: a session advisory lock (CLAIMS_KEY, call) on a
    connection of its own, so a dead worker's claims free themselves when Postgres sees its connection gone."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = connect(url, application="condor claims")
        self._held: set[int] = set()
        self._closed = False

    def __enter__(self) -> CallClaims:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The server process of the claims connection (what pg_terminate_backend would end)."""
        return int(self.conn.info.backend_pid)

    def take(self, call_index: int) -> bool:
        """Claim a call, without waiting: False when another worker holds it. A lost connection is made again
        (every claim it held went with it, so another worker may already run those calls: stored rows stay once)."""
        import psycopg

        if self._closed:
            raise StoreError("these call claims are closed")
        if call_index in self._held and not self.conn.broken:
            return True
        try:
            return self._try(call_index)
        except psycopg.OperationalError:
            if not self.conn.broken:
                raise
        self.conn = connect(self.url, application="condor claims")
        self._held.clear()
        return self._try(call_index)

    def _try(self, call_index: int) -> bool:
        query = "SELECT pg_try_advisory_lock(%s::integer, %s::integer) AS got"
        row = self.conn.execute(query, [CLAIMS_KEY, call_index]).fetchone()
        if row and row["got"]:
            self._held.add(call_index)
            return True
        return False

    def give_back(self, call_index: int) -> None:
        """Release a call held here; a no-op when not held, or when the connection (and so the claim) is gone."""
        import psycopg

        if call_index not in self._held:
            return
        self._held.discard(call_index)
        with contextlib.suppress(psycopg.OperationalError):  # the connection died: every claim it held is gone
            self.conn.execute("SELECT pg_advisory_unlock(%s::integer, %s::integer)", [CLAIMS_KEY, call_index])

    def held(self) -> set[int]:
        return set(self._held)

    def close(self) -> None:
        """Release every claim at once, by ending the connection."""
        self._closed = True
        self._held.clear()
        self.conn.close()


# --- copies for the readers --------------------------------------------------------------------------------------

PULL_BATCH = 1000
PULL_ORDER = {"samples": "position, id", "rounds": "sample_id, round", "calls": "call_index"}


def pull(url: str, sqlite_path: str | Path) -> int:
    """Copy the store's samples, rounds, calls and runs into a condor.db (made by Dataset, so it has the SQLite
    schema), replacing what the file held; returns the sample count. The settings live in DIR's run.json."""
    path = Path(sqlite_path)
    with _readable_store(url) as store:  # a store that cannot be read leaves no local file behind
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset = Dataset(path)
        try:
            return _pull_into(store, dataset)
        finally:
            dataset.close()


@contextlib.contextmanager
def _readable_store(url: str) -> Iterator[PostgresDataset]:
    """A connection to a store that holds a run, closed afterwards; StoreError otherwise."""
    store = PostgresDataset(url)
    try:
        if not store.has_table("samples"):
            raise StoreError(f"the store {public_url(url)} holds no Condor run (no samples table)")
        yield store
    finally:
        store.close()


def _pull_into(store: PostgresDataset, dataset: Dataset) -> int:
    """One consistent snapshot of the store (a run still writing never gives a torn copy), written in one SQLite
    transaction (a reader of the file sees the old copy or the new one)."""
    import psycopg

    local = dataset.conn
    samples = 0
    try:
        with store.conn.transaction():
            store.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            local.execute("BEGIN IMMEDIATE")
            try:
                for table in ("rounds", "samples", "calls"):
                    local.execute(f"DELETE FROM [{table}]")
                for table, (columns, _) in TABLES.items():
                    have = store._columns(table)
                    copied = _copy(store, local, table, [c for c in columns if c in have], PULL_ORDER[table])
                    samples = copied if table == "samples" else samples
                local.execute("DROP TABLE IF EXISTS [runs]")
                runs = store._columns("runs")
                if runs:
                    kinds = {c: SQL_TYPES.get(SQLITE_OF_PG.get(t, str), "TEXT") for c, t in runs.items()}
                    local.execute(f"CREATE TABLE [runs] ({', '.join(f'[{c}] {k}' for c, k in kinds.items())})")
                    _copy(store, local, "runs", list(runs), "ctid")  # never updated: in the order recorded
            except BaseException:
                local.execute("ROLLBACK")
                raise
            local.execute("COMMIT")
    except psycopg.Error as exc:
        raise StoreError(f"reading the store {public_url(store.url)} failed: {_one_line(exc)}") from None
    return samples


def _copy(store: PostgresDataset, local: sqlite3.Connection, table: str, columns: list[str], order: str) -> int:
    """Stream one table's rows (the given columns) from a server-side cursor into the local file; returns how many."""
    query = f"SELECT {', '.join(map(_q, columns))} FROM {_q(table)} ORDER BY {order}"
    insert = f"INSERT INTO [{table}] ({', '.join(f'[{c}]' for c in columns)}) VALUES ({', '.join('?' * len(columns))})"
    copied = 0
    with store.conn.cursor(name=f"condor_pull_{table}") as cursor:
        cursor.execute(query)
        while batch := cursor.fetchmany(PULL_BATCH):
            local.executemany(insert, [[row[c] for c in columns] for row in batch])
            copied += len(batch)
    return copied


def store_of(run_dir: str | Path) -> str | None:
    """The Postgres store a run directory's settings record names, or None for a condor.db run."""
    store = read_settings(Path(run_dir)).get("store")
    return store if isinstance(store, str) and store else None


class PulledCopy(Dataset):
    """A Postgres run pulled into a temporary condor.db for the readers; the copy is removed at close, so nothing
    is written into the run directory."""

    def __init__(self, url: str) -> None:
        with _readable_store(url) as store:
            self.scratch = Path(tempfile.mkdtemp(prefix="condor-pull-"))
            try:
                super().__init__(self.scratch / DB_NAME)
                _pull_into(store, self)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        try:
            if hasattr(self, "conn"):
                super().close()
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)


def open_run(run_dir: str | Path) -> Dataset:
    """The readers' Dataset for a run directory: DIR/condor.db, or for a run whose settings name a Postgres store
    a fresh temporary copy of it (StoreError when the store cannot be read)."""
    url = store_of(run_dir)
    return Dataset.in_dir(run_dir) if url is None else PulledCopy(url)

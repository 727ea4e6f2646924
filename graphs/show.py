"""`python -m graphs.show DIR [SAMPLE_ID]`: a run's summary, or one sample's whole story, in a terminal.

Reads DIR/condor.db and DIR/checkpoints.db read-only, so it is safe on a run that is still going or was killed.
A cluster run (its settings name a Postgres store) is read from a temporary copy pulled from the store.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from condor_state.context import cost_text
from condor_state.postgres import StoreError, open_run, store_of
from condor_state.rundir import CHECKPOINTS, DB_NAME, SETTINGS, read_settings, recorded_context, sample_row
from graphs.options import OneLineParser, fail

PROG = "python -m graphs.show"


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Show a Condor run's summary, or one sample's story.")
    p.add_argument("run_dir", help="run directory (the --out of python -m graphs.run)")
    p.add_argument("sample_id", nargs="?", help="a sample id such as s0-0000004, or its position (4)")
    p.add_argument("--limit", type=int, default=20, help="samples listed in the summary (default 20, 0 = none)")
    return p


# ---------------------------------------------------------------- reading a run, read-only


class ShowError(Exception):
    """A problem with what the user pointed at; one line."""


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection: showing a run never changes it, even while the run is writing."""
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ShowError(f"cannot open {path}: {exc}") from None
    conn.row_factory = sqlite3.Row
    with closing(conn):
        yield conn


@contextmanager
def run_database(run_dir: Path) -> Iterator[sqlite3.Connection]:
    """The run's samples and rounds: DIR/condor.db read-only, or a temporary pulled copy of a cluster run's store."""
    if store_of(run_dir) is None:
        with read_only(run_dir / DB_NAME) as conn:
            yield conn
        return
    dataset = open_run(run_dir)
    dataset.conn.row_factory = sqlite3.Row
    try:
        yield dataset.conn
    finally:
        dataset.close()


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return conn.execute(query, [name]).fetchone() is not None


@dataclass
class Unfinished:
    """A question-writer call still in DIR/checkpoints.db (or the store): where it stands and its samples so far."""

    thread_id: str
    next: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    problem: str = ""

    @property
    def samples(self) -> list[dict[str, Any]]:
        return list(self.values.get("samples") or [])


def unfinished_threads(run_dir: Path) -> tuple[list[Unfinished], str]:
    """Threads left in the checkpoint file (the runner deletes finished ones), and a note when it is unreadable."""
    settings = read_settings(run_dir)
    if url := store_of(run_dir):
        return _store_threads(url, settings)
    path = run_dir / CHECKPOINTS
    if not path.is_file():
        return [], ""
    try:
        with read_only(path) as conn:
            logs: dict[str, dict[str, str]] = {}
            if has_table(conn, "checkpoint_replies"):
                for thread_id, key, reply in conn.execute("SELECT thread_id, key, reply FROM checkpoint_replies"):
                    logs.setdefault(thread_id, {})[key] = reply
            checkpointed = set()
            if has_table(conn, "checkpoints"):
                checkpointed = {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
            from langgraph.checkpoint.sqlite import SqliteSaver

            return _unfinished(logs, checkpointed, lambda: SqliteSaver(conn), settings), ""
    except (sqlite3.Error, ShowError) as exc:
        return [], f"{path} is unreadable: {exc}"


def _store_threads(url: str, settings: dict[str, Any]) -> tuple[list[Unfinished], str]:
    """A cluster run's threads, from the store's thread logs and checkpoint tables (read only)."""
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    from condor_state.postgres import connect

    def exists(table: str) -> bool:
        return conn.execute("SELECT to_regclass(%s) AS t", (table,)).fetchone() not in (None, {"t": None})

    try:
        with connect(url, "condor show") as conn:
            logs: dict[str, dict[str, str]] = {}
            if exists("checkpoint_replies"):
                for row in conn.execute("SELECT thread_id, key, reply FROM checkpoint_replies"):
                    logs.setdefault(row["thread_id"], {})[row["key"]] = row["reply"]
            checkpointed = set()
            if exists("checkpoints"):
                checkpointed = {row["thread_id"] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
            return _unfinished(logs, checkpointed, lambda: PostgresSaver(conn), settings), ""
    except (StoreError, psycopg.Error) as exc:
        return [], f"the store's checkpoints are unreadable: {' '.join(str(exc).split())}"


def _unfinished(
    logs: dict[str, dict[str, str]], checkpointed: set[str], saver: Callable[[], Any], settings: dict[str, Any]
) -> list[Unfinished]:
    """Every thread, its state read from its checkpoints (threads of earlier versions) or rebuilt from its log."""
    threads = [Unfinished(thread_id) for thread_id in sorted(checkpointed | set(logs))]
    if checkpointed:
        _fill_states(saver(), [t for t in threads if t.thread_id in checkpointed])
    _replay_states(settings, [t for t in threads if t.thread_id not in checkpointed], logs)
    return threads


def _fill_states(saver: Any, threads: list[Unfinished]) -> None:
    """Each thread's latest state and next node, as the graph sees it; a bad checkpoint is noted, not fatal."""
    from graphs.graph import builder

    graph = builder.compile(checkpointer=saver)
    for thread in threads:
        try:
            snapshot = graph.get_state({"configurable": {"thread_id": thread.thread_id}})
        except Exception as exc:  # a checkpoint from another version of the graph, a torn write
            thread.problem = f"{type(exc).__name__}: {exc}"
            continue
        thread.next = list(snapshot.next)
        thread.values = dict(snapshot.values or {})


def _replay_states(settings: dict[str, Any], threads: list[Unfinished], logs: dict[str, dict[str, str]]) -> None:
    """Each logged thread's state, its steps re-run on its kept replies (no model is asked); a log that cannot be
    replayed (a tree file gone, another version's log) is noted, not fatal."""
    if not threads:
        return
    import asyncio

    from condor_state.tree import TreeError, load_tree
    from graphs.checkpoints import INPUT_KEY
    from graphs.runner import replayed

    context = recorded_context(settings)
    problem = "" if settings else f"no {SETTINGS}: the run's settings are needed to rebuild its calls"
    try:
        if not problem and load_tree(context.tree or None).fingerprint != settings.get("tree"):
            problem = "the knowledge tree changed since the run began"
    except TreeError as exc:
        problem = str(exc)
    for thread in threads:
        if problem:
            thread.problem = problem
            continue
        log = logs[thread.thread_id]
        if INPUT_KEY not in log:  # the runner writes the input first; only replies of another version lack one
            thread.problem = "its log has replies but no input"
            continue
        try:
            snapshot = asyncio.run(replayed(log, context))
        except Exception as exc:
            thread.problem = f"{type(exc).__name__}: {exc}"
            continue
        thread.next = list(snapshot.next)
        thread.values = dict(snapshot.values or {})


# ---------------------------------------------------------------- output: rich on a terminal, plain text otherwise


class View(Protocol):
    def title(self, text: str) -> None: ...
    def fields(self, pairs: list[tuple[str, str]]) -> None: ...
    def block(self, heading: str, body: str, style: str = "") -> None: ...
    def line(self, text: str = "") -> None: ...


class PlainView:
    """Plain text for pipes, files and logs."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout

    def _print(self, text: str = "") -> None:
        print(text, file=self.out)

    def title(self, text: str) -> None:
        self._print(text)
        self._print("=" * min(len(text), 100))

    def fields(self, pairs: list[tuple[str, str]]) -> None:
        width = max((len(label) for label, _ in pairs), default=0)
        for label, value in pairs:
            self._print(f"{label + ':':<{width + 1}} {value}")

    def block(self, heading: str, body: str, style: str = "") -> None:
        self._print()
        self._print(f"-- {heading} --")
        for text_line in (body or "(empty)").splitlines() or [""]:
            self._print(f"  {text_line}" if text_line else "")

    def line(self, text: str = "") -> None:
        self._print(text)


class RichView:
    """Rules, panels and tables for a terminal; user text is never read as rich markup."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(highlight=False)

    def title(self, text: str) -> None:
        from rich.text import Text

        self.console.rule(Text(text, style="bold"))

    def fields(self, pairs: list[tuple[str, str]]) -> None:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for label, value in pairs:
            table.add_row(label, value)
        self.console.print(table)

    def block(self, heading: str, body: str, style: str = "") -> None:
        from rich.panel import Panel
        from rich.text import Text

        self.console.print(
            Panel(Text(body or "(empty)"), title=Text(heading), title_align="left", border_style=style or "dim")
        )

    def line(self, text: str = "") -> None:
        self.console.print(text, markup=False)


def default_view() -> View:
    return RichView() if sys.stdout.isatty() else PlainView()


# ---------------------------------------------------------------- summary


def counts(conn: sqlite3.Connection, column: str, where: str = "") -> list[tuple[str, int]]:
    query = f"SELECT {column}, count(*) FROM samples {where} GROUP BY {column} ORDER BY count(*) DESC, {column}"
    return [(str(value) if value not in (None, "") else "-", n) for value, n in conn.execute(query)]


def joined(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {n}" for name, n in pairs) or "-"


def settings_line(settings: dict[str, Any]) -> list[tuple[str, str]]:
    if not settings:
        return [("settings", f"unknown (no readable {SETTINGS})")]
    models = settings.get("models") or {}
    names = {model or "default" for model in models.values()}
    if len(names) <= 1:
        model_text = next(iter(names), "default")
    else:
        model_text = ", ".join(f"{role}={model or 'default'}" for role, model in models.items())
    endpoint = "embedded model" if settings.get("embedded") else settings.get("base_url") or "-"
    return [
        ("model", f"{model_text} via {endpoint}"),
        (
            "settings",
            f"seed {settings.get('seed')}, threshold {settings.get('threshold')}, "
            f"max rounds {settings.get('max_rounds')}, languages {settings.get('languages')}, "
            f"temperature {settings.get('temperature')}, max tokens {settings.get('max_tokens')}",
        ),
    ]


def show_summary(run_dir: Path, view: View, limit: int = 20) -> None:
    view.title(f"Condor run {run_dir}")
    settings = settings_line(read_settings(run_dir))
    with run_database(run_dir) as conn:
        if has_table(conn, "samples"):
            _sample_stats(conn, view, limit, settings)
        else:
            view.fields([*settings, ("samples", "none stored yet")])
    _unfinished_report(run_dir, view)


def _sample_stats(conn: sqlite3.Connection, view: View, limit: int, settings: list[tuple[str, str]]) -> None:
    total = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    by_status = dict(counts(conn, "status"))
    done, failed = by_status.get("done", 0), by_status.get("failed", 0)
    agg = conn.execute(
        "SELECT avg(first_score), avg(final_score), sum(rounds), sum(repairs), sum(tokens_in), sum(tokens_out) "
        "FROM samples WHERE status = 'done'"
    ).fetchone()
    all_tokens = conn.execute("SELECT sum(tokens_in), sum(tokens_out), sum(repairs) FROM samples").fetchone()
    rounds_hist = counts(conn, "rounds", "WHERE status = 'done'")
    pairs = [
        *settings,
        ("samples", f"{total} stored: {done} done, {failed} failed"),
        ("language", joined(counts(conn, "language"))),
        ("task type", joined(counts(conn, "task_type"))),
        ("difficulty", joined(counts(conn, "difficulty"))),
    ]
    if done:
        first, final = (f"{x:.2f}" if x is not None else "-" for x in agg[:2])
        pairs.append(("scores", f"first {first} -> final {final} (mean critic score of done samples)"))
        per = (agg[2] or 0) / done
        hist = ", ".join(f"{n}x {_plural(int(r), 'revision')}" for r, n in sorted(rounds_hist, key=lambda p: int(p[0])))
        pairs.append(("revisions", f"{agg[2] or 0} ({per:.2f} per done sample; {hist})"))
    pairs.append(("repairs", str(all_tokens[2] or 0)))
    pairs.append(("tokens", f"{all_tokens[0] or 0} in / {all_tokens[1] or 0} out"))
    pairs += _cost(conn, done)
    view.fields(pairs)
    if failed:
        reasons = conn.execute(
            "SELECT substr(coalesce(error, '(no reason)'), 1, 160) AS reason, count(*) AS n FROM samples "
            "WHERE status != 'done' GROUP BY reason ORDER BY n DESC, reason LIMIT 5"
        ).fetchall()
        view.block(f"failure reasons (top {len(reasons)})", "\n".join(f"{n:>5}  {reason}" for reason, n in reasons))
    if limit > 0 and total:
        rows = conn.execute(
            "SELECT id, status, language, difficulty, first_score, final_score, rounds, question FROM samples "
            "ORDER BY position LIMIT ?",
            [limit],
        ).fetchall()
        lines = [
            f"{r['id']}  {r['status']:<6} {r['language'] or '-':<2} {r['difficulty'] or '-':<6} "
            f"{_score(r['first_score'])}->{_score(r['final_score'])}  {r['rounds'] or 0}r  {_excerpt(r['question'])}"
            for r in rows
        ]
        shown = f"first {len(rows)} of {total}" if total > len(rows) else f"{total}"
        view.block(f"samples ({shown}; pass an id for its story)", "\n".join(lines))


def _cost(conn: sqlite3.Connection, done: int) -> list[tuple[str, str]]:
    """The run's cost and cost per 1,000 done samples; nothing when no sample was priced (or the file predates
    the `cost` column: it is opened read-only, so never given one here)."""
    if "cost" not in {info[1] for info in conn.execute("PRAGMA table_info([samples])")}:
        return []
    total, priced = conn.execute("SELECT sum(cost), count(cost) FROM samples").fetchone()
    if not priced:
        return []
    per = f"{cost_text(total * 1000 / done)} per 1,000 done samples" if done else "no done samples"
    return [("cost", f"{cost_text(total)} ({per})")]


def _unfinished_report(run_dir: Path, view: View) -> None:
    threads, problem = unfinished_threads(run_dir)
    if problem:
        view.line(f"unfinished work: unknown ({problem})")
        return
    if not threads:
        view.line("unfinished work: none")
        return
    lines = [_thread_line(t) for t in threads[:10]]
    if len(threads) > 10:
        lines.append(f"... and {len(threads) - 10} more")
    where = "the store's checkpoints" if store_of(run_dir) else CHECKPOINTS
    view.block(
        f"unfinished: {_plural(len(threads), 'question-writer call')} in {where} (re-run the same command to resume)",
        "\n".join(lines),
        style="yellow",
    )


def _thread_line(thread: Unfinished) -> str:
    if thread.problem:
        return f"{thread.thread_id}  unreadable ({thread.problem[:120]})"
    samples = thread.samples
    if not thread.next:
        where = "finished, not yet stored"
    elif thread.next == ["__start__"]:
        where = "not started"
    else:
        where = f"next {', '.join(thread.next)}"
    if not samples:
        return f"{thread.thread_id}  {where}; no samples yet"
    states = ", ".join(f"{s['id']} {s['status']} ({_plural(len(s.get('rounds') or []), 'critique')})" for s in samples)
    return f"{thread.thread_id}  {where}; {states}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _score(value: int | None) -> str:
    return "-" if value is None else str(value)


def _excerpt(text: str | None, width: int = 70) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# ---------------------------------------------------------------- one sample's story


def find_sample(conn: sqlite3.Connection, wanted: str) -> dict[str, Any] | None:
    if not has_table(conn, "samples"):
        return None
    row = conn.execute("SELECT * FROM samples WHERE id = ?", [wanted]).fetchone()
    if row is None and wanted.isdigit():
        row = conn.execute("SELECT * FROM samples WHERE position = ?", [int(wanted)]).fetchone()
    return dict(row) if row else None


def show_sample(run_dir: Path, wanted: str, view: View) -> None:
    settings = read_settings(run_dir)
    with run_database(run_dir) as conn:
        row = find_sample(conn, wanted)
        rounds = (
            [dict(r) for r in conn.execute("SELECT * FROM rounds WHERE sample_id = ? ORDER BY round", [row["id"]])]
            if row
            else []
        )
    if row is not None:
        story(row, rounds, settings, view)
        return
    for thread in unfinished_threads(run_dir)[0]:
        for sample in thread.samples:
            if sample["id"] == wanted or (wanted.isdigit() and sample.get("position") == int(wanted)):
                story(in_progress_row(thread, sample), list(sample.get("rounds") or []), settings, view, thread)
                return
    raise ShowError(f"no sample {wanted!r} in {run_dir} (ids look like s0-0000004; run without an id to list them)")


def in_progress_row(thread: Unfinished, sample: dict[str, Any]) -> dict[str, Any]:
    """A sample still in a checkpoint, shaped like its future condor.db row (with its status as it stands)."""
    return {**sample_row(thread.values, sample, 0.0), "status": sample.get("status")}  # type: ignore[arg-type]


def story(
    row: dict[str, Any],
    rounds: list[dict[str, Any]],
    settings: dict[str, Any],
    view: View,
    thread: Unfinished | None = None,
) -> None:
    status = row["status"] if thread is None else f"unfinished ({row['status']}), {_thread_line(thread)}"
    view.title(f"Sample {row['id']}: {status}")
    view.fields(
        [
            ("tag path", row.get("tag_path") or "-"),
            ("task type", row.get("task_type") or "-"),
            ("difficulty", row.get("difficulty") or "-"),
            ("language", row.get("language") or "-"),
            ("call / position", f"{row.get('call_index')} / {row.get('position')}"),
        ]
    )
    view.block("question", row.get("question") or "")
    view.block("first answer (void)", row.get("void_answer") or "(none)")
    threshold = settings.get("threshold")
    for index, r in enumerate(rounds):
        last = index == len(rounds) - 1
        if r.get("revised_answer"):
            outcome = "revised"
        elif threshold is not None and r["score"] is not None and r["score"] >= threshold:
            outcome = f"accepted (threshold {threshold})"
        elif last and row["status"] == "done":
            outcome = "final critique, no more revisions"
        else:
            outcome = "no revision"
        view.block(f"round {r['round']}: critique, score {_score(r['score'])}, {outcome}", critique_text(r), "blue")
        if r.get("revised_answer"):
            view.block(f"round {r['round']}: revised answer", r["revised_answer"], "green")
    view.line()
    view.fields(_outcome(row, rounds))
    if row.get("error"):
        view.block(
            "failed" if row["status"] != "done" else "note",
            row["error"],
            "red" if row["status"] != "done" else "yellow",
        )


def critique_text(r: dict[str, Any]) -> str:
    parts = [
        f"{label}:\n{_indent(r.get(key) or '')}"
        for label, key in (("strengths", "strengths"), ("weaknesses", "weaknesses"), ("suggestions", "suggestions"))
        if r.get(key)
    ]
    return "\n".join(parts) if parts else (r.get("critique") or "")


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _outcome(row: dict[str, Any], rounds: list[dict[str, Any]]) -> list[tuple[str, str]]:
    revised = [r for r in rounds if r.get("revised_answer")]
    if row.get("refined_answer") is None:
        final = "none (not done)"
    elif revised and row["refined_answer"] == revised[-1]["revised_answer"]:
        final = f"the round {revised[-1]['round']} revised answer"
    elif row["refined_answer"] == row.get("void_answer"):
        final = "the first answer (no revision)"
    else:
        final = _excerpt(row["refined_answer"], 100)
    return [
        ("final answer", final),
        ("scores", f"first {_score(row.get('first_score'))} -> final {_score(row.get('final_score'))}"),
        ("revisions", str(row.get("rounds") or 0)),
        ("repairs", str(row.get("repairs") or 0)),
        ("tokens", f"{row.get('tokens_in') or 0} in / {row.get('tokens_out') or 0} out"),
        *([("cost", cost_text(row["cost"]))] if row.get("cost") is not None else []),
    ]


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None, view: View | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        fail(PROG, f"{run_dir} is not a directory; pass the --out directory of a run")
    if not (run_dir / DB_NAME).is_file() and store_of(run_dir) is None:
        fail(PROG, f"{run_dir} has no {DB_NAME}; pass the --out directory of a run")
    view = view or default_view()
    try:
        if args.sample_id:
            show_sample(run_dir, args.sample_id, view)
        else:
            show_summary(run_dir, view, args.limit)
    except (ShowError, StoreError) as exc:
        fail(PROG, str(exc))
    except sqlite3.DatabaseError as exc:
        fail(PROG, f"{run_dir / DB_NAME} is not a readable Condor database: {exc}")
    except BrokenPipeError:  # `... | head`: stop quietly (the recipe from Python's signal docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

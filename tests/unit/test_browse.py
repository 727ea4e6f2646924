"""`graphs.browse` without a server: its one-line errors, the metadata made from a real condor.db (facets, canned
queries run as Datasette runs them), and the sample page rendered by Datasette in process (ASGI, no socket)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from condor_state.dataset import Dataset
from condor_state.dedup import mark_duplicates
from condor_state.rundir import DB_NAME
from condor_state.state import BatchState, Round, Sample, new_sample
from graphs import browse

WEAK, BETTER, BEST = "A first answer.", "A better answer (revision 1).", "The best answer (revision 2)."


def critique(n: int, score: int, revised: str | None) -> Round:
    return Round(
        round=n, strengths=f"{n}. Clear.", weaknesses=f"{n}. Thin <b>here</b>.", suggestions=f"{n}. Add detail.",
        score=score, critique="raw", revised_answer=revised,
    )  # fmt: skip


def sample(position: int, question: str, rounds: list[Round], status: str = "done", error: str | None = None) -> Sample:
    s = new_sample(0, position, ("Easy", "Medium", "Hard")[position % 3], question)
    revised = [r["revised_answer"] for r in rounds if r["revised_answer"]]
    final = revised[-1] if revised else WEAK
    return s | {"void_answer": WEAK, "answer": final, "rounds": rounds, "status": status, "error": error}  # type: ignore[return-value]


def make_run(run_dir: Path) -> None:
    """Two calls: a sample revised twice, one revised once, one failed at the reviser, two failed at the critic
    (one request error, one unparsable reply: two reasons), and a done sample repeating the first question."""
    run_dir.mkdir()
    basil = "How do I <keep> basil alive in winter?"
    first = sample(0, basil, [critique(1, 4, BETTER), critique(2, 7, BEST), critique(3, 9, None)])
    once = sample(1, "Plan a week of meals on a budget.", [critique(1, 6, BETTER), critique(2, 8, None)])
    tail = " (after 2 repair attempts)"
    reviser = sample(
        2, "Write a haiku about rain.", [critique(1, 3, None)], "failed",
        f"reviser: request failed: ClientResponseError: 500, message='boom'{tail}",
    )  # fmt: skip
    timeout = sample(3, "Explain tides.", [], "failed", f"critic: request failed: TimeoutError: {tail}")
    refused = sample(4, "Explain eclipses.", [], "failed", "critic: request failed: ClientConnectorError: refused")
    unparsable = sample(5, "Explain seasons.", [], "failed", f"critic: the reply has no [Score Start]{tail}")
    repeat = sample(6, basil.replace("<keep>", "keep"), [critique(1, 5, BETTER), critique(2, 8, None)])
    dataset = Dataset.in_dir(run_dir)
    batches = [
        BatchState(call_index=0, tag_path=["Home", "Plants"], task_type="Daily Chat", language="en",
                   samples=[first, once, reviser]),
        BatchState(call_index=1, tag_path=["科学", "天文"], task_type="Domain QA", language="zh",
                   samples=[timeout, refused, unparsable, repeat]),
    ]  # fmt: skip
    for batch in batches:
        dataset.write_batch(batch)
    dataset.close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    make_run(tmp_path / "run")
    return tmp_path / "run"


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 1) -> str:
    with pytest.raises(SystemExit) as exit_info:
        browse.main(argv)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("python -m graphs.browse: error: ")
    return err


def test_argument_errors_are_one_line(tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is not a directory" in one_line_error(capsys, [str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    assert f"has no {DB_NAME}" in one_line_error(capsys, [str(tmp_path / "empty")])
    cluster = tmp_path / "cluster"  # a Ray run's DIR: its samples are in the Postgres store until pulled
    cluster.mkdir()
    (cluster / "run.json").write_text('{"store": "postgresql://u@127.0.0.1/db"}')
    assert f"`condor pull {cluster}` writes its {DB_NAME}" in one_line_error(capsys, [str(cluster)])
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / DB_NAME).write_bytes(b"not a database, " * 100)
    assert "is not a readable Condor database" in one_line_error(capsys, [str(garbage)])
    other = tmp_path / "other"
    other.mkdir()
    with closing(sqlite3.connect(other / DB_NAME)) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert "has no samples table; pass the --out" in one_line_error(capsys, [str(other)])
    fresh = tmp_path / "fresh"  # a run's first write still in the write-ahead log, which an immutable reader skips
    fresh.mkdir()
    with closing(sqlite3.connect(fresh / DB_NAME, isolation_level=None)) as writer:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("CREATE TABLE samples (id TEXT PRIMARY KEY)")
        assert "outside its write-ahead log" in one_line_error(capsys, [str(fresh)])
    assert "invalid port 'x'" in one_line_error(capsys, [str(run_dir), "--port", "x"], 2)
    assert "not between 0 and 65535" in one_line_error(capsys, [str(run_dir), "--port", "70000"], 2)
    with socket.socket() as busy:
        busy.bind((browse.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert f"port {port} on 127.0.0.1 is in use" in one_line_error(capsys, [str(run_dir), "--port", str(port)])


def query(db: Path, sql: str) -> list[dict[str, Any]]:
    """A canned query as Datasette runs it: immutable, with the Host header as its magic parameter."""
    with closing(sqlite3.connect(f"file:{db}?immutable=1", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, {"_header_host": "example:8001"})]


def test_metadata_facets_and_canned_queries_run_on_a_real_database(run_dir: Path) -> None:
    db = run_dir / DB_NAME
    meta = browse.metadata(run_dir, browse.sample_columns(db))
    assert meta["title"] == "Condor run run"
    samples = meta["databases"]["condor"]["tables"]["samples"]
    assert samples["facets"] == ["status", "task_type", "difficulty", "language", "root"]
    assert samples["sort"] == "position"
    queries = meta["databases"]["condor"]["queries"]
    assert set(queries) == {"failure_reasons", "refine_gains"}  # no duplicate_of column yet: nothing to list
    assert "No duplicates are marked yet" in meta["description"]

    reasons = query(db, queries["failure_reasons"]["sql"])
    assert [(r["reason"], r["samples"], r["first_sample"]) for r in reasons] == [
        ("critic: request failed", 2, "s0-0000003"),
        ("critic: the reply has no [Score Start]", 1, "s0-0000005"),
        ("reviser: request failed", 1, "s0-0000002"),
    ]
    assert reasons[0]["story"] == "http://example:8001/condor/samples/s0-0000003"

    gains = query(db, queries["refine_gains"]["sql"])
    assert [(g["id"], g["gain"], g["first_score"], g["final_score"]) for g in gains] == [
        ("s0-0000000", 5, 4, 9),
        ("s0-0000006", 3, 5, 8),
        ("s0-0000001", 2, 6, 8),
    ]

    assert mark_duplicates(run_dir) == 1
    meta = browse.metadata(run_dir, browse.sample_columns(db))
    duplicates = query(db, meta["databases"]["condor"]["queries"]["duplicates"]["sql"])
    assert [(d["id"], d["original"], d["original_question"]) for d in duplicates] == [
        ("s0-0000006", "s0-0000000", "How do I <keep> basil alive in winter?")
    ]
    assert duplicates[0]["original_story"] == "http://example:8001/condor/samples/s0-0000000"
    assert "No duplicates are marked yet" not in meta["description"]


def test_the_templates_fit_the_database_name() -> None:
    assert Path(DB_NAME).stem == browse.DATABASE
    assert (browse.TEMPLATES / f"row-{browse.DATABASE}-samples.html").is_file()
    assert f'urls.row("{browse.DATABASE}", "samples", id)' in (browse.TEMPLATES / "pages/sample/{id}.html").read_text()


def get(asgi: Any, *paths: str) -> list[httpx.Response]:
    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(fetch())


def test_sample_pages_rendered_by_datasette(run_dir: Path) -> None:
    db = run_dir / DB_NAME
    asgi = browse.app(db, browse.metadata(run_dir, browse.sample_columns(db)))
    page, failed, short, missing, table = get(
        asgi, "/condor/samples/s0-0000000", "/condor/samples/s0-0000002", "/sample/s0-0000000",
        "/condor/samples/s9-0000000", "/condor/samples?_facet=status",
    )  # fmt: skip
    assert page.status_code == 200, page.text
    html = page.text
    order = [
        "Sample s0-0000000",
        "How do I &lt;keep&gt; basil alive in winter?",  # the model's text, escaped
        "First answer (void)", "score 4", WEAK, "Critique, round 1: score 4", "1. Thin &lt;b&gt;here&lt;/b&gt;.",
        "Revision 1 (round 1)", "score 7", "A better answer (revision 1).", "Critique, round 2: score 7",
        "Revision 2 (round 2) &middot; final", "score 9", "The best answer (revision 2).", "Critique, round 3: score 9",
        "The stored row",
    ]  # fmt: skip
    positions = [html.find(part) for part in order]
    assert -1 not in positions and positions == sorted(positions), dict(zip(order, positions, strict=True))
    assert "first 4 &rarr; final 9" in html

    assert failed.status_code == 200
    assert "Failed:</strong> reviser: request failed" in failed.text
    assert "Critique, round 1: score 3" in failed.text and "Revision 1" not in failed.text
    assert short.status_code == 302 and short.headers["location"] == "/condor/samples/s0-0000000"
    assert missing.status_code == 404
    assert table.status_code == 200 and 'href="/condor/samples/s0-0000000"' in table.text
    for facet in browse.FACETS:
        assert f'id="facet-{facet}"' in table.text  # the facet's box

"""The run and export commands as a user runs them: real subprocesses, real SQLite, a loopback HTTP server."""

from __future__ import annotations

import http.server
import json
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
import sqlite_utils

from benchmarks.openai_stub import StubServer
from tests.integration.conftest import CONTRACT_COLUMNS, run_cli


def test_run_ends_with_exactly_n_rows_through_an_openai_compatible_server(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    result = run_cli("graphs.run", "--samples", "7", "--out", str(out), "--base-url", stub.base_url, "--model", "stub")
    assert result.returncode == 0, result.stderr
    assert "samples: 7/7 stored (7 done, 0 failed" in result.stdout
    db = sqlite_utils.Database(out / "condor.db")
    assert set(db["samples"].columns_dict) >= CONTRACT_COLUMNS
    rows = list(db["samples"].rows_where(order_by="position"))
    assert [r["id"] for r in rows] == [f"s0-{i:07d}" for i in range(7)]
    assert [r["difficulty"] for r in rows] == ["Easy", "Medium", "Hard"] * 2 + ["Easy"]
    assert all(r["status"] == "done" and r["rounds"] == 1 and r["final_score"] == 9 for r in rows)
    assert db["rounds"].count == 14
    assert {r["language"] for r in rows} == {"en", "zh"}
    # finished threads are deleted: the checkpoint file holds only unfinished work
    with sqlite3.connect(out / "checkpoints.db") as conn:
        assert conn.execute("select count(*) from checkpoints").fetchone()[0] == 0


def test_rerun_of_a_finished_run_does_no_work(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    args = ("graphs.run", "--samples", "3", "--out", str(out), "--base-url", stub.base_url)
    assert run_cli(*args).returncode == 0
    before = stub.requests
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert stub.requests == before  # nothing done twice
    assert "3 were already stored" in again.stdout


def test_resume_with_data_changing_settings_is_refused(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    assert run_cli("graphs.run", "--samples", "3", "--out", str(out), "--base-url", stub.base_url).returncode == 0
    other = run_cli("graphs.run", "--samples", "3", "--out", str(out), "--base-url", stub.base_url, "--seed", "7")
    assert other.returncode == 1
    assert other.stderr.count("\n") == 1 and "seed: 0 -> 7" in other.stderr
    harmless = run_cli(
        "graphs.run", "--samples", "3", "--out", str(out), "--base-url", stub.base_url, "--concurrency", "2"
    )
    assert harmless.returncode == 0, harmless.stderr


@pytest.mark.parametrize("client", ["condor", "openai"])
def test_concurrency_bounds_requests_in_flight(tmp_path: Path, client: str) -> None:
    server = StubServer(latency=0.05).start()
    try:
        result = run_cli(
            "graphs.run", "--samples", "24", "--out", str(tmp_path / "r"), "--base-url", server.base_url,
            "--concurrency", "3", "--client", client,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert server.max_in_flight == 3  # reached, never exceeded
        rows = sqlite_utils.Database(tmp_path / "r" / "condor.db")["samples"].count
        assert rows == 24 and server.requests == 8 + 24 * 4  # every request once: exactly-once, whichever client
    finally:
        server.shutdown()
        server.server_close()


def test_export_messages_and_sharegpt(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    assert run_cli("graphs.run", "--samples", "3", "--out", str(out), "--base-url", stub.base_url).returncode == 0
    messages = tmp_path / "m.jsonl"
    result = run_cli("graphs.export", str(out), "--format", "messages", "--answers", "refine", "-o", str(messages))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in messages.read_text().splitlines()]
    assert len(lines) == 3
    assert [m["role"] for m in lines[0]["messages"]] == ["user", "assistant"]
    assert "(revised)" in lines[0]["messages"][1]["content"]
    sharegpt = tmp_path / "s.jsonl"
    assert (
        run_cli("graphs.export", str(out), "--format", "sharegpt", "--answers", "void", "-o", str(sharegpt)).returncode
        == 0
    )
    first = json.loads(sharegpt.read_text().splitlines()[0])
    assert [t["from"] for t in first["conversations"]] == ["human", "gpt"]
    assert "(revised)" not in first["conversations"][1]["value"]


def one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    err = result.stderr
    assert "Traceback" not in err and err.count("\n") == 1, err


def test_user_mistakes_get_one_line_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "r")
    one_line_error(run_cli("graphs.run", "--samples", "3", "--out", out, "--no-such-flag"))
    one_line_error(run_cli("graphs.run", "--out", out))
    one_line_error(run_cli("graphs.run", "--samples", "0", "--out", out))
    missing = run_cli("graphs.run", "--samples", "3", "--out", out, "--tree", str(tmp_path / "none.yaml"))
    one_line_error(missing)
    assert "not found" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("en:\n  Health:\n    Sleep: [naps, naps]\n")
    duplicate = run_cli("graphs.run", "--samples", "3", "--out", out, "--tree", str(bad))
    one_line_error(duplicate)
    assert "duplicate tag 'naps'" in duplicate.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"en": {"A": ["x",]}}')
    one_line_error(run_cli("graphs.run", "--samples", "3", "--out", out, "--tree", str(broken)))
    lang = run_cli("graphs.run", "--samples", "3", "--out", out, "--languages", "fr=1")
    one_line_error(lang)
    one_line_error(run_cli("graphs.run", "--samples", "3", "--out", out, "--root-weights", "Atlantis=2"))
    dead = run_cli("graphs.run", "--samples", "3", "--out", out, "--base-url", "http://127.0.0.1:9/v1")
    one_line_error(dead)
    assert "cannot reach" in dead.stderr
    assert not (tmp_path / "r" / "condor.db").exists()  # no work was started
    one_line_error(run_cli("graphs.export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.jsonl")))


def test_custom_tree_drives_the_tags(tmp_path: Path, stub: StubServer) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text("en:\n  Astronomy:\n    Telescopes: [Dobsonian collimation]\n  Knitting: [Cable stitches]\n")
    out = tmp_path / "r"
    result = run_cli(
        "graphs.run", "--samples", "6", "--out", str(out), "--base-url", stub.base_url, "--tree", str(tree),
        "--languages", "en",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    paths = {r["tag_path"] for r in sqlite_utils.Database(out / "condor.db")["samples"].rows}
    assert paths == {"Astronomy > Telescopes > Dobsonian collimation", "Knitting > Cable stitches"}  # roots alternate


def test_a_refused_api_key_is_one_line_before_any_work(tmp_path: Path) -> None:
    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        result = run_cli("graphs.run", "--samples", "3", "--out", str(tmp_path / "r"), "--base-url", url,
                         OPENAI_API_KEY="sk-wrong")  # fmt: skip
    finally:
        server.shutdown()
    one_line_error(result)
    assert "refused the API key (set OPENAI_API_KEY)" in result.stderr and "sk-wrong" not in result.stderr

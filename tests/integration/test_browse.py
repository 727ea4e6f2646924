"""`condor browse` for real: a run made against the loopback stub, served by the command in a subprocess, rendered by
headless Chromium; the run directory is unchanged afterwards, file by file, to the nanosecond of its mtimes."""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmarks.openai_stub import StubServer
from condor_state.rundir import DB_NAME
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, free_port, run_cli, wait_until_up

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)  # fmt: skip


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a loopback page; missing Chromium fails the test (CI installs it: see .ci/run)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: .ci/run installs Debian's chromium (apt-get install -y chromium)")
    profile = tmp_path / "chromium-profile"
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


class Text(HTMLParser):
    """The text a page shows (script and style left out), whitespace folded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in {"script", "style"}

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in {"script", "style"}

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return folded(" ".join(parser.parts))


def folded(text: str) -> str:
    return " ".join(text.split())


def snapshot(run_dir: Path) -> dict[str, tuple[int, int, str]]:
    """Every file of the run directory: size, mtime in nanoseconds, content hash."""
    return {
        path.name: (path.stat().st_size, path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(run_dir.iterdir())
    }


def test_browse_a_run_in_a_real_browser(tmp_path: Path) -> None:
    server = StubServer(latency=0.0, realistic=True).start()  # real-looking text: markdown, <think> tags, Chinese
    out = tmp_path / "run"
    try:
        run = run_cli(
            "graphs.run", "--samples", "6", "--out", str(out), "--base-url", server.base_url, "--model", "stub",
            "--threshold", "10", "--max-rounds", "2", "--seed", "3",
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 0, run.stderr
    with closing(sqlite3.connect(f"file:{out / DB_NAME}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        sample = dict(
            conn.execute(
                "SELECT * FROM samples WHERE status = 'done' ORDER BY rounds DESC, position LIMIT 1"
            ).fetchone()
        )
        rounds = [
            dict(r) for r in conn.execute("SELECT * FROM rounds WHERE sample_id = ? ORDER BY round", [sample["id"]])
        ]
        languages = [r[0] for r in conn.execute("SELECT DISTINCT language FROM samples")]
    assert sample["rounds"] >= 2 and len(rounds) == sample["rounds"] + 1, (sample, rounds)
    before = snapshot(out)

    port = free_port()
    browse = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "browse", str(out), "--port", str(port)],
        cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/condor/samples", browse, "condor browse", timeout=60)

        facets = chromium(tmp_path, "--dump-dom", f"{base}/condor/samples").stdout
        for facet in ("status", "task_type", "difficulty", "language", "root"):
            assert f'id="facet-{facet}"' in facets, facet
        facet_text = Text.of(facets)
        assert all(f"{language} " in facet_text for language in languages)

        page = chromium(tmp_path, "--dump-dom", f"{base}/sample/{sample['id']}").stdout  # redirects to the row page
        text = Text.of(page)
        assert f"Sample {sample['id']}" in text
        for part in (sample["question"], sample["void_answer"], *(r["revised_answer"] for r in rounds[:-1])):
            assert folded(part) in text, part
        for r in rounds:
            assert f"Critique, round {r['round']}: score {r['score']}" in text
            assert folded(r["weaknesses"]) in text

        shot = tmp_path / "sample-page.png"
        chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", f"{base}/condor/samples/{sample['id']}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        browse.send_signal(signal.SIGINT)  # Ctrl-C
        stdout, stderr = browse.communicate(timeout=30)
    assert browse.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert stdout.startswith(f"Serving {out / DB_NAME} read-only at {base}/condor/samples"), stdout
    assert snapshot(out) == before  # nothing written: no -wal, no -shm, no touched mtime


def test_browse_refuses_a_busy_port_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    with closing(sqlite3.connect(out / DB_NAME)) as conn:
        conn.execute("CREATE TABLE samples (id TEXT PRIMARY KEY)")
    port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "graphs.browse", str(out), "--port", str(port)],
        cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/condor/samples", first, "condor browse", timeout=60)
        second = run_cli("graphs.browse", str(out), "--port", str(port), timeout=60)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    assert second.returncode == 1
    busy = f"port {port} on 127.0.0.1 is in use; pass another --port (0: any free port)"
    assert second.stderr == f"python -m graphs.browse: error: {busy}\n"

"""`python -m graphs.tree validate|stats|expand` as a user runs it: real subprocesses, a loopback server, the
embedded model."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchmarks.openai_stub import StubServer
from condor_state.tree import load_tree
from prompts.tags import tag_key
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli

TINY = "en:\n  Cooking: [Baking]\n  Travel: [Packing]\n"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def tag_count(tree_file: Path, language: str) -> int:
    paths = load_tree(tree_file).leaves[language]
    return len({p[:k] for p in paths for k in range(1, len(p) + 1)})


# --- validate / stats --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "fragment", "line"),
    [
        ("bad.yaml", "en:\n  Root:\n    Sub: [a, b\n  Other: x\n", "invalid YAML", None),
        ("noname.yaml", "en:\n  Root:\n    Sub:\n      - ok\n      - ''\n", "a tag has no name", 5),
        ("cycle.yaml", "en:\n  Root: &x\n    Sub: *x\n", "refers back to itself", None),
        ("dup.yaml", "en:\n  Root:\n    Sub: [a]\n  Root:\n    Sub: [b]\n", "duplicate key 'Root'", 4),
        ("dupleaf.yaml", "en:\n  Root:\n    Sub: [a, b, a]\n", "duplicate tag 'a' under 'Root > Sub'", 3),
        ("empty.yaml", "en:\n  Other:\n    Sub: [a]\n  Root: []\n", "root domain 'Root' is empty", 4),
        ("bad.json", '{"en": {"Root": ["a",]}}', "invalid JSON", 1),
    ],
)
def test_validate_names_file_line_and_node(
    tmp_path: Path, name: str, text: str, fragment: str, line: int | None
) -> None:
    path = write(tmp_path, name, text)
    err = one_line_error(run_cli("graphs.tree", "validate", str(path)))
    assert fragment in err and str(path) in err
    if line is not None:
        assert f"{path}:{line}:" in err


def test_validate_accepts_a_good_tree_and_reports_user_mistakes(tmp_path: Path) -> None:
    good = run_cli("graphs.tree", "validate", str(write(tmp_path, "t.yaml", TINY)))
    assert good.returncode == 0, good.stderr
    assert "valid (en: 2 roots, 2 leaves)" in good.stdout
    assert "not found" in one_line_error(run_cli("graphs.tree", "validate", str(tmp_path / "none.yaml")))
    one_line_error(run_cli("graphs.tree"))
    one_line_error(run_cli("graphs.tree", "prune", "x.yaml"))
    one_line_error(run_cli("graphs.tree", "stats", "--bogus"))


def test_stats_of_the_default_tree() -> None:
    result = run_cli("graphs.tree", "stats")
    assert result.returncode == 0, result.stderr
    table = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in result.stdout.splitlines()[2:]}
    assert set(table) == {"en", "zh"}
    for roots, subdomains, leaves, tags, depth in table.values():
        assert roots >= 40 and leaves >= 1000 and depth == 3
        assert tags == roots + subdomains + leaves


def test_stats_json_of_a_custom_tree(tmp_path: Path) -> None:
    text = "en:\n  A:\n    B: [c, d]\n  E: [f]\nzh:\n  甲:\n    乙:\n      丙: [丁]\n"
    result = run_cli("graphs.tree", "stats", str(write(tmp_path, "t.yaml", text)), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "en": {"roots": 2, "subdomains": 1, "leaves": 3, "depth": 3, "tags": 6},
        "zh": {"roots": 1, "subdomains": 1, "leaves": 1, "depth": 4, "tags": 4},
    }


# --- expand through a served model (the loopback stub) -------------------------------------------------------------


def test_expand_grows_a_new_tree_coarse_to_fine(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "grown.yaml"
    args = ("graphs.tree", "expand", "--out", str(out), "--base-url", stub.base_url, "--roots", "2", "--children", "3")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert stub.requests == 2 * (1 + 2 + 2 * 3)  # per language: roots, 2 roots' subs, 6 subs' leaves
    tree = load_tree(out)
    assert tree.stats() == {
        "en": {"roots": 2, "subdomains": 6, "leaves": 18, "depth": 3},
        "zh": {"roots": 2, "subdomains": 6, "leaves": 18, "depth": 3},
    }
    assert run_cli("graphs.tree", "validate", str(out)).returncode == 0
    assert not out.with_name(out.name + ".partial.json").exists()
    again = run_cli(*args)  # finished: nothing to do
    assert again.returncode == 0 and "already complete" in again.stdout
    assert stub.requests == 18


def test_expand_from_a_tree_keeps_it_and_grows_its_leaves(tmp_path: Path, stub: StubServer) -> None:
    start = write(tmp_path, "start.yaml", TINY + "zh:\n  烹饪: [烘焙]\n")
    out = tmp_path / "grown.yaml"
    result = run_cli(
        "graphs.tree", "expand", "--from", str(start), "--languages", "en", "--children", "2", "--out", str(out),
        "--base-url", stub.base_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    grown = load_tree(out)
    assert grown.leaves["zh"] == (("烹饪", "烘焙"),)  # a language not asked for is kept as it was
    assert len(grown.leaves["en"]) == 4
    assert {p[:2] for p in grown.leaves["en"]} == {("Cooking", "Baking"), ("Travel", "Packing")}
    assert stub.requests == 2


def test_expand_resumes_after_a_kill_without_asking_twice(tmp_path: Path) -> None:
    server = StubServer(latency=0.4).start()
    try:
        out = tmp_path / "grown.yaml"
        partial = tmp_path / "grown.yaml.partial.json"
        args = ["graphs.tree", "expand", "--out", str(out), "--base-url", server.base_url, "--languages", "en"]
        args += ["--roots", "3", "--children", "3"]  # 1 + 3 + 9 = 13 nodes to expand
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while expanded(partial) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        done_at_kill = expanded(partial)
        assert 3 <= done_at_kill < 13, "the run was not interrupted midway"

        changed = run_cli(*args[:-1], "4")  # other settings than the interrupted run's
        assert "other settings (children)" in one_line_error(changed)

        before = server.requests
        resumed = run_cli(*args)
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming" in resumed.stderr
        assert server.requests - before == 13 - done_at_kill  # finished nodes are never asked again

        fresh = tmp_path / "fresh.yaml"
        straight = run_cli(*[fresh.as_posix() if a == str(out) else a for a in args])
        assert straight.returncode == 0, straight.stderr
        assert yaml.safe_load(out.read_text()) == yaml.safe_load(fresh.read_text())  # same tree as without the kill
    finally:
        server.shutdown()
        server.server_close()


def expanded(partial: Path) -> int:
    try:
        data = json.loads(partial.read_text())
    except (OSError, ValueError):
        return 0
    return sum(1 for nodes in data["languages"].values() for n in nodes if n["grow"] > 0 and n["children"] is not None)


def test_expand_user_mistakes_are_one_line(tmp_path: Path) -> None:
    out = str(tmp_path / "t.yaml")
    bad = write(tmp_path, "bad.yaml", "en:\n  Root: []\n")
    assert "root domain 'Root' is empty" in one_line_error(
        run_cli("graphs.tree", "expand", "--from", str(bad), "--out", out)
    )
    assert "unknown language 'fr'" in one_line_error(
        run_cli("graphs.tree", "expand", "--languages", "fr", "--out", out)
    )
    assert "--depth" in one_line_error(run_cli("graphs.tree", "expand", "--depth", "1", "--out", out))
    dead = run_cli("graphs.tree", "expand", "--out", out, "--base-url", "http://127.0.0.1:9/v1")
    assert "cannot reach" in one_line_error(dead)
    taken = write(tmp_path, "taken.yaml", TINY)
    assert "exists" in one_line_error(
        run_cli("graphs.tree", "expand", "--out", str(taken), "--base-url", "http://127.0.0.1:9/v1")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "taken.yaml"]  # nothing was started


# --- expand with the real embedded model ---------------------------------------------------------------------------


@pytest.mark.model
def test_expand_with_the_embedded_model_grows_a_valid_larger_tree(tmp_path: Path) -> None:
    start = write(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "grown.yaml"
    result = run_cli(
        "graphs.tree", "expand", "--from", str(start), "--languages", "en", "--children", "3", "--attempts", "2",
        "--max-tokens", "120", "--out", str(out), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert run_cli("graphs.tree", "validate", str(out)).returncode == 0
    assert tag_count(out, "en") > tag_count(start, "en")
    grown = load_tree(out).leaves["en"]
    assert all(p[:2] in {("Cooking", "Baking"), ("Travel", "Packing")} for p in grown)
    new_tags = [p[2] for p in grown if len(p) == 3]
    assert new_tags and all(re.fullmatch(r"[A-Za-z][A-Za-z0-9 &'/-]*", t) for t in new_tags)  # the grammar held
    assert len({tag_key(t) for t in new_tags}) == len(new_tags)

"""Preference export on a real run: the realistic loopback stub scores first answers 4-7 and revisions 8-10, and with
--threshold 10 --max-rounds 2 a revision scoring below 10 is revised again, so a second revision may beat, tie or
trail the first. Planted samples add what the stub never makes: no revision, and a final score no higher than the
first. The files are read back through the `datasets` library in a subprocess, as users load them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.openai_stub import StubServer
from condor_state.dataset import Dataset
from condor_state.state import BatchState, Round, Sample, new_sample
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, run_cli

SEED = 3
# position: (question, [(score, revised answer)] per round); a revision is scored by the next round
PLANTED: dict[int, tuple[str, list[tuple[int, str | None]]]] = {
    12: ("How do I keep basil alive on a north-facing kitchen windowsill through the winter months?", [(6, None)]),
    13: ("Which potting mix suits a lemon tree grown indoors in a large terracotta pot?", [(7, "worse"), (5, None)]),
    14: ("When should I repot a monstera whose roots are coming out of the drainage holes?", [(6, "same"), (6, None)]),
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """12 stub samples, each revised once or twice, then the three planted done samples that must never pair."""
    server = StubServer(realistic=True, record=False).start()
    try:
        out = tmp_path_factory.mktemp("dpo") / "run"
        result = run_cli(
            "graphs.run", "--samples", "12", "--out", str(out), "--base-url", server.base_url,
            "--threshold", "10", "--max-rounds", "2", "--seed", str(SEED),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    finally:
        server.shutdown()
        server.server_close()
    samples: list[Sample] = []
    for position, (question, rounds) in PLANTED.items():
        sample = new_sample(SEED, position, "Hard", question)
        sample["void_answer"] = f"first answer {position}"
        sample["answer"] = next((a for _, a in reversed(rounds) if a), sample["void_answer"])
        sample["status"] = "done"
        sample["rounds"] = [
            Round(round=n, strengths="s", weaknesses="w", suggestions="g", score=score, critique="c",
                  revised_answer=revised)
            for n, (score, revised) in enumerate(rounds, start=1)
        ]  # fmt: skip
        samples.append(sample)
    dataset = Dataset.in_dir(out)
    dataset.write_batch(
        BatchState(call_index=40, tag_path=["Home", "Plants"], task_type="Domain QA", language="en", samples=samples)
    )
    dataset.close()
    yield out


def load(*files: tuple[str, Path]) -> list[dict[str, Any]]:
    """Each (builder, file) through datasets.load_dataset in one clean, offline process: its columns and rows."""
    code = (
        "import json, sys\nfrom datasets import load_dataset\nout = []\n"
        "for builder, path in json.loads(sys.argv[2]):\n"
        "    ds = load_dataset(builder, data_files=path, split='train', cache_dir=sys.argv[1])\n"
        "    out.append({'columns': ds.column_names, 'rows': ds.to_list()})\n"
        "print(json.dumps(out))\n"
    )
    where = files[0][1].parent
    env = cli_env(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(where / "hf"))
    args = json.dumps([[builder, str(path)] for builder, path in files])
    result = subprocess.run(
        [sys.executable, "-c", code, str(where / "hf-cache"), args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    loaded: list[dict[str, Any]] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def export(run_dir: Path, out: Path, *args: str) -> str:
    result = run_cli("graphs.export", str(run_dir), "--format", "dpo", "-o", str(out), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def database(run_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[int, str | None]]]]:
    """Samples by id, and each sample's (score, revised answer) per round in order, read with plain sqlite3."""
    conn = sqlite3.connect(run_dir / "condor.db")
    conn.row_factory = sqlite3.Row
    samples = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM samples")}
    rounds: dict[str, list[tuple[int, str | None]]] = {}
    for r in conn.execute("SELECT sample_id, score, revised_answer FROM rounds ORDER BY sample_id, round"):
        rounds.setdefault(r["sample_id"], []).append((r["score"], r["revised_answer"]))
    conn.close()
    return samples, rounds


def test_final_over_first_pairs_load_with_datasets_and_only_revisions_that_scored_higher_pair(
    run_dir: Path, tmp_path: Path
) -> None:
    plain, tagged, parquet = tmp_path / "pairs.jsonl", tmp_path / "meta.jsonl", tmp_path / "meta.parquet"
    stdout = export(run_dir, plain)
    export(run_dir, tagged, "--metadata")
    export(run_dir, parquet, "--metadata")
    bare, with_meta, from_parquet = load(("json", plain), ("json", tagged), ("parquet", parquet))
    assert bare["columns"] == ["prompt", "chosen", "rejected"]
    assert with_meta["columns"] == ["prompt", "chosen", "rejected", "metadata"]
    assert from_parquet == with_meta  # the same columns and rows
    assert [{k: r[k] for k in bare["columns"]} for r in with_meta["rows"]] == bare["rows"]

    samples, _ = database(run_dir)
    rows = with_meta["rows"]
    assert f"wrote {len(rows)} pairs" in stdout
    assert all(r["chosen"] != r["rejected"] for r in rows)
    expected = {
        i for i, s in samples.items()
        if s["status"] == "done" and s["rounds"] and s["first_score"] is not None and s["final_score"] is not None
        and s["final_score"] > s["first_score"] and not s["duplicate_of"]
    }  # fmt: skip
    assert [r["metadata"]["id"] for r in rows] == sorted(expected, key=lambda i: samples[i]["position"])
    planted = {f"s{SEED}-{p:07d}" for p in PLANTED}
    assert planted <= set(samples) and not planted & {r["metadata"]["id"] for r in rows}
    assert any(not s["rounds"] for s in samples.values()) and len(expected) >= 10  # neither side is empty
    for r in rows:
        s = samples[r["metadata"]["id"]]
        assert r["prompt"] == [{"role": "user", "content": s["question"]}]
        assert r["chosen"] == [{"role": "assistant", "content": s["refined_answer"]}]
        assert r["rejected"] == [{"role": "assistant", "content": s["void_answer"]}]
        meta = r["metadata"]
        assert (meta["rejected_score"], meta["chosen_score"]) == (s["first_score"], s["final_score"])
        assert meta["margin"] == s["final_score"] - s["first_score"] >= 1 and meta["pairing"] == "final"
        assert all(meta[k] == s[k] for k in ("tag_path", "task_type", "difficulty", "language"))

    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert f"| pairs written | {len(rows)} |" in card and "Pairing rule `--pairs final`" in card


def test_consecutive_pairs_put_each_revision_over_the_answer_before_it_when_the_next_critique_scored_it_higher(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "consecutive.parquet"
    export(run_dir, out, "--metadata", "--pairs", "consecutive")
    (data,) = load(("parquet", out))
    samples, rounds = database(run_dir)
    got = {(m["id"], m["rejected_revision"], m["chosen_revision"]) for m in (r["metadata"] for r in data["rows"])}
    assert len(got) == len(data["rows"])  # no pair twice
    expected = set()
    for sample_id, history in rounds.items():
        s = samples[sample_id]
        if s["status"] != "done" or s["duplicate_of"]:
            continue
        if s["rounds"] and s["final_score"] is not None and s["final_score"] > s["first_score"]:
            expected.add((sample_id, 0, s["rounds"]))
        answers = [s["void_answer"], *(revised for _, revised in history if revised)]
        for k in range(1, len(answers)):  # revision k is scored by round k+1, the answer before it by round k
            if k < len(history) and history[k][0] > history[k - 1][0] and answers[k] != answers[k - 1]:
                expected.add((sample_id, k - 1, k))
    assert got == expected
    assert any(rejected == 1 for _, rejected, _ in got)  # a second revision over the first
    fell = {i for i, h in rounds.items() if len(h) == 3 and h[2][0] <= h[1][0] and i.startswith(f"s{SEED}-")}
    assert fell and not {(i, 1, 2) for i in fell} & got  # a second revision that scored no higher never pairs
    for r in data["rows"]:
        meta, history = r["metadata"], rounds[r["metadata"]["id"]]
        assert r["chosen"][0]["content"] == history[meta["chosen_revision"] - 1][1]
        assert meta["chosen_score"] == history[meta["chosen_revision"]][0]
        assert meta["rejected_score"] == history[meta["rejected_revision"]][0]
        assert r["chosen"] != r["rejected"] and meta["margin"] >= 1

    report = run_cli("graphs.report", str(run_dir), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    finals = sum(1 for r in data["rows"] if r["metadata"]["pairing"] == "final")
    assert f"| final answer over first (`--pairs final`) | {finals} |" in text
    assert f"| also each revision over the one before (`--pairs consecutive`) | {len(data['rows'])} |" in text


def test_dpo_options_that_conflict_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    for args in (("--status", "failed"), ("--answers", "void"), ("--min-margin", "0")):
        result = run_cli("graphs.export", str(run_dir), "--format", "dpo", "-o", str(tmp_path / "x.jsonl"), *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr and args[0] in result.stderr
    assert not (tmp_path / "x.jsonl").exists()

"""`langgraph dev` serves the graph offline, as LangGraph Studio loads it; driven with the real langgraph_sdk.

Human review (stop before a node, edit the state, resume) and time travel (history, fork from a checkpoint) are
exercised as a person does them in Studio: against the loopback stub, whose scores are deterministic, and on the
embedded Gemma model (no OPENAI_BASE_URL).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from benchmarks.openai_stub import StubServer
from tests.conftest import ROOT
from tests.integration.conftest import cli_env, free_port, run_cli, wait_until_up

ROLES = {"tag_sampler", "question_writer", "responder", "critic", "reviser"}
PINNED: dict[str, Any] = {
    "question": "How do I keep a basil plant alive on a windowsill through the winter?",
    "language": "en",
    "tag_path": ["Home & Garden", "Indoor Plants", "Herbs on a windowsill"],
    "task_type": "Domain QA",
}
# the stub's critic scores 9 when the answer it reviews says "(revised)", else 5; its reviser writes "(revised)"
STUB_EDIT = "Give it the sunniest window, keep it off the cold glass at night and water sparingly (revised)."
# the embedded model: short replies, a pinned question (no question writer call) keep these tests fast
FAST = {"max_rounds": 1, "max_tokens": 160}


def test_graph_module_imports_without_side_effects() -> None:
    code = "import sys, graphs.graph as g; print(sorted(g.graph.nodes)); print('llama_cpp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    nodes, llama_loaded = result.stdout.splitlines()
    assert nodes == "['__start__', 'critic', 'question_writer', 'responder', 'reviser', 'tag_sampler']"
    assert llama_loaded == "False"  # no model is loaded until a node asks for one


@contextmanager
def langgraph_dev_server(cwd: Path, config: Path, log: Path, **env: str) -> Iterator[str]:
    """`langgraph dev` on a free loopback port, as the README runs it; yields its URL, stops it afterwards."""
    port = free_port()
    exe = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or "langgraph"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [exe, "dev", "--config", str(config), "--no-browser", "--no-reload", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=cwd, env=cli_env(LANGGRAPH_CLI_NO_ANALYTICS="1", **env), stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(f"{url}/ok", proc, "langgraph dev")
        except RuntimeError:
            raise RuntimeError(f"langgraph dev did not start:\n{log.read_text()[-3000:]}") from None
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def langgraph_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The repo's langgraph.json served from the repo root, with the model on the loopback stub."""
    stub = StubServer(latency=0.01).start()
    log = tmp_path_factory.mktemp("studio") / "dev.log"
    try:
        with langgraph_dev_server(
            ROOT, ROOT / "langgraph.json", log, OPENAI_BASE_URL=stub.base_url, CONDOR_MODEL="stub"
        ) as url:
            yield url
    finally:
        stub.shutdown()
        stub.server_close()


def relocated_config(home: Path) -> Path:
    """The repo's langgraph.json with absolute paths, so a server can run (and keep its .langgraph_api) in `home`."""
    config = json.loads((ROOT / "langgraph.json").read_text())
    config["dependencies"] = [str((ROOT / dep).resolve()) for dep in config["dependencies"]]
    for name, spec in config["graphs"].items():
        path, _, attr = spec.rpartition(":")
        config["graphs"][name] = f"{(ROOT / path).resolve()}:{attr}"
    target = home / "langgraph.json"
    target.write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def embedded_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """No OPENAI_BASE_URL in the server's environment: the served graph runs the embedded model in process."""
    home = tmp_path_factory.mktemp("studio-embedded")
    with langgraph_dev_server(home, relocated_config(home), home / "dev.log") as url:
        yield url


def only_sample(state: Any) -> dict[str, Any]:
    """The one sample of a graph state (as `runs.wait` or `get_state` gives it)."""
    assert isinstance(state, dict) and len(state["samples"]) == 1, state
    return state["samples"][0]


def nodes_run(history: list[dict[str, Any]]) -> list[list[str]]:
    """The `next` of each checkpoint, oldest first: the path a run took through the graph."""
    return [list(checkpoint["next"]) for checkpoint in reversed(history)]


def test_langgraph_dev_serves_and_runs_the_graph(langgraph_dev: str) -> None:
    async def scenario() -> dict[str, Any]:
        client = get_client(url=langgraph_dev)
        assistants = await client.assistants.search(graph_id="condor")
        assert assistants, "graph 'condor' is not served"
        graph = await client.assistants.get_graph(assistants[0]["assistant_id"])
        assert {n["id"] for n in graph["nodes"]} >= {"tag_sampler", "question_writer", "responder", "critic", "reviser"}
        thread = await client.threads.create()
        # an empty input: the graph samples a tag, task and language itself
        state = await client.runs.wait(thread["thread_id"], "condor", input={}, context={"max_rounds": 1})
        assert isinstance(state, dict), state
        return state

    state = asyncio.run(scenario())
    assert state["tag_path"] and state["task_type"] and state["language"] in {"en", "zh"}
    assert len(state["samples"]) == 3
    assert all(s["status"] == "done" and len(s["rounds"]) == 2 for s in state["samples"])


def test_studio_streams_every_model_call_of_a_run_as_a_message(langgraph_dev: str) -> None:
    """Studio's messages view: with a streaming listener the engine's plain model calls take LangChain's whole path,
    so each one reaches the stream with its node and its reply."""

    async def scenario() -> list[tuple[str, str]]:
        client = get_client(url=langgraph_dev)
        thread = await client.threads.create()
        seen: list[tuple[str, str]] = []
        async for part in client.runs.stream(
            thread["thread_id"], "condor", input=PINNED, context={"max_rounds": 1}, stream_mode="messages-tuple"
        ):
            if part.event == "messages":
                message, metadata = part.data
                seen.append((metadata["langgraph_node"], message["content"]))
        return seen

    seen = asyncio.run(scenario())
    # a pinned question: one answer, its critique, one revision and the revision's critique
    assert [node for node, _ in seen] == ["responder", "critic", "reviser", "critic"], seen
    assert all(content.strip() for _, content in seen)


def test_edit_the_answer_before_the_critic_then_fork_from_the_unedited_checkpoint(langgraph_dev: str) -> None:
    """The critic judges the edited answer; replaying the checkpoint before the edit takes the other path."""

    async def scenario() -> dict[str, Any]:
        client = get_client(url=langgraph_dev)
        thread_id = (await client.threads.create())["thread_id"]
        context = {"max_rounds": 1}
        paused = await client.runs.wait(thread_id, "condor", input=PINNED, context=context, interrupt_before=["critic"])
        at_critic = await client.threads.get_state(thread_id)
        first = only_sample(paused)
        await client.threads.update_state(thread_id, {"samples": [{**first, "answer": STUB_EDIT}]})
        edited = await client.threads.get_state(thread_id)
        final = await client.runs.wait(thread_id, "condor", input=None, context=context)
        history = await client.threads.get_history(thread_id, limit=50)
        fork_from = at_critic["checkpoint"]["checkpoint_id"]  # before the edit
        forks = {
            threshold: await client.runs.wait(
                thread_id, "condor", input=None, checkpoint_id=fork_from, context={**context, "threshold": threshold}
            )
            for threshold in (8, 5)
        }
        after = await client.threads.get_history(thread_id, limit=50)
        return locals()

    r = asyncio.run(scenario())
    first = r["first"]
    assert r["at_critic"]["next"] == ["critic"] and first["status"] == "active" and not first["rounds"]
    assert r["edited"]["next"] == ["critic"] and only_sample(r["edited"]["values"])["answer"] == STUB_EDIT
    final = only_sample(r["final"])
    # accepted at the first critique (score 9): the critic read the edit, not the model's answer (score 5)
    assert final["status"] == "done" and [x["score"] for x in final["rounds"]] == [9]
    assert final["answer"] == STUB_EDIT and final["void_answer"] == first["void_answer"]
    assert [c["metadata"]["source"] for c in r["history"]][:2] == ["loop", "update"]  # the edit is a checkpoint
    # time travel: the same checkpoint without the edit loops once (threshold 8), or stops at once (threshold 5)
    unedited, lenient = only_sample(r["forks"][8]), only_sample(r["forks"][5])
    assert [x["score"] for x in unedited["rounds"]] == [5, 9] and "(revised)" in unedited["answer"]
    assert [x["score"] for x in lenient["rounds"]] == [5] and lenient["answer"] == first["answer"]
    assert all(s["void_answer"] == first["void_answer"] for s in (unedited, lenient))  # the responder did not rerun
    forked = [c for c in r["after"] if c["metadata"]["source"] == "fork"]
    assert len(forked) == 2 and all(c["parent_checkpoint"]["checkpoint_id"] == r["fork_from"] for c in forked)
    ids = {c["checkpoint"]["checkpoint_id"] for c in r["after"]}
    assert {c["checkpoint"]["checkpoint_id"] for c in r["history"]} <= ids  # the edited branch is still there


def test_accept_an_answer_at_the_reviser_by_editing_score_and_status(langgraph_dev: str) -> None:
    async def scenario() -> dict[str, Any]:
        client = get_client(url=langgraph_dev)
        thread_id = (await client.threads.create())["thread_id"]
        context = {"max_rounds": 2}
        paused = await client.runs.wait(
            thread_id, "condor", input=PINNED, context=context, interrupt_before=["reviser"]
        )
        at_reviser = await client.threads.get_state(thread_id)
        sample = only_sample(paused)
        judged = {**sample["rounds"][-1], "score": 8, "weaknesses": "1. None that matter (reviewed by a person)."}
        accepted = {**sample, "rounds": [*sample["rounds"][:-1], judged], "status": "done"}
        await client.threads.update_state(thread_id, {"samples": [accepted]})
        after_edit = await client.threads.get_state(thread_id)
        final = await client.runs.wait(thread_id, "condor", input=None, context=context)
        return locals()

    r = asyncio.run(scenario())
    assert r["at_reviser"]["next"] == ["reviser"] and [x["score"] for x in r["sample"]["rounds"]] == [5]
    assert r["after_edit"]["next"] == []  # the critic's edge re-read the edited state: nothing left to do
    final = only_sample(r["final"])
    assert final["status"] == "done" and final["answer"] == r["sample"]["answer"]
    assert [(x["score"], x["revised_answer"]) for x in final["rounds"]] == [(8, None)]
    assert final["rounds"][0]["weaknesses"].startswith("1. None that matter")


@pytest.mark.model
def test_embedded_model_in_studio_runs_to_the_end_and_forks_with_another_threshold(embedded_dev: str) -> None:
    async def scenario() -> dict[str, Any]:
        client = get_client(url=embedded_dev)
        assistants = await client.assistants.search(graph_id="condor")
        graph = await client.assistants.get_graph(assistants[0]["assistant_id"])
        thread_id = (await client.threads.create())["thread_id"]
        # threshold 10 is not reached by the 270M model's first answer (seeded, so always the same): one revision
        final = await client.runs.wait(thread_id, "condor", input=PINNED, context={**FAST, "threshold": 10})
        history = await client.threads.get_history(thread_id, limit=50)
        before_critic = next(c for c in reversed(history) if c["next"] == ["critic"])
        forked = await client.runs.wait(
            thread_id, "condor", input=None, checkpoint_id=before_critic["checkpoint"]["checkpoint_id"],
            context={**FAST, "threshold": 1},
        )  # fmt: skip
        after = await client.threads.get_history(thread_id, limit=50)
        return locals()

    r = asyncio.run(scenario())
    assert {n["id"] for n in r["graph"]["nodes"]} == ROLES | {"__start__", "__end__"}
    final = r["final"]
    assert final["tag_path"] == PINNED["tag_path"] and final["task_type"] == "Domain QA" and final["language"] == "en"
    sample = only_sample(final)
    assert sample["status"] == "done", sample["error"]
    assert sample["question"] == PINNED["question"] and sample["void_answer"]
    revision, last = sample["rounds"]
    assert revision["revised_answer"] and sample["answer"] == revision["revised_answer"] and not last["revised_answer"]
    assert all(1 <= x["score"] <= 10 for x in sample["rounds"])
    assert nodes_run(r["history"]) == [
        ["__start__"], ["tag_sampler"], ["question_writer"], ["responder"], ["critic"], ["reviser"], ["critic"], [],
    ]  # fmt: skip
    # the fork re-ran only the critic, from the first answer, and threshold 1 accepts whatever it scores
    forked = only_sample(r["forked"])
    assert forked["status"] == "done", forked["error"]
    assert len(forked["rounds"]) == 1 and forked["rounds"][0]["revised_answer"] is None
    assert forked["void_answer"] == forked["answer"] == sample["void_answer"]
    fork = next(c for c in r["after"] if c["metadata"]["source"] == "fork")
    assert fork["parent_checkpoint"]["checkpoint_id"] == r["before_critic"]["checkpoint"]["checkpoint_id"]


EDIT_SENTENCES = (
    "Put the pot in the sunniest window you have, ideally facing south: basil needs six or more hours of light.",
    "At night move it away from the cold glass: leaves touching a pane below ten degrees Celsius blacken quickly.",
    "Water only when the top two centimetres of soil are dry, and empty the saucer so the roots never sit in water.",
    "Pinch off flower buds as soon as they appear and harvest from the top, which keeps the plant bushy and leafy.",
    "If the stems stretch and the leaves pale, add a small LED grow light for a few hours in the morning and evening.",
    "Feed it lightly once a month with a diluted liquid fertiliser, as growth slows down in the short winter days.",
)
LONG_EDIT = " ".join(EDIT_SENTENCES * 8)  # about 1,100 Gemma tokens


@pytest.mark.model
def test_embedded_model_in_studio_critiques_an_answer_edited_before_the_critic(embedded_dev: str) -> None:
    async def scenario() -> dict[str, Any]:
        client = get_client(url=embedded_dev)
        thread_id = (await client.threads.create())["thread_id"]
        context = {**FAST, "max_rounds": 0}
        paused = await client.runs.wait(thread_id, "condor", input=PINNED, context=context, interrupt_before=["critic"])
        at_critic = await client.threads.get_state(thread_id)
        first = only_sample(paused)
        # a person replaces the answer (which also rescues it, should the small model's own answer have failed)
        edit = {**first, "answer": LONG_EDIT, "status": "active", "error": None}
        await client.threads.update_state(thread_id, {"samples": [edit]})
        final = await client.runs.wait(thread_id, "condor", input=None, context=context)
        history = await client.threads.get_history(thread_id, limit=50)
        return locals()

    r = asyncio.run(scenario())
    first = r["first"]
    assert r["at_critic"]["next"] == ["critic"] and not first["rounds"]
    sample = only_sample(r["final"])
    assert sample["status"] == "done", sample["error"]
    assert sample["answer"] == LONG_EDIT and sample["void_answer"] == first["void_answer"]
    assert len(sample["rounds"]) == 1 and 1 <= sample["rounds"][0]["score"] <= 10
    # the critic's prompt carried the edit: about 1,450 tokens a call, against under 500 with the model's own
    # answer of at most 160 tokens
    calls = 1 + sample["repairs"] - first["repairs"]
    assert (sample["tokens_in"] - first["tokens_in"]) / calls > 1000, (sample["tokens_in"], first["tokens_in"])
    update = next(c for c in r["history"] if c["metadata"]["source"] == "update")
    assert update["next"] == ["critic"] and only_sample(update["values"])["answer"] == LONG_EDIT
    assert nodes_run(r["history"])[-3:] == [["critic"], ["critic"], []]  # paused, edited, critiqued: the end


def test_studio_refuses_the_same_out_of_range_setting_as_the_cli(langgraph_dev: str, tmp_path: Path) -> None:
    async def scenario() -> Any:
        client = get_client(url=langgraph_dev)
        thread = await client.threads.create()
        return await client.runs.wait(thread["thread_id"], "condor", input=PINNED, context={"threshold": 0})

    with pytest.raises(Exception, match="SettingError: threshold must be between 1 and 10, not 0"):
        asyncio.run(scenario())
    cli = run_cli("graphs.run", "--samples", "3", "--out", str(tmp_path / "r"), "--threshold", "0")
    assert cli.returncode == 2 and "--threshold must be between 1 and 10, not 0" in cli.stderr

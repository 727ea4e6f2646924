"""`langgraph dev` serves the graph offline, as LangGraph Studio loads it; driven with the real langgraph_sdk."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.conftest import ROOT, cli_env
from tests.openai_stub import StubServer
from tests.test_real_models import free_port


def test_graph_module_imports_without_side_effects() -> None:
    code = "import sys, graphs.graph as g; print(sorted(g.graph.nodes)); print('llama_cpp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    nodes, llama_loaded = result.stdout.splitlines()
    assert nodes == "['__start__', 'critic', 'question_writer', 'responder', 'reviser', 'tag_sampler']"
    assert llama_loaded == "False"  # no model is loaded until a node asks for one


@pytest.fixture(scope="module")
def langgraph_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stub = StubServer(latency=0.01).start()
    port = free_port()
    exe = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or "langgraph"
    log = tmp_path_factory.mktemp("studio") / "dev.log"
    env = cli_env(OPENAI_BASE_URL=stub.base_url, CONDOR_MODEL="stub", LANGGRAPH_CLI_NO_ANALYTICS="1")
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [exe, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/ok", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"langgraph dev did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        stub.shutdown()
        stub.server_close()


def test_langgraph_dev_serves_and_runs_the_graph(langgraph_dev: str) -> None:
    async def scenario() -> dict:
        client = get_client(url=langgraph_dev)
        assistants = await client.assistants.search(graph_id="condor")
        assert assistants, "graph 'condor' is not served"
        graph = await client.assistants.get_graph(assistants[0]["assistant_id"])
        assert {n["id"] for n in graph["nodes"]} >= {"tag_sampler", "question_writer", "responder", "critic", "reviser"}
        thread = await client.threads.create()
        # an empty input: the graph samples a tag, task and language itself
        return await client.runs.wait(thread["thread_id"], "condor", input={}, context={"max_rounds": 1})

    state = asyncio.run(scenario())
    assert state["tag_path"] and state["task_type"] and state["language"] in {"en", "zh"}
    assert len(state["samples"]) == 3
    assert all(s["status"] == "done" and len(s["rounds"]) == 2 for s in state["samples"])

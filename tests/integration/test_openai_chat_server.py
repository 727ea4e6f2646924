"""OpenAIChat against real loopback servers: the project's stub (with its injected faults) and, for what the stub
cannot do (401, 400, seeing the request), a few lines of aiohttp. ChatOpenAI on the same stub is the reference."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any, NotRequired, TypedDict

import aiohttp
import pytest
from aiohttp import web
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, LLMResult

import agents.openai_chat as oc
from agents.openai_chat import (
    AuthenticationFailed,
    BadResponse,
    EndpointUnreachable,
    OpenAIChat,
    RequestRejected,
    RequestTimeout,
    ServerError,
)
from benchmarks.openai_stub import StubServer
from prompts.critique import build_messages
from tests.integration.conftest import free_port

KEY = "sk-integration-secret-do-not-print"


class ScriptedFaults(random.Random):
    """Stands in for the stub's random generator: the next requests get these faults (None: a normal reply)."""

    def __init__(self, *faults: str | None) -> None:
        super().__init__(0)
        self.faults = list(faults)
        self.next: str | None = None

    def random(self) -> float:
        self.next = self.faults.pop(0) if self.faults else None
        return 0.0 if self.next else 1.0  # below the stub's `faults` share only when a fault is due

    def choice(self, _: Any) -> Any:
        return self.next


def scripted(stub: StubServer) -> ScriptedFaults:
    """The fault script the `server` fixture gave the stub in place of its random generator."""
    assert isinstance(stub.rng, ScriptedFaults)
    return stub.rng


@pytest.fixture
def server() -> Iterator[StubServer]:
    stub = StubServer(latency=0.0, faults=0.5, hang=1.0).start()
    stub.rng = ScriptedFaults()
    yield stub
    stub.shutdown()
    stub.server_close()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oc, "BACKOFF_INITIAL", 0.01)  # Retry-After is still honoured as sent


def lean(stub: StubServer, **kwargs: Any) -> OpenAIChat:
    return OpenAIChat(base_url=stub.base_url, model="stub", api_key=KEY, **kwargs)


CONVERSATIONS: list[list[Any]] = [
    build_messages("What limits the speed of sound in air?", "Temperature, mostly. " * 40, "en"),  # dicts, as engine
    [SystemMessage("Write [Improved Answer Start] … [Improved Answer End]."), HumanMessage("Improve: 声速")],
    [HumanMessage("Just a plain question?")],
]


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_replies_and_token_counts_match_chatopenai_on_the_same_stub(
    server: StubServer, conversation: list[Any]
) -> None:
    from langchain_openai import ChatOpenAI
    from openai import DefaultAioHttpClient

    async def both() -> tuple[BaseMessage, BaseMessage]:
        http = DefaultAioHttpClient()
        reference = ChatOpenAI(base_url=server.base_url, model="stub", api_key=KEY, http_async_client=http)
        model = lean(server)
        try:
            return await model.ainvoke(conversation), await reference.ainvoke(conversation)
        finally:
            await model.aclose()
            await http.aclose()

    ours, theirs = asyncio.run(both())
    assert isinstance(ours, AIMessage) and isinstance(theirs, AIMessage)
    assert ours.content == theirs.content and ours.content
    assert ours.usage_metadata and theirs.usage_metadata
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert ours.usage_metadata[key] == theirs.usage_metadata[key]
    for key in ("finish_reason", "model_name"):
        assert ours.response_metadata[key] == theirs.response_metadata[key]
    assert lean(server).invoke(conversation).content == ours.content  # the sync path says the same


def test_a_cut_reply_says_length(server: StubServer) -> None:
    scripted(server).faults = ["truncated"]
    reply = lean(server).invoke("A question?")
    assert reply.response_metadata["finish_reason"] == "length"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_429_with_retry_after_and_500_are_retried(server: StubServer, fast_backoff: None, mode: str) -> None:
    scripted(server).faults = ["429", "500"]
    model = lean(server, max_retries=2)
    started = time.monotonic()
    reply = model.invoke("A question?") if mode == "sync" else asyncio.run(model.ainvoke("A question?"))
    assert reply.content and server.requests == 3
    assert server.fault_counts == {"429": 1, "500": 1}
    assert time.monotonic() - started >= 0.2  # the stub's Retry-After: 0.2 was waited out


def test_retries_run_out_with_a_server_error_that_counts_its_attempts(server: StubServer, fast_backoff: None) -> None:
    scripted(server).faults = ["500"] * 5
    with pytest.raises(ServerError) as caught:
        asyncio.run(lean(server, max_retries=2).ainvoke("A question?"))
    assert caught.value.status == 500 and caught.value.attempts == 3 and server.requests == 3
    assert str(caught.value).endswith("internal error (after 3 attempts)") and KEY not in str(caught.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_bad_json_raises_at_once(server: StubServer, mode: str) -> None:
    scripted(server).faults = ["badjson"]
    model = lean(server, max_retries=3)
    with pytest.raises(BadResponse, match="unreadable JSON"):
        model.invoke("A question?") if mode == "sync" else asyncio.run(model.ainvoke("A question?"))
    assert server.requests == 1  # not retried here: the caller counts it as an attempt


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stalled_request_times_out_and_is_retried(server: StubServer, fast_backoff: None, mode: str) -> None:
    scripted(server).faults = ["timeout"]
    model = lean(server, timeout=0.3, max_retries=1)
    started = time.monotonic()
    reply = model.invoke("A question?") if mode == "sync" else asyncio.run(model.ainvoke("A question?"))
    assert reply.content and server.requests == 2 and time.monotonic() - started < 1.5

    scripted(server).faults = ["timeout", "timeout"]
    with pytest.raises(RequestTimeout, match=r"within 0.3s \(after 2 attempts\)"):
        model.invoke("A question?") if mode == "sync" else asyncio.run(model.ainvoke("A question?"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_dead_port_raises_unreachable_quickly(mode: str) -> None:
    model = OpenAIChat(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=KEY, max_retries=2)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable, match="cannot connect") as caught:
        model.invoke("q") if mode == "sync" else asyncio.run(model.ainvoke("q"))
    assert time.monotonic() - started < 3.0  # default backoff: about 0.5 s + 1 s
    assert caught.value.attempts == 3 and KEY not in str(caught.value)


def test_requests_in_flight_never_exceed_the_callers_gate() -> None:
    stub = StubServer(latency=0.05).start()
    try:

        async def run() -> list[BaseMessage]:
            async with aiohttp.ClientSession() as session:  # the caller's pool, shared by every call
                model = lean(stub, session=session)
                gate = asyncio.Semaphore(5)

                async def one(i: int) -> BaseMessage:
                    async with gate:
                        return await model.ainvoke(f"Question {i}?")

                replies = await asyncio.gather(*(one(i) for i in range(60)))
                assert not model._sessions  # it used the caller's session, made none of its own
                return replies

        replies = asyncio.run(run())
    finally:
        stub.shutdown()
        stub.server_close()
    assert len(replies) == 60 and stub.requests == 60
    assert stub.max_in_flight == 5  # reached, never exceeded


def test_without_a_session_one_is_made_per_event_loop_and_closed_by_aclose(server: StubServer) -> None:
    model = lean(server)

    async def twice() -> aiohttp.ClientSession:
        await model.ainvoke("one?")
        await model.ainvoke("two?")
        assert len(model._sessions) == 1
        session = next(iter(model._sessions.values()))
        await model.aclose()
        assert session.closed and not model._sessions
        return session

    first = asyncio.run(twice())
    second = asyncio.run(twice())  # a new loop gets a new session
    assert first is not second and server.requests == 4


class Recorder(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.ended: list[LLMResult] = []

    async def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, **kwargs: Any) -> None:
        self.started.append({"serialized": serialized, **kwargs})

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.ended.append(response)


def test_callbacks_and_astream_events_see_every_call(server: StubServer) -> None:
    recorder = Recorder()
    model = lean(server, max_tokens=32)

    async def scenario() -> list[str]:
        await model.ainvoke("Callbacks?", config={"callbacks": [recorder]})
        kinds = [event["event"] async for event in model.astream_events("Events?", version="v2")]
        await model.aclose()
        return kinds

    kinds = asyncio.run(scenario())
    assert len(recorder.started) == 1 and len(recorder.ended) == 1
    generation = recorder.ended[0].generations[0][0]
    assert isinstance(generation, ChatGeneration) and isinstance(generation.message, AIMessage)
    assert generation.text.startswith("An answer") and generation.message.usage_metadata
    assert generation.message.usage_metadata["output_tokens"] > 0
    assert recorder.started[0]["invocation_params"]["max_tokens"] == 32
    assert KEY not in str(recorder.started)
    assert "on_chat_model_start" in kinds and "on_chat_model_end" in kinds


@pytest.fixture
def whole_path(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per call that took BaseChatModel.ainvoke, LangChain's whole path with its run bookkeeping."""
    calls: list[int] = []
    original = BaseChatModel.ainvoke

    async def spy(self: BaseChatModel, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(BaseChatModel, "ainvoke", spy)
    return calls


def test_a_plain_call_nobody_listens_to_skips_the_run_bookkeeping_and_gives_what_ainvoke_gives(
    server: StubServer, whole_path: list[int]
) -> None:
    model = lean(server, max_tokens=32)
    recorder = Recorder()

    async def scenario() -> tuple[Any, Any, AIMessage]:
        quiet = await model.acomplete(CONVERSATIONS[0])
        heard = await model.acomplete(CONVERSATIONS[0], {"callbacks": [recorder]})
        message = await model.ainvoke(CONVERSATIONS[0])
        await model.aclose()
        return quiet, heard, message

    quiet, heard, message = asyncio.run(scenario())
    assert whole_path == [1, 1]  # the plain call with a handler and ainvoke took LangChain's whole path
    assert len(recorder.started) == 1 and len(recorder.ended) == 1
    assert quiet == heard and quiet["text"] == message.content and quiet["usage"] == message.usage_metadata
    assert quiet["finish_reason"] == message.response_metadata["finish_reason"] == "stop"
    assert quiet["model_name"] == message.response_metadata["model_name"]


class OneAnswer(TypedDict):
    answer: NotRequired[str]


def test_a_handler_given_to_a_graph_run_sees_the_model_calls_inside_it(
    server: StubServer, whole_path: list[int]
) -> None:
    """What Studio and tracers rely on: callbacks inherited from the graph's run reach each model call (and a graph
    run nobody listens to makes no LangChain run for it)."""
    from langgraph.graph import START, StateGraph

    model = lean(server, max_tokens=32)

    async def node(state: OneAnswer) -> dict[str, Any]:  # as Condor's engine calls a model: acomplete
        return {"answer": (await model.acomplete([{"role": "user", "content": "Inside a graph?"}]))["text"]}

    builder = StateGraph(OneAnswer)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile()
    recorder = Recorder()

    async def scenario() -> dict[str, Any]:
        quiet = await graph.ainvoke({})
        heard = await graph.ainvoke({}, config={"callbacks": [recorder]})
        await model.aclose()
        assert quiet["answer"] == heard["answer"]
        return heard

    assert asyncio.run(scenario())["answer"].startswith("An answer")
    assert len(recorder.started) == 1 and len(recorder.ended) == 1 and whole_path == [1]


def test_the_request_on_the_wire_and_4xx_errors() -> None:
    """What is sent (body, key in the header only), and 401/400 raising at once with the server's own words."""
    seen: list[tuple[dict[str, str], dict[str, Any]]] = []
    answers = [
        (401, {"error": {"message": "Incorrect API key provided"}}),
        (400, {"error": {"message": "max_tokens is too large"}}),
    ]

    async def chat(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.json()))
        status, body = answers.pop(0)
        return web.json_response(body, status=status)

    async def scenario() -> tuple[str, Exception, Exception]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        model = OpenAIChat(base_url=base_url, model="m", api_key=KEY, temperature=0.5,
                           max_tokens=99, seed=7, extra_body={"grammar": "root ::= [a-z]+"})  # fmt: skip
        errors: list[Exception] = []
        for _ in range(2):
            try:
                await model.ainvoke([SystemMessage("sys"), HumanMessage("hi")], stop=["\nUser:"])
            except Exception as exc:
                errors.append(exc)
        await model.aclose()
        await runner.cleanup()
        return base_url, errors[0], errors[1]

    base_url, auth, rejected = asyncio.run(scenario())
    assert isinstance(auth, AuthenticationFailed) and auth.status == 401
    assert str(auth) == f"HTTP 401 from {base_url}/chat/completions: Incorrect API key provided"
    assert isinstance(rejected, RequestRejected) and "max_tokens is too large" in str(rejected)
    assert KEY not in str(auth) + str(rejected) + repr(auth) + repr(rejected)
    assert len(seen) == 2  # one request each: never retried
    headers, body = seen[0]
    assert headers["Authorization"] == f"Bearer {KEY}" and headers["Content-Type"] == "application/json"
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "max_tokens": 99,
        "seed": 7,
        "stop": ["\nUser:"],
        "grammar": "root ::= [a-z]+",
    }

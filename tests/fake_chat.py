"""A deterministic fake chat model for offline unit tests of graph logic (never the only test of a feature)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from tests.openai_stub import reply_for


class FakeChatModel(BaseChatModel):
    """Answers like tests.openai_stub, unless `script(role, messages)` returns a reply to use instead."""

    role: str = ""
    script: Callable[[str, list[dict[str, Any]]], str | None] | None = None
    calls: Any = None  # a shared list (Any keeps pydantic from copying it)

    @property
    def _llm_type(self) -> str:
        return "condor-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any) -> ChatResult:
        plain = [{"role": _role(m), "content": str(m.content)} for m in messages]
        if self.calls is not None:
            self.calls.append(self.role)
        text = self.script(self.role, plain) if self.script else None
        if text is None:
            text = reply_for(plain)
        message = AIMessage(
            content=text,
            response_metadata={"finish_reason": "stop"},
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant"}.get(message.type, message.type)

"""A deterministic fake chat model for offline unit tests of graph logic (never the only test of a feature)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from benchmarks.openai_stub import reply_for

Script = Callable[[str, list[dict[str, Any]]], "str | tuple[str, str] | None"]


class FakeChatModel(BaseChatModel):
    """Answers like benchmarks.openai_stub, unless `script(role, messages)` returns a reply to use instead (a text, or
    a (text, finish_reason) pair)."""

    role: str = ""
    script: Script | None = None
    calls: Any = None  # a shared list (Any keeps pydantic from copying it)
    conversations: Any = None  # a shared list of (role, messages) as the model saw them

    @property
    def _llm_type(self) -> str:
        return "condor-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any) -> ChatResult:
        plain = [{"role": _role(m), "content": str(m.content)} for m in messages]
        if self.calls is not None:
            self.calls.append(self.role)
        if self.conversations is not None:
            self.conversations.append((self.role, plain))
        reply = self.script(self.role, plain) if self.script else None
        text, finish_reason = reply if isinstance(reply, tuple) else (reply, "stop")
        if text is None:
            text = reply_for(plain)
        message = AIMessage(
            content=text,
            response_metadata={"finish_reason": finish_reason},
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant"}.get(message.type, message.type)

"""Requests shaped like the project's prompts (system instructions naming the format, the task in the user turn),
written out here so that tests of the stub server do not depend on the prompt modules being edited."""

from __future__ import annotations

SYSTEM = {
    "question_writer": "Reply with exactly this format:\n[Easy][Question Start]...[Question End]\n[Medium]...",
    "critic": "Reply with exactly this format:\n[Strength Start]1. ...[Strength End]\n...[Score Start]N[Score End]",
    "reviser": "Reply with exactly this format:\n[Improved Answer Start]...[Improved Answer End]",
}
ZH = "严格按以下格式回复："


def chat(role: str, user: str, zh: bool) -> list[dict[str, str]]:
    system = (ZH if zh else "") + SYSTEM[role]
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]

"""The benchmark's stub server answers each role's prompt in the format asked, wherever a client puts its prompt."""

from __future__ import annotations

from benchmarks.openai_stub import reply_for
from prompts.critique import parse_critique
from prompts.questions import parse_questions
from prompts.revision import parse_revision

GENERIC = {"role": "system", "content": "You are a helpful assistant"}
QUESTIONS = "Write three questions.\n[Easy][Question Start]Question[Question End]\n[Medium][Question Start]…"
CRITIQUE = "Critique the answer.\n[Strength Start]Strength[Strength End]\n[Score Start]Score[Score End]\nAnswer: …"
REFINE = f"Improve the answer using this critique:\n{CRITIQUE}\n[Improved Answer Start]Your answer[Improved Answer End]"


def test_a_client_with_its_instructions_in_the_user_turn_gets_each_roles_format() -> None:
    """OpenDCAI DataFlow's Condor operators send a generic system prompt; a refine prompt quotes the critique's."""
    asked = {text: reply_for([GENERIC, {"role": "user", "content": text}]) for text in (QUESTIONS, CRITIQUE, REFINE)}
    assert list(parse_questions(asked[QUESTIONS])) == ["Easy", "Medium", "Hard"]
    assert parse_critique(asked[CRITIQUE]).score == 5
    assert parse_revision(asked[REFINE]).startswith("A longer, better answer")
    assert reply_for([GENERIC, {"role": "user", "content": "What limits the speed of sound?"}]).startswith("An answer")


def test_condors_own_prompts_are_still_told_by_their_system_prompt() -> None:
    tags = reply_for([{"role": "system", "content": "[Tag Start]…"}, {"role": "user", "content": CRITIQUE}])
    assert tags.startswith("[Tag Start]Topic")
    questions = reply_for([{"role": "system", "content": QUESTIONS}, {"role": "user", "content": REFINE}])
    assert questions.startswith("[Easy][Question Start]")

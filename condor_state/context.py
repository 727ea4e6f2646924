"""Graph-level settings: one place for models, thresholds, rounds and the language mix."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

SERVED_MAX_TOKENS = 4096  # a Hard or Creation answer of a 7B-72B instruct model fits
EMBEDDED_MAX_TOKENS = 384
ROLES = ("question_writer", "responder", "critic", "reviser")


@dataclass(kw_only=True)
class Context:
    """Run settings passed to the graph as its context_schema; empty fields fall back to the environment."""

    base_url: str = field(
        default="",
        metadata={"description": "OpenAI-compatible endpoint (env OPENAI_BASE_URL). Empty: the embedded model."},
    )
    model: str = field(
        default="",
        metadata={"description": "Model name for every role (env CONDOR_MODEL); a .gguf path when embedded."},
    )
    question_writer_model: str = field(default="", metadata={"description": "Overrides `model` for question_writer."})
    responder_model: str = field(default="", metadata={"description": "Overrides `model` for responder."})
    critic_model: str = field(default="", metadata={"description": "Overrides `model` for critic."})
    reviser_model: str = field(default="", metadata={"description": "Overrides `model` for reviser."})
    threshold: int = field(default=8, metadata={"description": "Critic score (1-10) at which an answer is accepted."})
    max_rounds: int = field(default=2, metadata={"description": "Most revisions per sample."})
    root_weights: str = field(
        default="", metadata={"description": "Root domains drawn more or less often, e.g. Health=2,Travel=0.5."}
    )
    languages: str = field(default="en=0.5,zh=0.5", metadata={"description": "Language mix, e.g. en=0.7,zh=0.3."})
    seed: int = field(default=0, metadata={"description": "Seed of the sampling plan and of model sampling."})
    tree: str = field(default="", metadata={"description": "Knowledge tree file (YAML/JSON); empty: the default."})
    temperature: float = field(default=0.7, metadata={"description": "Sampling temperature for every role."})
    max_tokens: int = field(
        default=0,
        metadata={"description": "Most tokens one model reply may have (0: 4096, or 384 for the embedded model)."},
    )
    grammar: bool = field(
        default=False,
        metadata={
            "description": "Send each role's GBNF grammar to a llama.cpp server (env CONDOR_GRAMMAR=1); "
            "the embedded model always uses one."
        },
    )
    max_repairs: int = field(default=1, metadata={"description": "Re-asks after a reply that does not parse."})
    concurrency: int = field(default=16, metadata={"description": "Most model requests in flight (all roles)."})
    rpm: float = field(default=0.0, metadata={"description": "Most requests per minute (0: no limit)."})
    timeout: float = field(default=300.0, metadata={"description": "Seconds before one model request gives up."})

    def __post_init__(self) -> None:
        if not self.base_url:
            self.base_url = os.environ.get("OPENAI_BASE_URL", "")
        if not self.model:
            self.model = os.environ.get("CONDOR_MODEL", "")
        if self.max_tokens <= 0:  # the embedded 270M base model's long replies are slow and no better
            self.max_tokens = EMBEDDED_MAX_TOKENS if self.embedded else SERVED_MAX_TOKENS
        if not self.grammar:
            self.grammar = os.environ.get("CONDOR_GRAMMAR", "").lower() in {"1", "true", "yes"}
        for role in ROLES:
            name = f"{role}_model"
            if not getattr(self, name):
                setattr(self, name, os.environ.get(f"CONDOR_{role.upper()}_MODEL", ""))

    def model_for(self, role: str) -> str:
        """The model name a role uses: its own override, else the shared one."""
        return getattr(self, f"{role}_model") or self.model

    @property
    def embedded(self) -> bool:
        return not self.base_url

    @property
    def uses_grammar(self) -> bool:
        """Whether replies are held to a grammar: always for the embedded model, on request for a server."""
        return self.embedded or self.grammar

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

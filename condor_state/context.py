"""Run settings, each defined once: its default, range, description and environment name live in its field.

The CLI flags, the validation (here, so Studio and the CLI refuse the same values), the settings record in
run.json and the README's options table are all derived from these fields.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

SERVED_MAX_TOKENS = 4096  # a Hard or Creation answer of a 7B-72B instruct model fits
EMBEDDED_MAX_TOKENS = 384  # the embedded 270M base model's long replies are slow and no better
ROLES = ("question_writer", "responder", "critic", "reviser")


class SettingError(ValueError):
    """A setting out of its range or an unreadable environment value; the message is one line for the user."""

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(f"{subject} {problem}")
        self.subject = subject  # a setting's name, or an environment variable's
        self.problem = problem


def setting(
    default: Any,
    description: str,
    *,
    env: str = "",
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    data: bool = False,
    parse: Callable[[str], object] | None = None,
) -> Any:
    """A Context field: `data` marks settings that change the data (a resume with another value is refused);
    `parse` checks a text setting's format, raising ValueError with the problem."""
    metadata = {"description": description, "env": env, "low": low, "high": high, "choices": choices, "data": data}
    return field(default=default, metadata={**metadata, "parse": parse})


def _role_model(role: str) -> Any:
    return setting("", f"Overrides `model` for the {role.replace('_', ' ')}.", env=f"CONDOR_{role.upper()}_MODEL")


def parse_price(text: str) -> tuple[float, float] | None:
    """'IN/OUT' per million input and output tokens (e.g. 0.15/0.60); None for '' (no price). A ValueError says
    what is wrong, so a malformed price is one line, never a traceback."""
    if not text.strip():
        return None
    parts = text.split("/")
    try:
        price_in, price_out = (float(part) for part in parts)
    except ValueError:  # not two parts, or not numbers
        problem = "must be IN/OUT, the prices per million input and output tokens (e.g. 0.15/0.60)"
        raise ValueError(f"{problem}, not {text!r}") from None
    if not all(math.isfinite(p) and p >= 0 for p in (price_in, price_out)):
        raise ValueError(f"must be two prices of at least 0 (IN/OUT, e.g. 0.15/0.60), not {text!r}")
    return price_in, price_out


def cost_text(cost: float) -> str:
    """A cost with about three significant digits and no currency: prices are in whatever unit the user gave."""
    if cost == 0 or abs(cost) >= 1:
        return f"{cost:,.2f}" if cost else "0"
    return f"{cost:.{max(2, 2 - math.floor(math.log10(abs(cost))))}f}"


def _price(description: str, env: str) -> Any:
    return setting("", description, env=env, parse=parse_price)


def _role_price(role: str) -> Any:
    return _price(f"Overrides `price` for the {role.replace('_', ' ')}.", f"CONDOR_{role.upper()}_PRICE")


@dataclass(kw_only=True)
class Context:
    """Run settings, the graph's context_schema; a setting left at its default takes its environment variable."""

    base_url: str = setting(
        "", "OpenAI-compatible endpoint; empty: the embedded model (llama.cpp in process).", env="OPENAI_BASE_URL"
    )
    model: str = setting("", "Model name for every role; a .gguf path when embedded.", env="CONDOR_MODEL")
    question_writer_model: str = _role_model("question_writer")
    responder_model: str = _role_model("responder")
    critic_model: str = _role_model("critic")
    reviser_model: str = _role_model("reviser")
    price: str = _price(
        "Prices per million input/output tokens for every role, e.g. 0.15/0.60; empty: no cost is counted.",
        "CONDOR_PRICE",
    )
    question_writer_price: str = _role_price("question_writer")
    responder_price: str = _role_price("responder")
    critic_price: str = _role_price("critic")
    reviser_price: str = _role_price("reviser")
    seed: int = setting(0, "Seed of the sampling plan (sample ids) and of model sampling.", data=True)
    threshold: int = setting(8, "Critic score (1-10) at which an answer is accepted.", low=1, high=10, data=True)
    max_rounds: int = setting(2, "Most revisions per sample (0: critique only).", low=0, high=50, data=True)
    tree: str = setting("", "Knowledge tree file, YAML or JSON; empty: the bundled tree.", data=True)
    languages: str = setting("en=0.5,zh=0.5", "Language mix, e.g. en=0.7,zh=0.3 or en.", data=True)
    root_weights: str = setting("", "Root domains drawn more or less often, e.g. Health=2,Travel=0.5.", data=True)
    temperature: float = setting(0.7, "Sampling temperature for every role.", low=0, high=2, data=True)
    max_tokens: int = setting(
        0,
        f"Most tokens one reply may have (0: {SERVED_MAX_TOKENS}, embedded {EMBEDDED_MAX_TOKENS}).",
        low=0,
        data=True,
    )
    max_repairs: int = setting(1, "Re-asks after a reply that cannot be used.", low=0, high=10, data=True)
    grammar: bool = setting(
        False, "Send each role's GBNF grammar to a llama.cpp server (the embedded model always uses one).",
        env="CONDOR_GRAMMAR", data=True,
    )  # fmt: skip
    n_ctx: int = setting(4096, "Context window of the embedded model, in tokens.", env="CONDOR_N_CTX", low=512)
    concurrency: int = setting(16, "Most model requests in flight, all roles together.", low=1)
    rpm: float = setting(0.0, "Most requests per minute, all roles together (0: no limit).", low=0)
    timeout: float = setting(300.0, "Seconds before one model request gives up.", low=1)
    client: str = setting(
        "condor", "HTTP client for a served model: condor (lean, aiohttp) or openai (the OpenAI SDK, via ChatOpenAI).",
        env="CONDOR_CLIENT", choices=("condor", "openai"),
    )  # fmt: skip
    max_retries: int = setting(
        6, "Transport retries of one request (429, 5xx, timeouts), honouring Retry-After.", env="CONDOR_MAX_RETRIES",
        low=0,
    )  # fmt: skip

    def __post_init__(self) -> None:
        for f in fields(self):
            env = f.metadata.get("env") or ""
            from_env = bool(env) and getattr(self, f.name) == f.default and os.environ.get(env, "") != ""
            if from_env:
                setattr(self, f.name, _from_env(f, os.environ[env]))
            _check_range(f, getattr(self, f.name))
            _check_format(f, getattr(self, f.name), from_env)
        unpriced = [role for role in ROLES if self.price_for(role) is None]
        if self.priced and unpriced:
            names = " and ".join(", ".join(role.replace("_", " ") for role in unpriced).rsplit(", ", 1))
            raise SettingError("price", f"is needed for the {names} too: give every role a price, or none")
        if self.max_tokens == 0:
            self.max_tokens = EMBEDDED_MAX_TOKENS if self.embedded else SERVED_MAX_TOKENS
        if self.max_tokens < 16:
            raise SettingError("max_tokens", f"must be 0 (automatic) or at least 16, not {self.max_tokens}")

    def model_for(self, role: str) -> str:
        """The model name a role uses: its own override, else the shared one."""
        return str(getattr(self, f"{role}_model")) or self.model

    def price_for(self, role: str) -> tuple[float, float] | None:
        """The role's prices per million input and output tokens: its own, else the shared one; None: no price."""
        return parse_price(str(getattr(self, f"{role}_price")) or self.price)

    @property
    def priced(self) -> bool:
        """Whether cost is counted: some price is given (then every role has one)."""
        return any(self.price_for(role) is not None for role in ROLES)

    @property
    def embedded(self) -> bool:
        return not self.base_url

    @property
    def uses_grammar(self) -> bool:
        """Whether replies are held to a grammar: always for the embedded model, on request for a server."""
        return self.embedded or self.grammar

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def recorded(cls, settings: dict[str, Any]) -> Context:
        """The settings a run recorded, as they were: no environment variable fills in a field, nothing is derived."""
        context = cls.__new__(cls)
        for f in fields(cls):
            setattr(context, f.name, settings.get(f.name, f.default))
        return context


def _from_env(f: Field[Any], text: str) -> Any:
    kind: type = type(f.default)
    if kind is bool:
        return text.strip().lower() in {"1", "true", "yes", "on"}
    try:
        return kind(text)
    except ValueError:
        raise SettingError(
            f.metadata["env"], f"is {text!r}, not a valid {kind.__name__} (the {f.name} setting)"
        ) from None


def _check_format(f: Field[Any], value: Any, from_env: bool) -> None:
    """A text setting with a format (a price) that does not parse: one line naming the setting or its variable."""
    parse = f.metadata.get("parse")
    if parse is None:
        return
    try:
        parse(value)
    except ValueError as exc:
        if from_env:
            raise SettingError(f.metadata["env"], f"{exc} (the {f.name} setting)") from None
        raise SettingError(f.name, str(exc)) from None


def _check_range(f: Field[Any], value: Any) -> None:
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise SettingError(f.name, f"must be one of {', '.join(choices)}, not {value!r}")
    low, high = f.metadata.get("low"), f.metadata.get("high")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise SettingError(f.name, f"must be {span}, not {value!r}")


def data_settings() -> tuple[str, ...]:
    """Settings that change the data, by name."""
    return tuple(f.name for f in fields(Context) if f.metadata.get("data"))


def defaults() -> dict[str, Any]:
    """Each setting's default, by name."""
    return {f.name: f.default for f in fields(Context) if f.default is not MISSING}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def options_table() -> str:
    """The README's table of these settings as flags (a test keeps the README equal to it)."""
    rows = [
        "| option | default | range | environment | changes the data | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in fields(Context):
        default = {True: "on", False: "off", "": ""}.get(f.default, f"`{f.default}`")
        low, high = f.metadata.get("low"), f.metadata.get("high")
        span = f"{low:g}–{high:g}" if high is not None else f"≥ {low:g}" if low is not None else ""
        span = " \\| ".join(f.metadata.get("choices") or ()) or span
        env = f"`{f.metadata['env']}`" if f.metadata.get("env") else ""
        data = "yes" if f.metadata.get("data") else ""
        rows.append(f"| `{flag(f.name)}` | {default} | {span} | {env} | {data} | {f.metadata['description']} |")
    return "\n".join(rows)

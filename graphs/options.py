"""What the commands share: one-line errors instead of tracebacks for user mistakes, and flags made from Context."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from condor_state.context import Context, SettingError, flag
from condor_state.rundir import DB_NAME


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_dir_arg(prog: str, path: str) -> Path:
    """The run directory a command was given, or a one-line error when it holds no condor.db (nor names a
    cluster run's Postgres store)."""
    from condor_state.postgres import store_of  # here, not at the top: graphs.run imports this module, never it

    run_dir = Path(path)
    if not (run_dir / DB_NAME).is_file() and store_of(run_dir) is None:
        fail(prog, f"{run_dir} has no {DB_NAME}; pass the --out directory of a run")
    return run_dir


def fail(prog: str, message: str, code: int = 1) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def add_context_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """One flag per Context setting (or the named ones), with its type, description, default and environment."""
    wanted = set(names) if names is not None else None
    for f in fields(Context):
        if wanted is not None and f.name not in wanted:
            continue
        env = f.metadata.get("env")
        default = f"default {f.default!r}" + (f", else env {env}" if env else "")
        help_text = f"{f.metadata['description']} ({default})".replace("%", "%%")
        if isinstance(f.default, bool):
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            choices = f.metadata.get("choices") or None
            parser.add_argument(flag(f.name), type=type(f.default), default=None, choices=choices, help=help_text)


def context_from(prog: str, args: argparse.Namespace) -> Context:
    """The Context the flags describe (a flag not given keeps the setting's default, or its environment value);
    a value out of range is one line and exit 2. The tree path is made absolute: a resume may start elsewhere."""
    given: dict[str, Any] = {
        f.name: getattr(args, f.name) for f in fields(Context) if getattr(args, f.name, None) is not None
    }
    if given.get("tree"):
        given["tree"] = str(Path(given["tree"]).resolve())
    try:
        return Context(**given)
    except SettingError as exc:
        subject = flag(exc.subject) if exc.subject in {f.name for f in fields(Context)} else exc.subject
        fail(prog, f"{subject} {exc.problem}", 2)

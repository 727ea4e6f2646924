"""What the command-line entry points share: one-line errors instead of tracebacks for user mistakes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_dir_arg(prog: str, path: str) -> Path:
    """The run directory a command was given, or a one-line error when it holds no condor.db."""
    run_dir = Path(path)
    if not (run_dir / "condor.db").is_file():
        fail(prog, f"{run_dir} has no condor.db; pass the --out directory of a run")
    return run_dir


def fail(prog: str, message: str, code: int = 1) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)

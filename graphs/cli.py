"""`condor run|export|report|show|tree|browse|pull …`: one command, each subcommand the module of that name."""

from __future__ import annotations

import sys

from graphs.startup import imported

COMMANDS = {
    "run": ("graphs.run", "synthesize N samples into DIR/condor.db (resumable)"),
    "export": (
        "graphs.export",
        "write a run's samples as JSONL (messages, ShareGPT, DPO pairs) or Parquet, with a dataset card",
    ),
    "report": ("graphs.report", "write a quality report (Markdown and plots) of a run"),
    "show": ("graphs.show", "summarize a run, or tell one sample's story round by round"),
    "tree": ("graphs.tree", "validate, measure and grow knowledge trees"),
    "pull": ("graphs.pull", "copy a cluster run's Postgres store into DIR/condor.db"),
    "browse": ("graphs.browse", "browse a run's condor.db in Datasette, read-only, with a page per sample"),
}
USAGE = (
    "usage: condor {"
    + ",".join(COMMANDS)
    + "} ...\n\n"
    + "\n".join(f"  {name:<8}{about}" for name, (_, about) in COMMANDS.items())
    + "\n\n`condor COMMAND --help` for a command's options; `python -m graphs.COMMAND` is the same command.\n"
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        sys.stderr.write(f"condor: error: unknown command '{args[0]}' (choose from {', '.join(COMMANDS)})\n")
        return 2
    module = imported(COMMANDS[args[0]][0])  # only the chosen command's imports are paid for
    sys.argv = [f"condor {args[0]}", *args[1:]]
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    raise SystemExit(main())

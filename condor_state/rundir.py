"""The run directory's writer lock: one run writes a directory at a time, and a killed run never blocks the next."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

LOCK = "run.lock"


class DirectoryInUse(RuntimeError):
    """Another process holds the run directory; the message names it, in one line."""


_HELD: dict[Path, int] = {}  # run directories this process holds, with the open lock file (re-entrant holds)


def hold(run_dir: Path) -> None:
    """Take the directory's lock for the life of this process (and its forked workers), or raise DirectoryInUse.

    An flock belongs to the open file, so the kernel releases it when every process holding it is gone: a
    kill -9 frees the directory at once, with no stale lock file to remove.
    """
    key = run_dir.resolve()
    if key in _HELD:
        return
    fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DirectoryInUse(
            f"{run_dir} is in use by {holder}; wait for that run to end or stop it, or use another --out"
        ) from None
    os.ftruncate(fd, 0)
    command = " ".join(["python", *sys.argv])[:200]
    os.pwrite(fd, f"process {os.getpid()} ({command})\n".encode(), 0)
    _HELD[key] = fd


def held() -> set[Path]:
    """The run directories this process holds."""
    return set(_HELD)


def release(run_dir: Path) -> None:
    """Give the directory back (a long-lived process that ran a job, such as a test or a benchmark)."""
    fd = _HELD.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)

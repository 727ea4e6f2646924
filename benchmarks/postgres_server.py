"""A real, throwaway Postgres server for the store tests and the cluster benchmark: initdb into a temporary
directory, password authentication (scram-sha-256) on 127.0.0.1 only, a fresh database per test or measurement."""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

INSTALL_HINT = "install the Postgres server: apt-get install postgresql (.ci/run does it on CI)"


class PostgresUnavailable(RuntimeError):
    """No server binaries, or no unprivileged user to run them as; the message says what to install."""


USER = "condor"


class ClientEnv(TypedDict):
    """The environment a client needs besides the URL (named keys, so `**env()` type-checks beside other kwargs)."""

    PGPASSWORD: str
    PGPASSFILE: str


def bin_dir() -> Path:
    """The directory of initdb and pg_ctl: pg_config's, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    newest_first = sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", Path(p).parent.name)])[::-1]
    candidates += [Path(p) for p in newest_first]
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresUnavailable(f"no Postgres server binaries (initdb, pg_ctl) found; {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A running server: `url` carries no password (libpq takes it from PGPASSWORD, as a cluster run does)."""

    bin: Path
    root: Path
    port: int
    password: str
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url_of(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_of("postgres")

    def env(self) -> ClientEnv:
        """What a client process needs besides the URL: the password, and no ~/.pgpass or PG* setting of ours."""
        return ClientEnv(PGPASSWORD=self.password, PGPASSFILE=str(self.root / "no-pgpass"))

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:] if self.root.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}\n{log}")

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        self._run(
            str(self.bin / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.root / "server.log"), "-o", options,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data)],
            capture_output=True,
            check=False,
            timeout=120,
        )

    def fresh_database(self, name: str) -> str:
        """A new, empty database (dropped first if a test ran before), so tests share no state; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, password=self.password, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)


def serve() -> Iterator[PostgresServer]:
    """Start a server for the session and stop it at the end. As root it runs as the `postgres` system user
    (Postgres refuses to run as root), in a directory that user owns."""
    binaries = bin_dir()
    root = Path(tempfile.mkdtemp(prefix="condor-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            raise PostgresUnavailable("running as root needs runuser to start Postgres as the postgres user")
        try:
            shutil.chown(root, "postgres", "postgres")
        except LookupError:
            raise PostgresUnavailable(f"no `postgres` system user to run the server as; {INSTALL_HINT}") from None
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(binaries, root, free_port(), secrets.token_hex(16), as_user)
    try:
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

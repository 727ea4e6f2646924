"""The store tests' Postgres: benchmarks/postgres_server.py's real server, one per test session; a machine
without the server fails the tests that need it with what to install (CI installs it), never skips them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.postgres_server import PostgresServer, PostgresUnavailable, serve

__all__ = ["PostgresServer", "serving_postgres"]


def serving_postgres() -> Iterator[PostgresServer]:
    try:
        yield from serve()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)

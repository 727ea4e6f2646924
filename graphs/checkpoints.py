"""The run's thread store on DIR/checkpoints.db: each unfinished thread's log (its input and every model reply as it
arrives), written on the event loop's own thread and committed once per turn of the loop. It is LangGraph's
SqliteSaver, so threads checkpointed step by step by earlier versions still resume.

A write is one short transaction on the loop's thread (AsyncSqliteSaver would send each statement, commit and
cursor close through aiosqlite's worker thread, waking the loop through its self-pipe each time). It does not wait
for the disk: under WAL, synchronous=NORMAL hands each commit to the OS (which keeps it through a killed process) and
syncs only when the WAL is copied back into the database. What that gives up is the last commits before a power loss
or an OS crash, and losing them only means asking those requests again: a call's samples are stored in condor.db
(synchronous=FULL) before its thread is deleted here, and a run deletes any leftover thread of a call already
stored. A write that meets another worker process's transaction waits up to the busy timeout.

Group commit: the writes made while the loop runs are committed together by a callback queued behind the first of
them. The loop runs its callbacks in order, so a reply is committed before any callback queued after it (the next
model request among them) runs: a killed process loses at most replies to requests still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver

# A thread's log, kept until the thread is deleted: its input under INPUT_KEY, then each model reply from its
# arrival. Re-running the thread on it sends only the requests that were in flight (agents.model_call.ThreadReplies).
REPLIES_TABLE = """CREATE TABLE IF NOT EXISTS checkpoint_replies (
    thread_id TEXT NOT NULL, key TEXT NOT NULL, reply TEXT NOT NULL, PRIMARY KEY (thread_id, key))"""
INPUT_KEY = "input"  # a reply's key is scope/role/attempt/digest: never this
BUSY_TIMEOUT_S = 60.0  # how long a write waits for another process's transaction before failing


class RunCheckpoints(SqliteSaver):
    """SqliteSaver with the async interface the graph's ainvoke uses, each call done at once on the calling thread."""

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path) -> Iterator[RunCheckpoints]:
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)) as conn:
            saver = cls(conn)
            saver.setup()  # journal_mode=WAL and the tables
            conn.execute("PRAGMA synchronous=NORMAL")
            # a run checkpoints no step: only a file an earlier version wrote holds checkpoints to delete
            saver.holds_checkpoints = conn.execute("SELECT 1 FROM checkpoints LIMIT 1").fetchone() is not None
            try:
                yield saver
            finally:
                saver.commit()

    _commit_queued = False
    _commit_error: sqlite3.Error | None = None
    holds_checkpoints = True  # False once opened on a file without step checkpoints: deleting a thread skips them

    @contextlib.contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        """SqliteSaver's cursor, whose commit is queued on the running loop (done at once without one)."""
        with self.lock:
            if self._commit_error is not None:
                raise self._commit_error
            self.setup()
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
        if transaction:
            self._commit_soon()

    def _commit_soon(self) -> None:
        """Queue the commit behind the loop's current callbacks (once per turn); at once without a running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.commit()
            return
        if not self._commit_queued:
            self._commit_queued = True
            loop.call_soon(self._queued_commit)

    def commit(self) -> None:
        with self.lock:
            self.conn.commit()

    def _queued_commit(self) -> None:
        self._commit_queued = False
        try:
            self.commit()
        except sqlite3.Error as exc:  # raised by the next save, in the call that made it
            self._commit_error = exc

    def setup(self) -> None:
        """LangGraph's tables, and the one of replies kept as they arrive."""
        if self.is_setup:
            return
        super().setup()
        self.conn.execute(REPLIES_TABLE)

    async def arecord_reply(self, thread_id: str, key: str, reply: str) -> None:
        """One statement on the connection: the hottest write of a run (every reply), so no cursor is made."""
        with self.lock:
            if self._commit_error is not None:
                raise self._commit_error
            self.conn.execute("INSERT OR REPLACE INTO checkpoint_replies VALUES (?, ?, ?)", (thread_id, key, reply))
        self._commit_soon()

    async def areplies(self, thread_id: str) -> dict[str, str]:
        with self.cursor(transaction=False) as cur:
            rows = cur.execute("SELECT key, reply FROM checkpoint_replies WHERE thread_id = ?", (thread_id,))
            return dict(rows.fetchall())

    def delete_thread(self, thread_id: str) -> None:
        """The thread's checkpoints and replies; the replies first, so none outlives its thread."""
        with self.cursor() as cur:
            cur.execute("DELETE FROM checkpoint_replies WHERE thread_id = ?", (thread_id,))
        if self.holds_checkpoints:
            super().delete_thread(thread_id)

    def thread_ids(self) -> set[str]:
        """Threads with a log or (begun before the log) checkpoints."""
        with self.cursor(transaction=False) as cur:
            query = "SELECT thread_id FROM checkpoint_replies UNION SELECT thread_id FROM checkpoints"
            return {row[0] for row in cur.execute(query)}

    async def athread_ids(self) -> set[str]:
        return self.thread_ids()

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self.holds_checkpoints = True
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

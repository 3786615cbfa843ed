"""Group commit: many small writes from concurrent calls and registrations share one
transaction, so the database pays one commit for a batch instead of one per write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.store.database import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[AsyncSession], Awaitable[Any]]


class BatchWriter:
    """Runs write operations in batched transactions, in the order they were submitted.

    ``await writer.run(op)`` returns once the transaction holding ``op`` has committed (the
    write is durable); ``writer.submit(op)`` does not wait. A batch that fails is replayed
    one operation per transaction, so one bad write fails alone.
    """

    def __init__(self, db: Database, *, max_batch: int = 500, max_queue: int = 100_000) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Operation, asyncio.Future[Any] | None]] = asyncio.Queue(
            max_queue
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def run(self, operation: Callable[[AsyncSession], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((operation, future))
        return await future

    def submit(self, operation: Operation, on_commit: Callable[[Any], None] | None = None) -> None:
        """Queue ``operation``; ``on_commit`` is called with its result once it is
        committed (not if it fails)."""
        future: asyncio.Future[Any] | None = None
        if on_commit is not None:
            future = asyncio.get_running_loop().create_future()

            def committed(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    on_commit(done.result())

            future.add_done_callback(committed)
        try:
            self._queue.put_nowait((operation, future))
        except asyncio.QueueFull:
            log.error("database writer queue full: a write was dropped")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[tuple[Operation, asyncio.Future[Any] | None]]) -> None:
        results: list[Any] = []
        try:
            async with self._db.transaction() as session:
                for operation, _ in batch:
                    results.append(await operation(session))
        except Exception:
            if len(batch) == 1:
                operation, future = batch[0]
                self._fail(future)
                return
            for item in batch:
                await self._write([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future is not None and not future.done():
                future.set_result(result)

    @staticmethod
    def _fail(future: asyncio.Future[Any] | None) -> None:
        if future is None:
            log.exception("database write failed")
        elif not future.done():
            log.debug("database write failed", exc_info=True)
            future.set_exception(RuntimeError("database write failed"))

"""Group commit: many small writes from concurrent calls and registrations share one
transaction, so the database pays one commit for a batch instead of one per write; rows
of one kind (a call record opened, one closed) share one statement as well."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.store.database import Database

log = logging.getLogger(__name__)

# At most one transaction this often (seconds): a transaction costs about a millisecond
# of the server's CPU whatever it holds, so under load each one gathers the writes of
# that time, and an idle writer still writes at once. The price: a write may wait this
# long before its transaction starts.
TRANSACTION_SPACING = 0.025

T = TypeVar("T")
R = TypeVar("R")
Operation = Callable[[AsyncSession], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Row(Generic[R]):
    """One row for a bulk write (which writes many rows of its kind in as few statements
    as it can and gives a result per row, in order)."""

    write: Callable[[AsyncSession, list[R]], Awaitable[Sequence[Any]]]
    values: R


_Work = Operation | _Row[Any]


class BatchWriter:
    """Runs write operations in batched transactions, in the order they were submitted.

    ``await writer.run(op)`` returns once the transaction holding ``op`` has committed (the
    write is durable); ``writer.submit(op)`` does not wait. ``run_row`` and
    ``submit_row`` queue one row for a bulk write: the rows of one bulk write in a batch
    are written together, where the first of them was queued, so they must not depend on
    other writes of the same batch. A batch that fails is replayed one operation (or row)
    per transaction, so one bad write fails alone.
    """

    def __init__(self, db: Database, *, max_batch: int = 500, max_queue: int = 100_000) -> None:
        self._db = db
        self._max_batch = max_batch
        self._last_write = -math.inf
        self._queue: asyncio.Queue[tuple[_Work, asyncio.Future[Any] | None]] = asyncio.Queue(
            max_queue
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def run(self, operation: Callable[[AsyncSession], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((operation, future))
        return await future

    def run_row(
        self, write: Callable[[AsyncSession, list[R]], Awaitable[Sequence[T]]], values: R
    ) -> asyncio.Future[T]:
        """Queue a row for ``write``; the future gives its result once committed. Never
        waits: a full queue fails the future."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((_Row(write, values), future))
        except asyncio.QueueFull:
            future.set_exception(RuntimeError("database writer queue full"))
        return future

    def submit_row(
        self,
        write: Callable[[AsyncSession, list[R]], Awaitable[Sequence[Any]]],
        values: R,
        on_commit: Callable[[Any], None] | None = None,
    ) -> None:
        """Queue a row for ``write`` as ``submit`` queues an operation."""
        self._put(_Row(write, values), on_commit)

    def submit(self, operation: Operation, on_commit: Callable[[Any], None] | None = None) -> None:
        """Queue ``operation``; ``on_commit`` is called with its result once it is
        committed (not if it fails)."""
        self._put(operation, on_commit)

    def _put(self, work: _Work, on_commit: Callable[[Any], None] | None) -> None:
        future: asyncio.Future[Any] | None = None
        if on_commit is not None:
            future = asyncio.get_running_loop().create_future()

            def committed(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    on_commit(done.result())

            future.add_done_callback(committed)
        try:
            self._queue.put_nowait((work, future))
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
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            wait = self._last_write + TRANSACTION_SPACING - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_write = loop.time()
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[tuple[_Work, asyncio.Future[Any] | None]]) -> None:
        try:
            async with self._db.transaction() as session:
                results = await _perform(session, [work for work, _ in batch])
        except Exception:
            if len(batch) == 1:
                _, future = batch[0]
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


async def _perform(session: AsyncSession, batch: list[_Work]) -> list[Any]:
    """Every write of the batch, in order; a bulk write's rows at the first of them."""
    kinds: dict[Callable[..., Any], list[tuple[int, Any]]] = {}
    for index, work in enumerate(batch):
        if isinstance(work, _Row):
            kinds.setdefault(work.write, []).append((index, work.values))
    results: list[Any] = [None] * len(batch)
    for index, work in enumerate(batch):
        if not isinstance(work, _Row):
            results[index] = await work(session)
            continue
        rows = kinds.pop(work.write, None)
        if rows is None:
            continue  # written with the first row of its kind
        written = await work.write(session, [values for _, values in rows])
        for (row_index, _), result in zip(rows, written, strict=True):
            results[row_index] = result
    return results

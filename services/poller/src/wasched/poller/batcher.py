"""Coalesce work that arrives together into one run (one S3 read or write for many messages).

FastStream hands each message of a pull batch to its own concurrent handler;
each handler submits its item here and awaits its own result, so the handler
can still ack or nak its message individually. Items that arrive while a run
is in progress form the next run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        gather_seconds: float = 0.01,
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        """`expected` failures concern the whole run (e.g. S3 down); after any other failure
        the items are run one by one, so one poisonous item cannot hold back the others."""
        self._run = run
        self._gather = gather_seconds
        self._expected = expected
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(self._gather)  # let handlers of the same pull batch join
            batch, self._queue = self._queue, []
            failure = await self._attempt(batch)
            if failure is None:
                continue
            if len(batch) > 1 and not isinstance(failure, self._expected):
                for one in batch:
                    await self._attempt([one], alone=True)
            else:
                _fail(batch, failure)

    async def _attempt(
        self, batch: list[tuple[T, asyncio.Future[R]]], alone: bool = False
    ) -> Exception | None:
        """Run and deliver the results; on failure return it (delivered too when alone)."""
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if alone:
                _fail(batch, exc)
            return exc
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        return None


def _fail(batch: list[tuple[T, asyncio.Future[R]]], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)

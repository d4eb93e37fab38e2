"""Bridges between the async turn pipeline and the synchronous code it calls (and is called from).

Turns run on the event loop; database tools, retrieval and the composer are synchronous and run on
one bounded thread pool (`BLOCKING`), sized to the database pool, so a burst of turns queues for a
connection in one place instead of piling threads onto two cores. The CLI and evals are synchronous
and drive an async turn on a private event loop (`iterate_blocking`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def blocking_pool() -> ThreadPoolExecutor:
    """As many threads as database connections (MENTOR_DB_POOL_MAX): more would only wait for one."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from store.settings import get_settings

            _pool = ThreadPoolExecutor(max_workers=get_settings().db_pool_max, thread_name_prefix="blocking")
        return _pool


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a synchronous call (a query, a tool, the composer) on the bounded pool."""
    return await asyncio.get_running_loop().run_in_executor(blocking_pool(), fn, *args)


def _step(gen: Iterator[Any]) -> Any:
    try:
        return next(gen)
    except StopIteration as stop:
        return (_DONE, stop.value)


async def iterate_in_pool(gen: Iterator[T]) -> AsyncIterator[T]:
    """Yield a synchronous generator's items as they come, each `next()` on the bounded pool.

    The generator's return value is dropped; use `drive` when it matters.
    """
    async for item in _drive(gen, None):
        yield item


async def _drive(gen: Iterator[Any], result: list[Any] | None) -> AsyncIterator[Any]:
    while True:
        item = await run_blocking(_step, gen)
        if isinstance(item, tuple) and len(item) == 2 and item[0] is _DONE:
            if result is not None:
                result.append(item[1])
            return
        yield item


def drive(gen: Iterator[Any], result: list[Any]) -> AsyncIterator[Any]:
    """Like `iterate_in_pool`, and append the generator's return value to `result` when it ends."""
    return _drive(gen, result)


def iterate_blocking(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from synchronous code (CLI, evals, tests) on a private event loop."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            loop.run_until_complete(aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

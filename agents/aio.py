"""Bridges between the async turn pipeline and the synchronous code it calls (and is called from).

Turns run on the event loop; database tools, retrieval and the composer are synchronous and run on
one bounded thread pool (`BLOCKING`), sized to the database pool, so a burst of turns queues for a
connection in one place instead of piling threads onto two cores. The CLI and evals are synchronous
and drive an async turn on a private event loop (`iterate_blocking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
            from core.settings import get_settings

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
    """Yield a synchronous generator's items, each `next()` a separate job on the bounded pool: for
    long-lived streams (a synchronous model provider) that must not hold a pool thread throughout."""
    while True:
        item = await run_blocking(_step, gen)
        if isinstance(item, tuple) and len(item) == 2 and item[0] is _DONE:
            return
        yield item


class Wait:
    """Yielded by a synchronous turn phase to wait for a future (e.g. the question's embedding) without
    holding a pool thread: `value = yield Wait(future)`. `drive` ends the phase's job there, awaits the
    future on the event loop, and resumes the phase in a new job with the result."""

    def __init__(self, future: Future[Any]) -> None:
        self.future = future


async def drive(gen: Generator[Any, Any, Any], result: list[Any]) -> AsyncIterator[Any]:
    """Run a synchronous generator (a turn phase: hooks, tools, retrieval) on the pool, one job per stretch
    between `Wait`s, yielding its items as they come and appending its return value to `result`.

    One job per phase, not one per item: under a burst the pool serves turns first come, first served,
    so early turns finish their phase early instead of every turn advancing one step at a time and all
    of them reaching their answer late together. A `Wait` releases the thread while the future runs.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

    def put(kind: int, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed (shutting down): nobody to tell
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def work(send: Any, throw: BaseException | None) -> None:
        try:
            item = gen.throw(throw) if throw is not None else gen.send(send)
            while not isinstance(item, Wait):
                put(0, item)
                item = gen.send(None)
            put(3, item.future)
        except StopIteration as stop:
            result.append(stop.value)
            put(1, None)
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            put(2, exc)

    job = loop.run_in_executor(blocking_pool(), work, None, None)
    try:
        while True:
            kind, value = await queue.get()
            if kind == 0:
                yield value
                continue
            await job
            if kind == 1:
                return
            if kind == 2:
                raise value
            try:
                job = loop.run_in_executor(blocking_pool(), work, await asyncio.wrap_future(value), None)
            except Exception as exc:  # noqa: BLE001 - the phase decides what a failed future means
                job = loop.run_in_executor(blocking_pool(), work, None, exc)
    finally:
        await asyncio.shield(job)


_closers: dict[asyncio.AbstractEventLoop, list[Callable[[], Any]]] = {}


def on_loop_close(loop: asyncio.AbstractEventLoop, close: Callable[[], Any]) -> None:
    """Run `close()` (a coroutine function) before a private loop of `iterate_blocking` closes, or when the
    server stops (`close_loop_resources`): HTTP sessions bound to the loop are closed cleanly."""
    _closers.setdefault(loop, []).append(close)


async def close_loop_resources() -> None:
    for close in _closers.pop(asyncio.get_running_loop(), []):
        with contextlib.suppress(Exception):
            await close()


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
        loop.run_until_complete(close_loop_resources())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

"""`run_read`: run a route's blocking database read: inline on SQLite, else in a small pool.

FastAPI runs every sync dependency and sync handler in its own hop through anyio's default
pool (40 threads). The hot reads (the jobs list, a job's front: what dashboards poll) now
take one hop each, through this pool of `READ_THREADS` threads. On the 2-core dev box
(load ~2.5; 50 keep-alive clients, jobs list and fronts of 60-120 trials, 1000 requests):

- five hops per request through the default pool: ~250-290 req/s, p99 ~300-880 ms;
- one hop through the default pool: ~550-610 req/s, p99 ~190-210 ms;
- one hop through 4 threads: ~590-740 req/s, p99 ~85-150 ms.

More threads than cores only contend for the GIL (SQLite releases it while it reads, so a
few more than the 2 cores keep both busy).

On SQLite (the embedded default) the read now runs on the event loop itself: it is local,
in-process work (a cached front costs one index-only COUNT, ~45 us; a jobs page ~0.5 ms; WAL
readers never wait for the writer), and the hop to a pool thread (queue, wake-up, GIL
hand-offs between the loop and the pool threads) cost more than the read. Same box, same
load, profiled with py-spy: API CPU per request ~1.15 ms -> ~0.75 ms, ~850 -> ~1500 req/s,
p99 ~100-230 ms -> ~55-105 ms. A front cache miss (~10 ms, once per new complete trial per
job and worker) then holds the loop that long. PostgreSQL reads are network round trips,
so they keep the pool.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from service.core.db import get_engine

__all__ = ["READ_THREADS", "run_read"]

READ_THREADS = 4

T = TypeVar("T")

# One limiter per event loop: tests run one loop per `TestClient`.
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


async def run_read(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`: inline on SQLite; otherwise in a pool thread, at most `READ_THREADS` at a
    time per event loop."""
    if get_engine().dialect.name == "sqlite":
        return fn(*args)
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = CapacityLimiter(READ_THREADS)
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

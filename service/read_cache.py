"""`VersionedCache`: per-process memo of values derived from a job's trials.

The API's hot reads (a job's Pareto front and hypervolume history, its best values in the
jobs list) depend only on the job's *complete* trials, and a complete trial never changes:
every write to a trial row is guarded by ``state = 'running'`` (workers' result, heartbeat
and intermediate writes, the controller's reaper and pruning), and trials are only deleted
with their job. So the number of complete trials names the inputs exactly: a new complete
trial changes it, and nothing else can. Values are cached under that version and recomputed
when a read finds a newer one.

Measured on the 2-core dev box: building and serialising the front of a 120-trial job took
~10 ms per GET; a cache hit costs one index-only COUNT query (~45 us on SQLite), which also
checks the job's owner (`crud.owned_complete_count`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic
from typing import TypeVar

__all__ = ["VersionedCache"]

V = TypeVar("V")


class VersionedCache(Generic[V]):
    """At most `max_entries` values, each stored with the version it was computed from.

    `get` returns a value only for the version it was stored with, so a reader that sees a
    newer version recomputes; least recently used entries go first. Thread-safe (FastAPI
    runs sync handlers in a thread pool).
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"`max_entries >= 1` must hold, but got max_entries={max_entries}")
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[Hashable, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, version: Hashable) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, version: Hashable, value: V) -> None:
        with self._lock:
            self._entries[key] = (version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

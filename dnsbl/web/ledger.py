"""The web application's one connection to the ledger, on a thread of its own.

The store's drivers block, and an SQLite connection belongs to the thread that
opened it: every call goes to one worker thread, in order, so the event loop
never waits on the database and changes are never interleaved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.store import Store, open_store

T = TypeVar("T")


class LedgerThread:
    """Runs ``fn(store, *args)`` on the thread that owns the store."""

    def __init__(self, config: LedgerConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ledger", initializer=self._open)
        # Open (and migrate) now: a ledger that cannot be used stops start-up.
        self._pool.submit(lambda: None).result()

    def _open(self) -> None:
        self._local.store = open_store(self.config.database, self.config.lock_timeout)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        return fn(self._local.store, *args, **kwargs)

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, fn, args, kwargs)

    def close(self) -> None:
        def close_store() -> None:
            store: Store | None = getattr(self._local, "store", None)
            if store is not None:
                store.close()

        self._pool.submit(close_store).result()
        self._pool.shutdown()

"""The web application's one connection to the ledger, on a thread of its own.

The store's drivers block, and an SQLite connection belongs to the thread that
opened it: every call goes to one worker thread, in order, so the event loop
never waits on the database and changes are never interleaved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.model import now
from dnsbl.ledger.publish import publish
from dnsbl.ledger.store import Store, open_store
from dnsbl.web.errors import ApiError

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Seconds changes wait to be published together. Publishing one file costs
#: tens of milliseconds (a write, an fsync, a rename): one publish per change
#: would cap the API at a few dozen adds a second; this keeps a change in the
#: served zone well within two seconds.
PUBLISH_DELAY = 0.2


class LedgerThread:
    """Runs ``fn(store, *args)`` on the thread that owns the store."""

    def __init__(self, config: LedgerConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ledger", initializer=self._open)
        # A second connection for long reads (counting every listing for the
        # metrics), so that they never hold up the API's changes on the first.
        self._reader = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ledger-read", initializer=self._open)
        self._reader_used = False
        # First addresses of the keys changed since the last publish; None: all files.
        self._changed: set[bytes] | None = set()
        self._scheduled: asyncio.TimerHandle | None = None
        # Open (and migrate) now: a ledger that cannot be used stops start-up.
        self._pool.submit(lambda: None).result()

    def _open(self) -> None:
        self._local.store = open_store(self.config.database, self.config.lock_timeout)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        store: Store = self._local.store
        try:
            return fn(store, *args, **kwargs)
        except store.errors as exc:
            if not store.busy(exc):
                raise
            # Another writer (an import, a publish) held the ledger past
            # lock_timeout: nothing was changed, and the same request later
            # may well succeed, so 503 with when to retry rather than a 500.
            raise ApiError(503, store.explain(exc), headers={
                "Retry-After": str(max(1, math.ceil(self.config.lock_timeout)))}) from None

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, fn, args, kwargs)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(store, *args)`` on the second connection: a read that takes
        long and must not wait behind, nor hold up, the changes."""
        self._reader_used = True
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._run, fn, args, {})

    def publish_soon(self, changed: list[bytes] | None) -> None:
        """Publish the files of ``changed`` (every file for None) within
        PUBLISH_DELAY, together with the other changes meanwhile. On the loop."""
        if changed is None:
            self._changed = None
        elif self._changed is not None:
            self._changed.update(changed)
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_later(PUBLISH_DELAY,
                                                                    self._publish)

    def _publish(self) -> concurrent.futures.Future[None]:
        changed, self._changed, self._scheduled = self._changed, set(), None
        future = self._pool.submit(self._publish_now, changed)
        future.add_done_callback(_report)
        return future

    def _publish_now(self, changed: set[bytes] | None) -> None:
        publish(self._local.store, self.config, now(), "dnsbl web",
                None if changed is None else sorted(changed))

    def close(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._publish().exception()  # what is pending, before the store closes

        def close_store() -> None:
            store: Store | None = getattr(self._local, "store", None)
            if store is not None:
                store.close()

        self._pool.submit(close_store).result()
        self._pool.shutdown()
        if self._reader_used:
            self._reader.submit(close_store).result()
        self._reader.shutdown()


def _report(future: concurrent.futures.Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        # The changes are in the ledger; the next publish (or `dnsbl serve`'s
        # timer) writes them. Say why this one failed.
        log.error("publish after a change failed: %s", exc)

"""``dnsbl web`` following the servers' query logs: sightings taken in
continuously, on a thread with its own ledger connection, while it serves.

Where each log was read up to is kept in the ledger (by device and inode), so
a restart goes on where the last run stopped, a rotated log is finished from
its new name (``FILE.1``) and the server's new one read from its start:
nothing is counted twice or lost. See :mod:`dnsbl.ledger.sightings`.
"""

from __future__ import annotations

import logging
import threading

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.sightings import follow
from dnsbl.ledger.store import open_store

log = logging.getLogger(__name__)


class LogFollower:
    """Takes ``config.sightings.logs`` in every ``interval`` seconds until stopped."""

    def __init__(self, config: LedgerConfig) -> None:
        self.config = config
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sightings", daemon=True)
        self._last_error = ""

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        settings = self.config.sightings
        try:
            store = open_store(self.config.database, self.config.lock_timeout)
        except Exception as exc:  # the web application itself opened it: say, and stop
            log.error("sightings: cannot open the ledger: %s", exc)
            return
        try:
            follow(store, self.config, settings.logs, settings.sample or 1, settings.interval,
                   self._stop, self._error)
        finally:
            store.close()

    def _error(self, message: str) -> None:
        # Said once per new trouble, not every interval while it lasts.
        if message != self._last_error:
            log.error("sightings: %s (tried again every %g s)", message,
                      self.config.sightings.interval)
        self._last_error = message

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

"""``dnsbl serve`` publishing the ledger: once at start-up, then on a timer.

The timer runs ``dnsbl ledger publish`` as a child process, so compiling a
million listings never holds the server's GIL, and a publish that dies
leaves the served file whole (publish renames a finished file into place).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.model import LedgerError, now
from dnsbl.ledger.publish import publish
from dnsbl.ledger.store import open_store

log = logging.getLogger(__name__)


def publish_now(config: LedgerConfig) -> str | None:
    """Publish in this process (before serving: the zone files must exist);
    returns why it failed, or None."""
    try:
        store = open_store(config.database, config.lock_timeout)
    except LedgerError as exc:
        return str(exc)
    try:
        result = publish(store, config, now(), "dnsbl serve")
    except (LedgerError, OSError) as exc:
        return f"cannot publish the ledger: {exc}"
    except store.errors as exc:
        return store.explain(exc)
    finally:
        store.close()
    log.info("ledger published: %s entries, %d held back by the guard",
             ", ".join(f"{zone} {count}" for zone, count in result.entries.items()),
             len(result.held))
    return None


class PublishTimer:
    """Publishes every ``interval`` seconds in a child process until stopped."""

    def __init__(self, config_path: str, interval: float) -> None:
        self._command = [sys.executable, "-m", "dnsbl", "ledger", "--config", config_path,
                         "--json", "--by", "dnsbl serve", "publish"]
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-publish", daemon=True)
        self._child: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()  # it writes to a temporary file: the served one stays whole
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.publish_once()

    def publish_once(self) -> None:
        """One publish, its outcome logged (only when it changed a zone or failed)."""
        self._child = subprocess.Popen(self._command, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        out, err = self._child.communicate()
        if self._stop.is_set():
            return
        if self._child.returncode != 0:
            log.warning("ledger publish failed (exit %d): %s", self._child.returncode,
                        err.strip() or "no message")
            return
        try:
            result = json.loads(out)["published"]
        except (ValueError, KeyError):
            return
        if result["changed"]:
            log.info("ledger published %s: %s entries, %d held back by the guard",
                     ", ".join(result["changed"]),
                     ", ".join(str(result["entries"][z]) for z in result["changed"]),
                     len(result["held"]))

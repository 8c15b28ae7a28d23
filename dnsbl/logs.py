"""Where the log goes and how its lines look: text or JSON on stderr, and the
journal's conventions when stderr is the journal."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

#: syslog priorities (sd-daemon(3)): what `journalctl -p` filters on.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601 with Z), level, logger,
    message; without the time when the journal stamps the lines itself."""

    def __init__(self, timestamps: bool = True) -> None:
        super().__init__()
        self._timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        entry = {}
        if self._timestamps:
            when = datetime.fromtimestamp(record.created, UTC)
            entry["time"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        entry.update(level=record.levelname.lower(), logger=record.name,
                     message=record.getMessage())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class JournalFormatter(logging.Formatter):
    """Each line of ``inner``'s output led by its syslog priority (``<3>``),
    which journald reads and strips: `journalctl -p err` then finds errors."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        # journald makes each line an entry of its own: each needs the prefix.
        return "\n".join(prefix + line for line in self._inner.format(record).split("\n"))


class Prefix(logging.Filter):
    """Puts ``prefix`` before each message (a worker's number)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._prefix + str(record.msg)
        return True


def to_journal(stream: TextIO) -> bool:
    """Whether ``stream`` is the journal: systemd sets ``$JOURNAL_STREAM`` to
    its device and inode (systemd.exec(5)); a stream redirected since is not."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def handler(log_format: str, prefix: str = "", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (stderr) as ``log_format`` says, each
    message after ``prefix``."""
    stream = stream or sys.stderr
    journal = to_journal(stream)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JSONFormatter(timestamps=not journal)
    else:
        # The journal stamps each line itself; and its priority says the level.
        formatter = logging.Formatter("%(message)s" if journal
                                      else "%(asctime)s %(levelname)s %(message)s")
    out = logging.StreamHandler(stream)
    out.setFormatter(JournalFormatter(formatter) if journal else formatter)
    if prefix:
        out.addFilter(Prefix(prefix))
    return out

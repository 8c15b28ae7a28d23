"""Sightings: which listed keys the servers are asked about, from the sampled
query logs that ``dnsbl serve --query-log`` writes (one JSON object a line,
with the data lines that matched).

Only matches in the ledger's own zone files count. Each sampled line stands
for ``sample`` queries. A log is read from where the last read stopped
(remembered per device and inode), so reading it again counts nothing twice,
a rotated log goes on from where it was, and the new one starts at 0.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.model import LedgerError, parse_key
from dnsbl.ledger.sighted import Sightings
from dnsbl.ledger.store import Store

DAY = 86400


def take_in(store: Store, config: LedgerConfig, paths: Iterable[str],
            sample: int, missing_ok: bool = False) -> dict[str, int]:
    """Read the new lines of each query log into the ledger; returns counts.

    :raises LedgerError: for a log that cannot be read (one missing, unless
        ``missing_ok``: between a rotation and the server's new file).
    """
    paths = list(paths)
    for _attempt in range(RETRIES):
        counts = _read(store, config, paths, sample, missing_ok)
        if counts is not None:
            return counts
    raise LedgerError(f"{', '.join(paths)}: another reader kept taking these logs in "
                      "meanwhile; try again")


#: Reads of the logs when another reader keeps moving them on under us.
RETRIES = 5


def _read(store: Store, config: LedgerConfig, paths: list[str], sample: int,
          missing_ok: bool) -> dict[str, int] | None:
    """One read of every log (see :func:`take_in`); None when another reader
    took some of the same lines in first (nothing is counted then)."""
    publish_dir = os.path.abspath(config.publish_dir) + os.sep
    seen: dict[tuple[str, int], list[Any]] = {}
    offsets: dict[tuple[str, int], int] = {}
    started: dict[tuple[str, int], int] = {}
    counts = {"lines": 0, "matches": 0, "bad": 0}
    table = Sightings(store)
    for path in paths:
        try:
            with open(path, "rb") as log:
                # By device and inode, not name: logrotate renames the file the
                # server wrote (same inode, read on from its offset) and the
                # server opens a new one (a new inode, read from 0).
                stat = os.fstat(log.fileno())
                where = (str(stat.st_dev), stat.st_ino)
                if where in started:
                    continue  # the same file under two names: once
                started[where] = offset = table.log_offset(*where)
                # A smaller file than the offset: truncated, or an inode reused.
                log.seek(offset if offset <= stat.st_size else 0)
                while True:
                    line = log.readline()
                    if not line.endswith(b"\n"):
                        break  # the writer's half line: read it next time, whole
                    counts["lines"] += 1
                    counts["matches"] += _count(line, publish_dir, sample, seen, counts)
                offsets[where] = log.tell() - len(line)
        except FileNotFoundError:
            if missing_ok:
                continue
            raise LedgerError(f"{path}: cannot read: no such file") from None
        except OSError as exc:
            raise LedgerError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return counts if table.add(seen, offsets, started) else None


def _count(line: bytes, publish_dir: str, sample: int,
           seen: dict[tuple[str, int], list[Any]], counts: dict[str, int]) -> int:
    try:
        entry = json.loads(line)
        when, client, matched = float(entry["time"]), str(entry["client"]), entry.get(
            "matched", [])
    except (ValueError, KeyError, TypeError):
        counts["bad"] += 1
        return 0
    keys = set()
    for match in matched:
        dataset = str(match.get("dataset", ""))
        if not any(os.path.abspath(p).startswith(publish_dir)
                   for p in dataset.partition(":")[2].split(",")):
            continue
        try:
            keys.add(parse_key(str(match.get("entry", ""))).text)
        except LedgerError:
            continue
    at = int(when)
    for key in keys:
        record = seen.setdefault((key, at // DAY), [0, at, at, set()])
        record[0] += sample
        record[1] = min(record[1], at)
        record[2] = max(record[2], at)
        record[3].add(client)
    return len(keys)


def follow(store: Store, config: LedgerConfig, paths: Sequence[str], sample: int,
           interval: float, stop: threading.Event,
           on_error: Callable[[str], None] | None = None) -> dict[str, int]:
    """:func:`take_in` every ``interval`` seconds until ``stop`` is set. Each
    FILE's rotated predecessor ``FILE.1`` is read too, so the lines written
    between the last read and the rotation are counted (once: by inode).

    With ``on_error``, a read that fails (a log unreadable, the ledger busy) is
    said to it and tried again at the next interval; without, it raises."""
    total = {"lines": 0, "matches": 0, "bad": 0}
    watched = [name for path in paths for name in (path + ".1", path)]
    failures: tuple[type[BaseException], ...] = (LedgerError, *store.errors)
    while True:
        try:
            counts = take_in(store, config, watched, sample, missing_ok=True)
        except failures as exc:
            if on_error is None:
                raise
            on_error(str(exc) if isinstance(exc, LedgerError) else store.explain(exc))
        else:
            for name, count in counts.items():
                total[name] += count
        if stop.wait(interval):
            return total

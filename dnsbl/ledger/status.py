"""What the last publish did, for Prometheus: a small JSON file beside the zones.

Publish runs in whichever process asks for it (``dnsbl ledger`` of an analyst,
``dnsbl serve``'s timer child, serve at start-up), so the serving process
cannot count it in memory. Each publish writes, per file (shard) it compiled,
how many listings it published per zone and category and how many the guard
held back per reason; the server's collector reads the file at scrape time.
A publish of one shard (after an add) replaces that shard's counts only.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.guard import REASONS

#: Beside the zone files; the leading dot keeps it out of ``*.zone`` globs.
STATUS_NAME = ".dnsbl-ledger-status.json"

#: Per shard: {"held": {reason: n}, "entries": {zone: {category: n}}}.
ShardCounts = dict[str, dict[str, Any]]


def status_path(config: LedgerConfig) -> str:
    return os.path.join(config.publish_dir, STATUS_NAME)


def read_status(config: LedgerConfig) -> dict[str, Any] | None:
    """The status file, or None when there is none (or it is not ours)."""
    try:
        with open(status_path(config), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("shards"), dict) else None


def write_status(config: LedgerConfig, at: int, shards: ShardCounts) -> None:
    """Replace the counts of these shards, keep the others; atomically (rename).

    :raises OSError: when it cannot be written (the zones are published anyway).
    """
    old = read_status(config)
    merged: ShardCounts = dict(old["shards"]) if old and len(shards) < config.shards else {}
    merged.update(shards)
    merged = {k: v for k, v in merged.items() if k.isdigit() and int(k) < config.shards}
    fd, temp = tempfile.mkstemp(prefix=f"{STATUS_NAME}.", suffix=".tmp",
                                dir=config.publish_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"at": at, "shards": merged}, f, sort_keys=True)
        os.chmod(temp, 0o644)  # read by the server's user
        os.replace(temp, status_path(config))
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


class LedgerCollector:
    """``dnsbl_ledger_*``: what the last publish put in the zones and held back."""

    def __init__(self, config: LedgerConfig) -> None:
        self._config = config

    def collect(self) -> Iterator[Metric]:
        held = GaugeMetricFamily(
            "dnsbl_ledger_held_back",
            "Live listings the guard kept out of the zones at the last publish, by reason.",
            labels=["reason"])
        entries = GaugeMetricFamily(
            "dnsbl_ledger_published_entries",
            "Listings the last publish wrote, by zone and category.",
            labels=["zone", "category"])
        at = GaugeMetricFamily(
            "dnsbl_ledger_last_publish_timestamp_seconds",
            "Unix time of the last publish of the ledger (0: none yet).")
        status = read_status(self._config) or {"at": 0, "shards": {}}
        held_counts = dict.fromkeys(REASONS, 0)
        entry_counts = {(zone, c.name): 0 for zone, categories in self._config.zones().items()
                        for c in categories}
        for shard in status["shards"].values():
            for reason, count in shard.get("held", {}).items():
                held_counts[reason] = held_counts.get(reason, 0) + count
            for zone, categories in shard.get("entries", {}).items():
                for category, count in categories.items():
                    entry_counts[zone, category] = entry_counts.get((zone, category), 0) + count
        for reason, count in held_counts.items():
            held.add_metric([reason], count)
        for (zone, category), count in sorted(entry_counts.items()):
            entries.add_metric([zone, category], count)
        at.add_metric([], status.get("at", 0))
        yield from (held, entries, at)

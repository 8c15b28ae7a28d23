"""An optional, sampled query log: JSON lines written off the query path.

The transports hand over the raw query and reply bytes of every N-th query;
a task on the loop decodes and writes them in batches, so the query path
pays one counter and one append. A CERT can see which listed addresses are
being looked up, and which data line family (prefix) matched.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from typing import IO, Any

from dnsbl.registry import ZoneSet
from dnsbl.stats import QTYPE_INDEX, QTYPE_LABELS, RCODE_LABELS

log = logging.getLogger(__name__)

#: Entries waiting to be written; past this, new ones are dropped (and counted).
MAX_PENDING = 10_000
FLUSH_INTERVAL = 0.5


class QueryLog:
    """Samples 1 in ``sample`` queries into ``path`` as JSON lines."""

    def __init__(self, path: str, sample: int, zoneset: Callable[[], ZoneSet]) -> None:
        self.path = path
        self.sample = max(1, sample)
        self._zoneset = zoneset
        self._seen = 0
        self._pending: collections.deque[tuple[float, Any, bytes, bytes]] = collections.deque()
        self.dropped = 0
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def offer(self, query: bytes, reply: bytes, client: Any) -> None:
        """Called per answered query; keeps every ``sample``-th one."""
        self._seen += 1
        if self._seen % self.sample:
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append((time.time(), client, query, reply))

    def reopen(self) -> None:
        """Reopen the file (after logrotate moved it; SIGHUP)."""
        self.flush()
        self._file.close()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        zoneset = self._zoneset()
        lines = []
        while self._pending:
            lines.append(json.dumps(describe(*self._pending.popleft(), zoneset)) + "\n")
        try:
            self._file.writelines(lines)
            self._file.flush()
        except OSError as exc:
            log.error("query log %s: %s", self.path, exc)

    def close(self) -> None:
        self.flush()
        self._file.close()


def describe(when: float, client: Any, query: bytes, reply: bytes, zoneset: ZoneSet
             ) -> dict[str, Any]:
    """One log entry: time, client, qname, qtype, rcode, and what matched."""
    labels, pos = [], 12
    while pos < len(query) and 0 < query[pos] < 64:
        labels.append(query[pos + 1:pos + 1 + query[pos]].decode("latin-1"))
        pos += query[pos] + 1
    qtype = int.from_bytes(query[pos + 1:pos + 3], "big") if pos + 3 <= len(query) else 0
    rcode = reply[3] & 0x0F if len(reply) > 3 else 0
    entry: dict[str, Any] = {
        "time": round(when, 3),
        "client": client[0] if isinstance(client, tuple) else str(client),
        "qname": ".".join(labels),
        "qtype": QTYPE_LABELS[QTYPE_INDEX[qtype]] if qtype in QTYPE_INDEX else qtype,
        "rcode": RCODE_LABELS.get(rcode, rcode),
    }
    matched = _matched(labels, zoneset)
    if matched:
        entry["matched"] = matched
    return entry


def _matched(labels: list[str], zoneset: ZoneSet) -> list[dict[str, str]]:
    lowered = [label.lower() for label in labels]
    for depth in range(len(lowered)):
        zone = zoneset.by_name(".".join(lowered[depth:]))
        if zone is None:
            continue
        if depth != 4:
            return []
        try:
            ip = ipaddress.IPv4Address(".".join(reversed(lowered[:4])))
        except ValueError:
            return []
        out = []
        for dataset in zone.datasets:
            found = dataset.explain(ip.packed)
            if found is not None:
                out.append({"dataset": f"{dataset.kind}:{','.join(dataset.paths)}",
                            "entry": found})
        return out
    return []

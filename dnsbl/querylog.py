"""An optional, sampled query log: JSON lines written off the query path.

The transports hand over the raw query and reply bytes of every N-th query;
the query path pays one counter and one append to a bounded queue. A thread
of its own decodes, explains and writes them in batches, so neither the JSON
nor the file write ever holds the event loop. A CERT can see which listed
addresses are being looked up, and which data line family (prefix) matched.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from dnsbl.keys import dataset_keys, key_of
from dnsbl.stats import QTYPE_INDEX, QTYPE_LABELS, RCODE_LABELS
from dnsbl.zones import Snapshot

log = logging.getLogger(__name__)

#: Entries waiting to be written; past this, new ones are dropped (and counted).
MAX_PENDING = 10_000
FLUSH_INTERVAL = 0.2
_STOP_TIMEOUT = 5.0


class QueryLog:
    """Samples 1 in ``sample`` queries into ``path`` as JSON lines.

    :meth:`offer` runs on the event loop; :meth:`start` starts the writer
    thread. A deque's append and popleft are atomic, so the two share it
    without a lock. Each counter has one writer: ``_full`` (the queue was
    full) the loop, ``_failed`` (a write failed: a full disk) the writer
    thread; ``dropped`` reads both.
    """

    def __init__(self, path: str, sample: int, zoneset: Callable[[], Snapshot]) -> None:
        self.path = path
        self.sample = max(1, sample)
        self._zoneset = zoneset
        self._seen = 0
        self._max = MAX_PENDING
        self._pending: collections.deque[tuple[float, Any, bytes, bytes]] = collections.deque()
        self._full = 0
        self._failed = 0
        self._fd = self._open()
        self._reopen = False
        self._closing = False
        self._failing = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._write_loop, name="dnsbl-querylog",
                                        daemon=True)

    def _open(self) -> int:
        # One write(2) per batch on an O_APPEND descriptor: lines from several
        # workers sharing the file never interleave mid-line.
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def start(self) -> None:
        self._thread.start()

    def offer(self, query: bytes, reply: bytes, client: Any) -> None:
        """Called per answered query; keeps every ``sample``-th one."""
        self._seen += 1
        if self._seen % self.sample:
            return
        if len(self._pending) >= self._max:
            self._full += 1
            return
        self._pending.append((time.time(), client, query, reply))

    @property
    def dropped(self) -> int:
        """Entries left out: the writer fell behind, or writing them failed."""
        return self._full + self._failed

    def reopen(self) -> None:
        """Reopen the file (after logrotate moved it; SIGHUP), in the writer thread."""
        self._reopen = True
        self._wake.set()

    def close(self) -> None:
        """Write what is queued, then stop the writer and close the file."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(_STOP_TIMEOUT)
            if self._thread.is_alive():  # stuck writing (a hung disk): its fd stays open,
                return                   # not closed under it for another file to take
        else:
            self._flush()
        os.close(self._fd)

    def _write_loop(self) -> None:
        while not self._closing:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            if self._reopen:
                self._reopen = False
                self._flush()  # what was queued belongs to the old file
                try:
                    fd = self._open()
                except OSError as exc:
                    log.error("query log %s: cannot reopen, still writing to the old file: "
                              "%s", self.path, exc.strerror or exc)
                else:
                    os.close(self._fd)
                    self._fd = fd
            self._flush()
        self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        zoneset = self._zoneset()
        lines = []
        for _ in range(len(pending)):
            entry = pending.popleft()
            try:
                lines.append(json.dumps(describe(*entry, zoneset)))
            except Exception:  # one odd entry must not end the writer thread
                log.exception("query log: cannot describe an entry; left out")
        data = ("\n".join(lines) + "\n").encode()
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            # Every line not written whole is lost; each ends with its newline.
            self._failed += data.count(b"\n")
            if not self._failing:  # once, not every batch while the disk is full
                log.error("query log %s: %s; entries are lost until writing works again",
                          self.path, exc.strerror or exc)
            self._failing = True
            return
        self._failing = False


def describe(when: float, client: Any, query: bytes, reply: bytes, zoneset: Snapshot
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


def _matched(labels: list[str], zoneset: Snapshot) -> list[dict[str, str]]:
    """The entries behind the answer, per dataset, as `dnsbl query` finds them:
    ``2.0.0.127.bl.test`` -> ``[{"dataset": "ip4set:bl.zone", "entry":
    "127.0.0.0/24"}]``; the same for 32 IPv6 nibbles and for a name (an
    exact name, or the ``*.`` wildcard that covers it); [] for none."""
    if any("." in label for label in labels):
        return []  # a dot inside a label: no zone's data holds such a name
    lowered = [label.lower() for label in labels]
    for depth in range(len(lowered)):
        zone = zoneset.by_name(".".join(lowered[depth:]))
        if zone is None:
            continue
        key = key_of(".".join(lowered[:depth]))
        out = []
        for pair in dataset_keys(zone, key):
            if pair is None:
                continue
            dataset, wanted = pair
            found = dataset.explain(wanted if isinstance(wanted, str) else wanted.packed)
            if found is not None:
                out.append({"dataset": f"{dataset.kind}:{','.join(dataset.paths)}",
                            "entry": found})
        return out
    return []

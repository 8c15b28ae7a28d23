"""Compile the live, guarded listings into rbldnsd zone files, atomically.

Each published zone is one ``combined`` file with a ``$DATASET`` section per
category and address family attached to the zone itself (``@``), so an
address listed in two categories answers with both A records (ZEN style).
The file is written beside its final name, fsynced and renamed over it: a
server watching it reads the old file or the new one, never half of one.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from dnsbl.ledger.config import Category, LedgerConfig
from dnsbl.ledger.guard import Guard
from dnsbl.ledger.model import AuditEntry
from dnsbl.ledger.status import ShardCounts, write_status
from dnsbl.ledger.store import Store

#: The longest address ``$`` can stand for in a TXT (a full IPv6 address).
_ADDRESS_ROOM = 39
_MAX_TXT = 255


@dataclass
class Held:
    """A listing the guard kept out, and why."""

    key: str
    category: str
    why: str
    reason: str = ""  # one of guard.REASONS

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "category": self.category, "why": self.why}


@dataclass
class Published:
    """What one publish did."""

    entries: dict[str, int] = field(default_factory=dict)  # per zone, in the files compiled
    changed: list[str] = field(default_factory=list)  # zones with a file replaced
    held: list[Held] = field(default_factory=list)
    files: int = 0  # compiled: all of them, or those a change fell in
    partial: bool = False  # only the files a change fell in

    def as_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "changed": self.changed,
                "held": [h.as_dict() for h in self.held], "files": self.files,
                "partial": self.partial}


def publish(store: Store, config: LedgerConfig, now: int, who: str = "",
            changed: Sequence[bytes] | None = None) -> Published:
    """Write the zone files of the ledger from its live listings; returns the counts
    and what the guard held back. With ``changed`` (the first addresses of the keys
    a change touched) only the files those fall in are compiled. A file whose
    content is unchanged is left alone (no reload in the server). One audit row
    per publish that changed something.

    :raises LedgerError: when the guard's files cannot be read.
    :raises OSError: when a zone file cannot be written; the old one stays.
    """
    guard = Guard(config, store.allowed())
    os.makedirs(config.publish_dir, exist_ok=True)
    if changed is not None and not all(os.path.exists(path) for zone in config.zones()
                                       for path in config.zone_files(zone)):
        changed = None  # the first publish, or a file gone: write them all
    result = Published(partial=changed is not None)
    shards = sorted({config.shard_of(start) for start in changed}) if changed is not None \
        else list(range(config.shards))
    result.files = len(shards) * len(config.zones())
    test_shard = config.shard_of(b"\x7f")
    writers = {(zone, shard): _ZoneWriter(config, zone, shard, shard == test_shard)
               for zone in config.zones() for shard in shards}
    lines = _Lines(config)
    targets = {c.name: (c, [z for z in c.zones or (config.zone,)]) for c in config.categories}
    first_bytes = None if changed is None else \
        [b for b in range(256) if b % config.shards in shards]
    counts: ShardCounts = {str(shard): {"held": {}, "entries": {}} for shard in shards}

    def hold(key: str, category: str, start: bytes, verdict: tuple[str, str]) -> None:
        result.held.append(Held(key, category, verdict[1], verdict[0]))
        held = counts[str(config.shard_of(start))]["held"]
        held[verdict[0]] = held.get(verdict[0], 0) + 1

    try:
        for rows in _groups(store, now, first_bytes):
            category, key, family, prefixlen, start, end = rows[0][:6]
            if category not in targets:
                hold(key, category, start,
                     ("unknown_category", "category not in the configuration"))
                continue
            settings, zones = targets[category]
            forced = rows[0][10] if len(rows) == 1 else any(row[10] for row in rows)
            verdict = guard.verdict(family, start, end, prefixlen, settings, forced)
            if verdict is not None:
                hold(key, category, start, verdict)
                continue
            line = lines.line(settings, rows)
            shard = config.shard_of(start)
            for zone in zones:
                writers[zone, shard].write(settings, family, line)
        for (zone, shard), writer in writers.items():
            result.entries[zone] = result.entries.get(zone, 0) + writer.count
            counts[str(shard)]["entries"][zone] = writer.categories
            if writer.commit() and zone not in result.changed:
                result.changed.append(zone)
    finally:
        for writer in writers.values():
            writer.abandon()
    try:
        write_status(config, now, counts)
    except OSError:
        pass  # the zones are published; only the metrics read the status (stale now)
    if result.changed:
        store.record(AuditEntry(now, who, "publish", "", "", "", "", json.dumps({
            "zones": result.changed, "entries": result.entries, "held": len(result.held),
            "files": result.files})))
    return result


def _groups(store: Store, now: int, first_bytes: Sequence[int] | None
            ) -> Iterator[list[tuple[Any, ...]]]:
    """The live listings, one group per category and key (one row a source)."""
    group: list[tuple[Any, ...]] = []
    category = key = None
    for row in store.published(now, first_bytes):
        if row[1] != key or row[0] != category:
            if group:
                yield group
            group = [row]
            category, key = row[0], row[1]
        else:
            group.append(row)
    if group:
        yield group


class _Lines:
    """Zone lines of listings: ``10.0.0.0/24 :127.0.0.3:botnet-cc: C2 of ...
    (source cert-a, since 2026-12-01) URL``. Run a million times a publish,
    so what repeats (days, the URL) is worked out once."""

    def __init__(self, config: LedgerConfig) -> None:
        self._private = set(config.private_sources)
        # The lookup URL goes in as written: its $ is the queried address.
        self._url = " " + config.lookup_url if config.lookup_url else ""
        self._room = (_MAX_TXT - len(self._url.encode())
                      - self._url.count("$") * _ADDRESS_ROOM)
        self._days: dict[int, str] = {}

    def _day(self, seconds: int) -> str:
        day = seconds // 86400
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = datetime.fromtimestamp(day * 86400, UTC).strftime(
                "%Y-%m-%d")
        return text

    def line(self, category: Category, rows: list[tuple[Any, ...]]) -> str:
        if len(rows) == 1:
            newest = rows[0]
            first_seen = newest[8]
            sources = [newest[6]] if newest[6] not in self._private else []
        else:
            newest = max(rows, key=lambda row: row[9])
            first_seen = min(row[8] for row in rows)
            sources = [row[6] for row in rows if row[6] not in self._private]
        attribution = f"source {', '.join(sources)}, " if category.public and sources else ""
        head = f"{category.name}: "
        tail = f" ({attribution}since {self._day(first_seen)})"
        reason = newest[7]
        room = self._room - len(head.encode()) - len(tail.encode())
        if len(reason) * 4 > room:  # possibly too long in UTF-8: measure it
            reason = _cut(reason, max(room, 0))
        text = head + reason + tail
        if "$" in text:
            text = text.replace("$", "$$")
        key = newest[1]
        cidr = key if "/" in key else f"{key}/{newest[3]}"
        return f"{cidr} :{category.a}:{text}{self._url}\n"


def _cut(text: str, size: int) -> str:
    """At most ``size`` bytes of UTF-8, cut between characters."""
    data = text.encode()
    if len(data) <= size:
        return text
    return data[:size].decode("utf-8", "ignore")


class _ZoneWriter:
    """One zone file being written: a temporary file until :meth:`commit`."""

    def __init__(self, config: LedgerConfig, zone: str, shard: int, test_points: bool) -> None:
        self.path = config.zone_file(zone, shard)
        folder = os.path.dirname(self.path) or "."
        base = os.path.basename(self.path)
        for stale in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(base)}.*.tmp")):
            os.unlink(stale)  # left by a publish that was killed
        fd, self._temp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._section: tuple[str, int] | None = None
        self._pending: list[str] = []  # lines not yet written: written in batches
        self._test_points = test_points  # this file holds 127.0.0.2
        self._zone_categories = config.zones()[zone] if test_points else ()
        self._categories = {c.name for c in self._zone_categories}  # without a v4 section
        self.count = 0
        self.categories: dict[str, int] = {}  # entries per category, once committed
        self._counted = 0  # entries before the open section
        self._write(f"# {zone}: written by `dnsbl ledger publish`; change the ledger, "
                    "not this file.\n$TTL {ttl}\n".replace("{ttl}", str(config.ttl)))

    def _write(self, text: str) -> None:
        if self._pending:
            self._flush()
        data = text.encode()
        assert self._file is not None
        self._file.write(data)
        self._hash.update(data)

    def write(self, category: Category, family: int, line: str) -> None:
        if self._section != (category.name, family):
            self._count_section()
            self._open(category, family)
        self._pending.append(line)
        self.count += 1
        if len(self._pending) >= 4096:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            pending = "".join(self._pending)
            self._pending.clear()
            self._write(pending)

    def _open(self, category: Category, family: int) -> None:
        kind = "ip4trie" if family == 4 else "ip6trie"
        self._write(f"$DATASET {kind}:{category.name}-v{family} @\n")
        self._section = (category.name, family)
        if family == 4 and self._test_points:
            # RFC 5782 section 5: 127.0.0.2 is always listed, as a test point
            # (IPv6 clients ask ::ffff:7f00:2, answered from these sections).
            self._write(f"127.0.0.2/32 :{category.a}:{category.name}: test entry (RFC 5782)\n")
            self._categories.discard(category.name)

    def _count_section(self) -> None:
        """Add the section just finished to its category's count (a section is one
        category and family, each written once: listings come grouped)."""
        if self._section is not None:
            name = self._section[0]
            self.categories[name] = self.categories.get(name, 0) + self.count - self._counted
        self._counted = self.count

    def commit(self) -> bool:
        """Put the new file in place unless it is the same; True when replaced."""
        assert self._file is not None
        self._count_section()
        for category in self._zone_categories:
            if category.name in self._categories:  # nothing listed: the test point alone
                self._open(category, 4)
        self._flush()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        if _digest(self.path) == self._hash.digest():
            return False
        os.chmod(self._temp, 0o644)  # mkstemp's 0600 would keep a server user out
        os.replace(self._temp, self.path)
        folder = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)
        return True

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self._temp):
            os.unlink(self._temp)


def _digest(path: str) -> bytes | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.digest()

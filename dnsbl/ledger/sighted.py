"""The sightings tables: per listed key and day, how often the servers were
asked about it and by how many resolvers, and how far each query log was read.
:mod:`dnsbl.ledger.sightings` reads the logs into them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dnsbl.ledger.connection import Connection


class Sightings:
    """The sightings, sighting_resolvers and sighting_files tables on one ledger
    connection."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    def log_offset(self, path: str, inode: int) -> int:
        """How far the query log on device ``path``, ``inode``, was read already."""
        rows = self.db.rows(
            "SELECT offset_ FROM sighting_files WHERE path = :path AND inode = :inode",
            {"path": path, "inode": inode})
        return int(rows[0][0]) if rows else 0

    def add(self, seen: dict[tuple[str, int], list[Any]],
            offsets: dict[tuple[str, int], int], started: dict[tuple[str, int], int]) -> bool:
        """Add what a read of query logs found (per (key, day): lookups, first,
        last, clients) and where each log was read up to, in one transaction;
        False (nothing added) when a log is no longer where the read ``started``:
        another reader (a second ``dnsbl web``, a ``ledger sightings``) took
        those lines in meanwhile, and they must not count twice."""
        with self.db.writing():
            if any(self.log_offset(*where) != offset for where, offset in started.items()):
                return False
            self.db.change_many(
                "INSERT INTO sightings (key, day, lookups, first_at, last_at) VALUES "
                "(:key, :day, :lookups, :first, :last) ON CONFLICT (key, day) DO UPDATE SET "
                "lookups = sightings.lookups + excluded.lookups, "
                "first_at = CASE WHEN excluded.first_at < sightings.first_at "
                "THEN excluded.first_at ELSE sightings.first_at END, "
                "last_at = CASE WHEN excluded.last_at > sightings.last_at "
                "THEN excluded.last_at ELSE sightings.last_at END",
                [{"key": key, "day": day, "lookups": lookups, "first": first, "last": last}
                 for (key, day), (lookups, first, last, _) in seen.items()])
            self.db.change_many(
                "INSERT INTO sighting_resolvers (key, day, client) VALUES (:key, :day, "
                ":client) ON CONFLICT (key, day, client) DO NOTHING",
                [{"key": key, "day": day, "client": client}
                 for (key, day), (_, _, _, clients) in seen.items() for client in clients])
            self.db.change_many(
                "INSERT INTO sighting_files (path, inode, offset_) VALUES (:path, :inode, "
                ":offset) ON CONFLICT (path, inode) DO UPDATE SET offset_ = excluded.offset_",
                [{"path": path, "inode": inode, "offset": offset}
                 for (path, inode), offset in offsets.items()])
        return True

    def top(self, keys: Sequence[str] = (), since_day: int = 0,
            limit: int = 100) -> list[tuple[str, int, int, int, int]]:
        """(key, lookups, distinct resolvers, first, last) from ``since_day`` on,
        of these keys (all when none), the most looked-up first."""
        params: dict[str, Any] = {"since": since_day, "limit": limit}
        where = ""
        if keys:
            where = "AND s.key IN (" + ", ".join(f":k{i}" for i in range(len(keys))) + ")"
            params.update({f"k{i}": k for i, k in enumerate(keys)})
        rows = self.db.rows(
            "SELECT s.key, SUM(s.lookups), (SELECT COUNT(DISTINCT r.client) FROM "
            "sighting_resolvers r WHERE r.key = s.key AND r.day >= :since), "
            f"MIN(s.first_at), MAX(s.last_at) FROM sightings s WHERE s.day >= :since {where} "
            "GROUP BY s.key ORDER BY 2 DESC, s.key LIMIT :limit", params)
        return [(key, int(n), int(r), int(f), int(la)) for key, n, r, f, la in rows]

    def days(self, key: str) -> list[tuple[int, int, int, int, int]]:
        """Per day of ``key``: (day, lookups, distinct resolvers, first, last)."""
        if not self.db.has_schema(3):
            return []  # a read-only ledger of an older dnsbl: it has none
        rows = self.db.rows(
            "SELECT s.day, s.lookups, (SELECT COUNT(*) FROM sighting_resolvers r "
            "WHERE r.key = s.key AND r.day = s.day), s.first_at, s.last_at "
            "FROM sightings s WHERE s.key = :key ORDER BY s.day", {"key": key})
        return [tuple(int(v) for v in row) for row in rows]  # type: ignore[misc]

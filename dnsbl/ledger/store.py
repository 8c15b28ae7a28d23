"""The ledger's storage: the SQL schema, and the listings', removals', audit's and
allowlist's queries, over a backend's connection (:mod:`dnsbl.ledger.connection`).

:mod:`dnsbl.ledger.sqlite` and :mod:`dnsbl.ledger.postgres` supply the
connection, the column types, the placeholders and the writers' lock; the
statements here, and those of the web application's tables
(:mod:`~dnsbl.ledger.access`, :mod:`~dnsbl.ledger.requests`,
:mod:`~dnsbl.ledger.sighted`), are written once for both (``:name`` placeholders,
``INSERT ... ON CONFLICT``, ``CASE`` instead of ``max()``/``GREATEST()``).

Every change is one transaction. Reports (from ``add`` and every import) are
first staged into a temporary table, then merged in one statement per step,
so a million-line import is as atomic as a single ``add``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dnsbl.ledger.connection import AUDIT_COLUMNS, Connection
from dnsbl.ledger.model import (
    AuditEntry,
    Key,
    LedgerError,
    Listing,
    Report,
    parse_key,
)

#: What a change to a ledger opened read-only gets, after its name.
READ_ONLY = "the ledger is read-only here; nothing was changed"

#: Reports staged per executemany: memory stays flat whatever the file size.
BATCH = 5000

#: The schema, one list of statements per version; a database is brought
#: forward by running the versions after its own, each in its transaction.
#: ``{serial}``, ``{blob}`` and ``{bigint}`` are the backend's types.
#: Later versions are appended here, never edited.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE listings (
            id {serial} PRIMARY KEY,
            key TEXT NOT NULL, family INTEGER NOT NULL, prefixlen INTEGER NOT NULL,
            start_addr {blob} NOT NULL, end_addr {blob} NOT NULL,
            category TEXT NOT NULL, source TEXT NOT NULL,
            reason TEXT NOT NULL, ref TEXT NOT NULL, confidence INTEGER NOT NULL,
            first_seen {bigint} NOT NULL, last_seen {bigint} NOT NULL,
            expires {bigint} NOT NULL, entered_by TEXT NOT NULL,
            removed_at {bigint}, forced INTEGER NOT NULL,
            UNIQUE (key, category, source))""",
        "CREATE INDEX listings_range ON listings (family, start_addr)",
        "CREATE INDEX listings_expires ON listings (expires)",
        # A removal: the key (in one category, or from one source, or all)
        # stays off against evidence from before it.
        """CREATE TABLE removals (
            id {serial} PRIMARY KEY, key TEXT NOT NULL, category TEXT, source TEXT,
            removed_at {bigint} NOT NULL, who TEXT NOT NULL, why TEXT NOT NULL)""",
        "CREATE INDEX removals_key ON removals (key)",
        """CREATE TABLE audit (
            id {serial} PRIMARY KEY, at {bigint} NOT NULL, who TEXT NOT NULL,
            action TEXT NOT NULL, key TEXT NOT NULL, category TEXT NOT NULL,
            source TEXT NOT NULL, why TEXT NOT NULL, details TEXT NOT NULL)""",
        "CREATE INDEX audit_key ON audit (key)",
        "CREATE INDEX audit_at ON audit (at)",
        "{append_only}",
    ),
    (
        # Addresses never published, kept with who allowed them and why.
        """CREATE TABLE allowlist (
            key TEXT PRIMARY KEY, family INTEGER NOT NULL, prefixlen INTEGER NOT NULL,
            start_addr {blob} NOT NULL, end_addr {blob} NOT NULL,
            why TEXT NOT NULL, who TEXT NOT NULL, at {bigint} NOT NULL)""",
    ),
    (
        # API tokens: only the SHA-256 of the secret is kept; a token writes
        # only its sources (a comma-separated list).
        """CREATE TABLE tokens (
            name TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, sources TEXT NOT NULL,
            read_only INTEGER NOT NULL, created {bigint} NOT NULL, expires {bigint},
            revoked {bigint}, who TEXT NOT NULL)""",
        # Removal requests from the public lookup page, until an analyst decides.
        """CREATE TABLE removal_requests (
            id {serial} PRIMARY KEY, key TEXT NOT NULL, contact TEXT NOT NULL,
            message TEXT NOT NULL, client TEXT NOT NULL, at {bigint} NOT NULL,
            state TEXT NOT NULL, decided_at {bigint}, decided_by TEXT)""",
        "CREATE INDEX removal_requests_state ON removal_requests (state, key)",
        # Analysts of the web UI (a scrypt hash of the password) and their
        # sessions (the SHA-256 of the cookie's random id).
        """CREATE TABLE analysts (
            name TEXT PRIMARY KEY, password TEXT NOT NULL, created {bigint} NOT NULL)""",
        """CREATE TABLE sessions (
            digest TEXT PRIMARY KEY, analyst TEXT NOT NULL, expires {bigint} NOT NULL)""",
        # Sightings from the servers' sampled query logs: per listed key and day,
        # lookups (scaled by the sample rate), first and last, distinct resolvers.
        """CREATE TABLE sightings (
            key TEXT NOT NULL, day INTEGER NOT NULL, lookups {bigint} NOT NULL,
            first_at {bigint} NOT NULL, last_at {bigint} NOT NULL, PRIMARY KEY (key, day))""",
        "CREATE INDEX sightings_day ON sightings (day)",
        """CREATE TABLE sighting_resolvers (
            key TEXT NOT NULL, day INTEGER NOT NULL, client TEXT NOT NULL,
            PRIMARY KEY (key, day, client))""",
        # How far each query log was read, by (device, inode): a renamed
        # (rotated) file goes on, a new one starts at 0, none counts twice.
        """CREATE TABLE sighting_files (
            path TEXT NOT NULL, inode {bigint} NOT NULL, offset_ {bigint} NOT NULL,
            PRIMARY KEY (path, inode))""",
    ),
)

STAGED_COLUMNS = ("key", "family", "prefixlen", "start_addr", "end_addr", "category", "source",
                   "reason", "ref", "confidence", "seen", "first_seen", "expires", "forced",
                   "entered_by")
STAGED = """CREATE TEMPORARY TABLE IF NOT EXISTS staged (
    key TEXT NOT NULL, family INTEGER NOT NULL, prefixlen INTEGER NOT NULL,
    start_addr {blob} NOT NULL, end_addr {blob} NOT NULL, category TEXT NOT NULL,
    source TEXT NOT NULL, reason TEXT NOT NULL, ref TEXT NOT NULL,
    confidence INTEGER NOT NULL, seen {bigint} NOT NULL, first_seen {bigint},
    expires {bigint} NOT NULL, forced INTEGER NOT NULL, entered_by TEXT NOT NULL,
    PRIMARY KEY (key, category, source))"""
# The same key, category and source twice in one import: the newest report counts.
_STAGE = (f"INSERT INTO staged ({', '.join(STAGED_COLUMNS)}) VALUES "
          f"({', '.join(':' + c for c in STAGED_COLUMNS)}) "
          "ON CONFLICT (key, category, source) DO UPDATE SET seen = excluded.seen, "
          "reason = excluded.reason, ref = excluded.ref, confidence = excluded.confidence, "
          "expires = excluded.expires, forced = excluded.forced "
          "WHERE excluded.seen >= staged.seen")
# A listing is live when not removed and not expired; ACTIVE is that, in SQL.
_ACTIVE = "(listings.removed_at IS NULL AND listings.expires > :now)"
_HELD = """DELETE FROM staged WHERE EXISTS (
    SELECT 1 FROM removals r WHERE r.key = staged.key
    AND (r.category IS NULL OR r.category = staged.category)
    AND (r.source IS NULL OR r.source = staged.source) AND r.removed_at >= staged.seen)"""
# What each staged report will do: a new listing, a repeat, or a relisting.
_ACTION = f"""CASE WHEN listings.id IS NULL THEN 'add' WHEN {_ACTIVE} THEN 'extend'
    WHEN listings.removed_at IS NOT NULL THEN 'relist' ELSE 'add' END"""
_JOINED = """FROM staged LEFT JOIN listings ON listings.key = staged.key
    AND listings.category = staged.category AND listings.source = staged.source"""
_COUNT = f"SELECT {_ACTION} AS action, COUNT(*) {_JOINED} GROUP BY 1"
_AUDIT_STAGED = f"""INSERT INTO audit (at, who, action, key, category, source, why, details)
    SELECT :now, :who, {_ACTION}, staged.key, staged.category, staged.source,
    staged.reason, :details {_JOINED}"""
_AUDIT_FORCED = """INSERT INTO audit (at, who, action, key, category, source, why, details)
    SELECT :now, :who, 'force', key, category, source, reason, :details
    FROM staged WHERE forced = 1"""
_NEWER = "excluded.last_seen >= listings.last_seen"
_MERGE = f"""INSERT INTO listings (key, family, prefixlen, start_addr, end_addr, category, source,
        reason, ref, confidence, first_seen, last_seen, expires, entered_by, removed_at, forced)
    SELECT key, family, prefixlen, start_addr, end_addr, category, source, reason, ref,
        confidence, COALESCE(first_seen, seen), seen, expires, entered_by, NULL, forced
    FROM staged WHERE 1 = 1
    ON CONFLICT (key, category, source) DO UPDATE SET
    first_seen = CASE WHEN NOT {_ACTIVE} OR excluded.first_seen < listings.first_seen
        THEN excluded.first_seen ELSE listings.first_seen END,
    last_seen = CASE WHEN NOT {_ACTIVE} OR {_NEWER}
        THEN excluded.last_seen ELSE listings.last_seen END,
    expires = CASE WHEN {_ACTIVE} AND listings.expires > excluded.expires
        THEN listings.expires ELSE excluded.expires END,
    reason = CASE WHEN NOT {_ACTIVE} OR {_NEWER} THEN excluded.reason ELSE listings.reason END,
    ref = CASE WHEN NOT {_ACTIVE} OR {_NEWER} THEN excluded.ref ELSE listings.ref END,
    confidence = CASE WHEN NOT {_ACTIVE} OR {_NEWER}
        THEN excluded.confidence ELSE listings.confidence END,
    entered_by = CASE WHEN {_ACTIVE} THEN listings.entered_by ELSE excluded.entered_by END,
    forced = CASE WHEN excluded.forced = 1 OR ({_ACTIVE} AND listings.forced = 1)
        THEN 1 ELSE 0 END,
    removed_at = NULL"""
_LISTING_COLUMNS = ("key, category, source, reason, ref, confidence, first_seen, last_seen, "
                    "expires, entered_by, removed_at, forced")


@dataclass
class Merged:
    """What one merge did, by count."""

    added: int = 0
    extended: int = 0
    relisted: int = 0
    held: int = 0  # older than a removal of the key: not relisted

    def as_dict(self) -> dict[str, int]:
        return {"added": self.added, "extended": self.extended, "relisted": self.relisted,
                "held_by_removal": self.held}


class Store(Connection):
    """The ledger's listings, removals, audit and allowlist on one connection;
    :func:`open_store` gives the backend's."""

    def migrate(self) -> int:
        """Bring the schema forward to the newest version; returns the version.

        :raises LedgerError: for a database newer than this program.
        """
        version = self._schema_version()
        if version > len(MIGRATIONS):
            raise LedgerError(f"{self.url}: schema version {version} is newer than this dnsbl "
                              f"knows ({len(MIGRATIONS)}); upgrade dnsbl")
        if self.read_only:
            # show, list and export read an older schema as well; a change
            # fails with the read-only message, as it would anyway.
            return version
        for number, statements in enumerate(MIGRATIONS[version:], version + 1):
            self._begin_write()
            try:
                if self._schema_version() >= number:  # another process did it meanwhile
                    self._rollback()
                    continue
                for statement in statements:
                    for part in self.sql(statement).split(";;"):
                        if part.strip():
                            self._execute(part)
                self._set_schema_version(number)
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return len(MIGRATIONS)

    def stage(self, reports: Iterable[Report]) -> int:
        """Put reports aside for :meth:`merge` (nothing is changed yet)."""
        self._execute(self.sql(STAGED))
        self._execute("DELETE FROM staged")
        staged = 0
        batch: list[dict[str, Any]] = []
        for row in staged_rows(reports):
            batch.append(dict(zip(STAGED_COLUMNS, row, strict=True)))
            if len(batch) >= BATCH:
                staged += self._stage_batch(batch)
        return staged + self._stage_batch(batch)

    def _stage_batch(self, batch: list[dict[str, Any]]) -> int:
        count = len(batch)
        if count:
            self._begin()
            self._executemany(self.sql(_STAGE), batch)
            self._commit()
            batch.clear()
        return count

    def discard(self) -> None:
        """Forget what was staged."""
        self._execute("DELETE FROM staged")
        self._commit()

    def merge(self, now: int, who: str, details: str) -> Merged:
        """Apply the staged reports in one transaction: new keys are listed, repeats
        extend last seen and expiry, removed ones come back only on newer evidence."""
        params = {"now": now, "who": who, "details": details}
        with self.writing():
            merged = Merged(held=self.change(_HELD))
            for action, count in self.rows(_COUNT, params):
                setattr(merged, {"add": "added", "extend": "extended",
                                 "relist": "relisted"}[action], count)
            for statement in (_AUDIT_STAGED, _AUDIT_FORCED, _MERGE):
                self.change(statement, params)
            self.change("DELETE FROM staged")
        return merged

    def remove(self, key: Key, category: str | None, source: str | None, why: str, who: str,
               now: int) -> list[Listing]:
        """End the listings of exactly ``key`` (in one category, from one source, or
        all) and remember the removal; returns what was ended, [] (and nothing
        changed) when nothing was listed."""
        params = {"key": key.text, "category": category, "source": source, "now": now,
                  "who": who, "why": why}
        where = ("key = :key AND removed_at IS NULL"
                 + (" AND category = :category" if category is not None else "")
                 + (" AND source = :source" if source is not None else ""))
        with self.writing():
            ended = [_listing(row) for row in self.rows(
                f"SELECT {_LISTING_COLUMNS} FROM listings WHERE {where}", params)]
            if not ended:
                return []
            self.change(f"UPDATE listings SET removed_at = :now WHERE {where}", params)
            self.change("INSERT INTO removals (key, category, source, removed_at, who, why) "
                        "VALUES (:key, :category, :source, :now, :who, :why)", params)
            self.change_many(
                f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (:now, :who, 'remove', :key, "
                ":category, :source, :why, '')",
                [{**params, "category": e.category, "source": e.source} for e in ended])
        return ended

    def record(self, entry: AuditEntry) -> None:
        """Add one audit row on its own (a publish, say)."""
        self.audit(entry.at, entry.who, entry.action, key=entry.key, category=entry.category,
                   source=entry.source, why=entry.why, details=entry.details)
        self._commit()

    def allow(self, key: Key, why: str, who: str, now: int) -> bool:
        """Keep ``key`` out of the zones from the next publish on; True when it
        was not allowed yet (else its reason is replaced)."""
        params = {"key": key.text, "family": key.family, "prefixlen": key.prefixlen,
                  "start": key.start, "end": key.end, "why": why, "who": who, "now": now}
        with self.writing():
            new = not self.rows("SELECT 1 FROM allowlist WHERE key = :key", params)
            self.change(
                "INSERT INTO allowlist (key, family, prefixlen, start_addr, end_addr, why, "
                "who, at) VALUES (:key, :family, :prefixlen, :start, :end, :why, :who, :now) "
                "ON CONFLICT (key) DO UPDATE SET why = excluded.why, who = excluded.who, "
                "at = excluded.at", params)
            self.audit(now, who, "allow" if new else "allow again", key=key.text, why=why,
                       details="allowlist")
        return new

    def unallow(self, key: Key, why: str, who: str, now: int) -> bool:
        """Take ``key`` off the allowlist; False (nothing changed) when it was not on it."""
        with self.writing():
            if not self.change("DELETE FROM allowlist WHERE key = :key", {"key": key.text}):
                return False
            self.audit(now, who, "unallow", key=key.text, why=why, details="allowlist")
        return True

    def live_counts(self, now: int) -> list[tuple[str, str, int]]:
        """(category, source, live listings): one grouped query, which still
        reads every listing (about a second for a million; see the web
        application's metrics, which reuse it for a while)."""
        return [(c, s, int(n)) for c, s, n in self.rows(
            f"SELECT category, source, COUNT(*) FROM listings WHERE {_ACTIVE} "
            "GROUP BY category, source", {"now": now})]

    def allowed(self) -> list[tuple[str, int, bytes, bytes, str, str, int]]:
        """The allowlist: (key, family, start, end, why, who, at), in key order."""
        if not self.has_schema(2):
            return []  # a read-only ledger of an older dnsbl: it has none
        return [(key, family, bytes(start), bytes(end), why, who, at)
                for key, family, start, end, why, who, at in self._execute(self.sql(
                    "SELECT key, family, start_addr, end_addr, why, who, at FROM allowlist "
                    "ORDER BY family, start_addr, prefixlen")).fetchall()]

    def covering(self, key: Key, limit: int | None = None, offset: int = 0) -> list[Listing]:
        """Every listing, live or not, whose network overlaps ``key``'s: the
        networks around an address and, for a network, those inside it;
        ``limit`` of them from the ``offset``-th when given (a page)."""
        page = " LIMIT :limit OFFSET :offset" if limit is not None else ""
        rows = self._execute(self.sql(
            f"SELECT {_LISTING_COLUMNS} FROM listings WHERE family = :family "
            "AND start_addr <= :end AND end_addr >= :start "
            f"ORDER BY prefixlen, key, category, source, id{page}"),
            {"family": key.family, "start": key.start, "end": key.end, "limit": limit,
             "offset": offset}).fetchall()
        return [_listing(row) for row in rows]

    def history(self, keys: Sequence[str] = (), since: int | None = None,
                limit: int | None = None) -> list[AuditEntry]:
        """Audit rows, oldest first: of these keys (all when none), from ``since``."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if keys:
            names = [f":k{i}" for i in range(len(keys))]
            clauses.append(f"key IN ({', '.join(names)})")
            params.update({f"k{i}": k for i, k in enumerate(keys)})
        if since is not None:
            clauses.append("at >= :since")
            params["since"] = since
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "ORDER BY id DESC LIMIT :limit" if limit else "ORDER BY id"
        if limit:
            params["limit"] = limit
        rows = self._execute(self.sql(f"SELECT {AUDIT_COLUMNS} FROM audit {where} {order}"),
                             params).fetchall()
        entries = [AuditEntry(*row) for row in rows]
        return entries[::-1] if limit else entries

    def changes(self, limit: int, before: int | None = None
                ) -> list[tuple[int, AuditEntry]]:
        """The newest ``limit`` audit rows (before the row ``before`` when given),
        newest first, with their ids: the id of the last is the next page's
        ``before``."""
        where = "WHERE id < :before" if before is not None else ""
        rows = self._execute(self.sql(
            f"SELECT id, {AUDIT_COLUMNS} FROM audit {where} ORDER BY id DESC LIMIT :limit"),
            {"before": before, "limit": limit}).fetchall()
        return [(int(row[0]), AuditEntry(*row[1:])) for row in rows]

    def listings(self, now: int, *, category: str | None = None, source: str | None = None,
                 expiring_before: int | None = None, since: int | None = None,
                 seen_since: int | None = None, active: bool = True,
                 limit: int | None = None, offset: int = 0) -> Iterator[Listing]:
        """Listings by filter, in key order, streamed; ``limit`` of them from the
        ``offset``-th when given (a page)."""
        clauses = [_ACTIVE.replace("listings.", "")] if active else ["1 = 1"]
        params: dict[str, Any] = {"now": now}
        for column, value, test in (("category", category, "="), ("source", source, "="),
                                    ("expires", expiring_before, "<"),
                                    ("first_seen", since, ">="),
                                    ("last_seen", seen_since, ">=")):
            if value is not None:
                clauses.append(f"{column} {test} :{column}")
                params[column] = value
        sql = (f"SELECT {_LISTING_COLUMNS} FROM listings WHERE {' AND '.join(clauses)} "
               "ORDER BY family, start_addr, prefixlen, category, source, id")
        if limit is not None:
            sql += " LIMIT :limit OFFSET :offset"
            params.update(limit=limit, offset=offset)
        return (_listing(row) for row in self._stream(self.sql(sql), params))

    def published(self, now: int, first_bytes: Sequence[int] | None = None
                  ) -> Iterator[tuple[Any, ...]]:
        """Live listings for publish, grouped by category then address:
        (category, key, family, prefixlen, start, end, source, reason, first_seen,
        last_seen, forced); only those whose address starts with one of
        ``first_bytes`` when given."""
        params: dict[str, Any] = {"now": now}
        where = ""
        if first_bytes is not None:
            # Each range with its family: the index is (family, start_addr), and
            # without the family neither SQLite nor PostgreSQL uses it, so a
            # one-file publish after an add read the whole table.
            ranges: list[str] = []
            for i, byte in enumerate(first_bytes):
                ranges.extend(f"(family = {family} AND start_addr BETWEEN :lo{i} AND :hi{i})"
                              for family in (4, 6))
                params[f"lo{i}"] = bytes([byte])
                params[f"hi{i}"] = bytes([byte]) + b"\xff" * 16
            where = f"AND ({' OR '.join(ranges) or '1 = 0'})"
        return self._stream(self.sql(
            "SELECT category, key, family, prefixlen, start_addr, end_addr, source, reason, "
            "first_seen, last_seen, forced FROM listings "
            f"WHERE removed_at IS NULL AND expires > :now {where} "
            "ORDER BY category, family, start_addr, prefixlen, source"), params)


def staged_rows(reports: Iterable[Report]) -> Iterator[tuple[Any, ...]]:
    """Reports as rows of the staging table, in STAGED_COLUMNS order."""
    for report in reports:
        key = report.key
        yield (key.text, key.family, key.prefixlen, key.start, key.end, report.category,
               report.source, report.reason, report.ref, report.confidence, report.seen,
               report.first_seen, report.expires, int(report.forced), report.entered_by)


def _listing(row: Sequence[Any]) -> Listing:
    (key, category, source, reason, ref, confidence, first_seen, last_seen, expires,
     entered_by, removed_at, forced) = row
    return Listing(key, category, source, reason, ref, confidence, first_seen, last_seen,
                   expires, entered_by, removed_at, bool(forced))


def open_store(url: str, lock_timeout: float = 30.0) -> Store:
    """The ledger at ``url`` (a file name: SQLite; ``postgresql://``: PostgreSQL),
    its schema brought up to date.

    :raises LedgerError: when it cannot be opened or migrated; the message says why.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from dnsbl.ledger.postgres import PostgresStore

        store: Store = PostgresStore(url, lock_timeout)
    else:
        from dnsbl.ledger.sqlite import SQLiteStore

        store = SQLiteStore(url, lock_timeout)
    try:
        store.migrate()
    except store.errors as exc:
        store.close()
        raise LedgerError(store.explain(exc)) from None
    except BaseException:
        store.close()
        raise
    return store


__all__ = ["Store", "Merged", "open_store", "parse_key"]

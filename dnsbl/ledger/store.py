"""The ledger's storage: one SQL schema and every query, over a backend's connection.

:mod:`dnsbl.ledger.sqlite` and :mod:`dnsbl.ledger.postgres` supply the
connection, the column types, the placeholders and the writers' lock; the
statements here are written once for both (``:name`` placeholders,
``INSERT ... ON CONFLICT``, ``CASE`` instead of ``max()``/``GREATEST()``).

Every change is one transaction. Reports (from ``add`` and every import) are
first staged into a temporary table, then merged in one statement per step,
so a million-line import is as atomic as a single ``add``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dnsbl.ledger.model import (
    AuditEntry,
    Key,
    LedgerError,
    Listing,
    RemovalRequest,
    Report,
    Token,
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
_AUDIT_COLUMNS = "at, who, action, key, category, source, why, details"
_TOKEN_COLUMNS = "name, digest, sources, read_only, created, expires, revoked, who"
_REQUEST_COLUMNS = ("id, key, contact, message, client, at, state, decided_at, decided_by")


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


class Store:
    """The ledger on one connection. Subclasses connect and supply the dialect."""

    #: Column types and the statement that makes ``audit`` append-only.
    types: dict[str, str] = {}
    #: Python's sqlite3 takes ``:name``; psycopg takes ``%(name)s``.
    named_style = True
    #: The driver's exceptions, which :meth:`explain` turns into one line.
    errors: tuple[type[Exception], ...] = ()
    #: Opened read-only (a file we cannot write): reads only, no migration.
    read_only = False

    def __init__(self, url: str) -> None:
        self.url = url

    # -- what a backend supplies ---------------------------------------------------

    def _execute(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        """Start a transaction (autocommit otherwise)."""
        raise NotImplementedError

    def _begin_write(self) -> None:
        """Start a transaction that holds the writers' lock (one writer at a time:
        two imports at once then lose no update)."""
        raise NotImplementedError

    def _stream(self, sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of a query without holding them all in memory."""
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _schema_version(self) -> int:
        raise NotImplementedError

    def _set_schema_version(self, version: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def explain(self, exc: BaseException) -> str:
        """A driver error as one line that says what to do."""
        return f"{self.url}: {exc}"

    # -- shared ----------------------------------------------------------------------

    def sql(self, text: str) -> str:
        text = text.format(**self.types) if "{" in text else text
        if not self.named_style:
            text = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", text)
        return text

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
        self._begin_write()
        try:
            merged = Merged(held=self._execute(self.sql(_HELD)).rowcount)
            for action, count in self._execute(self.sql(_COUNT), params).fetchall():
                setattr(merged, {"add": "added", "extend": "extended",
                                 "relist": "relisted"}[action], count)
            self._execute(self.sql(_AUDIT_STAGED), params)
            self._execute(self.sql(_AUDIT_FORCED), params)
            self._execute(self.sql(_MERGE), params)
            self._execute("DELETE FROM staged")
            self._commit()
        except BaseException:
            self._rollback()
            raise
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
        self._begin_write()
        try:
            ended = [_listing(row) for row in self._execute(
                self.sql(f"SELECT {_LISTING_COLUMNS} FROM listings WHERE {where}"),
                params).fetchall()]
            if not ended:
                self._rollback()
                return []
            self._execute(self.sql(f"UPDATE listings SET removed_at = :now WHERE {where}"),
                          params)
            self._execute(self.sql(
                "INSERT INTO removals (key, category, source, removed_at, who, why) "
                "VALUES (:key, :category, :source, :now, :who, :why)"), params)
            self._executemany(self.sql(
                f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (:now, :who, 'remove', :key, "
                ":category, :source, :why, '')"),
                [{**params, "category": e.category, "source": e.source} for e in ended])
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return ended

    def record(self, entry: AuditEntry) -> None:
        """Add one audit row on its own (a publish, say)."""
        self._execute(self.sql(
            f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (:at, :who, :action, :key, "
            ":category, :source, :why, :details)"), {
                "at": entry.at, "who": entry.who, "action": entry.action, "key": entry.key,
                "category": entry.category, "source": entry.source, "why": entry.why,
                "details": entry.details})
        self._commit()

    def allow(self, key: Key, why: str, who: str, now: int) -> bool:
        """Keep ``key`` out of the zones from the next publish on; True when it
        was not allowed yet (else its reason is replaced)."""
        params = {"key": key.text, "family": key.family, "prefixlen": key.prefixlen,
                  "start": key.start, "end": key.end, "why": why, "who": who, "now": now}
        self._begin_write()
        try:
            new = not self._execute(self.sql("SELECT 1 FROM allowlist WHERE key = :key"),
                                    params).fetchall()
            self._execute(self.sql(
                "INSERT INTO allowlist (key, family, prefixlen, start_addr, end_addr, why, "
                "who, at) VALUES (:key, :family, :prefixlen, :start, :end, :why, :who, :now) "
                "ON CONFLICT (key) DO UPDATE SET why = excluded.why, who = excluded.who, "
                "at = excluded.at"), params)
            self._audit_allow(params, "allow" if new else "allow again")
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return new

    def unallow(self, key: Key, why: str, who: str, now: int) -> bool:
        """Take ``key`` off the allowlist; False (nothing changed) when it was not on it."""
        params = {"key": key.text, "why": why, "who": who, "now": now}
        self._begin_write()
        try:
            if not self._execute(self.sql("DELETE FROM allowlist WHERE key = :key"),
                                 params).rowcount:
                self._rollback()
                return False
            self._audit_allow(params, "unallow")
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return True

    def _audit_allow(self, params: dict[str, Any], action: str) -> None:
        self._execute(self.sql(
            f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (:now, :who, :action, :key, '', "
            "'', :why, 'allowlist')"), {**params, "action": action})

    # -- API tokens and removal requests (the web application's) ------------------

    def add_token(self, token: Token) -> None:
        """Keep a new token (its digest only).

        :raises LedgerError: when a token of that name exists.
        """
        params = token.as_row()
        self._begin_write()
        try:
            if self._execute(self.sql("SELECT 1 FROM tokens WHERE name = :name"),
                             params).fetchall():
                raise LedgerError(f"a token named {token.name!r} exists; choose another "
                                  "--name or revoke it")
            self._execute(self.sql(
                "INSERT INTO tokens (name, digest, sources, read_only, created, expires, "
                "revoked, who) VALUES (:name, :digest, :sources, :read_only, :created, "
                ":expires, :revoked, :who)"), params)
            self._execute(self.sql(
                f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (:created, :who, "
                "'token create', '', '', :sources, '', :name)"), params)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def tokens(self) -> list[Token]:
        """Every token, revoked ones too, by name."""
        return [Token(*row) for row in self._execute(self.sql(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY name")).fetchall()]

    def token_by_digest(self, digest: str) -> Token | None:
        rows = self._execute(self.sql(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE digest = :digest"),
            {"digest": digest}).fetchall()
        return Token(*rows[0]) if rows else None

    def revoke_token(self, name: str, who: str, now: int) -> bool:
        """Revoke the token ``name``; False when there is no live one of that name."""
        params = {"name": name, "who": who, "now": now}
        self._begin_write()
        try:
            if not self._execute(self.sql(
                    "UPDATE tokens SET revoked = :now WHERE name = :name AND revoked IS NULL"),
                    params).rowcount:
                self._rollback()
                return False
            self._execute(self.sql(
                f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (:now, :who, 'token revoke', "
                "'', '', '', '', :name)"), params)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return True

    def request_removal(self, key: str, contact: str, message: str, client: str,
                        now: int) -> tuple[int, bool]:
        """Queue a removal request for ``key``: (its id, True) or, when one is
        pending already, (that one's id, False) and nothing is added."""
        params = {"key": key, "contact": contact, "message": message, "client": client,
                  "now": now}
        self._begin_write()
        try:
            pending = self._execute(self.sql(
                "SELECT id FROM removal_requests WHERE state = 'pending' AND key = :key"),
                params).fetchall()
            if pending:
                self._rollback()
                return int(pending[0][0]), False
            self._execute(self.sql(
                "INSERT INTO removal_requests (key, contact, message, client, at, state) "
                "VALUES (:key, :contact, :message, :client, :now, 'pending')"), params)
            made = self._execute(self.sql(
                "SELECT id FROM removal_requests WHERE state = 'pending' AND key = :key"),
                params).fetchall()
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return int(made[0][0]), True

    def removal_requests(self, state: str | None = "pending") -> list[RemovalRequest]:
        """Removal requests in one state (all when None), oldest first."""
        where = "WHERE state = :state" if state else ""
        return [RemovalRequest(*row) for row in self._execute(self.sql(
            f"SELECT {_REQUEST_COLUMNS} FROM removal_requests {where} ORDER BY id"),
            {"state": state}).fetchall()]

    def decide_removal(self, request_id: int, state: str, who: str,
                       now: int) -> RemovalRequest | None:
        """Mark a pending request approved or rejected; None when it is not pending.
        (Approving it does not remove the listing: the caller does, with the
        request as the reason.)"""
        params = {"id": request_id, "state": state, "who": who, "now": now}
        self._begin_write()
        try:
            if not self._execute(self.sql(
                    "UPDATE removal_requests SET state = :state, decided_at = :now, "
                    "decided_by = :who WHERE id = :id AND state = 'pending'"),
                    params).rowcount:
                self._rollback()
                return None
            row = self._execute(self.sql(
                f"SELECT {_REQUEST_COLUMNS} FROM removal_requests WHERE id = :id"),
                params).fetchall()[0]
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return RemovalRequest(*row)

    def set_analyst(self, name: str, password_hash: str, who: str, now: int) -> bool:
        """Add an analyst or set their password; True when new. Their sessions end."""
        params = {"name": name, "password": password_hash, "now": now, "who": who}
        self._begin_write()
        try:
            new = not self._execute(self.sql("SELECT 1 FROM analysts WHERE name = :name"),
                                    params).fetchall()
            self._execute(self.sql(
                "INSERT INTO analysts (name, password, created) VALUES (:name, :password, "
                ":now) ON CONFLICT (name) DO UPDATE SET password = excluded.password"),
                params)
            self._execute(self.sql("DELETE FROM sessions WHERE analyst = :name"), params)
            self._execute(self.sql(
                f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (:now, :who, :action, '', '', "
                "'', '', :name)"), {**params, "action": "analyst add" if new
                                    else "analyst password"})
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return new

    def analyst_password(self, name: str) -> str | None:
        rows = self._execute(self.sql("SELECT password FROM analysts WHERE name = :name"),
                             {"name": name}).fetchall()
        return str(rows[0][0]) if rows else None

    def start_session(self, digest: str, analyst: str, expires: int, now: int) -> None:
        self._begin_write()
        try:
            self._execute(self.sql("DELETE FROM sessions WHERE expires <= :now"), {"now": now})
            self._execute(self.sql("INSERT INTO sessions (digest, analyst, expires) VALUES "
                                   "(:digest, :analyst, :expires)"),
                          {"digest": digest, "analyst": analyst, "expires": expires})
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def session_analyst(self, digest: str, now: int) -> str | None:
        """The analyst of a live session, or None."""
        rows = self._execute(self.sql(
            "SELECT analyst FROM sessions WHERE digest = :digest AND expires > :now"),
            {"digest": digest, "now": now}).fetchall()
        return str(rows[0][0]) if rows else None

    def end_session(self, digest: str) -> None:
        self._execute(self.sql("DELETE FROM sessions WHERE digest = :digest"),
                      {"digest": digest})
        self._commit()

    def log_offset(self, path: str, inode: int) -> int:
        """How far the query log on device ``path``, ``inode``, was read already."""
        rows = self._execute(self.sql(
            "SELECT offset_ FROM sighting_files WHERE path = :path AND inode = :inode"),
            {"path": path, "inode": inode}).fetchall()
        return int(rows[0][0]) if rows else 0

    def add_sightings(self, seen: dict[tuple[str, int], list[Any]],
                      offsets: dict[tuple[str, int], int]) -> None:
        """Add what a read of query logs found (per (key, day): lookups, first,
        last, clients) and where each log was read up to, in one transaction."""
        self._begin_write()
        try:
            self._executemany(self.sql(
                "INSERT INTO sightings (key, day, lookups, first_at, last_at) VALUES "
                "(:key, :day, :lookups, :first, :last) ON CONFLICT (key, day) DO UPDATE SET "
                "lookups = sightings.lookups + excluded.lookups, "
                "first_at = CASE WHEN excluded.first_at < sightings.first_at "
                "THEN excluded.first_at ELSE sightings.first_at END, "
                "last_at = CASE WHEN excluded.last_at > sightings.last_at "
                "THEN excluded.last_at ELSE sightings.last_at END"),
                [{"key": key, "day": day, "lookups": lookups, "first": first, "last": last}
                 for (key, day), (lookups, first, last, _) in seen.items()])
            self._executemany(self.sql(
                "INSERT INTO sighting_resolvers (key, day, client) VALUES (:key, :day, "
                ":client) ON CONFLICT (key, day, client) DO NOTHING"),
                [{"key": key, "day": day, "client": client}
                 for (key, day), (_, _, _, clients) in seen.items() for client in clients])
            self._executemany(self.sql(
                "INSERT INTO sighting_files (path, inode, offset_) VALUES (:path, :inode, "
                ":offset) ON CONFLICT (path, inode) DO UPDATE SET offset_ = excluded.offset_"),
                [{"path": path, "inode": inode, "offset": offset}
                 for (path, inode), offset in offsets.items()])
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def sightings(self, keys: Sequence[str] = (), since_day: int = 0,
                  limit: int = 100) -> list[tuple[str, int, int, int, int]]:
        """(key, lookups, distinct resolvers, first, last) from ``since_day`` on,
        of these keys (all when none), the most looked-up first."""
        params: dict[str, Any] = {"since": since_day, "limit": limit}
        where = ""
        if keys:
            where = "AND s.key IN (" + ", ".join(f":k{i}" for i in range(len(keys))) + ")"
            params.update({f"k{i}": k for i, k in enumerate(keys)})
        rows = self._execute(self.sql(
            "SELECT s.key, SUM(s.lookups), (SELECT COUNT(DISTINCT r.client) FROM "
            "sighting_resolvers r WHERE r.key = s.key AND r.day >= :since), "
            f"MIN(s.first_at), MAX(s.last_at) FROM sightings s WHERE s.day >= :since {where} "
            "GROUP BY s.key ORDER BY 2 DESC, s.key LIMIT :limit"), params).fetchall()
        return [(key, int(n), int(r), int(f), int(la)) for key, n, r, f, la in rows]

    def sighting_days(self, key: str) -> list[tuple[int, int, int, int, int]]:
        """Per day of ``key``: (day, lookups, distinct resolvers, first, last)."""
        if self.read_only and self._schema_version() < 3:
            return []  # a read-only ledger of an older dnsbl: it has none
        rows = self._execute(self.sql(
            "SELECT s.day, s.lookups, (SELECT COUNT(*) FROM sighting_resolvers r "
            "WHERE r.key = s.key AND r.day = s.day), s.first_at, s.last_at "
            "FROM sightings s WHERE s.key = :key ORDER BY s.day"), {"key": key}).fetchall()
        return [tuple(int(v) for v in row) for row in rows]  # type: ignore[misc]

    def live_counts(self, now: int) -> list[tuple[str, str, int]]:
        """(category, source, live listings), and the pending removal requests
        as ('', '', n) first."""
        pending = self._execute("SELECT COUNT(*) FROM removal_requests "
                                "WHERE state = 'pending'").fetchall()[0][0]
        return [("", "", int(pending))] + [(c, s, int(n)) for c, s, n in self._execute(
            self.sql(f"SELECT category, source, COUNT(*) FROM listings WHERE {_ACTIVE} "
                     "GROUP BY category, source"), {"now": now}).fetchall()]

    def allowed(self) -> list[tuple[str, int, bytes, bytes, str, str, int]]:
        """The allowlist: (key, family, start, end, why, who, at), in key order."""
        if self.read_only and self._schema_version() < 2:
            return []  # a read-only ledger of an older dnsbl: it has none
        return [(key, family, bytes(start), bytes(end), why, who, at)
                for key, family, start, end, why, who, at in self._execute(self.sql(
                    "SELECT key, family, start_addr, end_addr, why, who, at FROM allowlist "
                    "ORDER BY family, start_addr, prefixlen")).fetchall()]

    def covering(self, key: Key) -> list[Listing]:
        """Every listing, live or not, whose network overlaps ``key``'s: the
        networks around an address and, for a network, those inside it."""
        rows = self._execute(self.sql(
            f"SELECT {_LISTING_COLUMNS} FROM listings WHERE family = :family "
            "AND start_addr <= :end AND end_addr >= :start "
            "ORDER BY prefixlen, key, category, source"),
            {"family": key.family, "start": key.start, "end": key.end}).fetchall()
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
        rows = self._execute(self.sql(f"SELECT {_AUDIT_COLUMNS} FROM audit {where} {order}"),
                             params).fetchall()
        entries = [AuditEntry(*row) for row in rows]
        return entries[::-1] if limit else entries

    def listings(self, now: int, *, category: str | None = None, source: str | None = None,
                 expiring_before: int | None = None, since: int | None = None,
                 seen_since: int | None = None, active: bool = True) -> Iterator[Listing]:
        """Listings by filter, in key order, streamed."""
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
               "ORDER BY family, start_addr, prefixlen, category, source")
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

"""One connection to the ledger's database: what a backend supplies, and the
few helpers every table's queries are written with.

:mod:`dnsbl.ledger.sqlite` and :mod:`dnsbl.ledger.postgres` fill in the
driver calls; :class:`dnsbl.ledger.store.Store` and the table classes
(:mod:`~dnsbl.ledger.access`, :mod:`~dnsbl.ledger.requests`,
:mod:`~dnsbl.ledger.sighted`) write their statements once, for both, on
these helpers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

AUDIT_COLUMNS = "at, who, action, key, category, source, why, details"


class Connection:
    """A ledger database connection. Subclasses connect and supply the dialect."""

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

    def busy(self, exc: BaseException) -> bool:
        """True for a driver error that means another writer held the ledger
        past ``lock_timeout``: the same request later may well succeed."""
        return False

    # -- shared ----------------------------------------------------------------------

    def sql(self, text: str) -> str:
        text = text.format(**self.types) if "{" in text else text
        if not self.named_style:
            text = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", text)
        return text

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Every row of a query written with ``:name`` placeholders."""
        return list(self._execute(self.sql(sql), params).fetchall())

    def change(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns how many rows it changed."""
        return int(self._execute(self.sql(sql), params).rowcount)

    def change_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        self._executemany(self.sql(sql), rows)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction, holding the writers' lock: committed when the
        block ends, rolled back when it raises."""
        self._begin_write()
        try:
            yield
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def audit(self, at: int, who: str, action: str, *, key: str = "", category: str = "",
              source: str = "", why: str = "", details: str = "") -> None:
        """Add one audit row, in the transaction under way (if any)."""
        self.change(f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (:at, :who, :action, :key, "
                    ":category, :source, :why, :details)",
                    {"at": at, "who": who, "action": action, "key": key,
                     "category": category, "source": source, "why": why, "details": details})

    def has_schema(self, version: int) -> bool:
        """False for a read-only ledger of an older dnsbl, without the tables of
        ``version`` (a writable one was migrated when opened)."""
        return not self.read_only or self._schema_version() >= version

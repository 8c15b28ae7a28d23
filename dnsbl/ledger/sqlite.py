"""The SQLite backend: one file, created on first use, written in WAL mode."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from dnsbl.ledger.model import LedgerError
from dnsbl.ledger.store import READ_ONLY, Store

_APPEND_ONLY = """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END"""


class SQLiteStore(Store):
    types = {"serial": "INTEGER", "blob": "BLOB", "bigint": "INTEGER",
             "append_only": _APPEND_ONLY}
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str, lock_timeout: float = 30.0) -> None:
        super().__init__(path)
        self.lock_timeout = lock_timeout
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise LedgerError(f"{path}: cannot create the ledger: no folder {folder}")
        target, self.read_only = _read_only_uri(path, folder) or (path, False)
        try:
            # isolation_level=None: no implicit transactions; BEGIN is ours.
            self._db = sqlite3.connect(target, timeout=lock_timeout, isolation_level=None,
                                       uri=self.read_only)
        except sqlite3.Error as exc:
            raise LedgerError(self.explain(exc)) from None
        try:
            if self.read_only:
                pass  # read-only: the mode is the writer's business
            elif self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                # Readers (publish, show) never wait for a writer, nor it for them.
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk
        except sqlite3.Error as exc:
            self._db.close()
            raise LedgerError(self.explain(exc)) from None

    def explain(self, exc: BaseException) -> str:
        """An sqlite3 error as one line that says what to do."""
        text = str(exc)
        if "locked" in text or "busy" in text:
            return (f"{self.url}: the ledger is locked by another process (waited "
                    f"{self.lock_timeout:g} s); try again when it has finished")
        if "readonly" in text or "read-only" in text:
            return f"{self.url}: {READ_ONLY}"
        if "full" in text:
            return f"{self.url}: the disk is full; nothing was changed"
        if "disk I/O error" in text:
            # A full disk often surfaces here, not as SQLITE_FULL: growing the
            # -shm or -wal file fails first (ENOSPC, EFBIG under a size limit).
            code = getattr(exc, "sqlite_errorname", "SQLITE_IOERR")
            return (f"{self.url}: a write to the ledger failed ({code}: the disk is full "
                    "or failing); nothing was changed")
        if "unable to open" in text:
            return f"{self.url}: cannot open the ledger (check the path and permissions)"
        if "not a database" in text:
            return f"{self.url}: is not an SQLite ledger"
        return f"{self.url}: {text}"

    def busy(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc))

    def _execute(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self._db.execute(sql, params or {})

    def _executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        self._db.executemany(sql, rows)

    def _begin(self) -> None:
        self._db.execute("BEGIN")

    def _begin_write(self) -> None:
        # IMMEDIATE: the write lock now (waiting up to lock_timeout), not at
        # the first write, where a second writer would fail instead of waiting.
        self._db.execute("BEGIN IMMEDIATE")

    def _stream(self, sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        yield from self._db.execute(sql, params)

    def _commit(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _set_schema_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version = {int(version)}")

    def close(self) -> None:
        self._db.close()


def _read_only_uri(path: str, folder: str) -> tuple[str, bool] | None:
    """How to open a ledger this process cannot write, so that reading it
    (show, list, export) still works; None when it can write it.

    A WAL database is read through its ``-shm`` file: where that is missing and
    cannot be created (the folder is not ours), nobody has the ledger open, and
    it is opened immutable, which needs neither ``-shm`` nor ``-wal``. Writes
    then fail as on any read-only database, with one message.
    """
    if not os.path.exists(path) or (os.access(path, os.W_OK) and os.access(folder, os.W_OK)):
        return None
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    if not os.access(folder, os.W_OK) and not os.path.exists(path + "-shm"):
        uri += "&immutable=1"
    return uri, True

"""The PostgreSQL backend (psycopg 3): a ledger shared by many analysts and teams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from dnsbl.ledger.model import LedgerError, Report
from dnsbl.ledger.store import STAGED, STAGED_COLUMNS, Store, staged_rows

try:
    import psycopg
except ImportError:  # an optional dependency: pip install 'dnsbl[postgresql]'
    psycopg = None  # type: ignore[assignment]

_APPEND_ONLY = """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit table is append-only'; END $$;;
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"""
#: Every writer takes this transaction-level advisory lock first, so two
#: imports at once run one after the other and lose no update.
_WRITERS_LOCK = 0x64_6E_73_62_6C  # "dnsbl"


class PostgresStore(Store):
    types = {"serial": "BIGSERIAL", "blob": "BYTEA", "bigint": "BIGINT",
             "append_only": _APPEND_ONLY}
    named_style = False

    def __init__(self, url: str, lock_timeout: float = 30.0) -> None:
        super().__init__(url)
        if psycopg is None:
            raise LedgerError("a postgresql:// ledger needs psycopg 3: "
                              "pip install 'dnsbl[postgresql]'")
        self.errors = (psycopg.Error,)
        self.lock_timeout = lock_timeout
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
            # Waits for a row or the writers' lock give up, with a message, after this.
            self._db.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")
            self._db.execute("CREATE TABLE IF NOT EXISTS dnsbl_schema (version INTEGER)")
        except psycopg.Error as exc:
            raise LedgerError(self.explain(exc)) from None

    def explain(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = self.url.split("@")[-1]  # never a password in a message
        if "lock timeout" in text or "could not obtain lock" in text:
            return (f"{where}: the ledger is locked by another writer (waited "
                    f"{self.lock_timeout:g} s); try again when it has finished")
        if "read-only" in text:
            return f"{where}: the ledger is read-only here; nothing was changed"
        if "No space left" in text or "disk full" in text:
            return f"{where}: the database server's disk is full; nothing was changed"
        return f"{where}: {text}"

    def busy(self, exc: BaseException) -> bool:
        text = str(exc)
        return "lock timeout" in text or "could not obtain lock" in text

    def _execute(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self._db.execute(sql, params or None)

    def _executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(sql, rows)

    def stage(self, reports: Iterable[Report]) -> int:
        """COPY into a plain table, then keep the newest report of each key,
        category and source: many times faster than row-by-row upserts."""
        self._execute(self.sql(STAGED))
        self._execute("CREATE TEMPORARY TABLE IF NOT EXISTS staged_raw "
                      "(LIKE staged INCLUDING DEFAULTS)")
        self._execute("TRUNCATE staged, staged_raw")
        columns = ", ".join(STAGED_COLUMNS)
        count = 0
        with self._db.cursor() as cursor:
            with cursor.copy(f"COPY staged_raw ({columns}) FROM STDIN") as copy:
                for row in staged_rows(reports):
                    copy.write_row(row)
                    count += 1
        self._execute(f"INSERT INTO staged ({columns}) SELECT DISTINCT ON "
                      f"(key, category, source) {columns} FROM staged_raw "
                      "ORDER BY key, category, source, seen DESC")
        self._execute("TRUNCATE staged_raw")
        return count

    def _begin(self) -> None:
        self._db.execute("BEGIN")

    def _begin_write(self) -> None:
        self._db.execute("BEGIN")
        self._db.execute(f"SELECT pg_advisory_xact_lock({_WRITERS_LOCK})")

    def _stream(self, sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        # A server-side cursor needs a transaction; it is read-only.
        with self._db.transaction():
            with self._db.cursor(name="dnsbl_stream") as cursor:
                cursor.itersize = 10000
                cursor.execute(sql, params)
                yield from cursor  # bytea comes back as bytes

    def _commit(self) -> None:
        if self._db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._db.execute("COMMIT")

    def _rollback(self) -> None:
        if self._db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._db.execute("ROLLBACK")

    def _schema_version(self) -> int:
        row = self._db.execute("SELECT max(version) FROM dnsbl_schema").fetchone()
        return int(row[0] or 0) if row else 0

    def _set_schema_version(self, version: int) -> None:
        self._db.execute("INSERT INTO dnsbl_schema (version) VALUES (%(v)s)", {"v": version})

    def close(self) -> None:
        self._db.close()

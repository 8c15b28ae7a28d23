"""Who may use the web application: API tokens, analysts and their sessions,
as kept in the ledger (schema v3)."""

from __future__ import annotations

import secrets

from dnsbl.ledger.connection import Connection
from dnsbl.ledger.model import LedgerError, Token
from dnsbl.ledger.tokens import new_token

_TOKEN_COLUMNS = "name, digest, sources, read_only, created, expires, revoked, who"


class Access:
    """The tokens, analysts and sessions tables on one ledger connection."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    # -- API tokens --------------------------------------------------------------------

    def add_token(self, token: Token) -> None:
        """Keep a new token (its digest only).

        :raises LedgerError: when a token of that name exists.
        """
        params = token.as_row()
        with self.db.writing():
            if self.db.rows("SELECT 1 FROM tokens WHERE name = :name", params):
                raise LedgerError(f"a token named {token.name!r} exists; choose another "
                                  "--name or revoke it")
            self.db.change(
                "INSERT INTO tokens (name, digest, sources, read_only, created, expires, "
                "revoked, who) VALUES (:name, :digest, :sources, :read_only, :created, "
                ":expires, :revoked, :who)", params)
            self.db.audit(token.created, token.who, "token create", source=token.sources,
                          details=token.name)

    def create_token(self, name: str, sources: tuple[str, ...], read_only: bool,
                     expires: int | None, who: str, now: int) -> tuple[str, Token]:
        """Make and keep a token (``SOURCE-xxxxxx`` when ``name`` is empty); returns
        its secret, to be shown once, and its record.

        :raises LedgerError: for a name or source a token cannot have, or a name taken.
        """
        name = name or f"{sources[0] if sources else 'token'}-{secrets.token_hex(3)}"
        secret, token = new_token(name, sources, read_only, now, expires, who)
        self.add_token(token)
        return secret, token

    def tokens(self) -> list[Token]:
        """Every token, revoked ones too, by name."""
        return [Token(*row) for row in self.db.rows(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY name")]

    def token_by_digest(self, digest: str) -> Token | None:
        rows = self.db.rows(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE digest = :digest",
                            {"digest": digest})
        return Token(*rows[0]) if rows else None

    def revoke_token(self, name: str, who: str, now: int) -> bool:
        """Revoke the token ``name``; False when there is no live one of that name."""
        with self.db.writing():
            if not self.db.change(
                    "UPDATE tokens SET revoked = :now WHERE name = :name AND revoked IS NULL",
                    {"name": name, "now": now}):
                return False
            self.db.audit(now, who, "token revoke", details=name)
        return True

    # -- analysts and their sessions ---------------------------------------------------

    def set_analyst(self, name: str, password_hash: str, who: str, now: int) -> bool:
        """Add an analyst or set their password; True when new. Their sessions end."""
        params = {"name": name, "password": password_hash, "now": now}
        with self.db.writing():
            new = not self.db.rows("SELECT 1 FROM analysts WHERE name = :name", params)
            self.db.change(
                "INSERT INTO analysts (name, password, created) VALUES (:name, :password, "
                ":now) ON CONFLICT (name) DO UPDATE SET password = excluded.password", params)
            self.db.change("DELETE FROM sessions WHERE analyst = :name", params)
            self.db.audit(now, who, "analyst add" if new else "analyst password",
                          details=name)
        return new

    def analyst_password(self, name: str) -> str | None:
        rows = self.db.rows("SELECT password FROM analysts WHERE name = :name", {"name": name})
        return str(rows[0][0]) if rows else None

    def start_session(self, digest: str, analyst: str, expires: int, now: int) -> None:
        with self.db.writing():
            self.db.change("DELETE FROM sessions WHERE expires <= :now", {"now": now})
            self.db.change("INSERT INTO sessions (digest, analyst, expires) VALUES "
                           "(:digest, :analyst, :expires)",
                           {"digest": digest, "analyst": analyst, "expires": expires})

    def session_analyst(self, digest: str, now: int) -> str | None:
        """The analyst of a live session, or None."""
        rows = self.db.rows(
            "SELECT analyst FROM sessions WHERE digest = :digest AND expires > :now",
            {"digest": digest, "now": now})
        return str(rows[0][0]) if rows else None

    def end_session(self, digest: str) -> None:
        with self.db.writing():
            self.db.change("DELETE FROM sessions WHERE digest = :digest", {"digest": digest})

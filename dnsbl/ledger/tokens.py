"""API tokens: made here, shown once, kept as a SHA-256 digest.

A token is 32 random bytes: nobody guesses or brute-forces it, so a fast
digest is the standard way to keep it (a password hash only slows down a
search of a small space, which a token does not have).
"""

from __future__ import annotations

import hashlib
import secrets

from dnsbl.ledger.model import LedgerError, Token

#: Every token starts so: a leaked one is recognizable in logs and scanners.
PREFIX = "dnsbl_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def new_token(name: str, sources: tuple[str, ...], read_only: bool, created: int,
              expires: int | None, who: str) -> tuple[str, Token]:
    """A fresh secret and the record that keeps its digest.

    :raises LedgerError: for a name or source a token cannot have.
    """
    if not name or any(c.isspace() or c == "," for c in name):
        raise LedgerError(f"a token name is one word without commas, not {name!r}")
    if not sources or any(not s or "," in s or s.strip() != s for s in sources):
        raise LedgerError("a token needs one or more --source, each without commas or spaces")
    secret = PREFIX + secrets.token_urlsafe(32)
    return secret, Token(name, digest(secret), ",".join(sources), int(read_only), created,
                         expires, None, who)

"""Analysts' passwords: scrypt (the standard library's), salted, checked in
constant time. A password is guessable where a token is not, so it gets a
slow, memory-hard hash rather than a plain digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# 16 MiB and some tens of milliseconds per check: slow for a guesser, fine for a login.
_N, _R, _P = 2**14, 8, 1
#: Checked when the analyst does not exist, so a wrong name takes as long as a
#: wrong password and the time tells nothing.
_DUMMY = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; False too when stored is None."""
    try:
        _, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(digest) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest) and stored is not None

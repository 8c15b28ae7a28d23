"""What a listing is: its key, its fields and their limits, and the errors about them."""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

#: The longest reason that is kept: a TXT string holds 255 bytes.
MAX_REASON = 255
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class LedgerError(Exception):
    """A request the ledger refuses; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Key:
    """A listed address or network, normalized: ``10.0.0.0/24``, ``192.0.2.1``,
    ``2001:db8::/48`` (a single address has no length)."""

    text: str
    family: int  # 4 or 6
    prefixlen: int
    start: bytes  # first and last address, packed: ordered by value within a family
    end: bytes

    @property
    def cidr(self) -> str:
        """The key with its length always written: what the zone files take."""
        return self.text if "/" in self.text else f"{self.text}/{self.prefixlen}"


def parse_key(text: str) -> Key:
    """``"192.0.2.1"`` -> Key; ``"10.0.0.0/24"`` -> Key; ``"2001:DB8::/32"`` ->
    ``2001:db8::/32``. A ``/32`` (``/128``) is the single address.

    :raises LedgerError: ``bad address '10.0.0.0/33'``, or ``host bits set in
        '10.0.0.1/24' (the network is 10.0.0.0/24)`` - never masked silently.
    """
    text = text.strip()
    if ":" not in text:  # IPv4, the bulk of every feed: without ipaddress objects
        return _parse_ip4(text)
    try:
        if "/" not in text:
            address = ipaddress.ip_address(text)
            packed = address.packed
            return Key(str(address), address.version, len(packed) * 8, packed, packed)
        network = ipaddress.ip_network(text)
    except ValueError:
        try:
            masked = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise LedgerError(f"bad address {text!r}") from None
        raise LedgerError(f"host bits set in {text!r} (the network is {masked})") from None
    if network.num_addresses == 1:
        address = network.network_address
        return Key(str(address), network.version, network.prefixlen, address.packed,
                   address.packed)
    return Key(str(network), network.version, network.prefixlen,
               network.network_address.packed, network.broadcast_address.packed)


def _parse_ip4(text: str) -> Key:
    address, slash, length = text.partition("/")
    try:
        # inet_pton takes dotted quads only: no "10.1", no leading zeros.
        packed = socket.inet_pton(socket.AF_INET, address)
    except OSError:
        raise LedgerError(f"bad address {text!r}") from None
    if not slash:
        return Key(address, 4, 32, packed, packed)
    if (not (length.isascii() and length.isdigit()) or int(length) > 32
            or (length[0] == "0" and length != "0")):
        raise LedgerError(f"bad address {text!r}")
    prefixlen = int(length)
    value = int.from_bytes(packed, "big")
    host = (1 << (32 - prefixlen)) - 1
    if value & host:
        network = socket.inet_ntop(socket.AF_INET, (value & ~host).to_bytes(4, "big"))
        raise LedgerError(f"host bits set in {text!r} (the network is {network}/{prefixlen})")
    if prefixlen == 32:
        return Key(address, 4, 32, packed, packed)
    return Key(f"{address}/{prefixlen}", 4, prefixlen, packed, (value | host).to_bytes(4, "big"))


def parse_reason(text: str) -> str:
    """A reason as published: one line, at most 255 bytes of UTF-8.

    :raises LedgerError: for a longer one, or one with a line break.
    """
    if "\n" in text or "\r" in text:
        raise LedgerError("a reason must be one line")
    if len(text.encode()) > MAX_REASON:
        raise LedgerError(f"reason is {len(text.encode())} bytes; at most {MAX_REASON}")
    return text


def parse_confidence(value: object) -> int:
    """0..100, as an int.

    :raises LedgerError: for anything else.
    """
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if not 0 <= number <= 100:
        raise LedgerError(f"confidence must be a whole number from 0 to 100, not {value!r}")
    return number


def parse_duration(text: str) -> int:
    """``"7d"`` -> 604800 seconds; units s, m, h, d, w.

    :raises LedgerError: for anything else.
    """
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise LedgerError(f"bad duration {text!r} (e.g. 12h, 7d, 4w)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_when(text: str) -> int:
    """A moment as Unix seconds from ISO 8601 (``2026-12-01``,
    ``2026-12-01T10:00:00Z``, naive means UTC) or Unix seconds.

    :raises LedgerError: for anything else.
    """
    text = text.strip()
    if text.isascii() and text.isdigit():  # not "¹", which int() refuses
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LedgerError(f"bad time {text!r} (e.g. 2026-12-01 or 2026-12-01T10:00:00Z)") \
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_expiry(text: str, now: int) -> int:
    """``"7d"`` (from now) or a date -> Unix seconds, which must lie in the future.

    :raises LedgerError: for a bad value or one in the past.
    """
    when = now + parse_duration(text) if _DURATION.match(text.strip().lower()) \
        else parse_when(text)
    if when <= now:
        raise LedgerError(f"expiry {text!r} is in the past")
    return when


def iso(seconds: int | None) -> str:
    """Unix seconds -> ``2026-12-01T10:00:00Z``; None -> ``""``."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> int:
    return int(time.time())


@dataclass(slots=True)
class Report:
    """One report of a key: what ``add`` and every import line give the store."""

    key: Key
    category: str
    source: str
    reason: str
    seen: int  # when the evidence is from: first and last seen for a new listing
    expires: int
    ref: str = ""
    confidence: int = 100
    first_seen: int | None = None  # kept as given by an export being imported
    forced: bool = False
    entered_by: str = ""


@dataclass(frozen=True, slots=True)
class Listing:
    """One source's record of a key in a category, as stored."""

    key: str
    category: str
    source: str
    reason: str
    ref: str
    confidence: int
    first_seen: int
    last_seen: int
    expires: int
    entered_by: str
    removed_at: int | None
    forced: bool

    def active(self, at: int) -> bool:
        return self.removed_at is None and self.expires > at

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, times in ISO 8601 UTC."""
        return {"key": self.key, "category": self.category, "source": self.source,
                "reason": self.reason, "ref": self.ref, "confidence": self.confidence,
                "first_seen": iso(self.first_seen), "last_seen": iso(self.last_seen),
                "expires": iso(self.expires), "entered_by": self.entered_by,
                "removed_at": iso(self.removed_at) or None, "forced": self.forced}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change, as the append-only audit table keeps it."""

    at: int
    who: str
    action: str  # add, extend, relist, remove, force, import, publish, allow
    key: str
    category: str
    source: str
    why: str
    details: str

    def as_dict(self) -> dict[str, object]:
        return {"at": iso(self.at), "who": self.who, "action": self.action, "key": self.key,
                "category": self.category, "source": self.source, "why": self.why,
                "details": self.details}


@dataclass(frozen=True)
class Token:
    """An API token as kept: its name and the SHA-256 of its secret, never the secret."""

    name: str
    digest: str
    sources: str  # comma-separated: the sources it may write
    read_only: int
    created: int
    expires: int | None
    revoked: int | None
    who: str

    @property
    def source_list(self) -> tuple[str, ...]:
        return tuple(s for s in self.sources.split(",") if s)

    def live(self, at: int) -> bool:
        return self.revoked is None and (self.expires is None or self.expires > at)

    def as_row(self) -> dict[str, object]:
        return {"name": self.name, "digest": self.digest, "sources": self.sources,
                "read_only": int(self.read_only), "created": self.created,
                "expires": self.expires, "revoked": self.revoked, "who": self.who}

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "sources": list(self.source_list),
                "read_only": bool(self.read_only), "created": iso(self.created),
                "expires": iso(self.expires), "revoked": iso(self.revoked), "who": self.who}


@dataclass(frozen=True)
class RemovalRequest:
    """A request from the public lookup page to remove a listing."""

    id: int
    key: str
    contact: str
    message: str
    client: str
    at: int
    state: str  # pending, approved, rejected
    decided_at: int | None
    decided_by: str | None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "key": self.key, "contact": self.contact,
                "message": self.message, "at": iso(self.at), "state": self.state,
                "decided_at": iso(self.decided_at), "decided_by": self.decided_by or ""}

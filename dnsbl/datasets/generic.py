"""Plain records: generic (rbldnsd's generic.c), A, TXT and MX records at
names of the zone (``@`` the apex)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import NamedTuple

from dnsbl.datasets.base import Counter, Dataset, Parsed, parents
from dnsbl.wire import QNAME_PTR, TYPE_A, TYPE_MX, TYPE_TXT, rr_tail
from dnsbl.zonefile import MAX_TXT, DatasetReader, Entry, digits, domain_name, parse_time

#: Record types a generic dataset takes, by name.
GENERIC_RECORD_TYPES = {"A": TYPE_A, "MX": TYPE_MX, "TXT": TYPE_TXT}


class RecordEntry(NamedTuple):
    """A record: its name in the zone (``""`` the apex), type, TTL and rdata
    (wire form)."""

    name: str
    rtype: int
    ttl: int
    rdata: bytes


class GenericDataset(Dataset):
    """Plain A, TXT and MX records at names of the zone (``""`` is the apex),
    pre-packed to answer the question's name."""

    family = "generic"

    @classmethod
    def read_line(cls, reader: DatasetReader, path: str, lineno: int,
                  line: str) -> Iterator[Entry]:
        """``name [ttl] A|TXT|MX value``, ``@`` for the apex: yields
        (name, record type, (ttl or None, rdata), file, line)."""
        try:
            owner, rest = line.split(None, 1)
            name = "" if owner == "@" else owner.lower().rstrip(".")
            if name and any(not 0 < len(label) < 64 for label in name.split(".")):
                raise ValueError(f"bad name {owner!r}")
            ttl = None
            if digits(rest[:1]):
                ttl_text, rest = rest.split(None, 1)
                ttl = parse_time(ttl_text)
            # No TTL, or 0: the $TTL in force at this line (rbldnsd's $TTL is
            # positional in generic data); None: none yet, the default TTL.
            ttl = ttl or reader.ttl or None
            type_text, value = rest.split(None, 1)
            rtype = GENERIC_RECORD_TYPES.get(type_text.upper())
            if rtype is None:
                raise ValueError(f"unsupported type {type_text!r} (A, TXT and MX are)")
            rdata = _generic_rdata(rtype, value.strip())
        except ValueError as exc:
            reason = str(exc) if "unpack" not in str(exc) else "expected name [ttl] type value"
            reader.warn(path, lineno, f"invalid record: {reason}")
            return
        yield (name, rtype, (ttl, rdata), path, lineno)  # type: ignore[misc]

    @classmethod
    def collect(cls, reader: DatasetReader, default_ttl: int) -> Parsed:
        # A generic entry carries (ttl, rdata) where others carry a Value;
        # its ttl is None where no $TTL came before it.
        count = Counter(reader)
        records = []
        for name, rtype, record, path, lineno in reader.entries():
            count.one(path, lineno)
            ttl, rdata = record  # type: ignore[misc]
            records.append((name, rtype, default_ttl if ttl is None else ttl, rdata))
        return cls._parsed(reader, default_ttl, [None], records=records)

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        self.records: dict[str, dict[int, list[bytes]]] = {}
        for name, rtype, ttl, rdata in parsed.records:
            rr = QNAME_PTR + rr_tail(rtype, ttl, rdata)
            by_type = self.records.setdefault(name, {})
            if rr not in by_type.setdefault(rtype, []):
                by_type[rtype].append(rr)
        self.parents = frozenset(p for name in self.records for p in parents(name))
        self.listed = len(parsed.records)
        self._records = parsed.records


    def entries(self) -> Iterator[RecordEntry]:
        for name, rtype, ttl, rdata in self._records:
            yield RecordEntry(name, rtype, ttl, rdata)


def _generic_rdata(rtype: int, text: str) -> bytes:
    """The wire rdata of a generic record's value."""
    if rtype == TYPE_A:
        return ipaddress.IPv4Address(text).packed
    if rtype == TYPE_TXT:
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        raw = text.encode("latin-1")[:MAX_TXT]
        return bytes((len(raw),)) + raw
    preference, _, host = text.partition(" ")
    if not digits(preference) or int(preference) > 65535 or not host.strip():
        raise ValueError(f"bad MX value {text!r}: expected preference and host")
    return int(preference).to_bytes(2, "big") + _name_wire(host.strip())


def _name_wire(name: str) -> bytes:
    out = b""
    for label in domain_name(name).split("."):
        out += bytes((len(label),)) + label.encode("ascii")
    return out + b"\0"

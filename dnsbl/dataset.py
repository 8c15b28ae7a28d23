"""Datasets: the in-memory index of one rbldnsd dataset, built from its files.

``lookup(packed_ipv4)`` returns the matching :class:`~dnsbl.zonefile.Value` or
``None``. Answer records are pre-packed into each value at load time.
"""

from __future__ import annotations

import ipaddress
import struct
from array import array
from bisect import bisect_left
from collections.abc import Sequence

import pytricia

from dnsbl.wire import CLASS_IN, QNAME_PTR, TYPE_A, TYPE_TXT, rr_tail, txt_rdata
from dnsbl.zonefile import NS, SOA, DatasetReader, Value, ZoneFileError


class Dataset:
    """Loaded data of one dataset plus what its files said about the zone."""

    kind: str
    paths: tuple[str, ...]
    entries: int  # listed blocks
    exclusions: int

    def __init__(self, reader: DatasetReader, ttl: int) -> None:
        # Called once the reader is exhausted: the directives are known only then.
        self.kind = reader.kind
        self.paths = reader.paths
        self.ttl = ttl
        self.soa: SOA | None = reader.soa
        self.ns: NS | None = reader.ns
        self.timestamp = reader.timestamp
        self.expires = reader.expires
        self.mtime = reader.mtime
        self.signature = tuple(reader.signatures)  # the files as they were read
        self.warnings: list[ZoneFileError] = reader.warnings

    def lookup(self, ip: bytes) -> Value | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self, ip: bytes) -> str | None:  # pragma: no cover - abstract
        """The listed block that matches ``ip``, e.g. ``"192.0.2.0/24"``; None if none."""
        raise NotImplementedError


class IP4Trie(Dataset):
    """ip4set / ip4trie: CIDR blocks in a Patricia trie; the longest prefix wins."""

    def __init__(self, reader: DatasetReader, ttl: int) -> None:
        trie = pytricia.PyTricia(32)
        insert = trie.insert
        has_key = trie.has_key  # exact match; len() would walk the whole trie
        exclusions = []
        listed = 0
        for net, bits, value, path, lineno in reader.entries():
            if value is None:
                exclusions.append((net, bits))
                continue
            key = net.to_bytes(4, "big")
            if has_key((key, bits)):
                reader.warnings.append(ZoneFileError(
                    path, lineno, f"duplicate entry {_cidr(net, bits)}, the later value is used"))
            else:
                listed += 1
            insert(key, bits, value)
        # Exclusions go in last so that "!x" beats a listing of exactly x in any order.
        for net, bits in exclusions:
            insert(net.to_bytes(4, "big"), bits, None)
        # Not frozen: freeze() holds the GIL for a quarter second per million
        # entries (stalling queries during a reload) and costs memory. Nothing
        # writes to the trie after this point.
        self._trie = trie
        self.entries = listed
        self.exclusions = len(exclusions)
        self.lookup = trie.get  # type: ignore[method-assign]
        super().__init__(reader, ttl)

    def explain(self, ip: bytes) -> str | None:
        return self._trie.get_key(ip) if self._trie.get(ip) is not None else None


class IP4TSet(Dataset):
    """ip4tset: single addresses sharing one value, in a sorted array (4 bytes each)."""

    def __init__(self, reader: DatasetReader, ttl: int) -> None:
        addrs = array("I", sorted({net for net, _bits, _v, _p, _l in reader.entries()}))
        self._addrs = addrs
        self._value = reader.finish_tset()
        self.entries = len(addrs)
        self.exclusions = 0
        super().__init__(reader, ttl)

    def lookup(self, ip: bytes) -> Value | None:
        key = int.from_bytes(ip, "big")
        addrs = self._addrs
        i = bisect_left(addrs, key)
        if i < len(addrs) and addrs[i] == key:
            return self._value
        return None

    def explain(self, ip: bytes) -> str | None:
        return f"{ipaddress.IPv4Address(ip)}/32" if self.lookup(ip) is not None else None


_TYPES: dict[str, type[Dataset]] = {"ip4set": IP4Trie, "ip4trie": IP4Trie, "ip4tset": IP4TSet}


def load_dataset(kind: str, paths: Sequence[str], default_ttl: int) -> Dataset:
    """Read and index one dataset.

    :raises ZoneFileError: when a file cannot be loaded at all; bad lines are
        in the result's ``warnings`` instead.
    """
    reader = DatasetReader(kind, paths)
    # The TTL is only known after reading ($TTL may come anywhere), so build first.
    dataset = _TYPES[kind](reader, default_ttl)
    dataset.ttl = reader.ttl if reader.ttl is not None else default_ttl
    _prepack(reader.finish_values(), dataset.ttl)
    return dataset


def _prepack(values: list[Value], ttl: int) -> None:
    for value in values:
        value.a_rr = QNAME_PTR + rr_tail(TYPE_A, ttl, value.a)
        value.txt_head = QNAME_PTR + struct.pack(">HHI", TYPE_TXT, CLASS_IN, ttl)
        if value.txt is not None and len(value.txt) == 1:
            value.txt_rr = QNAME_PTR + rr_tail(TYPE_TXT, ttl, txt_rdata(value.txt[0][:255]))
        else:
            value.txt_rr = None


def _cidr(net: int, bits: int) -> str:
    return f"{ipaddress.IPv4Address(net)}/{bits}"

"""Datasets: the in-memory index of one rbldnsd dataset, built from its files.

``lookup(packed_ipv4)`` returns the matching :class:`~dnsbl.zonefile.Value` or
``None``. Answer records are pre-packed into each value at load time.
"""

from __future__ import annotations

import ipaddress
import struct
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence

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


class _Addresses:
    """Single IPv4 addresses in a sorted ``array('I')`` (4 bytes each) with an
    index of where each top-16-bit block starts (256 KiB), so a lookup is a
    short bisect in C instead of a walk down a trie."""

    __slots__ = ("keys", "starts")

    def __init__(self, keys: list[int]) -> None:  # sorted, unique
        self.keys = array("I", keys)
        counts = [0] * 65537
        for key in keys:
            counts[(key >> 16) + 1] += 1
        for i in range(1, 65537):
            counts[i] += counts[i - 1]
        self.starts = array("I", counts)

    def __len__(self) -> int:
        return len(self.keys)

    def finder(self) -> Callable[[int], int]:
        """``find(key)`` -> position of ``key``, or -1."""

        def find(key: int, keys: array[int] = self.keys, starts: array[int] = self.starts,
                 bisect: Callable[..., int] = bisect_left) -> int:
            top = key >> 16
            lo, hi = starts[top], starts[top + 1]
            if lo == hi:
                return -1
            i = bisect(keys, key, lo, hi)
            return i if i < hi and keys[i] == key else -1

        return find


class IP4Trie(Dataset):
    """ip4set / ip4trie: the longest prefix wins.

    Single addresses, the bulk of real lists, sit in :class:`_Addresses` with a
    parallel array of value numbers (8 bytes an entry); blocks sit in a
    Patricia trie. A /32 is the longest prefix there is, so an address found in
    the array needs no trie lookup.
    """

    def __init__(self, reader: DatasetReader, ttl: int) -> None:
        trie = pytricia.PyTricia(32)
        insert = trie.insert
        has_key = trie.has_key
        numbers: dict[Value, int] = {}
        values: list[Value | None] = [None]  # number 0: excluded
        singles: dict[int, int] = {}  # address -> value number, while loading
        exclusions = []
        for net, bits, value, path, lineno in reader.entries():
            if bits == 32:
                if value is None:
                    singles[net] = 0
                    continue
                number = numbers.get(value)
                if number is None:
                    number = numbers[value] = len(values)
                    values.append(value)
                old = singles.get(net)
                if old is not None:
                    _duplicate(reader, path, lineno, net, bits)
                    if old == 0:
                        continue  # an exclusion of exactly this address wins
                singles[net] = number
                continue
            if value is None:
                exclusions.append((net, bits))
                continue
            key = net.to_bytes(4, "big")
            if has_key((key, bits)):
                _duplicate(reader, path, lineno, net, bits)
            insert(key, bits, value)
        # Exclusions go in last so that "!x" beats a listing of exactly x in any order.
        for net, bits in exclusions:
            insert(net.to_bytes(4, "big"), bits, None)
        # The trie is not frozen: freeze() holds the GIL for a quarter second per
        # million entries (stalling queries during a reload) and costs memory.
        # Nothing writes to it after this point.
        order = sorted(singles)
        self._addresses = _Addresses(order)
        self._numbers = array("I", [singles[a] for a in order])
        del singles
        self._values = values
        self._trie = trie
        blocks = len(trie)  # walks the trie: once, here
        excluded_singles = self._numbers.count(0)
        self.entries = len(order) - excluded_singles + blocks - len(set(exclusions))
        self.exclusions = excluded_singles + len(set(exclusions))
        self.lookup = self._make_lookup(blocks > 0)  # type: ignore[method-assign,assignment]
        super().__init__(reader, ttl)

    def _make_lookup(self, has_blocks: bool) -> Callable[[bytes], Value | None]:
        find = self._addresses.finder()
        numbers, values, trie_get = self._numbers, self._values, self._trie.get
        from_bytes = int.from_bytes

        def lookup(ip: bytes) -> Value | None:
            i = find(from_bytes(ip, "big"))
            if i >= 0:
                return values[numbers[i]]
            return trie_get(ip) if has_blocks else None

        return lookup

    def explain(self, ip: bytes) -> str | None:
        if self.lookup(ip) is None:
            return None
        if self._addresses.finder()(int.from_bytes(ip, "big")) >= 0:
            return f"{ipaddress.IPv4Address(ip)}/32"
        return self._trie.get_key(ip)


class IP4TSet(Dataset):
    """ip4tset: single addresses sharing one value, in :class:`_Addresses`."""

    def __init__(self, reader: DatasetReader, ttl: int) -> None:
        self._addresses = _Addresses(sorted({net for net, *_rest in reader.entries()}))
        self._value = reader.finish_tset()
        self.entries = len(self._addresses)
        self.exclusions = 0
        find = self._addresses.finder()
        value = self._value
        from_bytes = int.from_bytes

        def lookup(ip: bytes) -> Value | None:
            return value if find(from_bytes(ip, "big")) >= 0 else None

        self.lookup = lookup  # type: ignore[method-assign,assignment]
        super().__init__(reader, ttl)

    def explain(self, ip: bytes) -> str | None:
        return f"{ipaddress.IPv4Address(ip)}/32" if self.lookup(ip) is not None else None


def _duplicate(reader: DatasetReader, path: str, lineno: int, net: int, bits: int) -> None:
    reader.warnings.append(ZoneFileError(
        path, lineno, f"duplicate entry {_cidr(net, bits)}, the later value is used"))


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

"""Datasets: the in-memory index of one rbldnsd dataset, built from its files.

Building has two steps. :func:`parse_dataset` reads the files into
:class:`Parsed`, compact and picklable, so a reload can run it in another
process; :func:`index_dataset` turns that into a :class:`Dataset`, whose
``lookup(packed_ipv4)`` returns the matching :class:`~dnsbl.zonefile.Value` or
``None``. Answer records are pre-packed into each value.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import struct
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pytricia

from dnsbl.wire import CLASS_IN, QNAME_PTR, TYPE_A, TYPE_TXT, rr_tail, txt_rdata
from dnsbl.zonefile import NS, SOA, DatasetReader, Signature, Value, ZoneFileError


@dataclass
class Parsed:
    """A dataset as read from its files: directives, and entries as flat data.

    ``values[0]`` is ``None``: value number 0 means "excluded".
    """

    kind: str
    paths: tuple[str, ...]
    ttl: int
    soa: SOA | None
    ns: NS | None
    timestamp: int | None
    expires: int | None
    mtime: float
    signature: tuple[Signature, ...]
    warnings: list[ZoneFileError]
    values: list[Value | None]
    singles: bytes = b""  # sorted addresses, array("I") bytes
    numbers: bytes = b""  # their value numbers, array("I") bytes
    blocks: list[tuple[int, int, int]] = field(default_factory=list)  # net, bits, number


def parse_dataset(kind: str, paths: Sequence[str], default_ttl: int) -> Parsed:
    """Read one dataset's files.

    :raises ZoneFileError: when a file cannot be loaded at all; bad lines are
        in the result's ``warnings`` instead.
    """
    reader = DatasetReader(kind, paths)
    numbers: dict[Value, int] = {}
    values: list[Value | None] = [None]
    singles: dict[int, int] = {}  # address -> value number
    blocks: dict[tuple[int, int], int] = {}  # (net, bits) -> value number
    for net, bits, value, path, lineno in reader.entries():
        if value is None:
            number = 0
        else:
            number = numbers.get(value, -1)
            if number < 0:
                number = numbers[value] = len(values)
                values.append(value)
        table: dict = singles if bits == 32 else blocks
        key = net if bits == 32 else (net, bits)
        old = table.get(key)
        if old is not None:
            if number and old:
                reader.warnings.append(ZoneFileError(
                    path, lineno, f"duplicate entry {_cidr(net, bits)}, the later value is used"))
            elif not old:
                continue  # an exclusion of exactly this prefix wins, in any order
        table[key] = number
    if kind == "ip4tset":
        values = [None, reader.finish_tset()]
        singles = dict.fromkeys(singles, 1)
    order = sorted(singles)
    ttl = reader.ttl if reader.ttl is not None else default_ttl
    parsed = Parsed(
        kind, reader.paths, ttl, reader.soa, reader.ns, reader.timestamp, reader.expires,
        reader.mtime, tuple(reader.signatures), reader.warnings, values,
        array("I", order).tobytes(), array("I", [singles[a] for a in order]).tobytes(),
        [(net, bits, number) for (net, bits), number in blocks.items()])
    reader.finish_values()
    return parsed


def parse_pool(workers: int = 1) -> ProcessPoolExecutor:
    """Processes to run :func:`parse_dataset` in: spawned, since the server runs
    threads, and one task each, so each parse's memory goes back to the system."""
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               max_tasks_per_child=1)


def index_dataset(parsed: Parsed) -> Dataset:
    """Index what :func:`parse_dataset` read, and pre-pack its answers."""
    _prepack(parsed.values, parsed.ttl)
    return Dataset(parsed)


def load_dataset(kind: str, paths: Sequence[str], default_ttl: int) -> Dataset:
    """Read and index one dataset in this process.

    :raises ZoneFileError: when a file cannot be loaded at all.
    """
    return index_dataset(parse_dataset(kind, paths, default_ttl))


class Dataset:
    """One loaded dataset: the longest prefix wins.

    Single addresses, the bulk of real lists, sit in a sorted ``array('I')``
    with a parallel array of value numbers (8 bytes an entry) and an index of
    where each top-16-bit block starts, so a lookup is a short bisect in C;
    blocks sit in a Patricia trie. A /32 is the longest prefix there is, so an
    address found in the array needs no trie lookup.
    """

    def __init__(self, parsed: Parsed) -> None:
        self.kind = parsed.kind
        self.paths = parsed.paths
        self.ttl = parsed.ttl
        self.soa = parsed.soa
        self.ns = parsed.ns
        self.timestamp = parsed.timestamp
        self.expires = parsed.expires
        self.mtime = parsed.mtime
        self.signature = parsed.signature  # the files as they were read
        self.warnings = parsed.warnings
        keys = array("I")
        keys.frombytes(parsed.singles)
        numbers = array("I")
        numbers.frombytes(parsed.numbers)
        starts = [0] * 65537
        for key in keys:
            starts[(key >> 16) + 1] += 1
        for i in range(1, 65537):
            starts[i] += starts[i - 1]
        self._keys, self._numbers, self._starts = keys, numbers, array("I", starts)
        self._values = parsed.values
        # The trie is not frozen: freeze() holds the GIL for a quarter second
        # per million entries and costs memory. Nothing writes to it later.
        self._trie = pytricia.PyTricia(32)
        for net, bits, number in parsed.blocks:
            self._trie.insert(net.to_bytes(4, "big"), bits, parsed.values[number])
        excluded = numbers.count(0) + sum(1 for *_, number in parsed.blocks if not number)
        self.exclusions = excluded
        self.entries = len(keys) + len(parsed.blocks) - excluded
        self.lookup = self._make_lookup(bool(parsed.blocks))

    def _find(self, key: int) -> int:
        """Position of ``key`` among the single addresses, or -1."""
        keys, starts = self._keys, self._starts
        lo, hi = starts[key >> 16], starts[(key >> 16) + 1]
        i = bisect_left(keys, key, lo, hi)
        return i if i < hi and keys[i] == key else -1

    def _make_lookup(self, has_blocks: bool) -> Callable[[bytes], Value | None]:
        # A closure over locals: the query path does no attribute lookups.
        keys, starts, numbers, values = self._keys, self._starts, self._numbers, self._values
        trie_get = self._trie.get
        from_bytes = int.from_bytes

        def lookup(ip: bytes) -> Value | None:
            key = from_bytes(ip, "big")
            lo, hi = starts[key >> 16], starts[(key >> 16) + 1]
            if lo != hi:
                i = bisect_left(keys, key, lo, hi)
                if i < hi and keys[i] == key:
                    return values[numbers[i]]
            return trie_get(ip) if has_blocks else None

        return lookup

    def explain(self, ip: bytes) -> str | None:
        """The listed block that matches ``ip``, e.g. ``"192.0.2.0/24"``; None if none."""
        if self.lookup(ip) is None:
            return None
        if self._find(int.from_bytes(ip, "big")) >= 0:
            return f"{ipaddress.IPv4Address(ip)}/32"
        return self._trie.get_key(ip)


def _prepack(values: list[Value | None], ttl: int) -> None:
    for value in values:
        if value is None:
            continue
        value.a_rr = QNAME_PTR + rr_tail(TYPE_A, ttl, value.a)
        value.txt_head = QNAME_PTR + struct.pack(">HHI", TYPE_TXT, CLASS_IN, ttl)
        if value.txt is not None and len(value.txt) == 1:
            value.txt_rr = QNAME_PTR + rr_tail(TYPE_TXT, ttl, txt_rdata(value.txt[0][:255]))
        else:
            value.txt_rr = None


def _cidr(net: int, bits: int) -> str:
    return f"{ipaddress.IPv4Address(net)}/{bits}"

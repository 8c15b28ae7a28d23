"""What every dataset type shares: the parsed form, the interface, the
rules of listed entries (IPv4, IPv6, names). See :mod:`dnsbl.datasets`."""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, ClassVar, NamedTuple

from dnsbl.wire import CLASS_IN, QNAME_PTR, TYPE_A, TYPE_TXT, rr_tail, txt_rdata
from dnsbl.zonefile import (
    NS,
    SOA,
    DatasetReader,
    Entry,
    Run,
    Signature,
    Value,
    Warnings,
    ZoneFileError,
    first_word,
)


@dataclass
class Parsed:
    """A dataset as read from its files: directives, and entries as flat data.

    ``values[0]`` is ``None``: value number 0 means "excluded". IPv4 single
    addresses come as sorted ``array("I")`` bytes with their value numbers
    (which indexing takes over: it empties them); other keys as (key, bits or
    mode, number) triples.
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
    warnings: Warnings
    values: list[Value | None]
    singles: bytes = b""  # sorted IPv4 addresses, array("I") bytes
    numbers: bytes = b""  # their value numbers, array("I") bytes
    single_exclusions: int = 0  # how many of those numbers are 0
    blocks: list[tuple[Any, int, Any]] = field(default_factory=list)  # acl: an action
    #: generic: (name, record type, ttl, rdata)
    records: list[tuple[str, int, int, bytes]] = field(default_factory=list)
    #: combined: (subzones, section name, what the section parsed to)
    sections: list[tuple[tuple[str, ...], str, Parsed]] = field(default_factory=list)


class Dataset(ABC):
    """One loaded dataset: what its files said, indexed.

    A type is a subclass: its classmethods read its lines (``read_line``,
    ``read_block``) and gather what a reader read into :class:`Parsed`
    (``collect``, in the parsing process); its constructor indexes that (in
    the serving process); :meth:`entries` gives back every entry.
    """

    #: "ip4", "ip6", "name", "generic", "acl" or "combined": which part of a
    #: query name it answers for.
    family: ClassVar[str] = ""
    #: Whether $SOA and $NS have a place in its files.
    zone_records: ClassVar[bool] = True
    #: Whether a combined file may hold it as a $DATASET section.
    combinable: ClassVar[bool] = True
    #: Entries listed (exclusions not counted), and exclusions.
    listed = 0
    exclusions = 0
    #: Seconds reading and indexing took, set by whoever loaded it.
    load_seconds = 0.0

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
        self._values = parsed.values

    @classmethod
    @abstractmethod
    def read_line(cls, reader: DatasetReader, path: str, lineno: int,
                  line: str) -> Iterator[Entry]:
        """One entry line of a file (no special, no comment), stripped."""

    @classmethod
    def read_block(cls, reader: DatasetReader, path: str, lineno: int,
                   data: bytes) -> Iterator[Entry | Run]:
        """Whole lines of a file, the first numbered ``lineno``."""
        return reader.feed_text(path, lineno, data.decode("latin-1"))

    @classmethod
    @abstractmethod
    def collect(cls, reader: DatasetReader, default_ttl: int) -> Parsed:
        """Read the files of ``reader`` into the compact, picklable form."""

    @abstractmethod
    def entries(self) -> Iterator[NamedTuple]:
        """Every entry, exclusions included, each a named tuple of the type:
        what an export writes (a zone file, a zone transfer)."""

    @staticmethod
    def _parsed(reader: DatasetReader, default_ttl: int, values: list[Value | None],
                **data: Any) -> Parsed:
        """A Parsed with the directives ``reader`` read."""
        return Parsed(
            reader.kind, reader.paths, reader.ttl if reader.ttl is not None else default_ttl,
            reader.soa, reader.ns, reader.timestamp, reader.expires, reader.mtime,
            tuple(reader.signatures), reader.warnings, values, **data)


class NetworkEntry(NamedTuple):
    """A network (its address as an int, its prefix length) listed with
    ``value``, or excluded (``value`` None); IP4Entry and IP6Entry write it."""

    address: int
    bits: int
    value: Value | None


class ListedDataset(Dataset):
    """A list: entries by a key (an IPv4 or IPv6 network, a domain name), each
    listed with a value or excluded. ``lookup(key)`` returns the value that
    answers, or None."""

    #: Whether a key listed on several lines answers with every value (dnset).
    all_values: ClassVar[bool] = False
    #: The value that answers for a key (packed address or name), or None.
    lookup: Callable[[Any], Value | None]

    @classmethod
    @abstractmethod
    def parse_key(cls, kind: str, text: str, excluded: bool
                  ) -> tuple[list[tuple[Any, int]] | None, str]:
        """The key at the start of ``text``: (keys or None when it is not one,
        [] when it has a host part; the rest of the line)."""

    @classmethod
    @abstractmethod
    def describe(cls, key: Any, bits: int) -> str:
        """A key as a line of a file writes it, for a warning."""

    @abstractmethod
    def explain(self, key: Any) -> str | None:
        """The entry that matches ``key``, e.g. ``"192.0.2.0/24"``; None if none."""

    @classmethod
    def read_line(cls, reader: DatasetReader, path: str, lineno: int,
                  line: str) -> Iterator[Entry]:
        kind = reader.kind
        tset = kind.endswith("tset")
        if line[0] == ":" and not (line[1:2] == ":" and cls.family == "ip6"):  # "::1"
            # ":4" fills in from the built-in default (no TXT), not from the
            # default line before it: rbldnsd's answer for the lines after it.
            default = reader.value(path, lineno, line, reader.builtin)
            if default is None:
                return
            if not tset:
                reader.default = default
            elif reader.tset_default is None:  # rbldnsd: the first one wins
                reader.tset_default = default
            return
        excluded = line[0] == "!"
        if excluded:
            if kind == "ip4tset":
                reader.warn(path, lineno, "exclusions are not supported in ip4tset")
                return
            line = line[1:].lstrip()
        keys, rest = cls.parse_key(kind, line, excluded)
        if not keys:
            what = ("invalid range (non-zero host part)" if keys is not None
                    else f"invalid {'name' if cls.family == 'name' else 'address'}")
            reader.warn(path, lineno, f"{what} {first_word(line)!r}")
            return
        if reader.maxrange and cls.family == "ip4":  # exclusions too, as in rbldnsd
            size = sum(1 << (32 - bits) for _, bits in keys)
            if size > reader.maxrange:
                reader.warn(path, lineno, f"too large range ({size}) ignored "
                            f"({reader.maxrange} max, $MAXRANGE4)")
                return
        value: Value | None
        if excluded:
            value = None
        elif tset:
            value = reader.default  # per-entry values are ignored, as in rbldnsd
        else:
            rest = rest.lstrip()
            if not rest or rest[0] in "#;":
                value = reader.default
            else:
                value = reader.value(path, lineno, rest, reader.default)
                if value is None:
                    return
        for net, bits in keys:
            yield (net, bits, value, path, lineno)

    @classmethod
    def singles(cls) -> Singles | None:
        """Where single addresses go apart from the blocks (IPv4); None: nowhere."""
        return None

    @classmethod
    def collect(cls, reader: DatasetReader, default_ttl: int) -> Parsed:
        collector = Collector(cls, reader)
        add = collector.add
        for item in reader.items():
            add(item)
        return collector.finish(default_ttl)

    @classmethod
    def _add_block(cls, blocks: dict[tuple[Any, int], int], key: Any, bits: int, number: int,
                   warnings: Warnings, path: str, lineno: int) -> None:
        old = blocks.get((key, bits))
        if old is not None:
            if number and old:
                warnings.append(duplicate(cls.describe(key, bits), path, lineno))
            elif not old:
                return  # an exclusion of exactly this key wins, in any order
        blocks[(key, bits)] = number

    @classmethod
    def _finish(cls, reader: DatasetReader, default_ttl: int, values: list[Value | None],
                singles: Singles | None, blocks: dict[tuple[Any, int], int],
                by_key: dict[tuple[Any, int], list[int]]) -> Parsed:
        keys, single_numbers, single_exclusions = (
            singles.resolve(cls.describe, reader.warnings) if singles is not None
            else (array("I"), array("I"), 0))
        if reader.kind.endswith("tset"):
            values = [None, reader.finish_tset()]
            if single_exclusions:
                keys = array("I", compress(keys, single_numbers))
            single_numbers = array("I", [1]) * len(keys)
            single_exclusions = 0
            blocks = {k: 1 if n else 0 for k, n in blocks.items()}
        block_list = ([(key, bits, n) for (key, bits), ns in by_key.items() for n in ns]
                      if cls.all_values else
                      [(key, bits, n) for (key, bits), n in blocks.items()])
        position = {path: i for i, path in enumerate(reader.paths)}
        reader.warnings.sort(key=lambda w: (position.get(w.path, -1), w.lineno))  # file order
        parsed = cls._parsed(reader, default_ttl, values, singles=keys.tobytes(),
                             numbers=single_numbers.tobytes(),
                             single_exclusions=single_exclusions, blocks=block_list)
        reader.finish_values()
        return parsed


class Collector:
    """What :meth:`ListedDataset.collect` gathers, an item at a time: value
    numbers, single addresses, blocks; then the :class:`Parsed` of it all."""

    def __init__(self, cls: type[ListedDataset], reader: DatasetReader) -> None:
        self.cls, self.reader = cls, reader
        self.count = Counter(reader)
        self._numbers: dict[Value, int] = {}  # value -> its number; 0 is an exclusion (None)
        self.values: list[Value | None] = [None]
        self.singles = cls.singles()
        #: (net or name, bits or mode) -> value number
        self.blocks: dict[tuple[Any, int], int] = {}
        self.by_key: dict[tuple[Any, int], list[int]] = {}  # all_values: every value number

    def number(self, value: Value | None) -> int:
        """The number of ``value`` (0 for an exclusion), numbered at first sight."""
        if value is None:
            return 0
        number = self._numbers.get(value, -1)
        if number < 0:
            number = self._numbers[value] = len(self.values)
            self.values.append(value)
        return number

    def add(self, item: Entry | Run) -> None:
        singles = self.singles
        if isinstance(item, Run):
            assert singles is not None  # only IPv4 data has runs
            number = self._numbers.get(item.value, -1)
            if number < 0:
                number = self.number(item.value)
            self.count.run(item)
            singles.add_run(item.addresses, number, item.path, item.first_line)
            return
        key, bits, value, path, lineno = item
        # number(), inline: a call a line costs the Python reader 5% of a load.
        number = 0 if value is None else self._numbers.get(value, -1)
        if number < 0:
            number = self.number(value)
        self.count.one(path, lineno)
        cls = self.cls
        if cls.all_values:
            # rbldnsd answers every value a name is listed with; an
            # exclusion of the name wins over all of them, in any order.
            listed = self.by_key.setdefault((key, bits), [])
            if not number:
                listed[:] = [0]
            elif listed[:1] != [0] and number not in listed:
                listed.append(number)
        elif singles is not None and bits == 32:
            singles.add(key, number, path, lineno)
        else:
            cls._add_block(self.blocks, key, bits, number, self.reader.warnings, path, lineno)

    def finish(self, default_ttl: int) -> Parsed:
        return self.cls._finish(self.reader, default_ttl, self.values, self.singles,
                                self.blocks, self.by_key)


class Singles(ABC):
    """Single IPv4 addresses kept apart from the blocks (see datasets.ip4)."""

    @abstractmethod
    def add(self, key: int, number: int, path: str, lineno: int) -> None: ...

    @abstractmethod
    def add_run(self, addresses: array, number: int, path: str, first_line: int) -> None: ...

    @abstractmethod
    def resolve(self, describe: Callable[[Any, int], str],
                warnings: Warnings) -> tuple[array, array, int]: ...


class Counter:
    """Counts the entries read, and stops the parse past ``max_entries``."""

    __slots__ = ("left", "limit")

    def __init__(self, reader: DatasetReader) -> None:
        self.limit = self.left = reader.limits.max_entries

    def one(self, path: str, lineno: int) -> None:
        self.left -= 1
        if self.left < 0:
            self._over(path, lineno)

    def run(self, run: Run) -> None:
        self.left -= len(run.addresses)
        if self.left < 0:
            self._over(run.path, run.first_line + len(run.addresses) + self.left)

    def _over(self, path: str, lineno: int) -> None:
        raise ZoneFileError(path, lineno, f"more than {self.limit} entries "
                            "([limits] max_entries)", "entries")


def duplicate(described: str, path: str, lineno: int) -> ZoneFileError:
    return ZoneFileError(path, lineno, f"duplicate entry {described}, the later value is used")


def prepack(values: Iterator[Value | None] | list[Value | None], ttl: int) -> None:
    for value in values:
        if value is None:
            continue
        value.a_rr = QNAME_PTR + rr_tail(TYPE_A, ttl, value.a)
        value.txt_head = QNAME_PTR + struct.pack(">HHI", TYPE_TXT, CLASS_IN, ttl)
        if value.txt is not None and len(value.txt) == 1:
            value.txt_rr = QNAME_PTR + rr_tail(TYPE_TXT, ttl, txt_rdata(value.txt[0][:255]))
        else:
            value.txt_rr = None


def parents(name: str) -> Iterator[str]:
    """``"a.b.c"`` -> ``"b.c"``, ``"c"``."""
    while "." in name:
        name = name.partition(".")[2]
        yield name

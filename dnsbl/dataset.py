"""Datasets: the in-memory index of one rbldnsd dataset, built from its files.

Building has two steps. :func:`parse_dataset` reads the files into
:class:`Parsed`, compact and picklable, so a reload can run it in another
process; :func:`index_dataset` turns that into a :class:`Dataset`, whose
``lookup(packed_ipv4)`` returns the matching :class:`~dnsbl.zonefile.Value` or
``None``. Answer records are pre-packed into each value.
"""

from __future__ import annotations

import heapq
import ipaddress
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import compress, islice, repeat
from operator import eq
from typing import Any

import pytricia

from dnsbl.wire import CLASS_IN, QNAME_PTR, TYPE_A, TYPE_TXT, rr_tail, txt_rdata
from dnsbl.zonefile import (
    ACL_TYPES,
    COMBINED_TYPES,
    EXACT,
    GENERIC_TYPES,
    IP4_TYPES,
    IP6_TYPES,
    NAME_TYPES,
    NS,
    SOA,
    SUBDOMAINS,
    DatasetReader,
    Limits,
    Run,
    Signature,
    Value,
    Warnings,
    ZoneFileError,
)


@dataclass
class Parsed:
    """A dataset as read from its files: directives, and entries as flat data.

    ``values[0]`` is ``None``: value number 0 means "excluded". IPv4 single
    addresses come as sorted ``array("I")`` bytes with their value numbers;
    other keys as (key, bits or mode, number) triples.
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


def parse_dataset(kind: str, paths: Sequence[str], default_ttl: int,
                  ttl_bounds: tuple[int, int] = (0, 0), limits: Limits | None = None) -> Parsed:
    """Read one dataset's files; the TTLs they give are clamped into
    ``ttl_bounds`` (rbldnsd's ``-t def:min:max``).

    :raises ZoneFileError: when a file cannot be loaded at all, or is past
        one of ``limits``; bad lines are in the result's ``warnings`` instead.
    """
    parsed = _parse_files(kind, paths, default_ttl, limits)
    if ttl_bounds != (0, 0):
        _clamp(parsed, ttl_bounds)
    return parsed


def _clamp(parsed: Parsed, bounds: tuple[int, int]) -> None:
    """Clamp what rbldnsd clamps: $TTL, generic records' TTLs, the $SOA and
    $NS TTLs (not the SOA's minimum field, the negative TTL). The default TTL
    lies within the bounds already (the configuration checks it)."""
    parsed.ttl = clamp_ttl(parsed.ttl, bounds)
    parsed.records = [(name, rtype, clamp_ttl(ttl, bounds), rdata)
                      for name, rtype, ttl, rdata in parsed.records]
    if parsed.soa is not None:
        parsed.soa = replace(parsed.soa, ttl=clamp_ttl(parsed.soa.ttl, bounds))
    if parsed.ns is not None:
        parsed.ns = replace(parsed.ns, ttl=clamp_ttl(parsed.ns.ttl, bounds))
    for _subzones, _name, section in parsed.sections:
        _clamp(section, bounds)


def clamp_ttl(ttl: int, bounds: tuple[int, int]) -> int:
    """A TTL from the data within ``(min, max)`` (0: no bound), as rbldnsd's
    ``-t``; 0 stays 0, which means "the default" wherever the data says it."""
    low, high = bounds
    if not ttl:
        return ttl
    if low and ttl < low:
        return low
    if high and ttl > high:
        return high
    return ttl


def _parse_files(kind: str, paths: Sequence[str], default_ttl: int,
                 limits: Limits | None) -> Parsed:
    reader = DatasetReader(kind, paths, limits)
    if kind in COMBINED_TYPES:
        sections = reader.sections()
        common_ttl = reader.ttl if reader.ttl is not None else default_ttl
        # Each section starts from the common $TTL (its reader has it); its
        # own "$TTL 0" means the server's default, not the common one.
        parsed_sections = [(s.subzones, s.name, _parse(s.reader, s.kind, default_ttl))
                           for s in sections]
        warnings = reader.warnings
        for _z, _n, section in parsed_sections:
            warnings.merge(section.warnings)
        return Parsed(
            kind, reader.paths, common_ttl, reader.soa, reader.ns, reader.timestamp,
            min((e for e in [reader.expires, *(p.expires for _z, _n, p in parsed_sections)]
                 if e is not None), default=None),
            reader.mtime, tuple(reader.signatures), warnings, [None], sections=parsed_sections)
    return _parse(reader, kind, default_ttl)


def _parse(reader: DatasetReader, kind: str, default_ttl: int) -> Parsed:
    count = _Counter(reader)
    if kind in ACL_TYPES:
        rules: dict[tuple[bytes, int], Any] = {}
        for key, bits, action, path, lineno in reader.entries():
            count.one(path, lineno)
            rules[(key, bits)] = action  # the later line for the same network
        reader.finish_values()
        return Parsed(
            kind, reader.paths, reader.ttl if reader.ttl is not None else default_ttl,
            reader.soa, reader.ns, reader.timestamp, reader.expires, reader.mtime,
            tuple(reader.signatures), reader.warnings, [None],
            blocks=[(key, bits, action) for (key, bits), action in rules.items()])
    if kind in GENERIC_TYPES:
        # A generic entry carries (ttl, rdata) where others carry a Value;
        # its ttl is None where no $TTL came before it.
        records = []
        for name, rtype, record, path, lineno in reader.entries():
            count.one(path, lineno)
            ttl, rdata = record  # type: ignore[misc]
            records.append((name, rtype, default_ttl if ttl is None else ttl, rdata))
        return Parsed(
            kind, reader.paths, reader.ttl if reader.ttl is not None else default_ttl,
            reader.soa, reader.ns, reader.timestamp, reader.expires, reader.mtime,
            tuple(reader.signatures), reader.warnings, [None], records=records)
    numbers: dict[Value, int] = {}
    values: list[Value | None] = [None]
    singles = _Singles()
    blocks: dict[tuple[Any, int], int] = {}  # (net or name, bits or mode) -> value number
    single_bits = 32 if kind in IP4_TYPES else -1
    names: dict[tuple[Any, int], list[int]] | None = {} if kind in NAME_TYPES else None
    for item in reader.items():
        value = item.value if isinstance(item, Run) else item[2]
        if value is None:
            number = 0
        else:
            number = numbers.get(value, -1)
            if number < 0:
                number = numbers[value] = len(values)
                values.append(value)
        if isinstance(item, Run):
            count.run(item)
            singles.add_run(item.addresses, number, item.path, item.first_line)
            continue
        key, bits, _value, path, lineno = item
        count.one(path, lineno)
        if names is not None:
            # rbldnsd answers every value a name is listed with; an
            # exclusion of the name wins over all of them, in any order.
            listed = names.setdefault((key, bits), [])
            if not number:
                listed[:] = [0]
            elif listed[:1] != [0] and number not in listed:
                listed.append(number)
            continue
        if bits == single_bits:
            singles.add(key, number, path, lineno)
            continue
        old = blocks.get((key, bits))
        if old is not None:
            if number and old:
                reader.warnings.append(_duplicate(kind, path, lineno, key, bits))
            elif not old:
                continue  # an exclusion of exactly this key wins, in any order
        blocks[(key, bits)] = number
    keys, single_numbers, single_exclusions = singles.resolve(kind, reader.warnings)
    if names is not None:
        block_list = [(key, bits, number) for (key, bits), numbers_ in names.items()
                      for number in numbers_]
    else:
        block_list = [(key, bits, number) for (key, bits), number in blocks.items()]
    if kind in ("ip4tset", "ip6tset"):
        values = [None, reader.finish_tset()]
        if single_exclusions:
            keys = array("I", compress(keys, single_numbers))
        single_numbers = array("I", [1]) * len(keys)
        single_exclusions = 0
        blocks = {k: 1 if n else 0 for k, n in blocks.items()}
    ttl = reader.ttl if reader.ttl is not None else default_ttl
    position = {path: i for i, path in enumerate(reader.paths)}
    reader.warnings.sort(key=lambda w: (position.get(w.path, -1), w.lineno))  # file order
    parsed = Parsed(
        kind, reader.paths, ttl, reader.soa, reader.ns, reader.timestamp, reader.expires,
        reader.mtime, tuple(reader.signatures), reader.warnings, values,
        keys.tobytes(), single_numbers.tobytes(), single_exclusions,
        block_list)
    reader.finish_values()
    return parsed


class _Counter:
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


class _Singles:
    """IPv4 single addresses with their value numbers, resolved at the end by
    the rules of the blocks: the later value wins (with a warning), and an
    exclusion of the address wins in any order.

    Runs of bare addresses go straight into arrays; the few lines read one
    by one ("loose": with a value, an exclusion, a test point on top) are kept
    aside with where they came in, so a sorted list costs no sort at all.
    """

    def __init__(self) -> None:
        self.keys = array("I")  # from runs, in file order
        self.numbers = array("I")
        self._runs: list[tuple[int, str, int]] = []  # (first index, file, first line)
        #: (key, number, file, line, how many run entries came before it)
        self._loose: list[tuple[int, int, str, int, int]] = []

    def add(self, key: int, number: int, path: str, lineno: int) -> None:
        self._loose.append((key, number, path, lineno, len(self.keys)))

    def add_run(self, addresses: array, number: int, path: str, first_line: int) -> None:
        self._runs.append((len(self.keys), path, first_line))
        self.keys.extend(addresses)
        self.numbers.extend(array("I", [number]) * len(addresses))

    def resolve(self, kind: str, warnings: Warnings) -> tuple[array, array, int]:
        """The addresses sorted and unique, their value numbers, and how many
        of those are exclusions (0)."""
        keys, numbers, loose = self.keys, self.numbers, self._loose
        if _ascending(keys):  # place the loose lines among the sorted runs
            by_key = sorted(loose)
            loose_keys = array("I", [key for key, *_ in by_key])
            at = [bisect_left(keys, key) for key in loose_keys]
            clash = any(i < len(keys) and keys[i] == key
                        for i, key in zip(at, loose_keys, strict=True))
            if _ascending(loose_keys) and not clash:
                loose_numbers = [number for _, number, *_ in by_key]
                return (_interleave(keys, at, loose_keys), _interleave(numbers, at, loose_numbers),
                        loose_numbers.count(0))  # runs never hold exclusions
        # Anything else: every entry in file order, then a stable sort by address.
        positions = [entry[4] for entry in loose]
        keys = _interleave(keys, positions, [key for key, *_ in loose])
        numbers = _interleave(numbers, positions, [number for _, number, *_ in loose])
        origins = _interleave(array("I", range(len(self.keys))), positions,
                              range(len(self.keys), len(self.keys) + len(loose)))
        order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: file order kept
        keys = array("I", map(keys.__getitem__, order))
        numbers = array("I", map(numbers.__getitem__, order))
        # Walked, not listed: a file of one line repeated has a repeat per line.
        repeats = compress(range(1, len(keys)), map(eq, keys, islice(keys, 1, None)))
        keep = bytearray(b"\1") * len(keys)
        found = array("I")
        for i in repeats:  # entry i repeats entry i - 1, later in the files: it decides
            keep[i - 1] = 0
            if numbers[i] and numbers[i - 1]:
                found.append(origins[order[i]])
            elif not numbers[i - 1]:
                numbers[i] = 0  # an exclusion of exactly this address wins
        if len(keep) == keep.count(1):
            return keys, numbers, numbers.count(0)
        # Only as many as are kept: five million repeats of one line cost no
        # five million warnings (origins ascend in file order, loose lines last).
        if len(found) > warnings.room():
            warnings.dropped += len(found) - warnings.room()
            found = array("I", heapq.nsmallest(warnings.room(), found))
        for where in sorted(map(self._where, found)):
            warnings.append(_duplicate(kind, *where))
        numbers = array("I", compress(numbers, keep))
        return array("I", compress(keys, keep)), numbers, numbers.count(0)

    def _where(self, origin: int) -> tuple[str, int, int]:
        """(file, line, address) of an entry: a run entry's index, or past
        those, a loose one's."""
        if origin >= len(self.keys):
            key, _number, path, lineno, _at = self._loose[origin - len(self.keys)]
            return path, lineno, key
        start, path, first_line = self._runs[bisect_right(self._runs, origin,
                                                          key=lambda run: run[0]) - 1]
        return path, first_line + origin - start, self.keys[origin]


def _interleave(items: array, positions: Sequence[int], extra: Iterable[int]) -> array:
    """``items`` with each of ``extra`` put before the item at its position
    (positions ascending; len(items) puts it at the end)."""
    out = array(items.typecode)
    done = 0
    for at, item in zip(positions, extra, strict=True):
        out += items[done:at]
        out.append(item)
        done = at
    return out + items[done:]


def _ascending(keys: array) -> bool:
    """Sorted with no repeats."""
    return all(map(_ascending_chunk, (keys[i:i + _CHUNK + 1]
                                      for i in range(0, len(keys) - 1, _CHUNK))))


# A sorted list of a million addresses is the common case, and comparing them
# pair by pair in Python costs 600 instructions a pair. Instead every pair is
# compared at once in big-int arithmetic: key i sits in lane i (5 bytes) of one
# int x, so lane i of (x >> one lane) + (2**32 - 1) - x is keys[i+1] - keys[i]
# - 1 + 2**32. That is never negative, so no borrow crosses lanes, and it has
# bit 32 set exactly when keys[i] < keys[i+1]. (The last lane, with no pair,
# goes negative; the lanes below it keep their bits, and the mask skips it.)
# About 200 instructions a pair, mostly int.from_bytes; chunks keep ints small.
_CHUNK = 1 << 16
_LANE = 5  # bytes: room for 2**33
_KEY_BYTES = (0, 1, 2, 3) if sys.byteorder == "little" else (3, 2, 1, 0)  # low byte first


def _ascending_chunk(keys: array) -> bool:
    raw = keys.tobytes()
    lanes = bytearray(_LANE * len(keys))
    for lane_byte, key_byte in enumerate(_KEY_BYTES):
        lanes[lane_byte::_LANE] = raw[key_byte::4]
    x = int.from_bytes(lanes, "little")
    offset, bit = _lane_constants(len(keys) - 1)
    return ((x >> 8 * _LANE) + offset - x) & bit == bit


@lru_cache(maxsize=4)  # one size for whole chunks, one for the last
def _lane_constants(pairs: int) -> tuple[int, int]:
    """(2**32 - 1 in each of the first ``pairs`` lanes, bit 32 in each of them)."""
    return (int.from_bytes((2**32 - 1).to_bytes(_LANE, "little") * pairs, "little"),
            int.from_bytes((2**32).to_bytes(_LANE, "little") * pairs, "little"))


def _duplicate(kind: str, path: str, lineno: int, key: Any, bits: int = 32) -> ZoneFileError:
    return ZoneFileError(path, lineno, f"duplicate entry {_describe(kind, key, bits)}, "
                         "the later value is used")


def index_dataset(parsed: Parsed) -> Dataset:
    """Index what :func:`parse_dataset` read, and pre-pack its answers."""
    _prepack(parsed.values, parsed.ttl)
    if parsed.kind in IP6_TYPES:
        return IP6Dataset(parsed)
    if parsed.kind in NAME_TYPES:
        return NameDataset(parsed)
    if parsed.kind in GENERIC_TYPES:
        return GenericDataset(parsed)
    if parsed.kind in ACL_TYPES:
        _prepack([a for *_, a in parsed.blocks if isinstance(a, Value)], parsed.ttl)
        return AclDataset(parsed)
    if parsed.kind in COMBINED_TYPES:
        return CombinedDataset(parsed)
    return IP4Dataset(parsed)


def load_dataset(kind: str, paths: Sequence[str], default_ttl: int,
                 ttl_bounds: tuple[int, int] = (0, 0), limits: Limits | None = None) -> Dataset:
    """Read and index one dataset in this process.

    :raises ZoneFileError: when a file cannot be loaded at all.
    """
    return index_dataset(parse_dataset(kind, paths, default_ttl, ttl_bounds, limits))


class Dataset:
    """One loaded dataset: what its files said, and ``lookup(key)``."""

    #: "ip4", "ip6" or "name": which part of a query name the lookup takes.
    family = ""
    entries = 0
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

    def lookup(self, key: Any) -> Value | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def explain(self, key: Any) -> str | None:  # pragma: no cover - overridden
        """The entry that matches ``key``, e.g. ``"192.0.2.0/24"``; None if none."""
        raise NotImplementedError


class IP4Dataset(Dataset):
    """IPv4 (ip4set, ip4trie, ip4tset): the longest prefix wins.

    Single addresses, the bulk of real lists, sit in a sorted ``array('I')``
    with a parallel array of value numbers (8 bytes an entry) and an index of
    where each block of addresses sharing their top bits starts, so a lookup
    is a short bisect in C;
    blocks sit in a Patricia trie. A /32 is the longest prefix there is, so an
    address found in the array needs no trie lookup. ``lookup`` takes the
    address packed (4 bytes).
    """

    family = "ip4"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        keys = array("I")
        keys.frombytes(parsed.singles)
        numbers = array("I")
        numbers.frombytes(parsed.numbers)
        self._shift = 32 - _index_bits(len(keys))
        starts = _block_starts(keys, 32 - self._shift)
        self._keys, self._numbers, self._starts = keys, numbers, starts
        # The trie is not frozen: freeze() holds the GIL for a quarter second
        # per million entries and costs memory. Nothing writes to it later.
        self._trie = pytricia.PyTricia(32)
        for net, bits, number in parsed.blocks:
            self._trie.insert(net.to_bytes(4, "big"), bits, parsed.values[number])
        excluded = parsed.single_exclusions + sum(1 for *_, number in parsed.blocks if not number)
        self.exclusions = excluded
        self.entries = len(keys) + len(parsed.blocks) - excluded
        self.lookup = self._make_lookup(  # type: ignore[method-assign,assignment]
            bool(parsed.blocks))

    def _find(self, key: int) -> int:
        """Position of ``key`` among the single addresses, or -1."""
        keys, starts, block = self._keys, self._starts, key >> self._shift
        lo, hi = starts[block], starts[block + 1]
        i = bisect_left(keys, key, lo, hi)
        return i if i < hi and keys[i] == key else -1

    def _make_lookup(self, has_blocks: bool) -> Callable[[bytes], Value | None]:
        # A closure over locals: the query path does no attribute lookups.
        keys, starts, numbers, values = self._keys, self._starts, self._numbers, self._values
        shift = self._shift
        trie_get = self._trie.get
        from_bytes = int.from_bytes

        def lookup(ip: bytes) -> Value | None:
            key = from_bytes(ip, "big")
            lo, hi = starts[key >> shift], starts[(key >> shift) + 1]
            if lo != hi:
                i = bisect_left(keys, key, lo, hi)
                if i < hi and keys[i] == key:
                    return values[numbers[i]]
            return trie_get(ip) if has_blocks else None

        return lookup

    def explain(self, ip: bytes) -> str | None:
        if self.lookup(ip) is None:
            return None
        if self._find(int.from_bytes(ip, "big")) >= 0:
            return f"{ipaddress.IPv4Address(ip)}/32"
        return self._trie.get_key(ip)


def _index_bits(count: int) -> int:
    """How many top bits of an address the block index goes by: 8 to 16, for
    blocks of 16 to 32 keys. A bisect a block builds the index: 16 bits for a
    million keys cost 270 M instructions at start-up, 15 cost half that, and
    a lookup bisects one step deeper (about 300 instructions more)."""
    return max(8, min(16, count.bit_length() - 5))


def _block_starts(keys: array, bits: int) -> array:
    """Where each block of the sorted ``keys`` sharing the top ``bits`` bits
    starts, then ``len(keys)``: a bisect in C a block, not a pass over every
    key in Python, each within its top-8-bit block, which 257 bisects find first."""
    bounds = array("I", map(bisect_left, repeat(keys, 257), range(0, 257 << 24, 1 << 24)))
    starts = array("I")
    per = 1 << (bits - 8)  # blocks in a top-8-bit block
    for top in range(256):
        firsts = range(top << 24, (top + 1) << 24, 1 << (32 - bits))
        starts.extend(map(bisect_left, repeat(keys, per), firsts,
                          repeat(bounds[top], per), repeat(bounds[top + 1], per)))
    starts.append(len(keys))
    return starts


class IP6Dataset(Dataset):
    """IPv6 (ip6trie, ip6tset): the longest prefix wins; ``lookup`` takes the
    address packed (16 bytes). ip6tset's /64s and excluded /128s are in the
    same trie: a /128 is more specific than any /64."""

    family = "ip6"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        self._trie = pytricia.PyTricia(128)
        for net, bits, number in parsed.blocks:
            self._trie.insert(net.to_bytes(16, "big"), bits, parsed.values[number])
        self.exclusions = sum(1 for *_, number in parsed.blocks if not number)
        self.entries = len(parsed.blocks) - self.exclusions
        self.lookup = self._trie.get  # type: ignore[method-assign]
        # The listed networks, each as its address then its prefix length (17
        # bytes), sorted, in one bytes object: 17 bytes an entry, where a
        # list of ints or bytes would cost 60.
        self._listed = _Records(b"".join(sorted(
            net.to_bytes(16, "big") + bytes((bits,))
            for net, bits, number in parsed.blocks if number)), 17)

    def listed_under(self, prefix: int, bits: int) -> bool:
        """Whether addresses in ``prefix``/``bits`` (0 < bits < 128) are listed,
        so the nibble name of that prefix exists (an empty non-terminal,
        RFC 8020): a listed network holds it, or one lies inside it.
        ``0x20010db8 << 96, 32`` is True for data listing ``2001:db8:1::/48``,
        False for data listing only ``2001:db9::/32`` or excluding
        ``2001:db8::/32``. (Exclusions that tile a listed network whole are
        not looked into: such data is odd, and NODATA is still a safe answer.)"""
        start = prefix.to_bytes(16, "big")
        if self._trie.get((start, bits)) is not None:
            return True
        listed = self._listed
        i = bisect_left(listed, start + bytes((bits + 1,)))  # past networks holding it
        if i == len(listed):
            return False
        last = (prefix | ((1 << (128 - bits)) - 1)).to_bytes(16, "big")
        return listed[i][:16] <= last

    def explain(self, ip: bytes) -> str | None:
        return self._trie.get_key(ip) if self._trie.get(ip) is not None else None


class _Records(Sequence[bytes]):
    """Fixed-size records packed in one bytes object, as a sequence that
    ``bisect`` can search (the records sorted)."""

    __slots__ = ("_data", "_size")

    def __init__(self, data: bytes, size: int) -> None:
        self._data = data
        self._size = size

    def __len__(self) -> int:
        return len(self._data) // self._size

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        size = self._size
        return self._data[i * size:(i + 1) * size]


class NameDataset(Dataset):
    """Domain names (dnset): an exact name beats a wildcard, a nearer wildcard
    beats a farther one, and an excluded name is not listed. A name listed
    on several lines answers with every value, as in rbldnsd.
    ``lookup`` takes the name relative to the zone, lowercase, as ``str``."""

    family = "name"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        # name -> its values, or None when excluded
        exact: dict[str, tuple[Value, ...] | None] = {}
        below: dict[str, tuple[Value, ...] | None] = {}  # "*.x": names under x
        for name, mode, number in parsed.blocks:
            value = parsed.values[number]
            for table, applies in ((exact, mode != SUBDOMAINS), (below, mode != EXACT)):
                if not applies:
                    continue
                if value is None:
                    table[name] = None  # an exclusion wins in any order
                elif name not in table:
                    table[name] = (value,)
                elif (values := table[name]) is not None and value not in values:
                    table[name] = (*values, value)
        self._exact, self._below = exact, below
        # Names with something listed under them exist (RFC 8020): NODATA, not
        # NXDOMAIN. Excluded entries list nothing, so they make nothing exist.
        parents = {name for name, values in below.items() if values is not None}
        for table in (exact, below):
            for name, values in table.items():
                if values is not None:
                    parents.update(_parents(name))
        self._parents = frozenset(parents)
        self.exclusions = sum(1 for *_, number in parsed.blocks if not number)
        self.entries = len(parsed.blocks) - self.exclusions

    def lookup(self, name: str) -> Value | None:  # type: ignore[override]
        found = self.match(name)
        return None if found is None or found[0] is None else found[0][0]

    def match(self, name: str) -> tuple[tuple[Value, ...] | None, str] | None:
        """(values or None if excluded, the entry's name) of the entry deciding
        ``name``, None if none does. The entry's name is what ``$`` stands for
        in its TXT: the wildcard's base for a wildcard match, as in rbldnsd."""
        if name in self._exact:
            return self._exact[name], name
        below = self._below
        if below:
            for parent in _parents(name):
                if parent in below:
                    return below[parent], parent
        return None

    def has_children(self, name: str) -> bool:
        """Whether listed names lie under ``name`` (an empty non-terminal): an
        entry below it, or the nearest wildcard above it not an exclusion."""
        if name in self._parents:
            return True
        below = self._below
        if below:
            for parent in _parents(name):
                if parent in below:
                    return below[parent] is not None
        return False

    def explain(self, name: str) -> str | None:  # type: ignore[override]
        if self.lookup(name) is None:
            return None
        if name in self._exact:
            return name
        return next(f"*.{p}" for p in _parents(name) if p in self._below)


class GenericDataset(Dataset):
    """Plain A, TXT and MX records at names of the zone (``""`` is the apex),
    pre-packed to answer the question's name."""

    family = "generic"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        self.records: dict[str, dict[int, list[bytes]]] = {}
        for name, rtype, ttl, rdata in parsed.records:
            rr = QNAME_PTR + rr_tail(rtype, ttl, rdata)
            by_type = self.records.setdefault(name, {})
            if rr not in by_type.setdefault(rtype, []):
                by_type[rtype].append(rr)
        self.parents = frozenset(p for name in self.records for p in _parents(name))
        self.entries = len(parsed.records)

    def lookup(self, key: Any) -> Value | None:  # not a list: nothing is "listed"
        return None

    def explain(self, key: Any) -> str | None:
        return None


class AclDataset(Dataset):
    """Which clients may ask: ``action(client_address)`` -> ``"ignore"``,
    ``"refuse"``, ``"empty"``, ``"pass"`` or a Value (answer every valid
    question as listed with it), for the longest matching network; None when
    no network matches (the same as pass)."""

    family = "acl"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        self._v4 = pytricia.PyTricia(32)
        self._v6 = pytricia.PyTricia(128)
        for key, bits, action in parsed.blocks:
            (self._v4 if len(key) == 4 else self._v6).insert(key, bits, action)
        self.entries = len(parsed.blocks)

    def action(self, client: str) -> str | Value | None:
        try:
            return (self._v6 if ":" in client else self._v4).get(client)
        except ValueError:  # not an address (a UNIX socket peer): no rule applies
            return None

    def lookup(self, key: Any) -> Value | None:
        return None

    def explain(self, key: Any) -> str | None:
        return None


class CombinedDataset(Dataset):
    """A combined file: datasets answering under subzones of the zone (``""``
    is the zone itself), with the zone's $SOA/$NS from its common section."""

    family = "combined"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        self.sections = [(subzones, name, index_dataset(p))
                         for subzones, name, p in parsed.sections]
        for _subzones, _name, dataset in self.sections:
            dataset.mtime = self.mtime  # its file is the combined one
        self.entries = sum(d.entries for *_, d in self.sections if d.family != "acl")
        self.exclusions = sum(d.exclusions for *_, d in self.sections)

    def lookup(self, key: Any) -> Value | None:  # the sections answer, not this
        return None

    def explain(self, key: Any) -> str | None:
        return None


def _parents(name: str) -> Iterator[str]:
    """``"a.b.c"`` -> ``"b.c"``, ``"c"``."""
    while "." in name:
        name = name.partition(".")[2]
        yield name


def _describe(kind: str, key: Any, bits: int) -> str:
    if kind in NAME_TYPES:
        return ("", "*.", ".")[bits] + key
    if kind in IP6_TYPES:
        return f"{ipaddress.IPv6Address(key)}/{bits}"
    return _cidr(key, bits)


def _prepack(values: Sequence[Value | None], ttl: int) -> None:
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

"""IPv4 lists: ip4set, ip4tset and ip4trie (rbldnsd's ip4set.c, ip4tset.c,
ip4trie.c): their keys, the bulk reading of bare addresses, the index and
the lookup."""

from __future__ import annotations

import heapq
import ipaddress
import os
import re
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import compress, islice, repeat
from operator import eq
from socket import AF_INET, inet_pton
from typing import Any

import pytricia

from dnsbl.datasets.base import (
    Collector,
    ListedDataset,
    NetworkEntry,
    Parsed,
    Singles,
    duplicate,
)
from dnsbl.zonefile import DatasetReader, Entry, Run, Value, Warnings, match_key

try:
    from dnsbl.datasets import _ip4scan  # type: ignore[attr-defined]
except ImportError:  # not built (no compiler at install time): Python reads it all
    _ip4scan = None
try:
    from dnsbl.datasets._ip4index import Index  # type: ignore[import-not-found]
except ImportError:  # not built: the compiled fast path calls the Python lookup
    Index = None
_COMPILED = os.environ.get("DNSBL_PURE_PYTHON", "") in ("", "0")
#: The compiled reader (_ip4scan.c), or None: then the Python one, which is
#: the reference, reads every line. DNSBL_PURE_PYTHON=1 asks for it.
SCAN: Any = _ip4scan if _COMPILED else None
#: The compiled lookup (_ip4index.c) that _fastpath.c calls, or None.
INDEX: Any = Index if _COMPILED else None


class IP4Entry(NetworkEntry):
    """An IPv4 network listed with ``value``, or excluded (``value`` None)."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"{ipaddress.IPv4Address(self.address)}/{self.bits}"


# A key: dotted octets, then an optional /bits or -upper bound.
_KEY = re.compile(r"([0-9]+(?:\.[0-9]+)*)(?:/([0-9]+)|-([0-9]+(?:\.[0-9]+)*))?")


_BITS = {str(bits): bits for bits in range(1, 33)}  # a prefix length as written in full


# Most lines of a big list are one bare dotted quad, read a run at a time.
# Lines with something else in them (a value, a /, a comment) are found by
# marking such bytes "!" (bytes.translate, then find: no per-character Python
# or regex work) and read one at a time; the lines in between are read as
# dotted quads, or where one is not (10.1.2, a blank line), split into exact
# runs of them by the pattern.
_ODD = bytes(c if chr(c) in "0123456789. \t\r\n" else ord("!") for c in range(256))


_QUAD_RUN = re.compile(
    r"^(?:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}[ \t\r]*\n)+", re.MULTILINE)


def _octets(text: str) -> list[int] | None:
    parts = text.split(".")
    if len(parts) > 4:
        return None
    octets = [int(p) for p in parts]
    if any(o > 255 for o in octets):
        return None
    return octets


def _prefix(text: str) -> tuple[int, int] | None:
    """rbldnsd prefix: ``10`` / ``10.1`` / ``10.1.2`` / ``10.1.2.3`` -> (address, bits)."""
    octets = _octets(text)
    if octets is None:
        return None
    bits = 8 * len(octets)
    addr = 0
    for o in octets:
        addr = addr << 8 | o
    return addr << (32 - bits), bits


def _mask(bits: int) -> int:
    return (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF


def _range_to_cidrs(first: int, last: int) -> list[tuple[int, int]]:
    """Cover first..last (inclusive) with the fewest CIDR blocks."""
    out = []
    while first <= last:
        size = (first & -first).bit_length() - 1 if first else 32
        while first + (1 << size) - 1 > last:
            size -= 1
        out.append((first, 32 - size))
        first += 1 << size
    return out


def parse_ip4_key(kind: str, text: str) -> tuple[list[tuple[int, int]] | None, str]:
    """Parse the key at the start of ``text``; return (cidrs or None, rest of line)."""
    # Most lines: an address or a CIDR block written in full, then a blank. No
    # regex: a match costs more than the rest of this branch.
    key, _, after = text.partition(" ")
    address_text, slash, bits_text = key.partition("/")
    try:
        address = int.from_bytes(inet_pton(AF_INET, address_text), "big")
    except (OSError, ValueError):  # not a quad, an octet over 255, a leading zero
        address = -1  # (decimal to rbldnsd), a tab, a comment or a NUL after it: read below
    if address >= 0:
        if not slash:
            return [(address, 32)], after
        bits = _BITS.get(bits_text, 0)
        if bits and kind != "ip4tset" and not address & ~_mask(bits):
            return [(address, bits)], after
    # Anything else gets the general reading below, and its warnings.
    m, rest = match_key(_KEY, text)
    if m is None:
        return None, rest
    base, bits_text, upper = m.groups()
    parsed = _prefix(base)
    if parsed is None:
        return None, rest
    addr, bits = parsed
    if kind == "ip4tset":
        if bits != 32 or bits_text is not None or upper is not None:
            return None, rest
        return [(addr, 32)], rest
    if upper is not None:
        if kind != "ip4set":
            return None, rest
        top = _prefix(upper)
        if top is None:
            return None, rest
        last, tbits = top
        if tbits == 8 and bits > 8:
            # 10.6.16-31: the upper bound replaces the last given octet.
            last = (addr & _mask(bits - 8)) | (last >> (bits - 8))
            tbits = bits
        elif tbits != bits:
            return None, rest
        last |= ~_mask(tbits) & 0xFFFFFFFF
        if addr > last:
            return None, rest
        return _range_to_cidrs(addr, last), rest
    if bits_text is not None:
        bits = int(bits_text)
        if bits > 32 or (bits == 0 and kind == "ip4set"):
            return None, rest
    elif bits == 8:
        return None, rest  # a bare number: rbldnsd wants 10/8
    if addr & ~_mask(bits) & 0xFFFFFFFF:
        return [], rest  # caller reports the host part
    return [(addr, bits)], rest


def _quads(words: list[str]) -> array | None:
    """Dotted quads as array("I"), or None if one has an octet inet_pton refuses
    (over 255, or a leading zero, which rbldnsd reads as decimal)."""
    try:
        packed = b"".join(map(inet_pton, repeat(AF_INET, len(words)), words))
    except OSError:
        return None
    addresses = array("I")
    addresses.frombytes(packed)
    if sys.byteorder == "little":
        addresses.byteswap()
    return addresses


class IP4Dataset(ListedDataset):
    """IPv4 (ip4set, ip4trie, ip4tset): the longest prefix wins.

    Single addresses, the bulk of real lists, sit in a sorted ``array('I')``
    with a parallel array of value numbers (8 bytes an entry) and an index of
    where each block of addresses sharing their top bits starts, so a lookup
    is a short bisect in C;
    blocks sit in a Patricia trie. A /32 is the longest prefix there is, so an
    address found in the array needs no trie lookup. ``lookup`` takes the
    address packed (4 bytes). Where _ip4index.c is built, ``lookup.index`` is
    the same lookup compiled (the blocks as flat ranges), which the compiled
    fast path calls.
    """

    family = "ip4"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        # Each copied, then let go: with both copies of both at once, a 10M
        # list would peak 80 MB above what it then holds. (A Parsed is indexed
        # once.)
        keys = array("I")
        keys.frombytes(parsed.singles)
        parsed.singles = b""
        numbers = array("I")
        numbers.frombytes(parsed.numbers)
        parsed.numbers = b""
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
        self.listed = len(keys) + len(parsed.blocks) - excluded
        self.lookup = self._make_lookup(  # type: ignore[method-assign,assignment]
            bool(parsed.blocks))
        # The same lookup compiled, for _fastpath.c, its blocks flattened
        # into ranges (the trie stays: the Python lookup, explain, entries).
        self.lookup.index = (  # type: ignore[attr-defined]
            None if INDEX is None else
            INDEX(keys, starts, numbers, self._values, self._shift, parsed.blocks))

    @classmethod
    def parse_key(cls, kind: str, text: str, excluded: bool
                  ) -> tuple[list[tuple[int, int]] | None, str]:
        return parse_ip4_key(kind, text)

    @classmethod
    def describe(cls, key: int, bits: int) -> str:
        return f"{ipaddress.IPv4Address(key)}/{bits}"

    @classmethod
    def singles(cls) -> Singles:
        return _Singles()

    @classmethod
    def collect(cls, reader: DatasetReader, default_ttl: int) -> Parsed:
        if SCAN is None or reader.given is not None:
            return super().collect(reader, default_ttl)
        scanner = _Scanner(Collector(cls, reader))
        for path in reader.paths:
            reader.default = reader.builtin  # a default value lasts one file
            for lineno, data in reader.read_blocks(path):
                scanner.block(path, lineno, data)
        return scanner.collector.finish(default_ttl)

    @classmethod
    def read_block(cls, reader: DatasetReader, path: str, lineno: int,
                   data: bytes) -> Iterator[Entry | Run]:
        """A block of an IPv4 dataset: odd lines one at a time, runs between them."""
        text = data.decode("latin-1")
        marked = data.translate(_ODD)
        pos = 0
        while (odd := marked.find(b"!", pos)) >= 0:
            start = marked.rfind(b"\n", 0, odd) + 1
            end = marked.find(b"\n", odd)
            end = len(marked) if end < 0 else end
            if start > pos:
                yield from cls._runs(reader, path, lineno, text[pos:start])
                lineno += marked.count(b"\n", pos, start)
            line = text[start:end].strip()
            if line:
                yield from reader.feed(path, lineno, line)
            lineno += 1
            pos = end + 1
        yield from cls._runs(reader, path, lineno, text[pos:])

    @classmethod
    def _runs(cls, reader: DatasetReader, path: str, lineno: int,
              text: str) -> Iterator[Entry | Run]:
        """Lines with only digits, dots and blanks in them."""
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()  # the end of the last line, not a line
        addresses = _quads(lines) if "" not in lines else None
        if addresses is not None:  # the usual case: all bare dotted quads
            if addresses:
                yield Run(addresses, reader.default, path, lineno)
            return
        pos = 0
        for run in _QUAD_RUN.finditer(text):
            start, end = run.span()
            yield from reader.feed_text(path, lineno, text[pos:start])
            lineno += text.count("\n", pos, start)
            addresses = _quads(text[start:end].split())
            if addresses is None:  # an octet over 255 or with a leading 0
                yield from reader.feed_text(path, lineno, text[start:end])
            else:
                yield Run(addresses, reader.default, path, lineno)
            lineno += text.count("\n", start, end)
            pos = end
        yield from reader.feed_text(path, lineno, text[pos:])

    def entries(self) -> Iterator[IP4Entry]:
        values = self._values
        for key, number in zip(self._keys, self._numbers, strict=True):
            yield IP4Entry(key, 32, values[number])
        yield from self.blocks()

    def arrays(self) -> tuple[array, array, list[Value | None]]:
        """The single addresses (sorted), their value numbers and the values
        numbered: what two versions are compared by without an entry each."""
        return self._keys, self._numbers, self._values

    def blocks(self) -> Iterator[IP4Entry]:
        """The entries shorter than /32, in the order :meth:`entries` gives them."""
        for prefix in self._trie:
            network = ipaddress.IPv4Network(prefix)
            yield IP4Entry(int(network.network_address), network.prefixlen, self._trie[prefix])

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


class _Scanner:
    """Whole blocks of a file read by the compiled scan(), which stops at each
    line it does not take whole; the Python reader reads that one (and says
    what is wrong with it), and scan() goes on after it."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.reader = collector.reader
        assert isinstance(collector.singles, _Singles)
        self.singles = collector.singles
        self.tset = self.reader.kind == "ip4tset"
        #: Value texts seen after the default in force -> their value number.
        self.texts: dict[bytes, int] = {}
        self.texts_after: Value | None = None

    def block(self, path: str, lineno: int, data: bytes) -> None:
        reader, collector, texts = self.reader, self.collector, self.texts
        pos, end = 0, len(data)
        while pos < end:
            default = reader.default
            if default is not self.texts_after:  # ":2" reads differently after another default
                texts.clear()
                self.texts_after = default
            first, first_line = pos, lineno
            pos, lineno, stopped, text, keys, numbers, starts, lines, blocks = SCAN.scan(
                data, pos, lineno, texts, collector.number(default),
                min(reader.maxrange, 1 << 33), self.tset)  # past 2**32: no limit either way
            taken = len(keys) // 4 + len(blocks)
            if taken > collector.count.left:
                # Past max_entries: the Python reader raises at the right line.
                for item in IP4Dataset.read_block(reader, path, first_line, data[first:pos]):
                    collector.add(item)
            else:
                collector.count.left -= taken
                self.singles.add_scanned(path, keys, numbers, starts, lines)
                add_block, blocks_seen, warnings = (IP4Dataset._add_block, collector.blocks,
                                                    reader.warnings)
                for key, bits, number, at in blocks:
                    add_block(blocks_seen, key, bits, number, warnings, path, at)
            if not stopped:
                return
            stop = data.find(b"\n", pos)
            stop = end if stop < 0 else stop
            line = data[pos:stop].decode("latin-1").strip()
            if line:
                for item in reader.feed(path, lineno, line):
                    collector.add(item)
            if text is not None:  # the lines after with this text are scan()'s
                value = reader.known_value(text.decode("latin-1"), default)
                if value is not None and reader.default is default:
                    texts[text] = collector.number(value)
            pos, lineno = stop + 1, lineno + 1


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


class _Singles(Singles):
    """IPv4 single addresses with their value numbers, resolved at the end by
    the rules of the blocks: the later value wins (with a warning), and an
    exclusion of the address wins in any order.

    Every address goes into two arrays in file order, whichever way it was
    read (a run, a line, a batch of the compiled reader); where the line
    numbers stop counting up by one, a break records the index and the line,
    so any entry's file and line can be found again for a warning. A sorted
    list costs no sort at all.
    """

    def __init__(self) -> None:
        self.keys = array("I")  # in file order
        self.numbers = array("I")
        self._starts = array("I")  # where the line numbers break: the index,
        self._lines = array("I")  # and the line of that entry
        self._files: list[tuple[int, str]] = []  # (first index, file)
        self._path = ""
        self._next_line = -1  # the line an entry added next would continue from
        #: Where the entries read one by one (not in a run) are: the Python
        #: reader places them among sorted runs without a sort.
        self._loose = array("I")

    def _break(self, path: str, lineno: int) -> None:
        if path != self._path:
            self._files.append((len(self.keys), path))
            self._path = path
        self._starts.append(len(self.keys))
        self._lines.append(lineno)

    def add(self, key: int, number: int, path: str, lineno: int) -> None:
        if lineno != self._next_line or path != self._path:
            self._break(path, lineno)
        self._next_line = lineno + 1
        self._loose.append(len(self.keys))
        self.keys.append(key)
        self.numbers.append(number)

    def add_run(self, addresses: array, number: int, path: str, first_line: int) -> None:
        if first_line != self._next_line or path != self._path:
            self._break(path, first_line)
        self._next_line = first_line + len(addresses)
        self.keys.extend(addresses)
        self.numbers.extend(array("I", [number]) * len(addresses))

    def add_scanned(self, path: str, keys: bytes, numbers: bytes, starts: bytes,
                    lines: bytes) -> None:
        """What one call of the compiled scan() read: addresses, their value
        numbers, and its breaks (indexes from 0, each with its line)."""
        if not keys:
            return
        base = len(self.keys)
        if path != self._path:
            self._files.append((base, path))
            self._path = path
        breaks = array("I")
        breaks.frombytes(starts)
        self._starts.extend(array("I", [base + i for i in breaks]) if base else breaks)
        self._lines.frombytes(lines)
        self.keys.frombytes(keys)
        self.numbers.frombytes(numbers)
        self._next_line = self._lines[-1] + len(self.keys) - self._starts[-1]

    def resolve(self, describe: Callable[[Any, int], str],
                warnings: Warnings) -> tuple[array, array, int]:
        """The addresses sorted and unique, their value numbers, and how many
        of those are exclusions."""
        keys, numbers = self.keys, self.numbers
        if SCAN is not None:
            kept, exclusions, origins, found_keys = SCAN.resolve(keys, numbers)
            del keys[kept:], numbers[kept:]
            if origins:
                self._warn(describe, warnings, _uints(origins), _uints(found_keys))
            return keys, numbers, exclusions
        if _ascending(keys):
            return keys, numbers, numbers.count(0)
        placed = self._place_loose()
        if placed is not None:
            return placed
        order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: file order kept
        keys = array("I", map(keys.__getitem__, order))
        numbers = array("I", map(numbers.__getitem__, order))
        # Walked, not listed: a file of one line repeated has a repeat per line.
        repeats = compress(range(1, len(keys)), map(eq, keys, islice(keys, 1, None)))
        keep = bytearray(b"\1") * len(keys)
        found, found_keys = array("I"), array("I")
        for i in repeats:  # entry i repeats entry i - 1, later in the files: it decides
            keep[i - 1] = 0
            if numbers[i] and numbers[i - 1]:
                found.append(order[i])
                found_keys.append(keys[i])
            elif not numbers[i - 1]:
                numbers[i] = 0  # an exclusion of exactly this address wins
        if len(keep) == keep.count(1):
            return keys, numbers, numbers.count(0)
        self._warn(describe, warnings, found, found_keys)
        numbers = array("I", compress(numbers, keep))
        return array("I", compress(keys, keep)), numbers, numbers.count(0)

    def _place_loose(self) -> tuple[array, array, int] | None:
        """Sorted runs with the lines read one by one out of order among them
        (a sorted list with a test point on top, exclusions at the end): the
        loose ones sorted and placed by bisection, no sort of the whole. None
        where that is not the case (or two entries repeat an address)."""
        keys, numbers, loose = self.keys, self.numbers, self._loose
        if not loose or len(loose) > len(keys) // 4:
            return None
        run_keys = _without(keys, loose)
        if not _ascending(run_keys):
            return None
        by_key = sorted((keys[i], numbers[i]) for i in loose)
        loose_keys = array("I", [key for key, _ in by_key])
        at = [bisect_left(run_keys, key) for key in loose_keys]
        if not _ascending(loose_keys) or any(i < len(run_keys) and run_keys[i] == key
                                             for i, key in zip(at, loose_keys, strict=True)):
            return None
        loose_numbers = [number for _, number in by_key]
        run_numbers = _without(numbers, loose)
        numbers = _interleave(run_numbers, at, loose_numbers)
        return _interleave(run_keys, at, loose_keys), numbers, numbers.count(0)

    def _warn(self, describe: Callable[[Any, int], str], warnings: Warnings,
              origins: array, keys: array) -> None:
        """A warning for each address repeated with both listed: where the
        later one is (its index in file order) and the address."""
        # Only as many as are kept: five million repeats of one line cost no
        # five million warnings, nor objects (the earliest in file order are kept).
        chosen: Iterable[int] = range(len(origins))
        if len(origins) > warnings.room():
            warnings.dropped += len(origins) - warnings.room()
            chosen = heapq.nsmallest(warnings.room(), chosen, key=origins.__getitem__)
        for path, lineno, key in sorted(self._where(origins[i], keys[i]) for i in chosen):
            warnings.append(duplicate(describe(key, 32), path, lineno))

    def _where(self, origin: int, key: int) -> tuple[str, int, int]:
        """(file, line, address) of the entry at index ``origin`` in file order."""
        run = bisect_right(self._starts, origin) - 1
        _, path = self._files[bisect_right(self._files, origin, key=lambda f: f[0]) - 1]
        return path, self._lines[run] + origin - self._starts[run], key


def _without(items: array, positions: array) -> array:
    """``items`` without those at ``positions`` (ascending): slices, not a
    pass over every item in Python."""
    out = array(items.typecode)
    done = 0
    for at in positions:
        out += items[done:at]
        done = at + 1
    return out + items[done:]


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


def _uints(data: bytes) -> array:
    out = array("I")
    out.frombytes(data)
    return out


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

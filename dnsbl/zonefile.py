"""rbldnsd-format data files: lines in, entries and directives out.

A dataset is one or more files read as one logical file (rbldnsd semantics).
Bad lines become warnings carrying ``file:line`` and are skipped; a file that
cannot be read at all is a fatal :class:`ZoneFileError`.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import os
import re
import stat
import sys
import time
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from socket import AF_INET, inet_pton
from typing import IO, Any

#: Dataset types whose keys are IPv4 addresses.
IP4_TYPES = ("ip4set", "ip4tset", "ip4trie")
#: Dataset types whose keys are IPv6 addresses.
IP6_TYPES = ("ip6trie", "ip6tset")
#: Dataset types whose keys are domain names.
NAME_TYPES = ("dnset",)
#: Plain records for names in the zone (the apex, www, ...).
GENERIC_TYPES = ("generic",)
#: A container of other datasets, each answering under subzones of the zone.
COMBINED_TYPES = ("combined",)
#: Which clients may ask: an action per client network.
ACL_TYPES = ("acl",)
DATASET_TYPES = (IP4_TYPES + IP6_TYPES + NAME_TYPES + GENERIC_TYPES + ACL_TYPES
                 + COMBINED_TYPES)
#: ACL actions besides "answer as listed with this A+TXT" (a Value), by the
#: keywords rbldnsd reads for them (``blackhole`` is its other name for ignore).
ACL_ACTIONS = {"ignore": "ignore", "blackhole": "ignore", "refuse": "refuse",
               "empty": "empty", "pass": "pass"}
#: Record types a generic dataset takes, by name.
GENERIC_RECORD_TYPES = {"A": 1, "MX": 15, "TXT": 16}

#: dnset key modes: the name itself, its subdomains only (*.x), or both (.x).
EXACT, SUBDOMAINS, BOTH = 0, 1, 2

_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_TIME = 0xFFFFFFFF  # TTLs and SOA timers are 32-bit fields on the wire
_MAX_TXT = 255
_LOOPBACK_PREFIX = b"\x7f\x00\x00"
DEFAULT_A = b"\x7f\x00\x00\x02"

# A key: dotted octets, then an optional /bits or -upper bound.
_KEY = re.compile(r"([0-9]+(?:\.[0-9]+)*)(?:/([0-9]+)|-([0-9]+(?:\.[0-9]+)*))?")
_KEY_END = frozenset(" \t#;:")
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
_BLOCK = 1 << 20  # bytes read at a time, then up to the end of the line


class ZoneFileError(Exception):
    """A problem in a data file, located as ``file:line: reason``.

    ``kind`` names the problem for counting: ``line`` for a bad line (a
    warning), and for a file that cannot be loaded ``open``, ``read`` (I/O or
    gzip error), ``changed`` (modified while read) or ``timestamp`` (future).
    """

    def __init__(self, path: str, lineno: int, reason: str, kind: str = "line") -> None:
        reason = _bounded(reason)
        super().__init__(path, lineno, reason, kind)  # all of them: it must survive pickling
        self.path = path
        self.lineno = lineno
        self.reason = reason
        self.kind = kind

    def __str__(self) -> str:
        if self.lineno:
            return f"{self.path}:{self.lineno}: {self.reason}"
        return f"{self.path}: {self.reason}"


#: Characters of a problem's reason kept: it quotes the line, and a 100 MB
#: line with no newline must not become a 100 MB log line (or be kept whole).
MAX_REASON = 120


def _bounded(reason: str) -> str:
    if len(reason) <= MAX_REASON:
        return reason
    return f"{reason[:MAX_REASON]}... ({len(reason)} characters)"


#: Warnings kept per dataset; past it they are only counted (``dropped``): a
#: file of a million bad or repeated lines must not cost a million objects.
MAX_WARNINGS = 1000


class Warnings(list[ZoneFileError]):
    """A dataset's warnings, the first :data:`MAX_WARNINGS` kept, the rest counted."""

    dropped = 0

    def append(self, warning: ZoneFileError) -> None:
        if len(self) < MAX_WARNINGS:
            super().append(warning)
        else:
            self.dropped += 1

    def room(self) -> int:
        """How many more would be kept."""
        return max(0, MAX_WARNINGS - len(self))

    def merge(self, other: list[ZoneFileError]) -> None:
        for warning in other:
            self.append(warning)
        self.dropped += getattr(other, "dropped", 0)


@dataclass(frozen=True)
class Limits:
    """What loading one dataset may cost; past any of these the load fails,
    and the data served before stays. The defaults take a 10M-entry zone."""

    #: Bytes read from each file, counted after gzip inflation.
    max_file_size: int = 4 << 30
    #: Entries in the dataset (a range counts once per CIDR block it covers).
    max_entries: int = 50_000_000
    #: Bytes of memory the parsing process may add to what it started with;
    #: 0: max(1 GiB, 64 times the size of the files).
    parse_memory: int = 0
    #: Seconds a parse may run before its process is killed.
    parse_timeout: float = 300.0

    def memory_for(self, paths: Sequence[str]) -> int:
        """The memory a parse of ``paths`` may add, in bytes."""
        if self.parse_memory:
            return self.parse_memory
        size = 0
        for path in paths:
            try:
                st = os.stat(path)  # stat() opens nothing: a FIFO is only looked at
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
        return max(1 << 30, 64 * size)


@dataclass
class Section:
    """One ``$DATASET`` section of a combined file."""

    kind: str
    name: str
    subzones: tuple[str, ...]  # "" is the base zone itself ("@")
    reader: DatasetReader


def parse_time(text: str) -> int:
    """Seconds from an rbldnsd time value: ``300``, ``35m``, ``1h``, ``2d``, ``1w``.

    :raises ValueError: on anything else, or a value over 4294967295 seconds
        (which no DNS field holds; rbldnsd rejects it too).
    """
    unit = 1
    number = text
    if number and number[-1].lower() in _TIME_UNITS:
        unit = _TIME_UNITS[number[-1].lower()]
        number = number[:-1]
    if not _digits(number):
        raise ValueError(f"bad time value {text!r}")
    seconds = int(number) * unit
    if seconds > _MAX_TIME:
        raise ValueError(f"time value {text!r} is over {_MAX_TIME} seconds")
    return seconds


class Value:
    """What a listed entry answers: an A address and an optional TXT template.

    ``raw`` is the text as written (``None`` when the line gave none). Once the
    whole dataset is read, ``txt`` holds the final template split where the
    listed entry goes, so the text for 1.2.3.4 is ``b"1.2.3.4".join(txt)``;
    ``None`` means no TXT record. Pre-packed records are filled in by the dataset.
    """

    __slots__ = ("a", "raw", "txt", "a_rr", "txt_rr", "txt_head")

    def __init__(self, a: bytes, raw: str | None) -> None:
        self.a = a
        self.raw = raw
        self.txt: tuple[bytes, ...] | None = None
        self.a_rr = b""  # the whole A record
        self.txt_rr: bytes | None = None  # the whole TXT record when it has no "$"
        self.txt_head = b""  # a TXT record up to its rdlength

    def text_for(self, entry: str) -> bytes | None:
        """The TXT string for a listed entry, at most 255 bytes."""
        if self.txt is None:
            return None
        return entry.encode("latin-1").join(self.txt)[:_MAX_TXT]

    def __repr__(self) -> str:
        return f"Value({'.'.join(map(str, self.a))}, {self.raw!r})"


@dataclass(frozen=True)
class SOA:
    """A ``$SOA`` line. A ttl or serial of 0 means "fill in the default"."""

    ttl: int
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True)
class NS:
    """A ``$NS`` line: ttl (0 = default) and name servers."""

    ttl: int
    names: tuple[str, ...]


#: One entry: network as int and prefix length (for dnset: the name and its
#: mode), value (``None`` for an exclusion), file and line.
Entry = tuple[Any, int, "Value | None", str, int]


@dataclass
class Run:
    """Consecutive lines of one file, each a bare IPv4 address, read at once:
    the addresses in file order (``array("I")``), all with the value in force
    there; the address at index i is on line ``first_line + i``."""

    addresses: array
    value: Value
    path: str
    first_line: int

    def entries(self) -> Iterator[Entry]:
        for i, address in enumerate(self.addresses):
            yield (address, 32, self.value, self.path, self.first_line + i)


#: What says a file changed: modification time, size and inode (a rename).
Signature = tuple[int, int, int]


def _stat_key(st: os.stat_result) -> Signature:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


_FILE_TYPES = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISDIR, "directory"),
               (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
               (stat.S_ISSOCK, "socket"))


def _not_regular(path: str, mode: int) -> ZoneFileError:
    what = next((name for test, name in _FILE_TYPES if test(mode)), "not a file")
    return ZoneFileError(path, 0, f"not a regular file ({what})", "not_regular")


def open_regular(path: str, max_size: int = 0) -> tuple[int, os.stat_result]:
    """Open a data file to read, never blocking: a FIFO renamed over a zone
    would block a plain open() until a writer comes, and a read of a device
    may never end. What was opened is checked, not the name (which may be
    replaced in between). Returns the descriptor and its fstat().

    :raises ZoneFileError: ``open`` when it cannot be opened, ``not_regular``
        for anything but a regular file, ``size`` past ``max_size`` bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        try:  # a socket file cannot be opened at all (ENXIO): say what it is
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode) from None
        raise ZoneFileError(path, 0, f"cannot open: {exc.strerror or exc}", "open") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        if max_size and st.st_size > max_size:
            raise ZoneFileError(path, 0, f"{st.st_size} bytes, over the limit of {max_size} bytes "
                                "([limits] max_file_size)", "size")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def file_signature(path: str) -> Signature | None:
    """The file's (mtime, size, inode), or None when it cannot be stat()ed."""
    try:
        return _stat_key(os.stat(path))
    except OSError:
        return None


def _digits(text: str) -> bool:
    """ASCII decimal digits only: str.isdigit() also takes "¹" (Latin-1 0xB9),
    which int() then refuses."""
    return text.isascii() and text.isdigit()


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


_TSET_TYPES = ("ip4tset", "ip6tset")
# No dotted quads (::ffff:1.2.3.4): rbldnsd rejects them, so a file that
# loads here loads there.
_IP6_KEY = re.compile(r"[0-9A-Fa-f:]+(?:/[0-9]+)?")
# rbldnsd takes a name up to the first blank: "x.test;note" is one name.
_NAME_KEY = re.compile(r"\S+")


def _parse_ip6_key(kind: str, text: str, excluded: bool
                   ) -> tuple[list[tuple[int, int]] | None, str]:
    """rbldnsd IPv6 keys: ``2001:db8::/32``, ``2001:db8::1``, or groups with the
    trailing zero groups left out (``2001:21ab:c000/36``; no length: 16 bits a
    group, so ``2001:20fe:23:41ed`` is a /64). ip6tset takes /64s written as
    four groups, and single addresses as exclusions."""
    m = _IP6_KEY.match(text)
    if m is None:
        return None, text
    rest = text[m.end():]
    if rest and rest[0] not in _KEY_END:
        return None, rest
    address, slash, bits_text = m.group(0).partition("/")
    try:
        if "::" in address or address.count(":") == 7:
            net = int(ipaddress.IPv6Address(address))
            bits = 128
        else:
            groups = address.split(":")
            if not 1 <= len(groups) <= 8 or not all(0 < len(g) <= 4 for g in groups):
                return None, rest
            net = 0
            for group in groups:
                net = net << 16 | int(group, 16)
            net <<= 16 * (8 - len(groups))
            bits = 16 * len(groups)
    except ValueError:
        return None, rest
    if slash:
        if not _digits(bits_text) or int(bits_text) > 128:
            return None, rest
        bits = int(bits_text)
    if kind == "ip6tset":
        wanted = 128 if excluded else 64
        if slash or bits != wanted:
            return None, rest
    if net & ((1 << (128 - bits)) - 1):
        return [], rest
    return [(net, bits)], rest


def _parse_name_key(text: str) -> tuple[list[tuple[str, int]] | None, str]:
    """dnset keys: ``example.com``, ``*.example.com`` (subdomains only),
    ``.example.com`` (the name and its subdomains); lowercased."""
    m = _NAME_KEY.match(text)
    if m is None:
        return None, text
    name, rest = m.group(0).lower(), text[m.end():]
    mode = EXACT
    if name.startswith("*."):
        name, mode = name[2:], SUBDOMAINS
    elif name.startswith("."):
        name, mode = name[1:], BOTH
    # Empty labels are dropped, as rbldnsd does: "a..b" lists a.b.
    labels = [label for label in name.split(".") if label]
    name = ".".join(labels)
    if not name or len(name) > 253 or any(len(label) > 63 for label in labels):
        return None, rest
    return [(name, mode)], rest


def _parse_ip4_key(kind: str, text: str) -> tuple[list[tuple[int, int]] | None, str]:
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
    m = _KEY.match(text)
    if m is None:
        return None, text
    rest = text[m.end():]
    if rest and rest[0] not in _KEY_END:
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


class DatasetReader:
    """Reads the files of one dataset; :meth:`entries` yields what they list.

    After :meth:`entries` is exhausted, the directives (``soa``, ``ns``, ``ttl``,
    ``timestamp``, ``expires``), ``warnings`` and ``mtime`` describe the data.

    :raises ZoneFileError: from :meth:`entries` when a file is missing,
        unreadable, not valid gzip, changed while being read, or stamped in the
        future.
    """

    def __init__(self, kind: str, paths: Sequence[str], limits: Limits | None = None) -> None:
        if kind not in DATASET_TYPES:
            raise ValueError(f"unknown dataset type {kind!r}")
        self.kind = kind
        self.paths = tuple(paths)
        self.limits = limits or Limits()
        self.ttl: int | None = None
        self.soa: SOA | None = None
        self.ns: NS | None = None
        self.timestamp: int | None = None
        self.expires: int | None = None
        self.mtime = 0.0
        self.signatures: list[Signature] = []  # of each file as it was read
        self.warnings = Warnings()
        self._vars: dict[str, str] = {}
        self._base: str | None = None
        self._maxrange = 0  # addresses; 0 = no limit
        self._values: dict[tuple[bytes, str | None], Value] = {}
        # The same few value texts recur on thousands of lines: parse each once.
        self._parsed_values: dict[tuple[str, Value], Value] = {}
        #: The built-in default (127.0.0.2, no TXT), which each file starts from.
        self._builtin = self._default = self._intern(DEFAULT_A, None)
        self._tset_default: Value | None = None
        self._acl_default: str | Value = "ignore"
        #: What a partial ACL value (":9", "text $") fills in from: the last
        #: A+TXT default line; an action default line leaves it, as in rbldnsd.
        self._acl_value_default = self._default
        self._given: list[tuple[str, int, str]] | None = None  # lines of a combined section

    def entries(self) -> Iterator[Entry]:
        """Every entry of the files, in file order."""
        for item in self.items():
            if isinstance(item, Run):
                yield from item.entries()
            else:
                yield item

    def items(self) -> Iterator[Entry | Run]:
        """Like :meth:`entries`, with runs of bare IPv4 addresses kept whole."""
        if self._given is not None:  # a section of a combined file, already read
            self._default = self._builtin
            for path, lineno, line in self._given:
                yield from self.feed(path, lineno, line)
            return
        for path in self.paths:
            self._default = self._builtin  # a default value lasts one file
            for lineno, data in self._read_blocks(path):
                if self.kind in IP4_TYPES:
                    yield from self._ip4_block(path, lineno, data)
                else:
                    yield from self._feed_text(path, lineno, data.decode("latin-1"))

    def _ip4_block(self, path: str, lineno: int, data: bytes) -> Iterator[Entry | Run]:
        """A block of an IPv4 dataset: odd lines one at a time, runs between them."""
        text = data.decode("latin-1")
        marked = data.translate(_ODD)
        pos = 0
        while (odd := marked.find(b"!", pos)) >= 0:
            start = marked.rfind(b"\n", 0, odd) + 1
            end = marked.find(b"\n", odd)
            end = len(marked) if end < 0 else end
            if start > pos:
                yield from self._runs(path, lineno, text[pos:start])
                lineno += marked.count(b"\n", pos, start)
            line = text[start:end].strip()
            if line:
                yield from self.feed(path, lineno, line)
            lineno += 1
            pos = end + 1
        yield from self._runs(path, lineno, text[pos:])

    def _runs(self, path: str, lineno: int, text: str) -> Iterator[Entry | Run]:
        """Lines with only digits, dots and blanks in them."""
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()  # the end of the last line, not a line
        addresses = _quads(lines) if "" not in lines else None
        if addresses is not None:  # the usual case: all bare dotted quads
            if addresses:
                yield Run(addresses, self._default, path, lineno)
            return
        pos = 0
        for run in _QUAD_RUN.finditer(text):
            start, end = run.span()
            yield from self._feed_text(path, lineno, text[pos:start])
            lineno += text.count("\n", pos, start)
            addresses = _quads(text[start:end].split())
            if addresses is None:  # an octet over 255 or with a leading 0
                yield from self._feed_text(path, lineno, text[start:end])
            else:
                yield Run(addresses, self._default, path, lineno)
            lineno += text.count("\n", start, end)
            pos = end
        yield from self._feed_text(path, lineno, text[pos:])

    def _feed_text(self, path: str, lineno: int, text: str) -> Iterator[Entry]:
        for number, line in _lines(lineno, text):
            yield from self.feed(path, number, line)

    def feed(self, path: str, lineno: int, line: str) -> Iterator[Entry]:
        """One non-blank, stripped line: a special, a comment, or an entry. A
        line the parser fails on in a way not foreseen is skipped with a
        warning, as a bad line is: one line never costs the whole file."""
        try:
            yield from self._feed(path, lineno, line)
        except (ZoneFileError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - reported as the line's warning
            self._warn(path, lineno, f"line skipped, cannot be read ({type(exc).__name__}: "
                       f"{exc})")

    def _feed(self, path: str, lineno: int, line: str) -> Iterator[Entry]:
        first = line[0]
        if first == "$" or (first in "#:;" and line[1:2] == "$"):
            self._special(path, lineno, line[1:] if first == "$" else line[2:])
        elif first in "#;":
            return
        elif self.kind in GENERIC_TYPES:
            yield from self._generic(path, lineno, line)
        elif self.kind in ACL_TYPES:
            yield from self._acl(path, lineno, line)
        else:
            yield from self._line(path, lineno, line)

    # -- files and lines -------------------------------------------------------

    def _read_file(self, path: str) -> Iterator[tuple[int, str]]:
        """(line number, stripped line) of every non-blank line."""
        for lineno, data in self._read_blocks(path):
            yield from _lines(lineno, data.decode("latin-1"))

    def _read_blocks(self, path: str) -> Iterator[tuple[int, bytes]]:
        """(number of the first line, whole lines) a block at a time; checks
        at the end that the file did not change while it was read."""
        limit = self.limits.max_file_size
        fd, before = open_regular(path, limit)
        raw_file = os.fdopen(fd, "rb")
        self.mtime = max(self.mtime, before.st_mtime)
        lineno = 1
        left = limit  # bytes, inflated: a small gzip file may inflate to any size
        try:
            with raw_file:
                compressed = raw_file.read(2) == b"\x1f\x8b"
                raw_file.seek(0)
                stream: IO[bytes] = (
                    gzip.GzipFile(fileobj=raw_file) if compressed else raw_file)  # type: ignore[assignment]
                while True:
                    data = stream.read(min(_BLOCK, left + 1))
                    if not data:
                        break
                    if data[-1:] != b"\n":
                        data += stream.readline(max(0, left + 1 - len(data)))
                    left -= len(data)
                    if left < 0:
                        raise ZoneFileError(
                            path, lineno, f"over the limit of {limit} bytes"
                            f"{' inflated' if compressed else ''} ([limits] max_file_size)",
                            "size")
                    yield lineno, data
                    lineno += data.count(b"\n")
        except (OSError, EOFError, zlib.error) as exc:
            raise ZoneFileError(path, lineno, f"read failed: {exc}", "read") from None
        try:
            after = os.stat(path)
        except OSError:
            after = None
        if after is None or _stat_key(after) != _stat_key(before):
            raise ZoneFileError(
                path, 0,
                "file changed while being read; write to a temporary file and rename it",
                "changed",
            )
        self.signatures.append(_stat_key(before))

    def sections(self) -> list[Section]:
        """A combined dataset's ``$DATASET type[:name] subzone...`` sections, each
        with a reader of its own lines; this reader keeps the common specials
        ($SOA, $NS, $TTL, $n), which the sections start from.

        :raises ZoneFileError: for a section of a type that cannot be combined,
            or data before the first ``$DATASET``.
        """
        sections: list[Section] = []
        current: Section | None = None
        for path in self.paths:
            for lineno, line in self._read_file(path):
                first = line[0]
                special = first == "$" or (first in "#:;" and line[1:2] == "$")
                body = (line[1:] if first == "$" else line[2:]) if special else ""
                if special and body.split(None, 1)[:1] in (["DATASET"], ["dataset"]):
                    current = self._section(path, lineno, body)
                    if current is not None:
                        sections.append(current)
                    continue
                if current is not None:
                    assert current.reader._given is not None
                    current.reader._given.append((path, lineno, line))
                elif special:
                    self._special(path, lineno, body)
                elif first not in "#;":
                    raise ZoneFileError(path, lineno, "data before the first $DATASET line")
        return sections

    def _section(self, path: str, lineno: int, body: str) -> Section | None:
        words = body.split()[1:]
        if not words:
            self._warn(path, lineno, "invalid special entry: $DATASET needs a type")
            return None
        kind, _, name = words[0].partition(":")
        if kind not in DATASET_TYPES or kind in ACL_TYPES + COMBINED_TYPES:
            raise ZoneFileError(path, lineno, f"$DATASET type {kind!r} cannot be combined")
        subzones = tuple("" if z == "@" else z.lower().rstrip(".") for z in words[1:])
        if not subzones:
            self._warn(path, lineno, "no subzones given for this $DATASET: its data is ignored")
        reader = DatasetReader(kind, self.paths, self.limits)
        reader._given = []
        # The common section's $TTL and $n apply inside (a common $n wins, as
        # the first definition always does); its $SOA and $NS are the zone's.
        reader.ttl = self.ttl
        reader._vars = dict(self._vars)
        reader._base = self._base
        return Section(kind, name or kind, subzones, reader)

    def _warn(self, path: str, lineno: int, reason: str) -> None:
        self.warnings.append(ZoneFileError(path, lineno, reason))

    def _line(self, path: str, lineno: int, line: str) -> Iterator[Entry]:
        if line[0] == ":" and not (line[1:2] == ":" and self.kind in IP6_TYPES):  # "::1"
            # ":4" fills in from the built-in default (no TXT), not from the
            # default line before it: rbldnsd's answer for the lines after it.
            default = self._value(path, lineno, line, self._builtin)
            if default is None:
                return
            if self.kind in _TSET_TYPES:
                if self._tset_default is None:  # rbldnsd: the first one wins
                    self._tset_default = default
            else:
                self._default = default
            return
        excluded = line[0] == "!"
        if excluded:
            if self.kind == "ip4tset":
                self._warn(path, lineno, "exclusions are not supported in ip4tset")
                return
            line = line[1:].lstrip()
        keys: list[tuple[Any, int]] | None
        if self.kind in IP4_TYPES:
            keys, rest = _parse_ip4_key(self.kind, line)
        elif self.kind in IP6_TYPES:
            keys, rest = _parse_ip6_key(self.kind, line, excluded)
        else:
            keys, rest = _parse_name_key(line)
        if keys is None:
            what = "name" if self.kind in NAME_TYPES else "address"
            self._warn(path, lineno, f"invalid {what} {_first_word(line)!r}")
            return
        if not keys:
            self._warn(path, lineno, f"invalid range (non-zero host part) {_first_word(line)!r}")
            return
        cidrs = keys
        if self._maxrange and self.kind in IP4_TYPES:  # exclusions too, as in rbldnsd
            size = sum(1 << (32 - bits) for _, bits in cidrs)
            if size > self._maxrange:
                self._warn(path, lineno,
                           f"too large range ({size}) ignored ({self._maxrange} max, $MAXRANGE4)")
                return
        value: Value | None
        if excluded:
            value = None
        elif self.kind in _TSET_TYPES:
            value = self._default  # per-entry values are ignored, as in rbldnsd
        else:
            rest = rest.lstrip()
            if not rest or rest[0] in "#;":
                value = self._default
            else:
                value = self._value(path, lineno, rest, self._default)
                if value is None:
                    return
        for net, bits in cidrs:
            yield (net, bits, value, path, lineno)

    def _generic(self, path: str, lineno: int, line: str) -> Iterator[Entry]:
        """``name [ttl] A|TXT|MX value``, ``@`` for the apex: yields
        (name, record type, (ttl or None, rdata), file, line)."""
        try:
            owner, rest = line.split(None, 1)
            name = "" if owner == "@" else owner.lower().rstrip(".")
            if name and any(not 0 < len(label) < 64 for label in name.split(".")):
                raise ValueError(f"bad name {owner!r}")
            ttl = None
            if _digits(rest[:1]):
                ttl_text, rest = rest.split(None, 1)
                ttl = parse_time(ttl_text)
            # No TTL, or 0: the $TTL in force at this line (rbldnsd's $TTL is
            # positional in generic data); None: none yet, the default TTL.
            ttl = ttl or self.ttl or None
            type_text, value = rest.split(None, 1)
            rtype = GENERIC_RECORD_TYPES.get(type_text.upper())
            if rtype is None:
                raise ValueError(f"unsupported type {type_text!r} (A, TXT and MX are)")
            rdata = _generic_rdata(rtype, value.strip())
        except ValueError as exc:
            reason = str(exc) if "unpack" not in str(exc) else "expected name [ttl] type value"
            self._warn(path, lineno, f"invalid record: {reason}")
            return
        yield (name, rtype, (ttl, rdata), path, lineno)  # type: ignore[misc]

    def _acl(self, path: str, lineno: int, line: str) -> Iterator[Entry]:
        """``CIDR [:action | :A:TXT | TXT]`` (IPv4 or IPv6) -> (packed network,
        bits, action name or Value, file, line). A bare entry takes the default
        line's action, or ignore when there is none, as in rbldnsd."""
        default_line = line[0] in ":=" and line[1:2] != ":"  # not "::1"
        if default_line:
            action = self._acl_action(line)
            if action is not None:
                self._acl_default = action
            elif line[0] == ":":
                value = self._value(path, lineno, line, self._acl_value_default)
                if value is not None:
                    self._acl_default = self._acl_value_default = value
            else:
                self._warn(path, lineno, f"invalid ACL keyword {line!r}")
            return
        keys, rest = (_parse_ip6_key("ip6trie", line, False) if ":" in line.split()[0]
                      else _parse_ip4_key("ip4trie", line))
        if not keys:
            what = "invalid address" if keys is None else "invalid range (non-zero host part)"
            self._warn(path, lineno, f"{what} {_first_word(line)!r}")
            return
        rest = rest.strip()
        result: str | Value | None
        if not rest or rest[0] in "#;":
            result = self._acl_default
        elif rest[0] == "=" and self._acl_action(rest) is None:
            self._warn(path, lineno, f"invalid ACL keyword {rest!r}")
            return
        else:
            result = self._acl_action(rest) or self._value(path, lineno, rest,
                                                           self._acl_value_default)
            if result is None:
                return
        width = 16 if ":" in line.split()[0] else 4
        for net, bits in keys:
            yield (net.to_bytes(width, "big"), bits, result, path, lineno)  # type: ignore[misc]

    @staticmethod
    def _acl_action(text: str) -> str | None:
        """``:ignore`` / ``=refuse`` / ``:blackhole`` ... (any case, ended by a
        blank, a colon or the line) -> the action; None for anything else."""
        if text[:1] not in (":", "="):
            return None
        word = text[1:].replace(":", " ").replace("#", " ").replace(";", " ").split(None, 1)
        return ACL_ACTIONS.get(word[0].lower()) if word and text[1:2].isalpha() else None

    def finish_tset(self) -> Value:
        """The one value every ip4tset/ip6tset entry answers with."""
        return self._tset_default or self._builtin

    def finish_values(self) -> list[Value]:
        """Expand every value's TXT now that $n variables and $= are all known
        (they are dataset-wide, as in rbldnsd); return the values."""
        for value in self._values.values():
            value.txt = self._expand(value.raw)
        return list(self._values.values())

    # -- values -----------------------------------------------------------------

    def _intern(self, a: bytes, raw: str | None) -> Value:
        key = (a, raw)
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = Value(a, raw)
        return value

    def _value(self, path: str, lineno: int, text: str, default: Value) -> Value | None:
        """``:A:TXT``, ``:A``, ``:A:`` or plain ``TXT`` -> Value (None after a warning)."""
        value = self._parsed_values.get((text, default))
        if value is None:
            warned = len(self.warnings)
            value = self._parse_value(path, lineno, text, default)
            if value is not None and len(self.warnings) == warned:
                self._parsed_values[(text, default)] = value
        return value

    def _parse_value(self, path: str, lineno: int, text: str, default: Value) -> Value | None:
        if text[0] != ":":
            raw: str | None = text
            a = default.a
        else:
            a_text, sep, txt = text[1:].partition(":")
            a_text = a_text.strip()
            packed = _a_value(a_text)
            if packed is None:
                self._warn(path, lineno, f"invalid A value {a_text!r}" if sep or " " not in a_text
                           else f"invalid value {text!r}: expected :A:TXT")
                return None
            a = packed
            raw = (txt.strip() or None) if sep else default.raw
        if raw is not None and len(raw) > _MAX_TXT:
            self._warn(path, lineno, "TXT longer than 255 bytes, truncated")
        return self._intern(a, raw)

    def _expand(self, raw: str | None) -> tuple[bytes, ...] | None:
        """rbldnsd TXT rules: ``$`` is the listed entry, ``$$`` a dollar, ``$n`` a
        variable; with a ``$=`` base template the entry text (or the entry itself
        when there is none) stands in for ``$=``, unless it starts with ``=``."""
        if self._base is None:
            return None if raw is None else self._split(raw)
        if raw is not None and raw.startswith("="):
            return self._split(raw[1:]) if len(raw) > 1 else None
        head, found, tail = self._base.partition("$=")
        if not found:
            return self._split(self._base)
        # The text put in for $= is taken literally, not expanded again.
        inner = (b"", b"") if raw is None else (raw.encode("latin-1"),)
        return _concat(_concat(self._split(head), inner), self._split(tail))

    def _split(self, text: str) -> tuple[bytes, ...]:
        parts: list[str] = []
        piece: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "$":
                nxt = text[i + 1:i + 2]
                if nxt == "$":
                    piece.append("$")
                    i += 2
                    continue
                if _digits(nxt):
                    # An undefined variable stays as written, as in rbldnsd.
                    piece.append(self._vars.get(nxt, "$" + nxt))
                    i += 2
                    continue
                parts.append("".join(piece))
                piece = []
                i += 1
                continue
            piece.append(c)
            i += 1
        parts.append("".join(piece))
        return tuple(p.encode("latin-1") for p in parts)

    # -- specials ---------------------------------------------------------------

    def _special(self, path: str, lineno: int, text: str) -> None:
        word, _, rest = text.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        rest = rest.strip()
        key = word.upper()
        try:
            if key in ("SOA", "NS") and self.kind in ACL_TYPES:
                raise ValueError(f"${key} has no place in an acl dataset")
            if key == "SOA":
                if self.soa is None:
                    self.soa = parse_soa(rest)
            elif key == "NS":
                if self.ns is None:
                    self.ns = parse_ns(rest)
            elif key == "TTL":
                self.ttl = parse_time(rest) or None  # 0: the default TTL
            elif key == "TIMESTAMP":
                self._timestamp(path, lineno, rest)
            elif key == "MAXRANGE4":
                self._set_maxrange(rest)
            elif len(word) == 1 and _digits(word):
                if not rest:
                    raise ValueError("empty substitution variable")
                self._vars.setdefault(word, rest)
            elif word == "=":
                if not rest:
                    raise ValueError("empty $= base template")
                self._base = rest
            elif key == "DATASET":
                raise ValueError("$DATASET is only valid in a combined dataset")
            else:
                raise ValueError(f"unrecognized special ${word}")
        except ValueError as exc:
            self._warn(path, lineno, f"invalid special entry: {exc}")

    def _set_maxrange(self, text: str) -> None:
        if text.startswith("/"):
            bits = int(text[1:])
            if not 0 <= bits <= 32:
                raise ValueError("bad prefix length")
            size = 1 << (32 - bits)
        else:
            size = int(text)
            if size <= 0:
                raise ValueError("range size must be positive")
        if self._maxrange and size > self._maxrange:
            raise ValueError(
                f"ignoring attempt to increase $MAXRANGE4 from {self._maxrange} to {size}")
        self._maxrange = size

    def _timestamp(self, path: str, lineno: int, text: str) -> None:
        fields = text.split()
        if not fields or len(fields) > 2:
            raise ValueError("expected $TIMESTAMP stamp [expires]")
        stamp = _parse_stamp(fields[0])
        expires = None
        if len(fields) == 2:
            spec = fields[1]
            if spec.startswith("+"):
                if stamp is None:
                    raise ValueError("relative expiry needs a timestamp")
                expires = stamp + parse_time(spec[1:])
            else:
                expires = _parse_stamp(spec)
        if stamp is not None and stamp > time.time():
            raise ZoneFileError(path, lineno, "$TIMESTAMP is in the future, data not loaded",
                                "timestamp")
        self.timestamp = stamp
        if expires is not None:
            self.expires = expires if self.expires is None else min(self.expires, expires)


def _generic_rdata(rtype: int, text: str) -> bytes:
    """The wire rdata of a generic record's value."""
    if rtype == 1:
        return ipaddress.IPv4Address(text).packed
    if rtype == 16:
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        raw = text.encode("latin-1")[:_MAX_TXT]
        return bytes((len(raw),)) + raw
    preference, _, host = text.partition(" ")
    if not _digits(preference) or int(preference) > 65535 or not host.strip():
        raise ValueError(f"bad MX value {text!r}: expected preference and host")
    return int(preference).to_bytes(2, "big") + _name_wire(host.strip())


def _name_wire(name: str) -> bytes:
    out = b""
    for label in _name(name).split("."):
        out += bytes((len(label),)) + label.encode("ascii")
    return out + b"\0"


def _lines(first: int, text: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of the non-blank lines of ``text``."""
    for i, line in enumerate(text.split("\n")):
        line = line.strip()
        if line:
            yield first + i, line


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


def _first_word(line: str) -> str:
    words = line.split(None, 1)
    return words[0] if words else line


def _concat(left: tuple[bytes, ...], right: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Join two split templates end to start."""
    return (*left[:-1], left[-1] + right[0], *right[1:])


def _a_value(text: str) -> bytes | None:
    """``2`` -> 127.0.0.2; ``1.2`` / ``1.2.3`` / ``1.2.3.4`` as inet_aton reads them."""
    octets = text.split(".")
    if not text or len(octets) > 4 or not all(_digits(o) for o in octets):
        return None
    values = [int(o) for o in octets]
    if any(v > 255 for v in values):
        return None
    if len(values) == 1:
        if not values[0]:
            return None  # ":0" is no answer at all, as rbldnsd has it
        packed = _LOOPBACK_PREFIX + bytes(values)
    else:
        values[-1:-1] = [0] * (4 - len(values))
        packed = bytes(values)
    return packed if packed != b"\0\0\0\0" else None


def _parse_stamp(text: str) -> int | None:
    """``yyyy:mm:dd[:hh[:mi[:ss]]]`` (``:``/``-`` optional) in UTC; ``0``/``-``: none."""
    if text in ("0", "-"):
        return None
    digits = text.replace(":", "").replace("-", "")
    if not _digits(digits) or len(digits) not in (8, 10, 12, 14):
        raise ValueError(f"bad timestamp {text!r}")
    digits = digits.ljust(14, "0")
    fields = [int(digits[0:4])] + [int(digits[i:i + 2]) for i in range(4, 14, 2)]
    try:
        year, month, day, hour, minute, second = fields
        stamp = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        raise ValueError(f"bad timestamp {text!r}") from None
    return int(stamp.timestamp())


def _name(text: str) -> str:
    name = text.rstrip(".").lower()
    labels = name.split(".")
    if not name or any(not 0 < len(label) < 64 for label in labels) or len(name) > 253:
        raise ValueError(f"bad domain name {text!r}")
    return name


def parse_soa(text: str) -> SOA:
    """The fields of a ``$SOA`` line; :raises ValueError: saying what is wrong."""
    fields = text.split()
    if len(fields) != 8:
        raise ValueError("expected $SOA ttl origin person serial refresh retry expire minttl")
    ttl = parse_time(fields[0])
    if not _digits(fields[3]) or int(fields[3]) > 0xFFFFFFFF:
        raise ValueError(f"bad serial {fields[3]!r}")
    return SOA(
        ttl, _name(fields[1]), _name(fields[2]), int(fields[3]),
        *(parse_time(f) for f in fields[4:8]),
    )


def parse_ns(text: str) -> NS:
    """The fields of a ``$NS`` line; :raises ValueError: saying what is wrong."""
    fields = text.split()
    if len(fields) < 2:
        raise ValueError("expected $NS ttl nameserver...")
    ttl = parse_time(fields[0])
    names = tuple(_name(f) for f in fields[1:] if not f.startswith("-"))
    return NS(ttl, names[:32])

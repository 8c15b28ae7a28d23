"""rbldnsd-format data files: lines in, entries and directives out.

A dataset is one or more files read as one logical file (rbldnsd semantics).
This module holds what every dataset type shares: reading the files (gzip,
limits, changes while read), comments, the specials ($SOA, $NS, $TTL,
$TIMESTAMP, $MAXRANGE4, $n, $=), values (``:A:TXT``) and their TXT templates.
How an entry line of a type reads (its key) is that type's own, in
:mod:`dnsbl.datasets`, which the reader asks through :class:`Syntax`. Bad
lines become warnings carrying ``file:line`` and are skipped; a file that
cannot be read at all is a fatal :class:`ZoneFileError`.
"""

from __future__ import annotations

import datetime
import gzip
import os
import re
import stat
import time
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_TIME = 0xFFFFFFFF  # TTLs and SOA timers are 32-bit fields on the wire
MAX_TXT = 255
_LOOPBACK_PREFIX = b"\x7f\x00\x00"
DEFAULT_A = b"\x7f\x00\x00\x02"
#: What may follow a key on its line.
_KEY_END = frozenset(" \t#;:")
_BLOCK = 1 << 20  # bytes read at a time, then up to the end of the line


class ZoneFileError(Exception):
    """A problem in a data file, located as ``file:line: message``.

    ``reason`` names the problem for counting: ``line`` for a bad line (a
    warning), and for a file that cannot be loaded ``open``, ``read`` (I/O or
    gzip error), ``changed`` (modified while read), ``timestamp`` (future),
    ``parse`` (a combined file that cannot be split into its datasets) and the
    others of :func:`dnsbl.loader.load_failure`.
    """

    def __init__(self, path: str, lineno: int, message: str, reason: str = "line") -> None:
        message = _bounded(message)
        super().__init__(path, lineno, message, reason)  # all of them: it must survive pickling
        self.path = path
        self.lineno = lineno
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        if self.lineno:
            return f"{self.path}:{self.lineno}: {self.message}"
        return f"{self.path}: {self.message}"


#: Characters of a problem's message kept: it quotes the line, and a 100 MB
#: line with no newline must not become a 100 MB log line (or be kept whole).
MAX_MESSAGE = 120


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE]}... ({len(message)} characters)"


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
    if not digits(number):
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
        return entry.encode("latin-1").join(self.txt)[:MAX_TXT]

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


def digits(text: str) -> bool:
    """ASCII decimal digits only: str.isdigit() also takes "¹" (Latin-1 0xB9),
    which int() then refuses."""
    return text.isascii() and text.isdigit()


def match_key(pattern: re.Pattern[str], text: str) -> tuple[re.Match[str] | None, str]:
    """``pattern`` matched at the start of a line, and the rest of the line;
    no match where what follows cannot end a key (a blank, a comment, a value)."""
    m = pattern.match(text)
    if m is None:
        return None, text
    rest = text[m.end():]
    if rest and rest[0] not in _KEY_END:
        return None, rest
    return m, rest


class Syntax(Protocol):
    """What a dataset type tells the reader: how its entry lines read. The
    types of :mod:`dnsbl.datasets` are this (their classmethods)."""

    #: Whether $SOA and $NS have a place in its files (not in an ACL).
    zone_records: bool

    def read_line(self, reader: DatasetReader, path: str, lineno: int,
                  line: str) -> Iterator[Entry]:
        """One entry line (not a special, not a comment), stripped."""
        ...

    def read_block(self, reader: DatasetReader, path: str, lineno: int,
                   data: bytes) -> Iterator[Entry | Run]:
        """Whole lines of a file, the first numbered ``lineno``."""
        ...


class DatasetReader:
    """Reads the files of one dataset; :meth:`entries` yields what they list.

    After :meth:`entries` is exhausted, the directives (``soa``, ``ns``, ``ttl``,
    ``timestamp``, ``expires``), ``warnings`` and ``mtime`` describe the data.
    ``syntax`` (the dataset type) reads the entry lines; the state they
    share lives here: the default value in force, the TXT templates.

    :raises ZoneFileError: from :meth:`entries` when a file is missing,
        unreadable, not valid gzip, changed while being read, or stamped in the
        future.
    """

    def __init__(self, kind: str, paths: Sequence[str], syntax: Syntax,
                 limits: Limits | None = None) -> None:
        self.kind = kind
        self.syntax = syntax
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
        self.variables: dict[str, str] = {}  # $n
        self.base_template: str | None = None  # $=
        self.maxrange = 0  # addresses; 0 = no limit
        self._values: dict[tuple[bytes, str | None], Value] = {}
        # The same few value texts recur on thousands of lines: parse each once.
        self._parsed_values: dict[tuple[str, Value], Value] = {}
        #: The built-in default (127.0.0.2, no TXT), which each file starts from.
        self.builtin = self.default = self._intern(DEFAULT_A, None)
        #: ip4tset/ip6tset: the one value of the dataset (the first default line).
        self.tset_default: Value | None = None
        #: acl: the action of a bare entry, and what a partial ACL value
        #: (":9", "text $") fills in from: the last A+TXT default line (an
        #: action default line leaves it, as in rbldnsd).
        self.acl_default: str | Value = "ignore"
        self.acl_value_default = self.default
        self.given: list[tuple[str, int, str]] | None = None  # lines of a combined section

    def entries(self) -> Iterator[Entry]:
        """Every entry of the files, in file order."""
        for item in self.items():
            if isinstance(item, Run):
                yield from item.entries()
            else:
                yield item

    def items(self) -> Iterator[Entry | Run]:
        """Like :meth:`entries`, with runs of bare IPv4 addresses kept whole."""
        if self.given is not None:  # a section of a combined file, already read
            self.default = self.builtin
            for path, lineno, line in self.given:
                yield from self.feed(path, lineno, line)
            return
        for path in self.paths:
            self.default = self.builtin  # a default value lasts one file
            for lineno, data in self.read_blocks(path):
                yield from self.syntax.read_block(self, path, lineno, data)

    def feed_text(self, path: str, lineno: int, text: str) -> Iterator[Entry]:
        """Whole lines, the first numbered ``lineno``."""
        for number, line in _lines(lineno, text):
            yield from self.feed(path, number, line)

    def feed(self, path: str, lineno: int, line: str) -> Iterator[Entry]:
        """One non-blank, stripped line: a special, a comment, or an entry. A
        line the parser fails on in a way not foreseen is skipped with a
        warning, as a bad line is: one line never costs the whole file."""
        try:
            first = line[0]
            if first == "$" or (first in "#:;" and line[1:2] == "$"):
                self.special(path, lineno, line[1:] if first == "$" else line[2:])
            elif first not in "#;":
                yield from self.syntax.read_line(self, path, lineno, line)
        except (ZoneFileError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - reported as the line's warning
            self.warn(path, lineno, f"line skipped, cannot be read ({type(exc).__name__}: "
                      f"{exc})")

    def warn(self, path: str, lineno: int, message: str) -> None:
        self.warnings.append(ZoneFileError(path, lineno, message))

    # -- files -----------------------------------------------------------------

    def read_file(self, path: str) -> Iterator[tuple[int, str]]:
        """(line number, stripped line) of every non-blank line."""
        for lineno, data in self.read_blocks(path):
            yield from _lines(lineno, data.decode("latin-1"))

    def read_blocks(self, path: str) -> Iterator[tuple[int, bytes]]:
        """(number of the first line, whole lines) a block at a time; checks
        at the end that the file did not change while it was read."""
        fd, before = open_regular(path, self.limits.max_file_size)
        self.mtime = max(self.mtime, before.st_mtime)
        yield from _blocks(path, os.fdopen(fd, "rb"), self.limits.max_file_size)
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

    # -- values -----------------------------------------------------------------

    def finish_tset(self) -> Value:
        """The one value every ip4tset/ip6tset entry answers with."""
        return self.tset_default or self.builtin

    def finish_values(self) -> list[Value]:
        """Expand every value's TXT now that $n variables and $= are all known
        (they are dataset-wide, as in rbldnsd); return the values."""
        for value in self._values.values():
            value.txt = expand_template(value.raw, self.base_template, self.variables)
        return list(self._values.values())

    def _intern(self, a: bytes, raw: str | None) -> Value:
        key = (a, raw)
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = Value(a, raw)
        return value

    def value(self, path: str, lineno: int, text: str, default: Value) -> Value | None:
        """``:A:TXT``, ``:A``, ``:A:`` or plain ``TXT`` -> Value (None after a warning)."""
        value = self._parsed_values.get((text, default))
        if value is None:
            warned = len(self.warnings)
            value = self._parse_value(path, lineno, text, default)
            if value is not None and len(self.warnings) == warned:
                self._parsed_values[(text, default)] = value
        return value

    def known_value(self, text: str, default: Value) -> Value | None:
        """What :meth:`value` read ``text`` to after ``default``, if it did
        without a warning (so any line with it reads the same)."""
        return self._parsed_values.get((text, default))

    def _parse_value(self, path: str, lineno: int, text: str, default: Value) -> Value | None:
        if text[0] != ":":
            raw: str | None = text
            a = default.a
        else:
            a_text, sep, txt = text[1:].partition(":")
            a_text = a_text.strip()
            packed = _a_value(a_text)
            if packed is None:
                self.warn(path, lineno, f"invalid A value {a_text!r}" if sep or " " not in a_text
                          else f"invalid value {text!r}: expected :A:TXT")
                return None
            a = packed
            raw = (txt.strip() or None) if sep else default.raw
        if raw is not None and len(raw) > MAX_TXT:
            self.warn(path, lineno, "TXT longer than 255 bytes, truncated")
        return self._intern(a, raw)

    # -- specials ---------------------------------------------------------------

    def special(self, path: str, lineno: int, text: str) -> None:
        """A ``$`` line, the ``$`` taken off."""
        word, _, rest = text.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        rest = rest.strip()
        key = word.upper()
        try:
            if key in ("SOA", "NS") and not self.syntax.zone_records:
                raise ValueError(f"${key} has no place in an {self.kind} dataset")
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
                self.maxrange = _maxrange(rest, self.maxrange)
            elif len(word) == 1 and digits(word):
                if not rest:
                    raise ValueError("empty substitution variable")
                self.variables.setdefault(word, rest)
            elif word == "=":
                if not rest:
                    raise ValueError("empty $= base template")
                self.base_template = rest
            elif key == "DATASET":
                raise ValueError("$DATASET is only valid in a combined dataset")
            else:
                raise ValueError(f"unrecognized special ${word}")
        except ValueError as exc:
            self.warn(path, lineno, f"invalid special entry: {exc}")

    def _timestamp(self, path: str, lineno: int, text: str) -> None:
        stamp, expires = _parse_timestamp(text)
        if stamp is not None and stamp > time.time():
            raise ZoneFileError(path, lineno, "$TIMESTAMP is in the future, data not loaded",
                                "timestamp")
        self.timestamp = stamp
        if expires is not None:
            self.expires = expires if self.expires is None else min(self.expires, expires)


def _blocks(path: str, raw_file: IO[bytes], limit: int) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, whole lines) of an open file, a block at a
    time, inflated if it is gzip; at most ``limit`` bytes after inflation (a
    small gzip file may inflate to any size)."""
    lineno = 1
    left = limit
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


def _maxrange(text: str, current: int) -> int:
    """A ``$MAXRANGE4`` (``/bits`` or a count), which may only shrink ``current``."""
    if text.startswith("/"):
        bits = int(text[1:])
        if not 0 <= bits <= 32:
            raise ValueError("bad prefix length")
        size = 1 << (32 - bits)
    else:
        size = int(text)
        if size <= 0:
            raise ValueError("range size must be positive")
    if current and size > current:
        raise ValueError(
            f"ignoring attempt to increase $MAXRANGE4 from {current} to {size}")
    return size


def _parse_timestamp(text: str) -> tuple[int | None, int | None]:
    """``$TIMESTAMP stamp [expires]`` -> (stamp, expiry), either None."""
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
    return stamp, expires


def expand_template(raw: str | None, base: str | None,
                    variables: dict[str, str]) -> tuple[bytes, ...] | None:
    """rbldnsd TXT rules: ``$`` is the listed entry, ``$$`` a dollar, ``$n`` a
    variable; with a ``$=`` base template the entry text (or the entry itself
    when there is none) stands in for ``$=``, unless it starts with ``=``."""
    if base is None:
        return None if raw is None else _split(raw, variables)
    if raw is not None and raw.startswith("="):
        return _split(raw[1:], variables) if len(raw) > 1 else None
    head, found, tail = base.partition("$=")
    if not found:
        return _split(base, variables)
    # The text put in for $= is taken literally, not expanded again.
    inner = (b"", b"") if raw is None else (raw.encode("latin-1"),)
    return _concat(_concat(_split(head, variables), inner), _split(tail, variables))


def _split(text: str, variables: dict[str, str]) -> tuple[bytes, ...]:
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
            if digits(nxt):
                # An undefined variable stays as written, as in rbldnsd.
                piece.append(variables.get(nxt, "$" + nxt))
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


def _lines(first: int, text: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of the non-blank lines of ``text``."""
    for i, line in enumerate(text.split("\n")):
        line = line.strip()
        if line:
            yield first + i, line


def first_word(line: str) -> str:
    words = line.split(None, 1)
    return words[0] if words else line


def _concat(left: tuple[bytes, ...], right: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Join two split templates end to start."""
    return (*left[:-1], left[-1] + right[0], *right[1:])


def _a_value(text: str) -> bytes | None:
    """``2`` -> 127.0.0.2; ``1.2`` / ``1.2.3`` / ``1.2.3.4`` as inet_aton reads them."""
    octets = text.split(".")
    if not text or len(octets) > 4 or not all(digits(o) for o in octets):
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
    numbers = text.replace(":", "").replace("-", "")
    if not digits(numbers) or len(numbers) not in (8, 10, 12, 14):
        raise ValueError(f"bad timestamp {text!r}")
    numbers = numbers.ljust(14, "0")
    fields = [int(numbers[0:4])] + [int(numbers[i:i + 2]) for i in range(4, 14, 2)]
    try:
        year, month, day, hour, minute, second = fields
        stamp = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        raise ValueError(f"bad timestamp {text!r}") from None
    return int(stamp.timestamp())


def domain_name(text: str) -> str:
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
    if not digits(fields[3]) or int(fields[3]) > 0xFFFFFFFF:
        raise ValueError(f"bad serial {fields[3]!r}")
    return SOA(
        ttl, domain_name(fields[1]), domain_name(fields[2]), int(fields[3]),
        *(parse_time(f) for f in fields[4:8]),
    )


def parse_ns(text: str) -> NS:
    """The fields of a ``$NS`` line; :raises ValueError: saying what is wrong."""
    fields = text.split()
    if len(fields) < 2:
        raise ValueError("expected $NS ttl nameserver...")
    ttl = parse_time(fields[0])
    names = tuple(domain_name(f) for f in fields[1:] if not f.startswith("-"))
    return NS(ttl, names[:32])

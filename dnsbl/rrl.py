"""Response rate limiting for UDP, in the manner of BIND, NSD and Knot RRL.

Each client prefix (/24 for IPv4, /56 for IPv6 by default) has a token bucket
of ``rate`` responses per second. Past it, responses are dropped, except every
``slip``-th one, which goes out as an empty TC=1 reply so that a real resolver
behind a spoofed flood retries over TCP and is still served. TCP is never
limited: it cannot be spoofed.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
import time
from collections.abc import Iterable
from typing import Any

ALLOW = 0
DROP = 1
SLIP = 2

#: Buckets kept at most; past it, idle ones are swept (a spoofed flood from
#: random sources must not grow memory without bound).
MAX_BUCKETS = 200_000
_UNSEEN: list[float] = []  # a sentinel: a prefix with no bucket yet
#: How sa_family reads in a raw sockaddr_in6 (host byte order).
_FAMILY6 = socket.AF_INET6.to_bytes(2, sys.byteorder)


class RateLimiter:
    """``check(addr)`` -> ALLOW, DROP or SLIP; ``limited`` counts [dropped, slipped]."""

    __slots__ = ("rate", "slip", "_shift4", "_shift6", "_exempt", "_buckets", "_slip_count",
                 "limited", "_last_sweep")

    def __init__(self, rate: float, slip: int = 2, ipv4_prefix: int = 24, ipv6_prefix: int = 56,
                 exempt: Iterable[str] = ()) -> None:
        self.rate = float(rate)
        self.slip = slip
        self._shift4 = 32 - ipv4_prefix
        self._shift6 = 128 - ipv6_prefix
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in exempt]
        # prefix key -> [tokens, last refill time], plus the exempt networks
        # inside the prefix where some are narrower than it; None: all exempt.
        self._buckets: dict[Any, list[Any] | None] = {}
        self._slip_count = 0
        self.limited = [0, 0]
        self._last_sweep = time.monotonic()

    def check(self, addr: Any) -> int:
        """The verdict for a client ``(host, port)`` as Python gives it."""
        host = addr[0]
        try:
            if ":" in host:
                full = int.from_bytes(socket.inet_pton(socket.AF_INET6, host), "big")
                return self._verdict((6, full >> self._shift6), full, 6, time.monotonic())
            full = int.from_bytes(socket.inet_aton(host), "big")
        except OSError:
            return ALLOW
        return self._verdict(full >> self._shift4, full, 4, time.monotonic())

    def check_sockaddr(self, name: memoryview, now: float) -> int:
        """The verdict for a client given as a raw sockaddr_in or sockaddr_in6
        (the batched path): no address text is made, and ``now`` is the batch's."""
        if name[0:2] == _FAMILY6:
            full = int.from_bytes(name[8:24], "big")
            return self._verdict((6, full >> self._shift6), full, 6, now)
        full = int.from_bytes(name[4:8], "big")
        return self._verdict(full >> self._shift4, full, 4, now)

    def _verdict(self, key: Any, full: int, version: int, now: float) -> int:
        """``full``: the client's address as a number, ``key`` its prefix's."""
        bucket = self._buckets.get(key, _UNSEEN)
        if bucket is _UNSEEN:
            bucket = self._new_bucket(key, full, version, now)
        if bucket is None:
            return ALLOW  # exempt
        if len(bucket) == 3 and any(full >> shift == network for network, shift in bucket[2]):
            return ALLOW  # an exempt address in a prefix that is not
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.rate:
            tokens = self.rate  # a one-second burst at most
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return ALLOW
        bucket[0] = tokens
        if self.slip:
            self._slip_count += 1
            if self._slip_count >= self.slip:
                self._slip_count = 0
                self.limited[1] += 1
                return SLIP
        self.limited[0] += 1
        return DROP

    def _new_bucket(self, key: Any, full: int, version: int, now: float) -> list[Any] | None:
        if len(self._buckets) >= MAX_BUCKETS:
            self._sweep(now)
        bits = 32 if version == 4 else 128
        shift = self._shift4 if version == 4 else self._shift6
        prefix: Any = ipaddress.ip_network((full >> shift << shift, bits - shift))
        exempt: list[Any] = [n for n in self._exempt if n.version == version]
        bucket: list[Any] | None
        if any(prefix.subnet_of(n) for n in exempt):
            bucket = None
        else:
            # Exempt networks narrower than the prefix: its other addresses
            # share a bucket, and these are told apart by (network, shift).
            narrow = [(int(n.network_address) >> (bits - n.prefixlen), bits - n.prefixlen)
                      for n in exempt if n.subnet_of(prefix)]
            bucket = [self.rate, now, narrow] if narrow else [self.rate, now]
        self._buckets[key] = bucket
        return bucket

    def _sweep(self, now: float) -> None:
        """Forget buckets that have refilled: they hold no state worth keeping."""
        full_after = 1.0 if self.rate >= 1 else 1.0 / self.rate
        self._buckets = {k: b for k, b in self._buckets.items()
                         if b is None or now - b[1] < full_after}
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: start afresh rather than grow
            self._buckets.clear()
        self._last_sweep = now


def limited(verdict: int, reply: bytes) -> bytes | None:
    """What a verdict makes of a reply: itself, nothing, or a TC=1 slip that
    sends a real resolver to TCP."""
    if not verdict:
        return reply
    return None if verdict == DROP else truncate(reply)


def truncate(reply: bytes) -> bytes:
    """The reply cut to its header and question with TC=1, and its OPT if it
    has one: a reply to an EDNS query carries an OPT (RFC 6891 6.1.1), NSID
    (RFC 5001) and all."""
    if reply[4:6] != b"\x00\x01":
        return reply  # no question: already as small as it gets
    pos = 12
    while pos < len(reply) and reply[pos]:
        pos += reply[pos] + 1
    end = pos + 5
    opt = _opt(reply, end)
    return (reply[:2] + bytes((reply[2] | 0x02, reply[3])) + b"\x00\x01\x00\x00\x00\x00"
            + (b"\x00\x01" if opt else b"\x00\x00") + reply[12:end] + opt)


def _opt(reply: bytes, pos: int) -> bytes:
    """The OPT record of a reply made by answer() whose records start at ``pos``,
    or b"": answer() puts it last, after records it built itself (well-formed,
    so they are skipped without bounds checks)."""
    an, ns, ar = struct.unpack_from(">HHH", reply, 6)
    if not ar:
        return b""
    for _ in range(an + ns + ar - 1):
        while True:  # owner: labels up to the root, or ending in a pointer
            length = reply[pos]
            if length >= 0xC0:
                pos += 2
                break
            pos += length + 1
            if length == 0:
                break
        pos += 10 + (reply[pos + 8] << 8 | reply[pos + 9])
    return reply[pos:] if reply[pos:pos + 3] == b"\x00\x00\x29" else b""

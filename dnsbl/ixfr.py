"""IXFR (RFC 1995): the differences between successive versions of a zone,
made when a reload changes it, and the last few kept to answer from.

A difference is made from the two versions' record streams (the records a
transfer sends), off the event loop, in memory bounded by the zone's size
times 9 bytes rather than by its records: the old version's records are
reduced to 64-bit digests, kept sorted in 256 buckets; the new version's
stream is looked up in them, and what is left over is looked for in a
second pass over the old stream. It needs no order of the streams, so any
record generator will do (the RPZ form's too).
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from dnsbl.export import Record
from dnsbl.wire import TYPE_SOA

#: Past this many changed records a difference is not kept: a client gets
#: the whole zone (the AXFR form), which is then about as small.
MAX_CHANGES = 200_000
#: Records kept over all of a zone's differences; the oldest go first.
MAX_KEPT = 1_000_000

_BUCKETS = 256


@dataclass(frozen=True)
class Delta:
    """From one version to the next: the SOA records (as packed tails, from
    the type on) and serials of both, and the records deleted and added."""

    old_serial: int
    old_soa: bytes
    new_serial: int
    new_soa: bytes
    deleted: tuple[Record, ...]
    added: tuple[Record, ...]

    @property
    def size(self) -> int:
        return len(self.deleted) + len(self.added)


def _digest(record: Record) -> int:
    owner, ttl, rtype, rdata = record
    data = owner.lower().encode() + struct.pack(">HI", rtype, ttl) + rdata
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def difference(old: Callable[[], Iterator[Record]], new: Iterable[Record],
               limit: int = MAX_CHANGES) -> tuple[list[Record], list[Record]] | None:
    """(deleted, added) from ``old()`` (called twice: two passes) to
    ``new``, the SOA left out; None past ``limit`` changes."""
    buckets = [array("Q") for _ in range(_BUCKETS)]
    for record in old():
        if record[2] != TYPE_SOA:
            digest = _digest(record)
            buckets[digest % _BUCKETS].append(digest)
    buckets = [array("Q", sorted(bucket)) for bucket in buckets]
    found = [bytearray(len(bucket)) for bucket in buckets]
    added: list[Record] = []
    for record in new:
        if record[2] == TYPE_SOA:
            continue
        digest = _digest(record)
        bucket = buckets[digest % _BUCKETS]
        i = bisect_left(bucket, digest)
        if i < len(bucket) and bucket[i] == digest:
            found[digest % _BUCKETS][i] = 1
        else:
            added.append(record)
            if len(added) > limit:
                return None
    gone = {bucket[i] for bucket, seen in zip(buckets, found, strict=True)
            for i in range(len(bucket)) if not seen[i]}
    if len(gone) + len(added) > limit:
        return None
    del buckets, found
    deleted = [r for r in old() if r[2] != TYPE_SOA and _digest(r) in gone] if gone else []
    return deleted, added


class History:
    """The differences kept of one zone, oldest first, each following on
    from the one before; at most ``versions`` and :data:`MAX_KEPT` records."""

    def __init__(self, versions: int) -> None:
        self._deltas: deque[Delta] = deque()
        self._versions = versions

    def add(self, delta: Delta) -> None:
        if self._deltas and self._deltas[-1].new_serial != delta.old_serial:
            self._deltas.clear()  # a version was missed: older ones lead nowhere
        self._deltas.append(delta)
        kept = sum(d.size for d in self._deltas)
        while self._deltas and (len(self._deltas) > self._versions or kept > MAX_KEPT):
            kept -= self._deltas.popleft().size

    def clear(self) -> None:
        self._deltas.clear()

    def serials(self) -> list[int]:
        """The serials an IXFR is answered from with differences."""
        return [d.old_serial for d in self._deltas]

    def since(self, serial: int, current: int) -> list[Delta] | None:
        """The differences from ``serial`` to ``current``; None when they
        are not all kept (too old, or a serial never served)."""
        deltas = list(self._deltas)
        for i, delta in enumerate(deltas):
            if delta.old_serial == serial and deltas[-1].new_serial == current:
                return deltas[i:]
        return None

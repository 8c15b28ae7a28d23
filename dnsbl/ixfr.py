"""IXFR (RFC 1995): the differences between successive versions of a zone,
made when a reload changes it, and the last few kept to answer from.

A difference is made from the two versions' record streams (the records a
transfer sends), off the event loop, in memory bounded by 8 bytes a record
rather than by the records: each version's records are reduced to 64-bit
digests, kept sorted in 256 buckets (:class:`Digests`, kept for the version
served); the new version's stream is looked up in the old one's, and the
digests left over are looked for in a pass over the old stream, made only
when something was deleted. It needs no order of the streams, so any
record generator will do (the RPZ form's too). :mod:`dnsbl.ixdiff` gives
it, where it can tell, only the records a reload may have changed.
"""

from __future__ import annotations

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
_MASK = (1 << 64) - 1


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
    # Python's own 64-bit hash of the tuple: digests are compared only
    # within this process (never stored), and it costs a ninth of a
    # blake2b of the packed record, which counts at 4M records a version.
    return hash(record) & _MASK


class Digests:
    """A version's records as 64-bit digests, sorted in buckets: 8 bytes a
    record, kept for the version served so that the next difference reads
    only the new version's records (and the old ones again only when some
    were deleted)."""

    def __init__(self, records: Iterable[Record] = ()) -> None:
        buckets = [array("Q") for _ in range(_BUCKETS)]
        for record in records:
            if record[2] != TYPE_SOA:
                digest = _digest(record)
                buckets[digest % _BUCKETS].append(digest)
        self.buckets = [array("Q", sorted(bucket)) for bucket in buckets]

    def __len__(self) -> int:
        return sum(map(len, self.buckets))

    def updated(self, deleted: Iterable[Record], added: Iterable[Record]) -> Digests:
        """These digests (changed in place) with ``deleted`` taken out and
        ``added`` put in: the next version's, from its difference alone."""
        for record in deleted:
            digest = _digest(record)
            bucket = self.buckets[digest % _BUCKETS]
            i = bisect_left(bucket, digest)
            if i < len(bucket) and bucket[i] == digest:
                del bucket[i]
        for record in added:
            digest = _digest(record)
            bucket = self.buckets[digest % _BUCKETS]
            bucket.insert(bisect_left(bucket, digest), digest)
        return self


def difference(old: Callable[[], Iterator[Record]], new: Iterable[Record],
               known: Digests | None = None, limit: int = MAX_CHANGES
               ) -> tuple[list[Record], list[Record], Digests] | None:
    """(deleted, added, the new version's digests) from ``old()`` to ``new``,
    the SOA left out; None past ``limit`` changes. ``known``: the old
    version's digests, else ``old()`` is read for them; it is read (again)
    only when records were deleted."""
    before = known if known is not None else Digests(old())
    buckets = before.buckets
    found = [bytearray(len(bucket)) for bucket in buckets]
    after = [array("Q") for _ in range(_BUCKETS)]
    added: list[Record] = []
    for record in new:
        if record[2] == TYPE_SOA:
            continue
        digest = _digest(record)
        slot = digest % _BUCKETS
        after[slot].append(digest)
        bucket = buckets[slot]
        i = bisect_left(bucket, digest)
        if i < len(bucket) and bucket[i] == digest:
            found[slot][i] = 1
        elif len(added) < limit:
            added.append(record)
        else:
            return None
    gone = {bucket[i] for bucket, seen in zip(buckets, found, strict=True)
            for i in range(len(bucket)) if not seen[i]}
    if len(gone) + len(added) > limit:
        return None
    del found
    digests = Digests()
    digests.buckets = [array("Q", sorted(bucket)) for bucket in after]
    deleted = [r for r in old() if r[2] != TYPE_SOA and _digest(r) in gone] if gone else []
    return deleted, added, digests


def condensed(deltas: list[Delta]) -> Delta:
    """Successive differences as one (RFC 1995 section 5): a record added
    and then deleted again is neither, and the reverse too."""
    if len(deltas) == 1:
        return deltas[0]
    net: dict[Record, bool] = {}  # record -> added (True) or deleted (False)
    for delta in deltas:
        for record in delta.deleted:
            if net.pop(record, False) is not True:
                net[record] = False
        for record in delta.added:
            if net.pop(record, True) is not False:
                net[record] = True
    first, last = deltas[0], deltas[-1]
    return Delta(first.old_serial, first.old_soa, last.new_serial, last.new_soa,
                 tuple(r for r, added in net.items() if not added),
                 tuple(r for r, added in net.items() if added))


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

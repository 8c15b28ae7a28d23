"""The difference a reload made to a zone, at the cost of what changed: the
entries two versions may differ in are found from their datasets, and only
the records of those are made and compared (:func:`dnsbl.ixfr.difference`).

Records made from entries that are the same in both versions, in the same
surroundings, are the same in both: left out of both, the difference is as
it was. For the IPv4 data (both forms, and the IPv4-mapped names) a /16 is
the unit: it is a label of the reverse tree in octets and in nibbles, so a
/16's records depend on its own entries and on what lies above it, which is
the entries shorter than /16 (kept in both versions whole) and, under a
listed block, whether the block has an exclusion anywhere below it (a hole
writes the block child by child). So the /16s made again are:

- those where an entry (address or block, by value) was added, removed or
  changed, or where the RPZ allowlist changed;
- those under an entry shorter than /16 that changed;
- under any label above /16 (a /0, /4, /8 or /12) that an entry shorter than
  /16 lists in either version, all of them once any of them is: a change
  there may open or close a hole, which changes its every child.

Datasets of other families are left out of both versions when unchanged
(a reload keeps the object of a dataset it did not read again) and made
whole in both when any of the family changed. Where the two versions do not
line up (datasets added, types or TTLs changed, the allowlist not loaded),
or where more than a quarter of the addresses would be made again anyway
(:data:`MOST`), the whole zone is compared, as before.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dnsbl.datasets import Dataset, IP4Dataset
from dnsbl.export import Entries, Entry, Record, dataset_entries, zone_parts
from dnsbl.ixfr import MAX_CHANGES, Digests, difference
from dnsbl.zonefile import Value
from dnsbl.zones import Snapshot, Zone

_SLICE = 16  # the prefix length of the unit made again
_ABOVE = (12, 8, 4, 0)  # the labels above it (nibbles; octets are among them), deepest first
_SMALL = 64  # a run of the sorted arrays compared entry by entry below this
#: Past this share of the addresses made again, the whole zone is compared:
#: the narrow path makes both versions' records and the old ones twice,
#: the whole zone's only the new ones (and the old once where some went).
MOST = 0.25

#: What a transfer form makes from a snapshot, a zone and its datasets' entries.
Records = Callable[[Snapshot, Zone, Entries], Iterator[Record]]


@dataclass(frozen=True)
class Narrowed:
    """The entries to make both versions' records from: the same choice
    read from each version's datasets."""

    entries: Entries
    slices: frozenset[int]  # the /16s made again, by address >> 16


def _canonical(values: list[Value | None]) -> list[Any]:
    # What records are made from a value: its A and its TXT template.
    return [None if v is None else (v.a, v.txt) for v in values]


def _renumbered(numbers: array, values: list[Any], ids: dict[Any, int]) -> array:
    """Value numbers as numbers of the values themselves, shared by both versions."""
    table = [ids.setdefault(v, len(ids)) for v in values]
    return array("I", map(table.__getitem__, numbers))


def _changed_singles(old: IP4Dataset, new: IP4Dataset, slices: set[int]) -> None:
    """Add the /16s of the single addresses added, removed or given another value."""
    okeys, onumbers, ovalues = old.arrays()
    nkeys, nnumbers, nvalues = new.arrays()
    before, after = _canonical(ovalues), _canonical(nvalues)
    if before[:len(after)] != after[:len(before)]:
        # A number stands for another value in the other version: compare values.
        ids: dict[Any, int] = {}
        onumbers = _renumbered(onumbers, before, ids)
        nnumbers = _renumbered(nnumbers, after, ids)
    # Halve both sorted runs at one address until the halves are equal (one
    # comparison in C) or small: a few changes cost a few dozen comparisons.
    runs = [(0, len(okeys), 0, len(nkeys))]
    while runs:
        a, b, c, d = runs.pop()
        if b - a == d - c and okeys[a:b] == nkeys[c:d] and onumbers[a:b] == nnumbers[c:d]:
            continue
        if b - a <= _SMALL or d - c <= _SMALL:
            was = dict(zip(okeys[a:b], onumbers[a:b], strict=True))
            now = dict(zip(nkeys[c:d], nnumbers[c:d], strict=True))
            slices.update(key >> _SLICE for key in was.keys() ^ now.keys())
            slices.update(key >> _SLICE for key, number in was.items()
                          if now.get(key, number) != number)
            continue
        middle = (a + b) // 2
        split = bisect_left(nkeys, okeys[middle], c, d)
        runs += [(a, middle, c, split), (middle, b, split, d)]


def _span(address: int, bits: int) -> range:
    """The /16s a network covers, or the one it is in."""
    first = address >> _SLICE
    return range(first, first + (1 << (_SLICE - bits)) if bits < _SLICE else first + 1)


def _block_set(dataset: IP4Dataset) -> set[tuple[int, int, Any]]:
    return {(e.address, e.bits, None if e.value is None else (e.value.a, e.value.txt))
            for e in dataset.blocks()}


def _closed(slices: set[int], listed: set[tuple[int, int]]) -> None:
    """Add every /16 under a label above /16 that ``listed`` (blocks shorter
    than /16 with a value, as (bits, address >> (32 - bits))) lists, once
    any /16 under it is in ``slices``; deepest labels first, so that what a
    deeper one adds counts for those above."""
    lengths = sorted({bits for bits, _ in listed})
    for level in _ABOVE:
        shift = _SLICE - level
        for label in {s >> shift for s in slices}:
            address = label << (32 - level) if level else 0
            if any((bits, address >> (32 - bits) if bits else 0) in listed
                   for bits in lengths if bits <= level):
                slices.update(range(label << shift, (label + 1) << shift))


def _allowlist_changes(old: Snapshot, new: Snapshot, slices: set[int],
                       whole: set[str]) -> bool:
    """Mark what an allowlist change touches; False where it cannot be told."""
    if old.allowlist is new.allowlist:
        return True
    if old.allowlist is None or new.allowlist is None:
        return False
    before = {(n.version, int(n.network_address), n.prefixlen) for n in old.allowlist.networks}
    after = {(n.version, int(n.network_address), n.prefixlen) for n in new.allowlist.networks}
    for version, address, bits in before ^ after:
        if version == 6:
            whole.add("ip6")
        elif bits >= _SLICE:  # (shorter ones are made in both versions anyway)
            slices.add(address >> _SLICE)
    return True


def narrowed(old: Snapshot, before: Zone, new: Snapshot, zone: Zone,
             most: float = MOST) -> Narrowed | None:
    """The entries of ``before`` and ``zone`` whose records may differ, or
    None where the whole zone is to be compared (see the module's text),
    past ``most`` of the IPv4 addresses too."""
    old_parts, new_parts = zone_parts(old, before), zone_parts(new, zone)
    if len(old_parts) != len(new_parts):
        return None
    slices: set[int] = set()
    whole: set[str] = set()  # families made whole in both versions
    ip4: list[tuple[IP4Dataset, IP4Dataset]] = []
    for (old_sub, was), (new_sub, now) in zip(old_parts, new_parts, strict=True):
        if old_sub != new_sub or type(was) is not type(now) or was.ttl != now.ttl:
            return None
        if isinstance(was, IP4Dataset) and isinstance(now, IP4Dataset):
            ip4.append((was, now))
            if was is not now:
                _changed_singles(was, now, slices)
                for address, bits, _value in _block_set(was) ^ _block_set(now):
                    slices.update(_span(address, bits))
        elif was is not now:
            whole.add(was.family)
    if not _allowlist_changes(old, new, slices, whole):
        return None
    # Blocks shorter than /16 are made in both versions; those listed may hold holes.
    listed = {(e.bits, e.address >> (32 - e.bits) if e.bits else 0)
              for dataset in {id(d): d for pair in ip4 for d in pair}.values()
              for e in dataset.blocks() if e.bits < _SLICE and e.value is not None}
    _closed(slices, listed)
    ordered = sorted(slices)
    made = sum(_count(was, ordered) + _count(now, ordered) for was, now in ip4)
    if made > most * sum(len(was.arrays()[0]) + len(now.arrays()[0]) for was, now in ip4):
        return None  # much of the zone: comparing it whole costs about the same
    return Narrowed(_reader(ordered, whole), frozenset(slices))


def _runs(keys: array, slices: list[int]) -> Iterator[tuple[int, int]]:
    """Where each of ``slices`` (sorted) lies in the sorted ``keys``."""
    lo = 0
    for s in slices:
        lo = bisect_left(keys, s << _SLICE, lo)
        hi = bisect_left(keys, (s + 1) << _SLICE, lo)
        if hi > lo:
            yield lo, hi
        lo = hi


def _count(dataset: IP4Dataset, slices: list[int]) -> int:
    return sum(hi - lo for lo, hi in _runs(dataset.arrays()[0], slices))


def _reader(slices: list[int], whole: set[str]) -> Entries:
    chosen = set(slices)

    def entries(dataset: Dataset) -> Iterable[Entry]:
        if isinstance(dataset, IP4Dataset):
            return _ip4_entries(dataset, slices, chosen)
        return dataset_entries(dataset) if dataset.family in whole else ()

    return entries


def _ip4_entries(dataset: IP4Dataset, slices: list[int], chosen: set[int]
                 ) -> Iterator[Entry]:
    """The entries of ``dataset`` in ``slices`` and those shorter than /16,
    in the order of :meth:`IP4Dataset.entries` (of two equal entries, the
    later wins)."""
    keys, numbers, values = dataset.arrays()
    for lo, hi in _runs(keys, slices):
        for i in range(lo, hi):
            yield ("ip4", keys[i], 32, values[numbers[i]])
    for entry in dataset.blocks():
        if entry.bits < _SLICE or entry.address >> _SLICE in chosen:
            yield ("ip4", entry.address, entry.bits, entry.value)


def zone_difference(records: Records, old: Snapshot, before: Zone, new: Snapshot,
                    zone: Zone, known: Digests | None = None, limit: int = MAX_CHANGES,
                    most: float = MOST
                    ) -> tuple[list[Record], list[Record], Digests | None] | None:
    """:func:`dnsbl.ixfr.difference` from ``before`` to ``zone`` in the
    form ``records`` makes, from the entries :func:`narrowed` finds where
    it can; the new version's digests are ``known`` brought up to date
    then (None without them)."""
    narrow = narrowed(old, before, new, zone, most)
    if narrow is None:
        return difference(lambda: records(old, before, dataset_entries),
                          records(new, zone, dataset_entries), known, limit)
    found = difference(lambda: records(old, before, narrow.entries),
                       records(new, zone, narrow.entries), None, limit)
    if found is None:
        return None
    deleted, added, _ = found
    return deleted, added, known.updated(deleted, added) if known is not None else None

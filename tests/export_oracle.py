"""Today's (before streaming) ``bind`` records of a zone, kept as the oracle the
streaming generator of :mod:`dnsbl.export` is compared with on random data:
entries on a tree of labels, walked top label first."""

# ruff: noqa
from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dnsbl.datasets.names import EXACT, SUBDOMAINS
from dnsbl.export import Record, _apex, _Budget, dataset_entries, zone_parts
from dnsbl.wire import TYPE_A, TYPE_TXT, txt_rdata
from dnsbl.zonefile import Value
from dnsbl.zones import Snapshot, Zone

TYPE_PRIVATE = 65280

def _ip_text(family: str, key: int) -> str:
    if family == "ip4":
        return str(ipaddress.IPv4Address(key))
    return str(ipaddress.IPv6Address(key))


def _ip_labels(family: str, key: int, bits: int) -> tuple[str, ...]:
    """The labels of an octet (nibble) aligned network, top first: 10.1/16 -> ("10", "1")."""
    if family == "ip4":
        return tuple(str((key >> (24 - 8 * i)) & 0xFF) for i in range(bits // 8))
    return tuple(format((key >> (124 - 4 * i)) & 0xF, "x") for i in range(bits // 4))


@dataclass
class _Tree:
    """Entries on a tree of labels (top label first). ``exact``: values of
    names themselves; ``below``: values of everything strictly under a name."""

    leaf_depth: int  # IPv4: 4 labels, IPv6: 32; names: 0 (no leaves)
    fanout: tuple[str, ...] = ()
    exact: dict[tuple[str, ...], Value | None] = field(default_factory=dict)
    below: dict[tuple[str, ...], Value | None] = field(default_factory=dict)
    text: dict[tuple[str, ...], str] = field(default_factory=dict)  # what $ is at a wildcard
    kids: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    holes: set[tuple[str, ...]] = field(default_factory=set)  # an exclusion strictly below
    mapped: bool = False  # ::ffff:0:0/96 holds the IPv4 data: $ is the IPv4 address

    def add(self, labels: tuple[str, ...], value: Value | None, exact: bool,
            text: str) -> None:
        (self.exact if exact else self.below)[labels] = value
        if not exact:
            self.text[labels] = text
        for depth in range(len(labels)):
            self.kids.setdefault(labels[:depth], set()).add(labels[depth])
            if value is None:
                self.holes.add(labels[:depth])


def _ip_tree(family: str, entries: list[tuple[int, int, Value | None]],
             budget: _Budget) -> _Tree:
    width, step = (32, 8) if family == "ip4" else (128, 4)
    tree = _Tree(width // step, tuple(str(i) for i in range(256)) if family == "ip4"
                 else tuple("0123456789abcdef"))
    # Aligned to whole labels; a longer prefix is written later, so it wins.
    for key, bits, value in sorted(entries, key=lambda e: e[1]):
        level = -(-bits // step) * step
        count = 1 << (level - bits)
        if count > 1:
            budget.spend(count, f"{_ip_text(family, key)}/{bits} as /{level}s")
        for i in range(count):
            net = key + (i << (width - level))
            labels = _ip_labels(family, net, level)
            tree.add(labels, value, level == width, f"{_ip_text(family, net)}/{level}")
    return tree


def _name_tree(entries: list[tuple[str, int, Value | None]]) -> _Tree:
    tree = _Tree(0)
    for name, mode, value in entries:
        labels = tuple(reversed(name.split(".")))
        if mode != SUBDOMAINS:
            tree.add(labels, value, True, name)
        if mode != EXACT:
            tree.add(labels, value, False, name)
    return tree


def _records(owner: str, value: Value, ttl: int, text: str) -> Iterator[Record]:
    yield (owner, ttl, TYPE_A, value.a)
    txt = value.text_for(text)
    if txt is not None:
        yield (owner, ttl, TYPE_TXT, txt_rdata(txt))


def _tree_records(tree: _Tree, ttl: int, suffix: str, ip: bool,
                  budget: _Budget) -> Iterator[Record]:
    """The records of the tree with DNSBL meaning in DNS terms."""

    def owner(labels: tuple[str, ...]) -> str:
        name = ".".join(reversed(labels))
        return f"{name}.{suffix}" if name and suffix else name or suffix or "@"

    def walk(node: tuple[str, ...], region: Value | None) -> Iterator[Record]:
        # What the name itself answers: its own entry, else its parent's region.
        value = tree.exact.get(node, region)
        if node and value is not None and (not ip or len(node) == tree.leaf_depth):
            budget.spend(2, "records")
            yield from _records(owner(node), value, ttl, node_text(node))
        elif not ip and value is None and region is not None:
            # An excluded name under a listed wildcard must exist, or the
            # wildcard answers for it; a record of a private type (RFC 6895)
            # makes it exist with no A or TXT: NODATA, not listed.
            budget.spend(1, "records")
            yield (owner(node), ttl, TYPE_PRIVATE, b"")
        if ip and len(node) == tree.leaf_depth:
            return
        region = tree.below.get(node, region)
        if ip and region is not None and node in tree.holes:
            # A hole: no wildcard here; each child is written on its own, so
            # the excluded one does not exist and its names are NXDOMAIN.
            for label in tree.fanout:
                yield from walk((*node, label), region)
            return
        if region is not None:
            budget.spend(2, "records")
            star = f"*.{owner(node)}" if owner(node) != "@" else "*"
            yield from _records(star, region, ttl, region_text(node))
        for label in sorted(tree.kids.get(node, ()), key=sort_key):
            yield from walk((*node, label), region)

    def node_text(node: tuple[str, ...]) -> str:
        if not ip:
            return ".".join(reversed(node))
        if tree.leaf_depth == 4:
            return ".".join(node)
        address = int("".join(node), 16)
        if tree.mapped and address >> 32 == 0xFFFF:
            return str(ipaddress.IPv4Address(address & 0xFFFFFFFF))
        return str(ipaddress.IPv6Address(address))

    def region_text(node: tuple[str, ...]) -> str:
        # The entry that made the region: what $ stands for in a wildcard's
        # TXT, since a wildcard cannot name the address asked.
        while node and node not in tree.text:
            node = node[:-1]
        return tree.text.get(node, "")

    def sort_key(label: str) -> Any:
        return int(label) if tree.leaf_depth == 4 else label

    yield from walk((), None)


def bind_records(zoneset: Snapshot, zone: Zone,
                 max_records: int = 1 << 62) -> Iterator[Record]:
    """The zone's records as a standard zone: SOA and NS first.

    :raises ExportError: past ``max_records`` records.
    """
    budget = _Budget(max_records)
    yield from _apex(zone)
    # Datasets of one family under one name are written as one tree (DNS has
    # one answer per name; where two list the same key, the later one's).
    families: dict[tuple[str, str], tuple[int, list[Any]]] = {}
    for subzone, dataset in zone_parts(zoneset, zone):
        for family, key, bits, value in dataset_entries(dataset):
            if family == "record":
                rtype, rttl, rdata = bits
                yield (".".join(x for x in (key, subzone) if x) or "@", rttl, rtype, rdata)
                continue
            families.setdefault((subzone, family), (dataset.ttl, []))[1].append(
                (key, bits, value))
    for (subzone, family), (ttl, _listed) in list(families.items()):
        if family == "ip4" and (subzone, "ip6") not in families:
            families[(subzone, "ip6")] = (ttl, [])  # for its IPv4-mapped names
    for (subzone, family), (ttl, entries) in families.items():
        if family == "name":
            tree = _name_tree(entries)
        else:
            mapped = family == "ip6" and (subzone, "ip4") in families
            if mapped:
                entries = _mapped(entries, families[(subzone, "ip4")][1])
            tree = _ip_tree(family, entries, budget)
            tree.mapped = mapped
        yield from _tree_records(tree, ttl, subzone, family != "name", budget)


_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96


def _mapped(entries6: list[Any], entries4: list[Any]) -> list[Any]:
    """The IPv6 entries as dnsbl answers them in a zone with IPv4 data: an
    IPv4-mapped address (::ffff:a.b.c.d) is asked of the IPv4 data alone."""
    outside = [(key, bits, value) for key, bits, value in entries6
               if bits < 96 or key >> 32 != 0xFFFF]
    return [*outside, (_MAPPED, 96, None),
            *((_MAPPED | key, 96 + bits, value) for key, bits, value in entries4)]



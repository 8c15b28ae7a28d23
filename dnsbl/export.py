"""Export: a zone as a standard master file (``bind``) or a Response Policy Zone (``rpz``).

Both read a dataset's entries in one place, :func:`_entries`, so the rest
does not depend on how a dataset stores them.

A DNSBL's "most specific entry wins" is not what DNS wildcards do: a name
that exists under a wildcard's owner hides the wildcard from everything
below it. The ``bind`` form therefore writes the entries as a tree
(:func:`_tree_lines`): every name that exists and lies in a listed region gets
a wildcard of its own, and a listed region with a hole in it (an exclusion)
is written child by child instead of as one wildcard. The RPZ form needs no
such care: RPZ's own rule among ``rpz-ip`` triggers is the longest prefix.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from dnsbl.config import ServerConfig
from dnsbl.datasets import (
    CombinedDataset,
    Dataset,
    GenericDataset,
    IP4Dataset,
    IP6Dataset,
    NameDataset,
)
from dnsbl.datasets.names import EXACT, SUBDOMAINS
from dnsbl.loader import LoadError, load_snapshot
from dnsbl.rpz import TYPE_CNAME, RpzPolicy, action_rdata, rpz_ip_name
from dnsbl.wire import TYPE_A, TYPE_MX, TYPE_NS, TYPE_SOA, TYPE_TXT, name_to_wire, txt_rdata
from dnsbl.zonefile import Value
from dnsbl.zones import Snapshot, Zone

#: Past this many records an export stops with an error: a /9 written as
#: /16 wildcards is 128 records, but a few misplaced exclusions in big
#: blocks could ask for hundreds of millions.
DEFAULT_MAX_RECORDS = 10_000_000

FORMATS = ("bind", "rpz")
TYPE_PRIVATE = 65280  # RFC 6895: private use
#: The last line of a complete export: standard output is streamed, so a
#: reader of a failed one (exit status 1) can also tell it by this missing.
END = "; end of {}"


class ExportError(Exception):
    """Why a zone cannot be exported, in words a user can act on."""

# -- reading the data -------------------------------------------------------

#: One entry: ("ip4"|"ip6", network int, prefix length, value or None when
#: excluded), ("name", name, EXACT|SUBDOMAINS, value or None), or
#: ("record", owner, (type, ttl, rdata), None) for a generic dataset's records.
Entry = tuple[str, Any, Any, Any]

#: One record: owner relative to the origin ("@": the apex), TTL, type, rdata.
Record = tuple[str, int, int, bytes]


def _entries(dataset: Dataset) -> Iterator[Entry]:
    """Every entry of one loaded dataset (not a combined one), as :data:`Entry`."""
    if isinstance(dataset, GenericDataset):
        for record in dataset.entries():
            yield ("record", record.name, (record.rtype, record.ttl, record.rdata), None)
    elif isinstance(dataset, IP4Dataset | IP6Dataset):
        family = dataset.family
        for network in dataset.entries():
            yield (family, network.address, network.bits, network.value)
    elif isinstance(dataset, NameDataset):
        for name in dataset.entries():
            yield ("name", name.name, name.mode, name.value)


def zone_parts(zoneset: Snapshot, zone: Zone) -> list[tuple[str, Dataset]]:
    """The datasets that answer in ``zone``, each with the subzone it answers
    under (``""``: the zone itself; a combined file's sections elsewhere)."""
    parts = [("", d) for d in zone.datasets if not isinstance(d, CombinedDataset)]
    suffix = "." + zone.name
    for sub in zoneset.zones.values():
        if sub.parent_labels and sub.name.endswith(suffix):
            prefix = sub.name[:-len(suffix)]
            if prefix.count(".") + 1 == sub.parent_labels:
                parts += [(prefix, d) for d in sub.datasets
                          if not isinstance(d, CombinedDataset)]
    return parts


def load(config: ServerConfig, name: str) -> tuple[Snapshot, Zone]:
    """Load the datasets of zone ``name`` (and no others).

    :raises ExportError: for an unknown zone or a file that cannot be loaded.
    """
    wanted = name.lower().rstrip(".")
    zone_config = next((z for z in config.zones if z.name == wanted), None)
    if zone_config is None:
        known = ", ".join(z.name for z in config.zones) or "none"
        raise ExportError(f"no zone {wanted!r} in the configuration (zones: {known})")
    try:
        zoneset = load_snapshot(replace(config, zones=(zone_config,), global_acl=None))
    except LoadError as exc:
        raise ExportError("; ".join(map(str, exc.errors))) from None
    zone = zoneset.by_name(wanted)
    assert zone is not None
    return zoneset, zone


# -- text of records --------------------------------------------------------

def _quoted(text: bytes) -> str:
    out = []
    for byte in text:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _name_text(rdata: bytes, i: int) -> tuple[str, int]:
    """The uncompressed name at ``rdata[i:]`` as text, and where it ends."""
    labels = []
    while rdata[i]:
        raw = rdata[i + 1:i + 1 + rdata[i]]
        labels.append("".join(chr(b) if 0x21 <= b < 0x7F and b not in b'.\\"();$@'
                              else f"\\{b:03d}" for b in raw))
        i += 1 + rdata[i]
    return ".".join(labels) + ".", i + 1


_TYPE_NAMES = {TYPE_A: "A", TYPE_NS: "NS", TYPE_CNAME: "CNAME", TYPE_SOA: "SOA",
               TYPE_MX: "MX", TYPE_TXT: "TXT"}


def record_text(record: Record) -> str:
    """A record as a master-file line."""
    owner, ttl, rtype, rdata = record
    kind = _TYPE_NAMES.get(rtype, f"TYPE{rtype}")
    if rtype == TYPE_A:
        text = ".".join(map(str, rdata))
    elif rtype == TYPE_TXT:
        parts, i = [], 0
        while i < len(rdata):
            parts.append(_quoted(rdata[i + 1:i + 1 + rdata[i]]))
            i += 1 + rdata[i]
        text = " ".join(parts)
    elif rtype in (TYPE_NS, TYPE_CNAME):
        text = _name_text(rdata, 0)[0]
    elif rtype == TYPE_MX:
        text = f"{struct.unpack('>H', rdata[:2])[0]} {_name_text(rdata, 2)[0]}"
    elif rtype == TYPE_SOA:
        mname, i = _name_text(rdata, 0)
        rname, i = _name_text(rdata, i)
        text = " ".join([mname, rname, *map(str, struct.unpack(">5I", rdata[i:i + 20]))])
    else:  # RFC 3597
        text = f"\\# {len(rdata)} {rdata.hex()}" if rdata else "\\# 0"
    return f"{owner} {ttl} IN {kind} {text}"


def _apex(zone: Zone) -> Iterator[Record]:
    """The zone's SOA and NS records, as served."""
    for tail in (zone.soa_tail, *zone.ns_tails):
        rtype, _class, ttl, _length = struct.unpack(">HHIH", tail[:10])
        yield ("@", ttl, rtype, tail[10:])
    if not zone.ns_tails:
        # A zone needs an NS; with none in the data, one that needs no glue.
        yield ("@", zone.soa.ttl, TYPE_NS, name_to_wire("localhost"))


# -- bind ---------------------------------------------------------------------

def _ip_text(family: str, key: int) -> str:
    if family == "ip4":
        return str(ipaddress.IPv4Address(key))
    return str(ipaddress.IPv6Address(key))


def _ip_labels(family: str, key: int, bits: int) -> tuple[str, ...]:
    """The labels of an octet (nibble) aligned network, top first: 10.1/16 -> ("10", "1")."""
    if family == "ip4":
        return tuple(str((key >> (24 - 8 * i)) & 0xFF) for i in range(bits // 8))
    return tuple(format((key >> (124 - 4 * i)) & 0xF, "x") for i in range(bits // 4))


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def spend(self, count: int, what: str) -> None:
        self.left -= count
        if self.left < 0:
            raise ExportError(f"more than {self.limit} records ({what}); a master file "
                              "cannot hold this data compactly: raise --max-records, or "
                              "serve it by zone transfer instead")


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
                 max_records: int = DEFAULT_MAX_RECORDS) -> Iterator[Record]:
    """The zone's records as a standard zone: SOA and NS first.

    :raises ExportError: past ``max_records`` records.
    """
    budget = _Budget(max_records)
    yield from _apex(zone)
    # Datasets of one family under one name are written as one tree (DNS has
    # one answer per name; where two list the same key, the later one's).
    families: dict[tuple[str, str], tuple[int, list[Any]]] = {}
    for subzone, dataset in zone_parts(zoneset, zone):
        for family, key, bits, value in _entries(dataset):
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


# -- rpz ----------------------------------------------------------------------

def _category_address(config: ServerConfig, category: str, where: str) -> bytes:
    """The A value (packed) of a category named by the ledger's name or by its address."""
    by_name = {c.name: c.a for c in (config.ledger.categories if config.ledger else ())}
    try:
        return ipaddress.IPv4Address(by_name.get(category, category)).packed
    except ValueError:
        raise ExportError(f"[rpz] {where}: {category!r} is neither a ledger category "
                          f"({', '.join(by_name) or 'none configured'}) nor an address"
                          ) from None


def _allowed(config: ServerConfig, policy: RpzPolicy) -> Iterator[
        ipaddress.IPv4Network | ipaddress.IPv6Network]:
    from dnsbl.ledger.guard import _allowlist
    from dnsbl.ledger.model import LedgerError

    files = [*policy.allowlist, *(config.ledger.allowlist if config.ledger else ())]
    for path in files:
        try:
            for network, _lineno in _allowlist(path):
                yield network
        except LedgerError as exc:
            raise ExportError(str(exc)) from None


def rpz_records(zoneset: Snapshot, zone: Zone, config: ServerConfig,
                policy: RpzPolicy | None = None) -> Iterator[Record]:
    """The zone as a Response Policy Zone (owners relative to its origin).

    :raises ExportError: for a category the policy names that is not one.
    """
    policy = policy or RpzPolicy()
    actions = {_category_address(config, category, "actions"): action_rdata(action)
               for category, action in policy.actions}
    default = action_rdata(policy.default)
    passthru = action_rdata("passthru")
    by_client = {_category_address(config, category, "client") for category in policy.client}
    ttl = zone.datasets[0].ttl if zone.datasets else zone.soa.ttl
    yield from _apex(zone)
    for _subzone, dataset in zone_parts(zoneset, zone):
        for family, key, bits, value in _entries(dataset):
            if family == "record":
                continue
            rtype, rdata = passthru if value is None else actions.get(value.a, default)
            if family == "name":
                if bits != SUBDOMAINS:
                    yield (key, ttl, rtype, rdata)
                if bits != EXACT:
                    yield (f"*.{key}", ttl, rtype, rdata)
                continue
            trigger = "rpz-client-ip" if value is not None and value.a in by_client else "rpz-ip"
            yield (f"{rpz_ip_name(ipaddress.ip_network((key, bits)))}.{trigger}", ttl,
                   rtype, rdata)
    for network in _allowed(config, policy):
        yield (f"{rpz_ip_name(network)}.rpz-ip", ttl, *passthru)


def master_file(records: Iterable[Record], origin: str, title: str) -> Iterator[str]:
    """Master-file lines of ``records`` under ``origin``, the last one :data:`END`."""
    yield f"; {title}, exported by dnsbl"
    yield f"$ORIGIN {origin}."
    yield from map(record_text, records)
    yield END.format(origin)


def write(lines: Iterable[str], out: TextIO) -> int:
    """Write ``lines`` each with a line end; how many were written."""
    count = 0
    for line in lines:
        out.write(line)
        out.write("\n")
        count += 1
    return count
